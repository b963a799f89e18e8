"""vfioctl.cluster.labels: NFD labels (golden on the lab snapshot, the NFD file, counts per ID)."""

from __future__ import annotations

import json
import stat

from clusterdata import GOLDEN, SNAPSHOT

from vfioctl.base.names import is_k8s_name, is_label_value
from vfioctl.cli import main
from vfioctl.cluster import labels


# ====================================================================== labels and kubevirt: golden
def test_labels_for_the_lab_snapshot_equal_the_golden_file(capsys):
    assert main(["--root", SNAPSHOT, "labels"]) == 0
    out = capsys.readouterr().out
    assert out == (GOLDEN / "labels.txt").read_text()
    for line in out.splitlines()[1:]:
        key, _, value = line.partition("=")
        ns, _, name = key.partition("/")
        assert ns == labels.NAMESPACE and is_k8s_name(name) and is_label_value(value)


def test_labels_json_and_nfd_file(tmp_path, capsys):
    assert main(["--root", SNAPSHOT, "labels", "--json", "--nfd-dir", str(tmp_path / "features.d")]) == 0
    js = json.loads(capsys.readouterr().out)
    written = tmp_path / "features.d" / "vfioctl"
    assert js["path"] == str(written) and written.read_text() == (GOLDEN / "labels.txt").read_text()
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert js["labels"]["vfioctl-vfio-unsafe.kvm"] == "true" and js["failing"][0]["id"] == "kvm"
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "vfioctl").symlink_to(tmp_path / "elsewhere")
    assert main(["--root", SNAPSHOT, "labels", "--nfd-dir", str(tmp_path / "d2")]) == 65
    assert not (tmp_path / "elsewhere").exists()


def test_labels_count_published_devices_per_id():
    f = labels.LabelFacts("pass", "warn", (("kvm", "KVM", "absent"), ("iommu", "IOMMU", "off")),
                          ("8086:10d3", "8086:10d3", "10de:2335"))
    got = labels.build(f).labels
    assert got == {"vfioctl-iommu": "true", "vfioctl-irq-remap": "unknown", "vfioctl-ready": "false",
                   "vfioctl-vfio-unsafe.iommu": "true", "vfioctl-vfio-unsafe.kvm": "true", "vfioctl-hidden": "3",
                   "vfioctl-hidden.10de-2335": "1", "vfioctl-hidden.8086-10d3": "2"}
    f = labels.LabelFacts("fail", "info", (("bad id!", "x", "y"),), ())
    built = labels.build(f)
    assert built.labels["vfioctl-irq-remap"] == "false" and "vfioctl-vfio-unsafe.bad id!" not in built.labels
    assert built.notes
