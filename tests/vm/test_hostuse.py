"""Host use on a real kernel (issue 21): each use is refused with exit 69 naming its evidence and
changes nothing (driver, driver_override, journal, read from the guest's sysfs), hides and
restores exactly once the holder is gone, and `assess` from a snapshot taken in that state gives
the host-use records the live host gives.  Every holder is made and checked through the kernel
(/proc/PID/fd, /sys/class/net, /sys/class/block), not through vfioctl.

Few tests on purpose: the lab boots once per kernel and every check here shares it.  The second
std VGA and the qemu-xhci controller sit behind their own root ports (lab.VGA2_PORT, XHCI_PORT)."""

from __future__ import annotations

import json
import re
import shlex
import time

import lab as vmlab
import pytest

pytestmark = pytest.mark.vm

SYS = "/sys/bus/pci/devices"
# A driver name no module has: in the boot VGA's driver_override it keeps bochs-drm off it while
# the second VGA's test loads bochs (drivers/pci/pci-driver.c pci_match_device: with an override
# set, only the driver of that name matches).
NO_DRIVER = "vfioctl-lab-none"
FBDEV = "/sys/module/drm_kms_helper/parameters/fbdev_emulation"
HOST_BRIDGE, LPC = "0000:00:00.0", "0000:00:1f.0"
VLAN_NIC = vmlab.BENCH_NICS[0]  # an e1000 nobody else's test holds


def state(lab, bdf: str) -> tuple:
    """What a refusal must leave alone: the driver, the override, the journal's record."""
    j = lab.sh("cat /var/lib/vfioctl/state.json 2>/dev/null || echo '{}'", check=True).out
    return lab.driver(bdf), lab.read(f"{SYS}/{bdf}/driver_override"), json.loads(j).get("devices", {}).get(bdf)


def refused(lab, cmd: str, bdf: str, *expect: str) -> str:
    before = state(lab, bdf)
    r = lab.vfioctl(cmd)
    assert r.rc == 69, (cmd, r.rc, r.out, r.err)
    for e in expect:
        assert e in r.err, (cmd, e, r.err)
    assert state(lab, bdf) == before, cmd
    return r.err


def in_use(lab, bdf: str, root: str = "") -> list[dict]:
    r = lab.vfioctl(f"assess {bdf} --json" + (f" --root {root}" if root else ""))
    data = json.loads(r.out)
    [finding] = [f for f in data["devices"][0]["findings"] if f["id"] == "in-use"]
    return finding["host_use"]


def same_from_snapshot(lab, bdfs: tuple[str, ...], name: str) -> None:
    """`assess` of a snapshot taken now gives the live host's host-use records."""
    path = f"/tmp/hostuse-{name}.tar.gz"
    lab.vfioctl(f"snapshot {path}").check()
    for bdf in bdfs:
        live, snap = in_use(lab, bdf), in_use(lab, bdf, path)
        assert snap == live, (name, bdf, live, snap)


def hold(lab, node: str, flags: str = "os.O_WRONLY | os.O_NONBLOCK") -> int:
    """A process holding *node* open (python3; by default O_WRONLY|O_NONBLOCK, as a sound server
    opens a PCM); checked in its /proc/PID/fd (the kernel's record)."""
    code = f"import os, time; fd = os.open({node!r}, {flags}); time.sleep(600)"
    pid = int(lab.sh(f"python3 -c {shlex.quote(code)} >/tmp/hold.log 2>&1 & echo $!", check=True).out.strip())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if node in lab.sh(f"ls -l /proc/{pid}/fd 2>/dev/null").out:
            return pid
        time.sleep(0.2)
    raise AssertionError(f"PID {pid} never held {node}: {lab.sh('cat /tmp/hold.log').out}")


