"""Reading the PCI topology from sysfs."""

import os

from groupscenarios import A, two_root_ports
from pcitopo import (
    FULL_ACS,
)

from vfioctl.pci.topology import read_topology


# ------------------------------------------------------------------ hostile trees
def test_hostile_sysfs_names_and_links_are_ignored(tmp_path):
    b = two_root_ports(tmp_path, FULL_ACS, same_group=False)
    devs = b.root / "sys/bus/pci/devices"
    (devs / "../../../../etc").mkdir(parents=True, exist_ok=True)
    os.symlink("/nonexistent", devs / "0000:00:1f.7\n")
    os.symlink("/nonexistent", devs / "garbage")
    g = b.root / "sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0"
    (g / "iommu_group").unlink()
    os.symlink("../../../../kernel/iommu_groups/99999999999999", g / "iommu_group")
    topo = read_topology(b.host())
    assert set(map(str, topo.functions)) == {"0000:00:00.0", "0000:00:1c.0", "0000:00:1c.1", "0000:01:00.0",
                                            "0000:02:00.0"}
    assert topo.functions[A("01:00.0")].iommu_group is None
