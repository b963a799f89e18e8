"""Facts about the installed system: its distribution, tools, boot-loader set-up and
initramfs builder, each read through the Host (a captured host answers the same)."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vfioctl.host.core import Host


# ------------------------------------------------------------------ tools and distribution
TOOL_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def find_tool(host: Host, *names: str) -> str | None:
    """The host-absolute path of the first of *names* installed on the host, or None."""
    for n in names:
        for d in TOOL_DIRS:
            if host.exists(f"{d}/{n}"):
                return f"{d}/{n}"
    return None


def os_release(host: Host) -> dict[str, str]:
    def compute() -> dict[str, str]:
        out: dict[str, str] = {}
        for path in ("/etc/os-release", "/usr/lib/os-release"):
            text = host.read(path, default="")
            if text:
                for line in text.splitlines():
                    k, eq, v = line.partition("=")
                    if eq:
                        out[k.strip()] = v.strip().strip("\"'")
                break
        return out

    return host.cached("facts:os-release", compute)


def distro_family(host: Host) -> set[str]:
    osr = os_release(host)
    return {osr.get("ID", "")} | set(osr.get("ID_LIKE", "").split())


# ------------------------------------------------------------------ boot set-up: the one vocabulary
#: how this host's kernel command line is configured (what :func:`boot_setup` answers)
GRUBBY = "grubby"  # Fedora/RHEL: BLS entries and grubby
PROXMOX = "proxmox"  # /etc/kernel/cmdline, refreshed by proxmox-boot-tool
SYSTEMD_BOOT = "systemd-boot"  # /etc/kernel/cmdline, refreshed by kernel-install
DEBIAN_GRUB = "debian-grub"  # /etc/default/grub + update-grub
GRUB2 = "grub2"  # /etc/default/grub + grub2-mkconfig or grub-mkconfig
UNKNOWN_SETUP = "unknown"
BOOT_SETUPS = (GRUBBY, PROXMOX, SYSTEMD_BOOT, DEBIAN_GRUB, GRUB2, UNKNOWN_SETUP)

#: how vfioctl edits the command line of each set-up (:mod:`vfioctl.boot.cmdline` says so in its
#: plans): GRUB's defaults file, grubby, or /etc/kernel/cmdline
EDIT_GRUB, EDIT_GRUBBY, EDIT_KERNEL_CMDLINE = "grub", "grubby", "kernel-cmdline"
CMDLINE_EDITOR = {GRUBBY: EDIT_GRUBBY, PROXMOX: EDIT_KERNEL_CMDLINE, SYSTEMD_BOOT: EDIT_KERNEL_CMDLINE,
                  DEBIAN_GRUB: EDIT_GRUB, GRUB2: EDIT_GRUB}


def boot_setup(host: Host) -> str:
    """How this host's kernel command line is configured: one of :data:`BOOT_SETUPS`."""
    entries = [n for n in host.listdir("/boot/loader/entries") if n.endswith(".conf")]
    if find_tool(host, "grubby") and entries:
        return GRUBBY
    if host.exists("/etc/kernel/cmdline"):
        return PROXMOX if find_tool(host, "proxmox-boot-tool") else SYSTEMD_BOOT
    if host.exists("/etc/default/grub"):
        if find_tool(host, "update-grub") or distro_family(host) & {"debian", "ubuntu"}:
            return DEBIAN_GRUB
        return GRUB2
    return UNKNOWN_SETUP


def cmdline_editor(host: Host) -> str | None:
    """How vfioctl edits this host's kernel command line (:data:`EDIT_GRUB`, :data:`EDIT_GRUBBY`,
    :data:`EDIT_KERNEL_CMDLINE`); None when the set-up is unknown."""
    return CMDLINE_EDITOR.get(boot_setup(host))


def grub_regenerate_command(host: Host) -> str:
    if find_tool(host, "update-grub"):
        return "update-grub"
    if find_tool(host, "grub2-mkconfig"):
        return "grub2-mkconfig -o /boot/grub2/grub.cfg"
    return "grub-mkconfig -o /boot/grub/grub.cfg"


def initramfs_tool(host: Host) -> str | None:
    """Which initramfs builder this host uses: the installed tool first, then os-release."""
    if find_tool(host, "update-initramfs"):
        return "initramfs-tools"
    if find_tool(host, "dracut"):
        return "dracut"
    if find_tool(host, "mkinitcpio"):
        return "mkinitcpio"
    family = distro_family(host)
    if family & {"debian", "ubuntu"}:
        return "initramfs-tools"
    if family & {"fedora", "rhel", "centos", "rocky", "almalinux", "suse", "opensuse"}:
        return "dracut"
    if family & {"arch"}:
        return "mkinitcpio"
    return None


# ------------------------------------------------------------------ identity
_MACHINE_ID = re.compile(r"[0-9a-f]{32}")


def machine_id(host: Host) -> str | None:
    """The host's /etc/machine-id (32 lowercase hex digits, machine-id(5)), or None when it is
    missing, empty ("uninitialized" on a first boot) or not of that form."""
    def compute() -> str | None:
        text = host.read("/etc/machine-id", default="").strip()
        return text if _MACHINE_ID.fullmatch(text) else None

    return host.cached("facts:machine-id", compute)
