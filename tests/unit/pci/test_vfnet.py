"""A NIC PF's network side (pci/vfnet.py): each VF's settings as the kernel reports them, every
value checked (one not of its form is "not reported", never trusted), the PF's interface,
link speed and state, and a VF's own settings found through its PF."""

from __future__ import annotations

import json
import os

import pytest
from vfnic import IF, PF, A

from vfioctl.base.errors import from_oserror
from vfioctl.pci.address import PciAddress
from vfioctl.pci.vfnet import FIELDS, PfNet, VfSettings, pf_netdev, read_pf_net, vf_settings

GOOD = {"mac": "02:AA:bb:00:00:01", "vlan": [100, 3, "802.1ad"], "spoofchk": False, "trust": True,
        "link_state": "disable", "tx_rate": [10, 4294967296]}


def test_a_good_report_is_read_whole():
    v = VfSettings.from_raw(3, GOOD)
    assert v == VfSettings(3, "02:aa:bb:00:00:01", (100, 3, "802.1ad"), False, True, "disable", (10, 1 << 32))
    assert [v.get(f) for f in FIELDS] == [v.mac, v.vlan, v.spoofchk, v.trust, v.link_state, v.tx_rate]
    assert v.to_dict() == {"vf": 3, "mac": "02:aa:bb:00:00:01", "vlan": 100, "qos": 3, "proto": "802.1ad",
                           "spoofchk": False, "trust": True, "link_state": "disable",
                           "min_tx_rate": 10, "max_tx_rate": 1 << 32}


@pytest.mark.parametrize("field, bad", [
    ("mac", "02:aa:bb:00:00"), ("mac", "02:aa:bb:00:00:0g"), ("mac", "02:aa:bb:00:00:001"),
    ("mac", "02:aa:bb:00:00:01\n"), ("mac", 0x02AABB000001), ("mac", None),
    ("vlan", [4096, 0, "802.1Q"]), ("vlan", [-1, 0, "802.1Q"]), ("vlan", [5, 8, "802.1Q"]),
    ("vlan", [5, 0, "0x9100"]), ("vlan", [True, 0, "802.1Q"]), ("vlan", [5, 0]), ("vlan", (5, 0, "802.1Q")),
    ("vlan", "5"),
    ("spoofchk", 1), ("spoofchk", "true"), ("trust", -1), ("trust", None),
    ("link_state", "up"), ("link_state", 0), ("link_state", "Auto"),
    ("tx_rate", [0, (1 << 32) + 1]), ("tx_rate", [-1, 0]), ("tx_rate", [0]), ("tx_rate", [0, 1.5]),
    ("tx_rate", [False, 0]),
])
def test_a_value_not_of_its_form_is_not_reported(field, bad):
    v = VfSettings.from_raw(0, {**GOOD, field: bad})
    assert v.get(field) is None
    assert all(v.get(f) is not None for f in FIELDS if f != field)  # the others still read


@pytest.mark.parametrize("raw", [None, [], "mac", 7, {"vf": 0}])
def test_a_report_that_is_no_table_is_nothing_reported(raw):
    v = VfSettings.from_raw(1, raw)
    assert v == VfSettings(1)
    assert v.to_dict() == {"vf": 1, "mac": None, "vlan": None, "qos": None, "proto": None, "spoofchk": None,
                           "trust": None, "link_state": None, "min_tx_rate": None, "max_tx_rate": None}


def test_pf_net_views():
    vfs = (VfSettings(0, trust=True), VfSettings(2))
    n = PfNet(A, IF, 1000, "1000", "up", vfs)
    assert n.vf(2) is vfs[1] and n.vf(1) is None and not n.link_down
    assert PfNet(A, IF, None, "unreadable", "down").link_down
    assert not PfNet(A, IF, None, "unreadable", None).link_down  # unknown is not "down"
    d = n.to_dict()
    assert d["pf"] == PF and d["speed_mbps"] == 1000 and d["error"] is None and [v["vf"] for v in d["vfs"]] == [0, 2]


