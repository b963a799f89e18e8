"""A reset method the kernel would refuse is refused at planning: `hide --reset-method bus` on a
function whose `bus` entry is stale (it shares its bus; `assess` already says so) failed at
step 5 with EINVAL and rolled back.  A restore whose original list the kernel no longer takes
puts back the kernel's default."""

from __future__ import annotations

import errno
import json

import pytest
from fakehost import FakeDev

from vfioctl import engine
from vfioctl.base.errors import InvalidInput


def attr(fake, a, name):
    return (fake._devdir(a) / name).read_text().strip()


def kernel_reset_method(fake, host, probed):
    """reset_method as drivers/pci/pci.c reset_method_store takes it: "default" is the probed
    list, a list naming a method that fails its probe now is EINVAL."""
    inner = host.write_hook

    def hook(h, path, value):
        if path.endswith("/reset_method"):
            a = path.split("/")[-2]
            names = value.split()
            if names == ["default"]:
                (fake._devdir(a) / "reset_method").write_text(" ".join(probed[a]) + "\n")
                return
            if any(n not in probed[a] for n in names):
                raise OSError(errno.EINVAL, "Invalid argument")
        inner(h, path, value)

    host.write_hook = hook


def test_a_stale_bus_method_is_refused_at_planning(fake, host):
    """01:01.0 shares bus 01 with 01:02.0: its 'bus' was probed at enumeration, before 01:02.0."""
    with pytest.raises(InvalidInput, match=r"reset method 'bus' is listed but stale.*shares its bus with 0000:01:02.0"):
        engine.plan_hide(host, ["01:01.0"], group=True, reset_method=["bus"])
    with pytest.raises(InvalidInput, match="stale"):
        engine.hide(host, ["01:01.0"], group=True, reset_method=["flr", "bus"])
    assert host.writes == []
    # a root-bus function has no bus reset at all
    with pytest.raises(InvalidInput, match="stale.*bridge or on a root bus"):
        engine.plan_hide(host, ["00:07.0"], reset_method=["bus"])


def test_a_bus_method_of_a_function_alone_behind_its_bridge_is_taken(fake, host):
    fake.add(FakeDev("0000:00:06.0", "1b36", "000c", cls=0x060400, group=6, header_type=1))
    fake.add(FakeDev("0000:02:00.0", "8086", "10d3", group=12, driver="e1000e", net=["eth9"],
                  matches=["e1000e"]))  # a bound e1000e has its interface (else: not known)
    host.invalidate()
    plan = engine.plan_hide(host, ["02:00.0"], reset_method=["bus"])
    assert any(s.action == "write" and (s.path or "").endswith("reset_method") for s in plan.steps)


def test_restore_puts_back_the_default_when_the_original_is_stale(fake, host):
    kernel_reset_method(fake, host, {"0000:01:01.0": ("flr",), "0000:01:02.0": ("flr",)})
    engine.hide(host, ["01:01.0"], group=True, reset_method=["flr"])
    j = json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())
    assert j["devices"]["0000:01:01.0"]["original_reset_method"] == ["flr", "bus"]
    plan = engine.plan_restore(host, ["01:01.0"])
    step = next(s for s in plan.steps if (s.path or "").endswith("0000:01:01.0/reset_method"))
    assert step.value == "default" and "no longer accepted" in step.note
    engine.restore(host, ["01:01.0"])
    assert attr(fake, "0000:01:01.0", "reset_method") == "flr"
    assert fake.current_driver("0000:01:01.0") == "e1000"


def test_the_step_falls_back_to_the_default_on_einval(fake, host):
    """Where the planner could not tell, the kernel's EINVAL to the original list gives the default."""
    from vfioctl.ops.executor import execute
    from vfioctl.ops.journal import Journal
    from vfioctl.ops.plan.model import Plan
    from vfioctl.ops.steps.device import SetResetMethod
    from vfioctl.pci.address import PciAddress

    kernel_reset_method(fake, host, {"0000:00:07.0": ("flr",)})
    a = PciAddress.parse("00:07.0")
    plan = Plan("restore", steps=[SetResetMethod(a, ("flr", "bus"), ("flr", "bus"), or_default=True)])
    with Journal(host) as j:
        execute(host, plan, j)
    assert attr(fake, "0000:00:07.0", "reset_method") == "flr"
    plan = Plan("restore", steps=[SetResetMethod(a, ("flr", "bus"), ("flr",))])
    with Journal(host) as j, pytest.raises(Exception, match="Invalid argument"):
        execute(host, plan, j)
