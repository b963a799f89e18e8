"""Issue 16 on a real kernel: the boot VGA's console handed to vfio-pci and back, and a real
libvirtd whose hook hides a domain's managed='no' device while the domain runs.

The lab's std VGA (00:01.0) is the boot VGA; loading bochs (bochs-drm) gives it fb0 and the
frame buffer console (vtcon0 bound).  The lab has no systemd as PID 1: unit stop/start steps
are covered by the unit tests; here no display manager is active, so none is stopped."""

from __future__ import annotations

import json
import time

import lab as vmlab
import pytest
from vmhelp import DOMAIN_FEATURES, start_libvirtd, stop_libvirtd, wait_until, writable_etc  # noqa: F401 (a fixture)

pytestmark = pytest.mark.vm

SYS = "/sys/bus/pci/devices"
VGA = vmlab.BOOT_VGA
TWIN = vmlab.TWIN_NIC
QEMU = "/usr/bin/qemu-system-x86_64"


def console_state(lab) -> dict:
    """What the kernel shows of the GPU and its console."""
    r = lab.sh(f"readlink {SYS}/{VGA}/driver; cat /proc/fb; cat {SYS}/{VGA}/driver_override; "
               "for v in /sys/class/vtconsole/vtcon*; do echo $(basename $v)=$(cat $v/bind); done")
    return {"text": r.out}


@pytest.fixture
def bochs(lab):
    """The boot GPU on bochs-drm with fbcon on it; given back to no driver at the end.  The lab's
    second std VGA (lab.VGA2, test_hostuse's) is kept off bochs-drm by a driver_override no
    driver matches: loading bochs would bind it too, and its fb would stay when the console's
    goes."""
    lab.sh(f"echo vfioctl-lab-none > {SYS}/{vmlab.VGA2}/driver_override", check=True)
    lab.sh("modprobe bochs", check=True, timeout=120)
    wait_until(lambda: lab.driver(VGA) == "bochs-drm" and "bochs" in lab.read("/proc/fb"), 30, "bochs-drm's fb0")
    wait_until(lambda: lab.read("/sys/class/vtconsole/vtcon0/bind") == "1", 30, "fbcon on vtcon0")
    try:
        yield
    finally:
        lab.sh("kill $(cat /tmp/holdcard.pid 2>/dev/null) 2>/dev/null; true")
        lab.vfioctl("restore --all", timeout=180)
        if lab.driver(VGA) == "bochs-drm":
            lab.sh("echo 0 > /sys/class/vtconsole/vtcon0/bind; "
                   f"echo {VGA} > /sys/bus/pci/drivers/bochs-drm/unbind; modprobe -r bochs; true", timeout=120)
        lab.sh(f"echo > {SYS}/{vmlab.VGA2}/driver_override", check=True)


