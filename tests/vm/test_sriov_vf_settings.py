"""SR-IOV VF settings on QEMU's igb (issue 26): MAC, VLAN, spoof check and trust set through
netlink, journaled, restored field by field.  Every assertion reads the kernel: the PF's VF
list from `ip -d -j link show PF` (iproute2's own netlink reading), counts from sysfs."""

from __future__ import annotations

import json

import lab as vmlab
import pytest
from test_guests import fds, group_of, start_qemu, stop_qemu

pytestmark = pytest.mark.vm

PF = vmlab.IGB_PF
SYS = "/sys/bus/pci/devices"
MAC0 = "02:00:00:26:00:01"
CONF = "/tmp/vfset.toml"
TRACE = "/tmp/vfset.trace"


@pytest.fixture
def igb(lab):
    """The igb PF with 2 VFs made by hand (not journaled); the VFs removed afterwards."""
    if vmlab.qemu_version() < vmlab.IGB_MIN_QEMU:
        pytest.fail(f"the lab's QEMU is {vmlab.qemu_version_text()!r}: QEMU's igb (the SR-IOV NIC these tests "
                    "need) is in QEMU 8 and later; tests/run-all.sh installs QEMU 10 (bookworm-backports)")
    lab.sh(f"for i in $(seq 60); do ls {SYS}/{PF}/net/ >/dev/null 2>&1 && break; sleep 0.5; done", timeout=60)
    ifname = lab.sh(f"ls {SYS}/{PF}/net/").out.split()[0]
    lab.sh(f"echo 0 > {SYS}/{PF}/sriov_drivers_autoprobe; echo 2 > {SYS}/{PF}/sriov_numvfs", check=True)
    # the PF's link up, so that its speed is known (a down link reads no speed: EINVAL)
    lab.sh(f"ip link set {ifname} up; for i in $(seq 40); do [ \"$(cat /sys/class/net/{ifname}/carrier"
           " 2>/dev/null)\" = 1 ] && break; sleep 0.25; done", timeout=60)
    try:
        yield ifname
    finally:
        lab.vfioctl("restore --all", timeout=180)
        lab.sh(f"ip link set {ifname} down; echo 0 > {SYS}/{PF}/sriov_numvfs; "
               f"echo 1 > {SYS}/{PF}/sriov_drivers_autoprobe")


def kernel_vfs(lab, ifname: str) -> list[dict]:
    """The PF's VFs as iproute2 shows them, each reduced to the fields vfioctl sets."""
    raw = json.loads(lab.sh(f"ip -d -j link show {ifname}", check=True).out)[0].get("vfinfo_list", [])
    out = []
    for v in raw:
        vl = v.get("vlan_list") or [{}]
        out.append({"mac": v.get("address"), "vlan": vl[0].get("vlan", v.get("vlan", 0)),
                    "qos": vl[0].get("qos", v.get("qos", 0)), "spoofchk": v.get("spoofchk"),
                    "trust": v.get("trust"), "link_state": v.get("link_state"),
                    "rate": v.get("rate") or {k: v.get(k) for k in ("min_tx_rate", "max_tx_rate")}})
    return out


def write_config(lab, vfs: str, numvfs: int = 2) -> None:
    text = f'[[sriov]]\npf = "{PF}"\nnumvfs = {numvfs}\n{vfs}'
    lab.sh(f"cat > {CONF}", input=text, check=True)


GOOD = (f'[[sriov.vf]]\nindex = 0\nmac = "{MAC0}"\nvlan = 100\n'
        '[[sriov.vf]]\nindex = 1\ntrust = true\nspoofchk = false\n')


def writes(lab) -> list[str]:
    return [ln for ln in lab.sh(f"cat {TRACE} 2>/dev/null; true").out.splitlines() if ln.strip()]


