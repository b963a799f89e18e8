"""Planning a function reset through the kernel (sysfs ``reset``), refused where it would be unsafe."""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput, Refused
from vfioctl.base.names import (
    is_vfio_driver,
)
from vfioctl.ops.plan.model import Change, Plan
from vfioctl.ops.state import HostState
from vfioctl.ops.steps.device import (
    ResetFunction,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import function_reset_available

TYPE_CHECKING = False


# ------------------------------------------------------------------ reset
def reset_plan(state: HostState, targets: list[PciAddress]) -> Plan:
    """Plan a function reset of each target through the kernel (sysfs ``reset``).

    Refused, with what would work: a device not on a vfio driver (a host driver would lose
    its device's state under it), one a VM holds, one without any reset method, and one
    whose only methods reset its bus when that would also reset a function that is not on
    vfio-pci (drivers/pci/pci.c pci_reset_bus_function).  The bus reset's reach comes from
    *state* (read with ``reset_reach``)."""
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
            reach = state.reset_reach.get(a)
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
