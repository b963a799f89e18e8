"""Planning SR-IOV changes: a PF's VF count and autoprobe, and the VFs bound as they are created."""

from __future__ import annotations

from vfioctl.base.errors import HostNotReady, InUse, InvalidInput, Refused
from vfioctl.ops.journal import DeviceRecord, SriovRecord
from vfioctl.ops.plan.hide import hide_plan
from vfioctl.ops.plan.model import (
    DEFAULT_DRIVER,
    Change,
    Plan,
    check_driver,
    load_steps,
)
from vfioctl.ops.plan.vfnet import VfWant, vf_net_plan
from vfioctl.ops.state import DeviceState, HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.device import (
    CheckGroupNode,
    Probe,
    SetOverride,
)
from vfioctl.ops.steps.journal import JournalCommit, JournalRecord
from vfioctl.ops.steps.sriov import SetAutoprobe, SetNumVfs
from vfioctl.pci.address import PciAddress

TYPE_CHECKING = False


# ------------------------------------------------------------------ sriov
def sriov_plan(
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
    settings: list[VfWant] | None = None,
) -> Plan:
    """Plan changing a PF's VF count (0 first when going between non-zero counts); with
    *hide*, bind the VFs (all, or those in *vf_indices*) to *driver*, planned against the
    addresses the kernel will give them; *settings*: the VFs' network settings, set once they
    exist and before they are bound."""
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
    if settings:
        # the VFs' network settings before anything binds them (a guest's driver reads its MAC at probe)
        plan.extend(vf_net_plan(state, pf_addr, settings, numvfs=numvfs, origin=origin))
    if hide and numvfs > 0:
        plan.extend(_plan_hide_vfs(state, pf, numvfs, cur, planned_vfs, driver, vf_indices, origin))
    return plan


def new_vfs_plan(state: HostState, pf_addr: PciAddress, numvfs: int, indices: list[int] | None, *,
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
    """Bind the PF's VFs to *driver*: existing VFs through :func:`hide_plan`, VFs still to be
    created against their computed addresses (they come up without a driver: autoprobe is off)."""
    plan = Plan("sriov")
    wanted = list(range(numvfs)) if indices is None else [i for i in indices if i < numvfs]
    if numvfs == cur:
        vfs = [pf.sriov.vfs[i] for i in wanted if pf.sriov and i < len(pf.sriov.vfs)]  # type: ignore[union-attr]
        todo = [v for v in vfs if state.device(v).driver != driver]
        if todo:
            sub = hide_plan(state, todo, driver=driver, origin=origin)
            plan.extend(sub)
        return plan
    if not planned:
        raise HostNotReady(f"{pf.address}: the kernel does not show sriov_offset/sriov_stride, so the new VFs' "
                           "addresses cannot be planned; create them first (`vfioctl sriov set` without --hide), "
                           "then hide them")
    vf_id = f"{pf.vendor_id}:{pf.sriov.vf_device}" if pf.sriov and pf.sriov.vf_device else pf.vendor_device
    records = []
    steps: list[Step] = load_steps(state, driver)
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
