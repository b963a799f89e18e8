"""The VM lab's captured guest (tests/snapshots/lab-intel-iommu.tar.gz) as this version captures it."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

SNAP = str(Path(__file__).resolve().parents[1] / "snapshots" / "lab-intel-iommu.tar.gz")


def with_host_use(tmp_path) -> Path:
    """The lab snapshot unpacked, saying it captured the host-use readings with no process
    holding a device node: what a capture by this version of that guest says (the snapshot
    predates them: its own answer is "not known", which a mutating command refuses)."""
    with tarfile.open(SNAP) as tar:
        tar.extractall(tmp_path, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
    root = tmp_path / "root"
    meta = json.loads((root / ".vfioctl/meta.json").read_text())
    meta["captured"] = [*meta.get("captured", []), "host-use"]
    (root / ".vfioctl/meta.json").write_text(json.dumps(meta))
    probes = json.loads((root / ".vfioctl/probes.json").read_text())
    probes["open-nodes"] = {"opens": [], "complete": True, "why": "", "unreadable": 0, "processes": 1,
                            "seconds": 0.0}
    (root / ".vfioctl/probes.json").write_text(json.dumps(probes))
    return root
