"""PCI reset methods as data, and what a bus reset of a device's bus reaches.

Pure: names and a topology in, descriptions and a :class:`ResetReach` out.

Two different resets matter for device assignment, and they reach different
sets of functions:

* **The kernel's per-function reset** (sysfs ``reset``; ``VFIO_DEVICE_RESET``;
  what vfio-pci does when a device is opened and closed).  drivers/pci/pci-sysfs.c
  ``reset_store`` calls ``pci_reset_function``, which runs
  ``__pci_reset_function_locked``: it tries ``dev->reset_methods[]`` in order
  (what sysfs ``reset_method`` lists; the names index drivers/pci/pci.c
  ``pci_reset_fn_methods[]``) until one does not return -ENOTTY.  Even the
  ``bus`` method resets only this function: ``pci_parent_bus_reset`` returns
  -ENOTTY when the device is on a root bus, is itself a bridge
  (``dev->subordinate``), or shares its bus with any other device, and
  ``pci_dev_reset_slot_function`` likewise for a multi-function device.  The
  list is probed once, at enumeration (drivers/pci/probe.c
  ``pci_init_capabilities`` -> ``pci_init_reset_methods``, from
  ``pci_device_add`` before the device joins ``bus->devices``), so the first
  function found on a bus may list ``bus`` although the functions enumerated
  after it make that method fail: of two e1000 behind one pcie-pci-bridge the
  first reports ``bus`` and the second nothing; a GPU at 01:00.0 reports ``bus``
  and its audio function at 01:00.1 nothing.  (A patch posted upstream in
  2025 makes ``pci_device_add`` re-probe the first function when a second one
  joins its bus; kernels without it, Debian's 6.1 among them, keep the stale
  entry.  :func:`effective_methods` drops it either way.)  With no method at all the
  kernel creates neither ``reset`` nor ``reset_method``
  (``pci_dev_reset_attr_is_visible``, ``pci_dev_reset_method_attr_is_visible``:
  ``pci_reset_supported``).

* **VFIO's hot reset** (``VFIO_DEVICE_PCI_HOT_RESET``, what QEMU does for a
  device without FLR before falling back to a PM reset: hw/vfio/pci.c
  ``vfio_pci_reset`` -> ``vfio_pci_hot_reset_one``).
  drivers/vfio/pci/vfio_pci_core.c ``vfio_pci_dev_set_hot_reset`` calls
  ``pci_reset_bus``: a slot reset or a secondary bus reset through the parent
  bridge, which resets every function on the bus and everything below the
  bridges on it (``vfio_pci_for_each_slot_or_bus`` walks them with
  ``pci_walk_bus``).  It refuses (-EINVAL) unless every device so reached is
  bound to a vfio-pci driver in the same device set
  (``vfio_pci_dev_set_resettable``; a bridge never is:
  ``vfio_pci_core_register_device`` takes only normal headers), and unless
  each one is in a group the caller has opened (``vfio_dev_in_groups``; for
  an iommufd user: bound to, or grouped with a device bound to, the same
  iommufd context).  In practice: every function
  the reset reaches must be on vfio-pci and assigned to the same VM.  On a
  root bus there is no parent bridge and no bus reset at all (the device set
  is the device alone: ``vfio_pci_core_register_device``).  When the last user
  closes the set, vfio-pci tries the same bus reset by itself for devices
  that need one (``vfio_pci_dev_set_try_reset``).

A slot reset (hot-plug slot, ``pci_reset_hotplug_slot``) reaches what sits
below that slot; on PCIe a slot is a downstream or root port, so its reach is
the same as the bus below the port, which is what :func:`hot_reset_reach`
computes.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfioctl.base.errors import InvalidInput
from vfioctl.base.names import is_reset_method_name, is_vfio_driver
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress
from vfioctl.pci.function import UNKNOWN_RESET
from vfioctl.pci.topology import read_topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Mapping

    from vfioctl.pci.topology import Topology


SCOPE_FUNCTION = "function"
#: needs the function alone on its bus or slot (the kernel refuses it otherwise)
SCOPE_BUS = "bus"

#: what :attr:`vfioctl.pci.device.PciDevice.reset_method` returns on kernels before 5.15
#: (a ``reset`` file but no ``reset_method``): some method works, which is unknown
UNKNOWN = UNKNOWN_RESET



@dataclass(frozen=True)
class ResetMethod:
    name: str
    scope: str
    #: the function in drivers/pci that implements it
    source: str
    description: str


#: drivers/pci/pci.c pci_reset_fn_methods[], in the kernel's order ("acpi" came with
#: reset_method in 5.15, "cxl_bus" later; older kernels list a subset).  The kernel
#: tries them in this order unless someone wrote another order to reset_method.
METHODS: tuple[ResetMethod, ...] = (
    ResetMethod(
        "device_specific", SCOPE_FUNCTION, "drivers/pci/quirks.c pci_dev_specific_reset",
        "a reset written for this device model (the kernel's quirk table, or a module such as "
        "vendor-reset that hooks it); resets this function only",
    ),
    ResetMethod(
        "acpi", SCOPE_FUNCTION, "drivers/pci/pci-acpi.c pci_dev_acpi_reset",
        "the platform firmware's ACPI _RST method for this device; resets this function only",
    ),
    ResetMethod(
        "flr", SCOPE_FUNCTION, "drivers/pci/pci.c pcie_reset_flr",
        "PCIe Function Level Reset (FLR bit in Device Capabilities); resets this function only, "
        "the reset VFIO and QEMU prefer",
    ),
    ResetMethod(
        "af_flr", SCOPE_FUNCTION, "drivers/pci/pci.c pci_af_flr",
        "Function Level Reset through the Advanced Features capability (conventional PCI); "
        "resets this function only",
    ),
    ResetMethod(
        "pm", SCOPE_FUNCTION, "drivers/pci/pci.c pci_pm_reset",
        "power-state cycle D3hot -> D0 (offered only when the device clears No_Soft_Reset); "
        "how much state it clears is up to the device, so QEMU tries a bus reset before it",
    ),
    ResetMethod(
        "bus", SCOPE_BUS, "drivers/pci/pci.c pci_reset_bus_function",
        "secondary bus reset through the parent bridge, or a hot-plug slot reset; the kernel "
        "allows it only while this function is alone on its bus or slot and is not a bridge "
        "(pci_parent_bus_reset, pci_dev_reset_slot_function), so it never resets another function",
    ),
    ResetMethod(
        "cxl_bus", SCOPE_BUS, "drivers/pci/pci.c cxl_reset_bus_function",
        "bus reset of a CXL device whose port masks secondary bus reset (unmask, reset, restore); "
        "the same rule as 'bus': only while the function is alone",
    ),
)
BY_NAME = {m.name: m for m in METHODS}
FUNCTION_METHODS = frozenset(m.name for m in METHODS if m.scope == SCOPE_FUNCTION)
BUS_METHODS = frozenset(m.name for m in METHODS if m.scope == SCOPE_BUS)
#: function-scope methods that reset a device thoroughly ("pm" depends on the device)
STRONG_METHODS = FUNCTION_METHODS - {"pm"}


def describe_method(name: str) -> str:
    """One line on what the kernel's reset method *name* does and what it reaches."""
    m = BY_NAME.get(name)
    if m is not None:
        return f"{m.name}: {m.description} ({m.source})"
    if name == UNKNOWN:
        return ("unknown: the kernel predates reset_method (5.15); its reset file says some method "
                "resets this function alone, not which")
    shown = name if is_reset_method_name(name) else repr(name)
    return f"{shown}: a reset method vfioctl does not know (not in drivers/pci/pci.c pci_reset_fn_methods[])"