def test_take_console_refusal_hand_off_guest_and_back(lab, bochs):
    r = lab.vfioctl(f"hide {VGA}")
    assert r.rc == 69 and "--take-console" in r.err
    # a process holding /dev/dri/card0 is named and refused
    lab.sh("sleep 600 < /dev/dri/card0 > /dev/null 2>&1 & echo $! > /tmp/holdcard.pid", check=True)
    time.sleep(0.5)
    r = lab.vfioctl(f"hide {VGA} --take-console")
    assert r.rc == 69 and "/dev/dri/card0" in r.err and "sleep" in r.err, r.err
    assert lab.driver(VGA) == "bochs-drm"
    lab.sh("kill $(cat /tmp/holdcard.pid); sleep 0.3; true")
    before = console_state(lab)
    r = lab.vfioctl(f"hide {VGA} --take-console --dry-run")
    assert r.rc == 0 and "vtcon0/bind" in r.out
    r = lab.vfioctl(f"hide {VGA} --take-console", timeout=180)
    assert r.rc == 0, r.err
    assert lab.driver(VGA) == "vfio-pci"
    grp = lab.readlink(f"{SYS}/{VGA}/iommu_group").rsplit("/", 1)[-1]
    assert lab.exists(f"/dev/vfio/{grp}")
    # no virtual console is bound to a frame buffer any more (fbcon's vtconsole entry leaves)
    fb_binds = lab.sh("for v in /sys/class/vtconsole/vtcon*; do grep -q 'frame buffer' $v/name && cat $v/bind; "
                      "done; true").out.split()
    assert "1" not in fb_binds
    assert "bochs" not in lab.read("/proc/fb")
    # a nested QEMU opens the device
    log = "/tmp/handoff-qemu.log"
    pid = int(lab.sh(f"{QEMU} -machine q35 -accel tcg -S -m 64 -nodefaults -display none "
                     f"$({lab.python} -m vfioctl qemu-args {VGA}) </dev/null >{log} 2>&1 & echo $!",
                     env={"PYTHONPATH": f"{lab.repo}/src"}, check=True).out.strip())
    try:
        wait_until(lambda: f"/dev/vfio/{grp}" in lab.sh(f"for f in /proc/{pid}/fd/*; do readlink $f; done 2>/dev/null; true").out,
                 90, "the nested QEMU to open the group")
    finally:
        lab.sh(f"kill -9 {pid}; sleep 0.5; true")
    r = lab.vfioctl(f"restore {VGA}", timeout=180)
    assert r.rc == 0, r.err
    assert lab.driver(VGA) == "bochs-drm"
    wait_until(lambda: "bochs" in lab.read("/proc/fb"), 30, "fb0 back")
    wait_until(lambda: lab.read("/sys/class/vtconsole/vtcon0/bind") == "1", 30, "vtcon0 bound again")
    assert console_state(lab) == before


def test_a_failure_at_each_step_leaves_the_console_as_it_was(lab, bochs):
    before = console_state(lab)
    k = 1
    while True:
        r = lab.vfioctl(f"hide {VGA} --take-console", env={"VFIOCTL_FAULT_FAIL_AT": str(k)}, timeout=180)
        if r.rc == 0:
            assert lab.vfioctl(f"restore {VGA}", timeout=180).rc == 0
            wait_until(lambda: lab.read("/sys/class/vtconsole/vtcon0/bind") == "1", 30, "vtcon0 bound again")
            break
        assert r.rc == 74 and "fault injected" in r.err and "the host is as it was" in r.err, (k, r.err)
        wait_until(lambda: lab.read("/sys/class/vtconsole/vtcon0/bind") == "1", 30, "vtcon0 bound again")
        assert console_state(lab) == before, k
        assert json.loads(lab.sh("cat /var/lib/vfioctl/state.json 2>/dev/null || echo '{}'").out).get("devices", {}) == {}
        k += 1
        assert k < 12
    assert k > 3  # vtcon unbind, override, unbind, probe: each was a failure point


# ---------------------------------------------------------------- the libvirt hook
def domain(name: str, bdf: str) -> str:
    d, rest = bdf.split(":", 1)
    bus, rest = rest.split(":")
    slot, fn = rest.split(".")
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
            f"<os><type arch='x86_64' machine='q35'>hvm</type></os>{DOMAIN_FEATURES}<devices><emulator>{QEMU}</emulator>"
            f"<hostdev mode='subsystem' type='pci' managed='no'><driver name='vfio'/><source>"
            f"<address domain='0x{d}' bus='0x{bus}' slot='0x{slot}' function='0x{fn}'/></source></hostdev>"
            "</devices></domain>")


