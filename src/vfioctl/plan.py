"""Pure planning: desired state + current state -> an ordered list of steps.

Nothing here writes.  A :class:`Plan` says which devices change, every write
in order with the kernel state that must follow it (``expect``), and how to
undo it.  ``--dry-run`` prints the plan; :mod:`vfioctl.apply` carries it out.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

from vfioctl import inuse
from vfioctl.address import PciAddress
from vfioctl.errors import HostNotReady, InUse, InvalidInput, Refused
from vfioctl.holders import group_holders
from vfioctl.host import Host
from vfioctl.iommu import ROLE_BRIDGE, IommuGroup, driver_allows_assignment
from vfioctl.journal import DeviceRecord, Journal, SriovRecord
from vfioctl.pci import PCI_DRIVERS, Driver, PciDevice

DEFAULT_DRIVER = "vfio-pci"
_DRIVER_NAME = re.compile(r"^(([a-z0-9]+_)*vfio[-_a-z0-9]*|pci-stub)$")  # vfio-pci, mlx5_vfio_pci, pci-stub


@dataclass
class Step:
    """One action.  ``expect`` is the kernel state that must hold afterwards."""

    action: str  # "modprobe" | "write" | "journal" | "verify" | "forget"
    target: str | None = None
    path: str | None = None
    value: str | None = None
    expect: tuple | None = None
    undo: list["Step"] = field(default_factory=list)
    note: str = ""
    records: list = field(default_factory=list)

    @property
    def writes(self) -> bool:
        """True for the steps that change the host (a sysfs write, a module load)."""
        return self.action in ("write", "modprobe")

    def describe(self) -> str:
        if self.action == "modprobe":
            return f"load module {self.value} (modprobe {self.value})"
        if self.action == "write":
            shown = self.value.strip() if self.value and self.value.strip() else "(empty: clear)"
            text = f"write {shown} > {self.path}"
        elif self.action == "journal":
            text = f"journal: record originals of {', '.join(r.address if hasattr(r, 'address') else r.pf for r in self.records)}"
        elif self.action == "forget":
            text = f"journal: forget {', '.join(self.records)}"
        elif self.action == "hide-vfs":
            text = f"bind every VF of {self.target} to {self.value} (planned once they exist)"
        elif self.action == "commit":
            text = f"journal: mark {', '.join(self.records)} done"
        else:
            text = "verify"
        if self.expect:
            text += f"   [verify: {describe_expect(self.expect)}]"
        if self.note:
            text += f"   ({self.note})"
        return text

    def to_dict(self) -> dict:
        return {
            "action": self.action,
            "target": self.target,
            "path": self.path,
            "value": self.value.strip() if isinstance(self.value, str) else self.value,
            "verify": describe_expect(self.expect) if self.expect else None,
            "note": self.note or None,
        }


def describe_expect(expect: tuple) -> str:
    kind = expect[0]
    if kind == "driver":
        return f"{expect[1]} driver is {expect[2] or 'none'}"
    if kind == "exists":
        return f"{expect[1]} exists"
    if kind == "loaded":
        return f"driver {expect[1]} is registered"
    if kind == "override":
        return f"{expect[1]} driver_override is {expect[2] or 'empty'}"
    if kind == "numvfs":
        return f"{expect[1]} has {expect[2]} VFs"
    if kind == "autoprobe":
        return f"{expect[1]} sriov_drivers_autoprobe is {expect[2]}"
    return str(expect)


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
        return not any(s.writes or s.action == "hide-vfs" for s in self.steps)

    def extend(self, other: "Plan") -> None:
        self.changes += other.changes
        self.steps += other.steps
        self.notes += other.notes

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
        n = 0
        for s in self.steps:
            n += 1
            lines.append(f"  {n:>2}. {s.describe()}")
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


# ------------------------------------------------------------------ helpers
def module_name(driver: str) -> str:
    return driver.replace("-", "_")


def vfio_variants(dev: PciDevice) -> list[str]:
    """vfio variant drivers (mlx5_vfio_pci, ...) that modules.alias offers for *dev*."""
    alias = dev.modalias
    if not alias or not alias.startswith("pci:"):
        return []
    want = "vfio_" + alias
    rel = dev.host.uname_release()

    def load() -> list:
        # a regex over the whole file runs in C: splitting ~30,000 lines in Python costs
        # over a second under emulation, and only the few vfio_pci: lines matter
        text = dev.host.read(f"/lib/modules/{rel}/modules.alias", default="")
        return re.findall(r"^alias (vfio_pci:\S+) (\S+)$", text, re.M)

    text = dev.host.cached("vfio-aliases", load)
    out = []
    for pattern, module in text:  # type: ignore[misc]
        module = module.strip()
        # vfio_pci itself matches every device (vfio_pci:v*d*...): only real variants count
        if module != "vfio_pci" and module not in out and fnmatch.fnmatchcase(want, pattern):
            out.append(module)
    return out


def _driver_loaded(host: Host, name: str) -> bool:
    return host.is_dir(f"{PCI_DRIVERS}/{name}")


def _write(path: str, value: str, expect: tuple | None = None, undo: list[Step] | None = None,
           target: str | None = None, note: str = "") -> Step:
    return Step("write", target=target, path=path, value=value, expect=expect, undo=undo or [], note=note)


def _bind_steps(host: Host, addr: str, driver: str, module: str | None) -> list[Step]:
    """Steps that bind *addr* to *driver* explicitly (loading its module if needed)."""
    steps = []
    if not _driver_loaded(host, driver):
        steps.append(Step("modprobe", target=addr, value=module or module_name(driver), expect=("loaded", driver)))
    steps.append(_write(f"{PCI_DRIVERS}/{driver}/bind", addr, ("driver", addr, driver), target=addr))
    return steps


# ------------------------------------------------------------------ hide
def plan_hide(
    host: Host,
    journal: Journal,
    devices: list[PciDevice],
    *,
    group: bool = False,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
    origin: str = "hide",
) -> Plan:
    """Plan binding *devices* (and, with ``group``, their whole IOMMU groups) to *driver*."""
    if not _DRIVER_NAME.match(driver):
        raise InvalidInput(f"--driver {driver!r} is not a vfio driver (expected vfio-pci, a vfio variant like mlx5_vfio_pci, or pci-stub)")
    plan = Plan("hide")
    targets: dict[str, PciDevice] = {}
    whys: dict[str, str] = {}
    for dev in devices:
        dev.check("planning")
        if dev.is_bridge:
            raise InvalidInput(
                f"{dev.address} is a PCI bridge/port: vfio-pci does not take bridges, and a group "
                "stays viable with its bridges on their drivers; hide the endpoints behind it instead"
            )
        if dev.iommu_group is None:
            raise HostNotReady(
                f"{dev.address} has no IOMMU group: the IOMMU is off on this host, so no device can be "
                "assigned safely; `vfioctl check` says how to enable it"
            )
        targets[str(dev.address)] = dev
        whys[str(dev.address)] = "requested"

    groups: dict[int, IommuGroup] = {}
    roles: dict[str, str] = {}
    for dev in list(targets.values()):
        g = dev.iommu_group
        assert g is not None
        groups.setdefault(g, IommuGroup(host, g))
    for g in groups.values():
        members = g.members()
        left_on_host = []
        for m in members:
            a = str(m.device.address)
            roles[a] = m.role
            if m.role == ROLE_BRIDGE or a in targets:
                continue
            if group:
                targets[a] = m.device
                whys[a] = f"{m.role} of group {g.number}" + (f" ({m.role} of {m.companion_of})" if m.companion_of else "")
            elif not driver_allows_assignment(m.driver):
                left_on_host.append(f"{a} ({m.driver})")
        if left_on_host:
            raise Refused(
                f"IOMMU group {g.number} would not be viable: {', '.join(left_on_host)} would stay on "
                f"a host driver; hide it too, or pass --group to take the whole group"
            )
        for m in members:
            a = str(m.device.address)
            if m.companion_of and a in targets and str(m.companion_of) in targets:
                plan.notes.append(f"{a} is a companion function of {m.companion_of} (same slot): pass both to the same guest")
            elif m.role != ROLE_BRIDGE and a not in targets:
                plan.notes.append(f"{a} stays unbound/{m.driver or 'none'} in group {g.number}")

    if driver == DEFAULT_DRIVER:
        for a, dev in targets.items():
            variants = vfio_variants(dev)
            if variants:
                plan.notes.append(
                    f"modules.alias names vfio variant driver(s) {', '.join(variants)} for {a}; "
                    f"choose one with --driver {variants[0]}"
                )

    # in-use refusal, all reasons at once
    problems = []
    for a, dev in sorted(targets.items()):
        if dev.driver == driver:
            continue
        for r in inuse.reasons(dev):
            problems.append(f"{a}: {r}")
    if problems:
        if not force:
            raise InUse("refusing: the host is using " + "; ".join(problems) + " (stop using it, or pass --force)")
        plan.notes += [f"--force: {p}" for p in problems]

    records = []
    dev_steps: list[Step] = []
    new_ids: set[str] = set()
    for a, dev in sorted(targets.items()):
        cur = dev.driver
        if cur == driver:
            plan.notes.append(f"{a} is already on {driver}")
            continue
        cur_override = dev.driver_override
        vd = dev.vendor_device
        module = Driver(host, cur).module if cur else None
        rec = DeviceRecord(address=a, vendor_device=vd, original_driver=cur, original_override=cur_override,
                           target_driver=driver, origin=origin, original_module=module)
        records.append(rec)
        plan.changes.append(Change(a, vd, dev.iommu_group, roles.get(a, "endpoint"), cur, driver, whys.get(a, "")))
        restore_override = cur_override or "\n"
        if dev.has_driver_override:
            dev_steps.append(_write(f"{dev.sysfs}/driver_override", driver, ("override", a, driver),
                                    [_write(f"{dev.sysfs}/driver_override", restore_override, target=a)], target=a))
            if cur:
                undo = [_write(f"{dev.sysfs}/driver_override", restore_override, target=a)]
                undo += _bind_steps(host, a, cur, module)
                dev_steps.append(_write(f"{PCI_DRIVERS}/{cur}/unbind", a, ("driver", a, None), undo, target=a))
            dev_steps.append(_write("/sys/bus/pci/drivers_probe", a, ("driver", a, driver),
                                    [_write(f"{PCI_DRIVERS}/{driver}/unbind", a, ("driver", a, None), target=a)], target=a))
        else:
            # kernels before 3.16 have no driver_override: new_id is the only way
            if cur:
                dev_steps.append(_write(f"{PCI_DRIVERS}/{cur}/unbind", a, ("driver", a, None),
                                        _bind_steps(host, a, cur, module), target=a))
            idv = vd.replace(":", " ")
            if idv not in new_ids:
                new_ids.add(idv)
                rec.added_ids.append([driver, idv])
                dev_steps.append(_write(f"{PCI_DRIVERS}/{driver}/new_id", idv, ("driver", a, driver),
                                        [_write(f"{PCI_DRIVERS}/{driver}/remove_id", idv, target=a),
                                         _write(f"{PCI_DRIVERS}/{driver}/unbind", a, ("driver", a, None), target=a)],
                                        target=a, note="no driver_override on this kernel: new_id binds every unbound device with this ID"))
            else:
                dev_steps.append(_write(f"{PCI_DRIVERS}/{driver}/bind", a, ("driver", a, driver),
                                        [_write(f"{PCI_DRIVERS}/{driver}/unbind", a, ("driver", a, None), target=a)], target=a))

    if not records:
        return plan
    if not _driver_loaded(host, driver):
        plan.steps.append(Step("modprobe", value=module_name(driver), expect=("loaded", driver)))
    recs = records
    plan.steps.append(Step("journal", records=recs))
    plan.steps += dev_steps
    for g in sorted({d.iommu_group for a, d in targets.items() if d.driver != driver and d.iommu_group is not None}):
        plan.steps.append(Step("verify", expect=("exists", f"/dev/vfio/{g}")))
    plan.steps.append(Step("commit", records=[r.address for r in recs]))
    return plan


# ------------------------------------------------------------------ restore
def plan_restore(
    host: Host,
    journal: Journal,
    devices: list[PciDevice] | None,
    *,
    force: bool = False,
) -> Plan:
    """Plan giving devices back to the drivers the journal recorded (all when *devices* is None)."""
    plan = Plan("restore")
    if devices is None:
        addrs = sorted(journal.devices)
        todo = [(a, journal.devices[a]) for a in addrs]
    else:
        todo = []
        for dev in devices:
            a = str(dev.address)
            rec = journal.devices.get(a)
            if rec is None:
                cur = dev.driver
                if cur and cur.startswith("vfio") and force:
                    rec = DeviceRecord(a, dev.vendor_device, None, None, cur, origin="unknown")
                    plan.notes.append(f"{a}: not in the journal; --force: unbinding it and letting the kernel choose a driver")
                    rec.original_driver = "*probe*"
                elif cur and cur.startswith("vfio"):
                    raise Refused(
                        f"{a} is on {cur} but vfioctl did not hide it (no journal entry), so its original driver "
                        "is unknown; pass --force to unbind it and let the kernel probe a driver"
                    )
                else:
                    plan.notes.append(f"{a} is not hidden (driver {cur or 'none'}); nothing to restore")
                    continue
            todo.append((a, rec))

    # a VM holding the group blocks the kernel's unbind: refuse, whatever the flags
    grp_of: dict[str, int | None] = {}
    for a, _ in todo:
        d = PciDevice(host, PciAddress.parse(a))
        grp_of[a] = d.iommu_group if d.exists() else None
    groups = {g for g in grp_of.values() if g is not None}
    if groups:
        holders = group_holders(host, groups)
        if holders:
            held = "; ".join(f"group {h.group} is held by {h.describe()}" for h in holders)
            raise Refused(f"refusing to restore: {held}; stop or detach the VM first (the kernel would block until it lets go)")

    forget = []
    for a, rec in todo:
        dev = PciDevice(host, PciAddress.parse(a))
        if not dev.exists():
            plan.notes.append(f"{a} is gone from the bus; its journal entry is dropped")
            forget.append(a)
            continue
        cur = dev.driver
        cur_override = dev.driver_override
        orig = rec.original_driver
        steps: list[Step] = []
        if orig == "*probe*":
            if cur:
                steps.append(_write(f"{PCI_DRIVERS}/{cur}/unbind", a, ("driver", a, None), target=a))
            if dev.has_driver_override and cur_override:
                steps.append(_write(f"{dev.sysfs}/driver_override", "\n", ("override", a, None), target=a))
            steps.append(_write("/sys/bus/pci/drivers_probe", a, None, target=a, note="the kernel chooses the driver"))
            plan.changes.append(Change(a, rec.vendor_device, dev.iommu_group, "endpoint", cur, "(probe)"))
            plan.steps += steps
            continue
        if cur == orig and cur_override == rec.original_override and not rec.added_ids:
            forget.append(a)
            continue
        if cur and cur != orig:
            redo = []
            if dev.has_driver_override:
                redo.append(_write(f"{dev.sysfs}/driver_override", cur_override or "\n", target=a))
            redo.append(_write(f"{PCI_DRIVERS}/{cur}/bind", a, ("driver", a, cur), target=a))
            steps.append(_write(f"{PCI_DRIVERS}/{cur}/unbind", a, ("driver", a, None), redo, target=a))
        if dev.has_driver_override and cur_override != rec.original_override:
            steps.append(_write(f"{dev.sysfs}/driver_override", rec.original_override or "\n",
                                ("override", a, rec.original_override),
                                [_write(f"{dev.sysfs}/driver_override", cur_override or "\n", target=a)], target=a))
        for drv, idv in rec.added_ids:
            steps.append(_write(f"{PCI_DRIVERS}/{drv}/remove_id", idv, None, target=a))
        if orig and cur != orig:
            steps += _bind_steps(host, a, orig, rec.original_module)
        plan.changes.append(Change(a, rec.vendor_device, dev.iommu_group, "endpoint", cur, orig))
        plan.steps += steps
        forget.append(a)
    if forget:
        plan.steps.append(Step("forget", records=forget))
    return plan


# ------------------------------------------------------------------ sriov
def plan_sriov(
    host: Host,
    journal: Journal,
    pf: PciDevice,
    numvfs: int,
    *,
    hide: bool = False,
    autoprobe: bool | None = None,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
) -> Plan:
    """Plan changing *pf*'s VF count (0 first when going between non-zero counts)."""
    a = str(pf.address)
    pf.check("planning")
    if not pf.sriov_capable:
        raise InvalidInput(f"{a} is not SR-IOV capable (no {pf.sysfs}/sriov_totalvfs)")
    if numvfs < 0:
        raise InvalidInput(f"VF count must be 0 or more, got {numvfs}")
    total = pf.sriov_totalvfs or 0
    if numvfs > total:
        raise Refused(f"{a} supports at most {total} VFs (sriov_totalvfs); {numvfs} asked")
    cur = pf.sriov_numvfs or 0
    cur_auto = pf.attr("sriov_drivers_autoprobe")
    cur_autoprobe = None if cur_auto is None else cur_auto == "1"
    plan = Plan("sriov")
    if not pf.driver and (numvfs != cur):
        mods = pf.candidate_modules()
        need = ", ".join(m for m in mods if not m.startswith("vfio")) or "its host driver"
        raise HostNotReady(
            f"{a} has no driver bound, and the kernel creates VFs only through the PF's driver; "
            f"load or bind {need} first (e.g. modprobe {mods[0] if mods else '<driver>'})"
        )
    vfs = pf.virtfns
    if numvfs != cur and vfs:
        hidden = [str(v) for v in vfs if str(v) in journal.devices]
        if hidden and not force:
            raise Refused(
                f"{a} has VFs hidden by vfioctl ({', '.join(hidden)}); changing the count destroys them: "
                f"`vfioctl restore {a}` first, or pass --force"
            )
        users = []
        for v in vfs:
            vd = PciDevice(host, v)
            for r in inuse.reasons(vd):
                users.append(f"{v}: {r}")
            held = group_holders(host, {vd.iommu_group}) if vd.iommu_group is not None else []
            for h in held:
                users.append(f"{v}: group {h.group} held by {h.describe()}")
        if users and not force:
            raise InUse(f"refusing to change the VF count of {a}: " + "; ".join(users) + " (or pass --force)")
    want_autoprobe = autoprobe
    if hide and numvfs > 0:
        want_autoprobe = False if autoprobe is None else autoprobe
        if autoprobe:
            raise InvalidInput("--hide needs autoprobe off while VFs are created (so no host driver grabs them); drop --autoprobe on")
    numvfs_path = f"{pf.sysfs}/sriov_numvfs"
    auto_path = f"{pf.sysfs}/sriov_drivers_autoprobe"
    rec = SriovRecord(pf=a, original_numvfs=cur, original_autoprobe=cur_autoprobe)
    steps: list[Step] = []
    if want_autoprobe is not None and cur_autoprobe is not None and want_autoprobe != cur_autoprobe:
        steps.append(_write(auto_path, "1" if want_autoprobe else "0", ("autoprobe", a, want_autoprobe),
                            [_write(auto_path, "1" if cur_autoprobe else "0", target=a)], target=a))
    if numvfs != cur:
        if cur and numvfs:
            steps.append(_write(numvfs_path, "0", ("numvfs", a, 0),
                                [_write(numvfs_path, "0", target=a), _write(numvfs_path, str(cur), ("numvfs", a, cur), target=a)],
                                target=a, note="the kernel only changes a non-zero count through 0"))
        undo_to = [_write(numvfs_path, "0", ("numvfs", a, 0), target=a)]
        if cur and not numvfs:
            undo_to = [_write(numvfs_path, str(cur), ("numvfs", a, cur), target=a)]
        steps.append(_write(numvfs_path, str(numvfs), ("numvfs", a, numvfs), undo_to, target=a))
    if steps:
        plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", f"{cur} VFs", f"{numvfs} VFs"))
        plan.steps.append(Step("journal", records=[rec]))
        plan.steps += steps
        plan.steps.append(Step("commit", records=[a]))
    if hide and numvfs > 0:
        vfs_now = [PciDevice(host, v) for v in vfs] if numvfs == cur else []
        if numvfs != cur or any(v.driver != driver for v in vfs_now):
            if not steps:
                plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", f"{cur} VFs", f"{numvfs} VFs on {driver}"))
            plan.steps.append(Step("hide-vfs", target=a, value=driver,
                                   note=f"bind each VF of {a} not yet on {driver}, journaled like `hide`"))
    return plan