def function_reset_available(methods: Iterable[str]) -> bool:
    """A method that resets this function without a bus reset: device_specific, acpi, flr, af_flr or pm."""
    return any(m in FUNCTION_METHODS for m in methods)


@dataclass(frozen=True)
class PciNode:
    """What the reach of a reset needs to know of one PCI function.

    *parent* is the bridge whose secondary bus the function sits on: the
    directory above it in /sys/devices (``.../0000:00:1c.0/0000:01:00.0``);
    None when the function is on a root bus (``.../pci0000:00/0000:00:02.0``).
    """

    is_bridge: bool = False
    #: the function's bus number; None: the one in its address (they must agree)
    bus: int | None = None
    #: bridges only: the bus right below it and the highest bus below it
    secondary_bus: int | None = None
    subordinate_bus: int | None = None
    iommu_group: int | None = None
    driver: str | None = None
    parent: PciAddress | str | None = None


#: how a reached function relates to the target
SAME_SLOT = "same slot"
SAME_BUS = "same bus"
BELOW_BRIDGE = "below a bridge"


@dataclass(frozen=True)
class ReachedFunction:
    address: PciAddress
    iommu_group: int | None
    driver: str | None
    is_bridge: bool
    relation: str
    #: in the target's IOMMU group
    same_group: bool

    @property
    def on_vfio(self) -> bool:
        """Bound to vfio-pci or a vfio variant driver (what a VFIO hot reset requires)."""
        return is_vfio_driver(self.driver)

    def describe(self) -> str:
        group = f"group {self.iommu_group}" if self.iommu_group is not None else "no IOMMU group"
        if self.same_group:
            group += ", same group"
        kind = "bridge, " if self.is_bridge else ""
        return f"{self.address} ({kind}{group}, driver {self.driver or 'none'}, {self.relation})"

    def to_dict(self) -> dict:
        return {
            "address": str(self.address),
            "iommu_group": self.iommu_group,
            "driver": self.driver,
            "is_bridge": self.is_bridge,
            "relation": self.relation,
            "same_group": self.same_group,
            "on_vfio": self.on_vfio,
        }


