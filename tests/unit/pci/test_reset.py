"""vfioctl.pci.reset: the kernel's reset methods as data, and the reach of a bus hot reset.

Topologies are the lab's (QEMU 7.2 q35 + intel-iommu, Debian 6.1) written as
address -> PciNode, with the reset_method values the lab measured.
"""

import json

import pytest

from vfioctl.base.errors import InvalidInput
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import (
    BELOW_BRIDGE,
    BUS_METHODS,
    FUNCTION_METHODS,
    METHODS,
    SAME_BUS,
    SAME_SLOT,
    PciNode,
    describe_method,
    effective_methods,
    function_reset_available,
    hot_reset_reach,
)

A = PciAddress.parse


def bridge(sec, sub, group=None, parent=None, driver="pcieport"):
    return PciNode(is_bridge=True, secondary_bus=sec, subordinate_bus=sub, iommu_group=group,
                   driver=driver, parent=parent)


def dev(group, driver, parent):
    return PciNode(iommu_group=group, driver=driver, parent=parent)


# ---------------------------------------------------------------- methods as data

def test_methods_are_the_kernels_in_its_order():
    # drivers/pci/pci.c pci_reset_fn_methods[]
    assert [m.name for m in METHODS] == ["device_specific", "acpi", "flr", "af_flr", "pm", "bus", "cxl_bus"]
    assert BUS_METHODS == {"bus", "cxl_bus"}
    assert FUNCTION_METHODS == {"device_specific", "acpi", "flr", "af_flr", "pm"}
    for m in METHODS:
        assert m.source.startswith("drivers/pci/") and m.description


def test_describe_method():
    assert describe_method("flr").startswith("flr: PCIe Function Level Reset")
    assert "pci_parent_bus_reset" in describe_method("bus") and "never resets another function" in describe_method("bus")
    assert "vendor-reset" in describe_method("device_specific")
    assert describe_method("unknown").startswith("unknown: the kernel predates reset_method")
    assert describe_method("d3cold").startswith("d3cold: a reset method vfioctl does not know")
    assert describe_method("x\n; rm -rf").startswith("'x\\n; rm -rf'")  # hostile names are quoted


def test_function_reset_available():
    assert function_reset_available(["flr"]) and function_reset_available(("pm", "bus"))
    assert not function_reset_available(["bus"]) and not function_reset_available([])
    assert not function_reset_available(["cxl_bus", "unknown"])


# ---------------------------------------------------------------- reach

def test_device_alone_behind_a_root_port():
    devices = {
        "00:1c.0": bridge(1, 1, group=5),
        "01:00.0": dev(6, "nvme", "00:1c.0"),
        "00:1f.0": dev(7, "lpc_ich", None),
    }
    r = hot_reset_reach("01:00.0", devices)
    assert r.parent_bridge == A("00:1c.0") and r.buses == (1, 1) and r.reached == ()
    assert not r.root_bus and r.alone and r.kernel_bus_method_works
    assert r.vfio_hot_reset_blockers() == () and r.vfio_hot_reset_needs() == ()
    assert r.describe() == "a reset of bus 01 (below 0000:00:1c.0) reaches only 0000:01:00.0"
    # lab: nvme 'flr', e1000e behind a root port 'pm bus': all of it still usable
    assert effective_methods(["flr"], r) == ("flr",)
    assert effective_methods(["pm", "bus"], r) == ("pm", "bus")


def test_gpu_and_audio_on_one_bus():
    devices = {
        "00:01.0": bridge(1, 1, group=1),
        "01:00.0": dev(1, "amdgpu", "00:01.0"),
        "01:00.1": dev(1, "snd_hda_intel", "00:01.0"),
    }
    r = hot_reset_reach("01:00.0", devices)
    (audio,) = r.reached
    assert audio.address == A("01:00.1") and audio.relation == SAME_SLOT
    assert audio.same_group and audio.iommu_group == 1 and audio.driver == "snd_hda_intel" and not audio.on_vfio
    assert not r.alone and not r.kernel_bus_method_works
    assert r.other_groups == () and r.groups_needed == (1,)
    assert r.vfio_hot_reset_blockers() == ()
    assert r.vfio_hot_reset_needs() == ("bind to vfio-pci: 0000:01:00.1 (now snd_hda_intel)",)
    assert "also resets 0000:01:00.1 (group 1, same group, driver snd_hda_intel, same slot)" in r.describe()
    # the GPU listed 'bus' at enumeration (the audio function was not there yet): refused now
    assert effective_methods(["bus"], r) == ()
    # the audio function, seen from its side
    r2 = hot_reset_reach("01:00.1", devices)
    assert [x.address for x in r2.reached] == [A("01:00.0")]
    # once both are on vfio-pci nothing is left to bind
    devices["01:00.1"] = dev(1, "vfio-pci", "00:01.0")
    assert hot_reset_reach("01:00.0", devices).vfio_hot_reset_needs() == ()