def plan_restore_sriov(host: Host, journal: Journal, pf: PciDevice) -> Plan:
    """Plan putting *pf*'s VF count and autoprobe back as the journal recorded them."""
    a = str(pf.address)
    rec = journal.sriov[a]
    plan = Plan("restore")
    if not pf.exists():
        plan.notes.append(f"{a} is gone from the bus; its journal entry is dropped")
        plan.steps.append(Step("forget", records=[a]))
        return plan
    cur = pf.sriov_numvfs or 0
    numvfs_path = f"{pf.sysfs}/sriov_numvfs"
    steps: list[Step] = []
    if cur != rec.original_numvfs:
        if cur and rec.original_numvfs:
            steps.append(_write(numvfs_path, "0", ("numvfs", a, 0), target=a, note="through 0, as the kernel demands"))
        steps.append(_write(numvfs_path, str(rec.original_numvfs), ("numvfs", a, rec.original_numvfs), target=a))
    auto = pf.attr("sriov_drivers_autoprobe")
    if rec.original_autoprobe is not None and auto is not None and (auto == "1") != rec.original_autoprobe:
        v = "1" if rec.original_autoprobe else "0"
        steps.append(_write(f"{pf.sysfs}/sriov_drivers_autoprobe", v, ("autoprobe", a, rec.original_autoprobe), target=a))
    if steps:
        plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", f"{cur} VFs", f"{rec.original_numvfs} VFs"))
    plan.steps += steps
    plan.steps.append(Step("forget", records=[a]))
    return plan
