"""The read-only views of `list`, `groups`, `show` and `sriov show` (report/inventory.py),
called directly on the fake hosts: each record's fields, the filters, the group summary,
who holds a group, what vfioctl hid, a VF's network settings; a spec that names no single
device, or a device that is no PF, is one line (exit 65), never a traceback."""

from __future__ import annotations

import json

import pytest

from vfioctl import engine
from vfioctl.base.errors import InvalidInput, VfioctlError
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.pci.function import read_functions
from vfioctl.pci.ids import PciIds
from vfioctl.report import inventory

NIC = "0000:00:07.0"
ALL = ["0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:04.0", "0000:00:05.0", "0000:00:07.0",
       "0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3", "0000:01:01.0", "0000:01:02.0"]


def addresses(records) -> list[str]:
    return [r["address"] for r in records]


# ------------------------------------------------------------------ list
def test_summary_of_a_device_and_of_its_record_agree(host):
    ids = PciIds.load(host)
    dev = PciDevice(host, PciAddress.parse(NIC))
    rec = inventory.summary(dev, ids)
    assert rec == {"address": NIC, "class": "020000", "class_name": rec["class_name"], "vendor_id": "8086",
                   "vendor_name": rec["vendor_name"], "device_id": "10d3", "device_name": rec["device_name"],
                   "subsystem_vendor_id": "8086", "subsystem_device_id": "0000", "driver": "e1000e",
                   "iommu_group": 7, "physfn": None, "reset_methods": rec["reset_methods"]}
    assert isinstance(rec["reset_methods"], list)
    assert inventory.summary(read_functions(host)[PciAddress.parse(NIC)], ids) == rec
    assert inventory.summary(dev, ids, reset_methods=False)["reset_methods"] is None


def test_list_is_every_function_in_address_order(host):
    rows = inventory.list_devices(host)
    assert addresses(rows) == ALL
    json.dumps(rows)


@pytest.mark.parametrize("kw, want", [
    ({"class_prefix": "02"}, ["0000:00:02.0", "0000:00:07.0", "0000:01:01.0", "0000:01:02.0"]),
    ({"class_prefix": "0108"}, ["0000:00:04.0"]),
    ({"vendor_device": "8086:100e"}, ["0000:01:01.0", "0000:01:02.0"]),
    ({"driver": "e1000e"}, ["0000:00:02.0", "0000:00:07.0"]),
    ({"driver": "e1000e", "class_prefix": "03"}, []),
    ({"driver": "no-such-driver"}, []),
])
def test_list_filters(host, kw, want):
    assert addresses(inventory.list_devices(host, **kw)) == want


@pytest.mark.parametrize("bad", ["0x", "zz", "0201020304", "network\nx", "\x1b[2J"])
def test_a_bad_class_is_one_line(host, bad):
    with pytest.raises(InvalidInput) as e:
        inventory.list_devices(host, class_prefix=bad)
    assert "--class" in e.value.message and "\n" not in e.value.message


def test_a_vf_lists_its_pf(fake, host):
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "1")
    rows = {r["address"]: r for r in inventory.list_devices(host)}
    assert rows["0000:00:04.1"]["physfn"] == "0000:00:04.0"


# ------------------------------------------------------------------ groups
def test_groups_with_member_names(host):
    data = inventory.list_groups(host)
    assert set(data) == {"iommu_enabled", "groups"}
    groups = {g["group"]: g for g in data["groups"]}
    members = {m["address"]: m for m in groups[5]["members"]}
    assert set(members) == {"0000:00:05.0", "0000:01:01.0", "0000:01:02.0"}
    m = members["0000:01:01.0"]
    assert {"vendor_name", "device_name", "class_name"} <= set(m)
    one = inventory.list_groups(host, ["7"])
    assert [g["group"] for g in one["groups"]] == [7]
    assert inventory.list_groups(host, ["007"]) == one  # a user's number, read as a number
    json.dumps(data)


@pytest.mark.parametrize("bad", ["x", "-1", "7\n8", "99", "²"])
def test_a_group_that_is_no_number_is_our_error(host, bad):
    with pytest.raises(VfioctlError) as e:
        inventory.list_groups(host, [bad])
    assert "\n" not in e.value.message


