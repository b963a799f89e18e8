"""Planning a restore from a state made by hand (the planner is pure): each device given back to the
driver the journal recorded, the steps in order; what is not hidden, not journaled, gone, or held by
a VM; the only module a restore may load; a reset-method list the kernel would refuse now."""

from __future__ import annotations

import pytest
from fakestate import device_state

from vfioctl.base.errors import InvalidInput, Refused
from vfioctl.ops.journal import DeviceRecord
from vfioctl.ops.plan.restore import restore_plan
from vfioctl.ops.state import HostState
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import ReachedFunction, ResetReach
from vfioctl.usage.holders import Holder

A = PciAddress.parse
NIC = A("03:00.0")


def dev(address=NIC, driver="vfio-pci", override="vfio-pci", group=12, reset=("flr",)):
    return device_state(address, driver=driver, override=override, group=group, reset=reset)


def record(original="e1000e", **kw):
    return DeviceRecord(str(NIC), "8086:10d3", original, None, "vfio-pci", **kw)


def state(*devs, journal=(), drivers=("e1000e", "vfio-pci"), **kw):
    return HostState(devices={d.address: d for d in devs}, groups={12: tuple(d.address for d in devs)},
                     drivers=frozenset(drivers), holders=kw.pop("holders", {}),
                     journal_devices={r.address: r for r in journal}, **kw)


def kinds(plan):
    return [type(s).__name__ for s in plan.steps]


def test_a_hidden_device_goes_back_to_its_original_driver():
    plan = restore_plan(state(dev(), journal=[record()]), [NIC])
    assert kinds(plan) == ["Unbind", "SetOverride", "Bind", "JournalForget"]
    unbind, override, bind, forget = plan.steps
    assert (unbind.driver, override.driver, override.previous, bind.driver) == ("vfio-pci", None, "vfio-pci", "e1000e")
    assert forget.keys == [str(NIC)]
    c = plan.changes[0]
    assert (c.address, c.before, c.after) == (str(NIC), "vfio-pci", "e1000e")


def test_every_journaled_device_when_no_target_is_named():
    other = A("04:00.0")
    rec2 = DeviceRecord(str(other), "8086:10d3", "e1000e", None, "vfio-pci")
    plan = restore_plan(state(dev(), dev(other), journal=[record(), rec2]), None)
    assert [c.address for c in plan.changes] == [str(NIC), str(other)]
    assert plan.steps[-1].keys == [str(NIC), str(other)]


def test_a_driver_that_is_not_registered_is_loaded_only_when_modules_alias_offers_it():
    st = state(dev(), journal=[record()], drivers=("vfio-pci",), offered_modules={NIC: ("e1000e",)})
    plan = restore_plan(st, [NIC])
    assert kinds(plan) == ["Unbind", "SetOverride", "LoadModule", "Bind", "JournalForget"]
    assert plan.steps[2].module == "e1000e"
    hostile = state(dev(), journal=[record(original_module="usbip_host")], drivers=("vfio-pci",),
                    offered_modules={NIC: ("e1000e",)})
    with pytest.raises(InvalidInput) as err:
        restore_plan(hostile, [NIC])
    assert "does not offer usbip_host" in str(err.value) and "(it offers: e1000e)" in str(err.value)


def test_a_device_on_vfio_that_vfioctl_did_not_hide_needs_force():
    with pytest.raises(Refused) as err:
        restore_plan(state(dev()), [NIC])
    assert "pass --force" in str(err.value)
    plan = restore_plan(state(dev()), [NIC], force=True)
    assert kinds(plan) == ["Unbind", "SetOverride", "Probe"]  # nothing journaled: nothing to forget
    assert plan.changes[0].after == "(probe)" and "--force" in plan.notes[0]


def test_a_device_that_is_not_hidden_has_nothing_to_restore():
    plan = restore_plan(state(dev(driver="e1000e", override=None)), [NIC])
    assert plan.steps == [] and plan.empty and plan.notes == [f"{NIC} is not hidden (driver e1000e); nothing to restore"]


def test_a_vm_holding_the_group_refuses_whatever_the_flags():
    st = state(dev(), journal=[record()], holders={12: (Holder(4242, "qemu-system-x86_64", "win11", 12),)})
    with pytest.raises(Refused) as err:
        restore_plan(st, [NIC], force=True)
    assert "group 12 is held by PID 4242 qemu-system-x86_64 (VM win11)" in str(err.value)


def test_a_journaled_device_gone_from_the_bus_is_forgotten():
    plan = restore_plan(state(journal=[record()]), None)
    assert kinds(plan) == ["JournalForget"] and "gone from the bus" in plan.notes[0]


def test_dynamic_ids_are_removed():
    plan = restore_plan(state(dev(), journal=[record(added_ids=[["vfio-pci", "8086 10d3"]])]), [NIC])
    assert kinds(plan) == ["Unbind", "SetOverride", "RemoveId", "Bind", "JournalForget"]


def test_the_original_reset_methods_back_or_the_kernel_s_default_when_stale():
    rec = record(original_reset_method=["flr", "bus"])
    plan = restore_plan(state(dev(), journal=[rec]), [NIC])
    step = next(s for s in plan.steps if type(s).__name__ == "SetResetMethod")
    assert step.methods == ("flr", "bus") and step.or_default
    # the function now shares its bus: the kernel refuses 'bus', and with it the whole list
    other = ReachedFunction(A("03:00.1"), 13, "e1000e", False, "same slot", False)
    shared = ResetReach(NIC, 12, False, A("00:1c.0"), (3, 3), (other,))
    plan = restore_plan(state(dev(), journal=[rec], reset_reach={NIC: shared}), [NIC])
    step = next(s for s in plan.steps if type(s).__name__ == "SetResetMethod")
    assert step.methods == ("default",) and "no longer accepted" in step.note
