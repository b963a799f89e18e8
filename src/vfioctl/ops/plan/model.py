"""What a plan is: the changes it makes (for display) and the steps that make them, plus the
checks every planner shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.base.errors import InvalidInput, valid
from vfioctl.base.names import (
    is_reset_method_name,
    is_vfio_driver_name,
    module_name,
)
from vfioctl.base.text import with_notes
from vfioctl.ops.state import DeviceState, HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.device import (
    Bind,
    LoadModule,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import BUS_METHODS, ResetReach, effective_methods

TYPE_CHECKING = False


DEFAULT_DRIVER = "vfio-pci"


@dataclass
class Change:
    """One device (or PF) the plan changes, for display."""

    address: str
    ids: str
    group: int | None
    role: str
    before: str | None
    after: str | None
    why: str = ""

    def to_dict(self) -> dict:
        return {
            "address": self.address, "id": self.ids, "iommu_group": self.group, "role": self.role,
            "from": self.before, "to": self.after, "why": self.why or None,
        }


@dataclass
class Plan:
    action: str
    changes: list[Change] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No step would change the host."""
        return not any(s.writes for s in self.steps)

    def extend(self, other: "Plan") -> None:
        """Append *other*'s changes and steps; a module this plan loads already is loaded once
        (each sub-plan was made from the same state, where the module was not yet there)."""
        self.changes += other.changes
        loading = {s.module for s in self.steps if isinstance(s, LoadModule)}
        self.steps += [s for s in other.steps if not (isinstance(s, LoadModule) and s.module in loading)]
        self.notes += [n for n in other.notes if n not in self.notes]

    def to_dict(self) -> dict:
        return {
            "schema": "vfioctl.plan/1",
            "action": self.action,
            "changes": [c.to_dict() for c in self.changes],
            "steps": [s.to_dict() for s in self.steps],
            "notes": self.notes,
        }

    def render(self) -> str:
        if self.empty:
            return with_notes([f"{self.action}: no changes needed"], self.notes, "  ")
        lines = [f"Plan ({self.action}): {len(self.changes)} change(s)"]
        for c in self.changes:
            grp = "-" if c.group is None else str(c.group)
            why = f"  {c.why}" if c.why else ""
            lines.append(f"  {c.address}  [{c.ids}]  group {grp}  {c.role:<9}  {c.before or 'none'} -> {c.after or 'none'}{why}")
        lines.append("Steps:")
        for n, s in enumerate(self.steps, 1):
            lines.append(f"  {n:>2}. {s.line()}")
        return with_notes(lines, self.notes)


def check_driver(driver: str) -> str:
    return valid(driver, is_vfio_driver_name(driver), f"--driver {driver!r} is not a vfio driver (expected vfio-pci, "
                 "a vfio variant like mlx5_vfio_pci, or pci-stub)")


def check_reset_methods(dev: DeviceState, methods: list[str] | None,
                        reach: ResetReach | None = None) -> tuple[str, ...] | None:
    """A reset-method choice the kernel offers for *dev* and would accept now, or InvalidInput
    before any write.  A bus method listed since enumeration is stale once the function shares
    its bus (drivers/pci/pci.c pci_parent_bus_reset): the kernel's reset_method_store probes each
    name and refuses it with EINVAL, so it is refused here, from *reach*; without a *reach* a
    bus method cannot be judged and is refused too."""
    if methods is None:
        return None
    ms = tuple(m.strip() for m in methods)
    if not ms or not all(map(is_reset_method_name, ms)) or len(set(ms)) != len(ms):
        raise InvalidInput(f"reset method list {','.join(methods)!r}: give kernel method names, each once "
                           "(e.g. flr,bus)")
    if not dev.has_reset_method:
        raise InvalidInput(f"{dev.address}: this kernel has no {dev.sysfs}/reset_method (5.15 or newer is needed "
                           "to choose reset methods)")
    offered = set(dev.reset_methods)
    bad = [m for m in ms if m not in offered]
    if bad:
        have = " ".join(dev.reset_methods) or "none"
        raise InvalidInput(f"{dev.address}: the kernel does not offer reset method {', '.join(bad)} for it "
                           f"(it offers: {have})")
    bus = [m for m in ms if m in BUS_METHODS]
    if bus and reach is None:
        raise InvalidInput(f"{dev.address}: cannot tell whether the kernel still accepts '{bus[0]}' (the bus "
                           "topology around it was not read); choose a function reset, or none")
    stale = [m for m in bus if m not in effective_methods(ms, reach)]
    if stale:
        assert reach is not None
        why = (f"it shares its bus with {', '.join(str(r.address) for r in reach.reached[:4])}" if reach.reached
               else "it is a bridge or on a root bus")
        usable = [m for m in dev.reset_methods if m in effective_methods(dev.reset_methods, reach)]
        raise InvalidInput(f"{dev.address}: reset method '{stale[0]}' is listed but stale: it was probed at "
                           f"enumeration and the kernel refuses it now ({why}; drivers/pci/pci.c "
                           f"pci_parent_bus_reset); usable: {' '.join(usable) or 'none'} (`vfioctl assess "
                           f"{dev.address.short}`)")
    return ms


# ------------------------------------------------------------------ hide
def load_steps(state: HostState, driver: str, module: str | None = None) -> list[Step]:
    """The modprobe that registers *driver*, unless it is registered already."""
    return [] if state.driver_loaded(driver) else [LoadModule(module or module_name(driver), driver)]


def bind_back_steps(state: HostState, addr: PciAddress, driver: str, module: str | None) -> list[Step]:
    return load_steps(state, driver, module) + [Bind(addr, driver)]
