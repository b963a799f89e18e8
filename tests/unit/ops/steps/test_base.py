"""What every step shares: the bounded wait with desired and current, the text of a step in a plan
and its JSON, the write of a device that must still be there, and giving a device back."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vfioctl.base.errors import DeviceVanished, VerifyFailed
from vfioctl.ops.steps.base import Check, DeviceWrite, Step, _ensure_bound, _unbind_if_on
from vfioctl.pci.address import PciAddress

NIC = PciAddress.parse("00:07.0")


@dataclass
class Touch(DeviceWrite):
    """A device write made for the test: 0 into the function's d3cold_allowed."""

    address: PciAddress
    path = property(lambda self: f"/sys/bus/pci/devices/{self.address}/d3cold_allowed")  # type: ignore[assignment]
    value = "0"  # type: ignore[assignment]


def test_wait_returns_once_true_and_otherwise_names_both_sides(x):
    x.wait("ready", lambda: True, lambda: "never asked")
    calls = []
    with pytest.raises(VerifyFailed) as err:
        x.wait("a thing", lambda: False, lambda: calls.append(1) or "another thing", timeout=0.05)
    assert str(err.value) == "wanted a thing, but the kernel shows another thing (waited 0.05 s)"
    assert err.value.fields == {"desired": "a thing", "current": "another thing"}


def test_deferred_actions_are_kept_once_by_name(x):
    x.after_rollback("update-grub", lambda: 1)
    x.after_rollback("update-grub", lambda: 2)
    assert list(x.deferred) == ["update-grub"] and x.deferred["update-grub"]() == 1


def test_a_device_write_checks_the_device_is_there_first(fake, x):
    Touch(NIC).do(x)
    assert (fake._devdir(str(NIC)) / "d3cold_allowed").read_text().strip() == "0"
    with pytest.raises(DeviceVanished) as err:
        Touch(PciAddress.parse("00:0c.0")).do(x)
    assert "writing /sys/bus/pci/devices/0000:00:0c.0/d3cold_allowed" in str(err.value)


def test_text_and_json_of_steps():
    t = Touch(NIC, note="keep it awake")
    assert t.line() == "write 0 > /sys/bus/pci/devices/0000:00:07.0/d3cold_allowed   (keep it awake)"
    assert t.target == "0000:00:07.0" and t.writes and t.action == "write"

    @dataclass
    class Look(Check):

        def expectation(self) -> str:
            return "it looks fine"

    c = Look()
    assert c.line() == "verify   [verify: it looks fine]" and c.target is None and not c.writes
    assert c.to_dict() == {"action": "verify", "step": "Look", "target": None, "path": None, "value": None,
                           "verify": "it looks fine", "note": None}
    with pytest.raises(NotImplementedError):
        Step().describe()


def test_giving_a_device_back_loads_unbinds_and_binds(fake, x):
    x.host.write("/sys/bus/pci/drivers/e1000e/unbind", str(NIC))
    _ensure_bound(x, NIC, "e1000e", None, None)
    assert fake.current_driver(str(NIC)) == "e1000e"
    _ensure_bound(x, NIC, "e1000e", None, None)  # already there: nothing to do
    _ensure_bound(x, PciAddress.parse("00:0c.0"), "e1000e", None, None)  # gone: nothing to give back
    assert _unbind_if_on(x, NIC, "igb") is False and fake.current_driver(str(NIC)) == "e1000e"
    assert _unbind_if_on(x, NIC, "e1000e") is True and fake.current_driver(str(NIC)) is None
