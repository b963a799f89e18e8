"""The change engine's public API: one plan/journal/verify path for every command.

``hide``, ``restore``, ``sriov set``, ``apply``, QMP ``attach`` and the
Ansible modules all come through here: take the journal lock, plan purely,
show the plan (dry run) or execute it with verification and rollback.
"""

from __future__ import annotations

from vfioctl.address import PciAddress
from vfioctl.apply import Result, _rollback, execute as _execute
from vfioctl.errors import InvalidInput, NotFound
from vfioctl.holders import group_holders
from vfioctl.host import Host
from vfioctl.journal import Journal, read_journal
from vfioctl.pci import PciDevice, devices as all_devices
from vfioctl.plan import (
    DEFAULT_DRIVER,
    Plan,
    plan_hide,
    plan_restore,
    plan_restore_sriov,
    plan_sriov,
)
from vfioctl.selector import resolve

__all__ = [
    "Plan", "Result", "hide", "restore", "status", "sriov_set", "plan_apply", "execute",
    "DEFAULT_DRIVER",
]


class _ReadOnly:
    """A dry run reads the journal without the lock, so it works for non-root users too."""

    def __init__(self, host: Host) -> None:
        self.journal = read_journal(host)

    def __enter__(self) -> Journal:
        return self.journal

    def __exit__(self, *exc: object) -> None:
        return None


def _journal(host: Host, dry_run: bool):
    return _ReadOnly(host) if dry_run else Journal(host)


def _devices(host: Host, specs: list) -> list[PciDevice]:
    if specs and all(isinstance(s, PciDevice) for s in specs):
        return list(specs)
    return resolve(host, [str(s) for s in specs], group_bridges=False)


def hide(
    host: Host,
    specs: list,
    *,
    group: bool = False,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
    dry_run: bool = False,
    origin: str = "hide",
) -> Plan | Result:
    """Bind the devices *specs* name to *driver* (vfio-pci).  Returns the Plan on dry run."""
    devs = _devices(host, specs)
    if not devs:
        raise InvalidInput("name at least one device to hide")
    with _journal(host, dry_run) as journal:
        plan = plan_hide(host, journal, devs, group=group, force=force, driver=driver, origin=origin)
        if dry_run:
            return plan
        return _execute(host, plan, journal)


