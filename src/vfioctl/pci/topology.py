"""The PCI topology as the IOMMU grouping rules see it: every function with its parent
bridge, root bus, config space (capabilities, ACS) and the kernel's group, read once.

:func:`read_topology` is the reader; :mod:`vfioctl.iommu.replay` replays the kernel's
grouping over it, and resets and the topology picture take their views from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vfioctl.base.errors import NotFound
from vfioctl.base.text import ascii_int, is_ascii_int
from vfioctl.host.core import Host
from vfioctl.host.kernel import cmdline
from vfioctl.pci import config as pcicfg
from vfioctl.pci.address import PciAddress
from vfioctl.pci.config import (
    ConfigSpace,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable


PCI_DEVICES = "/sys/bus/pci/devices"


PCI_SLOTS = "/sys/bus/pci/slots"


_ROOT_BUS = re.compile(r"pci([0-9a-f]{4,8}):([0-9a-f]{2})")


_FULL_ADDR = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")


_SLOT_ADDR = re.compile(r"([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])")


_SLOT_NAME = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


# ============================================================== topology
@dataclass(frozen=True)
class PciFunction:
    """One function as the topology sees it: where it sits, its config space, its group."""

    address: PciAddress
    #: the bridge above it (sysfs parent folder); None on a root bus
    parent: PciAddress | None
    #: the root bus folder (``pci0000:00``) for a function on a root bus
    root_bus: str | None
    config: ConfigSpace
    vendor_id: int | None
    device_id: int | None
    subsystem_vendor_id: int | None
    subsystem_device_id: int | None
    class_code: int | None
    physfn: PciAddress | None
    iommu_group: int | None
    driver: str | None

    @property
    def is_vf(self) -> bool:
        return self.physfn is not None

    @property
    def header_type(self) -> int | None:
        if self.config.header_type is not None:
            return self.config.header_type
        sub = (self.class_code or 0) >> 8
        return 1 if sub in (0x0604, 0x0609) else 2 if sub == 0x0607 else 0

    @property
    def is_bridge(self) -> bool:
        return (self.header_type or 0) != 0

    @property
    def ids(self) -> str:
        return f"{_h4(self.vendor_id)}:{_h4(self.device_id)}"


def _h4(v: int | None) -> str:
    return "????" if v is None else f"{v:04x}"


class Topology:
    """Every PCI function, its parent bridge and config space, and the kernel's groups."""

    def __init__(self, functions: Iterable[PciFunction], *, iommu_enabled: bool,
                 cmdline: Iterable[str] = (), ivrs: bool = False, kernel: str = "",
                 slots: dict[tuple[int, int, int], str] | None = None) -> None:
        self.functions: dict[PciAddress, PciFunction] = {
            f.address: f for f in sorted(functions, key=lambda f: f.address)}
        self.iommu_enabled = iommu_enabled
        self.cmdline = tuple(cmdline)
        #: an ACPI IVRS table (AMD IOMMU) exists: the AMD southbridge ACS quirk applies
        self.ivrs = ivrs
        self.kernel = kernel
        self.slots = dict(slots or {})
        self._children: dict[PciAddress, list[PciAddress]] = {}
        self._vfs: dict[PciAddress, list[PciAddress]] = {}
        self._kernel_groups: dict[int, list[PciAddress]] | None = None
        for f in self.functions.values():
            if f.physfn is not None and f.physfn in self.functions:
                self._vfs.setdefault(f.physfn, []).append(f.address)
            elif f.parent is not None and f.parent != f.address:
                self._children.setdefault(f.parent, []).append(f.address)

    def __contains__(self, addr: object) -> bool:
        return addr in self.functions

    def get(self, addr: PciAddress) -> PciFunction:
        try:
            return self.functions[addr]
        except KeyError:
            raise NotFound(f"no PCI device {addr} on this host ({PCI_DEVICES}/{addr} does not exist); "
                           "`vfioctl list` shows the devices present") from None

    def children(self, addr: PciAddress) -> list[PciAddress]:
        """Functions directly behind bridge *addr* (VFs excluded: see :meth:`vfs`)."""
        return list(self._children.get(addr, ()))

    def vfs(self, addr: PciAddress) -> list[PciAddress]:
        return list(self._vfs.get(addr, ()))

    def tree_parent(self, addr: PciAddress) -> PciAddress | None:
        """The parent in the displayed tree: the PF for a VF, else the bridge above."""
        f = self.functions[addr]
        if f.physfn is not None and f.physfn in self.functions:
            return f.physfn
        return f.parent

    def root_buses(self) -> list[str]:
        """Root bus names (``pci0000:00``), sorted."""
        names = {f.root_bus for f in self.functions.values() if f.root_bus and f.physfn is None}
        for f in self.functions.values():
            if f.parent is None and f.root_bus is None and f.physfn is None:
                names.add(f"pci{f.address.domain:04x}:{f.address.bus:02x}")
        return sorted(names)

    def on_root_bus(self, name: str) -> list[PciAddress]:
        out = []
        for f in self.functions.values():
            if f.physfn is not None or f.parent is not None:
                continue
            rb = f.root_bus or f"pci{f.address.domain:04x}:{f.address.bus:02x}"
            if rb == name:
                out.append(f.address)
        return out

    def upstream(self, addr: PciAddress) -> list[PciAddress]:
        """The bridges between *addr* and the root complex, nearest first (loop-guarded)."""
        out: list[PciAddress] = []
        f = self.functions.get(addr)
        seen = {addr}
        while f is not None and f.parent is not None and f.parent not in seen and len(out) < 64:
            out.append(f.parent)
            seen.add(f.parent)
            f = self.functions.get(f.parent)
        return out

    def root_of(self, addr: PciAddress) -> str:
        chain = [addr] + self.upstream(addr)
        top = self.functions.get(chain[-1])
        if top is not None and top.root_bus:
            return top.root_bus
        a = chain[-1]
        return f"pci{a.domain:04x}:{a.bus:02x}"

    def kernel_groups(self) -> dict[int, list[PciAddress]]:
        """Group number -> members, as the kernel formed them (computed once; callers must not
        change what they get)."""
        if self._kernel_groups is None:
            out: dict[int, list[PciAddress]] = {}
            for f in self.functions.values():
                if f.iommu_group is not None:
                    out.setdefault(f.iommu_group, []).append(f.address)
            self._kernel_groups = dict(sorted(out.items()))
        return self._kernel_groups

    def slot_name(self, addr: PciAddress) -> str | None:
        """The physical slot name (/sys/bus/pci/slots) of the card at *addr*, if firmware names it."""
        return self.slots.get((addr.domain, addr.bus, addr.slot))

    def port_slot_name(self, port: PciAddress) -> str | None:
        """The physical slot a port leads to: the slot of the bus behind it."""
        f = self.functions.get(port)
        if f is None or f.config.secondary_bus is None:
            return None
        return self.slots.get((port.domain, f.config.secondary_bus, 0))

    @property
    def acs_override(self) -> list[str]:
        return [p for p in self.cmdline if p.split("=", 1)[0].replace("-", "_") == "pcie_acs_override"]


