"""Predicting, comparing and explaining IOMMU groups from topology and config space.

Each scenario's ``group=`` values are what the kernel forms (written by hand from
drivers/iommu/iommu.c pci_device_group and the facts measured in the QEMU lab), so
the prediction is checked against the kernel's answer, not against itself."""

import io
import json
import os
import tarfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from pcitopo import (
    ACS_CAP_FULL,
    DISABLED_ACS,
    DP,
    FULL_ACS,
    PCI_BRIDGE,
    RCIEP,
    UP,
    TopoBuilder,
    endpoint,
    host_bridge,
    root_port,
)

from vfioctl.base.errors import NotFound
from vfioctl.cli import main
from vfioctl.iommu.explain import explain
from vfioctl.iommu.predict import CannotPredict, compare, predict, predict_groups
from vfioctl.iommu.replay import (
    ACS_DISABLED,
    BRIDGE_ALIASING,
    DMA_ALIAS_QUIRK,
    MULTIFUNCTION,
    PORT_WITHOUT_ACS,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.config import PCI_ACS_CR, PCI_ACS_RR
from vfioctl.pci.topology import read_topology
from vfioctl.report.checks import check_group_prediction

SNAPS = Path(__file__).resolve().parents[2] / "snapshots"
#: the VM lab captured as root by this version: full config space of every function
SNAP = SNAPS / "lab-intel-iommu.tar.gz"
#: the earlier lab captured by vfioctl 0.1.0, which kept 64 bytes of config space
SNAP_64 = SNAPS / "lab-0.1.0.tar.gz"
A = PciAddress.parse


def partition(groups) -> set[frozenset[str]]:
    return {frozenset(str(a) for a in ms) for ms in groups.values()}


def assert_predicts_kernel(b: TopoBuilder):
    topo = read_topology(b.host())
    pred = predict_groups(topo)
    assert partition(pred) == partition(topo.kernel_groups())
    assert compare(pred, topo.kernel_groups()) == []
    return topo, pred


# ------------------------------------------------------------------ scenarios
def two_root_ports(tmp_path, acs, *, same_group: bool):
    """Two pcie-root-ports in one multifunction slot (00:1c.0/.1), one NIC below each."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    g1, g2, g3, g4 = (1, 1, 1, 1) if same_group else (1, 2, 3, 4)
    root_port(b, "0000:00:1c.0", 1, group=g1, acs=acs, multifunction=True)
    root_port(b, "0000:00:1c.1", 2, group=g2, acs=acs)
    endpoint(b, "0000:01:00.0", parent="0000:00:1c.0", group=g3)
    endpoint(b, "0000:02:00.0", parent="0000:00:1c.1", group=g4)
    return b


def test_root_ports_with_full_acs_give_each_port_and_device_a_group(tmp_path):
    b = two_root_ports(tmp_path, FULL_ACS, same_group=False)
    topo, pred = assert_predicts_kernel(b)
    assert pred == {0: [A("00:00.0")], 1: [A("00:1c.0")], 2: [A("00:1c.1")], 3: [A("01:00.0")], 4: [A("02:00.0")]}
    why = explain(topo, A("01:00.0"))
    assert why.isolated and why.cause == "isolated" and why.members == (A("01:00.0"),)
    assert [h.address for h in why.paths[0].hops] == [A("01:00.0"), A("00:1c.0")]
    assert why.paths[0].hops[1].acs == "enabled" and why.paths[0].hops[1].isolates is True
    assert why.prediction == "matches the kernel"
    assert "only endpoint in its group" in why.advice[0]


def test_two_root_ports_without_acs_in_one_slot_form_one_group(tmp_path):
    """The lab: pcie-root-port,disable-acs=on twice in one multifunction slot."""
    b = two_root_ports(tmp_path, None, same_group=True)
    topo, pred = assert_predicts_kernel(b)
    assert partition(pred) == {frozenset({"0000:00:00.0"}),
                               frozenset({"0000:00:1c.0", "0000:00:1c.1", "0000:01:00.0", "0000:02:00.0"})}
    why = explain(topo, A("02:00.0"))
    assert why.cause == PORT_WITHOUT_ACS
    kinds = {(c.kind, str(c.at)) for c in why.causes}
    assert (PORT_WITHOUT_ACS, "0000:00:1c.1") in kinds and (MULTIFUNCTION, "0000:00:1c.1") in kinds
    p = next(p for p in why.paths if p.member == A("02:00.0"))
    assert p.lost_at == A("00:1c.1") and p.cause == PORT_WITHOUT_ACS
    assert p.hops[1].acs == "absent" and set(p.hops[1].missing) == {"SV", "RR", "CR", "UF"}
    assert set(why.must_go_with) == {A("01:00.0")}
    assert any("--group" in a and "0000:01:00.0" in a for a in why.advice)
    assert any("pcie_acs_override is not a fix" in a for a in why.advice)
    assert any(a.startswith("0000:00:1c.0, 0000:00:1c.1 are functions of one multifunction device")
               for a in why.advice)
    assert why.prediction == "matches the kernel"


def test_acs_present_but_disabled_names_the_missing_bits(tmp_path):
    b = two_root_ports(tmp_path, DISABLED_ACS, same_group=True)
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, A("01:00.0"))
    assert why.cause == ACS_DISABLED
    c = why.causes[0]
    assert c.at == A("00:1c.0") and c.missing == ("SV", "RR", "CR", "UF")
    hop = why.paths[[p.member for p in why.paths].index(A("01:00.0"))].hops[1]
    assert hop.acs == "disabled" and hop.capable == ("SV", "TB", "RR", "CR", "UF", "DT") and hop.enabled == ()
    assert any("pci_enable_acs" in a for a in why.advice)
    d = why.to_dict()
    json.dumps(d)
    assert d["cause"] == ACS_DISABLED and d["causes"][0]["missing"] == ["SV", "RR", "CR", "UF"]


def switch(tmp_path, dp_acs, groups):
    """RP (ACS) -> x3130 upstream port -> two downstream ports -> a NIC below each."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    g_rp, g_up, g_dp1, g_dp2, g_e1, g_e2 = groups
    root_port(b, "0000:00:1c.0", 1, group=g_rp)
    b.add("0000:01:00.0", 0x104C, 0x8232, parent="0000:00:1c.0", cls=0x060400, header=1, pcie=UP,
          secondary=2, subordinate=4, group=g_up)
    b.add("0000:02:00.0", 0x104C, 0x8233, parent="0000:01:00.0", cls=0x060400, header=1, pcie=DP, slot=True,
          acs=dp_acs, secondary=3, subordinate=3, group=g_dp1)
    b.add("0000:02:01.0", 0x104C, 0x8233, parent="0000:01:00.0", cls=0x060400, header=1, pcie=DP, slot=True,
          acs=dp_acs, secondary=4, subordinate=4, group=g_dp2)
    endpoint(b, "0000:03:00.0", parent="0000:02:00.0", group=g_e1)
    endpoint(b, "0000:04:00.0", parent="0000:02:01.0", group=g_e2)
    return b


def test_switch_downstream_ports_without_acs_group_with_their_device(tmp_path):
    """The lab: each xio3130-downstream forms one group with the device below; the upstream port is alone."""
    b = switch(tmp_path, None, (1, 2, 3, 4, 3, 4))
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, A("03:00.0"))
    assert why.cause == PORT_WITHOUT_ACS and why.causes[0].at == A("02:00.0")
    assert why.members == (A("02:00.0"), A("03:00.0")) and why.must_go_with == ()
    # the other downstream port is not isolating either; the root port is
    assert [p.address for p in why.isolated_ports] == [A("00:1c.0")]


