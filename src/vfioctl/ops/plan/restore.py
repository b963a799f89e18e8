"""Planning a restore: devices and SR-IOV PFs given back exactly as the journal recorded them."""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput, Refused
from vfioctl.base.names import (
    is_vfio_driver_name,
    module_name,
)
from vfioctl.ops.journal import PROBE, DeviceRecord
from vfioctl.ops.plan.console import give_back_console_steps
from vfioctl.ops.plan.model import Change, Plan, bind_back_steps
from vfioctl.ops.plan.vfnet import vf_restore_steps
from vfioctl.ops.state import DeviceState, HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.device import (
    Probe,
    RemoveId,
    SetOverride,
    SetResetMethod,
    Unbind,
)
from vfioctl.ops.steps.journal import JournalForget
from vfioctl.ops.steps.sriov import SetAutoprobe, SetNumVfs
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import effective_methods

TYPE_CHECKING = False


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
        steps.append(_reset_method_back(state, dev, rec.original_reset_method))
    if orig and cur != orig:
        steps += bind_back_steps(state, a, orig, _module_to_load(state, dev, rec, orig))
    return steps


def _reset_method_back(state: HostState, dev: DeviceState, original: list[str]) -> SetResetMethod:
    """The original reset-method list, or the kernel's default ("default", drivers/pci/pci.c
    reset_method_store) when the kernel would refuse the original now: a bus method probed at
    enumeration is stale once the function shares its bus, and reset_method_store refuses the
    whole list with EINVAL.  Where the bus topology is unknown the step itself falls back to
    "default" on that refusal."""
    cur = tuple(dev.reset_methods)
    reach = state.reset_reach.get(dev.address)
    if not original or (reach is not None and effective_methods(original, reach) != tuple(original)):
        return SetResetMethod(dev.address, ("default",), cur,
                              note=f"the original {' '.join(original) or '(none)'} is no longer accepted: "
                                   "the kernel's default list")
    return SetResetMethod(dev.address, tuple(original), cur, or_default=True)


def _module_to_load(state: HostState, dev: DeviceState, rec: DeviceRecord, driver: str) -> str | None:
    """The module a restore may load to get *driver* back: the device's own driver module,
    one that modules.alias offers for this very device (a journal naming ``usbip_host``, or
    any module, for an e1000e makes restore load nothing)."""
    if state.driver_loaded(driver):
        return None
    module = rec.original_module or module_name(driver)
    offered = state.offered_modules.get(dev.address, ())
    if module_name(module) not in {module_name(m) for m in offered}:
        have = ", ".join(offered) or "none"
        raise InvalidInput(
            f"the journal says {dev.address} goes back to driver {driver} from module {module}, but this kernel's "
            f"modules.alias does not offer {module} for it (it offers: {have}); vfioctl loads only a device's own "
            f"driver module. If {module} is right, load it yourself (modprobe {module}) and run restore again",
            address=str(dev.address), module=module)
    return module


def restore_plan(
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
        pfs = [PciAddress.parse(p) for p in sorted(set(state.journal_sriov) | set(state.journal_vfnet))]
    else:
        for a in targets:
            dev = state.device(a)
            pf_rec = str(a) in state.journal_sriov or str(a) in state.journal_vfnet
            if pf_rec:
                pfs.append(a)
                for vf in (dev.sriov.vfs if dev.sriov else ()):
                    rec = state.journal_devices.get(str(vf))
                    if rec is not None and all(vf != t for t, _ in todo):
                        todo.append((vf, rec))
            rec = state.journal_devices.get(str(a))
            if rec is None:
                if pf_rec:
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
    steps: list[Step] = []
    for k in keys:
        rec = state.journal_handoff.get(k)
        if rec is not None:
            steps += give_back_console_steps(rec)
    return steps + [JournalForget(keys)]


def _plan_restore_sriov(state: HostState, pf_addr: PciAddress) -> Plan:
    """Put a PF's VF settings, then its VF count and autoprobe, back as the journal recorded them."""
    a = str(pf_addr)
    plan = Plan("restore")
    pf = state.get(pf_addr)
    if pf is None or pf.sriov is None:
        plan.notes.append(f"{a} is gone from the bus; its journal entry is dropped")
        plan.steps += _forget(state, [a])
        return plan
    steps: list[Step] = vf_restore_steps(state, pf_addr)
    if steps:
        plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", "VF settings", "as recorded"))
    rec = state.journal_sriov.get(a)
    if rec is None:
        plan.steps += steps + _forget(state, [a])
        return plan
    cur = pf.sriov.numvfs
    n_settings = len(steps)
    if cur != rec.original_numvfs:
        if cur and rec.original_numvfs:
            steps.append(SetNumVfs(pf_addr, 0, cur, note="through 0, as the kernel demands"))
        steps.append(SetNumVfs(pf_addr, rec.original_numvfs, 0 if cur and rec.original_numvfs else cur))
    auto = pf.sriov.autoprobe
    if rec.original_autoprobe is not None and auto is not None and auto != rec.original_autoprobe:
        steps.append(SetAutoprobe(pf_addr, rec.original_autoprobe, auto))
    if len(steps) > n_settings:
        plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", f"{cur} VFs", f"{rec.original_numvfs} VFs"))
    plan.steps += steps
    plan.steps += _forget(state, [a])
    return plan
