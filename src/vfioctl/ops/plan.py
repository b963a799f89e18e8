"""Pure planning: a :class:`~vfioctl.ops.state.HostState` and a request -> a :class:`Plan`.

Nothing here reads the host or writes: every function takes the state read
once (under the journal lock for a real run) and returns typed steps
(:mod:`vfioctl.ops.steps`) with what each must leave behind and how to undo it.
``--dry-run`` prints the plan; :func:`vfioctl.ops.executor.execute` carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.base.errors import HostNotReady, InUse, InvalidInput, Refused
from vfioctl.base.names import (
    is_reset_method_name,
    is_vfio_driver,
    is_vfio_driver_name,
    module_name,
)
from vfioctl.iommu.groups import ROLE_BRIDGE, driver_allows_assignment
from vfioctl.ops.journal import PROBE, DeviceRecord, SriovRecord
from vfioctl.ops.state import DeviceState, HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.device import (
    Bind,
    CheckGroupNode,
    LoadModule,
    NewId,
    Probe,
    RemoveId,
    ResetFunction,
    SetOverride,
    SetResetMethod,
    Unbind,
)
from vfioctl.ops.steps.journal import JournalCommit, JournalForget, JournalRecord
from vfioctl.ops.steps.sriov import SetAutoprobe, SetNumVfs
from vfioctl.pci.address import PciAddress

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
        self.changes += other.changes
        self.steps += other.steps
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
            lines = [f"{self.action}: no changes needed"]
            lines += [f"  note: {n}" for n in self.notes]
            return "\n".join(lines)
        lines = [f"Plan ({self.action}): {len(self.changes)} change(s)"]
        for c in self.changes:
            grp = "-" if c.group is None else str(c.group)
            why = f"  {c.why}" if c.why else ""
            lines.append(f"  {c.address}  [{c.ids}]  group {grp}  {c.role:<9}  {c.before or 'none'} -> {c.after or 'none'}{why}")
        lines.append("Steps:")
        for n, s in enumerate(self.steps, 1):
            lines.append(f"  {n:>2}. {s.line()}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


def check_driver(driver: str) -> str:
    if not is_vfio_driver_name(driver):
        raise InvalidInput(f"--driver {driver!r} is not a vfio driver (expected vfio-pci, a vfio variant like "
                           "mlx5_vfio_pci, or pci-stub)")
    return driver


def check_reset_methods(dev: DeviceState, methods: list[str] | None) -> tuple[str, ...] | None:
    """A reset-method choice the kernel offers for *dev*, or InvalidInput before any write."""
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
    return ms


# ------------------------------------------------------------------ hide
def _load(state: HostState, driver: str, module: str | None = None) -> list[Step]:
    """The modprobe that registers *driver*, unless it is registered already."""
    return [] if state.driver_loaded(driver) else [LoadModule(module or module_name(driver), driver)]


def _bind_back(state: HostState, addr: PciAddress, driver: str, module: str | None) -> list[Step]:
    return _load(state, driver, module) + [Bind(addr, driver)]


def _hide_device_steps(dev: DeviceState, driver: str, new_ids: set[str], rec: DeviceRecord) -> list[Step]:
    a = dev.address
    cur = dev.driver
    steps: list[Step] = []
    if dev.has_override:
        steps.append(SetOverride(a, driver, dev.driver_override))
        if cur:
            steps.append(Unbind(a, cur, dev.driver_module, dev.driver_override))
        steps.append(Probe(a, driver))
    else:
        # kernels before 3.16 have no driver_override: new_id is the only way
        if cur:
            steps.append(Unbind(a, cur, dev.driver_module, dev.driver_override))
        idv = dev.vendor_device.replace(":", " ")
        if idv not in new_ids:
            new_ids.add(idv)
            rec.added_ids.append([driver, idv])
            steps.append(NewId(a, driver, idv))
        else:
            steps.append(Bind(a, driver))
    return steps


def plan_hide(
    state: HostState,
    targets: list[PciAddress],
    *,
    group: bool = False,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
    origin: str = "hide",
    reset_method: list[str] | None = None,
    entry: str | None = None,
    allow_boot_vga: bool = False,
    entries: dict[PciAddress, str] | None = None,
) -> Plan:
    """Plan binding *targets* (and, with *group*, their whole IOMMU groups) to *driver*."""
    check_driver(driver)
    plan = Plan("hide")
    chosen: dict[PciAddress, DeviceState] = {}
    whys: dict[PciAddress, str] = {}
    for a in targets:
        dev = state.device(a)
        if dev.is_bridge:
            raise InvalidInput(
                f"{a} is a PCI bridge/port: vfio-pci does not take bridges, and a group "
                "stays viable with its bridges on their drivers; hide the endpoints behind it instead"
            )
        if dev.iommu_group is None:
            raise HostNotReady(
                f"{a} has no IOMMU group: the IOMMU is off on this host, so no device can be "
                "assigned safely; `vfioctl check` says how to enable it"
            )
        chosen[a] = dev
        whys[a] = "requested"
    methods = {a: check_reset_methods(d, reset_method) for a, d in chosen.items()}

    roles: dict[PciAddress, str] = {}
    for g in sorted({d.iommu_group for d in chosen.values() if d.iommu_group is not None}):
        members = state.members(g)
        left_on_host = []
        for m in members:
            roles[m.address] = m.role
            if m.role == ROLE_BRIDGE or m.address in chosen:
                continue
            if group:
                chosen[m.address] = state.device(m.address)
                whys[m.address] = f"{m.role} of group {g}" + (f" ({m.role} of {m.companion_of})" if m.companion_of else "")
            elif not driver_allows_assignment(m.driver):
                left_on_host.append(f"{m.address} ({m.driver})")
        if left_on_host:
            raise Refused(
                f"IOMMU group {g} would not be viable: {', '.join(left_on_host)} would stay on "
                f"a host driver; hide it too, or pass --group to take the whole group"
            )
        for m in members:
            if m.companion_of and m.address in chosen and m.companion_of in chosen:
                plan.notes.append(f"{m.address} is a companion function of {m.companion_of} (same slot): "
                                  "pass both to the same guest")
            elif m.role != ROLE_BRIDGE and m.address not in chosen:
                plan.notes.append(f"{m.address} stays unbound/{m.driver or 'none'} in group {g}")

    if driver == DEFAULT_DRIVER:
        for a, dev in sorted(chosen.items()):
            if dev.vfio_variants:
                plan.notes.append(
                    f"modules.alias names vfio variant driver(s) {', '.join(dev.vfio_variants)} for {a}; "
                    f"choose one with --driver {dev.vfio_variants[0]}"
                )

    # in-use refusal, all reasons at once
    problems = []
    for a, dev in sorted(chosen.items()):
        if dev.driver == driver:
            continue
        for r in dev.in_use:
            if allow_boot_vga and ("boot VGA" in r or "framebuffer" in r):
                continue
            if "boot VGA" in r:
                r += " (pass --take-console to hand the console over)"
            problems.append(f"{a}: {r}")
    if problems:
        if not force:
            raise InUse("refusing: the host is using " + "; ".join(problems) + " (stop using it, or pass --force)")
        plan.notes += [f"--force: {p}" for p in problems]

    records: list[DeviceRecord] = []
    dev_steps: list[Step] = []
    new_ids: set[str] = set()
    for a, dev in sorted(chosen.items()):
        want_rm = methods.get(a)
        if dev.driver == driver:
            if want_rm is None or tuple(dev.reset_methods) == want_rm:
                plan.notes.append(f"{a} is already on {driver}")
                continue
        rec = DeviceRecord(address=str(a), vendor_device=dev.vendor_device, original_driver=dev.driver,
                           original_override=dev.driver_override, target_driver=driver, origin=origin,
                           original_module=dev.driver_module, entry=(entries or {}).get(a, entry))
        if dev.driver != driver:
            plan.changes.append(Change(str(a), dev.vendor_device, dev.iommu_group, roles.get(a, "endpoint"),
                                       dev.driver, driver, whys.get(a, "")))
            dev_steps += _hide_device_steps(dev, driver, new_ids, rec)
        if want_rm is not None and tuple(dev.reset_methods) != want_rm:
            rec.original_reset_method = list(dev.reset_methods)
            dev_steps.append(SetResetMethod(a, want_rm, tuple(dev.reset_methods)))
            if dev.driver == driver:
                plan.changes.append(Change(str(a), dev.vendor_device, dev.iommu_group, roles.get(a, "endpoint"),
                                           f"reset {' '.join(dev.reset_methods)}", f"reset {' '.join(want_rm)}"))
        records.append(rec)

    if not records:
        return plan
    plan.steps += _load(state, driver)
    plan.steps.append(JournalRecord(list(records)))
    plan.steps += dev_steps
    for g in sorted({d.iommu_group for a, d in chosen.items() if d.driver != driver and d.iommu_group is not None}):
        plan.steps.append(CheckGroupNode(min(a for a, d in chosen.items() if d.iommu_group == g), g))
    plan.steps.append(JournalCommit([r.address for r in records]))
    return plan


# ------------------------------------------------------------------ reset
def plan_reset(state: HostState, targets: list[PciAddress], reaches: dict) -> Plan:
    """Plan a function reset of each target through the kernel (sysfs ``reset``).

    Refused, with what would work: a device not on a vfio driver (a host driver would lose
    its device's state under it), one a VM holds, one without any reset method, and one
    whose only methods reset its bus when that would also reset a function that is not on
    vfio-pci (drivers/pci/pci.c pci_reset_bus_function)."""
    from vfioctl.pci.reset import function_reset_available

    plan = Plan("reset")
    for a in targets:
        dev = state.device(a)
        if dev.is_bridge:
            raise InvalidInput(f"{a} is a PCI bridge/port: vfioctl resets endpoints only")
        if not is_vfio_driver(dev.driver):
            raise Refused(f"{a} is on {dev.driver or 'no driver'}, not vfio-pci: a reset under a host driver "
                          f"loses the state the driver keeps; hide it first (`vfioctl hide {a.short}`)")
        held = state.holders.get(dev.iommu_group, ()) if dev.iommu_group is not None else ()
        if held:
            raise Refused(f"{a}: group {dev.iommu_group} is held by {held[0].describe()}: the VM owns the device "
                          "and resets it itself; stop or detach the VM first")
        methods = list(dev.reset_methods)
        if not methods:
            raise Refused(f"{a} has no reset method (its sysfs reset_method lists none): the kernel cannot reset "
                          "it on its own; what works: a VFIO hot reset of its whole bus by the VM when every "
                          "function on that bus goes to the VM, or a device-specific reset module (vendor-reset)")
        if not function_reset_available(methods):
            reach = reaches.get(a)
            if reach is None:
                raise Refused(f"{a} resets only with its bus ({' '.join(methods)}) and the topology around it is "
                              "unknown: refusing to reset functions vfioctl cannot name")
            others = [r for r in reach.reached if not r.is_bridge and not r.on_vfio]
            if others:
                names = ", ".join(f"{r.address} ({r.driver or 'no driver'})" for r in others)
                raise Refused(f"{a} resets only with its bus ({' '.join(methods)}), which would also reset {names}, "
                              f"not on vfio-pci; hide them too (`vfioctl hide {a.short} "
                              f"{' '.join(r.address.short for r in others)} --group`) first")
        plan.changes.append(Change(str(a), dev.vendor_device, dev.iommu_group, "endpoint", dev.driver, dev.driver,
                                   f"reset ({' then '.join(methods)})"))
        plan.steps.append(ResetFunction(a, dev.driver))
    return plan


# ------------------------------------------------------------------ restore
def _restore_device_steps(state: HostState, dev: DeviceState, rec: DeviceRecord) -> list[Step]:
    a = dev.address
    cur, cur_override = dev.driver, dev.driver_override
    orig = rec.original_driver
    steps: list[Step] = []
    if cur and cur != orig:
        steps.append(Unbind(a, cur, dev.driver_module, cur_override))
    if dev.has_override and cur_override != rec.original_override:
        steps.append(SetOverride(a, rec.original_override, cur_override))
    for drv, idv in rec.added_ids:
        steps.append(RemoveId(a, drv, idv))
    if rec.original_reset_method is not None and dev.has_reset_method and \
            list(dev.reset_methods) != rec.original_reset_method:
        # "default" gives the kernel's own list back where the original was the default
        steps.append(SetResetMethod(a, tuple(rec.original_reset_method or ["default"]), tuple(dev.reset_methods)))
    if orig and cur != orig:
        steps += _bind_back(state, a, orig, rec.original_module)
    return steps


def plan_restore(
    state: HostState,
    targets: list[PciAddress] | None,
    *,
    force: bool = False,
) -> Plan:
    """Plan giving devices back to the drivers the journal recorded (every journaled device
    and PF when *targets* is None).  A PF's hidden VFs go back before its VF count."""
    plan = Plan("restore")
    todo: list[tuple[PciAddress, DeviceRecord]] = []
    pfs: list[PciAddress] = []
    if targets is None:
        todo = [(PciAddress.parse(a), r) for a, r in sorted(state.journal_devices.items())]
        pfs = [PciAddress.parse(p) for p in sorted(state.journal_sriov)]
    else:
        for a in targets:
            dev = state.device(a)
            if str(a) in state.journal_sriov:
                pfs.append(a)
                for vf in (dev.sriov.vfs if dev.sriov else ()):
                    rec = state.journal_devices.get(str(vf))
                    if rec is not None and all(vf != t for t, _ in todo):
                        todo.append((vf, rec))
            rec = state.journal_devices.get(str(a))
            if rec is None:
                if str(a) in state.journal_sriov:
                    continue
                cur = dev.driver
                if cur and is_vfio_driver_name(cur) and force:
                    rec = DeviceRecord(str(a), dev.vendor_device, PROBE, None, cur, origin="unknown")
                    plan.notes.append(f"{a}: not in the journal; --force: unbinding it and letting the kernel choose a driver")
                elif cur and is_vfio_driver_name(cur):
                    raise Refused(
                        f"{a} is on {cur} but vfioctl did not hide it (no journal entry), so its original driver "
                        "is unknown; pass --force to unbind it and let the kernel probe a driver"
                    )
                else:
                    plan.notes.append(f"{a} is not hidden (driver {cur or 'none'}); nothing to restore")
                    continue
            if all(a != t for t, _ in todo):
                todo.append((a, rec))

    # a VM holding the group blocks the kernel's unbind: refuse, whatever the flags
    groups = {g for a, _ in todo if a in state.devices and (g := state.devices[a].iommu_group) is not None}
    groups |= {g for p in pfs for v in state.vfs_of(p) if (g := v.iommu_group) is not None}
    held = [h for g in sorted(groups) for h in state.holders.get(g, ())]
    if held:
        text = "; ".join(f"group {h.group} is held by {h.describe()}" for h in held)
        raise Refused(f"refusing to restore: {text}; stop or detach the VM first (the kernel would block until it lets go)")

    forget: list[str] = []
    for a, rec in todo:
        got = state.get(a)
        if got is None:
            plan.notes.append(f"{a} is gone from the bus; its journal entry is dropped")
            forget.append(str(a))
            continue
        dev = got
        if rec.original_driver == PROBE:
            if dev.driver:
                plan.steps.append(Unbind(a, dev.driver, dev.driver_module, dev.driver_override))
            if dev.has_override and dev.driver_override:
                plan.steps.append(SetOverride(a, None, dev.driver_override))
            plan.steps.append(Probe(a, None, note="the kernel chooses the driver"))
            plan.changes.append(Change(str(a), rec.vendor_device, dev.iommu_group, "endpoint", dev.driver, "(probe)"))
            continue
        steps = _restore_device_steps(state, dev, rec)
        if steps:
            plan.changes.append(Change(str(a), rec.vendor_device, dev.iommu_group, "endpoint", dev.driver,
                                       rec.original_driver))
        plan.steps += steps
        forget.append(str(a))
    if forget:
        plan.steps += _forget(state, forget)
    for p in pfs:
        plan.extend(_plan_restore_sriov(state, p))
    return plan


def _forget(state: HostState, keys: list[str]) -> list[Step]:
    """Drop *keys* from the journal, after giving back what a console hand-off of those
    devices took (their driver is back by then): every restore, `restore` or `apply --prune`."""
    from vfioctl.ops.handoff import restore_steps

    steps: list[Step] = []
    for k in keys:
        rec = state.journal_handoff.get(k)
        if rec is not None:
            steps += restore_steps(rec)
    return steps + [JournalForget(keys)]


def _plan_restore_sriov(state: HostState, pf_addr: PciAddress) -> Plan:
    """Put a PF's VF count and autoprobe back as the journal recorded them."""
    a = str(pf_addr)
    rec = state.journal_sriov[a]
    plan = Plan("restore")
    pf = state.get(pf_addr)
    if pf is None or pf.sriov is None:
        plan.notes.append(f"{a} is gone from the bus; its journal entry is dropped")
        plan.steps += _forget(state, [a])
        return plan
    cur = pf.sriov.numvfs
    steps: list[Step] = []
    if cur != rec.original_numvfs:
        if cur and rec.original_numvfs:
            steps.append(SetNumVfs(pf_addr, 0, cur, note="through 0, as the kernel demands"))
        steps.append(SetNumVfs(pf_addr, rec.original_numvfs, 0 if cur and rec.original_numvfs else cur))
    auto = pf.sriov.autoprobe
    if rec.original_autoprobe is not None and auto is not None and auto != rec.original_autoprobe:
        steps.append(SetAutoprobe(pf_addr, rec.original_autoprobe, auto))
    if steps:
        plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", f"{cur} VFs", f"{rec.original_numvfs} VFs"))
    plan.steps += steps
    plan.steps += _forget(state, [a])
    return plan


# ------------------------------------------------------------------ sriov
def plan_sriov(
    state: HostState,
    pf_addr: PciAddress,
    numvfs: int,
    *,
    hide: bool = False,
    autoprobe: bool | None = None,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
    vf_indices: list[int] | None = None,
    origin: str = "sriov",
) -> Plan:
    """Plan changing a PF's VF count (0 first when going between non-zero counts); with
    *hide*, bind the VFs (all, or those in *vf_indices*) to *driver*, planned against the
    addresses the kernel will give them."""
    a = str(pf_addr)
    pf = state.device(pf_addr)
    if pf.sriov is None:
        raise InvalidInput(f"{a} is not SR-IOV capable (no {pf.sysfs}/sriov_totalvfs)")
    if numvfs < 0:
        raise InvalidInput(f"VF count must be 0 or more, got {numvfs}")
    check_driver(driver)
    total = pf.sriov.totalvfs
    if numvfs > total:
        raise Refused(f"{a} supports at most {total} VFs (sriov_totalvfs); {numvfs} asked")
    cur = pf.sriov.numvfs
    cur_autoprobe = pf.sriov.autoprobe
    plan = Plan("sriov")
    if not pf.driver and numvfs != cur:
        mods = list(pf.candidate_modules)
        need = ", ".join(m for m in mods if not m.startswith("vfio")) or "its host driver"
        raise HostNotReady(
            f"{a} has no driver bound, and the kernel creates VFs only through the PF's driver; "
            f"load or bind {need} first (e.g. modprobe {mods[0] if mods else '<driver>'})"
        )
    vfs = list(pf.sriov.vfs)
    if numvfs != cur and vfs:
        hidden = [str(v) for v in vfs if str(v) in state.journal_devices]
        if hidden and not force:
            raise Refused(
                f"{a} has VFs hidden by vfioctl ({', '.join(hidden)}); changing the count destroys them: "
                f"`vfioctl restore {a}` first, or pass --force"
            )
        users = []
        for vd in state.vfs_of(pf_addr):
            users += [f"{vd.address}: {r}" for r in vd.in_use]
            for h in state.holders.get(vd.iommu_group, ()) if vd.iommu_group is not None else ():
                users.append(f"{vd.address}: group {h.group} held by {h.describe()}")
        if users and not force:
            raise InUse(f"refusing to change the VF count of {a}: " + "; ".join(users) + " (or pass --force)")
    want_autoprobe = autoprobe
    if hide and numvfs > 0:
        if autoprobe:
            raise InvalidInput("--hide needs autoprobe off while VFs are created (so no host driver grabs them); "
                               "drop --autoprobe on")
        want_autoprobe = False
    planned_vfs: tuple[PciAddress, ...] = ()
    if numvfs != cur and numvfs:
        addrs = [pf.vf_address(i) for i in range(numvfs)]
        if all(x is not None for x in addrs):
            planned_vfs = tuple(addrs)  # type: ignore[arg-type]
    rec = SriovRecord(pf=a, original_numvfs=cur, original_autoprobe=cur_autoprobe, origin=origin)
    steps: list[Step] = []
    if want_autoprobe is not None and cur_autoprobe is not None and want_autoprobe != cur_autoprobe:
        steps.append(SetAutoprobe(pf_addr, want_autoprobe, cur_autoprobe))
    if numvfs != cur:
        if cur and numvfs:
            steps.append(SetNumVfs(pf_addr, 0, cur, note="the kernel only changes a non-zero count through 0"))
        steps.append(SetNumVfs(pf_addr, numvfs, 0 if cur and numvfs else cur, planned_vfs))
    if steps:
        plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", f"{cur} VFs", f"{numvfs} VFs"))
        plan.steps.append(JournalRecord([rec]))
        plan.steps += steps
        plan.steps.append(JournalCommit([a]))
    if hide and numvfs > 0:
        plan.extend(_plan_hide_vfs(state, pf, numvfs, cur, planned_vfs, driver, vf_indices, origin))
    return plan


def plan_new_vfs(state: HostState, pf_addr: PciAddress, numvfs: int, indices: list[int] | None, *,
                 driver: str = DEFAULT_DRIVER, origin: str = "apply", entry: str | None = None) -> Plan:
    """Bind VFs that a plan creates (VF count *numvfs* on a PF that has another now) to *driver*,
    planned against the addresses the kernel will give them."""
    pf = state.device(pf_addr)
    if pf.sriov is None:
        raise InvalidInput(f"{pf_addr} is not SR-IOV capable (no {pf.sysfs}/sriov_totalvfs)")
    planned = tuple(a for a in (pf.vf_address(i) for i in range(numvfs)) if a is not None)
    if len(planned) != numvfs:
        planned = ()
    return _plan_hide_vfs(state, pf, numvfs, pf.sriov.numvfs, planned, driver, indices, origin, entry)


def _plan_hide_vfs(state: HostState, pf: DeviceState, numvfs: int, cur: int, planned: tuple[PciAddress, ...],
                   driver: str, indices: list[int] | None, origin: str, entry: str | None = None) -> Plan:
    """Bind the PF's VFs to *driver*: existing VFs through :func:`plan_hide`, VFs still to be
    created against their computed addresses (they come up without a driver: autoprobe is off)."""
    plan = Plan("sriov")
    wanted = list(range(numvfs)) if indices is None else [i for i in indices if i < numvfs]
    if numvfs == cur:
        vfs = [pf.sriov.vfs[i] for i in wanted if pf.sriov and i < len(pf.sriov.vfs)]  # type: ignore[union-attr]
        todo = [v for v in vfs if state.device(v).driver != driver]
        if todo:
            sub = plan_hide(state, todo, driver=driver, origin=origin)
            plan.extend(sub)
        return plan
    if not planned:
        raise HostNotReady(f"{pf.address}: the kernel does not show sriov_offset/sriov_stride, so the new VFs' "
                           "addresses cannot be planned; create them first (`vfioctl sriov set` without --hide), "
                           "then hide them")
    vf_id = f"{pf.vendor_id}:{pf.sriov.vf_device}" if pf.sriov and pf.sriov.vf_device else pf.vendor_device
    records = []
    steps: list[Step] = _load(state, driver)
    for i in wanted:
        v = planned[i]
        records.append(DeviceRecord(address=str(v), vendor_device=vf_id, original_driver=None,
                                    original_override=None, target_driver=driver, origin=origin, entry=entry))
        plan.changes.append(Change(str(v), vf_id, None, f"VF{i}", None, driver, f"VF {i} of {pf.address}"))
        steps += [SetOverride(v, driver, None), Probe(v, driver), CheckGroupNode(v, None)]
    plan.steps.append(JournalRecord(records))
    plan.steps += steps
    plan.steps.append(JournalCommit([r.address for r in records]))
    return plan
