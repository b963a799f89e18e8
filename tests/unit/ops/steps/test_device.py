"""Driver steps on the fake host's simulated PCI core: each one's do, verify (the kernel's answer)
and undo (idempotent: put back what was there if it is not), and what it says in a plan."""

from __future__ import annotations

import pytest

from vfioctl.base.errors import DeviceVanished, HostNotReady, VerifyFailed
from vfioctl.ops.steps.device import (
    Bind,
    CheckGroupNode,
    LoadModule,
    Probe,
    RemoveId,
    ResetFunction,
    SetOverride,
    Unbind,
)
from vfioctl.pci.address import PciAddress

NIC = PciAddress.parse("00:07.0")


def driver(fake):
    return fake.current_driver(str(NIC))


def override(fake):
    text = (fake._devdir(str(NIC)) / "driver_override").read_text().strip()
    return None if text in ("", "(null)") else text  # the kernel shows an empty one as (null)


def test_load_module_registers_the_driver(fake, x):
    step = LoadModule("vfio_pci", "vfio-pci")
    assert step.line() == "load module vfio_pci (modprobe vfio_pci)   [verify: driver vfio-pci is registered]"
    step.do(x)
    step.verify(x)
    step.undo(x)  # a loaded module stays: harmless
    assert (fake.root / "sys/bus/pci/drivers/vfio-pci").is_dir()


def test_load_module_that_fails_says_so(x):
    x.host.run_hook = lambda host_, argv: (1, "modprobe: FATAL: Module nope not found")
    with pytest.raises(HostNotReady) as err:
        LoadModule("nope", "nope").do(x)
    assert "modprobe nope failed (exit 1): modprobe: FATAL" in str(err.value)


def test_the_override_is_written_verified_and_put_back(fake, x):
    step = SetOverride(NIC, "vfio-pci", previous=None)
    assert step.describe() == "write vfio-pci > /sys/bus/pci/devices/0000:00:07.0/driver_override"
    step.do(x)
    step.verify(x)
    assert override(fake) == "vfio-pci" and driver(fake) == "e1000e"  # an override alone unbinds nothing
    step.undo(x)
    step.undo(x)
    assert override(fake) is None
    clear = SetOverride(NIC, None, previous="vfio-pci")
    assert clear.describe() == "write (empty: clear) > /sys/bus/pci/devices/0000:00:07.0/driver_override"


def test_unbind_then_its_undo_binds_the_original_driver_back(fake, x):
    step = Unbind(NIC, "e1000e")
    step.do(x)
    step.verify(x)
    assert driver(fake) is None
    step.do(x)  # already unbound: nothing written, no error
    step.undo(x)
    assert driver(fake) == "e1000e"


def test_unbind_undo_restores_the_override_that_would_refuse_the_driver(fake, x):
    SetOverride(NIC, "vfio-pci", previous=None).do(x)
    step = Unbind(NIC, "e1000e", override_before=None)
    step.do(x)
    step.undo(x)
    assert driver(fake) == "e1000e" and override(fake) is None


def test_probe_binds_what_the_override_allows_and_undo_unbinds_it(fake, x):
    fake.driver("vfio-pci")
    SetOverride(NIC, "vfio-pci", previous=None).do(x)
    Unbind(NIC, "e1000e").do(x)
    step = Probe(NIC, expect="vfio-pci")
    assert step.expectation() == "0000:00:07.0 driver is vfio-pci"
    step.do(x)
    step.verify(x)
    assert driver(fake) == "vfio-pci"
    step.undo(x)
    assert driver(fake) is None
    assert Probe(NIC, expect=None).expectation() is None


def test_verify_waits_then_names_desired_and_current(fake, x):
    with pytest.raises(VerifyFailed) as err:
        Bind(NIC, "vfio-pci").verify(x)
    assert err.value.fields["desired"] == "0000:00:07.0 driver is vfio-pci"
    assert err.value.fields["current"] == "driver e1000e"
    assert "waited 0.2 s" in str(err.value)


def test_a_device_that_vanished_is_not_written(fake, x):
    gone = PciAddress.parse("00:0c.0")
    with pytest.raises(DeviceVanished):
        Probe(gone, expect="vfio-pci").do(x)
    with pytest.raises(DeviceVanished):
        SetOverride(gone, "vfio-pci", previous=None).do(x)
    Unbind(gone, "e1000e").undo(x)  # undo of a device that is gone: nothing to give back, no error


def test_bind_is_idempotent_and_undone(fake, x):
    Unbind(NIC, "e1000e").do(x)
    step = Bind(NIC, "e1000e")
    step.do(x)
    step.do(x)
    step.verify(x)
    step.undo(x)
    assert driver(fake) is None


def test_remove_id_of_a_driver_that_is_gone_writes_nothing(fake, x):
    writes = []
    inner = x.host.write_hook
    x.host.write_hook = lambda h, path, value: (writes.append(path), inner(h, path, value))
    RemoveId(NIC, "not-loaded", "8086 10d3").do(x)
    assert writes == []


def test_check_group_node(fake, x):
    step = CheckGroupNode(NIC, None)
    assert step.writes is False and step.describe() == "verify"
    assert step.expectation() == "/dev/vfio/N exists (the group of 0000:00:07.0)"
    with pytest.raises(VerifyFailed):
        step.verify(x)
    (fake.root / "dev/vfio").mkdir(parents=True, exist_ok=True)
    (fake.root / "dev/vfio/7").write_text("")
    step.verify(x)
    CheckGroupNode(NIC, 7).verify(x)
    assert CheckGroupNode(NIC, 7).expectation() == "/dev/vfio/7 exists"


def test_reset_function_is_verified_by_the_device_staying_on_its_driver(fake, x):
    step = ResetFunction(NIC, "e1000e")
    assert (step.path, step.value) == ("/sys/bus/pci/devices/0000:00:07.0/reset", "1")
    step.verify(x)
    with pytest.raises(VerifyFailed):
        ResetFunction(NIC, "vfio-pci").verify(x)


def test_to_dict_is_the_plan_s_json():
    d = SetOverride(NIC, "vfio-pci", previous=None, note="why").to_dict()
    assert d == {"action": "write", "step": "SetOverride", "target": "0000:00:07.0",
                 "path": "/sys/bus/pci/devices/0000:00:07.0/driver_override", "value": "vfio-pci",
                 "verify": "0000:00:07.0 driver_override is vfio-pci", "note": "why"}
    assert SetOverride(NIC, "vfio-pci", previous=None, note="why").line().endswith("   (why)")