def test_two_devices_behind_a_pcie_pci_bridge():
    devices = {
        "00:1c.0": bridge(1, 2, group=3),
        "01:00.0": bridge(2, 2, group=8, driver=None, parent="00:1c.0"),  # pcie-pci-bridge
        "02:01.0": dev(8, "e1000", "01:00.0"),
        "02:02.0": dev(8, "e1000", "01:00.0"),
    }
    r = hot_reset_reach("02:01.0", devices)
    assert r.parent_bridge == A("01:00.0") and r.buses == (2, 2)
    (other,) = r.reached  # neither bridge above is reset
    assert other.address == A("02:02.0") and other.relation == SAME_BUS and other.same_group
    # lab: the first e1000 reports 'bus', the second nothing; the kernel refuses both now
    assert effective_methods(["bus"], r) == ()
    assert r.vfio_hot_reset_blockers() == ()
    assert r.vfio_hot_reset_needs() == ("bind to vfio-pci: 0000:02:02.0 (now e1000)",)


def test_root_bus_device():
    devices = {"00:02.0": dev(0, "bochs-drm", None), "00:1c.0": bridge(1, 1, group=5)}
    r = hot_reset_reach("00:02.0", devices)
    assert r.root_bus and not r.alone and r.parent_bridge is None and r.buses is None and r.reached == ()
    assert r.describe() == "0000:00:02.0 is on a root bus: no bus reset possible"
    assert r.vfio_hot_reset_blockers() == (
        "0000:00:02.0 is on root bus 00: there is no parent bridge to reset",)
    assert effective_methods(["bus"], r) == ()
    assert effective_methods(["bus"], None) == ("bus",)  # nothing known, nothing dropped
    d = r.to_dict()
    assert d["root_bus"] is True and d["parent_bridge"] is None and d["buses"] is None


def test_a_bridge_below_the_targets_bus_with_devices_behind_it():
    devices = {
        "00:1c.0": bridge(1, 3, group=2),
        "01:00.0": dev(10, "mlx5_core", "00:1c.0"),
        "01:01.0": bridge(2, 3, group=10, driver=None, parent="00:1c.0"),
        "02:00.0": dev(11, "ahci", "01:01.0"),
        "02:01.0": bridge(3, 3, group=11, driver=None, parent="01:01.0"),
        "03:00.0": dev(12, "vfio-pci", "02:01.0"),
        # another root port's subtree: not reached
        "00:1d.0": bridge(4, 4, group=13),
        "04:00.0": dev(14, "nvme", "00:1d.0"),
    }
    r = hot_reset_reach("01:00.0", devices)
    assert r.buses == (1, 3)
    got = {str(x.address): (x.relation, x.is_bridge, x.same_group) for x in r.reached}
    assert got == {
        "0000:01:01.0": (SAME_BUS, True, True),
        "0000:02:00.0": (BELOW_BRIDGE, False, False),
        "0000:02:01.0": (BELOW_BRIDGE, True, False),
        "0000:03:00.0": (BELOW_BRIDGE, False, False),
    }
    assert r.other_groups == (11, 12)
    assert r.groups_needed == (10, 11, 12)  # bridges' groups are not opened by anyone
    assert r.vfio_hot_reset_blockers() == (
        "the reset reaches bridge 0000:01:01.0, which cannot be bound to vfio-pci",
        "the reset reaches bridge 0000:02:01.0, which cannot be bound to vfio-pci",
    )
    assert r.vfio_hot_reset_needs() == (
        "bind to vfio-pci: 0000:02:00.0 (now ahci)",
        "one VM must own groups 10, 11, 12",
    )
    assert "buses 01-03" in r.describe()
    json.dumps(r.to_dict())