def read_topology(host: Host, *, extended: bool = True) -> Topology:
    """Read every function under /sys/bus/pci/devices through *host*.  Without *extended* only
    the first 256 bytes of config space are read: enough for the tree and bus numbers (what a
    reset's reach needs), not for ACS (what grouping needs)."""
    funcs: list[PciFunction] = []
    names = [n for n in host.listdir(PCI_DEVICES) if _FULL_ADDR.fullmatch(n)]
    # functions that share a slot are multifunction to the kernel whatever their header says
    slot_size: dict[str, int] = {}
    for name in names:
        slot_size[name[:-2]] = slot_size.get(name[:-2], 0) + 1
    for name in names:
        addr = PciAddress.parse(name)
        base = f"{PCI_DEVICES}/{name}"
        parts = _device_path(host, base)
        parent = root = None
        up = parts[-2] if len(parts) >= 2 else ""
        if _FULL_ADDR.fullmatch(up):
            parent = PciAddress.parse(up)
        elif _ROOT_BUS.fullmatch(up):
            root = up
        physfn = _link_addr(host, f"{base}/physfn")
        # a VF is never multifunction (drivers/pci/iov.c pci_iov_add_virtfn), whatever shares its slot
        if extended:
            cfg = _read_config(host, f"{base}/config",
                               shares_slot=physfn is None and (slot_size[name[:-2]] > 1 or addr.function != 0))
        else:
            cfg = pcicfg.parse(host.read_bytes(f"{base}/config", 256, default=b""), extended_read=False)
        ht0 = cfg.header_type == 0
        funcs.append(PciFunction(
            address=addr, parent=parent, root_bus=root, config=cfg,
            vendor_id=cfg.vendor_id if cfg.vendor_id is not None else _attr_hex(host, base, "vendor"),
            device_id=cfg.device_id if cfg.device_id is not None else _attr_hex(host, base, "device"),
            subsystem_vendor_id=cfg.subsystem_vendor_id if ht0 and cfg.subsystem_vendor_id is not None
            else _attr_hex(host, base, "subsystem_vendor"),
            subsystem_device_id=cfg.subsystem_device_id if ht0 and cfg.subsystem_device_id is not None
            else _attr_hex(host, base, "subsystem_device"),
            class_code=cfg.class_code if cfg.class_code is not None else _attr_hex(host, base, "class"),
            physfn=physfn,
            iommu_group=_link_int(host, f"{base}/iommu_group"),
            driver=host.link_name(f"{base}/driver"),
        ))
    slots: dict[tuple[int, int, int], str] = {}
    for s in host.listdir(PCI_SLOTS):
        text = host.read(f"{PCI_SLOTS}/{s}/address", default="")
        m = _SLOT_ADDR.fullmatch(text.lower())
        if m and _SLOT_NAME.fullmatch(s):
            slots[(int(m[1], 16), int(m[2], 16), int(m[3], 16))] = s
    return Topology(
        funcs,
        iommu_enabled=bool([g for g in host.listdir("/sys/kernel/iommu_groups") if is_ascii_int(g)]),
        cmdline=cmdline(host),
        ivrs=host.exists("/sys/firmware/acpi/tables/IVRS"),
        kernel=host.uname_release(),
        slots=slots,
    )