# ------------------------------------------------------------------ the PF read on the fake host
def test_the_pf_read_whole(nic, host):
    net = read_pf_net(host, A)
    assert net is not None
    assert (net.ifname, net.speed, net.speed_text, net.operstate, net.error) == (IF, 1000, "1000", "up", None)
    assert [v.index for v in net.vfs] == [0, 1] and net.vf(0).mac == "00:00:00:00:00:00"


def test_no_net_folder_or_an_empty_one_is_no_netdev(fake, host):
    nvme = PciAddress.parse("0000:00:04.0")
    assert pf_netdev(host, nvme) is None and read_pf_net(host, nvme) is None
    (fake._devdir("0000:00:04.0") / "net").mkdir()
    assert pf_netdev(host, nvme) is None
    assert pf_netdev(host, PciAddress.parse("0000:00:07.0")) == "eth1"


@pytest.mark.parametrize("speed, want, text", [
    ("-1\n", None, "-1"), ("0\n", None, "0"), ("", None, "unreadable"), ("fast\n", None, "fast"),
    ("25000\n", 25000, "25000"),
])
def test_an_unknown_speed_is_none_with_what_the_kernel_said(nic, fake, host, speed, want, text):
    (fake._devdir(PF) / "net" / IF / "speed").write_text(speed)
    net = read_pf_net(host, A)
    assert net is not None and net.speed == want and net.speed_text == text


def test_missing_link_files_are_not_known(nic, fake, host):
    for f in ("speed", "operstate"):
        os.unlink(fake._devdir(PF) / "net" / IF / f)
    net = read_pf_net(host, A)
    assert net is not None and net.speed is None and net.speed_text == "unreadable" and net.operstate is None


def test_a_netlink_error_is_carried_with_the_pf_not_raised(nic, host):
    def fail(ifname):
        raise from_oserror(OSError(1, "Operation not permitted"), "read the VF settings of", f"netlink:{ifname}")

    nic.read = fail
    net = read_pf_net(host, A)
    assert net is not None and net.vfs == () and "Operation not permitted" in net.error


def test_a_captured_host_without_the_vfinfo_probe_says_not_captured(nic, fake, host):
    nic.read = lambda ifname: None
    net = read_pf_net(host, A)
    assert net is not None and net.vfs == () and net.error == "not captured"
    # a capture that recorded the PF's (empty) VF list: nothing missing
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({f"vfinfo:{IF}": []}))
    host._probes = None
    net = read_pf_net(host, A)
    assert net is not None and net.error is None


def test_a_vf_finds_its_settings_through_its_pf(nic, fake, host):
    table = nic.vfs()
    table[1]["trust"] = True
    nic.put(table)
    vf1 = PciAddress.parse(os.readlink(fake._devdir(PF) / "virtfn1").rsplit("/", 1)[-1])
    got = vf_settings(host, vf1)
    assert got is not None
    net, vs = got
    assert net.ifname == IF and vs.index == 1 and vs.trust is True
    assert vf_settings(host, A) is None  # a PF is no VF
    assert vf_settings(host, PciAddress.parse("0000:00:07.0")) is None
    nic.read = lambda ifname: [GOOD]  # the driver lists one VF: VF 1 has none
    host.invalidate()
    assert vf_settings(host, vf1) is None


def test_a_vf_of_a_pf_without_a_netdev_has_no_settings(fake, host):
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "1")
    vf = PciAddress.parse(os.readlink(fake._devdir("0000:00:04.0") / "virtfn0").rsplit("/", 1)[-1])
    assert vf_settings(host, vf) is None


def test_a_vf_its_pf_does_not_list_has_no_settings(nic, fake, host):
    vf1 = PciAddress.parse(os.readlink(fake._devdir(PF) / "virtfn1").rsplit("/", 1)[-1])
    os.unlink(fake._devdir(PF) / "virtfn1")  # its physfn link says PF, the PF does not say it
    assert vf_settings(host, vf1) is None