def test_switch_with_acs_isolates_everything(tmp_path):
    b = switch(tmp_path, FULL_ACS, (1, 2, 3, 4, 5, 6))
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, A("03:00.0"))
    assert why.isolated
    assert [h.kind for h in why.paths[0].hops] == ["endpoint", "downstream port", "upstream port", "root port"]


def test_one_port_loses_acs_in_a_deep_tree(tmp_path):
    """A synthetic tree: the switch's second downstream port has ACS but it is off."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:1c.0", 1, group=1)
    b.add("0000:01:00.0", 0x10B5, 0x8747, parent="0000:00:1c.0", cls=0x060400, header=1, pcie=UP,
          secondary=2, subordinate=4, group=2)
    b.add("0000:02:08.0", 0x10B5, 0x8747, parent="0000:01:00.0", cls=0x060400, header=1, pcie=DP,
          acs=FULL_ACS, secondary=3, subordinate=3, group=3)
    b.add("0000:02:10.0", 0x10B5, 0x8747, parent="0000:01:00.0", cls=0x060400, header=1, pcie=DP,
          acs=(ACS_CAP_FULL, PCI_ACS_RR | PCI_ACS_CR), secondary=4, subordinate=4, group=4)
    endpoint(b, "0000:03:00.0", parent="0000:02:08.0", group=5)
    endpoint(b, "0000:04:00.0", parent="0000:02:10.0", group=4, vendor=0x10DE, device=0x2204, cls=0x030000,
             driver="nouveau")
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, 4)
    assert why.members == (A("02:10.0"), A("04:00.0"))
    assert why.cause == ACS_DISABLED and why.causes[0].at == A("02:10.0") and why.causes[0].missing == ("SV", "UF")
    assert A("02:08.0") in {p.address for p in why.isolated_ports}
    # the GPU is the group's only endpoint (the port stays with the host): nothing to move
    assert "0000:04:00.0 is the only endpoint in its group" in why.advice[0]
    assert not any("move the card" in a for a in why.advice)


def test_pcie_to_pci_bridge_groups_everything_behind_it(tmp_path):
    """The lab's pcie-pci-bridge at 00:05.0 with two e1000 behind it."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    b.add("0000:00:05.0", 0x1B36, 0x000E, cls=0x060400, header=1, pcie=PCI_BRIDGE, secondary=1, subordinate=1,
          group=5)
    for a in ("0000:01:01.0", "0000:01:02.0"):
        endpoint(b, a, parent="0000:00:05.0", group=5, vendor=0x8086, device=0x100E, pcie=None, driver="e1000")
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, 5)
    assert why.cause == BRIDGE_ALIASING and why.causes[0].at == A("00:05.0")
    assert "PCIe-to-PCI bridge" in why.causes[0].detail
    p = why.paths[1]
    assert p.member == A("01:01.0") and p.lost_at == A("00:05.0") and p.cause == BRIDGE_ALIASING
    assert why.must_go_with == (A("01:02.0"),)  # the bridge is not assigned
    assert any("requester ID" in a for a in why.advice)


