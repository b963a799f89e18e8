"""The VF settings planner (ops/plan/vfnet.py, issue 26): what a user may ask for (validation,
one line naming the key), the derived MAC, and the pure planner: every check before any write,
only what differs, the originals journaled field by field, given back by restore and prune."""

from __future__ import annotations

import dataclasses
import json

import pytest
from vfnic import IF, PF, A, state, vf_config

from vfioctl import engine
from vfioctl.base.errors import HostNotReady, InvalidInput
from vfioctl.ops.config import parse_config
from vfioctl.ops.journal import Journal, VfNetRecord
from vfioctl.ops.plan.vfnet import (
    VfWant,
    derive_mac,
    desired,
    parse_vf_want,
    vf_net_plan,
    vf_prune_plan,
    vf_restore_steps,
    want_fields,
)
from vfioctl.ops.state import read_state
from vfioctl.ops.steps.journal import JournalCommit, JournalForgetVf, JournalRecord
from vfioctl.ops.steps.sriov import SetVfSetting
from vfioctl.pci.address import PciAddress


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


# ------------------------------------------------------------------ journal, restore, prune
def test_apply_journals_originals_restore_puts_them_back_and_rerun_writes_nothing(nic, host):
    before = nic.vfs()
    res = engine.apply(host, vf_config())
    assert res.changed
    now = nic.vfs()
    assert now[0]["mac"] == "02:00:00:26:00:01" and now[0]["vlan"] == [100, 0, "802.1Q"]
    assert now[1]["trust"] is True and now[1]["spoofchk"] is False
    j = json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())
    assert j["vfnet"][PF]["originals"] == {"0": {"mac": "00:00:00:00:00:00", "vlan": [0, 0, "802.1Q"]},
                                           "1": {"spoofchk": True, "trust": False}}
    host.writes.clear()
    assert not engine.apply(host, vf_config()).changed
    assert host.writes == []
    engine.restore(host, all=True)
    assert nic.vfs() == before
    assert "vfnet" not in json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())


def test_prune_gives_back_a_field_the_config_dropped(nic, host):
    engine.apply(host, vf_config())
    cfg = parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 0\nmac = "02:00:00:26:00:01"\n')
    engine.apply(host, cfg, prune=True)
    vfs = nic.vfs()
    assert vfs[0]["mac"] == "02:00:00:26:00:01" and vfs[0]["vlan"] == [0, 0, "802.1Q"]
    assert vfs[1]["trust"] is False and vfs[1]["spoofchk"] is True
    j = json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())
    assert j["vfnet"][PF]["originals"] == {"0": {"mac": "00:00:00:00:00:00"}}


# ------------------------------------------------------------------ validation: the branches not covered above
@pytest.mark.parametrize("index, values, words", [
    ("x", {"trust": True}, "vf = 'x' must be a whole number from 0 to 4095"),
    (True, {"trust": True}, "must be a whole number"),  # a TOML boolean is no index
    (4096, {"trust": True}, "from 0 to 4095"),
    (0, {"mac": 2}, "mac must be a string"),
    (0, {"vlan": True}, "0 to 4095"),
    (0, {"vlan": 0, "qos": 3}, "vlan 0 removes the VLAN"),
    (0, {"vlan": 0, "proto": "802.1ad"}, "vlan 0 removes the VLAN"),
    (0, {"proto": "802.1Q"}, "go with vlan"),
    (0, {"spoofchk": 1}, "must be on or off"),  # a number is not a switch
    (0, {"max_tx_rate": 1 << 32}, "0 to 4294967295"),
    (0, {"min_tx_rate": "fast"}, "Mbit/s; 0 is no limit"),
    (0, {"mac": "02:00:00:00:00:0g"}, "not a MAC"),
    (0, {"mac": "02:00:00:00:00:01:02"}, "not a MAC"),
])
def test_parse_refuses_the_other_bad_values(index, values, words):
    with pytest.raises(InvalidInput) as e:
        parse_vf_want("cfg", index, values)
    assert words in e.value.message and e.value.exit_code == 65


@pytest.mark.parametrize("values", [
    {"mac": "02:00:00:00:00:01\nreboot"},
    {"colour\n$(reboot)": "red"},
    {"link_state": "auto\ndisable"},
    {"vlan": 5, "proto": "802.1Q\n802.1ad"},
    {"vlan": "1\n2"},
    {"trust": "on\x1b[2J"},
])
def test_hostile_values_are_one_line_in_the_message(values):
    with pytest.raises(InvalidInput) as e:
        parse_vf_want("cli", 0, values)
    assert "\n" not in e.value.message and "\x1b" not in e.value.message