def test_apply_idempotent_hidden_vf_opened_xml_valid_restore_exact(lab, igb):
    """Done when, 1 and 2: apply sets exactly the config's values, a second apply writes
    nothing, a VF with its MAC set is hidden and opened by a nested QEMU, libvirt-xml
    --interface (MAC and VLAN from the VF) validates, restore --all puts every field back."""
    before = kernel_vfs(lab, igb)
    assert len(before) == 2, before
    write_config(lab, GOOD)
    lab.sh(f"rm -f {TRACE}")
    r = lab.vfioctl(f"apply --config {CONF}", env={"VFIOCTL_TRACE_WRITES": TRACE}, timeout=180)
    assert r.rc == 0, r.err
    after = kernel_vfs(lab, igb)
    want0 = {**before[0], "mac": MAC0, "vlan": 100}
    want1 = {**before[1], "trust": True, "spoofchk": False}
    assert after == [want0, want1], (before, after)
    first = writes(lab)
    assert len(first) == 4 and all(w.startswith(f"netlink:{igb}/vf") for w in first), first
    # a second apply: the kernel already shows the config, 0 writes
    lab.sh(f"rm -f {TRACE}")
    r = lab.vfioctl(f"apply --config {CONF}", env={"VFIOCTL_TRACE_WRITES": TRACE}, timeout=180)
    assert r.rc == 0, r.err
    assert writes(lab) == []
    # libvirt-xml --interface takes the VF's MAC and VLAN by default; libvirt's schema accepts it
    vf0 = lab.sh(f"basename $(readlink {SYS}/{PF}/virtfn0)", check=True).out.strip()
    r = lab.vfioctl(f"libvirt-xml {vf0} --interface --managed")
    assert r.rc == 0, r.err
    assert f"<mac address='{MAC0}'/>" in r.out and "<tag id='100'/>" in r.out, r.out
    dom = (f"<domain type='qemu'><name>vf</name><memory>65536</memory><os><type arch='x86_64' machine='q35'>hvm"
           f"</type></os><devices>{r.out}</devices></domain>")
    lab.sh("cat > /tmp/vfdom.xml", input=dom, check=True)
    v = lab.sh("virt-xml-validate /tmp/vfdom.xml domain")
    assert v.rc == 0, v.out + v.err
    # the VF with its MAC hidden and opened by a nested QEMU; the PF keeps the VF's MAC meanwhile
    pid = None
    try:
        assert lab.vfioctl(f"hide {vf0}").rc == 0
        assert lab.driver(vf0) == "vfio-pci"
        r = lab.vfioctl(f"qemu-args {vf0}")
        assert r.rc == 0 and "set on its PF" in r.err and MAC0 in r.err, r.err
        pid, _ = start_qemu(lab, "vf1", r.out.strip())
        assert f"/dev/vfio/{group_of(lab, vf0)}" in fds(lab, pid)
        assert kernel_vfs(lab, igb)[0]["mac"] == MAC0
    finally:
        stop_qemu(lab, pid)
    # restore --all: the VF back on no driver, every setting back, compared field by field
    r = lab.vfioctl("restore --all", timeout=180)
    assert r.rc == 0, r.err
    assert lab.driver(vf0) is None
    assert kernel_vfs(lab, igb) == before


BAD = [
    ('mac = "03:00:00:00:00:01"', "multicast"),
    ("vlan = 4096", "0 to 4095"),
    ("max_tx_rate = 100000", "link speed"),
]


def test_bad_values_and_a_failure_at_each_write_change_nothing(lab, igb):
    """Done when, 3 and 4: bad values get exit 65 and one line; a failure injected at each
    netlink write rolls back; the kernel's VF list is as before every time."""
    before = kernel_vfs(lab, igb)
    speed = lab.sh(f"cat /sys/class/net/{igb}/speed 2>/dev/null; true").out.strip()
    for bad, words in BAD:
        write_config(lab, f"[[sriov.vf]]\nindex = 0\n{bad}\n")
        r = lab.vfioctl(f"apply --config {CONF}")
        assert r.rc == 65, (bad, r.rc, r.err)
        assert len(r.err.strip().splitlines()) == 1 and words in r.err, r.err
        if "rate" in bad:  # "above" a known speed; an unknown one (link down) is not unlimited
            assert ("above" in r.err) if speed.isascii() and speed.isdigit() else ("unknown" in r.err), (speed, r.err)
        assert kernel_vfs(lab, igb) == before, bad
    r = lab.vfioctl(f"sriov set {PF} --vf 2 trust=on")
    assert r.rc == 65 and len(r.err.strip().splitlines()) == 1 and "past the PF's VF count" in r.err, r.err
    assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "2"
    assert kernel_vfs(lab, igb) == before
    # a failure at each of the four writes
    write_config(lab, GOOD)
    r = lab.vfioctl(f"apply --config {CONF} --dry-run --json", check=True)
    n = sum(1 for s in json.loads(r.out)["steps"] if s["action"] == "netlink")
    assert n == 4, r.out
    for k in range(1, n + 1):
        r = lab.vfioctl(f"apply --config {CONF}", env={"VFIOCTL_FAULT_FAIL_AT": str(k)}, timeout=180)
        assert r.rc != 0 and "rolled back" in r.err, (k, r.err)
        assert kernel_vfs(lab, igb) == before, k
        assert "vfnet" not in lab.sh("cat /var/lib/vfioctl/state.json 2>/dev/null; true").out, k
