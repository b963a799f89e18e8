"""Issue 15 on a real kernel: the predicted IOMMU groups equal /sys/kernel/iommu_groups on every
lab topology (ACS-less and ACS root ports in multifunction slots, an x3130 switch, a
PCIe-to-PCI bridge, multifunction endpoints), `groups --why` names the culprits, and the
topology renders (text, JSON, DOT parsed by graphviz, SVG rendered by rsvg-convert)."""

from __future__ import annotations

import json
import shutil
import subprocess

import lab as vmlab
import pytest

pytestmark = pytest.mark.vm

SYS = "/sys/bus/pci/devices"


def kernel_groups(lab) -> set[frozenset[str]]:
    out = lab.sh("for g in /sys/kernel/iommu_groups/*; do echo $(ls $g/devices); done", check=True).out
    return {frozenset(line.split()) for line in out.splitlines() if line.strip()}


def test_prediction_equals_the_kernels_groups(lab):
    truth = kernel_groups(lab)
    r = lab.vfioctl("groups --predict --json", timeout=300)
    assert r.rc == 0, r.err
    data = json.loads(r.out)
    pred = data["prediction"]
    assert pred["complete"] is True, pred
    assert pred["differences"] == [], pred
    predicted = {frozenset(m["address"] for m in g["members"]) for g in data["groups"]}
    assert predicted == truth
    # the lab's topologies are all there: the ACS-less port pair forms one group with both NICs
    noacs = set(vmlab.NOACS_PORTS) | set(vmlab.NOACS_DEVICES)
    assert frozenset(noacs) in truth
    # ... the ACS pair does not: each port's device is apart from the other port's
    assert not any(vmlab.ACS_NIC in g and vmlab.HDA in g for g in truth)
    # ... each switch downstream port's NIC is apart from the other's
    assert not any(set(vmlab.SWITCH_NICS) <= g for g in truth)
    # ... and the bridge takes both NICs behind it
    assert frozenset(vmlab.BRIDGE_MEMBERS) in truth
    # `check` says so too
    r = lab.vfioctl("check --json", timeout=300)
    f = next(x for x in json.loads(r.out)["findings"] if x["id"] == "group-prediction")
    assert f["status"] == "pass", f


def test_groups_why_names_the_culprits(lab):
    r = lab.vfioctl(f"groups --why {vmlab.NOACS_DEVICES[0]} --json", timeout=300)
    assert r.rc == 0, r.err
    why = json.loads(r.out)
    whys = why["groups"] if "groups" in why else [why]
    w = whys[0]
    assert set(w["members"]) == set(vmlab.NOACS_PORTS) | set(vmlab.NOACS_DEVICES)
    text = json.dumps(w)
    assert any(p in text for p in vmlab.NOACS_PORTS)
    # the missing ACS controls are named (QEMU's disable-acs leaves the capability out or off)
    causes = {c["kind"] for c in w["causes"]}
    assert causes & {"port without ACS", "ACS present but disabled", "multifunction without ACS"}, causes
    r = lab.vfioctl(f"groups --why {vmlab.BRIDGE_MEMBERS[1]} --json", timeout=300)
    w = json.loads(r.out)
    w = w["groups"][0] if "groups" in w else w
    assert "conventional PCI bridge aliasing" in {c["kind"] for c in w["causes"]}, w["causes"]
    r = lab.vfioctl(f"groups --why {vmlab.MAIN_NIC}", timeout=300)
    assert r.rc == 0 and "isolated" in r.out


def test_topology_renders(lab, tmp_path):
    r = lab.vfioctl("topology --format json", timeout=300)
    assert r.rc == 0, r.err
    data = json.loads(r.out)
    addrs = [f["address"] for f in data["functions"]]
    assert len(addrs) == len(set(addrs))
    assert set(addrs) == set(lab.sh(f"ls {SYS}", check=True).out.split())
    groups = {f["address"]: f["iommu_group"] for f in data["functions"]}
    assert groups[vmlab.MAIN_NIC] == int(lab.readlink(f"{SYS}/{vmlab.MAIN_NIC}/iommu_group").rsplit("/", 1)[-1])
    text = lab.vfioctl("topology", timeout=300).out
    assert "[104c:8233]" in text and "[104c:8232]" in text and "group" in text  # the switch's ports
    dot = lab.vfioctl("topology --format dot", timeout=300).out
    assert dot.lstrip().startswith(("digraph", "graph"))
    svg = lab.vfioctl("topology --format svg", timeout=300)
    assert svg.rc == 0, svg.err
    (tmp_path / "lab.dot").write_text(dot)
    (tmp_path / "lab.svg").write_text(svg.out)
    assert shutil.which("dot") and shutil.which("rsvg-convert"), "apt-get install graphviz librsvg2-bin"
    subprocess.run(["dot", "-Tsvg", "-o", str(tmp_path / "again.svg"), str(tmp_path / "lab.dot")], check=True)
    subprocess.run(["rsvg-convert", "-o", str(tmp_path / "lab.png"), str(tmp_path / "lab.svg")], check=True)
    assert (tmp_path / "lab.png").stat().st_size > 1000
