"""IOMMU-group scenarios shared by the tests of the grouping replay, its prediction and
explanations (tests/unit/iommu) and their rendering (tests/unit/report/test_isolation.py)."""

from pathlib import Path

from pcitopo import TopoBuilder, endpoint, host_bridge, root_port

from vfioctl.iommu.predict import compare, predict_groups
from vfioctl.pci.address import PciAddress
from vfioctl.pci.topology import read_topology

SNAPS = Path(__file__).resolve().parents[1] / "snapshots"
#: the VM lab captured as root by this version: full config space of every function
SNAP = SNAPS / "lab-intel-iommu.tar.gz"
#: the earlier lab captured by vfioctl 0.1.0, which kept 64 bytes of config space
SNAP_64 = SNAPS / "lab-0.1.0.tar.gz"
A = PciAddress.parse


def partition(groups) -> set[frozenset[str]]:
    return {frozenset(str(a) for a in ms) for ms in groups.values()}


def assert_predicts_kernel(b: TopoBuilder):
    topo = read_topology(b.host())
    pred = predict_groups(topo)
    assert partition(pred) == partition(topo.kernel_groups())
    assert compare(pred, topo.kernel_groups()) == []
    return topo, pred


# ------------------------------------------------------------------ scenarios
def two_root_ports(tmp_path, acs, *, same_group: bool):
    """Two pcie-root-ports in one multifunction slot (00:1c.0/.1), one NIC below each."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    g1, g2, g3, g4 = (1, 1, 1, 1) if same_group else (1, 2, 3, 4)
    root_port(b, "0000:00:1c.0", 1, group=g1, acs=acs, multifunction=True)
    root_port(b, "0000:00:1c.1", 2, group=g2, acs=acs)
    endpoint(b, "0000:01:00.0", parent="0000:00:1c.0", group=g3)
    endpoint(b, "0000:02:00.0", parent="0000:00:1c.1", group=g4)
    return b
