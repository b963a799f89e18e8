"""Explaining a group: its cause, each member's path to the root and where isolation is lost, the advice.

Each scenario's ``group=`` values are what the kernel forms (written by hand from
drivers/iommu/iommu.c pci_device_group and the facts measured in the QEMU lab), so
the prediction is checked against the kernel's answer, not against itself."""

import json

from groupscenarios import A, assert_predicts_kernel, partition, two_root_ports
from pcitopo import (
    ACS_CAP_FULL,
    DISABLED_ACS,
    DP,
    FULL_ACS,
    PCI_BRIDGE,
    UP,
    TopoBuilder,
    endpoint,
    host_bridge,
    root_port,
)

from vfioctl.iommu.explain import explain
from vfioctl.iommu.replay import (
    ACS_DISABLED,
    BRIDGE_ALIASING,
    MULTIFUNCTION,
    PORT_WITHOUT_ACS,
)
from vfioctl.pci.config import PCI_ACS_CR, PCI_ACS_RR


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
