"""Predicting groups and comparing them with the kernel's: caveats, short config space, the differences, the check."""

import json
import os

import pytest
from groupscenarios import A, assert_predicts_kernel, two_root_ports
from pcitopo import (
    FULL_ACS,
    TopoBuilder,
    endpoint,
    host_bridge,
    root_port,
)

from vfioctl.base.errors import NotFound
from vfioctl.iommu.explain import explain
from vfioctl.iommu.predict import CannotPredict, compare, predict, predict_groups
from vfioctl.iommu.replay import (
    MULTIFUNCTION,
)
from vfioctl.pci.topology import read_topology
from vfioctl.report.checks import check_group_prediction


def test_intel_pch_root_port_quirk_is_an_assumption_the_caveats_name(tmp_path):
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:1c.0", 1, group=1, acs=None, vendor=0x8086, device=0x1C10)
    endpoint(b, "0000:01:00.0", parent="0000:00:1c.0", group=2)
    topo, _ = assert_predicts_kernel(b)
    p = predict(topo)
    assert any("pci_quirk_intel_pch_acs" in c for c in p.caveats)


# ------------------------------------------------------------------ short config space
def test_64_bytes_of_config_space_cannot_predict_rather_than_guess(tmp_path):
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:1c.0", 1, group=1, acs=None, size=64)  # really without ACS
    endpoint(b, "0000:01:00.0", parent="0000:00:1c.0", group=1, size=64)
    topo = read_topology(b.host())
    p = predict(topo)
    assert not p.complete and p.groups == {}
    assert [str(a) for a, _ in p.undecided] == ["0000:01:00.0"]
    # the advice depends on who reads: root gets none (nothing to gain), others "run as root"
    assert "64 bytes" in p.why_incomplete()
    assert ("run as root" in p.why_incomplete()) == (os.geteuid() != 0)
    with pytest.raises(CannotPredict) as err:
        predict_groups(topo)
    assert "\n" not in str(err.value) and err.value.exit_code == 69
    f = check_group_prediction(b.host())
    assert f.status == "info" and "cannot predict" in f.evidence
    why = explain(topo, 1)
    assert why.prediction.startswith("cannot predict")
    assert why.paths[1].hops[1].acs == "unknown" and why.paths[1].cause == "undetermined"


# ------------------------------------------------------------------ compare and the check
def test_compare_reports_what_differs():
    k = {5: [A("00:05.0"), A("01:01.0")], 6: [A("00:06.0")], 7: [A("00:07.0")]}
    p = {0: [A("00:05.0")], 1: [A("01:01.0")], 2: [A("00:06.0"), A("00:07.0")], 3: [A("00:08.0")]}
    diffs = compare(p, k)
    kinds = [d.kind for d in diffs]
    assert kinds == ["kernel-merges", "kernel-splits", "only-predicted"]
    assert diffs[0].kernel_groups == (5,) and "kernel group 5" in diffs[0].text
    assert diffs[1].kernel_groups == (6, 7)
    assert compare(p, p) == []
    json.dumps([d.to_dict() for d in diffs])


def test_check_passes_and_warns(tmp_path):
    b = two_root_ports(tmp_path / "a", FULL_ACS, same_group=False)
    f = check_group_prediction(b.host())
    assert f.status == "pass" and f.id == "group-prediction"
    # the kernel put the two NICs together although every port isolates: an unknown quirk
    b = TopoBuilder(tmp_path / "b", cmdline="intel_iommu=on pcie_acs_override=downstream,multifunction")
    host_bridge(b)
    root_port(b, "0000:00:1c.0", 1, group=1)
    root_port(b, "0000:00:1c.1", 2, group=2)
    endpoint(b, "0000:01:00.0", parent="0000:00:1c.0", group=3)
    endpoint(b, "0000:02:00.0", parent="0000:00:1c.1", group=3)
    f = check_group_prediction(b.host())
    assert f.status == "warn" and "kernel group 3" in f.evidence
    assert "unknown quirk (ACS or DMA alias)" in f.evidence and "pcie_acs_override" in f.evidence
    why = explain(read_topology(b.host()), 3)
    assert why.prediction.startswith("differs")
    assert any("upstream kernels do not have that parameter" in w for w in why.warnings)


def test_check_is_info_with_the_iommu_off(tmp_path):
    b = TopoBuilder(tmp_path, iommu=False)
    host_bridge(b)
    assert check_group_prediction(b.host()).status == "info"
    topo = read_topology(b.host())
    assert predict_groups(topo) == {0: [A("00:00.0")]}  # what the kernel would form with it on
    assert explain(topo, A("00:00.0")).group is None
    with pytest.raises(NotFound):
        explain(topo, 3)


def test_lab_snapshot_degrades_gracefully(lab):
    """A real guest captured as non-root: 64 bytes of config space each."""
    from vfioctl.host.core import Host

    host = Host(lab)
    topo = read_topology(host)
    assert len(topo.functions) == 21 and topo.iommu_enabled
    p = predict(topo)
    assert not p.complete
    assert {str(a) for a in p.missing} == {"0000:00:05.0", "0000:00:1f.2"}
    assert check_group_prediction(host).status == "info"
    g14 = explain(topo, 14)  # two e1000 in one slot: no capabilities, so 64 bytes say it all
    assert g14.cause == MULTIFUNCTION and g14.prediction == "matches the kernel"
    g5 = explain(topo, 5)  # the pcie-pci-bridge: its capabilities were not read
    assert g5.cause == "undetermined" and g5.causes[0].at == A("00:05.0")
    assert g5.must_go_with == (A("01:02.0"),)
    assert explain(topo, 0).isolated
