"""vfioctl.report.assess: one verdict per device, from facts handed in (no host needed)."""

import json
from dataclasses import replace

import pytest
import rombuild

from vfioctl.base.errors import InvalidInput
from vfioctl.iommu.roles import ROLE_BRIDGE, ROLE_COMPANION, ROLE_ENDPOINT
from vfioctl.pci.address import PciAddress
from vfioctl.pci.reset import PciNode, hot_reset_reach
from vfioctl.pci.rom import parse_rom
from vfioctl.report.assess import (
    BLOCKED,
    CAVEATS,
    READY,
    AssessFacts,
    GroupMember,
    SriovRole,
    assess,
    verdict,
)
from vfioctl.report.checks import FAIL, INFO, PASS, WARN, Finding

A = PciAddress.parse

# ---------------------------------------------------------------- topologies

NVME_ALONE = {
    "00:1c.0": PciNode(is_bridge=True, secondary_bus=1, subordinate_bus=1, iommu_group=5, driver="pcieport"),
    "01:00.0": PciNode(iommu_group=6, driver="nvme", parent="00:1c.0"),
}
GPU_BUS = {
    "00:01.0": PciNode(is_bridge=True, secondary_bus=1, subordinate_bus=1, iommu_group=1, driver="pcieport"),
    "01:00.0": PciNode(iommu_group=1, driver="amdgpu", parent="00:01.0"),
    "01:00.1": PciNode(iommu_group=1, driver="snd_hda_intel", parent="00:01.0"),
}
E1000_PAIR = {
    "00:1c.0": PciNode(is_bridge=True, secondary_bus=1, subordinate_bus=2, iommu_group=3),
    "01:00.0": PciNode(is_bridge=True, secondary_bus=2, subordinate_bus=2, iommu_group=8, parent="00:1c.0"),
    "02:01.0": PciNode(iommu_group=8, driver="e1000", parent="01:00.0"),
    "02:02.0": PciNode(iommu_group=8, driver="e1000", parent="01:00.0"),
}
ROOT_VGA = {"00:02.0": PciNode(iommu_group=0, driver="bochs-drm")}
BEHIND_PCI_BRIDGE_WITH_BRIDGE = {
    "00:1c.0": PciNode(is_bridge=True, secondary_bus=1, subordinate_bus=2, iommu_group=2),
    "01:00.0": PciNode(iommu_group=9, driver=None, parent="00:1c.0"),
    "01:01.0": PciNode(is_bridge=True, secondary_bus=2, subordinate_bus=2, iommu_group=9, parent="00:1c.0"),
    "02:00.0": PciNode(iommu_group=9, driver="ahci", parent="01:01.0"),
}


def nvme(**kw) -> AssessFacts:
    """A QEMU nvme alone behind a root port: everything fine."""
    base = dict(
        address=A("01:00.0"), vendor_id="1b36", device_id="0010", class_code=0x010802,
        class_name="Non-Volatile memory controller", driver="nvme",
        iommu_status=PASS, irq_remap_status=PASS,
        iommu_evidence="DMAR: IOMMU enabled", irq_remap_evidence="DMAR-IR: Enabled IRQ remapping",
        iommu_group=6, group_members=(GroupMember(A("01:00.0"), ROLE_ENDPOINT, "nvme"),),
        reset_methods=("flr",), reset_reach=hot_reset_reach("01:00.0", NVME_ALONE),
        rom=None, numa_node=None,
    )
    base.update(kw)
    return AssessFacts(**base)


def gpu(**kw) -> AssessFacts:
    """An AMD GPU (01:00.0) with its audio function behind one root port."""
    base = dict(
        address=A("01:00.0"), vendor_id="1002", device_id="67df", class_code=0x030000,
        class_name="VGA compatible controller", driver="amdgpu",
        iommu_status=PASS, irq_remap_status=PASS, iommu_group=1,
        group_members=(GroupMember(A("00:01.0"), ROLE_BRIDGE, "pcieport"),
                       GroupMember(A("01:00.0"), ROLE_ENDPOINT, "amdgpu"),
                       GroupMember(A("01:00.1"), ROLE_COMPANION, "snd_hda_intel")),
        reset_methods=("bus",), reset_reach=hot_reset_reach("01:00.0", GPU_BUS),
        rom=parse_rom(rombuild.gpu_with_gop(0x1002, 0x67DF)),
    )
    base.update(kw)
    return AssessFacts(**base)


