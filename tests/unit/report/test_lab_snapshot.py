"""Planning on the VM lab guest's captured state (tests/snapshots/lab-intel-iommu.tar.gz).

A real kernel's sysfs, read offline: the planner must refuse and plan exactly as it does live,
and a captured host must refuse to be changed."""

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from vfioctl.cli import main

SNAP = str(Path(__file__).resolve().parents[2] / "snapshots" / "lab-intel-iommu.tar.gz")


def run(*argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["--root", SNAP, *argv])
    return rc, buf.getvalue()


def test_groups_of_the_real_guest(tmp_path, monkeypatch):
    rc, out = run("groups", "--json")
    data = json.loads(out)
    g5 = next(g for g in data["groups"] if any(m["address"] == "0000:00:05.0" for m in g["members"]))
    assert [(m["address"], m["role"], m["driver"]) for m in g5["members"]] == [
        ("0000:00:05.0", "bridge", None), ("0000:01:01.0", "endpoint", "e1000"), ("0000:01:02.0", "endpoint", "e1000")]


def test_dry_run_plans_on_a_captured_host(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    assert main(["--root", SNAP, "hide", "01:01.0", "--dry-run"]) == 69
    assert "0000:01:02.0 (e1000) would stay on a host driver" in capsys.readouterr().err
    rc, out = run("hide", "01:01.0", "--group", "--dry-run", "--json")
    plan = json.loads(out)
    assert rc == 0 and plan["schema"] == "vfioctl.plan/1"
    assert [(c["address"], c["from"], c["to"]) for c in plan["changes"]] == [
        ("0000:01:01.0", "e1000", "vfio-pci"), ("0000:01:02.0", "e1000", "vfio-pci")]
    writes = [(s["path"], s["value"]) for s in plan["steps"] if s["action"] == "write"]
    assert writes[:3] == [
        ("/sys/bus/pci/devices/0000:01:01.0/driver_override", "vfio-pci"),
        ("/sys/bus/pci/drivers/e1000/unbind", "0000:01:01.0"),
        ("/sys/bus/pci/drivers_probe", "0000:01:01.0"),
    ]


def test_a_captured_host_is_never_changed(monkeypatch, capsys):
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    rc = main(["--root", SNAP, "hide", "00:07.0"])
    err = capsys.readouterr().err
    assert rc == 69 and "is a snapshot, which is read-only" in err and err.count("\n") == 1
