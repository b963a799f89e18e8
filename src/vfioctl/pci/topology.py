"""The PCI topology as the IOMMU grouping rules see it: every function with its parent
bridge, root bus, config space (capabilities, ACS) and the kernel's group, read once.

:func:`read_topology` is the reader: it takes the one record of each function
(:class:`vfioctl.pci.function.PciFunction`) and reads config space as far as grouping needs;
:mod:`vfioctl.iommu.replay` replays the kernel's grouping over it, and resets and the topology
picture take their views from it.
"""

from __future__ import annotations

import re

from vfioctl.base.errors import NotFound
from vfioctl.host.core import Host
from vfioctl.host.kernel import cmdline, iommu_group_numbers
from vfioctl.pci.address import PciAddress
from vfioctl.pci.function import PCI_DEVICES, PciFunction, read_functions, root_bus_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

__all__ = ["PCI_SLOTS", "PciFunction", "Topology", "read_topology"]

PCI_SLOTS = "/sys/bus/pci/slots"


_SLOT_ADDR = re.compile(r"([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])")


_SLOT_NAME = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


# ============================================================== topology
class Topology:
    """Every PCI function, its parent bridge and config space, and the kernel's groups."""

    def __init__(self, functions: Iterable[PciFunction], *, iommu_enabled: bool,
                 cmdline: Iterable[str] = (), ivrs: bool = False, kernel: str = "",
                 slots: dict[tuple[int, int, int], str] | None = None,
                 root_advice: str | None = "run as root (sudo vfioctl ...)") -> None:
        self.functions: dict[PciAddress, PciFunction] = {
            f.address: f for f in sorted(functions, key=lambda f: f.address)}
        self.iommu_enabled = iommu_enabled
        self.cmdline = tuple(cmdline)
        #: an ACPI IVRS table (AMD IOMMU) exists: the AMD southbridge ACS quirk applies
        self.ivrs = ivrs
        self.kernel = kernel
        self.slots = dict(slots or {})
        #: what would give a fuller read of config space (Host.root_advice); None: nothing would
        self.root_advice = root_advice
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
                names.add(root_bus_of(f.address))
        return sorted(names)

    def on_root_bus(self, name: str) -> list[PciAddress]:
        out = []
        for f in self.functions.values():
            if f.physfn is not None or f.parent is not None:
                continue
            rb = f.root_bus or root_bus_of(f.address)
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
        return root_bus_of(chain[-1])

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


def read_topology(host: Host, *, extended: bool = True,
                  functions: dict[PciAddress, PciFunction] | None = None) -> Topology:
    """Every function under /sys/bus/pci/devices, read through its record (those of *functions*,
    a reading of the host the caller has, or a new one).  Without *extended* only the first 256
    bytes of config space are read: enough for the tree and bus numbers (what a reset's reach
    needs), not for ACS (what grouping needs)."""
    funcs = list((functions if functions is not None else read_functions(host)).values())
    for f in funcs:
        # config space first, as deep as this reading needs: the header type, the bus numbers
        # and the capabilities then come from that one read
        if extended:
            f.read_grouping_config()
        else:
            f.read_config()
    slots: dict[tuple[int, int, int], str] = {}
    for s in host.listdir(PCI_SLOTS):
        text = host.read(f"{PCI_SLOTS}/{s}/address", default="")
        m = _SLOT_ADDR.fullmatch(text.lower())
        if m and _SLOT_NAME.fullmatch(s):
            slots[(int(m[1], 16), int(m[2], 16), int(m[3], 16))] = s
    return Topology(
        funcs,
        iommu_enabled=bool(iommu_group_numbers(host)),
        cmdline=cmdline(host),
        ivrs=host.exists("/sys/firmware/acpi/tables/IVRS"),
        kernel=host.uname_release(),
        slots=slots,
        root_advice=host.root_advice(),
    )