def find(a, fid) -> Finding:
    f = a.get(fid)
    assert f is not None, f"no {fid} finding in {[x.id for x in a.findings]}"
    return f


# ---------------------------------------------------------------- verdicts

def test_ready():
    a = assess(nvme())
    assert a.verdict == READY
    assert [f.id for f in a.findings] == [
        "iommu", "irq-remap", "iommu-group", "in-use", "console", "holders", "reset", "option-rom", "numa"]
    assert all(f.status in (PASS, INFO) for f in a.findings)
    d = json.loads(json.dumps(a.to_dict()))
    assert d["address"] == "0000:01:00.0" and d["verdict"] == "ready" and d["schema"] == "vfioctl.assess/1"
    assert {"id", "title", "status", "evidence", "fix"} <= set(d["findings"][0])
    text = a.render()
    assert text.splitlines()[0].startswith("0000:01:00.0  1b36:0010 Non-Volatile memory controller  driver nvme")
    assert text.splitlines()[-1] == "  verdict: ready (0 fail, 0 warn)"
    assert "fix:" not in text


def test_caveats_and_blocked_follow_the_worst_finding():
    assert verdict([Finding("a", "A", PASS, ""), Finding("b", "B", INFO, "")]) == READY
    assert verdict([Finding("a", "A", PASS, ""), Finding("b", "B", WARN, "")]) == CAVEATS
    assert verdict([Finding("a", "A", WARN, ""), Finding("b", "B", FAIL, "")]) == BLOCKED
    assert verdict([]) == READY
    a = assess(nvme(holders=("qemu-system-x86 (pid 4242)",)))
    assert a.verdict == CAVEATS
    text = a.render()
    assert "  WARN  Holders" in text and "fix: shut that VM down" in text
    assert text.splitlines()[-1] == "  verdict: caveats (0 fail, 1 warn)"
    assert assess(nvme(iommu_status=FAIL, iommu_evidence="no IOMMU")).verdict == BLOCKED


# ---------------------------------------------------------------- host: IOMMU and interrupt remapping

def test_host_findings_pass_checks_statuses_through():
    a = assess(nvme(irq_remap_status=WARN, irq_remap_evidence="allow_unsafe_interrupts=1"))
    f = find(a, "irq-remap")
    assert (f.status, f.evidence) == (WARN, "allow_unsafe_interrupts=1") and "vfioctl check" in f.fix
    assert a.verdict == CAVEATS
    a = assess(nvme(irq_remap_status=FAIL, irq_remap_evidence=""))
    assert find(a, "irq-remap").evidence == "vfioctl check: irq-remap fail" and a.verdict == BLOCKED
    assert find(assess(nvme()), "iommu").fix is None


# ---------------------------------------------------------------- IOMMU group

def test_group_absent_blocks():
    a = assess(nvme(iommu_group=None, group_members=()))
    f = find(a, "iommu-group")
    assert f.status == FAIL and "iommu_group absent" in f.evidence
    assert a.get("holders") is None and a.verdict == BLOCKED


def test_group_alone_with_bridges_ignored():
    a = assess(nvme(group_members=(GroupMember(A("00:1c.0"), ROLE_BRIDGE, "pcieport"),
                                   GroupMember(A("01:00.0"), ROLE_ENDPOINT, "nvme"))))
    f = find(a, "iommu-group")
    assert f.status == PASS and f.evidence == "group 6: only this device (1 bridge ignored)"


def test_group_companion_on_a_host_driver_is_a_caveat():
    a = assess(gpu(reset_methods=("flr",)))
    f = find(a, "iommu-group")
    assert f.status == WARN
    assert f.evidence.startswith("group 1 also holds 0000:01:00.1 (companion, driver snd_hda_intel); "
                                 "companions are functions of the same card; 1 bridge ignored: ")
    assert f.fix == "vfioctl hide 0000:01:00.0 --group"


