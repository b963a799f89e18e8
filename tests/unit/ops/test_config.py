"""The declarative config: parsing, validation messages, ID checks, and `vfioctl apply`."""

from __future__ import annotations

import json
import sys
import types

import pytest
from vfnic import PF

from vfioctl.base.errors import ConfigError, InvalidInput, NotFound, Refused
from vfioctl.cli import main
from vfioctl.ops.config import DeviceEntry, SriovEntry, load_config, parse_config
from vfioctl.pci.address import PciAddress

P = "/etc/vfioctl/vfioctl.toml"

GOOD = """
[[device]]
address = "00:07.0"
id = "8086:10D3"
subsystem = "8086:0000"

[[device]]
address = "0000:01:01.0"
id = "8086:100e"
group = true
driver = "vfio-pci"

[[sriov]]
pf = "0000:00:04.0"
numvfs = 2
hide = true
autoprobe = false
"""


def test_parse_good_config_normalizes_addresses_and_ids():
    c = parse_config(GOOD, P)
    assert c.path == P
    assert c.devices == [
        DeviceEntry(PciAddress(0, 0, 7, 0), ("8086", "10d3"), ("8086", "0000"), False, "vfio-pci",
                    source=f"{P}: [[device]] #1"),
        DeviceEntry(PciAddress(0, 1, 1, 0), ("8086", "100e"), None, True, "vfio-pci", source=f"{P}: [[device]] #2"),
    ]
    assert c.sriov == [SriovEntry(PciAddress(0, 0, 4, 0), 2, True, False, source=f"{P}: [[sriov]] #1")]
    assert c.to_dict()["devices"][0]["address"] == "0000:00:07.0"
    assert c.to_dict()["sriov"][0] == {"pf": "0000:00:04.0", "numvfs": 2, "hide": True, "autoprobe": False,
                                       "source": f"{P}: [[sriov]] #1"}


def test_empty_file_is_an_empty_config():
    c = parse_config("", P)
    assert c.devices == [] and c.sriov == []


def test_defaults():
    c = parse_config('[[device]]\naddress = "02:00.0"\nid = "10de:1b80"\n[[sriov]]\npf = "03:00.0"\nnumvfs = 0\n', P)
    d = c.devices[0]
    assert (d.group, d.driver, d.subsystem) == (False, "vfio-pci", None)
    s = c.sriov[0]
    assert (s.numvfs, s.hide, s.autoprobe) == (0, False, None)


@pytest.mark.parametrize("text, message", [
    ('[[device]]\naddress = "02:00.0"\nid = "8086:10d3"\n[[device]]\nadress = "03:00.0"\n',
     f"{P}: [[device]] #2: unknown key 'adress' (allowed: address, id, subsystem, group, driver, reset_method, take_console, stop_units, match, count, take_bound)"),
    ('[[device]]\nid = "8086:10d3"\n',
     f"{P}: [[device]] #1: missing required key 'address'"),
    ('[[device]]\naddress = "02:00.0"\n',
     f"{P}: [[device]] #1 (0000:02:00.0): missing required key 'id'"),
    ('[[device]]\naddress = "02:20.0"\nid = "8086:10d3"\n',
     f"{P}: [[device]] #1: address: invalid PCI address '02:20.0': slot 0x20 is out of range 00-1f"),
    ('[[device]]\naddress = "not-an-address"\nid = "8086:10d3"\n',
     f"{P}: [[device]] #1: address: invalid PCI address 'not-an-address'"),
    ('[[device]]\naddress = "02:00.0"\nid = "8086-10d3"\n',
     f"{P}: [[device]] #1 (0000:02:00.0): id = '8086-10d3' is not of the form vvvv:dddd"),
    ('[[device]]\naddress = "02:00.0"\nid = "8086:10d3"\nsubsystem = "zz:1"\n',
     f"{P}: [[device]] #1 (0000:02:00.0): subsystem = 'zz:1' is not of the form vvvv:dddd"),
    ('[[device]]\naddress = "02:00.0"\nid = "8086:10d3"\ngroup = "yes"\n',
     f"{P}: [[device]] #1 (0000:02:00.0): group = 'yes' must be true or false"),
    ('[[device]]\naddress = "02:00.0"\nid = "8086:10d3"\ndriver = "e1000e"\n',
     f"{P}: [[device]] #1 (0000:02:00.0): driver = 'e1000e' is not a vfio driver"),
    ('[[device]]\naddress = "02:00.0"\nid = "8086:10d3"\n[[device]]\naddress = "0000:02:00.0"\nid = "8086:10d3"\n',
     f"{P}: [[device]] #2: device 0000:02:00.0 is already listed in {P}: [[device]] #1"),
    ('[[sriov]]\npf = "03:00.0"\nnumvfs = 1\n[[sriov]]\npf = "03:00.0"\nnumvfs = 2\n',
     f"{P}: [[sriov]] #2: pf 0000:03:00.0 is already listed in {P}: [[sriov]] #1"),
    ('[[sriov]]\npf = "03:00.0"\nnumvfs = -1\n',
     f"{P}: [[sriov]] #1 (0000:03:00.0): numvfs = -1 must be a whole number, 0 or more"),
    ('[[sriov]]\npf = "03:00.0"\nnumvfs = "2"\n',
     f"{P}: [[sriov]] #1 (0000:03:00.0): numvfs = '2' must be a whole number"),
    ('[[sriov]]\npf = "03:00.0"\nnumvfs = true\n',
     f"{P}: [[sriov]] #1 (0000:03:00.0): numvfs = True must be a whole number"),
    ('[[sriov]]\npf = "03:00.0"\n',
     f"{P}: [[sriov]] #1 (0000:03:00.0): missing required key 'numvfs'"),
    ('[[sriov]]\npf = "03:00.0"\nnumvfs = 1\nvfs = 2\n',
     f"{P}: [[sriov]] #1: unknown key 'vfs' (allowed: pf, numvfs, hide, autoprobe, vf)"),
    ('[[devices]]\naddress = "02:00.0"\n',
     f"{P}: unknown top-level key 'devices' (allowed: [[device]], [[sriov]], [cdi])"),
    ('[device]\naddress = "02:00.0"\n',
     f"{P}: 'device' must be an array of tables, written [[device]]"),
    ('[[device]]\naddress = "02:00.0\n',
     f"{P}: TOML syntax error: "),
])
def test_validation_errors_name_file_and_entry(text, message):
    with pytest.raises(ConfigError) as ei:
        parse_config(text, P)
    assert str(ei.value).startswith(message), str(ei.value)
    assert "\n" not in str(ei.value)
    assert ei.value.exit_code == 65


