"""The journal accepts only what vfioctl itself writes: a console hand-off names services it
could have stopped (never targets, devices, mounts, nor what reboots or rescues the
machine) and firmware frame buffers; `original_module` loads only the device's own driver
module.  A restore of such a journal starts no unit and loads no module."""

from __future__ import annotations

import json
import shutil

import pytest
from clirun import run
from vfnic import PF

from vfioctl import engine
from vfioctl.base.errors import InvalidInput
from vfioctl.ops.journal import parse, parse_vfnet

ALIASES = "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\nalias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"


def rec(**kw):
    r = {"address": "0000:00:07.0", "vendor_device": "8086:10d3", "original_driver": "e1000e",
         "original_override": None, "target_driver": "vfio-pci", "origin": "hide", "original_module": "e1000e",
         "added_ids": [], "state": "hidden", "since": 1700000000.5}
    r.update(kw)
    return r


def journal(devices=None, handoff=None):
    d = {"schema": "vfioctl.journal/1", "devices": devices or {"0000:00:07.0": rec()}, "sriov": {}}
    if handoff is not None:
        d["handoff"] = {"0000:00:07.0": {"address": "0000:00:07.0", "units_stopped": [], "vtcons_unbound": [],
                                         "platform_fbs": [], "state": "hidden", "since": 1700000000, **handoff}}
    return json.dumps(d)


@pytest.mark.parametrize("unit", ["reboot.target", "poweroff.target", "halt.target", "emergency.target",
                                  "rescue.target", "kexec.target", "dev-sda1.device", "home.mount", "x.socket",
                                  "systemd-reboot.service", "systemd-poweroff.service", "emergency.service",
                                  "rescue.service", "debug-shell.service", "reboot.service", "kexec.service",
                                  "systemd-soft-reboot.service", "gdm.service\n", "-H.service;x"])
def test_a_handoff_naming_what_vfioctl_never_stops_is_damaged(unit):
    with pytest.raises(InvalidInput, match="is damaged"):
        parse(journal(handoff={"units_stopped": ["gdm.service", unit]}), "/j")


@pytest.mark.parametrize("fb", [["e1000e", "e1000e"], ["efi-framebuffer.0", "vesa-framebuffer"],
                                ["../x", "efi-framebuffer"], ["efi-framebuffer.0/../../x", "efi-framebuffer"]])
def test_a_handoff_naming_another_platform_device_is_damaged(fb):
    with pytest.raises(InvalidInput, match="is damaged"):
        parse(journal(handoff={"platform_fbs": [fb]}), "/j")


def test_what_vfioctl_writes_is_accepted():
    devs, _, hand = parse(journal(handoff={"units_stopped": ["gdm.service", "display-manager.service",
                                                             "-H.service", "getty@tty1.service"],
                                           "platform_fbs": [["efi-framebuffer.0", "efi-framebuffer"],
                                                            ["simple-framebuffer", "simple-framebuffer"]],
                                           "vtcons_unbound": [0, 1]}), "/j")
    assert devs["0000:00:07.0"].original_module == "e1000e"
    assert hand["0000:00:07.0"].units_stopped[2] == "-H.service"


@pytest.mark.parametrize("bad", [{"since": float("nan")}, {"since": -1}, {"since": "x"}, {"origin": "a\nb"},
                                 {"origin": ""}, {"original_driver": None, "original_module": "e1000e"}])
def test_bad_record_fields_are_damaged(bad):
    text = journal(devices={"0000:00:07.0": rec(**bad)}).replace("NaN", "NaN")
    with pytest.raises(InvalidInput, match="is damaged"):
        parse(text, "/j")


def _hidden_with_driver_unloaded(fake, host, module):
    (fake.root / "lib/modules/6.1.0-test-amd64/modules.alias").write_text(ALIASES)
    engine.hide(host, ["00:07.0"])
    j = fake.root / "var/lib/vfioctl/state.json"
    data = json.loads(j.read_text())
    data["devices"]["0000:00:07.0"]["original_module"] = module
    j.write_text(json.dumps(data))
    fake.unbind("0000:00:02.0")
    shutil.rmtree(fake.root / "sys/bus/pci/drivers/e1000e")  # the module was unloaded since
    calls = []
    inner = host.run_hook

    def record(h, argv):
        calls.append(argv)
        return inner(h, argv)

    host.run_hook = record
    return calls


@pytest.mark.parametrize("module", ["usbip_host", "nvme", "e1000"])
def test_restore_loads_only_the_devices_own_driver_module(fake, host, module):
    """An edited original_module made `restore` run `modprobe usbip_host`, or any module it named."""
    calls = _hidden_with_driver_unloaded(fake, host, module)
    with pytest.raises(InvalidInput, match="does not offer"):
        engine.restore(host, ["00:07.0"])
    assert calls == []
    assert fake.current_driver("0000:00:07.0") == "vfio-pci"


def test_restore_loads_the_module_modules_alias_offers(fake, host):
    calls = _hidden_with_driver_unloaded(fake, host, "e1000e")
    engine.restore(host, ["00:07.0"])
    assert calls == [["modprobe", "--", "e1000e"]]
    assert fake.current_driver("0000:00:07.0") == "e1000e"


def test_a_handoff_journal_with_reboot_target_starts_nothing(fake):
    """Through the CLI: restore of an edited hand-off record is exit 65, one line, no unit started."""
    d = fake.root / "var/lib/vfioctl"
    d.mkdir(parents=True)
    d.chmod(0o700)
    (d / "state.json").write_text(journal(handoff={"units_stopped": ["reboot.target"]}))
    for argv in (["restore", "--all"], ["restore", "--all", "--dry-run"], ["status"]):
        rc, out, err = run(["--root", str(fake.root), *argv])
        assert rc == 65 and err.count("\n") == 1 and "is damaged" in err, (argv, rc, err)


# ------------------------------------------------------------------ VF settings' originals (issue 26)
def test_planted_journal_values_are_refused():
    good = json.dumps({"vfnet": {PF: {"pf": PF, "originals": {"0": {"mac": "02:00:00:00:00:01"}}}}})
    assert parse_vfnet(good, "j")[PF].originals == {"0": {"mac": "02:00:00:00:00:01"}}
    for bad in ({"0": {"mac": "02:00:00:00:00:01; reboot"}}, {"0": {"shell": 1}}, {"x": {"trust": True}},
                {"0": {"vlan": [5000, 0, "802.1Q"]}}):
        text = json.dumps({"vfnet": {PF: {"pf": PF, "originals": bad}}})
        with pytest.raises(InvalidInput, match="damaged"):
            parse_vfnet(text, "j")