def test_group_members_already_free_are_info():
    members = (GroupMember(A("01:00.0"), ROLE_ENDPOINT, "vfio-pci"),
               GroupMember(A("01:00.1"), ROLE_COMPANION, "vfio-pci"))
    f = find(assess(gpu(group_members=members)), "iommu-group")
    assert f.status == INFO and "already free for VFIO" in f.evidence and f.fix is None


def test_group_member_in_host_use_blocks():
    members = (GroupMember(A("02:01.0"), ROLE_ENDPOINT, "e1000"),
               GroupMember(A("02:02.0"), ROLE_ENDPOINT, "e1000",
                           in_use=("interface ens2 is up with address 10.0.2.15/24",)))
    a = assess(nvme(address=A("02:01.0"), iommu_group=8, group_members=members))
    f = find(a, "iommu-group")
    assert f.status == FAIL and "0000:02:02.0: interface ens2 is up" in f.evidence
    assert "vfioctl hide 0000:02:01.0 --group" in f.fix and a.verdict == BLOCKED


# ---------------------------------------------------------------- host use

def test_host_use_blocks_and_console_reasons_are_left_to_the_console_finding():
    a = assess(nvme(in_use=("filesystem /dev/nvme0n1p1 is mounted on /srv",)))
    f = find(a, "in-use")
    assert f.status == FAIL and "mounted on /srv" in f.evidence and "--force" in f.fix
    console_only = ("it is the boot VGA device (/sys/bus/pci/devices/0000:00:02.0/boot_vga = 1): x",
                    "framebuffer fb0 (/sys/class/graphics/fb0) is on it: the console may be using it")
    assert find(assess(nvme(in_use=console_only)), "in-use").status == PASS


# ---------------------------------------------------------------- console

def test_framebuffer_blocks_unless_the_console_is_taken():
    kw = dict(boot_vga=True, framebuffers=("fb0 (bochs-drmdrmfb)",), vtconsoles=("vtcon1: frame buffer device",))
    a = assess(gpu(reset_methods=("flr",), **kw))
    f = find(a, "console")
    assert f.status == FAIL and a.verdict == BLOCKED
    assert "boot_vga = 1" in f.evidence and "framebuffer fb0 (bochs-drmdrmfb) on it" in f.evidence
    assert "vtcon1: frame buffer device bound" in f.evidence and "--take-console" in f.fix
    f = find(assess(gpu(reset_methods=("flr",), take_console=True, **kw)), "console")
    assert f.status == WARN and "--take-console" in f.evidence


def test_text_console_on_the_boot_vga_device_blocks():
    f = find(assess(gpu(boot_vga=True, vtconsoles=("vtcon0: VGA+",))), "console")
    assert f.status == FAIL


def test_boot_vga_without_a_console_is_a_caveat():
    f = find(assess(gpu(boot_vga=True)), "console")
    assert f.status == WARN and "no console on it now" in f.evidence


def test_not_boot_vga():
    assert find(assess(nvme()), "console").status == PASS


# ---------------------------------------------------------------- holders

def test_holders():
    f = find(assess(nvme(holders=("qemu-system-x86 (pid 4242)",))), "holders")
    assert f.status == WARN and f.evidence.startswith("already assigned: /dev/vfio/6 is held by qemu-system-x86")
    assert find(assess(nvme()), "holders").status == PASS


# ---------------------------------------------------------------- reset

def test_reset_flr():
    f = find(assess(nvme()), "reset")
    assert f.status == PASS and f.evidence.endswith("reset_method = flr: flr resets this function alone")


def test_reset_bus_alone():
    f = find(assess(nvme(reset_methods=["bus"])), "reset")
    assert f.status == PASS and "alone on bus 01" in f.evidence and "0000:00:1c.0" in f.evidence