# ------------------------------------------------------------------ show
def test_show_everything_about_one_device(fake, host):
    info = inventory.show_device(host, NIC)
    assert info["address"] == NIC and info["driver"] == "e1000e" and info["net_interfaces"] == ["eth1"]
    assert info["group"] == {"viable": False, "blockers": [NIC], "members": [(NIC, "endpoint")], "vfio_node": None}
    assert info["held_by"] == [] and info["hidden_by_vfioctl"] is None
    assert info["sriov"] is None and info["vf_settings"] is None
    assert info["slot_functions"] == []
    assert inventory.show_device(host, "0000:00:1f.2")["slot_functions"] == ["0000:00:1f.0", "0000:00:1f.3"]
    json.dumps(info)


def test_show_by_interface_name_and_the_pf_block(fake, host):
    assert inventory.show_device(host, "eth1")["address"] == NIC
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "2")
    s = inventory.show_device(host, "0000:00:04.0")["sriov"]
    assert s == {"totalvfs": 4, "numvfs": 2, "drivers_autoprobe": True, "vf_device": "0010", "offset": 1,
                 "stride": 1, "vfs": ["0000:00:04.1", "0000:00:04.2"]}


def test_show_names_the_holder_and_what_vfioctl_hid(fake, host):
    engine.hide(host, ["00:07.0"])
    fd = fake.root / "proc/4242/fd"
    fd.mkdir(parents=True)
    (fd / "3").symlink_to("/dev/vfio/7")
    (fake.root / "proc/4242/comm").write_text("qemu-system-x86\n")
    info = inventory.show_device(host, NIC)
    assert info["held_by"] == [{"pid": 4242, "command": "qemu-system-x86", "vm_name": None, "group": 7}]
    assert info["hidden_by_vfioctl"] == {"original_driver": "e1000e", "origin": "hide", "state": "hidden"}


def test_show_takes_one_device(host):
    with pytest.raises(InvalidInput) as e:
        inventory.show_device(host, "8086:100e")
    assert "names 2 devices (0000:01:01.0, 0000:01:02.0)" in e.value.message and e.value.exit_code == 65
    with pytest.raises(VfioctlError) as e:
        inventory.show_device(host, "0000:00:0e.0")
    assert "\n" not in e.value.message


def test_show_of_a_device_without_a_group(fake):
    from fakehost import FakeDev

    fake.add(FakeDev("0000:00:0a.0", "8086", "10d3"))
    info = inventory.show_device(Host(fake.root), "0000:00:0a.0")
    assert info["iommu_group"] is None and info["group"] is None and info["held_by"] == []


def test_show_of_a_vf_carries_its_network_settings(nic, fake, host):
    import os

    from vfnic import PF

    vf = os.readlink(fake._devdir(PF) / "virtfn1").rsplit("/", 1)[-1]
    got = inventory.show_device(host, vf)["vf_settings"]
    assert got["vf"] == 1 and got["pf_ifname"] == "enp0s8" and got["pf_operstate"] == "up"
    assert got["pf_speed_mbps"] == 1000 and got["spoofchk"] is True
    assert inventory.show_device(host, PF)["vf_settings"] is None  # a PF is no VF


# ------------------------------------------------------------------ sriov show
def test_sriov_show_every_pf_or_the_one_named(host):
    assert [p["pf"] for p in inventory.show_sriov(host)] == ["0000:00:04.0"]
    assert [p["pf"] for p in inventory.show_sriov(host, "00:04.0")] == ["0000:00:04.0"]
    with pytest.raises(InvalidInput, match=r"0000:00:07.0 is not SR-IOV capable \(no "):
        inventory.show_sriov(host, NIC)


def test_names_without_pci_ids_are_none(host):
    ids = PciIds.load(host)
    n = inventory.names(PciDevice(host, PciAddress.parse(NIC)), ids)
    assert set(n) == {"vendor_name", "device_name", "subsystem_name", "subsystem_vendor_name", "class_name"}


def test_show_of_a_vf_whose_pf_has_no_netdev_has_no_vf_settings(host):
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "1")
    info = inventory.show_device(host, "0000:00:04.1")
    assert info["physfn"] == "0000:00:04.0" and info["vf_settings"] is None