def test_libvirt_hook_hides_on_start_and_gives_back_on_stop(lab, writable_etc, bochs):
    iface = lab.sh(f"ls {SYS}/{TWIN}/net", check=True).out.split()[0]
    py = lab.python
    # the hook runs with libvirt's PATH and no PYTHONPATH: the command it runs points the
    # interpreter at the checkout (an edited hook file would not be vfioctl's any more, and
    # `uninstall` would rightly leave it alone)
    r = lab.vfioctl(f"libvirt-hook install --vfioctl '/usr/bin/env PYTHONPATH={lab.repo}/src {py} -m vfioctl'")
    assert r.rc == 0, r.err
    hook = lab.read("/etc/libvirt/hooks/qemu.d/vfioctl")
    assert "libvirt-hook run" in hook and f"PYTHONPATH={lab.repo}/src" in hook
    start_libvirtd(lab)
    v = "virsh -c qemu:///system"
    try:
        assert lab.driver(TWIN) == "e1000e"
        lab.sh("cat > /tmp/hook1.xml", input=domain("hook1", TWIN), check=True)
        r = lab.sh(f"{v} define /tmp/hook1.xml && {v} start hook1 --paused", timeout=300)
        assert r.rc == 0, r.out + r.err
        assert lab.driver(TWIN) == "vfio-pci"
        pid = int(lab.read("/run/libvirt/qemu/hook1.pid"))
        grp = lab.readlink(f"{SYS}/{TWIN}/iommu_group").rsplit("/", 1)[-1]
        assert f"/dev/vfio/{grp}" in lab.sh(f"for f in /proc/{pid}/fd/*; do readlink $f; done 2>/dev/null; true").out
        j = json.loads(lab.read("/var/lib/vfioctl/state.json"))
        assert j["devices"][TWIN]["origin"] == "libvirt:hook1"
        r = lab.sh(f"{v} destroy hook1", timeout=120)
        assert r.rc == 0, r.err
        wait_until(lambda: lab.driver(TWIN) == "e1000e", 60, "the twin back on e1000e")
        assert TWIN not in json.loads(lab.read("/var/lib/vfioctl/state.json")).get("devices", {})
        # a device the host uses: the start fails, and libvirt's error carries vfioctl's reason
        lab.sh(f"ip link set {iface} up && ip addr add 192.0.2.30/24 dev {iface}", check=True)
        r = lab.sh(f"{v} start hook1 --paused", timeout=300)
        assert r.rc != 0 and "192.0.2.30/24" in r.out + r.err, r.out + r.err
        assert lab.driver(TWIN) == "e1000e"
        # the single-GPU host: the boot GPU with the console on it, refused until the config
        # says to hand the console over; then taken at start and given back, console and all, at stop
        before = console_state(lab)
        lab.sh("cat > /tmp/gpu1.xml", input=domain("gpu1", VGA), check=True)
        r = lab.sh(f"{v} define /tmp/gpu1.xml && {v} start gpu1 --paused", timeout=300)
        assert r.rc != 0 and "--take-console" in r.out + r.err, r.out + r.err
        assert console_state(lab) == before
        lab.sh("mkdir -p /etc/vfioctl && cat > /etc/vfioctl/vfioctl.toml",
               input=f'[[device]]\naddress = "{VGA}"\nid = "1234:1111"\ntake_console = true\n', check=True)
        r = lab.sh(f"{v} start gpu1 --paused", timeout=300)
        assert r.rc == 0, r.out + r.err
        assert lab.driver(VGA) == "vfio-pci" and "bochs" not in lab.read("/proc/fb")
        j = json.loads(lab.read("/var/lib/vfioctl/state.json"))
        assert j["devices"][VGA]["origin"] == "libvirt:gpu1" and j["handoff"][VGA]["vtcons_unbound"] == [0]
        r = lab.sh(f"{v} destroy gpu1", timeout=120)
        assert r.rc == 0, r.err
        wait_until(lambda: lab.driver(VGA) == "bochs-drm", 60, "the GPU back on bochs-drm")
        wait_until(lambda: lab.read("/sys/class/vtconsole/vtcon0/bind") == "1", 30, "fbcon on vtcon0 again")
        assert console_state(lab) == before
        assert json.loads(lab.read("/var/lib/vfioctl/state.json")).get("handoff", {}) == {}
    finally:
        lab.sh(f"{v} destroy gpu1; {v} undefine gpu1", timeout=120)
        lab.sh(f"ip addr flush dev {iface}; ip link set {iface} down; "
               f"{v} destroy hook1; {v} undefine hook1", timeout=120)
        stop_libvirtd(lab)
        lab.vfioctl("libvirt-hook uninstall")
        lab.vfioctl(f"restore {TWIN}")
    assert not lab.exists("/etc/libvirt/hooks/qemu.d/vfioctl")
    assert lab.driver(TWIN) == "e1000e"