def test_reset_bus_without_topology():
    f = find(assess(nvme(reset_methods=("bus",), reset_reach=None)), "reset")
    assert f.status == WARN and "topology was not read" in f.evidence


def test_reset_pm_alone_and_pm_on_a_non_gpu():
    # lab: e1000e behind a root port reports 'pm bus'
    f = find(assess(nvme(reset_methods=("pm", "bus"))), "reset")
    assert f.status == PASS and "QEMU tries before pm" in f.evidence
    f = find(assess(nvme(reset_methods=("pm",), reset_reach=None)), "reset")
    assert f.status == PASS and "up to the device" in f.evidence


def test_reset_pm_only_gpu_sharing_its_bus():
    f = find(assess(gpu(reset_methods=("pm",))), "reset")
    assert f.status == WARN and "GPUs often keep their state" in f.evidence
    assert "VFIO can hot-reset the bus instead" in f.evidence
    assert "vfioctl hide 0000:01:00.0 0000:01:00.1 --group" in f.fix and "vendor-reset" in f.fix


def test_reset_unknown_method_on_an_old_kernel():
    assert find(assess(nvme(reset_methods=("unknown",))), "reset").status == PASS
    f = find(assess(gpu(reset_methods=("unknown",))), "reset")
    assert f.status == WARN and "kernel before 5.15" in f.evidence


def test_reset_stale_bus_on_a_gpu_sharing_its_bus_is_a_caveat():
    """The GPU listed 'bus' before its audio function appeared; VFIO's hot reset is what works."""
    a = assess(gpu())
    f = find(a, "reset")
    assert f.status == WARN
    assert "reset_method = bus ('bus' was probed at enumeration" in f.evidence
    assert "1 other function(s) share its bus" in f.evidence
    assert "also resets 0000:01:00.1 (group 1, same group, driver snd_hda_intel, same slot)" in f.evidence
    assert "bind to vfio-pci: 0000:01:00.1 (now snd_hda_intel)" in f.evidence
    assert f.fix.splitlines()[0] == "vfioctl hide 0000:01:00.0 0000:01:00.1 --group, and give all of them to the same VM"
    assert "vendor-reset" in f.fix  # AMD
    assert a.verdict == CAVEATS


def test_reset_audio_function_has_no_reset_of_its_own():
    a = assess(gpu(address=A("01:00.1"), class_code=0x040300, device_id="aaf0", reset_methods=None,
                   reset_reach=hot_reset_reach("01:00.1", GPU_BUS), rom=None))
    f = find(a, "reset")
    assert f.status == WARN and "reset_method absent" in f.evidence
    assert "0000:01:00.0 (group 1, same group, driver amdgpu, same slot)" in f.evidence
    assert f.fix.startswith("vfioctl hide 0000:01:00.1 0000:01:00.0 --group")


def test_reset_e1000_pair_behind_a_pcie_pci_bridge():
    for me, other in (("02:01.0", "02:02.0"), ("02:02.0", "02:01.0")):
        methods = ("bus",) if me == "02:01.0" else None  # lab: one reports 'bus', the other nothing
        a = assess(nvme(address=A(me), vendor_id="8086", device_id="100e", class_code=0x020000, iommu_group=8,
                        group_members=(), reset_methods=methods, reset_reach=hot_reset_reach(me, E1000_PAIR)))
        f = find(a, "reset")
        assert f.status == WARN, f
        assert f"0000:{other} (group 8, same group, driver e1000, same bus)" in f.evidence


def test_reset_none_on_a_gpu_on_a_root_bus_blocks():
    a = assess(gpu(address=A("00:02.0"), reset_methods=None, reset_reach=hot_reset_reach("00:02.0", ROOT_VGA),
                   group_members=()))
    f = find(a, "reset")
    assert f.status == FAIL and "no parent bridge" in f.evidence and "AMD reset bug" in f.evidence
    assert "vendor-reset" in f.fix and "device_specific" in f.fix
    assert a.verdict == BLOCKED
    # a GPU of another vendor gets the slot-of-its-own advice
    f = find(assess(gpu(address=A("00:02.0"), vendor_id="10de", device_id="1c82", reset_methods=None,
                        reset_reach=hot_reset_reach("00:02.0", ROOT_VGA), group_members=(),
                        rom=parse_rom(rombuild.gpu_with_gop()))), "reset")
    assert f.status == FAIL and "slot of its own" in f.fix


