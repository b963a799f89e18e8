"""SR-IOV VF settings (issue 26): validation, the pure planner, journal and restore field by
field, idempotence, and a fault injected at each netlink write, on a fake tree whose PF driver
is simulated by a netlink hook (no pyroute2, no kernel)."""

from __future__ import annotations

import copy
import errno
import json
import os

import pytest
from fakehost import FakeDev

from vfioctl import engine
from vfioctl.base.errors import HostNotReady, InvalidInput, VfioctlError, from_oserror
from vfioctl.host import faults
from vfioctl.host.netlink import vf_request
from vfioctl.ops.config import parse_config
from vfioctl.ops.journal import Journal, parse_vfnet
from vfioctl.ops.plan.vfnet import VfWant, derive_mac, parse_vf_want, vf_net_plan
from vfioctl.ops.state import read_state
from vfioctl.ops.steps.sriov import SetVfSetting
from vfioctl.pci.address import PciAddress

PF = "0000:00:08.0"
IF = "enp0s8"
A = PciAddress.parse(PF)
DEFAULT = {"mac": "00:00:00:00:00:00", "vlan": [0, 0, "802.1Q"], "spoofchk": True, "trust": False,
           "link_state": "auto", "tx_rate": [0, 0]}


class FakeNic:
    """The PF driver's VF table, as netlink shows it; link_state is a setting it lacks (igb's)."""

    def __init__(self, fake) -> None:
        self.fake = fake
        self.refuse = {"link_state"}

    def vfs(self) -> list[dict]:
        d = self.fake._devdir(PF)
        n = int((d / "sriov_numvfs").read_text())
        store = d / "vfinfo.json"
        table = json.loads(store.read_text()) if store.exists() else []
        table = (table + [copy.deepcopy(DEFAULT) for _ in range(n)])[:n]
        return table

    def read(self, ifname: str):
        assert ifname == IF
        return self.vfs()

    def write(self, ifname: str, vf: int, field: str, value) -> None:
        if field in self.refuse:
            raise from_oserror(OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP)), "set", f"netlink:{ifname}")
        table = self.vfs()
        table[vf][field] = list(value) if isinstance(value, tuple) else value
        (self.fake._devdir(PF) / "vfinfo.json").write_text(json.dumps(table))


@pytest.fixture
def nic(fake, host, monkeypatch):
    fake.driver("igb")
    fake.add(FakeDev(PF, "8086", "10c9", group=8, driver="igb", net=[IF], totalvfs=7, vf_device="10ca",
                     matches=["igb"]))
    nd = fake._devdir(PF) / "net" / IF
    (nd / "speed").write_text("1000\n")
    (nd / "operstate").write_text("up\n")
    (fake.root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (fake._devdir(PF) / "sriov_drivers_autoprobe").write_text("0\n")
    host.write(f"/sys/bus/pci/devices/{PF}/sriov_numvfs", "2")
    n = FakeNic(fake)
    host.netlink_hook = n
    host.writes.clear()
    monkeypatch.setattr(faults, "_WRITES_TRIED", 0)
    return n


def state(host):
    return read_state(host, Journal(host), [A], vf_net=[A], machine_id=True)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize("values, words", [
    ({"mac": "03:00:00:00:00:01"}, "multicast"),
    ({"mac": "00:00:00:00:00:00"}, "zero"),
    ({"mac": "02:00:00:00:00"}, "not a MAC"),
    ({"vlan": 4096}, "0 to 4095"),
    ({"vlan": "-1"}, "0 to 4095"),
    ({"vlan": "１０"}, "0 to 4095"),  # fullwidth digits are not a number here
    ({"vlan": 5, "qos": 8}, "0 to 7"),
    ({"qos": 1}, "go with vlan"),
    ({"vlan": 5, "proto": "802.1x"}, "802.1Q or 802.1ad"),
    ({"trust": "maybe"}, "on or off"),
    ({"link_state": "up"}, "auto, enable or disable"),
    ({"colour": "red"}, "unknown VF setting"),
    ({}, "no setting"),
])
def test_parse_refuses_bad_values_naming_them(values, words):
    with pytest.raises(InvalidInput) as e:
        parse_vf_want("cli", 0, values)
    assert words in e.value.message and "\n" not in e.value.message


def test_parse_good_values():
    w = parse_vf_want("cli", "1", {"mac": "02:AA:bb:00:00:01", "vlan": "100", "qos": "3", "proto": "802.1ad",
                                   "spoofchk": "off", "trust": True, "max_tx_rate": "500"})
    assert w == VfWant(1, mac="02:aa:bb:00:00:01", vlan=100, qos=3, proto="802.1ad", spoofchk=False, trust=True,
                       max_tx_rate=500)


def test_derived_mac_is_stable_unicast_local_and_differs_per_host_pf_vf():
    m = derive_mac("a" * 32, A, 0)
    assert m == derive_mac("a" * 32, A, 0)
    first = int(m[:2], 16)
    assert first & 1 == 0 and first & 2 == 2
    others = {derive_mac("b" * 32, A, 0), derive_mac("a" * 32, PciAddress.parse("0000:00:09.0"), 0),
              derive_mac("a" * 32, A, 1)}
    assert m not in others and len(others) == 3


def test_config_vf_tables():
    cfg = parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 1\nmac = "derived"\n'
                       '[[sriov.vf]]\nindex = 0\nvlan = 7\n')
    assert [w.index for w in cfg.sriov[0].vfs] == [1, 0]
    with pytest.raises(InvalidInput, match="past numvfs"):
        parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 2\ntrust = true\n')