def _read_config(host: Host, path: str, *, shares_slot: bool) -> pcicfg.ConfigSpace:
    """A function's config space, as much of it as the grouping rules read.

    The first 256 bytes, then all of it (4096 is the most there is; a hostile snapshot's bigger
    file stops there) only for what may have extended capabilities the rules look at: bridges
    and ports (ACS on the path), multifunction devices (ACS between functions: the header's
    bit, or other functions in the slot, or a function number other than 0), and anything
    whose header did not parse whole.  A single-function endpoint's ACS plays no part in any
    group (drivers/iommu/iommu.c looks at it only for multifunction devices), and on real
    hardware every 4-byte word of config space read through sysfs is a config cycle (sysfs
    ``config`` reads go through pci_user_read_config_dword): 1,024 of them for the whole
    extended space, 64 for the first 256 bytes."""
    if shares_slot:
        return pcicfg.parse(host.read_bytes(path, 4096, default=b""))
    head = host.read_bytes(path, 256, default=b"")
    if len(head) < 256:
        return pcicfg.parse(head)
    cfg = pcicfg.parse(head, extended_read=False)
    if cfg.header_type == 0 and cfg.multifunction is False and cfg.capabilities_complete:
        return cfg
    return pcicfg.parse(host.read_bytes(path, 4096, default=b""))


def _device_path(host: Host, base: str) -> list[str]:
    """The components of the sysfs device folder *base* (a /sys/bus/pci/devices link) points at:
    its parent is the bridge or the root bus."""
    return host.sysfs_target(base).rstrip("/").split("/")


def _attr_hex(host: Host, base: str, name: str) -> int | None:
    text = host.read(f"{base}/{name}", default="")
    try:
        return int(text, 16) if re.fullmatch(r"(0x)?[0-9a-fA-F]{1,8}", text) else None
    except ValueError:
        return None


def _link_addr(host: Host, path: str) -> PciAddress | None:
    name = host.link_name(path)
    return PciAddress.parse(name) if name and _FULL_ADDR.fullmatch(name) else None


def _link_int(host: Host, path: str) -> int | None:
    name = host.link_name(path)
    return ascii_int(name)