def test_bridges_below_an_isolating_root_port(tmp_path):
    """A PCIe-to-PCI bridge below an ACS root port, with a conventional PCI-PCI bridge behind it:
    the root port stays alone; everything from the PCIe-to-PCI bridge down aliases to it."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    b.add("0000:01:00.0", 0x1B36, 0x000E, parent="0000:00:01.0", cls=0x060400, header=1, pcie=PCI_BRIDGE,
          secondary=2, subordinate=3, group=2)
    b.add("0000:02:01.0", 0x8086, 0x244E, parent="0000:01:00.0", cls=0x060400, header=1, secondary=3,
          subordinate=3, group=2)
    endpoint(b, "0000:02:02.0", parent="0000:01:00.0", group=2, pcie=None, vendor=0x8086, device=0x100E)
    endpoint(b, "0000:03:00.0", parent="0000:02:01.0", group=2, pcie=None, vendor=0x8086, device=0x100E)
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, A("03:00.0"))
    assert why.cause == BRIDGE_ALIASING
    assert next(p for p in why.paths if p.member == A("03:00.0")).lost_at == A("02:01.0")


def test_two_e1000_in_one_multifunction_slot_on_the_root_bus(tmp_path):
    """The lab: conventional PCI functions of one slot share a group."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    b.add("0000:00:0e.0", 0x8086, 0x100E, multifunction=True, group=1, driver="e1000")
    b.add("0000:00:0e.1", 0x8086, 0x100E, group=1, driver="e1000")  # function 1: multifunction by position
    topo, _ = assert_predicts_kernel(b)
    assert explain(topo, 1).cause == MULTIFUNCTION