def test_surrounding_white_space_is_not_part_of_a_value():
    assert parse_vf_want("cli", 0, {"vlan": 5, "proto": "802.1Q\r\n"}) == VfWant(0, vlan=5, proto="802.1Q")


def test_parse_canonical_forms():
    w = parse_vf_want("cli", 2, {"mac": " Derived ", "vlan": 7, "proto": "802.1q", "link_state": " Enable ",
                                 "trust": "YES", "spoofchk": False, "min_tx_rate": 0})
    assert w == VfWant(2, mac="derived", vlan=7, proto="802.1Q", link_state="enable", trust=True, spoofchk=False,
                       min_tx_rate=0)
    assert w.to_dict() == {"index": 2, "mac": "derived", "vlan": 7, "proto": "802.1Q", "spoofchk": False,
                           "trust": True, "link_state": "enable", "min_tx_rate": 0}
    assert parse_vf_want("cli", 0, {"vlan": "0"}) == VfWant(0, vlan=0)


def test_desired_keeps_what_the_want_leaves_out(nic, host):
    st = state(host)
    got = desired(st, A, VfWant(1, vlan=9, max_tx_rate=300, link_state="disable"), {"tx_rate": (10, 0)})
    assert got == {"vlan": (9, 0, "802.1Q"), "link_state": "disable", "tx_rate": (10, 300)}
    assert desired(st, A, VfWant(1, min_tx_rate=5), {}) == {"tx_rate": (5, 0)}
    assert desired(st, A, VfWant(1, mac="derived"), {})["mac"] == derive_mac(st.machine_id, A, 1)
    with pytest.raises(HostNotReady, match="systemd-machine-id-setup"):
        desired(dataclasses.replace(st, machine_id=None), A, VfWant(1, mac="derived"), {})


def test_rates_checked_against_each_other_and_the_link(nic, host):
    st = state(host)
    with pytest.raises(InvalidInput, match="min_tx_rate 500 is above max_tx_rate 100"):
        vf_net_plan(st, A, [VfWant(0, min_tx_rate=500, max_tx_rate=100)])
    # a minimum with no maximum (0: no limit) is checked against the link only
    plan = vf_net_plan(st, A, [VfWant(0, min_tx_rate=500)])
    assert [(s.field, s.want) for s in plan.steps if isinstance(s, SetVfSetting)] == [("tx_rate", (500, 0))]
    # rates of 0 (no limit) need no known speed
    net = st.pf_net[A]
    slow = dataclasses.replace(st, pf_net={A: dataclasses.replace(net, speed=None, speed_text="-1")})
    assert vf_net_plan(slow, A, [VfWant(0, max_tx_rate=0)]).steps == []
    with pytest.raises(InvalidInput, match="says '-1'"):
        vf_net_plan(slow, A, [VfWant(0, max_tx_rate=1)])


def test_plan_refuses_a_pf_it_cannot_set(nic, host):
    assert vf_net_plan(state(host), A, []).steps == []
    st = read_state(host, Journal(host), [A, PciAddress.parse("00:07.0"), PciAddress.parse("00:04.0")],
                    vf_net=[A, PciAddress.parse("00:04.0")])
    with pytest.raises(InvalidInput, match="not SR-IOV capable"):
        vf_net_plan(st, PciAddress.parse("00:07.0"), [VfWant(0, trust=True)])
    with pytest.raises(HostNotReady, match="no network interface .driver nvme.*bind it first"):
        vf_net_plan(st, PciAddress.parse("00:04.0"), [VfWant(0, trust=True)])
    broken = dataclasses.replace(st, pf_net={A: dataclasses.replace(st.pf_net[A], error="Operation not permitted")})
    with pytest.raises(HostNotReady, match="cannot read the VF settings of enp0s8: Operation not permitted"):
        vf_net_plan(broken, A, [VfWant(0, trust=True)])
    short = dataclasses.replace(st, pf_net={A: dataclasses.replace(st.pf_net[A], vfs=st.pf_net[A].vfs[:1])})
    with pytest.raises(HostNotReady, match="IFLA_VFINFO_LIST has 1 entries"):
        vf_net_plan(short, A, [VfWant(1, trust=True)])
    assert host.writes == []


def test_a_pf_without_vfs_says_create_them_first(nic, host):
    host.write(f"/sys/bus/pci/devices/{PF}/sriov_numvfs", "0")
    with pytest.raises(InvalidInput, match=r"has no VFs \(sriov_numvfs 0\); create them first"):
        vf_net_plan(state(host), A, [VfWant(0, trust=True)])


