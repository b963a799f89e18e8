"""Planning a hide: devices (and, with ``group``, their whole IOMMU groups) onto a vfio driver."""

from __future__ import annotations

from vfioctl.base.errors import HostNotReady, InUse, InvalidInput, Refused
from vfioctl.iommu.roles import ROLE_BRIDGE, driver_allows_assignment
from vfioctl.ops.journal import DeviceRecord
from vfioctl.ops.plan.model import (
    DEFAULT_DRIVER,
    Change,
    Plan,
    check_driver,
    check_reset_methods,
    load_steps,
)
from vfioctl.ops.state import DeviceState, HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.device import (
    Bind,
    CheckGroupNode,
    NewId,
    Probe,
    SetOverride,
    SetResetMethod,
    Unbind,
)
from vfioctl.ops.steps.journal import JournalCommit, JournalRecord
from vfioctl.pci.address import PciAddress

TYPE_CHECKING = False


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


def hide_plan(
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
    force_platform: bool = False,
) -> Plan:
    """Plan binding *targets* (and, with *group*, their whole IOMMU groups) to *driver*.  A host
    use refuses (exit 69) unless *force*; "not known" counts as use; a use of the platform itself
    (host bridge, LPC bridge, IOMMU, the root filesystem's or console's device) refuses even with
    *force*, unless *force_platform*."""
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
    methods = {a: check_reset_methods(d, reset_method, state.reset_reach.get(a)) for a, d in chosen.items()}

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

    # in-use refusal, all reasons at once; the platform's own functions need their own flag
    problems: list[str] = []
    platform: list[str] = []
    for a, dev in sorted(chosen.items()):
        if dev.driver == driver:
            continue
        for u in dev.in_use:
            r = u.text
            if allow_boot_vga and u.console:
                continue
            if r.startswith("it is the boot VGA"):
                r += " (pass --take-console to hand the console over)"
            (platform if u.platform else problems).append(f"{a}: {r}")
    if platform:
        if not force_platform:
            raise InUse("refusing: this is the machine itself: " + "; ".join(platform + problems)
                        + " (--force does not take the platform; --force-platform does, and the host "
                        "will most likely hang or lose its root filesystem or console)")
        plan.notes += [f"--force-platform: {p}" for p in platform]
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
    plan.steps += load_steps(state, driver)
    plan.steps.append(JournalRecord(list(records)))
    plan.steps += dev_steps
    for g in sorted({d.iommu_group for a, d in chosen.items() if d.driver != driver and d.iommu_group is not None}):
        plan.steps.append(CheckGroupNode(min(a for a, d in chosen.items() if d.iommu_group == g), g))
    plan.steps.append(JournalCommit([r.address for r in records]))
    return plan
