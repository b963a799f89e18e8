"""Selectors (config match tables, CLI id:/class:/pf: specs, count) and the libvirt hook on a fake host."""

from __future__ import annotations

import json

import pytest

from vfioctl import engine
from vfioctl.base.errors import ConfigError, InUse, InvalidInput, Refused
from vfioctl.cli import main
from vfioctl.guest import hook
from vfioctl.ops.config import parse_config
from vfioctl.ops.match import from_spec, parse_vfs
from vfioctl.pci.address import PciAddress

P = "/etc/vfioctl/vfioctl.toml"


def drv(fake, a):
    return fake.current_driver(a)


def journal(fake):
    return json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())


def write_config(fake, text):
    (fake.root / "etc/vfioctl").mkdir(parents=True, exist_ok=True)
    (fake.root / "etc/vfioctl/vfioctl.toml").write_text(text)
    return parse_config(text, P)


# ---------------------------------------------------------------- parsing
@pytest.mark.parametrize("text, why", [
    ('[[device]]\nmatch = { id = "zz" }\n', "not vvvv:dddd"),
    ('[[device]]\nmatch = { class = "toaster" }\n', "neither a class code"),
    ('[[device]]\nmatch = { vfs = "0-1" }\n', "needs pf"),
    ('[[device]]\nmatch = { pf = "00:04.0", vfs = "3-1" }\n', "runs backwards"),
    ('[[device]]\nmatch = { id = "8086:10d3" }\ncount = 0\n', "1 or more"),
    ('[[device]]\nmatch = { id = "8086:10d3" }\naddress = "00:02.0"\n', "not both"),
    ('[[device]]\naddress = "00:02.0"\nid = "8086:10d3"\ncount = 1\n', "go with match"),
    ('[[device]]\nmatch = { colour = "red" }\n', "unknown key 'colour'"),
    ('[[device]]\naddress = "00:01.0"\nid = "1234:1111"\nstop_units = ["gdm.service"]\n', "goes with take_console"),
    ('[[device]]\naddress = "00:01.0"\nid = "1234:1111"\ntake_console = true\nstop_units = ["a;b"]\n', "services to stop"),
])
def test_bad_selectors_are_config_errors(text, why):
    with pytest.raises(ConfigError, match=why):
        parse_config(text, P)


def test_vf_ranges_and_specs():
    assert parse_vfs("0-3,5", "x") == (0, 1, 2, 3, 5)
    assert parse_vfs([2, 0], "x") == (0, 2)
    m = from_spec("pf:0000:00:04.0/vfs:0-1")
    assert m.pf == PciAddress.parse("00:04.0") and m.vfs == (0, 1)
    assert from_spec("class:nvme").class_code == (0x010802, 6)
    assert from_spec("00:02.0") is None
    with pytest.raises(InvalidInput):
        from_spec("pf:00:04.0/0-1")


# ---------------------------------------------------------------- config selectors
def test_count_selector_skips_a_twin_in_use_and_is_stable(fake, host):
    # 00:02.0 carries an address and route: only 00:07.0 is free
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({"ipv4:eth0": "192.0.2.10/24"}))
    (fake._devdir("0000:00:02.0") / "net/eth0/flags").write_text("0x1003\n")
    cfg = write_config(fake, '[[device]]\nmatch = { id = "8086:10d3" }\ncount = 1\n')
    plan = engine.plan_apply(host, cfg)
    assert [c.address for c in plan.changes] == ["0000:00:07.0"]
    assert any("passed over 0000:00:02.0: the host uses it" in n for n in plan.notes)
    engine.apply(host, cfg)
    assert drv(fake, "0000:00:07.0") == "vfio-pci" and drv(fake, "0000:00:02.0") == "e1000e"
    assert journal(fake)["devices"]["0000:00:07.0"]["entry"] == f"{P}: [[device]] #1"
    n = len(host.writes)
    assert engine.plan_apply(host, cfg).empty
    engine.apply(host, cfg)
    assert len(host.writes) == n  # a second apply writes nothing