@dataclass(frozen=True)
class ResetReach:
    """What a bus (or slot) reset of the target's bus would reset besides the target."""

    target: PciAddress
    target_group: int | None
    target_is_bridge: bool
    #: the bridge whose secondary bus the target is on; None on a root bus
    parent_bridge: PciAddress | None
    #: (secondary, subordinate) bus numbers the reset covers; None on a root bus
    buses: tuple[int, int] | None
    reached: tuple[ReachedFunction, ...]
    notes: tuple[str, ...] = ()

    @property
    def root_bus(self) -> bool:
        """No parent bridge: no bus reset is possible (pci_parent_bus_reset, pci_reset_bus)."""
        return self.parent_bridge is None

    @property
    def alone(self) -> bool:
        """A bus reset is possible and reaches nothing but the target."""
        return not self.root_bus and not self.reached

    @property
    def kernel_bus_method_works(self) -> bool:
        """The kernel's own 'bus' method would run now (pci_parent_bus_reset's conditions)."""
        return self.alone and not self.target_is_bridge

    @property
    def bridges(self) -> tuple[ReachedFunction, ...]:
        return tuple(r for r in self.reached if r.is_bridge)

    @property
    def other_groups(self) -> tuple[int, ...]:
        """IOMMU groups other than the target's that the reset reaches."""
        return tuple(sorted({r.iommu_group for r in self.reached
                             if r.iommu_group is not None and not r.same_group}))

    @property
    def groups_needed(self) -> tuple[int, ...]:
        """Every group a VFIO hot reset needs opened by the same user, the target's included."""
        groups = {r.iommu_group for r in self.reached if r.iommu_group is not None and not r.is_bridge}
        if self.target_group is not None:
            groups.add(self.target_group)
        return tuple(sorted(groups))

    def vfio_hot_reset_blockers(self) -> tuple[str, ...]:
        """Why VFIO_DEVICE_PCI_HOT_RESET cannot work here whatever is bound; () when it can."""
        out = []
        if self.target_is_bridge:
            # vfio_pci_core_register_device refuses any header but a normal one
            out.append(f"{self.target} is a bridge, which vfio-pci does not take")
        if self.root_bus:
            out.append(f"{self.target} is on root bus {self.target.bus:02x}: there is no parent bridge to reset")
        for r in self.bridges:
            out.append(f"the reset reaches bridge {r.address}, which cannot be bound to vfio-pci")
        for r in self.reached:
            if not r.is_bridge and r.iommu_group is None:
                out.append(f"the reset reaches {r.address}, which has no IOMMU group")
        return tuple(out)

    def vfio_hot_reset_needs(self) -> tuple[str, ...]:
        """What must be true for VFIO to do the hot reset: functions to bind, groups to own."""
        out = []
        unbound = [r for r in self.reached if not r.is_bridge and not r.on_vfio]
        if unbound:
            out.append("bind to vfio-pci: " + ", ".join(f"{r.address} (now {r.driver or 'no driver'})"
                                                        for r in unbound))
        if len(self.groups_needed) > 1 or self.other_groups:
            out.append("one VM must own groups " + ", ".join(str(g) for g in self.groups_needed))
        return tuple(out)

    def describe(self) -> str:
        if self.root_bus:
            return f"{self.target} is on a root bus: no bus reset possible"
        assert self.buses is not None
        lo, hi = self.buses
        span = f"bus {lo:02x}" if lo == hi else f"buses {lo:02x}-{hi:02x}"
        if not self.reached:
            return f"a reset of {span} (below {self.parent_bridge}) reaches only {self.target}"
        return (f"a reset of {span} (below {self.parent_bridge}) also resets "
                + "; ".join(r.describe() for r in self.reached))

    def to_dict(self) -> dict:
        return {
            "target": str(self.target),
            "target_group": self.target_group,
            "root_bus": self.root_bus,
            "parent_bridge": str(self.parent_bridge) if self.parent_bridge else None,
            "buses": list(self.buses) if self.buses else None,
            "reached": [r.to_dict() for r in self.reached],
            "other_groups": list(self.other_groups),
            "vfio_hot_reset_blockers": list(self.vfio_hot_reset_blockers()),
            "notes": list(self.notes),
        }


