"""The console hand-off's steps on the fake host (a boot GPU with fbcon on vtcon0, a display manager
that the simulated systemctl stops and starts): each one's do, verify and undo, and the refusals."""

from __future__ import annotations

import os

import pytest
from fakestate import console_host

from vfioctl.base.errors import HostNotReady, InvalidInput, VerifyFailed
from vfioctl.ops.journal import Journal
from vfioctl.ops.steps.base import Exec
from vfioctl.ops.steps.console import SetPlatformFb, SetVtcon, UnitState, _systemctl


@pytest.fixture
def gpu(fake):
    h, calls = console_host(fake)
    with Journal(h, lock_timeout=1) as j:
        yield fake, Exec(h, j), calls


def bound(fake):
    d = fake.root / "sys/class/vtconsole"
    return {v.name: (v / "bind").read_text().strip() for v in sorted(d.iterdir())}


def test_a_unit_is_stopped_verified_and_started_again(gpu):
    fake, x, calls = gpu
    step = UnitState("display-manager.service", active=False)
    assert step.line() == "systemctl stop display-manager.service   [verify: display-manager.service is not active]"
    step.do(x)
    step.verify(x)
    assert calls[-1] == ["systemctl", "stop", "--", "display-manager.service"]
    step.do(x)  # already stopped: systemctl is not asked again
    assert len([c for c in calls if c[0] == "systemctl"]) == 1
    step.undo(x)
    assert calls[-1] == ["systemctl", "start", "--", "display-manager.service"]


@pytest.mark.parametrize("unit", ["multi-user.target", "reboot.service", "a b.service",
                                  "../../x.service", "systemd-journald.service\n"])
def test_systemctl_is_never_asked_about_a_unit_vfioctl_does_not_stop(gpu, unit):
    fake, x, calls = gpu
    with pytest.raises(InvalidInput):
        _systemctl(x.host, "stop", unit)
    assert calls == []


def test_systemctl_failing_is_host_not_ready(gpu):
    fake, x, calls = gpu
    x.host.run_hook = lambda host_, argv: (5, "Failed to stop gdm.service: Access denied")
    with pytest.raises(HostNotReady) as err:
        UnitState("gdm.service", active=False).do(x)
    assert "systemctl stop gdm.service failed (exit 5): Failed to stop" in str(err.value)


def test_fbcon_is_unbound_from_the_consoles_and_given_back(gpu):
    fake, x, _ = gpu
    step = SetVtcon(0, bind=False)
    assert step.describe() == "write 0 > /sys/class/vtconsole/vtcon0/bind"
    step.do(x)
    step.verify(x)
    assert bound(fake) == {"vtcon0": "0", "vtcon1": "1"}  # the dummy console took them
    step.undo(x)
    assert bound(fake) == {"vtcon0": "1", "vtcon1": "0"}
    step.undo(x)  # fbcon has them: nothing more to do
    assert bound(fake) == {"vtcon0": "1", "vtcon1": "0"}


def test_verify_names_the_console_still_bound(gpu):
    fake, x, _ = gpu
    with pytest.raises(VerifyFailed) as err:
        SetVtcon(0, bind=False).verify(x)
    assert err.value.fields["current"] == "vtcon0 still bound"


def test_a_platform_frame_buffer_is_unbound_and_bound_back(gpu):
    fake, x, _ = gpu
    plat = fake.root / "sys/bus/platform"
    dev = plat / "devices/simple-framebuffer.0"
    drv = plat / "drivers/simple-framebuffer"
    dev.mkdir(parents=True)
    drv.mkdir(parents=True)
    (dev / "driver").symlink_to(os.path.relpath(drv, dev))
    inner = x.host.write_hook

    def platform_core(h, path, value):  # what drivers/base/bus.c bind_store/unbind_store do
        if path.startswith("/sys/bus/platform/drivers/"):
            if path.endswith("/unbind"):
                (dev / "driver").unlink()
            else:
                (dev / "driver").symlink_to(os.path.relpath(drv, dev))
            return
        inner(h, path, value)

    x.host.write_hook = platform_core
    step = SetPlatformFb("simple-framebuffer.0", "simple-framebuffer", bind=False)
    assert step.describe() == "write simple-framebuffer.0 > /sys/bus/platform/drivers/simple-framebuffer/unbind"
    assert step.expectation() == "simple-framebuffer.0 has no driver"
    step.do(x)
    step.verify(x)
    assert not (dev / "driver").is_symlink()
    step.do(x)  # already unbound: nothing written (a second write would fail in the kernel)
    step.undo(x)
    assert (dev / "driver").is_symlink()
    step.undo(x)
    assert (dev / "driver").is_symlink()