def test_toml_syntax_error_has_line_and_column():
    with pytest.raises(ConfigError) as ei:
        parse_config('[[device]]\naddress = "02:00.0"\nid = 8086:10d3\n', P)
    assert "line 3" in str(ei.value) and "column" in str(ei.value)


def test_good_variant_drivers_accepted():
    for drv in ("vfio-pci", "mlx5_vfio_pci", "vfio_pci", "pci-stub"):
        c = parse_config(f'[[device]]\naddress = "02:00.0"\nid = "8086:10d3"\ndriver = "{drv}"\n', P)
        assert c.devices[0].driver == drv


def _write(fake, text, path=P):
    f = fake.root / path.lstrip("/")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)


def test_load_config_reads_under_the_host_root(fake):
    _write(fake, GOOD)
    c = load_config(fake.host(), P)
    assert [str(d.address) for d in c.devices] == ["0000:00:07.0", "0000:01:01.0"]


def test_load_config_missing_file(fake):
    with pytest.raises(NotFound) as ei:
        load_config(fake.host(), "/etc/vfioctl/none.toml")
    assert "/etc/vfioctl/none.toml does not exist" in str(ei.value)


def test_check_ids_matches_the_standard_host(fake):
    c = parse_config(GOOD, P)
    assert c.check_ids(fake.host()) == []
    c.verify_ids(fake.host())  # does not raise


def test_check_ids_reports_each_mismatch(fake):
    c = parse_config(
        '[[device]]\naddress = "00:07.0"\nid = "8086:1533"\n'
        '[[device]]\naddress = "00:02.0"\nid = "8086:10d3"\nsubsystem = "1028:0001"\n'
        '[[device]]\naddress = "0a:00.0"\nid = "8086:10d3"\n'
        '[[sriov]]\npf = "0b:00.0"\nnumvfs = 1\n', P)
    assert c.check_ids(fake.host()) == [
        f"{P}: [[device]] #1: expected 8086:1533 at 0000:00:07.0, found 8086:10d3",
        f"{P}: [[device]] #2: expected 8086:10d3 subsystem 1028:0001 at 0000:00:02.0, "
        "found 8086:10d3 subsystem 8086:0000",
        f"{P}: [[device]] #3: expected 8086:10d3 at 0000:0a:00.0, found nothing at that address",
        f"{P}: [[sriov]] #1: expected an SR-IOV PF at 0000:0b:00.0, found nothing at that address",
    ]
    with pytest.raises(Refused) as ei:
        c.verify_ids(fake.host())
    assert "nothing was changed" in str(ei.value) and "found 8086:10d3" in str(ei.value)
    assert ei.value.exit_code == 69


# ---------------------------------------------------------------- vfioctl apply, with a fake engine
class FakePlan:
    def __init__(self, changes):
        self.changes = changes
        self.notes = ["a note"]

    @property
    def empty(self):
        return not self.changes

    def render(self):
        return "PLAN " + ",".join(self.changes)

    def to_dict(self):
        return {"schema": "vfioctl.plan/1", "changes": list(self.changes)}


class FakeResult:
    def __init__(self, plan):
        self.plan = plan

    def render(self):
        return "DONE " + ",".join(self.plan.changes)

    def to_dict(self):
        return {"schema": "vfioctl.result/1", "changes": list(self.plan.changes)}