def hot_reset_reach(target: PciAddress | str, devices: Mapping[PciAddress | str, PciNode]) -> ResetReach:
    """What a reset of *target*'s bus would also reset, in the topology *devices*.

    *devices* maps every PCI function of the host (bridges included) to its
    :class:`PciNode`; a function left out cannot be counted.  The reset is a
    secondary bus reset through the target's parent bridge (or a slot reset
    of the port above it, which reaches the same functions on PCIe): every
    function whose chain of parents passes through that bridge, which is its
    secondary bus and everything below the bridges on it
    (drivers/vfio/pci/vfio_pci_core.c ``vfio_pci_for_each_slot_or_bus`` ->
    ``pci_walk_bus``).  Functions whose bus number lies in the parent
    bridge's secondary..subordinate range are counted too, so that a
    missing parent link can only widen the reach, never hide a function.
    """
    tgt = PciAddress.parse(target)
    nodes: dict[PciAddress, PciNode] = {}
    parents: dict[PciAddress, PciAddress | None] = {}
    for a, n in devices.items():
        addr = PciAddress.parse(a)
        if n.bus is not None and n.bus != addr.bus:
            raise InvalidInput(f"reset reach: {addr} says bus {n.bus:#04x}, but its address is on bus "
                               f"{addr.bus:02x}")
        nodes[addr] = n
        parents[addr] = PciAddress.parse(n.parent) if n.parent is not None else None
    if tgt not in nodes:
        raise InvalidInput(f"reset reach: {tgt} is not among the {len(nodes)} devices given")
    me = nodes[tgt]
    parent = parents[tgt]
    notes: list[str] = []
    if parent is None:
        # drivers/pci/pci.c pci_parent_bus_reset and pci_bus_reset: no bus->self, no reset
        claim = sorted(a for a, n in nodes.items() if n.is_bridge and a.domain == tgt.domain
                       and n.secondary_bus == tgt.bus and a != tgt)
        if claim:
            notes.append(f"bridge {claim[0]} claims bus {tgt.bus:02x} as its secondary bus, but {tgt} "
                         "has no parent bridge: counted as a root-bus device")
        return ResetReach(tgt, me.iommu_group, me.is_bridge, None, None, (), tuple(notes))

    lo, hi = tgt.bus, tgt.bus
    pnode = nodes.get(parent)
    if pnode is None:
        notes.append(f"parent bridge {parent} is not among the devices given: "
                     "its bus range is unknown, only the functions below it by parent link are counted")
    elif pnode.secondary_bus == tgt.bus and pnode.subordinate_bus is not None and pnode.subordinate_bus >= lo:
        hi = pnode.subordinate_bus
    else:
        notes.append(f"bridge {parent} gives no usable secondary/subordinate bus for {tgt.bus:02x}: "
                     "only the functions below it by parent link are counted")

    def below_parent(a: PciAddress) -> bool:
        seen: set[PciAddress] = set()
        up = parents.get(a)
        while up is not None and up not in seen:  # a loop in hostile data ends here
            if up == parent:
                return True
            seen.add(up)
            up = parents.get(up)
        return False

    reached = []
    for a in sorted(nodes):
        if a == tgt or a == parent:
            continue
        # same domain and a bus number in the range: the same bus or one below it
        by_number = a.domain == tgt.domain and lo <= a.bus <= hi
        if not by_number and not below_parent(a):
            continue
        n = nodes[a]
        if parents[a] == parent and a.bus == tgt.bus:
            relation = SAME_SLOT if a.slot == tgt.slot else SAME_BUS
        else:
            relation = BELOW_BRIDGE
        same = me.iommu_group is not None and n.iommu_group == me.iommu_group
        reached.append(ReachedFunction(a, n.iommu_group, n.driver, n.is_bridge, relation, same))
    return ResetReach(tgt, me.iommu_group, me.is_bridge, parent, (lo, hi), tuple(reached), tuple(notes))