def test_reset_none_without_topology():
    assert find(assess(gpu(reset_methods=None, reset_reach=None)), "reset").status == FAIL
    f = find(assess(nvme(reset_methods=None, reset_reach=None)), "reset")
    assert f.status == WARN and "not reset between VM runs" in f.evidence


def test_reset_blocked_by_a_bridge_on_the_bus():
    a = assess(nvme(reset_methods=None, reset_reach=hot_reset_reach("01:00.0", BEHIND_PCI_BRIDGE_WITH_BRIDGE)))
    f = find(a, "reset")
    assert f.status == WARN and "bridge 0000:01:01.0, which cannot be bound to vfio-pci" in f.evidence
    assert "slot of its own" in f.fix


def test_reset_none_but_alone():
    # lab: ich9-intel-hda behind a root port reports nothing
    f = find(assess(nvme(class_code=0x040300, reset_methods=None)), "reset")
    assert f.status == WARN and "reach only this device" in f.evidence and "NO_BUS_RESET" in f.evidence


def test_reset_methods_switched_off():
    f = find(assess(nvme(reset_methods=[], reset_reach=None)), "reset")
    assert f.status == WARN and "reset_method is empty" in f.evidence
    assert f.fix.startswith("echo default > /sys/bus/pci/devices/0000:01:00.0/reset_method")


# ---------------------------------------------------------------- option ROM

def test_rom_absent():
    f = find(assess(nvme()), "option-rom")
    assert f.status == INFO and f.evidence.startswith("no option ROM")
    f = find(assess(gpu(rom=None)), "option-rom")
    assert f.status == WARN and "black screen" in f.evidence and "romfile=" in f.fix


def test_rom_unreadable():
    f = find(assess(gpu(rom="read error: Input/output error")), "option-rom")
    assert f.status == WARN and "unreadable: read error" in f.evidence and "echo 1 >" in f.fix
    assert find(assess(nvme(rom="permission denied")), "option-rom").status == INFO


def test_rom_e1000e_pair_passes():
    f = find(assess(nvme(vendor_id="8086", device_id="10d3", class_code=0x020000,
                         rom=parse_rom(rombuild.e1000e_like()))), "option-rom")
    assert f.status == PASS
    assert f.evidence == "2 images: x86 BIOS (8086:10d3, 1 KiB); EFI X64 boot service driver (8086:10d3, 1 KiB)"


def test_rom_gpu_without_an_efi_image_is_a_caveat_for_ovmf():
    a = assess(gpu(reset_methods=("flr",), group_members=(),
                   rom=parse_rom(rombuild.gpu_legacy_only(0x1002, 0x67DF))))
    f = find(a, "option-rom")
    assert f.status == WARN and "no EFI X64 image" in f.evidence and "black screen" in f.evidence
    assert "romfile=" in f.fix and a.verdict == CAVEATS
    # an AAVMF guest needs an AARCH64 image, which the x86 card's ROM lacks
    f = find(assess(gpu(firmware_arch="aarch64", rom=parse_rom(rombuild.gpu_with_gop(0x1002, 0x67DF)))),
             "option-rom")
    assert f.status == WARN and "no EFI AARCH64 image (EFI images: X64)" in f.evidence


def test_rom_non_gpu_without_efi_is_info():
    f = find(assess(nvme(rom=parse_rom(rombuild.image(code_type=0, vendor=0x1B36, device=0x0010)))), "option-rom")
    assert f.status == INFO and "network boot" in f.evidence and f.fix is None


def test_rom_pcir_mismatch_is_a_caveat():
    f = find(assess(nvme(rom=parse_rom(rombuild.e1000e_like()))), "option-rom")
    assert f.status == WARN and "PCIR names 8086:10d3 but the device is 1b36:0010" in f.evidence
    assert "ROM made for this card" in f.fix


