"""Every kind of host use, found from the kernel's records on a fake host (issue 21): each a
record naming its evidence, refused by hide with exit 69 and nothing changed, shown by assess;
a reading that was not made is "not known", never "no use"."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakehost import FakeDev

from vfioctl import engine
from vfioctl.base.errors import InUse
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.report import snapshot
from vfioctl.report.devassess import assess_devices
from vfioctl.usage import inuse


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(os.path.relpath(target, path.parent))


def node(fake, address: str, rel: str, devno: str, devname: str, block: bool = False) -> None:
    """A class device below the function with its dev number, as the kernel lists it in /sys/dev."""
    d = fake._devdir(address) / rel
    d.mkdir(parents=True, exist_ok=True)
    (d / "dev").write_text(devno + "\n")
    (d / "uevent").write_text(f"MAJOR={devno.split(':')[0]}\nMINOR={devno.split(':')[1]}\nDEVNAME={devname}\n")
    link(fake.root / ("sys/dev/block" if block else "sys/dev/char") / devno, d)


def probes(fake, **answers) -> None:
    p = fake.root / ".vfioctl/probes.json"
    p.parent.mkdir(exist_ok=True)
    data = json.loads(p.read_text()) if p.exists() else {}
    data.update(answers)
    p.write_text(json.dumps(data))


def scan(*opens, complete=True, unreadable=0) -> dict:
    return {"opens": [list(o) for o in opens], "complete": complete, "why": "" if complete else "stopped",
            "unreadable": unreadable, "processes": 100, "seconds": 0.01}


def mountinfo(fake, *lines: str) -> None:
    p = fake.root / "proc/self/mountinfo"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(line + "\n" for line in lines))


def uses(fake, address: str):
    return inuse.uses(PciDevice(Host(fake.root), PciAddress.parse(address)))


def unchanged(fake, host, address: str, expect: str):
    """hide refuses with exit 69 and the kernel and the journal are as they were."""
    before = (fake.current_driver(address), (fake._devdir(address) / "driver_override").read_text())
    with pytest.raises(InUse) as got:
        engine.hide(host, [address])
    assert got.value.exit_code == 69
    assert expect in got.value.message, got.value.message
    assert (fake.current_driver(address), (fake._devdir(address) / "driver_override").read_text()) == before
    assert not (fake.root / "var/lib/vfioctl/state.json").exists() or \
        address not in json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())["devices"]
    assert not any(p.endswith(("unbind", "drivers_probe")) for p, _ in host.writes)
    return got.value.message


def in_use_finding(fake, address: str) -> dict:
    a = assess_devices(Host(fake.root), [address])[0]
    return next(f for f in a.to_dict()["findings"] if f["id"] == "in-use")


# ---------------------------------------------------------------- processes
def test_a_process_holding_the_render_node_is_named_with_its_pid(fake, host):
    node(fake, "0000:00:01.0", "drm/renderD128", "226:128", "dri/renderD128")
    node(fake, "0000:00:01.0", "drm/card0", "226:0", "dri/card0")
    probes(fake, **{"open-nodes": scan([4242, "glxgears", "/dev/dri/renderD128", "c:226:128", "fd"],
                                       [77, "cat", "/dev/null", "c:1:3", "fd"])})
    got = [u for u in uses(fake, "0000:00:01.0") if u.kind == "process"]
    assert [(u.pid, u.command, u.node) for u in got] == [(4242, "glxgears", "/dev/dri/renderD128")]
    assert got[0].evidence == "/proc/4242/fd: /dev/dri/renderD128 (c:226:128)"
    msg = unchanged(fake, host, "0000:00:01.0", "PID 4242 (glxgears) has /dev/dri/renderD128 open")
    assert "--force" in msg
    f = in_use_finding(fake, "0000:00:01.0")
    assert f["status"] == "fail"
    assert {"kind": "process", "pid": 4242, "command": "glxgears"}.items() <= f["host_use"][0].items()


def test_usb_input_below_a_controller_and_a_mapped_node(fake, host):
    fake.add(FakeDev("0000:00:0a.0", "1b36", "000d", cls=0x0c0330, group=10, driver="xhci_hcd"))
    node(fake, "0000:00:0a.0", "usb1/1-1/1-1:1.0/0003:0627:0001.0001/input/input3/event3", "13:67", "input/event3")
    probes(fake, **{"open-nodes": scan([900, "evtest", "/dev/input/event3", "c:13:67", "maps"])})
    [u] = [u for u in uses(fake, "0000:00:0a.0") if u.kind == "process"]
    assert u.text == "PID 900 (evtest) maps /dev/input/event3" and u.evidence.startswith("/proc/900/maps")


def test_not_known_when_the_scan_could_not_read_every_process(fake, host):
    node(fake, "0000:00:01.0", "drm/renderD128", "226:128", "dri/renderD128")
    probes(fake, **{"open-nodes": scan(unreadable=3)})
    got = uses(fake, "0000:00:01.0")
    assert any(u.kind == "not-known" and "3 process(es) could not be read" in u.text for u in got)
    unchanged(fake, host, "0000:00:01.0", "not known: whether a process holds /dev/dri/renderD128")
    f = in_use_finding(fake, "0000:00:01.0")
    assert f["status"] == "warn" and "not known" in f["evidence"]


def test_the_nvidia_minor_from_proc(fake):
    info = fake.root / "proc/driver/nvidia/gpus/0000:00:07.0/information"
    info.parent.mkdir(parents=True)
    info.write_text("Model: \t\t NVIDIA A100\nDevice Minor: \t 3\n")
    probes(fake, **{"open-nodes": scan([5, "python3", "/dev/nvidia3", "c:195:3", "fd"],
                                       [6, "python3", "/dev/nvidiactl", "c:195:255", "fd"])})
    got = [u for u in uses(fake, "0000:00:07.0") if u.kind == "process"]
    assert [(u.pid, u.node) for u in got] == [(5, "/dev/nvidia3")]


# ---------------------------------------------------------------- kernel users
def test_the_9p_device_of_the_root_filesystem_is_the_platform(fake, host):
    fake.driver("virtio-pci")
    fake.add(FakeDev("0000:00:03.0", "1af4", "1009", cls=0x000200, group=3, driver="virtio-pci"))
    (fake._devdir("0000:00:03.0") / "virtio0").mkdir()
    (fake._devdir("0000:00:03.0") / "virtio0/mount_tag").write_bytes(b"hostroot\0")
    mountinfo(fake, "25 1 0:21 / / ro,relatime - 9p hostroot ro,trans=virtio",
              "27 25 0:21 /usr/lib/X11 /usr/lib/X11 ro,relatime - 9p hostroot ro,trans=virtio")
    got = uses(fake, "0000:00:03.0")
    tags = [u for u in got if u.kind == "mount-tag"]
    assert tags[0].text.startswith("9p tag hostroot (") and tags[0].node == "/"
    assert any(u.platform and "root filesystem" in u.text for u in got)
    with pytest.raises(InUse, match="--force does not take the platform"):
        engine.hide(host, ["0000:00:03.0"], force=True)
    assert fake.current_driver("0000:00:03.0") == "virtio-pci"
    plan = engine.plan_hide(host, ["0000:00:03.0"], force=True, force_platform=True)
    assert any("--force-platform" in n for n in plan.notes)


def test_a_mounted_lvm_volume_on_the_nvme(fake, host):
    blk = fake.root / "sys/class/block"
    dm = fake.root / "sys/devices/virtual/block/dm-0"
    (dm / "dm").mkdir(parents=True)
    (dm / "dev").write_text("254:0\n")
    (dm / "dm/name").write_text("vg0-lv0\n")
    (dm / "dm/uuid").write_text("LVM-abcdef\n")
    link(blk / "dm-0", dm)
    nv = fake._devdir("0000:00:04.0") / "nvme/nvme0/nvme0n1"
    (nv / "dev").write_text("259:0\n")
    link(nv / "holders/dm-0", dm)
    mountinfo(fake, "30 1 254:0 / /srv rw - ext4 /dev/mapper/vg0-lv0 rw")
    [u] = [u for u in uses(fake, "0000:00:04.0") if u.kind == "mount"]
    assert u.text == "block device /dev/nvme0n1 -> dm-0 (LVM vg0-lv0) is mounted on /srv"
    unchanged(fake, host, "0000:00:04.0", "is mounted on /srv")


def test_one_reading_of_mountinfo_and_a_line_without_its_fstype_still_mounts(fake):
    # the mount-point table and the mount list come from one parse; a line cut short of its
    # "- fstype source" part keeps its device number, so the disk on it is still in use
    nv = fake._devdir("0000:00:04.0") / "nvme/nvme0/nvme0n1"
    (nv / "dev").write_text("259:0\n")
    mountinfo(fake, "30 1 259:0 / /srv rw shared:1 master:2 x y", "31 1 0:5 / /run rw - tmpfs tmpfs rw")
    h = fake.host()
    assert inuse._mountinfo(h) == [("/srv", "", "", "259:0"), ("/run", "tmpfs", "tmpfs", "0:5")]
    assert inuse._mounts(h)["259:0"] == ["/srv"]
    assert inuse._longest_mount(h, "/srv/disk.img") is None  # no fstype: no file is attributed to it
    [u] = [u for u in uses(fake, "0000:00:04.0") if u.kind == "mount"]
    assert u.text == "block device /dev/nvme0n1 is mounted on /srv"


def test_a_vlan_upper_with_an_address(fake, host):
    up = fake.root / "sys/devices/virtual/net/eth1.100"
    up.mkdir(parents=True)
    (up / "flags").write_text("0x1003\n")
    (up / "uevent").write_text("DEVTYPE=vlan\nINTERFACE=eth1.100\n")
    link(fake.root / "sys/class/net/eth1.100", up)
    link(fake._devdir("0000:00:07.0") / "net/eth1/upper_eth1.100", up)
    (fake.root / "proc/net").mkdir(parents=True, exist_ok=True)
    (fake.root / "proc/net/if_inet6").write_text(
        "fd000000000000000000000000000005 05 40 00 80 eth1.100\n")
    [u] = [u for u in uses(fake, "0000:00:07.0") if u.kind == "net"]
    assert u.text == ("interface eth1.100 (upper of eth1, VLAN: /sys/class/net/eth1/upper_eth1.100) "
                      "is up with address fd00::5/64")
    unchanged(fake, host, "0000:00:07.0", "eth1.100")


def test_a_bound_nic_without_its_interface_here_is_not_known(fake):
    fake.add(FakeDev("0000:00:0b.0", "8086", "10d3", group=11, driver="e1000e"))
    [u] = uses(fake, "0000:00:0b.0")
    assert u.kind == "not-known" and "no interface of it is in this network namespace" in u.text


def test_flags_that_cannot_be_read_are_not_known(fake):
    (fake._devdir("0000:00:07.0") / "net/eth1/flags").unlink()
    got = uses(fake, "0000:00:07.0")
    assert [u.kind for u in got] == ["not-known"] and "flags could not be read" in got[0].text


def test_the_host_bridge_and_the_lpc_bridge_need_force_platform(fake, host):
    for a, what in (("0000:00:00.0", "a host bridge"), ("0000:00:1f.0", "an ISA/LPC bridge")):
        with pytest.raises(InUse, match=f"it is {what} .*--force-platform"):
            engine.hide(host, [a], force=True, group=True)
    f = in_use_finding(fake, "0000:00:00.0")
    assert f["status"] == "fail" and f["host_use"][0]["platform"] is True


# ---------------------------------------------------------------- snapshots
def test_a_snapshot_gives_the_same_host_uses_as_live(fake, tmp_path):
    node(fake, "0000:00:01.0", "drm/renderD128", "226:128", "dri/renderD128")
    probes(fake, **{"open-nodes": scan([4242, "glxgears", "/dev/dri/renderD128", "c:226:128", "fd"])})
    out = tmp_path / "s.tar.gz"
    snapshot.write_snapshot(Host(fake.root), out)
    for a in ("0000:00:01.0", "0000:00:00.0", "0000:00:07.0", "0000:00:04.0"):
        live = [f for f in assess_devices(Host(fake.root), [a])[0].to_dict()["findings"] if f["id"] == "in-use"]
        snap = [f for f in assess_devices(Host(out), [a])[0].to_dict()["findings"] if f["id"] == "in-use"]
        assert snap == live, a
    assert "host-use" in json.loads(
        __import__("tarfile").open(out).extractfile("root/.vfioctl/meta.json").read())["captured"]


def test_a_snapshot_that_lacks_the_reading_says_not_known_never_pass(fake, tmp_path):
    node(fake, "0000:00:01.0", "drm/renderD128", "226:128", "dri/renderD128")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/meta.json").write_text(json.dumps({"vfioctl_version": "0.2.0", "captured": ["rom"]}))
    for a in ("0000:00:07.0", "0000:00:04.0", "0000:00:01.0"):
        f = in_use_finding(fake, a)
        assert f["status"] != "pass" and "not known" in f["evidence"], (a, f)