def effective_methods(methods: Iterable[str], reach: ResetReach | None) -> tuple[str, ...]:
    """The listed methods less the bus methods the kernel would refuse now.

    ``bus``/``cxl_bus`` were probed at enumeration; they fail (-ENOTTY) once the
    function is not alone on its bus.  Without a *reach* nothing is dropped.
    """
    out = []
    for m in methods:
        if m in BUS_METHODS and reach is not None and not reach.kernel_bus_method_works:
            continue
        out.append(m)
    return tuple(out)


# ------------------------------------------------------------------ reset reach
def reset_nodes(topology: Topology) -> dict[PciAddress | str, PciNode]:
    out: dict[PciAddress | str, PciNode] = {}
    for a, f in topology.functions.items():
        # a VF sits on its PF's bus (or one the PF's ARI range names); its parent is the PF's parent
        parent = f.parent
        if f.physfn is not None and f.physfn in topology.functions:
            parent = topology.functions[f.physfn].parent
        out[a] = PciNode(is_bridge=f.is_bridge, bus=a.bus,
                         secondary_bus=f.config.secondary_bus if f.is_bridge else None,
                         subordinate_bus=f.config.subordinate_bus if f.is_bridge else None,
                         iommu_group=f.iommu_group, driver=f.driver, parent=parent)
    return out


def reset_reaches(host: Host, addresses: list[PciAddress]) -> dict[PciAddress, ResetReach]:
    nodes = reset_nodes(read_topology(host, extended=False))  # bus numbers only: no ACS
    return {a: hot_reset_reach(a, nodes) for a in addresses if a in nodes}