def test_shortage_refuses_the_whole_config_and_names_what_it_found(fake, host):
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({"ipv4:eth0": "192.0.2.10/24"}))
    (fake._devdir("0000:00:02.0") / "net/eth0/flags").write_text("0x1003\n")
    cfg = write_config(fake, '[[device]]\naddress = "01:01.0"\nid = "8086:100e"\ngroup = true\n'
                             '[[device]]\nmatch = { id = "8086:10d3" }\ncount = 2\n')
    with pytest.raises(Refused) as e:
        engine.apply(host, cfg)
    msg = str(e.value)
    assert "needs 2 free device(s) matching id 8086:10d3, found 1 (0000:00:07.0)" in msg
    assert "0000:00:02.0 (the host uses it: interface eth0 is up with address 192.0.2.10/24)" in msg
    assert host.writes == []


def test_the_journal_choice_wins_over_a_free_twin(fake, host):
    cfg = write_config(fake, '[[device]]\nmatch = { id = "8086:10d3" }\ncount = 1\n')
    # taken earlier: 00:07.0, although 00:02.0 (lower address) is free now
    engine.hide(host, ["00:07.0"])
    j = journal(fake)
    j["devices"]["0000:00:07.0"]["entry"] = f"{P}: [[device]] #1"
    (fake.root / "var/lib/vfioctl/state.json").write_text(json.dumps(j))
    assert engine.plan_apply(host, cfg).empty


def test_pf_vf_range_selector(fake, host):
    engine.sriov_set(host, "00:04.0", 3)
    cfg = write_config(fake, '[[device]]\nmatch = { pf = "00:04.0", vfs = "0-1" }\n')
    engine.apply(host, cfg)
    # autoprobe was on: the host driver took the VFs; the selector moved exactly VF0 and VF1
    assert [drv(fake, f"0000:00:04.{i}") for i in (1, 2, 3)] == ["vfio-pci", "vfio-pci", "nvme"]


def test_pf_vf_range_selector_on_vfs_the_same_apply_creates(fake, host):
    cfg = write_config(fake, '[[sriov]]\npf = "00:04.0"\nnumvfs = 3\n\n[[device]]\nmatch = { pf = "00:04.0", vfs = "0-1" }\n')
    plan = engine.plan_apply(host, cfg)
    text = plan.render()
    assert "write 0 > /sys/bus/pci/devices/0000:00:04.0/sriov_drivers_autoprobe" in text  # before the VFs exist
    assert "0000:00:04.1/driver_override" in text and "0000:00:04.3/driver_override" not in text
    engine.apply(host, cfg)
    assert [drv(fake, f"0000:00:04.{i}") for i in (1, 2, 3)] == ["vfio-pci", "vfio-pci", None]
    assert journal(fake)["devices"]["0000:00:04.1"]["entry"] == f"{P}: [[device]] #1"
    assert engine.plan_apply(host, cfg).empty  # stable: the VFs exist now and stay chosen


# ---------------------------------------------------------------- CLI selectors
def test_cli_count_selector_and_class(fake, host):
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({"ipv4:eth0": "192.0.2.10/24"}))
    (fake._devdir("0000:00:02.0") / "net/eth0/flags").write_text("0x1003\n")
    plan = engine.plan_hide(host, ["id:8086:10d3"], count=1)
    assert [c.address for c in plan.changes] == ["0000:00:07.0"]
    with pytest.raises(Refused, match="needs 2 free"):
        engine.plan_hide(host, ["id:8086:10d3"], count=2)
    with pytest.raises(InvalidInput, match="--count goes with a selector"):
        engine.plan_hide(host, ["00:07.0"], count=1)
    # without --count every match is taken, and one in use is refused as usual
    with pytest.raises(InUse):
        engine.plan_hide(host, ["id:8086:10d3"])
    # a class selector next to an address: the SATA controller (class 0106) and the twin; its
    # group holds the LPC bridge (class 0601), the platform itself: --force does not take it
    with pytest.raises(InUse, match=r"0000:00:1f\.0: it is an ISA/LPC bridge .*--force-platform"):
        engine.plan_hide(host, ["class:sata", "00:07.0"], group=True, force=True)
    plan = engine.plan_hide(host, ["class:sata", "00:07.0"], group=True, force_platform=True)
    assert {c.address for c in plan.changes} >= {"0000:00:07.0", "0000:00:1f.2", "0000:00:1f.0"}


