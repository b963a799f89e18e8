"""What ``groups --why`` and ``groups --predict`` show, text and JSON, on the lab snapshot and a built tree."""

import io
import json
from contextlib import redirect_stdout

import pytest
from groupscenarios import two_root_ports

from vfioctl.cli import main


def _cli(*argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(list(argv))
    return rc, buf.getvalue()


def test_cli_why_and_predict_on_the_lab_snapshot(lab):
    rc, out = _cli("--root", str(lab), "groups", "--why", "14")
    assert rc == 0 and "group 14: 0000:00:0e.0, 0000:00:0e.1" in out and "multifunction without ACS" in out
    rc, out = _cli("--root", str(lab), "groups", "--why", "01:01.0", "--json")
    data = json.loads(out)
    assert data["schema"] == "vfioctl.groups-why/1" and [g["group"] for g in data["groups"]] == [5]
    rc, out = _cli("--root", str(lab), "groups", "--why")
    assert rc == 0 and out.count("\ngroup ") + out.startswith("group ") == 3  # groups 5, 14, 15
    rc, out = _cli("--root", str(lab), "groups", "--predict", "--json")
    data = json.loads(out)
    assert rc == 0 and data["schema"] == "vfioctl.groups/1" and data["groups"] == []
    assert data["prediction"]["complete"] is False and "64 bytes" in data["prediction"]["verdict"]
    rc, out = _cli("--root", str(lab), "groups", "--predict")
    assert rc == 0 and out.startswith("prediction: cannot predict")


def test_cli_groups_output_is_unchanged_without_the_flags(lab):
    rc, out = _cli("--root", str(lab), "groups")
    assert rc == 0 and out.startswith("IOMMU groups\n├── group 0  viable")
    rc, out = _cli("--root", str(lab), "groups", "--json")
    assert set(json.loads(out)) == {"schema", "iommu_enabled", "groups"}


def test_cli_predict_prints_groups_in_the_groups_schema(tmp_path):
    b = two_root_ports(tmp_path, None, same_group=True)
    rc, out = _cli("--root", str(b.root), "groups", "--predict", "--json")
    data = json.loads(out)
    assert rc == 0 and data["prediction"]["verdict"] == "matches the kernel"
    g = data["groups"][1]
    assert set(g) == {"group", "viable", "blockers", "vfio_node", "members"}
    assert [(m["address"], m["role"]) for m in g["members"]] == [
        ("0000:00:1c.0", "bridge"), ("0000:00:1c.1", "bridge"), ("0000:01:00.0", "endpoint"),
        ("0000:02:00.0", "endpoint")]
    assert g["viable"] is False and g["blockers"] == ["0000:01:00.0", "0000:02:00.0"]
    rc, out = _cli("--root", str(b.root), "groups", "--predict")
    assert "Predicted IOMMU groups" in out and "prediction: matches the kernel" in out
    rc, out = _cli("--root", str(b.root), "groups", "--why", "group:1")
    assert "why: port without ACS" in out and "0000:00:1c.0 (root port, no ACS)" in out


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["groups", "--help"])
    out = capsys.readouterr().out
    assert "vfioctl groups --why 14" in out and "--predict" in out
