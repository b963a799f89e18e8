"""hide / restore on a real kernel (issue 3).  Every assertion reads the guest's sysfs."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.vm

MAIN = "0000:00:02.0"
TWIN = "0000:00:07.0"
BR_A, BR_B, BRIDGE = "0000:01:01.0", "0000:01:02.0", "0000:00:05.0"
NVME = "0000:00:04.0"
SYS = "/sys/bus/pci/devices"


def group_of(lab, bdf: str) -> str:
    return lab.sh(f"basename $(readlink {SYS}/{bdf}/iommu_group)", check=True).out.strip()


def override(lab, bdf: str) -> str:
    return lab.read(f"{SYS}/{bdf}/driver_override")


def journal(lab) -> dict:
    r = lab.sh("cat /var/lib/vfioctl/state.json 2>/dev/null || echo '{}'", check=True)
    return json.loads(r.out)  # must always be valid JSON


def ifaces(lab, bdf: str) -> list[str]:
    return lab.sh(f"ls {SYS}/{bdf}/net 2>/dev/null || true").out.split()


def test_hide_and_restore_e1000e(lab):
    grp = group_of(lab, MAIN)
    assert lab.driver(MAIN) == "e1000e"
    before_ifaces = ifaces(lab, MAIN)
    assert before_ifaces, "the e1000e has a netdev at boot"

    r = lab.vfioctl(f"hide {MAIN}")
    assert r.rc == 0, r.err
    assert lab.driver(MAIN) == "vfio-pci"
    assert lab.sh(f"test -c /dev/vfio/{grp}").rc == 0
    assert override(lab, MAIN) == "vfio-pci"
    assert ifaces(lab, MAIN) == []
    assert journal(lab)["devices"][MAIN]["original_driver"] == "e1000e"

    r = lab.vfioctl(f"restore {MAIN}")
    assert r.rc == 0, r.err
    assert lab.driver(MAIN) == "e1000e"
    assert override(lab, MAIN) == "(null)"
    assert lab.sh(f"test -e /dev/vfio/{grp}").rc != 0
    # the interface comes back (the driver registers a new netdev)
    assert ifaces(lab, MAIN)
    assert MAIN not in journal(lab).get("devices", {})


def test_dry_run_changes_nothing(lab):
    r = lab.vfioctl(f"hide {MAIN} --dry-run")
    assert r.rc == 0, r.err
    assert "drivers_probe" in r.out and "driver_override" in r.out
    assert lab.driver(MAIN) == "e1000e"
    assert override(lab, MAIN) == "(null)"


def test_group_member_refused_then_whole_group(lab):
    r = lab.vfioctl(f"hide {BR_A}")
    assert r.rc == 69
    assert BR_B in r.err and "--group" in r.err
    assert lab.driver(BR_A) == "e1000" and lab.driver(BR_B) == "e1000"
    assert override(lab, BR_A) == "(null)"

    bridge_driver = lab.driver(BRIDGE)
    r = lab.vfioctl(f"hide {BR_A} --group")
    assert r.rc == 0, r.err
    assert lab.driver(BR_A) == "vfio-pci" and lab.driver(BR_B) == "vfio-pci"
    assert lab.driver(BRIDGE) == bridge_driver
    assert lab.sh(f"test -c /dev/vfio/{group_of(lab, BR_A)}").rc == 0

    r = lab.vfioctl("restore --all")
    assert r.rc == 0, r.err
    assert lab.driver(BR_A) == "e1000" and lab.driver(BR_B) == "e1000"
    assert override(lab, BR_A) == "(null)" and override(lab, BR_B) == "(null)"


def test_interface_with_address_and_route_refused_unless_forced(lab):
    iface = ifaces(lab, TWIN)[0]
    lab.sh(f"ip link set {iface} up && ip addr add 192.0.2.10/24 dev {iface} && "
           f"ip route add 198.51.100.0/24 via 192.0.2.1 dev {iface}", check=True)
    try:
        r = lab.vfioctl(f"hide {TWIN}")
        assert r.rc == 69
        assert "192.0.2.10/24" in r.err and "198.51.100.0/24" in r.err and iface in r.err
        assert lab.driver(TWIN) == "e1000e"
        r = lab.vfioctl(f"hide {TWIN} --force")
        assert r.rc == 0, r.err
        assert lab.driver(TWIN) == "vfio-pci"
    finally:
        lab.vfioctl(f"restore {TWIN}")
    assert lab.driver(TWIN) == "e1000e"


def test_mounted_filesystem_refused(lab):
    # nvme0n1, not the hidden multipath node nvme0c0n1 (no /dev entry)
    blk = lab.sh("ls /sys/class/block | grep -E '^nvme[0-9]+n[0-9]+$' | head -1", check=True).out.strip()
    assert blk, "the nvme namespace has a block device"
    # the kernel's own module requests go to the initramfs, which has no modules: load ext4 here
    lab.sh(f"modprobe ext4 && mkfs.ext4 -q -F /dev/{blk} && mkdir -p /tmp/mnt && mount /dev/{blk} /tmp/mnt", check=True, timeout=120)
    try:
        r = lab.vfioctl(f"hide {NVME}")
        assert r.rc == 69
        assert f"/dev/{blk} is mounted on /tmp/mnt" in r.err
        assert lab.driver(NVME) == "nvme"
    finally:
        lab.sh("umount /tmp/mnt")
    assert lab.driver(NVME) == "nvme"


def test_kill_9_after_every_write_is_recovered(lab):
    """kill -9 after the k-th sysfs write of a group hide, for every k; one restore recovers."""
    k = 1
    total_writes = None
    while True:
        r = lab.vfioctl(f"hide {BR_A} --group", env={"VFIOCTL_FAULT_KILL_AFTER": str(k)})
        j = journal(lab)  # valid JSON at every point
        if r.rc == 0:
            total_writes = k - 1
            lab.vfioctl("restore --all", check=True)
            break
        assert r.rc in (-9, 137), (k, r.rc, r.err)
        rec = lab.vfioctl("restore --all")
        assert rec.rc == 0, (k, rec.err)
        for bdf in (BR_A, BR_B):
            assert lab.driver(bdf) == "e1000", (k, bdf)
            assert override(lab, bdf) == "(null)", (k, bdf)
        assert journal(lab).get("devices", {}) == {}, (k, j)
        k += 1
        assert k < 20
    assert total_writes == 6  # per device: driver_override, unbind, drivers_probe


def test_concurrent_hide_restore_keep_journal_consistent(lab):
    cmds = []
    for i in range(8):
        verb = "hide" if i % 2 == 0 else "restore"
        cmds.append(
            f"( PYTHONPATH={lab.repo}/src {lab.python} -m vfioctl {verb} {TWIN} >/dev/null 2>&1; "
            f"echo \"$(date +%s%N) {verb} $?\" >> /tmp/conc.log ) &"
        )
    script = "rm -f /tmp/conc.log; " + " ".join(cmds) + " wait; sort -n /tmp/conc.log"
    r = lab.sh(script, timeout=300, check=True)
    lines = [ln.split() for ln in r.out.splitlines() if ln.strip()]
    assert len(lines) == 8
    j = journal(lab)
    last_ok = [ln for ln in lines if ln[2] == "0"][-1]
    if last_ok[1] == "hide":
        assert lab.driver(TWIN) == "vfio-pci"
        assert TWIN in j["devices"] and j["devices"][TWIN]["state"] == "hidden"
    else:
        assert lab.driver(TWIN) == "e1000e"
        assert TWIN not in j.get("devices", {})
    st = lab.vfioctl("status --json")
    assert json.loads(st.out)["problems"] == []
    lab.vfioctl(f"restore {TWIN}")
    assert lab.driver(TWIN) == "e1000e"