def test_cli_hide_selector_records_the_spec(fake, host, capsys, monkeypatch):
    engine.sriov_set(host, "00:04.0", 2)
    engine.hide(host, ["pf:0000:00:04.0/vfs:1"])
    assert drv(fake, "0000:00:04.2") == "vfio-pci" and drv(fake, "0000:00:04.1") == "nvme"
    assert journal(fake)["devices"]["0000:00:04.2"]["entry"] == "cli: pf:0000:00:04.0/vfs:1"


def test_cli_selector_matching_nothing_is_not_found_with_a_hint(fake, capsys):
    from vfioctl.cli import main

    rc = main(["--root", str(fake.root), "hide", "pf:0000:00:04.0/vfs:0-1"])
    err = capsys.readouterr().err
    assert rc == 66 and "nothing on this host matches pf:0000:00:04.0/vfs:0-1" in err and "sriov set" in err
    rc = main(["--root", str(fake.root), "hide", "id:dead:beef", "--dry-run"])
    assert rc == 66 and "`vfioctl list` shows what is there" in capsys.readouterr().err
    assert drv(fake, "0000:00:04.0") == "nvme"


# ---------------------------------------------------------------- the libvirt hook
DOMAIN = """<domain type='kvm'><name>web1</name><devices>
  <hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/>
    <source><address domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></source></hostdev>
  <hostdev mode='subsystem' type='pci' managed='yes'>
    <source><address domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></source></hostdev>
</devices></domain>"""


def test_hostdevs_takes_managed_no_pci_only():
    assert hook.hostdevs(DOMAIN) == [PciAddress.parse("00:07.0")]
    with pytest.raises(InvalidInput, match="does not parse"):
        hook.hostdevs("<domain><devices>")
    bad = DOMAIN.replace("bus='0x00' slot='0x07'", "bus='0x00' slot='zz'")
    with pytest.raises(InvalidInput, match="cannot read"):
        hook.hostdevs(bad)


def test_hook_prepare_hides_and_release_gives_back_only_its_own(fake, host):
    assert "hid 0000:00:07.0" in hook.run(host, ["web1", "prepare", "begin", "-"], DOMAIN)
    assert drv(fake, "0000:00:07.0") == "vfio-pci"
    assert journal(fake)["devices"]["0000:00:07.0"]["origin"] == "libvirt:web1"
    # another domain naming the same device releases nothing of it
    assert "nothing vfioctl took" in hook.run(host, ["web2", "release", "end", "-"], DOMAIN)
    assert drv(fake, "0000:00:07.0") == "vfio-pci"
    assert "gave back 0000:00:07.0" in hook.run(host, ["web1", "release", "end", "-"], DOMAIN)
    assert drv(fake, "0000:00:07.0") == "e1000e"
    assert hook.run(host, ["web1", "started", "begin", "-"], DOMAIN).endswith("nothing to do")


def test_hook_release_leaves_a_device_hidden_by_someone_else(fake, host):
    engine.hide(host, ["00:07.0"])  # hidden by hand before the domain starts
    hook.run(host, ["web1", "prepare", "begin", "-"], DOMAIN)
    hook.run(host, ["web1", "release", "end", "-"], DOMAIN)
    assert drv(fake, "0000:00:07.0") == "vfio-pci"


def test_hook_prepare_refusal_is_one_line_and_exit_69(fake, host, capsys, monkeypatch):
    import io
    import sys

    dom = DOMAIN.replace("slot='0x07'", "slot='0x01'")  # the boot VGA: refused without take_console
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(dom.encode())))
    rc = main(["--root", str(fake.root), "libvirt-hook", "run", "web1", "prepare", "begin", "-"])
    err = capsys.readouterr().err
    assert rc == 69 and err.count("\n") == 1 and "boot VGA" in err


