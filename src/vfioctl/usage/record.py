"""One host use of a PCI function, as a record: what kind, the evidence, and who.

Every reader in :mod:`vfioctl.usage` returns these; planners, ``assess``, ``show``, the
libvirt hook, selectors' count and the Ansible modules all see the same records
(:attr:`vfioctl.ops.state.DeviceState.in_use`).  ``text`` is the one-line message the
commands print; ``--json`` carries :meth:`Use.to_dict`.

A reading that could not be made (a snapshot that did not capture it, a file the caller
may not read) is a record too, of kind ``not-known`` with why (STYLE 19): never "no use".
"""

from __future__ import annotations

from dataclasses import dataclass

#: the kinds of host use (docs/host-use.md says how each is found)
PROCESS = "process"        # a process has a device node of the function open or mapped
MOUNT = "mount"            # a filesystem on the function's block devices (any layer) is mounted
SWAP = "swap"              # ... is swap
BLOCK_STACK = "block-stack"  # ... is held by dm/LVM/crypt, md, bcache, loop (holders/)
MOUNT_TAG = "mount-tag"    # a virtio-9p or virtiofs mount uses the function's tag
NET = "net"                # an interface (or an upper device of it) is up with addresses/routes, a port...
CONSOLE = "console"        # boot VGA, a frame buffer on it (the console hand-off covers these)
PLATFORM = "platform"      # host bridge, ISA/LPC bridge, IOMMU, the root filesystem's or console's device
NOT_KNOWN = "not-known"    # a reading that was not made, with why
OTHER = "other"            # a use a caller handed in as text (tests, views built by hand)

KINDS = (PROCESS, MOUNT, SWAP, BLOCK_STACK, MOUNT_TAG, NET, CONSOLE, PLATFORM, NOT_KNOWN, OTHER)
_CONSOLE_TEXTS = ("it is the boot VGA device", "framebuffer ")


@dataclass(frozen=True)
class Use:
    """Why the host still uses a function (or why that is not known)."""

    kind: str
    #: the message, evidence included ("PID 412 (glxgears) has /dev/dri/renderD128 open")
    text: str
    #: where it was read: a file and its value ("/proc/self/mountinfo: 9p hostroot on /")
    evidence: str = ""
    pid: int | None = None
    command: str | None = None
    #: the device node (/dev/dri/renderD128) or the block device / interface concerned
    node: str | None = None
    #: taking the function takes the machine itself (refused even with --force unless
    #: --force-platform)
    platform: bool = False

    @property
    def known(self) -> bool:
        return self.kind != NOT_KNOWN

    @property
    def console(self) -> bool:
        """The boot VGA device or a frame buffer on it: what --take-console hands over."""
        return self.kind == CONSOLE

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        d: dict = {"kind": self.kind, "text": self.text, "evidence": self.evidence}
        if self.pid is not None:
            d["pid"] = self.pid
            d["command"] = self.command
        if self.node is not None:
            d["node"] = self.node
        d["platform"] = self.platform
        return d


def not_known(what: str, why: str, evidence: str = "") -> Use:
    """A reading that was not made: "not known: <what>: <why>"."""
    return Use(NOT_KNOWN, f"not known: {what}: {why}", evidence or why)


def from_text(text: str | Use) -> Use:
    """A use handed in as text, as a record (its kind from the words :mod:`.inuse` uses)."""
    if isinstance(text, Use):
        return text
    kind = CONSOLE if text.startswith(_CONSOLE_TEXTS) else NOT_KNOWN if text.startswith("not known") else OTHER
    return Use(kind, text, text)
