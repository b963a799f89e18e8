"""reset, reset-method choice, option ROMs, assess and the console hand-off on a fake host
with the simulated PCI core (the real kernel: tests/vm/test_devops.py)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from rombuild import e1000e_like

from vfioctl import engine
from vfioctl.base.errors import InUse, InvalidInput, Refused
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import PciNode, hot_reset_reach
from vfioctl.pci.rom import live_rom, read_rom
from vfioctl.report.devassess import assess_devices


def drv(fake, addr):
    return fake.current_driver(addr)


def attr(fake, addr, name):
    return (fake.root / "sys/bus/pci/devices" / addr / name).read_text().strip()


def tree(root):
    """Every path with its content or link target: what 'the host as before' means here."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            # the journal, the snapshot's probes, and vfio-pci once loaded (a loaded module stays)
            if rel.startswith(("var/lib/vfioctl", ".vfioctl", "sys/bus/pci/drivers/vfio-pci")):
                continue
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                out[rel] = open(p, "rb").read()
    return out


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


# ---------------------------------------------------------------- reset method choice
def test_hide_with_a_reset_method_is_journaled_and_restored(fake, host):
    # a function on a root bus lists no "bus" (pci_parent_bus_reset): flr and pm
    (fake._devdir("0000:00:07.0") / "reset_method").write_text("flr pm\n")
    res = engine.hide(host, ["00:07.0"], reset_method=["pm"])
    assert res.changed
    assert attr(fake, "0000:00:07.0", "reset_method") == "pm"
    j = json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())
    assert j["devices"]["0000:00:07.0"]["original_reset_method"] == ["flr", "pm"]
    engine.restore(host, ["00:07.0"])
    assert attr(fake, "0000:00:07.0", "reset_method") == "flr pm"
    assert drv(fake, "0000:00:07.0") == "e1000e"


def test_a_reset_method_the_kernel_does_not_offer_is_refused_before_any_write(fake, host):
    with pytest.raises(InvalidInput, match="does not offer reset method pm.*it offers: flr bus"):
        engine.hide(host, ["00:07.0"], reset_method=["pm"])
    with pytest.raises(InvalidInput, match="each once"):
        engine.hide(host, ["00:07.0"], reset_method=["bus", "bus"])
    assert host.writes == []


def test_reset_method_of_an_already_hidden_device_is_changed_alone(fake, host):
    (fake._devdir("0000:00:07.0") / "reset_method").write_text("flr pm\n")  # a root bus: no "bus"
    engine.hide(host, ["00:07.0"])
    res = engine.hide(host, ["00:07.0"], reset_method=["flr"])
    assert res.changed and attr(fake, "0000:00:07.0", "reset_method") == "flr"
    engine.restore(host, ["00:07.0"])
    assert attr(fake, "0000:00:07.0", "reset_method") == "flr pm"


# ---------------------------------------------------------------- option ROMs
def test_live_rom_enables_reads_and_disables(fake, host):
    rom = e1000e_like()
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(rom)
    got = live_rom(host, "0000:00:07.0")
    assert base64.b64decode(got["base64"]) == rom
    assert host.writes == [("/sys/bus/pci/devices/0000:00:07.0/rom", "1"),
                           ("/sys/bus/pci/devices/0000:00:07.0/rom", "0")]


def test_live_rom_disables_even_when_the_read_fails(fake, host):
    def fail(path, value):
        if path.endswith("/rom") and value == "1":
            (fake._devdir("0000:00:07.0") / "rom").unlink()

    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"\x55\xaa")
    host.write_hook.fail = fail
    got = live_rom(host, "0000:00:07.0")
    assert "cannot read the ROM" in got["error"]
    assert host.writes[-1] == ("/sys/bus/pci/devices/0000:00:07.0/rom", "0")


def test_live_rom_holds_a_runtime_suspended_device_in_d0_for_the_read(fake, host):
    """vfio-pci lets an idle device sleep in D3hot, where its ROM BAR answers nothing (QEMU 10,
    real hardware): power/control "on" for the read, "auto" put back after it, also on failure."""
    dev = fake._devdir("0000:00:07.0")
    (dev / "rom").write_bytes(e1000e_like())
    (dev / "power").mkdir(exist_ok=True)
    (dev / "power/control").write_text("auto\n")
    got = live_rom(host, "0000:00:07.0")
    assert "base64" in got
    base = "/sys/bus/pci/devices/0000:00:07.0"
    assert host.writes == [(f"{base}/power/control", "on"), (f"{base}/rom", "1"), (f"{base}/rom", "0"),
                           (f"{base}/power/control", "auto")]
    host.writes.clear()
    (dev / "rom").unlink()
    assert "cannot read the ROM" in live_rom(host, "0000:00:07.0")["error"]
    assert host.writes[-1] == (f"{base}/power/control", "auto")