def test_plan_shape_journal_record_steps_commit(nic, host):
    plan = vf_net_plan(state(host), A, [VfWant(1, vlan=10, qos=2), VfWant(0, spoofchk=False)], origin="apply")
    kinds = [type(s).__name__ for s in plan.steps]
    assert kinds == ["JournalRecord", "SetVfSetting", "SetVfSetting", "JournalCommit"]
    rec = plan.steps[0]
    assert isinstance(rec, JournalRecord) and isinstance(plan.steps[-1], JournalCommit)
    vn = rec.records[0]
    assert isinstance(vn, VfNetRecord) and vn.origin == "apply"
    assert vn.originals == {"1": {"vlan": (0, 0, "802.1Q")}, "0": {"spoofchk": True}}
    sets = [s for s in plan.steps if isinstance(s, SetVfSetting)]
    assert [(s.vf, s.field, s.want, s.previous, s.ifname) for s in sets] == [
        (1, "vlan", (10, 2, "802.1Q"), (0, 0, "802.1Q"), IF), (0, "spoofchk", False, True, IF)]
    (change,) = plan.changes
    assert change.address == PF and change.role == "PF" and "vf 1 vlan 10 qos 2 proto 802.1Q" in change.after


def test_settings_of_vfs_the_plan_creates_are_read_at_the_write(nic, host):
    """VFs still to be created have no settings to compare: every field is a step, its previous
    value read just before the write (None here), nothing journaled up front."""
    plan = vf_net_plan(state(host), A, [VfWant(3, trust=False, mac="02:00:00:00:00:07")], numvfs=4)
    assert all(isinstance(s, SetVfSetting) for s in plan.steps)
    assert [(s.field, s.want, s.previous, s.note) for s in plan.steps] == [
        ("mac", "02:00:00:00:00:07", None, "VF created by this plan"),
        ("trust", False, None, "VF created by this plan")]
    with pytest.raises(InvalidInput, match="past the PF's VF count .sriov_numvfs 4"):
        vf_net_plan(state(host), A, [VfWant(4, trust=True)], numvfs=4)


def _with_journal(st, originals):
    return dataclasses.replace(st, journal_vfnet={PF: VfNetRecord(PF, originals)})


def test_restore_steps_give_back_only_what_differs_now(nic, host):
    table = nic.vfs()
    table[0]["mac"] = "02:00:00:00:00:09"
    table[1]["vlan"] = [7, 1, "802.1ad"]
    nic.put(table)
    st = state(host)
    assert vf_restore_steps(st, A) == []  # nothing journaled
    st = _with_journal(st, {"0": {"mac": "00:00:00:00:00:00", "trust": False, "spoofchk": None},
                            "1": {"vlan": [0, 0, "802.1Q"]}, "5": {"trust": True}})
    got = [(s.vf, s.field, s.want, s.previous) for s in vf_restore_steps(st, A)]
    # trust is already False (no step), spoofchk None (never reported: nothing to give back), VF 5 is gone
    assert got == [(0, "mac", "00:00:00:00:00:00", "02:00:00:00:00:09"),
                   (1, "vlan", (0, 0, "802.1Q"), (7, 1, "802.1ad"))]
    only = [(s.vf, s.field) for s in vf_restore_steps(st, A, {("1", "vlan")})]
    assert only == [(1, "vlan")]


def test_prune_plan_forgets_the_stale_fields_only(nic, host):
    table = nic.vfs()
    table[0]["trust"] = True
    nic.put(table)
    st = _with_journal(state(host), {"0": {"trust": False, "mac": "00:00:00:00:00:00"}})
    assert vf_prune_plan(state(host), A, set()).steps == []  # no record
    assert vf_prune_plan(st, A, {("0", "trust"), ("0", "mac")}).steps == []
    plan = vf_prune_plan(st, A, {("0", "mac")})
    assert [type(s).__name__ for s in plan.steps] == ["SetVfSetting", "JournalForgetVf"]
    forget = plan.steps[-1]
    assert isinstance(forget, JournalForgetVf) and forget.pf == PF and forget.fields == [("0", "trust")]
    assert (plan.steps[0].field, plan.steps[0].want) == ("trust", False)


def test_want_fields_are_the_journal_keys():
    assert want_fields(VfWant(3, mac="02:00:00:00:00:01", vlan=5, qos=1, max_tx_rate=10)) == {
        ("3", "mac"), ("3", "vlan"), ("3", "tx_rate")}
    assert want_fields(VfWant(0, spoofchk=False, trust=True, link_state="auto")) == {
        ("0", "spoofchk"), ("0", "trust"), ("0", "link_state")}
