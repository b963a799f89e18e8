"""Issue 17 on a real kernel: configs that select devices by model, PF and VF range, and count.
Every assertion reads the guest's sysfs (driver links, virtfn links) or counts the kernel writes
vfioctl made ($VFIOCTL_TRACE_WRITES)."""

from __future__ import annotations

import json

import lab as vmlab
import pytest

pytestmark = pytest.mark.vm

SYS = "/sys/bus/pci/devices"
MAIN, TWIN, NVME = vmlab.MAIN_NIC, vmlab.TWIN_NIC, vmlab.NVME_PF
CFG = "/tmp/select/vfioctl.toml"
TWIN_SELECTOR = '[[device]]\nmatch = { id = "8086:10d3" }\ncount = 1\n'
# three 8086:10d3 e1000e in the lab: MAIN, TWIN and the one behind a root port (ACS_NIC)
TWO_FREE = '[[device]]\nmatch = { id = "8086:10d3" }\ncount = 2\n'


def write(lab, text: str) -> None:
    lab.sh(f"mkdir -p /tmp/select && cat > {CFG}", input=text, check=True)


@pytest.fixture
def main_in_use(lab):
    """MAIN carries an address and a route: a count selector must pass over it."""
    iface = lab.sh(f"ls {SYS}/{MAIN}/net", check=True).out.split()[0]
    lab.sh(f"ip link set {iface} up && ip addr add 192.0.2.40/24 dev {iface} && "
           f"ip route add 198.51.100.0/24 via 192.0.2.1 dev {iface}", check=True)
    try:
        yield iface
    finally:
        lab.sh(f"ip addr flush dev {iface}; ip link set {iface} down")
        lab.vfioctl("restore --all", timeout=180)


def test_count_selector_takes_the_free_twins_keeps_them_and_refuses_a_shortage(lab, main_in_use):
    nic3 = vmlab.ACS_NIC
    write(lab, TWO_FREE)
    r = lab.vfioctl(f"apply --config {CFG} --dry-run")
    assert r.rc == 0 and TWIN in r.out and nic3 in r.out and f"passed over {MAIN}" in r.out, r.out
    assert "192.0.2.40/24" in r.out
    r = lab.vfioctl(f"apply --config {CFG}", timeout=180)
    assert r.rc == 0, r.err
    assert lab.driver(TWIN) == "vfio-pci" and lab.driver(nic3) == "vfio-pci" and lab.driver(MAIN) == "e1000e"
    # a second apply writes nothing to the kernel
    lab.sh("rm -f /tmp/select/trace", check=True)
    r = lab.vfioctl(f"apply --config {CFG}", env={"VFIOCTL_TRACE_WRITES": "/tmp/select/trace"}, timeout=180)
    assert r.rc == 0 and "no changes" in r.out
    assert lab.sh("cat /tmp/select/trace 2>/dev/null | wc -l").out.strip() == "0"
    # the chosen twin leaves the bus: the shortage is named and nothing changes
    lab.sh(f"echo 1 > {SYS}/{TWIN}/remove", check=True)
    try:
        assert not lab.exists(f"{SYS}/{TWIN}")
        before = lab.pci(brief=True)
        r = lab.vfioctl(f"apply --config {CFG}", timeout=180)
        assert r.rc == 69 and "needs 2 free device(s)" in r.err and MAIN in r.err, r.err
        assert lab.pci(brief=True) == before
    finally:
        lab.sh("echo 1 > /sys/bus/pci/rescan", check=True, timeout=120)
        for _ in range(100):
            if lab.driver(TWIN) == "e1000e":
                break
            lab.sh("sleep 0.2")
    assert lab.driver(TWIN) == "e1000e"


def test_pf_vf_range_selector_hides_exactly_those_vfs(lab):
    write(lab, f'[[sriov]]\npf = "{NVME}"\nnumvfs = 3\nautoprobe = false\n\n'
               f'[[device]]\nmatch = {{ pf = "{NVME}", vfs = "0-1" }}\n')
    try:
        r = lab.vfioctl(f"apply --config {CFG}", timeout=300)
        assert r.rc == 0, r.err
        vfs = lab.sh(f"for i in 0 1 2; do basename $(readlink {SYS}/{NVME}/virtfn$i); done", check=True).out.split()
        assert [lab.driver(v) for v in vfs] == ["vfio-pci", "vfio-pci", None]
    finally:
        lab.vfioctl("restore --all", timeout=300)
    assert lab.read(f"{SYS}/{NVME}/sriov_numvfs") == "0"


def test_concurrent_applies_never_take_a_device_twice(lab):
    write(lab, TWIN_SELECTOR)
    try:
        r = lab.sh(f"for i in 1 2 3; do PYTHONPATH={lab.repo}/src {lab.python} -m vfioctl apply --config {CFG} "
                   ">/dev/null 2>&1 & done; wait", timeout=600)
        assert r.rc == 0
        on_vfio = [a for a in (MAIN, TWIN, vmlab.ACS_NIC) if lab.driver(a) == "vfio-pci"]
        assert len(on_vfio) == 1, on_vfio
        j = json.loads(lab.read("/var/lib/vfioctl/state.json"))
        assert [a for a, rec in j["devices"].items() if rec.get("entry")] == on_vfio
    finally:
        lab.vfioctl("restore --all", timeout=180)
