"""vfioctl.report.snapshot and `vfioctl snapshot`: round trips, robustness, and the committed fixtures."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from vfioctl.base.errors import VfioctlError
from vfioctl.cli import main
from vfioctl.host.core import Host
from vfioctl.report import inventory, snapshot
from vfioctl.report.checks import run_checks

SNAPDIR = Path(__file__).resolve().parents[2] / "snapshots"
#: what each committed snapshot must show; a new capture is one entry here
EXPECT: dict[str, dict] = {
    # this project's CI machine: a KVM guest (Firecracker) with no IOMMU and a kernel without vfio
    "ci-noiommu.tar.gz": {
        "required": True,
        "iommu_enabled": False,
        "status": {"iommu": "fail", "cpu-virt": "fail", "acpi-table": "fail", "vfio-modules": "fail",
                   "dev-vfio": "fail", "irq-remap": "info", "kvm": "pass"},
        "evidence": {"iommu": "/sys/kernel/iommu_groups is empty"},
        "exit": 1,
    },
    # the VM lab's guest: q35 + -device intel-iommu,intremap=on, booted with intel_iommu=on
    # (its CPU may lack vmx under TCG, and /boot may not hold its config: not asserted)
    "lab-intel-iommu.tar.gz": {
        "required": True,
        "iommu_enabled": True,
        "status": {"iommu": "pass", "acpi-table": "pass", "cmdline-iommu": "pass", "irq-remap": "pass"},
        "evidence": {"acpi-table": "/sys/firmware/acpi/tables/DMAR present"},
    },
    # the lab of 0.2.0 (docs/demo.py captures it: the README's walkthrough reads it), with every
    # reading 0.2.0 takes (ROMs, links, DRM cards, host use)
    "lab-0.2.0.tar.gz": {
        "required": True,
        "iommu_enabled": True,
        "status": {"iommu": "pass", "acpi-table": "pass", "cmdline-iommu": "pass", "irq-remap": "pass"},
        "evidence": {"acpi-table": "/sys/firmware/acpi/tables/DMAR present"},
    },
    # the earlier lab, captured by vfioctl 0.1.0 (64 bytes of config space per function)
    "lab-0.1.0.tar.gz": {
        "required": True,
        "iommu_enabled": True,
        "status": {"iommu": "pass", "acpi-table": "pass", "cmdline-iommu": "pass"},
    },
}
SNAPSHOTS = sorted(p.name for p in SNAPDIR.glob("*.tar.gz"))


# ====================================================================== helpers

def all_views(host: Host) -> dict:
    """Everything `list`, `groups` and `show` print as JSON, plus `check`."""
    devs = inventory.list_devices(host)
    return {
        "list": devs,
        "groups": inventory.list_groups(host),
        "show": {d["address"]: inventory.show_device(host, d["address"]) for d in devs},
        "check": run_checks(host).to_dict(),
    }


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def snap(tmp_path):
    def make(b, **kw) -> tuple[Path, snapshot.SnapshotResult]:
        out = tmp_path / "out" / "snap.tar.gz"
        out.parent.mkdir(exist_ok=True)
        res = snapshot.write_snapshot(Host(b.root), out, **kw)
        return out, res

    return make


# ====================================================================== round trips

def test_round_trip_standard_host(fake, snap):
    (fake.root / ".vfioctl").mkdir()
    (fake.root / ".vfioctl/dmesg.txt").write_text("[    0.1] DMAR-IR: Enabled IRQ remapping in x2apic mode\n")
    (fake.root / "proc/cmdline").write_text("root=/dev/vda1 intel_iommu=on\n")
    path, res = snap(fake)
    before = all_views(Host(fake.root))
    after = all_views(Host(path))
    assert after == before
    # and it is not vacuous: the fake host's facts made it through
    assert len(after["list"]) == 11
    assert after["show"]["0000:00:02.0"]["net_interfaces"] == ["eth0"]
    assert after["show"]["0000:00:04.0"]["block_devices"] == ["nvme0n1"]
    assert after["show"]["0000:00:04.0"]["sriov"]["totalvfs"] == 4
    assert after["show"]["0000:00:05.0"]["is_bridge"] is True
    assert [g["group"] for g in after["groups"]["groups"]] == [0, 1, 2, 4, 5, 7, 9]
    assert res.skipped == []
    assert res.files > 60 and res.links > 30 and res.size == path.stat().st_size


def test_round_trip_with_vfs_and_vfio(fake, snap):
    host = fake.host()
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "2")
    fake.driver("vfio-pci")
    fake.unbind("0000:00:07.0")
    fake.bind("0000:00:07.0", "vfio-pci")
    path, _ = snap(fake)
    before, after = all_views(Host(fake.root)), all_views(Host(path))
    assert after == before
    assert after["show"]["0000:00:04.0"]["sriov"]["vfs"] == ["0000:00:04.1", "0000:00:04.2"]
    assert after["show"]["0000:00:04.1"]["physfn"] == "0000:00:04.0"
    g7 = next(g for g in after["groups"]["groups"] if g["group"] == 7)
    assert g7["viable"] is True and g7["vfio_node"] == "/dev/vfio/7"


def test_show_by_interface_and_group_on_snapshot(fake, snap):
    path, _ = snap(fake)
    h = Host(path)
    assert inventory.show_device(h, "eth1")["address"] == "0000:00:07.0"
    assert inventory.show_device(Host(fake.root), "eth1") == inventory.show_device(h, "eth1")


def test_snapshot_of_a_snapshot_is_the_same(fake, snap, tmp_path):
    path, _ = snap(fake)
    again = tmp_path / "again.tar.gz"
    snapshot.write_snapshot(Host(path), again)
    assert all_views(Host(again)) == all_views(Host(path))


# ====================================================================== archive layout

def test_layout_root_prefix_and_relative_links(fake, snap):
    path, _ = snap(fake)
    ms = members(path)
    assert "root/" in ms or "root" in ms
    assert all(n == "root" or n.startswith("root/") for n in ms)
    links = [m for m in ms.values() if m.issym()]
    assert links and all(not m.linkname.startswith("/") for m in links)
    link = ms["root/sys/bus/pci/devices/0000:00:02.0"]
    assert link.issym() and link.linkname == "../../../devices/pci0000:00/0000:00:02.0"
    assert ms["root/sys/devices/pci0000:00/0000:00:02.0/config"].size == 64
    assert ms["root/sys/devices/pci0000:00/0000:00:02.0/driver"].issym()
    assert not any(m.isdev() for m in ms.values())
    meta = json.loads(tarfile.open(path).extractfile("root/.vfioctl/meta.json").read())
    assert meta["schema"] == "vfioctl.snapshot/1"
    assert meta["source"] == str(fake.root)
    assert meta["uname"]["release"] == "6.1.0-test-amd64"
    assert meta["skipped"] == []


def test_markers_for_device_nodes_and_boot_tools(fake, snap):
    (fake.root / "dev/vfio/vfio").write_text("")
    (fake.root / "dev/kvm").write_text("")
    (fake.root / "usr/sbin").mkdir(parents=True)
    (fake.root / "usr/sbin/update-grub").write_text("#!/bin/sh\nexec grub-mkconfig -o /boot/grub/grub.cfg\n")
    (fake.root / "etc/default").mkdir()
    (fake.root / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n')
    path, _ = snap(fake)
    ms = members(path)
    for p in ("root/dev/vfio/vfio", "root/dev/kvm", "root/usr/sbin/update-grub"):
        assert ms[p].isfile() and ms[p].size == 0
    assert ms["root/etc/default/grub"].size > 0
    h = Host(path)
    assert h.read("/etc/default/grub") == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"'
    from vfioctl.report.checks import boot_setup

    (fake.root / "etc/os-release").write_text("ID=debian\n")
    path, _ = snap(fake)
    assert boot_setup(Host(path)) == "debian-grub" == boot_setup(Host(fake.root))


def test_unreadable_files_are_skipped_and_listed(fake, snap):
    dev = fake.root / "sys/devices/pci0000:00/0000:00:02.0"
    (dev / "numa_node").unlink()
    (dev / "numa_node").symlink_to("numa_node")  # ELOOP on open: unreadable even as root
    path, res = snap(fake)
    assert res.skipped == ["/sys/devices/pci0000:00/0000:00:02.0/numa_node: Too many levels of symbolic links"]
    meta = json.loads(tarfile.open(path).extractfile("root/.vfioctl/meta.json").read())
    assert meta["skipped"] == res.skipped
    assert "root/sys/devices/pci0000:00/0000:00:02.0/numa_node" not in members(path)
    assert inventory.show_device(Host(path), "0000:00:02.0")["numa_node"] is None


def test_no_ids_leaves_out_pci_ids(fake, snap):
    (fake.root / "usr/share/misc").mkdir(parents=True)
    (fake.root / "usr/share/misc/pci.ids").write_text("# pci.ids\n8086  Intel Corporation\n\t10d3  82574L Gigabit Network Connection\n")
    path, _ = snap(fake)
    assert "root/usr/share/misc/pci.ids" in members(path)
    assert inventory.show_device(Host(path), "0000:00:02.0")["device_name"] == "82574L Gigabit Network Connection"
    path, _ = snap(fake, include_ids=False)
    assert "root/usr/share/misc/pci.ids" not in members(path)
    # names then come from the reader's pci.ids, as `snapshot --help` says (issue 23: all were "?")
    from vfioctl.pci.ids import PciIds

    mine = PciIds.load(Host("/")).vendor("8086")
    assert inventory.list_devices(Host(path))[0]["vendor_name"] == mine


def test_kernel_config_and_modules_captured(fake, snap):
    rel = "6.1.0-test-amd64"
    (fake.root / f"boot/config-{rel}").write_text("CONFIG_VFIO=m\n")
    (fake.root / f"lib/modules/{rel}/modules.alias").write_text("alias pci:v00008086d000010D3* e1000e\n")
    mod = fake.root / "sys/module/vfio_iommu_type1/parameters"
    mod.mkdir(parents=True)
    (mod / "allow_unsafe_interrupts").write_text("N\n")
    (fake.root / "sys/module/e1000e").mkdir()
    path, _ = snap(fake)
    ms = members(path)
    assert f"root/boot/config-{rel}" in ms
    assert "root/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts" in ms
    # `check` lists /sys/module (which kvm modules are loaded): names only, nothing inside
    assert not any(n.startswith("root/sys/module/e1000e/") for n in ms)
    h = Host(path)
    assert inventory.show_device(h, "0000:00:02.0")["candidate_modules"] == ["e1000e"]


# ====================================================================== atomic write

def test_failed_capture_leaves_nothing(fake, tmp_path, monkeypatch):
    out = tmp_path / "o"
    out.mkdir()
    (out / "snap.tar.gz").write_bytes(b"previous")

    def boom(self, tar, now):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(snapshot._Archive, "write", boom)
    with pytest.raises(RuntimeError):
        snapshot.write_snapshot(Host(fake.root), out / "snap.tar.gz")
    assert sorted(os.listdir(out)) == ["snap.tar.gz"]
    assert (out / "snap.tar.gz").read_bytes() == b"previous"


def test_missing_folder_is_a_clear_error(fake, tmp_path):
    with pytest.raises(VfioctlError) as exc:
        snapshot.write_snapshot(Host(fake.root), tmp_path / "nope" / "s.tar.gz")
    assert exc.value.exit_code == 66 and str(tmp_path / "nope") in str(exc.value)


def test_capture_to_stream(fake):
    buf = io.BytesIO()
    res = snapshot.capture(Host(fake.root), buf)
    assert res.path is None and res.files > 0
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert "root/proc/sys/kernel/osrelease" in tar.getnames()


def test_live_host_snapshot_matches_live(tmp_path):
    """This machine, whatever it is: the snapshot reads back as the live host reads."""
    live = Host("/")
    res = snapshot.write_snapshot(live, tmp_path / "live.tar.gz")
    assert res.seconds < 10
    h = Host(tmp_path / "live.tar.gz")
    assert inventory.list_devices(h) == inventory.list_devices(live)
    assert inventory.list_groups(h) == inventory.list_groups(live)


# ====================================================================== CLI

def test_cli_snapshot_writes_and_summarises(fake, tmp_path, capsys):
    out = tmp_path / "cli.tar.gz"
    rc = main(["--root", str(fake.root), "snapshot", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert text.startswith(f"wrote {out}: ") and "0 skipped" in text
    rc = main(["snapshot", str(out), "--root", str(fake.root), "--json", "--no-ids"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["schema"] == "vfioctl.snapshot/1" and data["path"] == str(out)
    assert data["size"] == out.stat().st_size


def test_cli_snapshot_to_stdout(fake, capsysbinary):
    rc = main(["--root", str(fake.root), "snapshot", "-"])
    cap = capsysbinary.readouterr()
    assert rc == 0
    with tarfile.open(fileobj=io.BytesIO(cap.out)) as tar:
        assert "root/.vfioctl/meta.json" in tar.getnames()
    assert b"wrote stdout" in cap.err


def test_cli_reads_snapshot_like_the_folder(fake, tmp_path, capsys):
    out = tmp_path / "s.tar.gz"
    snapshot.write_snapshot(Host(fake.root), out)
    for cmd in (["list", "--json"], ["groups", "--json"], ["show", "00:04.0", "--json"], ["check", "--json"]):
        rc1 = main(["--root", str(fake.root), *cmd])
        a = capsys.readouterr().out
        rc2 = main(["--root", str(out), *cmd])
        b = capsys.readouterr().out
        assert (rc1, a) == (rc2, b), cmd


# ====================================================================== committed fixtures

def test_required_snapshots_are_committed():
    for name, exp in EXPECT.items():
        if exp.get("required"):
            assert name in SNAPSHOTS, f"tests/snapshots/{name} is missing"


@pytest.fixture(scope="module", params=SNAPSHOTS)
def fixture_snapshot(request):
    path = SNAPDIR / request.param
    return request.param, path, Host(path)


def test_fixture_inventory_matches_archive(fixture_snapshot):
    name, path, host = fixture_snapshot
    ms = members(path)
    in_tar = sorted(n.rsplit("/", 1)[1] for n in ms if n.startswith("root/sys/bus/pci/devices/") and ms[n].issym())
    devs = inventory.list_devices(host)
    assert [d["address"] for d in devs] == in_tar
    assert len(devs) > 0
    groups_in_tar = {n.split("/")[4] for n in ms if n.startswith("root/sys/kernel/iommu_groups/") and n.count("/") >= 4}
    groups_in_tar.discard("")
    data = inventory.list_groups(host)
    assert {str(g["group"]) for g in data["groups"]} == groups_in_tar
    exp = EXPECT.get(name, {})
    if "iommu_enabled" in exp:
        assert data["iommu_enabled"] is exp["iommu_enabled"]
    for d in devs:
        info = inventory.show_device(host, d["address"])
        assert info["address"] == d["address"] and info["driver"] == d["driver"]
        member = f"root/sys/bus/pci/devices/{d['address']}"
        devdir = os.path.normpath(os.path.join(os.path.dirname(member), ms[member].linkname))
        with tarfile.open(path) as tar:
            if devdir + "/uevent" in ms:  # newer snapshots hold what vfioctl reads: the uevent's PCI_ID
                uevent = tar.extractfile(devdir + "/uevent").read().decode()
                assert f"PCI_ID={d['vendor_id']}:{d['device_id']}".upper() in uevent.upper()
            else:
                assert tar.extractfile(devdir + "/vendor").read().decode().strip() == f"0x{d['vendor_id']}"


def test_fixture_check(fixture_snapshot):
    name, _, host = fixture_snapshot
    report = run_checks(host)
    exp = EXPECT.get(name, {})
    got = {f.id: f.status for f in report.findings}
    for fid, status in exp.get("status", {}).items():
        assert got[fid] == status, (fid, report.get(fid))
    for fid, text in exp.get("evidence", {}).items():
        assert text in report.get(fid).evidence
    assert all(f.fix for f in report.findings if f.status == "fail")
    if "exit" in exp:
        assert (1 if report.worst == "fail" else 0) == exp["exit"]


def test_fixture_through_cli(fixture_snapshot, capsys):
    name, path, host = fixture_snapshot
    rc = main(["--root", str(path), "check", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data == run_checks(host).to_dict()
    assert rc == (1 if data["summary"]["fail"] else 0)
    rc = main(["--root", str(path), "check"])
    text = capsys.readouterr().out
    assert rc == (1 if data["summary"]["fail"] else 0)
    for f in data["findings"]:
        assert f"{f['status'].upper():<5} {f['title']}" in text
    assert main(["--root", str(path), "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {"schema": "vfioctl.list/1", "devices": inventory.list_devices(host)}
    assert main(["--root", str(path), "groups", "--json"]) == 0
    groups = json.loads(capsys.readouterr().out)
    assert groups["iommu_enabled"] == bool(groups["groups"])
    first = listed["devices"][0]["address"]
    assert main(["--root", str(path), "show", first, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["schema"] == "vfioctl.show/1" and shown["address"] == first


def test_ci_snapshot_facts():
    """Concrete facts about the committed CI capture (a Firecracker KVM guest, virtio devices)."""
    host = Host(SNAPDIR / "ci-noiommu.tar.gz")
    devs = inventory.list_devices(host)
    assert len(devs) == 6
    assert all(d["iommu_group"] is None for d in devs)
    assert {d["driver"] for d in devs} == {None, "virtio-pci"}
    assert inventory.show_device(host, "0000:00:02.0")["block_devices"] == ["vda"]
    report = run_checks(host)
    assert "CONFIG_VFIO=missing" in report.get("kernel-config").evidence
    assert "hypervisor flag set" in report.get("cpu-virt").evidence
    assert report.summary()["fail"] >= 5


def _rom_json(root) -> dict:
    buf = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(buf):
        assert main(["--root", str(root), "rom", "00:07.0", "--json"]) == 0
    return json.loads(buf.getvalue())


def test_option_roms_are_captured_and_read_back_as_live(fake, snap):
    """`rom` and `assess --rom` on a snapshot answer as on the host it was taken from (issue 23:
    snapshots held no ROM, and `rom` then said "no option ROM")."""
    import base64

    import rombuild

    rom = rombuild.e1000e_like()
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps(
        {"rom:0000:00:07.0": {"base64": base64.b64encode(rom).decode()}}))
    path, _ = snap(fake)
    ms = members(path)
    assert "root/.vfioctl/rom/0000:00:07.0" in ms and ms["root/.vfioctl/rom/0000:00:07.0"].size == len(rom)
    with tarfile.open(path) as tar:
        meta = json.loads(tar.extractfile("root/.vfioctl/meta.json").read())
        probes = json.loads(tar.extractfile("root/.vfioctl/probes.json").read())
    assert "rom" in meta["captured"] and meta["not_captured"] == {} and "rom:0000:00:07.0" not in probes
    live, captured = _rom_json(fake.root), _rom_json(path)
    assert captured == live and captured["present"] is True and len(captured["images"]) == 2
    from vfioctl.report.devassess import assess_devices

    a, b = (assess_devices(Host(r), ["00:07.0"], read_roms=True)[0] for r in (fake.root, path))
    assert a.get("option-rom") == b.get("option-rom") and "EFI X64" in b.get("option-rom").evidence


def test_no_rom_says_not_captured(fake, snap):
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    path, _ = snap(fake, include_roms=False)
    data = _rom_json(path)
    assert data["present"] is None and data["not_captured"] == {"present": "the snapshot was taken with --no-rom"}
    assert not [m for m in members(path) if m.startswith("root/.vfioctl/rom")]


def test_a_rom_larger_than_a_snapshot_keeps_is_named_not_kept(fake, snap, monkeypatch):
    import base64

    monkeypatch.setattr(snapshot, "SNAPSHOT_ROM_BYTES", 1024)
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps(
        {"rom:0000:00:07.0": {"base64": base64.b64encode(b"\x55\xaa" * 1024).decode()}}))
    path, _ = snap(fake)
    assert "root/.vfioctl/rom/0000:00:07.0" not in members(path)
    with pytest.raises(VfioctlError, match="more than the 0 MiB"):
        from vfioctl.pci.address import PciAddress
        from vfioctl.pci.rom import read_rom

        read_rom(Host(path), PciAddress.parse("00:07.0"))