def test_hook_install_is_idempotent_and_uninstall_removes_only_its_own(fake):
    h = fake.host(kernel=False)
    (fake.root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (fake.root / "usr/bin/vfioctl").write_text("")
    r = hook.install(h, vfioctl="/usr/bin/vfioctl")
    assert r.changed and r.path == "/etc/libvirt/hooks/qemu.d/vfioctl"
    f = fake.root / "etc/libvirt/hooks/qemu.d/vfioctl"
    assert f.read_text().endswith("exec /usr/bin/vfioctl libvirt-hook run \"$@\"\n")
    assert f.stat().st_mode & 0o111
    assert not hook.install(h, vfioctl="/usr/bin/vfioctl").changed
    f.write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(Refused, match="was not written by vfioctl"):
        hook.install(h, vfioctl="/usr/bin/vfioctl")
    assert not hook.uninstall(h).changed and f.exists()
    f.unlink()
    hook.install(h, vfioctl="/usr/bin/vfioctl")
    assert hook.uninstall(h).changed and not f.exists()


def test_hook_text_quotes_the_vfioctl_path():
    text = hook.hook_text(["/opt/my tools/vfioctl", "--x"])
    assert "exec '/opt/my tools/vfioctl' --x libvirt-hook run \"$@\"" in text


@pytest.mark.parametrize("domain", ["-h", "--json", "--", "--root=/some/dir", "--root", "-", "run", "--help"])
def test_hook_run_takes_libvirts_arguments_as_data(fake, domain, monkeypatch):
    """A domain named -h, --json, -- or --root=/some/dir was parsed as the hook's own option
    (the last ran the hook against another root) and the hook exited 0 having done nothing."""
    import io
    import sys

    seen = []
    monkeypatch.setattr(hook, "run", lambda host, argv, xml: seen.append((host.source, argv, xml)) or "ok")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DOMAIN.encode())))
    for lead in ([], ["--json"]):
        seen.clear()
        rc = main(["--root", str(fake.root), "libvirt-hook", *lead, "run", domain, "prepare", "begin", "-"])
        assert rc == 0
        assert seen and seen[0][0] == str(fake.root) and seen[0][1] == [domain, "prepare", "begin", "-"], seen
    assert hook.origin(domain) == f"libvirt:{domain}"


def test_the_hook_passes_libvirts_arguments_after_run():
    """The installed hook execs `vfioctl libvirt-hook run "$@"`: everything after `run` is data."""
    assert hook.hook_text(["/usr/bin/vfioctl"]).endswith(' libvirt-hook run "$@"\n')


_OURS = hook.hook_text(["/usr/bin/vfioctl"])


@pytest.mark.parametrize("text", [
    "#!/bin/sh\n# mine; mentions # vfioctl libvirt hook: written by `vfioctl libvirt-hook install`\nexec /opt/x \"$@\"\n",
    "#!/bin/sh\n# vfioctl libvirt hook\nexec /usr/bin/vfioctl libvirt-hook run \"$@\"\n",
    _OURS + "echo extra\n",
    _OURS.replace("exec /usr/bin/vfioctl", "exec /tmp/evil; /usr/bin/vfioctl"),
    _OURS.replace("exec /usr/bin/vfioctl", "exec vfioctl"),
], ids=["marker-in-a-comment", "marker-only", "a-line-added", "exec-changed", "relative-program"])
def test_hook_ownership_is_proven_by_the_exact_text(fake, text):
    """install overwrote, and uninstall removed, a hook vfioctl did not write that mentioned the marker."""
    h = fake.host(kernel=False)
    (fake.root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (fake.root / "usr/bin/vfioctl").write_text("")
    f = fake.root / "etc/libvirt/hooks/qemu.d/vfioctl"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    with pytest.raises(Refused, match="was not written by vfioctl"):
        hook.install(h, vfioctl="/usr/bin/vfioctl")
    assert not hook.uninstall(h).changed and f.read_text() == text
    assert not hook.installed(h)
    f.write_text(_OURS)
    assert hook.installed(h) and hook.is_our_hook(_OURS)
    assert hook.is_our_hook(hook.hook_text(["/opt/my tools/vfioctl", "--x"]))


@pytest.mark.parametrize("version", ["9" * 120000, "libvirtd (libvirt) " + "1." * 60000 + "0",
                                     "libvirtd (libvirt) 9.0.0", "١.٢.٣"])
def test_a_hostile_libvirt_version_is_read_in_linear_time(fake, version):
    """A 120,000-digit libvirt version made `libvirt-hook` run past 30 s."""
    import time

    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({"libvirt-version": version}))
    t = time.monotonic()
    got = hook.libvirt_version(fake.host(kernel=False))
    assert time.monotonic() - t < 2
    assert got == ((9, 0) if version.endswith("9.0.0") else (1, 1) if version.count("1.") > 2 else None)