def test_vf_request_shapes():
    assert vf_request(1, "vlan", (100, 2, "802.1Q")) == {"vf": 1, "vlan": {"vlan": 100, "qos": 2}}
    assert vf_request(1, "vlan", (100, 0, "802.1ad")) == {"vf": 1, "vlan": [{"vlan": 100, "qos": 0, "proto": 0x88A8}]}
    assert vf_request(0, "tx_rate", (0, 300)) == {"vf": 0, "rate": {"min_tx_rate": 0, "max_tx_rate": 300}}
    assert vf_request(0, "link_state", "disable") == {"vf": 0, "link_state": 2}


# ------------------------------------------------------------------ planning (pure)
def test_plan_checks_before_any_write(nic, host):
    st = state(host)
    with pytest.raises(InvalidInput, match="past the PF's VF count"):
        vf_net_plan(st, A, [VfWant(2, trust=True)])
    with pytest.raises(InvalidInput, match="above enp0s8's link speed"):
        vf_net_plan(st, A, [VfWant(0, max_tx_rate=2000)])
    with pytest.raises(InvalidInput, match="given twice"):
        vf_net_plan(st, A, [VfWant(0, trust=True), VfWant(0, mac="02:00:00:00:00:01")])
    assert host.writes == []


def test_unknown_speed_is_not_unlimited(nic, fake, host):
    (fake._devdir(PF) / "net" / IF / "speed").write_text("-1\n")
    with pytest.raises(InvalidInput, match="unknown speed is not an unlimited one"):
        vf_net_plan(state(host), A, [VfWant(0, max_tx_rate=10)])


def test_a_setting_the_driver_does_not_report_is_refused_by_name(nic, fake, host):
    table = nic.vfs()
    table[0]["trust"] = None
    (fake._devdir(PF) / "vfinfo.json").write_text(json.dumps(table))
    with pytest.raises(InvalidInput, match="does not report trust"):
        vf_net_plan(state(host), A, [VfWant(0, trust=True)])


def test_plan_is_only_what_differs_and_derived_mac_needs_machine_id(nic, host):
    plan = vf_net_plan(state(host), A, [VfWant(0, spoofchk=True, trust=True, mac="derived")])
    sets = [s for s in plan.steps if isinstance(s, SetVfSetting)]
    assert [(s.field, s.want) for s in sets] == [("mac", derive_mac("0123456789abcdef0123456789abcdef", A, 0)),
                                                 ("trust", True)]
    st = read_state(host, Journal(host), [A], vf_net=[A])
    with pytest.raises(HostNotReady, match="machine-id"):
        vf_net_plan(st, A, [VfWant(0, mac="derived")])


# ------------------------------------------------------------------ journal, restore, idempotence
def _config(extra: str = ""):
    return parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 0\nmac = "02:00:00:26:00:01"\n'
                        f'vlan = 100\n[[sriov.vf]]\nindex = 1\ntrust = true\nspoofchk = false\n{extra}')