def test_switch_downstream_port_as_parent():
    # lab: switch ports report 'flr bus'; an endpoint below a downstream port is alone
    devices = {
        "00:1c.0": bridge(1, 3, group=2),
        "01:00.0": bridge(2, 3, group=2, parent="00:1c.0"),   # upstream port
        "02:00.0": bridge(3, 3, group=2, parent="01:00.0"),   # downstream port
        "03:00.0": dev(4, "e1000e", "02:00.0"),
    }
    r = hot_reset_reach("03:00.0", devices)
    assert r.parent_bridge == A("02:00.0") and r.alone
    # a bridge as the target: vfio-pci refuses it, and its own bus reset reaches what is below it
    r = hot_reset_reach("02:00.0", devices)
    assert [str(x.address) for x in r.reached] == ["0000:03:00.0"]
    assert "0000:02:00.0 is a bridge, which vfio-pci does not take" in r.vfio_hot_reset_blockers()
    assert not r.kernel_bus_method_works
    assert effective_methods(["flr", "bus"], r) == ("flr",)


def test_parent_bridge_missing_from_the_map():
    devices = {"01:00.0": dev(1, "nvme", "00:1c.0"), "01:00.1": dev(1, None, "00:1c.0")}
    r = hot_reset_reach("01:00.0", devices)
    assert [str(x.address) for x in r.reached] == ["0000:01:00.1"]
    assert any("not among the devices given" in n for n in r.notes)


def test_bus_numbers_widen_the_reach_when_a_parent_link_is_missing():
    devices = {
        "00:1c.0": bridge(1, 2, group=2),
        "01:00.0": dev(3, None, "00:1c.0"),
        "02:00.0": dev(4, "nvme", None),  # a wrong parent link: still counted by its bus number
    }
    r = hot_reset_reach("01:00.0", devices)
    assert [str(x.address) for x in r.reached] == ["0000:02:00.0"]


def test_a_root_bus_device_claimed_by_a_bridge_is_noted():
    devices = {"00:1c.0": bridge(0, 0, group=2), "00:02.0": dev(1, None, None)}
    r = hot_reset_reach("00:02.0", devices)
    assert r.root_bus and any("claims bus 00" in n for n in r.notes)


def test_a_parent_loop_in_hostile_data_ends():
    devices = {
        "00:1c.0": bridge(1, 1, group=1),
        "01:00.0": dev(2, None, "00:1c.0"),
        "05:00.0": PciNode(is_bridge=True, parent="06:00.0"),
        "06:00.0": PciNode(is_bridge=True, parent="05:00.0"),
    }
    r = hot_reset_reach("01:00.0", devices)
    assert r.reached == ()


def test_bad_input():
    with pytest.raises(InvalidInput, match="not among the 1 devices"):
        hot_reset_reach("01:00.0", {"00:1c.0": bridge(1, 1)})
    with pytest.raises(InvalidInput, match="says bus 0x02"):
        hot_reset_reach("01:00.0", {"01:00.0": PciNode(bus=2, parent="00:1c.0")})
    with pytest.raises(InvalidInput):
        hot_reset_reach("not-an-address", {})
    # an explicit bus that agrees is fine; PciAddress keys too
    r = hot_reset_reach(A("01:00.0"), {A("01:00.0"): PciNode(bus=1, parent=A("00:1c.0"))})
    assert r.parent_bridge == A("00:1c.0")


def test_vfio_variant_drivers_count_as_vfio_and_pci_stub_does_not():
    from vfioctl.pci.address import PciAddress
    from vfioctl.pci.reset import ReachedFunction
    from vfioctl.report.topology import HOST_DRIVER, STUB, VFIO, _state

    def on(drv):
        return ReachedFunction(PciAddress.parse("0000:01:00.0"), 1, drv, False, "same bus", True).on_vfio

    # mlx5_vfio_pci does not start with "vfio": the earlier prefix test called it a host driver
    assert on("vfio-pci") and on("mlx5_vfio_pci") and on("hisi_acc_vfio_pci")
    assert not on("pci-stub") and not on("e1000e") and not on(None)
    assert _state("mlx5_vfio_pci", ()) == VFIO and _state("pci-stub", ()) == STUB
    assert _state("vfio_foo_bar", ()) == VFIO and _state("nvme", ()) == HOST_DRIVER
