"""bench/synthhost.py builds trees that vfioctl's library reads as a real host."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from clirun import run

from vfioctl.host.core import Host
from vfioctl.iommu.groups import groups
from vfioctl.pci.device import PciDevice, devices
from vfioctl.report import inventory
from vfioctl.usage import inuse

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import synthhost  # noqa: E402

RELEASE = "6.1.0-synth-amd64"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "host"
    manifest = synthhost.generate(str(root), 150, seed=6, release=RELEASE, kmod_index=False)
    # the host's own pci.ids names its devices (a captured tree carries it; nothing falls back
    # to this machine's copy)
    ids = root / "usr/share/misc/pci.ids"
    ids.parent.mkdir(parents=True, exist_ok=True)
    ids.write_bytes(Path("/usr/share/misc/pci.ids").read_bytes())
    return Host(root), manifest, root


def test_device_count_and_groups(synth):
    host, m, _ = synth
    devs = devices(host)
    assert len(devs) == m["n"] == 150
    gs = groups(host)
    assert len(gs) == m["groups"]
    assert sum(len(g.addresses()) for g in gs) == 150
    # every function is in exactly the group its iommu_group link names
    for g in gs:
        for a in g.addresses():
            assert PciDevice(host, a).iommu_group == g.number


def test_vf_links_both_ways(synth):
    host, m, _ = synth
    vfs = [d for d in devices(host) if d.is_vf]
    assert len(vfs) == m["vfs"] > 0
    pfs = [d for d in devices(host) if d.sriov_capable]
    assert len(pfs) == m["pfs"]
    for pf in pfs:
        assert pf.sriov_numvfs == len(pf.virtfns)
        for a in pf.virtfns:
            assert PciDevice(host, a).physfn == pf.address
    for vf in vfs:
        assert vf.address in PciDevice(host, vf.physfn).virtfns


def test_attributes_match_config_space(synth):
    host, m, _ = synth
    kinds = set()
    for d in devices(host):
        cfg = host.read_bytes(f"{d.sysfs}/config")
        assert len(cfg) == 256
        assert cfg[0:2].hex() == bytes.fromhex(d.vendor_id)[::-1].hex()
        assert int.from_bytes(cfg[9:12], "little") == d.class_code
        assert d.is_bridge == ((d.class_code >> 8) == 0x0604)
        assert host.read(f"{d.sysfs}/driver_override") in ("(null)", "vfio-pci")
        # the driver link and its reverse link agree
        if d.driver:
            assert host.exists(f"/sys/bus/pci/drivers/{d.driver}/{d.address}")
        kinds.add(d.class_code >> 8)
    assert {0x0200, 0x0108, 0x0604, 0x0300} <= kinds
    assert m["bridges"] == sum(1 for d in devices(host) if d.is_bridge)


def test_gpu_functions_share_a_group(synth):
    host, _, _ = synth
    nvidia = [d for d in devices(host) if d.vendor_id == "10de"]
    by_slot: dict = {}
    for d in nvidia:
        by_slot.setdefault(d.address.slot_key, set()).add(d.iommu_group)
    assert any(len([d for d in nvidia if d.address.slot_key == k]) > 1 for k in by_slot), "a multi-function GPU"
    assert all(len(gs) == 1 for gs in by_slot.values())


def test_inventory_names_and_modules(synth):
    host, m, _ = synth
    rows = inventory.list_devices(host)
    assert len(rows) == m["n"]
    assert all(r["vendor_name"] and r["device_name"] for r in rows), "every synthetic ID is in pci.ids"
    assert sum(1 for r in rows if r["physfn"]) == m["vfs"]
    nvme = next(d for d in devices(host) if d.class_code >> 8 == 0x0108)
    assert "nvme" in nvme.candidate_modules()
    assert inuse.block_devices(nvme)
    data = inventory.list_groups(host)
    assert data["iommu_enabled"] and len(data["groups"]) == m["groups"]


def test_deterministic(tmp_path):
    a = synthhost.generate(str(tmp_path / "a"), 40, seed=3, release=RELEASE, kmod_index=False)
    b = synthhost.generate(str(tmp_path / "b"), 40, seed=3, release=RELEASE, kmod_index=False)
    assert a == b
    la = json.dumps(inventory.list_devices(Host(tmp_path / "a")))
    lb = json.dumps(inventory.list_devices(Host(tmp_path / "b")))
    assert la == lb
    for rel in ("sys/bus/pci/devices", "sys/kernel/iommu_groups"):
        assert sorted(os.listdir(tmp_path / "a" / rel)) == sorted(os.listdir(tmp_path / "b" / rel))


@pytest.mark.parametrize("n", [1, 17, 45])
def test_exact_sizes(tmp_path, n):
    m = synthhost.generate(str(tmp_path / "h"), n, seed=1, release=RELEASE, kmod_index=False)
    assert len(devices(Host(tmp_path / "h"))) == m["n"] == n


# ---------------------------------------------------------------- amplified trees (issue 22)
import amplify  # noqa: E402

from vfioctl.host import tarroot, trees  # noqa: E402
from vfioctl.report import snapshot  # noqa: E402

AMP_N = 160


def _count_reads(monkeypatch) -> dict:
    """Count what a tree pays: every file read, listing, link read and link-walk step, folder
    and archive alike (the bound is on work, not on this machine's speed)."""
    n = {"ops": 0}

    def counted(cls, name):
        inner = getattr(cls, name)

        def wrapper(self, *a, **k):
            n["ops"] += 1
            return inner(self, *a, **k)

        monkeypatch.setattr(cls, name, wrapper)

    for name in ("read_bytes", "listdir", "readlink", "lstat_kind", "kind", "_is_link", "_readlink"):
        counted(trees._FolderTree, name)
    inner_walk = tarroot.TarTree._walk

    def walk(self, cur, todo, follow_last, strict, hops):
        got = inner_walk(self, cur, todo, follow_last, strict, hops)
        n["ops"] += 1 + len(todo) + got[2] - hops  # each component and each link taken
        return got

    monkeypatch.setattr(tarroot.TarTree, "_walk", walk)
    return n


def _read_all(root) -> None:
    """What `vfioctl snapshot` reads: every view, every device shown."""
    snapshot.readers(Host(root))


@pytest.fixture(scope="module")
def trees_amp(tmp_path_factory):
    base = tmp_path_factory.mktemp("amp")
    plain = base / "plain"
    synthhost.generate(str(plain), AMP_N, seed=2, release=RELEASE, kmod_index=False)
    amp = base / "amp"
    amplify.generate(str(amp), AMP_N, seed=2, release=RELEASE)
    for name in ("plain", "amp"):
        Host(base / name)  # readable
        snapshot.write_snapshot(Host(base / name), base / f"{name}.tar.gz")
    return base


@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_an_amplified_tree_costs_what_a_plain_one_does(trees_amp, monkeypatch, kind):
    """N functions behind a 30-link chain, all in one IOMMU group: every lookup paid the chain
    again and `show` of each member read the whole group (500 functions took 29 s; 2,000 and
    8,000 never finished).  The reads of the whole tree stay within 2x of a plain one's."""
    n = _count_reads(monkeypatch)
    cost = {}
    for name in ("plain", "amp"):
        n["ops"] = 0
        _read_all(trees_amp / (name if kind == "folder" else f"{name}.tar.gz"))
        cost[name] = n["ops"]
    assert cost["amp"] <= 2 * cost["plain"], cost


def test_a_tree_whose_devices_share_one_folder_is_refused_in_linear_time(tmp_path, monkeypatch):
    """Every /sys/bus/pci/devices entry a link to one folder listing a virtfn to each: no kernel
    makes it, and reading it per device cost O(N^2)."""
    n = _count_reads(monkeypatch)
    cost = {}
    for size in (200, 800):
        amplify.hostile(str(tmp_path / f"h{size}"), size, release=RELEASE)
        n["ops"] = 0
        rc, out, err = run(["--root", str(tmp_path / f"h{size}"), "list"])
        assert rc == 65 and "lead to one folder" in err, (rc, err)
        cost[size] = n["ops"]
    assert cost[800] <= 5 * cost[200], cost  # linear: 4x the entries, not 16x
