"""What the tests of vfioctl.cluster (tests/unit/cluster) share: the lab snapshot and the golden files."""

from pathlib import Path

SNAPSHOT = str(Path(__file__).parents[1] / "snapshots" / "lab-intel-iommu.tar.gz")
GOLDEN = Path(__file__).parent / "golden" / "cluster"
