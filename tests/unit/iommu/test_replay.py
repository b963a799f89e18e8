"""The kernel's grouping replayed from topology and config space: multifunction slots, RCiEPs,
SR-IOV VFs, DMA-alias and ACS quirks, the lab captured as root.  As in test_explain.py, each
scenario's ``group=`` values are the kernel's own (drivers/iommu/iommu.c pci_device_group and the
QEMU lab), so the replay is checked against the kernel's answer, not against itself."""

import pytest
from groupscenarios import SNAP, A, assert_predicts_kernel, partition
from pcitopo import (
    RCIEP,
    TopoBuilder,
    endpoint,
    host_bridge,
    root_port,
)

from vfioctl.iommu.explain import explain
from vfioctl.iommu.predict import predict, predict_groups
from vfioctl.iommu.replay import (
    BRIDGE_ALIASING,
    DMA_ALIAS_QUIRK,
    MULTIFUNCTION,
    PORT_WITHOUT_ACS,
)
from vfioctl.pci.config import PCI_ACS_CR, PCI_ACS_RR
from vfioctl.pci.topology import read_topology
from vfioctl.report.checks import check_group_prediction


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


@pytest.mark.parametrize("fn0, fn1, quirk", [
    # Marvell 88SE9123 DMAs as function 1 (quirk_dma_func1_alias): with ACS on both functions
    # the multifunction rule does not merge them, the alias does
    ((0x1B4B, 0x9123, 0x010601, "ahci"), ("0000:01:00.1", 0x1B4B, 0x91A4, 0x01018F, "pata_marvell"),
     "quirk_dma_func1_alias"),
    # quirk_dma_func0_alias: a Ricoh card reader function DMAs as function 0
    ((0x1180, 0xE822, 0x080500, "sdhci-pci"), ("0000:01:00.3", 0x1180, 0xE832, 0x0C0010, "firewire_ohci"), None),
], ids=["marvell-func1", "ricoh-func0"])
def test_dma_alias_quirk_joins_the_functions(tmp_path, fn0, fn1, quirk):
    """A DMA alias quirk puts functions that have ACS in one group (drivers/pci/quirks.c)."""
    acs = (PCI_ACS_RR | PCI_ACS_CR, PCI_ACS_RR | PCI_ACS_CR)
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    endpoint(b, "0000:01:00.0", parent="0000:00:01.0", group=2, vendor=fn0[0], device=fn0[1], cls=fn0[2],
             multifunction=True, acs=acs, driver=fn0[3])
    endpoint(b, fn1[0], parent="0000:00:01.0", group=2, vendor=fn1[1], device=fn1[2], cls=fn1[3],
             acs=acs, driver=fn1[4])
    topo, _ = assert_predicts_kernel(b)
    why = explain(topo, 2)
    assert why.cause == DMA_ALIAS_QUIRK
    if quirk is not None:
        assert quirk in why.causes[0].detail


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
