"""Plan a whole declarative config (vfioctl.config) through the hide/SR-IOV planners,
over one state read in the caller's session (under the journal lock for a real run)."""

from __future__ import annotations

from vfioctl.address import PciAddress
from vfioctl.errors import Refused
from vfioctl.plan import Plan, plan_hide, plan_restore, plan_sriov

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vfioctl.engine import Session


def plan_config(session: "Session", config, *, prune: bool = False) -> Plan:
    """SR-IOV entries first (VFs must exist before anything can use them), then devices.

    Every entry's ``id`` is compared with the hardware at its address before
    anything is planned: a mismatch means the hardware changed, and the whole
    apply is refused.
    """
    host = session.host
    mismatches = config.check_ids(host)
    if mismatches:
        raise Refused(
            f"{config.path}: hardware does not match the config, nothing applied: " + "; ".join(mismatches)
        )
    focus = [e.pf for e in config.sriov] + [e.address for e in config.devices]
    state = session.state(focus)
    plan = Plan("apply")
    for entry in config.sriov:
        plan.extend(plan_sriov(state, entry.pf, entry.numvfs, hide=entry.hide, autoprobe=entry.autoprobe,
                               origin="apply"))
    by_driver: dict[tuple[str, bool, tuple | None], list[PciAddress]] = {}
    for entry in config.devices:
        rm = tuple(entry.reset_method) if entry.reset_method else None
        by_driver.setdefault((entry.driver, bool(entry.group), rm), []).append(entry.address)
    taken: set[str] = set()
    for (driver, group, rm), addrs in sorted(by_driver.items(), key=lambda kv: (kv[0][0], not kv[0][1], kv[0][2] or ())):
        addrs = [a for a in addrs if str(a) not in taken]
        if not addrs:
            continue
        sub = plan_hide(state, addrs, group=group, driver=driver, origin="apply",
                        reset_method=list(rm) if rm else None)
        taken |= {c.address for c in sub.changes}
        plan.extend(sub)
    if prune:
        named = {str(e.address) for e in config.devices} | taken
        pfs = {str(e.pf) for e in config.sriov}
        stale = []
        for a in sorted(state.journal_devices):
            addr = PciAddress.parse(a)
            dev = state.get(addr)
            if a in named or (dev is not None and dev.physfn is not None and str(dev.physfn) in pfs):
                continue
            if dev is not None:
                stale.append(addr)
        stale_pfs = [PciAddress.parse(p) for p in sorted(state.journal_sriov) if p not in pfs]
        if stale or stale_pfs:
            plan.extend(plan_restore(state, stale + stale_pfs))
    return plan