def test_cli_rom_lists_each_image_once_with_its_offset(fake, capsys):
    from vfioctl.cli import main

    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps(
        {"rom:0000:00:07.0": {"base64": base64.b64encode(e1000e_like()).decode()}}))
    assert main(["--root", str(fake.root), "rom", "00:07.0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("0000:00:07.0  [8086:10d3]  option ROM, ") and out[0].endswith(" bytes, 2 images:")
    assert out[1].startswith("  image 0 at 0x00000: x86 BIOS (8086:10d3")
    assert out[2].startswith("  image 1 at 0x") and "EFI X64 boot service driver" in out[2]
    assert len(out) == 3


def test_snapshot_answers_the_rom_it_captured(fake):
    rom = e1000e_like()
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps(
        {"rom:0000:00:07.0": {"base64": base64.b64encode(rom).decode()}}))
    h = fake.host(kernel=False)
    assert read_rom(h, PciAddress.parse("00:07.0")) == rom
    a = assess_devices(h, ["00:07.0"], read_roms=True)[0]
    rom_finding = a.get("option-rom")
    assert rom_finding is not None and "EFI" in rom_finding.evidence


# ---------------------------------------------------------------- assess
def test_assess_verdicts(fake, host):
    res = {str(a.address): a for a in assess_devices(host, ["00:07.0", "01:01.0", "00:01.0"])}
    assert res["0000:00:07.0"].verdict in ("ready", "caveats")
    assert res["0000:01:01.0"].get("iommu-group").status == "warn"
    assert res["0000:00:01.0"].get("console").status == "warn"  # boot VGA, no console on it


def test_assess_boot_gpu_with_its_console_is_blocked_unless_handed_over(fake):
    h, _ = console_host(fake)
    a = assess_devices(h, ["00:01.0"])[0]
    assert a.verdict == "blocked" and "--take-console" in a.get("console").fix
    a = assess_devices(h, ["00:01.0"], take_console=True)[0]
    assert a.get("console").status == "warn"


# ---------------------------------------------------------------- console hand-off
def console_host(fake, *, dm_active=True):
    """00:01.0 (bochs-drm, boot VGA) with fb0, vtcon0 bound to the frame buffer console, and a
    display manager that systemctl (simulated) stops and starts."""
    r = fake.root
    dev = fake._devdir("0000:00:01.0")
    (dev / "graphics/fb0").mkdir(parents=True)
    (dev / "drm/card0").mkdir(parents=True)
    (r / "sys/class/graphics").mkdir(parents=True)
    (r / "sys/class/graphics/fb0").symlink_to(os.path.relpath(dev / "graphics/fb0", r / "sys/class/graphics"))
    (dev / "graphics/fb0/device").symlink_to("../..")
    (r / "proc/fb").write_text("0 bochs-drmdrmfb\n")
    for n, name, bound in ((0, "(M) frame buffer device", "1"), (1, "(S) dummy device", "0")):
        v = r / f"sys/class/vtconsole/vtcon{n}"
        v.mkdir(parents=True)
        (v / "name").write_text(name + "\n")
        (v / "bind").write_text(bound + "\n")
    (r / ".vfioctl").mkdir(exist_ok=True)
    units = {"display-manager.service": {"id": "gdm.service", "active": "active" if dm_active else "inactive"},
             "gdm.service": {"id": "gdm.service", "active": "active" if dm_active else "inactive"}}

    def write_probes():
        (r / ".vfioctl/probes.json").write_text(json.dumps({f"unit:{k}": v for k, v in units.items()}))

    write_probes()
    h = fake.host()
    calls = []

    def run(host_, argv):
        calls.append(argv)
        if argv[0] == "modprobe":
            fake.driver(argv[-1].replace("_", "-"))
            return 0, ""
        if argv[0] == "systemctl":
            state = "inactive" if argv[1] == "stop" else "active"
            for u in units.values():
                u["active"] = state
            write_probes()
            host_._probes = None  # the fake's "systemd" changed
            return 0, ""
        return 127, "not simulated"

    h.run_hook = run
    return h, calls


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


def test_assess_walks_the_processes_once_and_names_each_group_s_holders_as_before(fake, host, monkeypatch):
    from vfioctl.report import devassess
    from vfioctl.usage.holders import Holder

    held = [Holder(4242, "qemu-system-x86", "web1", 7), Holder(17, "qemu", None, 3),
            Holder(5, "qemu", "db", 7)]
    calls = []

    def group_holders(h, groups=None):
        calls.append(groups)
        return sorted((x for x in held if groups is None or x.group in groups), key=lambda x: (x.group, x.pid))

    monkeypatch.setattr(devassess, "group_holders", group_holders)
    by_group = devassess.holders_by_group(host)
    for g in (3, 7, 9):
        assert by_group.get(g, []) == [x.describe() for x in group_holders(host, {g})]
    calls.clear()
    assess_devices(host, [])
    assert calls == [None]  # one walk for every device assessed
