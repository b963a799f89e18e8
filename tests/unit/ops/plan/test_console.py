"""The console hand-off planned and carried out on a fake host: --take-console, the processes that
hold the card, a failure at each step, apply --prune giving the console back."""

from __future__ import annotations

import json

import pytest
from fakestate import console_host, drv, tree

from vfioctl import engine
from vfioctl.base.errors import InUse


# ---------------------------------------------------------------- console hand-off
def test_boot_vga_without_take_console_is_refused_naming_the_flag(fake):
    h, _ = console_host(fake)
    with pytest.raises(InUse, match="--take-console"):
        engine.hide(h, ["00:01.0"])
    assert drv(fake, "0000:00:01.0") == "bochs-drm"


def test_take_console_and_restore(fake, capsys):
    h, calls = console_host(fake)
    before = tree(fake.root)
    plan = engine.plan_hide(h, ["00:01.0"], take_console=True)
    text = plan.render()
    assert "systemctl stop gdm.service" in text
    assert "write 0 > /sys/class/vtconsole/vtcon0/bind" in text
    assert "0000:00:01.0/driver_override" in text
    res = engine.hide(h, ["00:01.0"], take_console=True)
    assert res.changed and drv(fake, "0000:00:01.0") == "vfio-pci"
    # as on the lab kernel: fbcon's entry left with bochs-drm, the dummy console holds the consoles
    assert not (fake.root / "sys/class/vtconsole/vtcon0").exists()
    assert (fake.root / "sys/class/vtconsole/vtcon1/bind").read_text().strip() == "1"
    assert ["systemctl", "stop", "--", "gdm.service"] in calls
    j = json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())
    assert j["handoff"]["0000:00:01.0"]["units_stopped"] == ["gdm.service"]
    assert j["handoff"]["0000:00:01.0"]["vtcons_unbound"] == [0]
    from vfioctl.cli import main

    assert main(["--root", str(fake.root), "status"]) == 0
    assert ("0000:00:01.0  console handed over: stopped gdm.service; unbound vtcon0 from the frame buffer "
            "console (restore gives it back)") in capsys.readouterr().out
    engine.restore(h, ["00:01.0"])
    assert drv(fake, "0000:00:01.0") == "bochs-drm"
    assert (fake.root / "sys/class/vtconsole/vtcon0/bind").read_text().strip() == "1"
    assert calls[-1] == ["systemctl", "start", "--", "gdm.service"]
    assert json.loads((fake.root / "var/lib/vfioctl/state.json").read_text()).get("handoff", {}) == {}
    after = tree(fake.root)
    assert {k: v for k, v in after.items() if k != ".vfioctl/probes.json"} == \
        {k: v for k, v in before.items() if k != ".vfioctl/probes.json"}


def test_a_process_holding_the_card_is_named_and_refused(fake):
    h, _ = console_host(fake, dm_active=False)
    fd = fake.root / "proc/4321/fd"
    fd.mkdir(parents=True)
    (fd / "7").symlink_to("/dev/dri/card0")
    (fake.root / "proc/4321/comm").write_text("Xorg\n")
    (fake.root / "proc/4321/cgroup").write_text("0::/user.slice/user-1000.slice/session-2.scope\n")
    with pytest.raises(InUse, match=r"PID 4321 Xorg \(/dev/dri/card0"):
        engine.hide(h, ["00:01.0"], take_console=True)
    assert drv(fake, "0000:00:01.0") == "bochs-drm"



def test_a_process_of_the_unit_being_stopped_does_not_block(fake):
    h, calls = console_host(fake)
    fd = fake.root / "proc/4321/fd"
    fd.mkdir(parents=True)
    (fd / "7").symlink_to("/dev/dri/card0")
    (fake.root / "proc/4321/comm").write_text("Xorg\n")
    (fake.root / "proc/4321/cgroup").write_text("0::/system.slice/gdm.service\n")
    plan = engine.plan_hide(h, ["00:01.0"], take_console=True)
    assert "systemctl stop gdm.service" in plan.render()


@pytest.mark.parametrize("k", range(1, 9))
def test_a_failure_at_each_step_leaves_the_host_as_before(fake, k):
    h, _ = console_host(fake)
    before = tree(fake.root)
    count = {"n": 0}

    def fail(path, value):
        count["n"] += 1
        if count["n"] == k:
            raise OSError(5, "Input/output error")

    h.write_hook.fail = fail
    try:
        engine.hide(h, ["00:01.0"], take_console=True)
    except Exception:
        pass
    else:
        h.write_hook.fail = None
        engine.restore(h, ["00:01.0"])
    after = tree(fake.root)
    assert {p: v for p, v in after.items() if p != ".vfioctl/probes.json"} == \
        {p: v for p, v in before.items() if p != ".vfioctl/probes.json"}
    assert drv(fake, "0000:00:01.0") == "bochs-drm"


def test_apply_prune_gives_back_a_handed_over_console(fake, tmp_path):
    """A GPU whose config entry is gone is given back by `apply --prune` the way `restore` gives
    it back: driver, console and display manager (before, prune dropped the hand-off record and
    left the consoles unbound and the display manager stopped)."""
    from vfioctl.ops.config import load_config

    h, calls = console_host(fake)
    engine.hide(h, ["00:01.0"], take_console=True)
    assert drv(fake, "0000:00:01.0") == "vfio-pci"
    (fake.root / "etc/vfioctl").mkdir(parents=True, exist_ok=True)
    (fake.root / "etc/vfioctl/vfioctl.toml").write_text("# nothing assigned any more\n")
    cfg = load_config(h, "/etc/vfioctl/vfioctl.toml")
    text = engine.plan_apply(h, cfg, prune=True).render()
    assert "systemctl start gdm.service" in text and "/sys/class/vtconsole/vtcon" in text, text
    engine.apply(h, cfg, prune=True)
    assert drv(fake, "0000:00:01.0") == "bochs-drm"
    assert (fake.root / "sys/class/vtconsole/vtcon0/bind").read_text().strip() == "1"
    assert calls[-1] == ["systemctl", "start", "--", "gdm.service"]
    assert json.loads((fake.root / "var/lib/vfioctl/state.json").read_text()).get("handoff", {}) == {}