@pytest.fixture
def engine(monkeypatch):
    mod = types.ModuleType("vfioctl.ops.session")
    mod.calls = []
    mod.changes = ["0000:00:07.0"]

    class Session:
        def __init__(self, host, *, dry_run=False):
            self.dry_run = dry_run

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def plan_apply(self, config, *, prune=False, boot=False, force_platform=False):
            mod.calls.append(("plan", [str(d.address) for d in config.devices], prune))
            mod.force_platform = force_platform
            return FakePlan(list(mod.changes))

        def execute(self, plan):
            assert not self.dry_run
            mod.calls.append(("execute", "apply"))
            return FakeResult(plan)

    mod.Session = Session
    monkeypatch.setitem(sys.modules, "vfioctl.ops.session", mod)
    import vfioctl

    monkeypatch.setattr(vfioctl, "engine", mod, raising=False)
    return mod


def test_apply_executes_the_plan(fake, engine, capsys):
    _write(fake, GOOD)
    assert main(["--root", str(fake.root), "apply", "--prune"]) == 0
    assert capsys.readouterr().out == "DONE 0000:00:07.0\n"
    assert engine.calls == [("plan", ["0000:00:07.0", "0000:01:01.0"], True), ("execute", "apply")]


def test_apply_passes_force_platform_only_when_asked(fake, engine, capsys):
    _write(fake, GOOD)
    assert main(["--root", str(fake.root), "apply", "--dry-run"]) == 0
    assert engine.force_platform is False
    assert main(["--root", str(fake.root), "apply", "--dry-run", "--force-platform"]) == 0
    assert engine.force_platform is True


def test_apply_dry_run_prints_the_plan_and_executes_nothing(fake, engine, capsys):
    _write(fake, GOOD)
    assert main(["--root", str(fake.root), "apply", "--dry-run"]) == 0
    assert capsys.readouterr().out == "PLAN 0000:00:07.0\n"
    assert engine.calls == [("plan", ["0000:00:07.0", "0000:01:01.0"], False)]
    assert main(["--root", str(fake.root), "apply", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"schema": "vfioctl.plan/1", "changes": ["0000:00:07.0"]}


def test_apply_with_nothing_to_do(fake, engine, capsys):
    _write(fake, GOOD)
    engine.changes = []
    assert main(["--root", str(fake.root), "apply"]) == 0
    assert capsys.readouterr().out == "no changes: the host is in the declared state\nnote: a note\n"
    assert main(["--root", str(fake.root), "apply", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"schema": "vfioctl.plan/1", "changes": []}
    assert [c[0] for c in engine.calls] == ["plan", "plan"]  # never executed


def test_apply_custom_config_path(fake, engine, capsys):
    """--config names the caller's file on this machine, not one inside --root's tree."""
    _write(fake, '[[device]]\naddress = "00:02.0"\nid = "8086:10d3"\n', "/srv/lab.toml")
    assert main(["--root", str(fake.root), "apply", "--config", str(fake.root / "srv/lab.toml"), "--dry-run"]) == 0
    assert engine.calls[0][1] == ["0000:00:02.0"]
    assert main(["--root", str(fake.root), "apply", "--config", "/srv/lab.toml", "--dry-run"]) == 66
    assert "config file /srv/lab.toml does not exist" in capsys.readouterr().err


def test_apply_config_relative_to_the_working_directory(fake, engine, capsys, monkeypatch):
    """`apply --config ./lab.toml`, the form its own help shows, is the caller's file (issue 23)."""
    _write(fake, '[[device]]\naddress = "00:02.0"\nid = "8086:10d3"\n', "/srv/lab.toml")
    monkeypatch.chdir(fake.root / "srv")
    assert main(["--root", str(fake.root), "apply", "--config", "./lab.toml", "--dry-run"]) == 0
    assert engine.calls[0][1] == ["0000:00:02.0"]
    assert "must be absolute" not in capsys.readouterr().err


def test_apply_refuses_a_mismatch_before_planning(fake, engine, capsys):
    _write(fake, '[[device]]\naddress = "00:07.0"\nid = "8086:1533"\n')
    assert main(["--root", str(fake.root), "apply"]) == 69
    err = capsys.readouterr().err
    assert f"{P}: [[device]] #1: expected 8086:1533 at 0000:00:07.0, found 8086:10d3" in err
    assert engine.calls == []
    assert fake.host().writes == []


def test_apply_bad_config_exit_65(fake, engine, capsys):
    _write(fake, '[[device]]\nadress = "00:07.0"\n')
    assert main(["--root", str(fake.root), "apply", "--json"]) == 65
    captured = capsys.readouterr()
    assert json.loads(captured.out)["error"] == "ConfigError"
    assert "unknown key 'adress'" in captured.err
    assert engine.calls == []


# ------------------------------------------------------------------ [[sriov.vf]] tables (issue 26)
def test_config_vf_tables():
    cfg = parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 1\nmac = "derived"\n'
                       '[[sriov.vf]]\nindex = 0\nvlan = 7\n')
    assert [w.index for w in cfg.sriov[0].vfs] == [1, 0]
    with pytest.raises(InvalidInput, match="past numvfs"):
        parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 2\ntrust = true\n')
