"""bench/synthhost.py builds trees that vfioctl's library reads as a real host."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

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
