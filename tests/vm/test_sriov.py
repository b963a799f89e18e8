"""SR-IOV on the emulated nvme PF (issue 4).  Assertions read the guest's sysfs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.vm

PF = "0000:00:04.0"
SYS = "/sys/bus/pci/devices"


def vfs(lab) -> list[str]:
    out = lab.sh(f"for l in {SYS}/{PF}/virtfn*; do [ -e \"$l\" ] && basename $(readlink $l); done; true").out
    return out.split()


def test_set_hide_creates_hidden_vfs_that_no_host_driver_probed(lab):
    assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "0"
    autoprobe_before = lab.read(f"{SYS}/{PF}/sriov_drivers_autoprobe")
    mark = lab.log_mark()
    r = lab.vfioctl(f"sriov set {PF} 2 --hide", timeout=180)
    try:
        assert r.rc == 0, r.err
        assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "2"
        created = vfs(lab)
        assert len(created) == 2
        groups = set()
        for vf in created:
            assert lab.sh(f"basename $(readlink {SYS}/{vf}/physfn)").out.strip() == PF
            grp = lab.sh(f"basename $(readlink {SYS}/{vf}/iommu_group)").out.strip()
            groups.add(grp)
            assert lab.driver(vf) == "vfio-pci"
            assert lab.sh(f"test -c /dev/vfio/{grp}").rc == 0
        assert len(groups) == 2, "each VF has its own IOMMU group"
        # autoprobe was off while the VFs appeared: nvme never tried them
        log = lab.log_since(mark)
        for vf in created:
            assert not [ln for ln in log.splitlines() if "nvme" in ln and vf in ln], log

        # changing the count while VFs are hidden is refused
        r = lab.vfioctl(f"sriov set {PF} 3")
        assert r.rc == 69 and "hidden by vfioctl" in r.err
        assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "2"
    finally:
        r = lab.vfioctl(f"restore {PF}", timeout=180)
    assert r.rc == 0, r.err
    assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "0"
    assert vfs(lab) == []
    assert lab.read(f"{SYS}/{PF}/sriov_drivers_autoprobe") == autoprobe_before
    assert lab.driver(PF) == "nvme"


def test_over_total_and_missing_pf_driver_refused(lab):
    r = lab.vfioctl(f"sriov set {PF} 5")
    assert r.rc == 69 and "at most 4" in r.err
    assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "0"
    lab.sh(f"echo {PF} > /sys/bus/pci/drivers/nvme/unbind", check=True)
    try:
        r = lab.vfioctl(f"sriov set {PF} 2")
        assert r.rc == 69
        assert "nvme" in r.err and "no driver bound" in r.err
        assert lab.read(f"{SYS}/{PF}/sriov_numvfs") == "0"
    finally:
        lab.sh(f"echo {PF} > /sys/bus/pci/drivers/nvme/bind", check=True)
    assert lab.driver(PF) == "nvme"


def test_sriov_show_matches_sysfs(lab):
    import json

    r = lab.vfioctl(f"sriov show {PF} --json", check=True)
    data = json.loads(r.out)["pfs"][0]
    assert data["totalvfs"] == int(lab.read(f"{SYS}/{PF}/sriov_totalvfs"))
    assert data["numvfs"] == int(lab.read(f"{SYS}/{PF}/sriov_numvfs"))
    assert data["drivers_autoprobe"] == (lab.read(f"{SYS}/{PF}/sriov_drivers_autoprobe") == "1")
    assert data["offset"] == int(lab.read(f"{SYS}/{PF}/sriov_offset"))