def test_rom_not_a_rom():
    f = find(assess(gpu(rom=parse_rom(b"\xff" * 1024))), "option-rom")
    assert f.status == WARN and "holds no valid image" in f.evidence
    assert find(assess(nvme(rom=parse_rom(b""))), "option-rom").status == INFO


def test_rom_problems_on_a_gpu():
    data = rombuild.gpu_with_gop(0x1002, 0x67DF)[:1536]  # the EFI image cut short
    f = find(assess(gpu(rom=parse_rom(data))), "option-rom")
    assert f.status == WARN and "problems:" in f.evidence and "no EFI X64 image" in f.evidence


def test_rom_of_the_boot_vga_device_may_be_a_shadow_copy():
    f = find(assess(gpu(boot_vga=True)), "option-rom")
    assert "shadow copy" in f.evidence and "pci_fixup_video" in f.evidence


# ---------------------------------------------------------------- SR-IOV and NUMA

def test_sriov_pf_with_vfs_is_a_caveat():
    f = find(assess(nvme(sriov=SriovRole("pf", total_vfs=7, num_vfs=2))), "sriov")
    assert f.status == WARN and "PF with 2 of 7 VFs enabled" in f.evidence
    assert f.fix.endswith("echo 0 > /sys/bus/pci/devices/0000:01:00.0/sriov_numvfs")


def test_sriov_pf_without_vfs_and_vf():
    assert find(assess(nvme(sriov=SriovRole("pf", total_vfs=7, num_vfs=0))), "sriov").status == INFO
    f = find(assess(nvme(sriov=SriovRole("vf", physfn=A("01:00.0"), physfn_driver="igb"))), "sriov")
    assert f.status == INFO and f.evidence.startswith("VF of PF 0000:01:00.0 (driver igb)")
    f = find(assess(nvme(sriov=SriovRole("vf", physfn=A("01:00.0"), physfn_driver="vfio-pci"))), "sriov")
    assert "VF token" in f.evidence
    assert assess(nvme()).get("sriov") is None


def test_numa():
    assert find(assess(nvme()), "numa").evidence.endswith("numa_node = -1: one node, or the firmware does not say")
    f = find(assess(nvme(numa_node=1)), "numa")
    assert f.status == INFO and "node 1" in f.evidence


# ---------------------------------------------------------------- input

def test_facts_are_normalised_and_validated():
    facts = nvme(address="01:00.0", vendor_id="0x1B36", in_use=[], reset_methods=["flr"], holders=[])
    assert facts.address == A("01:00.0") and facts.vendor_id == "1b36"
    assert facts.reset_methods == ("flr",) and facts.in_use == ()
    hash(facts)
    assert replace(facts, numa_node=0).numa_node == 0
    with pytest.raises(InvalidInput, match="device_id"):
        nvme(device_id="10d3x")
    with pytest.raises(InvalidInput, match="iommu_status"):
        nvme(iommu_status="ok")
    with pytest.raises(InvalidInput):
        nvme(firmware_arch="PDP11")
    with pytest.raises(InvalidInput):
        nvme(address="zz:00.0")


def test_compute_gpu_gets_no_black_screen_rom_warning():
    """A 3D controller (class 0302: an H100/H200) has no display outputs, so no guest firmware draws a
    boot screen through it (issue 23: it got the VGA card's "black screen at boot" warning)."""
    f = find(assess(gpu(vendor_id="10de", device_id="2335", class_code=0x030200, class_name="3D controller",
                        rom=None)), "option-rom")
    assert f.status == INFO and "black screen" not in f.evidence and f.fix is None
    legacy = parse_rom(rombuild.gpu_legacy_only(0x10DE, 0x2335))
    f = find(assess(gpu(vendor_id="10de", device_id="2335", class_code=0x030200, rom=legacy)), "option-rom")
    assert f.status == INFO and "black screen" not in f.evidence
    # a VGA card still gets it
    assert "black screen" in find(assess(gpu(rom=None)), "option-rom").evidence
