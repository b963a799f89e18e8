"""Plan a whole declarative config (vfioctl.config) through the hide/SR-IOV planner."""

from __future__ import annotations

from vfioctl.errors import Refused
from vfioctl.host import Host
from vfioctl.journal import Journal
from vfioctl.pci import PciDevice
from vfioctl.plan import Plan, plan_hide, plan_restore, plan_restore_sriov, plan_sriov


def plan_config(host: Host, journal: Journal, config, *, prune: bool = False) -> Plan:
    """SR-IOV entries first (VFs must exist before anything can use them), then devices.

    Every entry's ``id`` is compared with the hardware at its address before
    anything is planned: a mismatch means the hardware changed, and the whole
    apply is refused.
    """
    mismatches = config.check_ids(host)
    if mismatches:
        raise Refused(
            f"{config.path}: hardware does not match the config, nothing applied: " + "; ".join(mismatches)
        )
    plan = Plan("apply")
    for entry in config.sriov:
        pf = PciDevice.from_address(host, entry.pf)
        plan.extend(plan_sriov(host, journal, pf, entry.numvfs, hide=entry.hide, autoprobe=entry.autoprobe))
    by_driver: dict[tuple[str, bool], list[PciDevice]] = {}
    for entry in config.devices:
        dev = PciDevice.from_address(host, entry.address)
        by_driver.setdefault((entry.driver, bool(entry.group)), []).append(dev)
    taken: set[str] = set()
    for (driver, group), devs in sorted(by_driver.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        devs = [d for d in devs if str(d.address) not in taken]
        if not devs:
            continue
        sub = plan_hide(host, journal, devs, group=group, driver=driver, origin="apply")
        taken |= {c.address for c in sub.changes}
        plan.extend(sub)
    if prune:
        named = {str(e.address) for e in config.devices} | taken
        pfs = {str(e.pf) for e in config.sriov}
        stale = []
        for a in sorted(journal.devices):
            dev = PciDevice.from_address(host, a) if host.exists(f"/sys/bus/pci/devices/{a}") else None
            if a in named or (dev is not None and dev.physfn is not None and str(dev.physfn) in pfs):
                continue
            if dev is not None:
                stale.append(dev)
        if stale:
            plan.extend(plan_restore(host, journal, stale))
        for p in sorted(journal.sriov):
            if p not in pfs:
                plan.extend(plan_restore_sriov(host, journal, PciDevice.from_address(host, p)))
    # merge the per-call commits/forgets is unnecessary: each is idempotent
    return plan