def test_ich9_functions_share_a_group(tmp_path):
    """q35's 00:1f.0/.2/.3 (ICH9 LPC, AHCI, SMBus): one group."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    b.add("0000:00:1f.0", 0x8086, 0x2918, cls=0x060100, multifunction=True, group=9, driver="lpc_ich")
    b.add("0000:00:1f.2", 0x8086, 0x2922, cls=0x010601, multifunction=True, group=9, driver="ahci")
    b.add("0000:00:1f.3", 0x8086, 0x2930, cls=0x0C0500, multifunction=True, group=9, driver="i801_smbus")
    assert_predicts_kernel(b)


@pytest.mark.parametrize("with_acs", [False, True])
def test_multifunction_endpoint_with_and_without_acs(tmp_path, with_acs):
    """A GPU and its audio function below an isolating root port."""
    acs = (PCI_ACS_RR | PCI_ACS_CR, PCI_ACS_RR | PCI_ACS_CR) if with_acs else None
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    endpoint(b, "0000:01:00.0", parent="0000:00:01.0", group=2, vendor=0x10DE, device=0x2204, cls=0x030000,
             multifunction=True, acs=acs, driver="nouveau")
    endpoint(b, "0000:01:00.1", parent="0000:00:01.0", group=3 if with_acs else 2, vendor=0x10DE, device=0x1AEF,
             cls=0x040300, acs=acs, driver="snd_hda_intel")
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, A("01:00.0"))
    if with_acs:
        assert why.isolated
    else:
        assert why.cause == MULTIFUNCTION and why.must_go_with == (A("01:00.1"),)
        assert any("GPU with its audio function" in a for a in why.advice)


def test_rcieps_on_the_root_bus(tmp_path):
    """Single-function RCiEPs need no ACS; Intel multifunction RCiEPs are isolated by
    pci_quirk_rciep_acs; another vendor's multifunction RCiEP without ACS is one group."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    endpoint(b, "0000:00:02.0", parent=None, group=1, vendor=0x8086, device=0x9A49, pcie=RCIEP, cls=0x030000,
             driver="i915")
    endpoint(b, "0000:00:14.0", parent=None, group=2, vendor=0x8086, device=0xA0ED, pcie=RCIEP, cls=0x0C0330,
             multifunction=True, driver="xhci_hcd")
    endpoint(b, "0000:00:14.2", parent=None, group=3, vendor=0x8086, device=0xA0EF, pcie=RCIEP, cls=0x050000,
             driver=None)
    endpoint(b, "0000:00:18.0", parent=None, group=4, vendor=0x1022, device=0x1630, pcie=RCIEP, cls=0x060000,
             multifunction=True, driver=None)
    endpoint(b, "0000:00:18.1", parent=None, group=4, vendor=0x1022, device=0x1631, pcie=RCIEP, cls=0x060000,
             driver=None)
    topo, _ = assert_predicts_kernel(b)
    assert explain(topo, 2).isolated
    assert explain(topo, 4).cause == MULTIFUNCTION


def test_sriov_vfs_are_their_own_functions(tmp_path):
    """VFs on the PF's bus, and on a bus of their own (a virtual bus), below an isolating port:
    each VF is a group; below a port without ACS, PF and VFs join the port."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 3, group=1)
    endpoint(b, "0000:03:00.0", parent="0000:00:01.0", group=2, vendor=0x8086, device=0x1563, driver="ixgbe")
    for i, addr in enumerate(("0000:03:00.1", "0000:03:00.2", "0000:04:00.0")):
        endpoint(b, addr, parent=None, physfn="0000:03:00.0", group=10 + i, vendor=0x8086, device=0x1565,
                 driver="ixgbevf")
    root_port(b, "0000:00:02.0", 5, group=3, acs=None)
    endpoint(b, "0000:05:00.0", parent="0000:00:02.0", group=3, vendor=0x8086, device=0x1563, driver="ixgbe")
    endpoint(b, "0000:05:00.1", parent=None, physfn="0000:05:00.0", group=3, vendor=0x8086, device=0x1565,
             driver="ixgbevf")
    topo, _ = assert_predicts_kernel(b)
    assert topo.functions[A("04:00.0")].parent == A("00:01.0")  # beside its PF in sysfs
    assert explain(topo, A("03:00.2")).isolated
    why = explain(topo, A("05:00.1"))
    assert why.cause == PORT_WITHOUT_ACS and why.causes[0].at == A("00:02.0")


def test_dma_alias_quirk_joins_function_1(tmp_path):
    """Marvell 88SE9123 DMAs as function 1 (quirk_dma_func1_alias): with ACS on both
    functions the multifunction rule does not merge them, the alias does."""
    acs = (PCI_ACS_RR | PCI_ACS_CR, PCI_ACS_RR | PCI_ACS_CR)
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    endpoint(b, "0000:01:00.0", parent="0000:00:01.0", group=2, vendor=0x1B4B, device=0x9123, cls=0x010601,
             multifunction=True, acs=acs, driver="ahci")
    endpoint(b, "0000:01:00.1", parent="0000:00:01.0", group=2, vendor=0x1B4B, device=0x91A4, cls=0x01018F,
             acs=acs, driver="pata_marvell")
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, 2)
    assert why.cause == DMA_ALIAS_QUIRK and "quirk_dma_func1_alias" in why.causes[0].detail


def test_acs_quirk_separates_intel_82576_functions(tmp_path):
    """pci_quirk_mf_endpoint_acs: the 82576's functions have no ACS capability, the vendor says they
    cannot talk to each other, so each is a group."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    endpoint(b, "0000:01:00.0", parent="0000:00:01.0", group=2, vendor=0x8086, device=0x10C9, multifunction=True,
             driver="igb")
    endpoint(b, "0000:01:00.1", parent="0000:00:01.0", group=3, vendor=0x8086, device=0x10C9, driver="igb")
    topo, _ = assert_predicts_kernel(b)
    hop = explain(topo, 2).paths[0].hops[0]
    assert hop.acs == "quirk" and hop.isolates is True and "pci_quirk_mf_endpoint_acs" in hop.note


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