def restore(
    host: Host,
    specs: list | None = None,
    *,
    all: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> Plan | Result:
    """Give devices (or SR-IOV PFs) back exactly as the journal recorded them."""
    if not specs and not all:
        raise InvalidInput("name the devices to restore, or pass --all")
    with _journal(host, dry_run) as journal:
        plan = Plan("restore")
        pfs: list[PciDevice] = []
        devs: list[PciDevice] | None
        if all:
            devs = None
            pfs = [PciDevice(host, PciAddress.parse(p)) for p in sorted(journal.sriov)]
        else:
            devs = []
            for d in _devices(host, list(specs or [])):
                if str(d.address) in journal.sriov:
                    pfs.append(d)
                    # the PF's hidden VFs go back first
                    for a, rec in journal.devices.items():
                        vf = PciDevice(host, PciAddress.parse(a))
                        if vf.exists() and vf.physfn == d.address:
                            devs.append(vf)
                    if str(d.address) in journal.devices:
                        devs.append(d)
                else:
                    devs.append(d)
        if devs is None or devs:
            plan.extend(plan_restore(host, journal, devs, force=force))
        if pfs:
            # VF restores must run before the count changes; plan the PFs after executing them
            if dry_run:
                for pf in pfs:
                    plan.extend(plan_restore_sriov(host, journal, pf))
                return plan
            result = _execute(host, plan, journal)
            pf_plan = Plan("restore")
            for pf in pfs:
                pf_plan.extend(plan_restore_sriov(host, journal, pf))
            try:
                more = _execute(host, pf_plan, journal)
            except BaseException:
                _rollback(host, journal, result)
                raise
            result.done += more.done
            result.plan.changes += pf_plan.changes
            result.plan.notes += pf_plan.notes
            return result
        if dry_run:
            return plan
        return _execute(host, plan, journal)


def sriov_set(
    host: Host,
    pf_spec: str,
    numvfs: int,
    *,
    hide: bool = False,
    autoprobe: bool | None = None,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
    dry_run: bool = False,
) -> Plan | Result:
    """Set a PF's VF count (through 0); with *hide*, bind every new VF to vfio-pci."""
    pfs = _devices(host, [pf_spec])
    if len(pfs) != 1:
        raise InvalidInput(f"{pf_spec!r} names {len(pfs)} devices; give the PF's PCI address")
    pf = pfs[0]
    with _journal(host, dry_run) as journal:
        plan = plan_sriov(host, journal, pf, numvfs, hide=hide, autoprobe=autoprobe, force=force, driver=driver)
        if dry_run:
            return plan
        return _execute(host, plan, journal)


def execute(host: Host, plan: Plan, *, origin: str = "apply") -> Result:
    """Execute a plan made earlier (e.g. by :func:`plan_apply`) under the journal lock."""
    with Journal(host) as journal:
        return _execute(host, plan, journal)


def plan_apply(host: Host, config, *, prune: bool = False) -> Plan:
    """One plan for a whole declarative config (see vfioctl.config)."""
    from vfioctl.configplan import plan_config

    with _ReadOnly(host) as journal:
        return plan_config(host, journal, config, prune=prune)


def status(host: Host) -> dict:
    """What vfioctl has hidden, who holds it, and what is inconsistent (schema vfioctl.status/1)."""
    journal = read_journal(host)
    holders = group_holders(host)
    by_group: dict[int, list] = {}
    for h in holders:
        by_group.setdefault(h.group, []).append(h.to_dict())
    entries = []
    problems = []
    for a, rec in sorted(journal.devices.items()):
        dev = PciDevice(host, PciAddress.parse(a))
        present = dev.exists()
        cur = dev.driver if present else None
        grp = dev.iommu_group if present else None
        ok = present and cur == rec.target_driver and rec.state == "hidden"
        e = {
            "address": a, "id": rec.vendor_device, "driver": cur, "target_driver": rec.target_driver,
            "original_driver": rec.original_driver, "origin": rec.origin, "state": rec.state,
            "iommu_group": grp, "held_by": by_group.get(grp, []) if grp is not None else [],
            "consistent": ok,
        }
        if not present:
            problems.append(f"{a}: in the journal but gone from the bus")
        elif rec.state != "hidden":
            problems.append(f"{a}: a change was interrupted (journal state {rec.state}); `vfioctl restore {a}` or `vfioctl restore --all` recovers")
        elif cur != rec.target_driver:
            problems.append(f"{a}: journal says hidden on {rec.target_driver}, but the kernel shows driver {cur or 'none'}")
        entries.append(e)
    orphans = []
    for dev in all_devices(host):
        drv = dev.driver
        a = str(dev.address)
        if drv and drv.startswith("vfio") and a not in journal.devices:
            g = dev.iommu_group
            orphans.append({"address": a, "driver": drv, "iommu_group": g,
                            "held_by": by_group.get(g, []) if g is not None else []})
            problems.append(f"{a}: on {drv} but not hidden by vfioctl (no journal entry)")
    sriov = []
    for p, rec in sorted(journal.sriov.items()):
        pf = PciDevice(host, PciAddress.parse(p))
        sriov.append({"pf": p, "numvfs": pf.sriov_numvfs if pf.exists() else None,
                      "original_numvfs": rec.original_numvfs, "original_autoprobe": rec.original_autoprobe,
                      "state": rec.state})
    return {"schema": "vfioctl.status/1", "devices": entries, "unjournaled": orphans, "sriov": sriov,
            "problems": problems}


def find_device(host: Host, spec: str) -> PciDevice:
    devs = _devices(host, [spec])
    if len(devs) != 1:
        raise NotFound(f"{spec!r} names {len(devs)} devices; give one PCI address")
    return devs[0]
