"""An SR-IOV PF's record (pci/sriov.py, `vfioctl sriov show`): its counts, autoprobe, VF IDs,
offset and stride, its VFs, and for a NIC PF its interface, link and each VF's settings."""

from __future__ import annotations

import json
import os

from vfnic import IF, PF, A

from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.pci.sriov import pf_info


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


def test_a_pf_without_vfs_or_a_netdev(fake, host):
    info = pf_info(PciDevice(host, PciAddress.parse("00:04.0")))
    assert info == {"pf": "0000:00:04.0", "id": "1b36:0010", "driver": "nvme", "totalvfs": 4, "numvfs": 0,
                    "drivers_autoprobe": True, "vf_device": "0010", "offset": info["offset"],
                    "stride": info["stride"], "vfs": [], "net": None}
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "2")
    info = pf_info(PciDevice(host, PciAddress.parse("00:04.0")))
    assert info["numvfs"] == 2 and info["net"] is None
    assert [(v["address"], v["settings"]) for v in info["vfs"]] == [("0000:00:04.1", None), ("0000:00:04.2", None)]


def test_a_device_without_sr_iov_is_all_none(host):
    info = pf_info(PciDevice(host, PciAddress.parse("00:07.0")))
    assert info["pf"] == "0000:00:07.0" and info["driver"] == "e1000e" and info["vfs"] == []
    assert all(info[k] is None for k in ("totalvfs", "numvfs", "drivers_autoprobe", "vf_device", "offset",
                                         "stride", "net"))


def test_the_vfs_records_and_the_net_record_without_its_vf_list(nic, fake, host):
    info = pf_info(PciDevice(host, A))
    assert (info["totalvfs"], info["numvfs"], info["drivers_autoprobe"], info["vf_device"]) == (7, 2, False, "10ca")
    assert set(info["net"]) == {"pf", "ifname", "speed_mbps", "speed", "operstate", "error"}
    vf0 = os.readlink(fake._devdir(PF) / "virtfn0").rsplit("/", 1)[-1]
    first = info["vfs"][0]
    assert first["address"] == vf0 and first["device_id"] == "10ca"
    assert first["settings"]["vf"] == 0 and first["settings"]["spoofchk"] is True


def test_a_driver_that_lists_fewer_vfs_leaves_the_rest_unreported(nic, host):
    nic.read = lambda ifname: nic.vfs()[:1]
    info = pf_info(PciDevice(host, A))
    assert info["vfs"][0]["settings"] is not None and info["vfs"][1]["settings"] is None


def test_a_netlink_error_is_shown_with_the_pf(nic, host):
    from vfioctl.base.errors import from_oserror

    def fail(ifname):
        raise from_oserror(OSError(13, "Permission denied"), "read the VF settings of", f"netlink:{ifname}")

    nic.read = fail
    info = pf_info(PciDevice(host, A))
    assert info["net"]["ifname"] == IF and "Permission denied" in info["net"]["error"]
    assert [v["settings"] for v in info["vfs"]] == [None, None]
    json.dumps(info)  # JSON-ready