def test_apply_journals_originals_restore_puts_them_back_and_rerun_writes_nothing(nic, host):
    before = nic.vfs()
    res = engine.apply(host, _config())
    assert res.changed
    now = nic.vfs()
    assert now[0]["mac"] == "02:00:00:26:00:01" and now[0]["vlan"] == [100, 0, "802.1Q"]
    assert now[1]["trust"] is True and now[1]["spoofchk"] is False
    j = json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())
    assert j["vfnet"][PF]["originals"] == {"0": {"mac": "00:00:00:00:00:00", "vlan": [0, 0, "802.1Q"]},
                                           "1": {"spoofchk": True, "trust": False}}
    host.writes.clear()
    assert not engine.apply(host, _config()).changed
    assert host.writes == []
    engine.restore(host, all=True)
    assert nic.vfs() == before
    assert "vfnet" not in json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())


def test_prune_gives_back_a_field_the_config_dropped(nic, host):
    engine.apply(host, _config())
    cfg = parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 0\nmac = "02:00:00:26:00:01"\n')
    engine.apply(host, cfg, prune=True)
    vfs = nic.vfs()
    assert vfs[0]["mac"] == "02:00:00:26:00:01" and vfs[0]["vlan"] == [0, 0, "802.1Q"]
    assert vfs[1]["trust"] is False and vfs[1]["spoofchk"] is True
    j = json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())
    assert j["vfnet"][PF]["originals"] == {"0": {"mac": "00:00:00:00:00:00"}}


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_failure_at_each_write_leaves_every_setting_as_it_was(nic, host, monkeypatch, k):
    before = nic.vfs()
    monkeypatch.setenv("VFIOCTL_FAULT_FAIL_AT", str(k))
    with pytest.raises(VfioctlError) as e:
        engine.apply(host, _config())
    assert "rolled back" in e.value.message
    assert nic.vfs() == before
    assert "vfnet" not in json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())


def test_the_kernel_refusing_a_setting_names_it_exit_65_and_rolls_back(nic, host):
    before = nic.vfs()
    with pytest.raises(InvalidInput) as e:
        engine.apply(host, _config('link_state = "disable"\n'))
    assert e.value.exit_code == 65 and "link_state" in e.value.message and "EOPNOTSUPP" in e.value.message
    assert "\n" not in e.value.message
    assert nic.vfs() == before


def test_planted_journal_values_are_refused():
    good = json.dumps({"vfnet": {PF: {"pf": PF, "originals": {"0": {"mac": "02:00:00:00:00:01"}}}}})
    assert parse_vfnet(good, "j")[PF].originals == {"0": {"mac": "02:00:00:00:00:01"}}
    for bad in ({"0": {"mac": "02:00:00:00:00:01; reboot"}}, {"0": {"shell": 1}}, {"x": {"trust": True}},
                {"0": {"vlan": [5000, 0, "802.1Q"]}}):
        text = json.dumps({"vfnet": {PF: {"pf": PF, "originals": bad}}})
        with pytest.raises(InvalidInput, match="damaged"):
            parse_vfnet(text, "j")


# ------------------------------------------------------------------ read side
def test_show_assess_and_guests_carry_the_vf_settings(nic, fake, host):
    from vfioctl.pci.device import PciDevice
    from vfioctl.pci.sriov import pf_info
    from vfioctl.report.devassess import assess_devices

    table = nic.vfs()
    table[1]["spoofchk"] = False
    table[0]["mac"] = "02:00:00:26:00:01"
    (fake._devdir(PF) / "vfinfo.json").write_text(json.dumps(table))
    info = pf_info(PciDevice(host, A))
    assert info["net"]["ifname"] == IF and info["net"]["speed_mbps"] == 1000
    assert [v["settings"]["mac"] for v in info["vfs"]] == ["02:00:00:26:00:01", "00:00:00:00:00:00"]
    (fake._devdir(PF) / "net" / IF / "operstate").write_text("down\n")
    vf0, vf1 = (os.readlink(fake._devdir(PF) / f"virtfn{i}").rsplit("/", 1)[-1] for i in (0, 1))
    (a0, a1) = assess_devices(host, [vf0, vf1], read_roms=False)
    f1 = a1.get("vf-net")
    assert f1 is not None and f1.status == "warn"
    assert "random one at each boot" in f1.evidence and "is down" in f1.evidence and "not trusted" in f1.evidence
    f0 = a0.get("vf-net")
    assert f0 is not None and "random" not in f0.evidence and "not trusted" not in f0.evidence
