"""Guests on a real kernel (issue 7): hidden devices handed to a nested QEMU and to a real libvirtd.

Inside the lab guest, the host tree's own /usr/bin/qemu-system-x86_64 runs nested under TCG with
no guest OS (``-S``): that is enough for QEMU to open the VFIO group.  Every assertion reads the
kernel's or QEMU's state: sysfs driver links, ``/proc/PID/fd`` of the QEMU process, and QEMU's
own QMP answers (``query-pci``, ``qom-list``), never vfioctl's output alone.  Each test kills the
QEMUs it started and gives the devices back in ``finally``, and records how long it took.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
from vmhelp import DOMAIN_FEATURES, start_libvirtd, stop_libvirtd, wait_until

pytestmark = pytest.mark.vm

MAIN = "0000:00:02.0"  # e1000e 8086:10d3, its own group, has a netdev
TWIN = "0000:00:07.0"  # the same model, its own group
# Two functions of ONE slot, one IOMMU group (no ACS on QEMU's e1000).  The lab needs
#   -device e1000,id=nic14,netdev=net14,bus=pcie.0,addr=0xe.0,multifunction=on,romfile=
#   -device e1000,id=nic15,netdev=net15,bus=pcie.0,addr=0xe.1,romfile=
# (with their -netdev user,id=net14/net15,restrict=on) in tests/vm/lab.py's qemu_command.
MF = ("0000:00:0e.0", "0000:00:0e.1")
SYS = "/sys/bus/pci/devices"
QEMU = "/usr/bin/qemu-system-x86_64"
NATIVE_HOTPLUG = "-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"

# Runs in the guest (python -S: stdlib only, quick under TCG): one QMP session, the commands
# given as JSON, the answers printed as JSON.  Retries the connection: the socket path exists a
# moment before QEMU listens on it.  vfioctl itself speaks QMP through qemu.qmp; this is the test's
# independent reading of QEMU's state.
_QMP = r"""
import json, socket, sys, time
path, cmds = sys.argv[1], json.loads(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        break
    except OSError:
        s.close()
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
f = s.makefile("rw")
json.loads(f.readline())  # the greeting
def run(cmd, args=None):
    f.write(json.dumps({"execute": cmd, **({"arguments": args} if args else {})}) + "\n")
    f.flush()
    while True:
        m = json.loads(f.readline())
        if "event" in m:
            continue
        if "error" in m:
            sys.exit(f"{cmd}: {m['error']}")
        return m["return"]
run("qmp_capabilities")
print(json.dumps([run(c, a) for c, a in cmds]))
"""


# ---------------------------------------------------------------- helpers reading the guest
def group_of(lab, bdf: str) -> int:
    return int(lab.readlink(f"{SYS}/{bdf}/iommu_group").rsplit("/", 1)[-1])


def ifaces(lab, bdf: str) -> list[str]:
    return lab.sh(f"ls {SYS}/{bdf}/net 2>/dev/null || true").out.split()


def fds(lab, pid: int) -> list[str]:
    """What /proc/PID/fd points at, as the kernel says."""
    r = lab.sh(f"for f in /proc/{pid}/fd/*; do readlink $f; done 2>/dev/null || true")
    return r.out.split()


def holds(lab, pid: int, group: int) -> bool:
    return f"/dev/vfio/{group}" in fds(lab, pid)


def qmp(lab, sock: str, *cmds: tuple[str, dict | None]) -> list:
    r = lab.sh(f"{shlex.quote(lab.python)} -S - {shlex.quote(sock)} {shlex.quote(json.dumps(cmds))}",
               input=_QMP, timeout=120)
    assert r.rc == 0, f"QMP {cmds} failed: {r.err}"
    return json.loads(r.out)


def pci_functions(answer: list) -> list[dict]:
    """Every function of a query-pci answer, behind bridges too."""
    out: list[dict] = []

    def walk(devs):
        for d in devs:
            out.append(d)
            walk(((d.get("pci_bridge") or {}).get("devices")) or [])

    for bus in answer:
        walk(bus["devices"])
    return out


def start_qemu(lab, name: str, args: str) -> tuple[int, str]:
    """A nested, paused QEMU in the background; returns (pid, qmp socket)."""
    sock = f"/tmp/{name}.qmp"
    log = f"/tmp/{name}.log"
    cmd = (f"rm -f {sock}; {QEMU} -machine q35 -accel tcg -S -m 64 -nodefaults -display none "
           f"-name guest={name} -qmp unix:{sock},server=on,wait=off {args} </dev/null >{log} 2>&1 & echo $!")
    pid = int(lab.sh(cmd, check=True).out.strip())

    def up():
        if lab.sh(f"test -S {sock}").rc == 0:
            return True
        if lab.sh(f"kill -0 {pid} 2>/dev/null && ! grep -q '^State:.*Z' /proc/{pid}/status").rc != 0:
            raise AssertionError(f"nested QEMU {name} exited: {lab.sh(f'cat {log}').out}")
        return False

    wait_until(up, 90, f"nested QEMU {name}'s QMP socket")
    # the socket exists before the devices are realized; QMP answers once the machine is built
    (status,) = qmp(lab, sock, ("query-status", None))
    assert status["status"] == "prelaunch", status
    return pid, sock


def stop_qemu(lab, pid: int | None) -> None:
    """Kill a nested QEMU and wait until its files are closed (a zombie holds none)."""
    if pid is None:
        return
    lab.sh(f"kill -9 {pid} 2>/dev/null || true")
    wait_until(lambda: not fds(lab, pid), 30, f"QEMU {pid} to close its files")


def give_back(lab, *bdfs: str) -> None:
    """Restore whatever is still hidden (a failed test must not leave devices on vfio-pci)."""
    hidden = [b for b in bdfs if (lab.driver(b) or "").startswith("vfio")]
    if hidden:
        r = lab.vfioctl(f"restore {' '.join(hidden)}")
        assert r.rc == 0, r.err


@pytest.fixture
def timed(record_property):
    """Record the test's wall time (junit property `seconds`, and printed)."""
    t0 = time.monotonic()
    yield
    secs = time.monotonic() - t0
    record_property("seconds", round(secs, 1))
    print(f"\n[vm timing] {secs:.1f}s")


# ---------------------------------------------------------------- 1. qemu-args -> a nested QEMU
def test_qemu_args_start_a_nested_qemu(lab, timed):
    grp = group_of(lab, MAIN)
    assert lab.driver(MAIN) == "e1000e"
    pid = None
    try:
        assert lab.vfioctl(f"hide {MAIN}").rc == 0
        assert lab.driver(MAIN) == "vfio-pci"
        r = lab.vfioctl(f"qemu-args {MAIN}")
        assert r.rc == 0, r.err
        pid, sock = start_qemu(lab, "qa1", r.out.strip())
        # the kernel: QEMU's process holds the group, the container and a vfio device fd
        held = fds(lab, pid)
        assert f"/dev/vfio/{grp}" in held and "/dev/vfio/vfio" in held
        assert any("vfio-device" in f for f in held), held
        # QEMU: the function in its guest has the host's IDs
        vendor = int(lab.read(f"{SYS}/{MAIN}/vendor"), 16)
        device = int(lab.read(f"{SYS}/{MAIN}/device"), 16)
        (pci,) = qmp(lab, sock, ("query-pci", None))
        mine = [f for f in pci_functions(pci) if f["qdev_id"] == "hostdev-0000-00-02-0"]
        assert len(mine) == 1, pci
        assert (mine[0]["id"]["vendor"], mine[0]["id"]["device"]) == (vendor, device)
    finally:
        stop_qemu(lab, pid)
        give_back(lab, MAIN)
    assert lab.driver(MAIN) == "e1000e"


# ---------------------------------------------------------------- 2. attach / detach --restore
def test_attach_then_detach_restore(lab, timed):
    grp = group_of(lab, MAIN)
    assert lab.driver(MAIN) == "e1000e" and ifaces(lab, MAIN)
    pid = None
    try:
        pid, sock = start_qemu(
            lab, "hp2", f"-device pcie-root-port,id=rp1,chassis=1,slot=1 {NATIVE_HOTPLUG}"
        )
        assert not holds(lab, pid, grp)
        r = lab.vfioctl(f"attach {MAIN} --qmp {sock} --json")
        assert r.rc == 0, r.err
        assert json.loads(r.out)["bus"] == "rp1"  # the free port it chose
        # the kernel: hidden by attach, and the group is held by this QEMU
        assert lab.driver(MAIN) == "vfio-pci"
        assert holds(lab, pid, grp)
        # QEMU: the device is there (paused: the root port has no bus number, so QOM is the evidence)
        periph, host_prop = qmp(
            lab, sock, ("qom-list", {"path": "/machine/peripheral"}),
            ("qom-get", {"path": "/machine/peripheral/hostdev-0000-00-02-0", "property": "host"}),
        )
        assert {"name": "hostdev-0000-00-02-0", "type": "child<vfio-pci>"} in periph
        assert host_prop in (MAIN, MAIN[5:])

        r = lab.vfioctl(f"detach {MAIN} --qmp {sock} --restore --timeout 30")
        assert r.rc == 0, r.err
        # QEMU deleted it and closed the group; the kernel gave it back to e1000e with its netdev
        (periph,) = qmp(lab, sock, ("qom-list", {"path": "/machine/peripheral"}))
        assert "hostdev-0000-00-02-0" not in {p["name"] for p in periph}
        assert not holds(lab, pid, grp)
        assert lab.driver(MAIN) == "e1000e"
        wait_until(lambda: ifaces(lab, MAIN), 20, "the e1000e's interface")
    finally:
        stop_qemu(lab, pid)
        give_back(lab, MAIN)
    assert lab.driver(MAIN) == "e1000e"


# ---------------------------------------------------------------- 3. a real libvirtd
def test_libvirt_domain_holds_the_device(lab, timed):
    dom = "vfioctl-vm3"
    grp = group_of(lab, TWIN)
    assert lab.driver(TWIN) == "e1000e"
    started = False
    try:
        assert lab.vfioctl(f"hide {TWIN}").rc == 0
        r = lab.vfioctl(f"libvirt-xml {TWIN}")
        assert r.rc == 0, r.err
        xml = (f"<domain type='qemu'><name>{dom}</name><memory unit='MiB'>64</memory>"
               f"<os><type arch='x86_64' machine='q35'>hvm</type></os>{DOMAIN_FEATURES}"
               f"<devices><emulator>{QEMU}</emulator>{r.out}</devices></domain>")
        start_libvirtd(lab)
        started = True
        lab.sh(f"cat > /tmp/{dom}.xml", input=xml, check=True)
        r = lab.sh(f"virsh -c qemu:///system define /tmp/{dom}.xml && "
                   f"virsh -c qemu:///system start {dom} --paused", timeout=300)
        assert r.rc == 0, r.out + r.err
        pid = int(lab.read(f"/run/libvirt/qemu/{dom}.pid"))
        assert holds(lab, pid, grp)
        # QEMU (through libvirt's monitor) has a vfio-pci device for this host function; libvirt put
        # it behind a pcie-root-port, which a paused machine has given no bus number: QOM, not query-pci
        def monitor(cmd: dict) -> object:
            r = lab.sh(f"virsh -c qemu:///system qemu-monitor-command {dom} {shlex.quote(json.dumps(cmd))}", check=True)
            return json.loads(r.out)["return"]

        periph = monitor({"execute": "qom-list", "arguments": {"path": "/machine/peripheral"}})
        assert {"name": "ua-hostdev-0000-00-07-0", "type": "child<vfio-pci>"} in periph, periph
        host_prop = monitor({"execute": "qom-get", "arguments": {
            "path": "/machine/peripheral/ua-hostdev-0000-00-07-0", "property": "host"}})
        assert host_prop in (TWIN, TWIN[5:])
        r = lab.sh(f"virsh -c qemu:///system destroy {dom}", timeout=120)
        assert r.rc == 0, r.err
        wait_until(lambda: not holds(lab, pid, grp), 30, "libvirt's QEMU to let go")
        r = lab.vfioctl(f"restore {TWIN}")
        assert r.rc == 0, r.err
        assert lab.driver(TWIN) == "e1000e"
    finally:
        if started:
            lab.sh(f"virsh -c qemu:///system destroy {dom}; virsh -c qemu:///system undefine {dom}", timeout=120)
            stop_libvirtd(lab)
        give_back(lab, TWIN)


# ---------------------------------------------------------------- 4. restore refused while held
def test_restore_refused_while_a_vm_holds_the_group(lab, timed):
    grp = group_of(lab, TWIN)
    pid = None
    try:
        assert lab.vfioctl(f"hide {TWIN}").rc == 0
        args = lab.vfioctl(f"qemu-args {TWIN}").out.strip()
        pid, _ = start_qemu(lab, "held4", args)
        assert holds(lab, pid, grp)
        t0 = time.monotonic()
        r = lab.vfioctl(f"restore {TWIN}", timeout=120)
        assert r.rc == 69, (r.rc, r.err)
        assert time.monotonic() - t0 < 100  # refused, not blocked in the kernel's unbind
        assert f"PID {pid}" in r.err and "held4" in r.err
        r = lab.vfioctl(f"restore {TWIN} --force", timeout=120)  # whatever the flags
        assert r.rc == 69
        assert lab.driver(TWIN) == "vfio-pci"
        assert lab.read(f"{SYS}/{TWIN}/driver_override") == "vfio-pci"
        assert holds(lab, pid, grp)
    finally:
        stop_qemu(lab, pid)
        give_back(lab, TWIN)
    assert lab.driver(TWIN) == "e1000e"


# ---------------------------------------------------------------- 5. two functions of one slot
def test_two_functions_of_one_slot_go_to_one_guest_slot(lab, timed):
    if not all(lab.exists(f"{SYS}/{b}") for b in MF):
        pytest.fail(f"the lab has no multi-function slot {MF[0][:-2]}: add the two -device lines "
                    "named at the top of this file to tests/vm/lab.py")
    grp = group_of(lab, MF[0])
    assert group_of(lab, MF[1]) == grp, "the two functions of one slot share a group"
    before = {b: lab.driver(b) for b in MF}
    pid = None
    try:
        r = lab.vfioctl(f"hide {MF[0]} --group")
        assert r.rc == 0, r.err
        assert all(lab.driver(b) == "vfio-pci" for b in MF)
        r = lab.vfioctl(f"qemu-args {MF[0]} {MF[1]}")
        assert r.rc == 0, r.err
        pid, sock = start_qemu(lab, "mf5", r.out.strip())
        assert holds(lab, pid, grp)
        (pci,) = qmp(lab, sock, ("query-pci", None))
        funcs = {f["qdev_id"]: f for f in pci_functions(pci)}
        f0, f1 = funcs["hostdev-0000-00-0e-0"], funcs["hostdev-0000-00-0e-1"]
        # one guest slot, functions 0 and 1, both with the host's IDs
        assert f0["bus"] == f1["bus"] and f0["slot"] == f1["slot"]
        assert (f0["function"], f1["function"]) == (0, 1)
        for b, f in zip(MF, (f0, f1)):
            assert f["id"]["vendor"] == int(lab.read(f"{SYS}/{b}/vendor"), 16)
            assert f["id"]["device"] == int(lab.read(f"{SYS}/{b}/device"), 16)
    finally:
        stop_qemu(lab, pid)
        give_back(lab, *MF)
    assert {b: lab.driver(b) for b in MF} == before