# ------------------------------------------------------------------ hostile trees
def test_hostile_sysfs_names_and_links_are_ignored(tmp_path):
    b = two_root_ports(tmp_path, FULL_ACS, same_group=False)
    devs = b.root / "sys/bus/pci/devices"
    (devs / "../../../../etc").mkdir(parents=True, exist_ok=True)
    os.symlink("/nonexistent", devs / "0000:00:1f.7\n")
    os.symlink("/nonexistent", devs / "garbage")
    g = b.root / "sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0"
    (g / "iommu_group").unlink()
    os.symlink("../../../../kernel/iommu_groups/99999999999999", g / "iommu_group")
    topo = read_topology(b.host())
    assert set(map(str, topo.functions)) == {"0000:00:00.0", "0000:00:1c.0", "0000:00:1c.1", "0000:01:00.0",
                                            "0000:02:00.0"}
    assert topo.functions[A("01:00.0")].iommu_group is None


# ------------------------------------------------------------------ the lab snapshot
@pytest.fixture
def lab(tmp_path):
    """The 0.1.0 lab snapshot (64 bytes of config space), unpacked: these tests read a folder root."""
    with tarfile.open(SNAP_64) as tar:
        # Our own committed archive.  The "data" filter (its links stay inside, no device files)
        # where this Python has extraction filters (3.11.4+; Debian 12's 3.11.2 has none): without
        # one, 3.12 and 3.13 warn that 3.14 changes the default.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:
            tar.extractall(tmp_path)
    return tmp_path / "root"


def test_lab_prediction_from_full_config_space_matches_the_kernel():
    """The lab of tests/vm (root ports with and without ACS, a multifunction pair of root ports,
    a PCIe-to-PCI bridge, a switch whose downstream ports lack ACS) captured as root: every one
    of its 25 groups comes out of the rules, and each shared group is explained by its cause."""
    from vfioctl.host.core import Host

    host = Host(SNAP)
    topo = read_topology(host)
    assert len(topo.functions) == 35 and len(topo.kernel_groups()) == 25
    p = predict(topo)
    assert p.complete and partition(predict_groups(topo)) == partition(topo.kernel_groups())
    assert check_group_prediction(host).status == "pass"
    causes = {g: explain(topo, g) for g in (5, 14, 15, 19, 20, 23, 24)}
    assert causes[5].cause == BRIDGE_ALIASING and causes[5].causes[0].at == A("00:05.0")
    assert causes[14].cause == MULTIFUNCTION
    assert causes[15].cause == PORT_WITHOUT_ACS and {c.at for c in causes[15].causes} == {A("00:10.0"), A("00:10.1")}
    assert causes[19].cause == MULTIFUNCTION
    assert causes[20].isolated  # the e1000e below the root port with ACS
    assert causes[23].cause == PORT_WITHOUT_ACS and causes[23].causes[0].at == A("07:00.0")
    assert all(e.prediction == "matches the kernel" for e in causes.values())


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


def test_quirk_tables_as_in_6_1():
    from vfioctl.pci import quirks as Q

    # pci_quirk_intel_pch_acs_ids: Ibexpeak, Cougarpoint, Pantherpoint, Lynxpoint-H 16 each;
    # Lynxpoint-LP, Wildcat 12 each; Patsburg 8; Wellsburg 15; 9 series 8
    assert len(Q.INTEL_PCH_ACS_IDS) == 119
    assert (0x8086, 0x10C9) in Q.MF_ENDPOINT and (0x1B4B, 0x9230) in Q.DMA_FUNC1
    assert Q.devfn(0x1F, 7) == 0xFF


def test_ricoh_uses_function_0s_requester_id(tmp_path):
    """quirk_dma_func0_alias: a Ricoh card reader function DMAs as function 0."""
    acs = (PCI_ACS_RR | PCI_ACS_CR, PCI_ACS_RR | PCI_ACS_CR)
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    endpoint(b, "0000:01:00.0", parent="0000:00:01.0", group=2, vendor=0x1180, device=0xE822, cls=0x080500,
             multifunction=True, acs=acs, driver="sdhci-pci")
    endpoint(b, "0000:01:00.3", parent="0000:00:01.0", group=2, vendor=0x1180, device=0xE832, cls=0x0C0010,
             acs=acs, driver="firewire_ohci")
    topo, _ = assert_predicts_kernel(b)
    assert explain(topo, 2).cause == DMA_ALIAS_QUIRK