def wait_for(lab, what: str, cmd: str, timeout: float = 60) -> str:
    """The output of guest shell *cmd* once it is not empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = lab.sh(cmd).out.strip()
        if out:
            return out
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout:.0f}s ({cmd})")


def held_then_free(lab, bdf: str, node: str, driver: str, name: str,
                   flags: str = "os.O_WRONLY | os.O_NONBLOCK") -> None:
    """The three checks for a device node a process holds: *bdf* is refused naming the PID and
    *node* and left unchanged, its one process record names them, a snapshot's assess equals the
    live one; then, the holder gone, it hides and restores exactly (back on *driver*)."""
    pid: int | None = hold(lab, node, flags)
    try:
        refused(lab, f"hide {bdf}", bdf, f"PID {pid} (python3) has {node} open")
        [rec] = [u for u in in_use(lab, bdf) if u["kind"] == "process"]
        assert (rec["pid"], rec["command"], rec["node"]) == (pid, "python3", node)
        same_from_snapshot(lab, (bdf,), name)
        lab.sh(f"kill {pid}; while [ -e /proc/{pid} ]; do sleep 0.1; done", check=True)
        pid = None
        hides_and_restores(lab, bdf, driver)
    finally:
        if pid is not None:
            lab.sh(f"kill {pid}")


def hides_and_restores(lab, bdf: str, driver: str) -> None:
    r = lab.vfioctl(f"hide {bdf}")
    assert r.rc == 0, r.err
    assert lab.driver(bdf) == "vfio-pci"
    r = lab.vfioctl(f"restore {bdf}")
    assert r.rc == 0, r.err
    assert lab.driver(bdf) == driver and lab.read(f"{SYS}/{bdf}/driver_override") == "(null)"


def test_the_platform_and_the_root_filesystem_are_refused_even_with_force(lab):
    assert lab.sh("grep -q ' / / .* - 9p hostroot' /proc/self/mountinfo").rc == 0  # the kernel's record
    err = refused(lab, f"hide {vmlab.NINEP} --force", vmlab.NINEP, "9p tag hostroot", "root filesystem",
                  "--force-platform")
    assert "mount_tag" in err
    refused(lab, f"hide {HOST_BRIDGE} --force", HOST_BRIDGE, "it is a host bridge (class 060000)")
    refused(lab, f"hide {LPC} --group --force --dry-run", LPC, "it is an ISA/LPC bridge (class 060100)")
    assert in_use(lab, HOST_BRIDGE)[0]["platform"] is True
    same_from_snapshot(lab, (vmlab.NINEP, HOST_BRIDGE, LPC), "platform")


def test_a_sound_card_a_process_holds(lab):
    hda = vmlab.HDA
    # the codec's driver first: without udev the kernel's request for it finds no modprobe
    lab.sh("modprobe snd_hda_codec_generic && modprobe snd_hda_intel", check=True)
    try:
        pcm = wait_for(lab, "PCM node", "ls /dev/snd/pcmC*p 2>/dev/null").split()[0]
        assert lab.driver(hda) == "snd_hda_intel"
        held_then_free(lab, hda, pcm, "snd_hda_intel", "sound")
    finally:
        # back to the boot layout: no driver on the HDA function
        lab.sh(f"echo {hda} > /sys/bus/pci/drivers/snd_hda_intel/unbind")


def test_a_vlan_upper_with_an_address(lab):
    nic = VLAN_NIC
    [iface] = lab.sh(f"ls {SYS}/{nic}/net", check=True).out.split()
    vlan = f"{iface}.100"
    lab.sh(f"modprobe 8021q && ip link add link {iface} name {vlan} type vlan id 100 && "
           f"ip addr add 192.0.2.8/24 dev {vlan} && ip link set {iface} up && ip link set {vlan} up", check=True)
    try:
        assert lab.sh(f"test -L /sys/class/net/{iface}/upper_{vlan}").rc == 0  # the kernel's record
        refused(lab, f"hide {nic}", nic, f"interface {vlan} (upper of {iface}, VLAN", "192.0.2.8/24")
        same_from_snapshot(lab, (nic,), "vlan")
    finally:
        lab.sh(f"ip link del {vlan}; ip link set {iface} down", check=True)
    hides_and_restores(lab, nic, "e1000")


def test_a_mounted_lvm_volume_on_the_nvme(lab):
    nvme = vmlab.NVME_PF
    if lab.sh("command -v lvcreate").rc != 0:
        pytest.skip("lvm2 is not installed on the lab's host (tests/run-all.sh installs it)")
    # the namespace's block device (nvme0n1; nvme0c0n1 is a hidden path below a multipath head)
    [disk] = [b for b in lab.sh("ls /sys/class/block", check=True).out.split()
              if re.fullmatch(r"nvme[0-9]+n1", b)][:1]
    lab.sh("modprobe dm_mod && modprobe ext4 && mkdir -p /run/lvm /tmp/lvmmnt", check=True)
    env = "LVM_SYSTEM_DIR=/tmp/lvmconf"
    lab.sh("mkdir -p /tmp/lvmconf && echo 'activation { udev_sync = 0 udev_rules = 0 "
           "monitoring = 0 }' > /tmp/lvmconf/lvm.conf", check=True)
    try:
        lab.sh(f"{env} pvcreate -ff -y /dev/{disk} && {env} vgcreate labvg /dev/{disk} && "
               f"{env} lvcreate -y -L 16M -n lv0 labvg && mkfs.ext4 -q /dev/labvg/lv0 && "
               "mount /dev/labvg/lv0 /tmp/lvmmnt", check=True)
        holder = lab.sh(f"ls /sys/class/block/{disk}/holders", check=True).out.split()
        assert holder and holder[0].startswith("dm-")  # the kernel's record of the stack
        refused(lab, f"hide {nvme}", nvme, f"/dev/{disk} -> {holder[0]} (LVM labvg-lv0) is mounted on /tmp/lvmmnt")
        same_from_snapshot(lab, (nvme,), "lvm")
    finally:
        lab.sh(f"umount /tmp/lvmmnt; {env} vgchange -an labvg; {env} vgremove -ff -y labvg; "
               f"{env} pvremove -ff -y /dev/{disk}; true")
    hides_and_restores(lab, nvme, "nvme")


def test_a_second_vga_whose_drm_node_a_process_holds(lab):
    """A second std VGA (not the boot VGA) on bochs-drm, its DRM node held by a process.

    bochs has no render node: its drm_driver's driver_features are DRIVER_GEM | DRIVER_MODESET |
    DRIVER_ATOMIC, without DRIVER_RENDER (drivers/gpu/drm/tiny/bochs.c, bochs_driver), so
    drm_dev_register makes only the primary node; the holder therefore holds /dev/dri/cardN, the
    node a compositor or a KMS client would hold.  Loading bochs would bind every std VGA: the
    boot VGA (no driver at boot, test_handoff's console) is kept off it by a driver_override no
    driver matches, and fbdev emulation is off, so no frame buffer console moves onto the new
    card; all of it is undone at the end."""
    vga, boot_vga = vmlab.VGA2, vmlab.BOOT_VGA
    assert lab.driver(boot_vga) is None and lab.driver(vga) is None
    lab.sh(f"echo {NO_DRIVER} > {SYS}/{boot_vga}/driver_override", check=True)
    try:
        lab.sh(f"if [ -e {FBDEV} ]; then echo N > {FBDEV}; else modprobe drm_kms_helper fbdev_emulation=0; fi && "
               f"modprobe bochs && echo {vga} > /sys/bus/pci/drivers_probe", check=True, timeout=120)
        card = wait_for(lab, "DRM card", f"ls {SYS}/{vga}/drm 2>/dev/null | grep '^card'")
        assert lab.driver(vga) == "bochs-drm" and lab.driver(boot_vga) is None
        assert "renderD" not in lab.sh(f"ls {SYS}/{vga}/drm", check=True).out  # no DRIVER_RENDER
        assert lab.sh(f"ls {SYS}/{vga}/graphics 2>/dev/null").out.strip() == ""  # no fb on it
        node = f"/dev/dri/{card}"
        wait_for(lab, node, f"ls {node} 2>/dev/null")
        held_then_free(lab, vga, node, "bochs-drm", "vga", "os.O_RDWR")
        assert lab.driver(boot_vga) is None
    finally:
        # back to the boot layout: neither VGA on a driver, bochs unloaded, fbdev emulation on,
        # the boot VGA's override empty
        lab.sh(f"echo {vga} > /sys/bus/pci/drivers/bochs-drm/unbind; modprobe -r bochs; "
               f"[ -e {FBDEV} ] && echo Y > {FBDEV}; echo > {SYS}/{boot_vga}/driver_override; true", timeout=120)


def test_a_usb_keyboard_a_process_reads(lab):
    """A qemu-xhci controller with a usb-kbd whose evdev node a process reads.  Without udev
    nothing loads the USB and input drivers: the test loads xhci_pci, usbhid, hid_generic and
    evdev itself, finds the keyboard's eventN below the controller in sysfs (the kernel's
    record), and gives the controller back to no driver at the end."""
    xhci = vmlab.XHCI
    assert lab.driver(xhci) is None
    lab.sh("modprobe xhci_pci && modprobe usbhid && modprobe hid_generic && modprobe evdev", check=True, timeout=120)
    try:
        found = wait_for(lab, "keyboard event node", f"find {SYS}/{xhci}/ -name 'event[0-9]*' -path '*/input/*'")
        node = "/dev/input/" + found.split()[0].rsplit("/", 1)[1]
        assert lab.driver(xhci) == "xhci_hcd"
        wait_for(lab, node, f"ls {node} 2>/dev/null")
        held_then_free(lab, xhci, node, "xhci_hcd", "usb", "os.O_RDONLY")
    finally:
        # back to the boot layout: no driver on the controller
        lab.sh(f"echo {xhci} > /sys/bus/pci/drivers/xhci_hcd/unbind; modprobe -r xhci_pci; true", timeout=120)
