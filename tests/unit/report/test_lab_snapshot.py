"""Planning on the VM lab guest's captured state (tests/snapshots/lab-intel-iommu.tar.gz).

A real kernel's sysfs, read offline: the planner must refuse and plan exactly as it does live,
and a captured host must refuse to be changed."""

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

from labsnap import with_host_use

from vfioctl.cli import main

SNAP = str(Path(__file__).resolve().parents[2] / "snapshots" / "lab-intel-iommu.tar.gz")


def run(*argv, root=SNAP):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(["--root", str(root), *argv])
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
    # the snapshot predates the host-use readings: not known is refused, with why
    assert main(["--root", SNAP, "hide", "01:01.0", "--group", "--dry-run"]) == 69
    assert "not known: whether a process holds its device nodes" in capsys.readouterr().err
    rc, out = run("hide", "01:01.0", "--group", "--dry-run", "--json", root=with_host_use(tmp_path))
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


# ---------------------------------------------------------------- wrong words (issue 23)
def test_apply_plans_loading_a_module_once(monkeypatch, tmp_path):
    """Two sub-plans (the SR-IOV VFs, then 00:07.0) each wanted vfio_pci: the old plan loaded it twice."""
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    rc, out = run("apply", "--dry-run", "--json", root=with_host_use(tmp_path))
    plan = json.loads(out)
    assert rc == 0 and len(plan["changes"]) == 4
    assert [s["value"] for s in plan["steps"] if s["action"] == "modprobe"] == ["vfio_pci"]


def test_list_class_is_validated(capsys):
    assert main(["--root", SNAP, "list", "--class", "zz"]) == 65
    assert "--class: class = 'zz' is neither a class code" in capsys.readouterr().err
    rc, out = run("list", "--class", "nvme")
    assert rc == 0 and "0000:00:04.0" in out and "0000:00:02.0" not in out


def test_show_prints_words_not_python_reprs():
    rc, out = run("show", "0000:00:07.0")
    assert rc == 0
    for repr_ in ("viable=", "[(", "('", "False", "True", "None"):
        assert repr_ not in out, repr_
    keys = [line.split()[0] for line in out.splitlines()]
    assert keys.count("reset_methods") == 1 and "reset_method" not in keys
    assert "group                  viable no; blockers 0000:00:07.0; members 0000:00:07.0 (endpoint); vfio node -" in out


def test_groups_role_column_holds_every_role():
    rc, out = run("groups")
    member_lines = [line for line in out.splitlines() if "driver=" in line]
    assert {line.index("driver=") for line in member_lines} == {len("│   ├── 0000:00:00.0  [8086:29c0]  ") + 13}
    assert "(companion of 0000:00:0e.0)" in out


def test_why_gives_no_template_advice_to_a_group_with_one_endpoint():
    """Group 23 is a port without ACS and the e1000 below it: the e1000 goes alone (the port stays
    with the host); the old text told the user to move the card.  Group 16 is a lone root port."""
    rc, out = run("groups", "--why", "0000:08:00.0")
    advice = out.split("what you can do:")[1]
    assert "move the card" not in advice and "pcie_acs_override" not in advice
    assert "0000:08:00.0 is the only endpoint in its group (the bridge 0000:07:00.0 in it stays with the host)" \
        in advice
    rc, out = run("groups", "--why", "16")
    assert "nothing here to assign" in out and "vfioctl hide 0000:00:11.0" not in out


def test_rom_on_a_snapshot_that_did_not_capture_it_says_so():
    """This snapshot predates ROM capture: `rom` said "no option ROM" (the README shows the ROM)."""
    rc, out = run("rom", "0000:00:07.0")
    assert rc == 0 and "not captured" in out and "no option ROM" not in out
    rc, out = run("rom", "0000:00:07.0", "--json")
    data = json.loads(out)
    assert data["present"] is None and data["size"] is None and data["images"] == []
    assert "did not capture" in data["not_captured"]["present"]
    rc, out = run("assess", "0000:00:07.0", "--json")
    rom = next(f for f in json.loads(out)["devices"][0]["findings"] if f["id"] == "option-rom")
    assert rom["status"] == "info" and rom["evidence"].startswith("option ROM not captured")


def test_a_snapshot_reader_is_not_told_to_run_as_root(capsys):
    """Reading a snapshot as root or not, "run as root" changes nothing: the capture is what lacks."""
    from vfioctl.host.core import Host

    host = Host(SNAP)
    assert host.root_advice() == "capture the host again as root (`sudo vfioctl snapshot FILE`)"


def test_an_unpacked_snapshot_folder_is_recognised(tmp_path):
    import subprocess

    # as a user unpacks it (Debian 12's tarfile has no extraction filter)
    subprocess.run(["tar", "-xzf", SNAP, "-C", str(tmp_path)], check=True)
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["--root", str(tmp_path), "list", "--json"]) == 0
    assert len(json.loads(buf.getvalue())["devices"]) == 35
    # and it is read-only like the archive
    assert main(["--root", str(tmp_path), "hide", "00:07.0"]) == 69


def test_a_folder_that_is_no_host_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--root", str(tmp_path / "empty"), "list"]) == 66
    assert "not a captured host" in capsys.readouterr().err
