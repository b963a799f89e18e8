"""reset on a fake host with the simulated PCI core: refusals, the write and its verification, a bus
reset's reach (the real kernel: tests/vm/test_devops.py)."""

from __future__ import annotations

import pytest
from fakestate import drv

from vfioctl import engine
from vfioctl.base.errors import Refused
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import PciNode, hot_reset_reach


# ---------------------------------------------------------------- reset
def test_reset_refuses_a_device_on_a_host_driver(fake, host):
    with pytest.raises(Refused, match="is on e1000e, not vfio-pci.*vfioctl hide 00:07.0"):
        engine.plan_reset(host, ["00:07.0"]) if hasattr(engine, "plan_reset") else \
            engine.Session(host, dry_run=True).__enter__().plan_reset(["00:07.0"])
    assert host.writes == []


def test_reset_of_a_hidden_device_writes_reset_and_verifies(fake, host):
    engine.hide(host, ["00:07.0"])
    n = len(host.writes)
    with engine.Session(host) as s:
        plan = s.plan_reset(["00:07.0"])
        assert [st.describe() for st in plan.steps] == ["write 1 > /sys/bus/pci/devices/0000:00:07.0/reset"]
        res = s.execute(plan)
    assert res.changed
    assert res.render() == "0000:00:07.0  [8086:10d3]  reset (flr then bus), still on vfio-pci  (verified)"
    assert host.writes[n:] == [("/sys/bus/pci/devices/0000:00:07.0/reset", "1")]
    assert drv(fake, "0000:00:07.0") == "vfio-pci"
    engine.restore(host, ["00:07.0"])


def test_reset_refuses_a_device_without_a_method(fake, host):
    engine.hide(host, ["00:07.0"])
    (fake._devdir("0000:00:07.0") / "reset_method").write_text("\n")
    with engine.Session(host, dry_run=True) as s:
        with pytest.raises(Refused, match="has no reset method"):
            s.plan_reset(["00:07.0"])
    engine.restore(host, ["00:07.0"])


def test_reset_refuses_a_bus_reset_that_reaches_a_host_driver(fake, host):
    from vfioctl.ops.plan.reset import reset_plan as plan_reset
    from vfioctl.ops.state import read_state

    fake.driver("vfio-pci")
    fake.unbind("0000:01:01.0")
    fake.bind("0000:01:01.0", "vfio-pci")  # bound by hand: its group-mate stays on e1000
    (fake._devdir("0000:01:01.0") / "reset_method").write_text("bus\n")
    nodes = {
        "0000:00:05.0": PciNode(is_bridge=True, secondary_bus=1, subordinate_bus=1, iommu_group=5),
        "0000:01:01.0": PciNode(iommu_group=5, driver="vfio-pci", parent="0000:00:05.0"),
        "0000:01:02.0": PciNode(iommu_group=5, driver="e1000", parent="0000:00:05.0"),
    }
    a = PciAddress.parse("01:01.0")
    state = read_state(host, None, [a])
    state.reset_reach = {a: hot_reset_reach(a, nodes)}
    with pytest.raises(Refused, match=r"would also reset 0000:01:02.0 \(e1000\), not on vfio-pci"):
        plan_reset(state, [a])
    nodes["0000:01:02.0"] = PciNode(iommu_group=5, driver="vfio-pci", parent="0000:00:05.0")
    state.reset_reach = {a: hot_reset_reach(a, nodes)}
    plan = plan_reset(state, [a])
    assert len(plan.steps) == 1
