"""vfioctl.report.checks and `vfioctl check`: every check's pass/warn/fail on tiny fake trees."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from fakehost import FakeHostBuilder, standard_host

from vfioctl.base.errors import VfioctlPermissionError
from vfioctl.cli import main
from vfioctl.host.core import Host
from vfioctl.report import checks
from vfioctl.report.checks import FAIL, INFO, PASS, WARN, Finding, Report, run_checks

REL = "6.1.0-test-amd64"

GOOD_CONFIG = """\
CONFIG_INTEL_IOMMU=y
# CONFIG_INTEL_IOMMU_DEFAULT_ON is not set
CONFIG_AMD_IOMMU=y
CONFIG_IRQ_REMAP=y
CONFIG_VFIO=m
CONFIG_VFIO_PCI_CORE=m
CONFIG_VFIO_PCI=m
CONFIG_VFIO_IOMMU_TYPE1=m
CONFIG_KVM_VFIO=y
CONFIG_PCI_IOV=y
CONFIG_KVM_INTEL=m
"""

MODULES_DEP = f"""\
kernel/drivers/vfio/vfio.ko.zst: kernel/drivers/vfio/vfio_iommu_type1.ko.zst
kernel/drivers/vfio/vfio_iommu_type1.ko.zst:
kernel/drivers/vfio/pci/vfio-pci-core.ko.zst: kernel/drivers/vfio/vfio.ko.zst
kernel/drivers/vfio/pci/vfio-pci.ko.zst: kernel/drivers/vfio/pci/vfio-pci-core.ko.zst kernel/drivers/vfio/vfio.ko.zst
kernel/arch/x86/kvm/kvm-intel.ko.xz: kernel/arch/x86/kvm/kvm.ko.xz
"""


def cpuinfo(vendor: str = "GenuineIntel", flags: str = "fpu vme msr vmx hypervisor x2apic") -> str:
    block = f"processor\t: 0\nvendor_id\t: {vendor}\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
    return block + block.replace(": 0", ": 1", 1)


def put(b: FakeHostBuilder, path: str, text: str = "") -> Path:
    p = b.root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def rm(b: FakeHostBuilder, path: str) -> None:
    p = b.root / path.lstrip("/")
    if p.is_symlink() or p.is_file():
        p.unlink()
    elif p.is_dir():
        import shutil

        shutil.rmtree(p)


def put_dmesg(b: FakeHostBuilder, text: str | None) -> None:
    """The kernel log as a captured host carries it: the probes file of a snapshot."""
    import json

    from vfioctl.host.kernel import DMESG_PATTERN

    probes = {} if text is None else {"dmesg": {"lines": [x for x in text.splitlines() if DMESG_PATTERN.search(x)]}}
    put(b, "/.vfioctl/probes.json", json.dumps(probes))


def debian(b: FakeHostBuilder) -> None:
    put(b, "/etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n')
    put(b, "/etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n')
    put(b, "/usr/sbin/update-grub")


def ready_intel_guest(tmp_path: Path) -> FakeHostBuilder:
    """A QEMU guest with an emulated Intel IOMMU and intel_iommu=on: everything in place."""
    b = standard_host(tmp_path / "root")
    put(b, "/proc/cpuinfo", cpuinfo())
    put(b, f"/boot/config-{REL}", GOOD_CONFIG)
    put(b, "/proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro quiet intel_iommu=on iommu=pt\n")
    put(b, "/sys/firmware/acpi/tables/DMAR", "DMAR")
    unit = b.root / "sys/devices/virtual/iommu/dmar0"
    put(b, "/sys/devices/virtual/iommu/dmar0/intel-iommu/ecap", "f00f5e\n")  # bit 3 (IR) set
    put(b, "/sys/devices/virtual/iommu/dmar0/intel-iommu/cap", "d2008c22260286\n")
    (b.root / "sys/class/iommu").mkdir(parents=True, exist_ok=True)
    (b.root / "sys/class/iommu/dmar0").symlink_to(os.path.relpath(unit, b.root / "sys/class/iommu"))
    put_dmesg(b,
        "[    0.012345] DMAR: IOMMU enabled\n"
        "[    0.123456] DMAR-IR: Enabled IRQ remapping in x2apic mode\n")
    for mod in ("vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1", "kvm", "kvm_intel"):
        put(b, f"/sys/module/{mod}/refcnt", "0\n")
    put(b, "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "N\n")
    put(b, f"/lib/modules/{REL}/modules.dep", MODULES_DEP)
    put(b, "/dev/vfio/vfio")
    put(b, "/dev/kvm")
    debian(b)
    return b


@pytest.fixture
def ready(tmp_path):
    return ready_intel_guest(tmp_path)


def find(b: FakeHostBuilder, fid: str) -> Finding:
    f = run_checks(Host(b.root)).get(fid)
    assert f is not None, f"no finding {fid}"
    return f


# ====================================================================== the ready host

def test_ready_intel_guest_passes_everything(ready):
    report = run_checks(Host(ready.root))
    bad = [(f.id, f.status, f.evidence) for f in report.findings if f.status in (WARN, FAIL)]
    assert bad == []
    assert report.worst == PASS
    ids = [f.id for f in report.findings]
    assert ids == ["cpu-virt", "acpi-table", "kernel-config", "kernel-sriov", "intel-iommu-default",
                   "cmdline-iommu", "cmdline-iommu-pt", "iommu", "irq-remap", "vfio-modules",
                   "dev-vfio", "kvm", "groups", "group-prediction"]
    assert report.summary() == {"pass": 11, "warn": 0, "fail": 0}
    assert "the 7 kernel groups match the rules" in report.get("group-prediction").evidence
    assert "vmx present in /proc/cpuinfo (GenuineIntel)" in report.get("cpu-virt").evidence
    assert "virtual machine" in report.get("cpu-virt").evidence  # hypervisor flag noted
    assert "7 groups in /sys/kernel/iommu_groups" in report.get("iommu").evidence
    assert "dmar0" in report.get("iommu").evidence


def test_report_dict_schema(ready):
    d = run_checks(Host(ready.root)).to_dict()
    assert d["schema"] == "vfioctl.check/1"
    assert set(d["summary"]) == {"pass", "warn", "fail"}
    assert d["findings"][0] == {
        "id": "cpu-virt", "title": "CPU virtualization", "status": "pass",
        "evidence": d["findings"][0]["evidence"], "fix": None,
    }
    json.dumps(d)  # serialisable


def test_report_worst_and_summary():
    r = Report([Finding("a", "A", INFO, "x"), Finding("b", "B", WARN, "y"), Finding("c", "C", PASS, "z")])
    assert r.worst == WARN
    assert r.summary() == {"pass": 1, "warn": 1, "fail": 0}
    assert Report([Finding("a", "A", INFO, "x")]).worst == INFO
    with pytest.raises(ValueError):
        Finding("a", "A", "bad", "x")


# ====================================================================== CPU

def test_cpu_without_vmx_on_metal_fails_with_firmware_fix(ready):
    put(ready, "/proc/cpuinfo", cpuinfo(flags="fpu vme msr x2apic"))
    f = find(ready, "cpu-virt")
    assert f.status == FAIL
    assert "no vmx flag in /proc/cpuinfo (GenuineIntel)" in f.evidence
    assert "virtual machine" not in f.evidence
    assert f.fix.startswith("enable VT-x/AMD-V in firmware setup")


def test_cpu_without_svm_in_vm_says_nested(ready):
    put(ready, "/proc/cpuinfo", cpuinfo("AuthenticAMD", "fpu hypervisor"))
    f = find(ready, "cpu-virt")
    assert f.status == FAIL
    assert "no svm flag" in f.evidence and "AuthenticAMD" in f.evidence
    assert "hypervisor flag set" in f.evidence
    assert "nested" in f.fix


def test_cpu_amd_svm_passes(ready):
    put(ready, "/proc/cpuinfo", cpuinfo("AuthenticAMD", "fpu svm"))
    f = find(ready, "cpu-virt")
    assert f.status == PASS and "svm present" in f.evidence


# ====================================================================== ACPI table

def test_acpi_dmar_missing_fails(ready):
    rm(ready, "/sys/firmware/acpi/tables/DMAR")
    put(ready, "/sys/firmware/acpi/tables/APIC", "")
    f = find(ready, "acpi-table")
    assert f.status == FAIL
    assert "/sys/firmware/acpi/tables/DMAR absent" in f.evidence
    assert "intel-iommu" in f.fix  # a VM: QEMU's emulated IOMMU


def test_acpi_ivrs_on_amd(ready):
    put(ready, "/proc/cpuinfo", cpuinfo("AuthenticAMD", "svm"))
    # an AMD CPU beside an Intel IOMMU (QEMU's default CPU with intel-iommu) is an Intel platform
    assert find(ready, "acpi-table").status == PASS
    rm(ready, "/sys/firmware/acpi/tables/DMAR")
    rm(ready, "/sys/class/iommu/dmar0")
    f = find(ready, "acpi-table")
    assert f.status == FAIL and "IVRS" in f.evidence  # DMAR is the wrong table for AMD
    assert f.fix == "enable 'IOMMU' (AMD-Vi) in firmware setup"  # bare metal
    put(ready, "/sys/firmware/acpi/tables/IVRS", "")
    assert find(ready, "acpi-table").status == PASS


# ====================================================================== kernel config

def test_kernel_config_reports_each_option(ready):
    f = find(ready, "kernel-config")
    assert f.status == PASS
    assert f.evidence.startswith(f"/boot/config-{REL}: ")
    for item in ("CONFIG_INTEL_IOMMU=y", "CONFIG_IRQ_REMAP=y", "CONFIG_VFIO=m", "CONFIG_VFIO_PCI=m",
                 "CONFIG_VFIO_IOMMU_TYPE1=m", "CONFIG_KVM_VFIO=y"):
        assert item in f.evidence
    assert "CONFIG_AMD_IOMMU" not in f.evidence  # only the CPU vendor's
    info = find(ready, "intel-iommu-default")
    assert info.status == INFO and "intel_iommu=on is needed" in info.evidence


def test_kernel_config_missing_vfio_fails(ready):
    put(ready, f"/boot/config-{REL}", GOOD_CONFIG.replace("CONFIG_VFIO_PCI=m\n", "# CONFIG_VFIO_PCI is not set\n"))
    f = find(ready, "kernel-config")
    assert f.status == FAIL
    assert "CONFIG_VFIO_PCI=missing" in f.evidence
    assert "built without CONFIG_VFIO_PCI" in f.fix


def test_kernel_config_from_proc_config_gz(ready):
    rm(ready, f"/boot/config-{REL}")
    (ready.root / "proc/config.gz").write_bytes(gzip.compress(GOOD_CONFIG.replace("CONFIG_PCI_IOV=y\n", "").encode()))
    f = find(ready, "kernel-config")
    assert f.status == PASS and f.evidence.startswith("/proc/config.gz: ")
    sriov = find(ready, "kernel-sriov")
    assert sriov.status == WARN and "CONFIG_PCI_IOV=missing" in sriov.evidence


def test_kernel_config_absent_warns(ready):
    rm(ready, f"/boot/config-{REL}")
    f = find(ready, "kernel-config")
    assert f.status == WARN and f"/boot/config-{REL}" in f.evidence


def test_intel_iommu_default_on_info(ready):
    put(ready, f"/boot/config-{REL}", GOOD_CONFIG + "CONFIG_INTEL_IOMMU_DEFAULT_ON=y\n")
    f = find(ready, "intel-iommu-default")
    assert "CONFIG_INTEL_IOMMU_DEFAULT_ON=y" in f.evidence and "not needed" in f.evidence


# ====================================================================== command line

def test_cmdline_missing_intel_iommu_on_fails_when_no_groups(ready):
    put(ready, "/proc/cmdline", "root=/dev/vda1 quiet\n")
    # with groups present the IOMMU is on anyway: not a problem
    assert find(ready, "cmdline-iommu").status == PASS
    rm(ready, "/sys/kernel/iommu_groups")
    f = find(ready, "cmdline-iommu")
    assert f.status == FAIL and "intel_iommu=on missing" in f.evidence
    assert "add intel_iommu=on iommu=pt" in f.fix


def _amd_without_dmar(r: FakeHostBuilder) -> None:
    put(r, "/proc/cpuinfo", cpuinfo("AuthenticAMD", "svm"))
    rm(r, "/sys/firmware/acpi/tables/DMAR")
    rm(r, "/sys/class/iommu/dmar0")
    put(r, "/proc/cmdline", "root=/dev/vda1\n")


def _no_remap_but_unsafe_allowed(r: FakeHostBuilder) -> None:
    put(r, "/sys/devices/virtual/iommu/dmar0/intel-iommu/ecap", "f00f56\n")
    put_dmesg(r, "")
    put(r, "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts", "Y\n")


UNSAFE = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"


@pytest.mark.parametrize("setup, fid, status, evidence, fix", [
    (lambda r: put(r, "/proc/cmdline", "root=/dev/vda1 intel_iommu=on iommu=off\n"), "cmdline-iommu", FAIL,
     "iommu=off turns the IOMMU off", "remove iommu=off"),
    (lambda r: put(r, "/proc/cmdline", "root=/dev/vda1 intel_iommu=off\n"), "cmdline-iommu", FAIL,
     "intel_iommu=off", None),
    (_amd_without_dmar, "cmdline-iommu", PASS, "AMD IOMMU is on by default", None),
    (_no_remap_but_unsafe_allowed, "irq-remap", WARN, "only because allow_unsafe_interrupts is on", None),
    (lambda r: put(r, UNSAFE, "Y\n"), "irq-remap", WARN, "not needed", f"echo N > {UNSAFE}"),
    (lambda r: put_dmesg(r, None), "irq-remap", PASS, "inferred", None),
], ids=["cmdline_iommu_off_fails", "cmdline_intel_iommu_off_fails", "cmdline_amd_default_on_passes",
        "irq_remap_absent_but_unsafe_allowed_warns", "irq_remap_on_with_unsafe_warns",
        "irq_remap_inferred_from_ecap_without_log"])
def test_a_host_as_set_up_gives_the_finding(ready, setup, fid, status, evidence, fix):
    """One check's finding on the ready host changed by *setup*: its status, the words of its
    evidence and (where given) of its fix."""
    setup(ready)
    f = find(ready, fid)
    assert f.status == status and evidence in f.evidence
    if fix is not None:
        assert fix in f.fix


def test_cmdline_pt_and_vfio_ids_info(ready):
    put(ready, "/proc/cmdline", "intel_iommu=on vfio-pci.ids=8086:10d3,1b36:0010\n")
    pt = find(ready, "cmdline-iommu-pt")
    assert pt.status == INFO and "no iommu=pt" in pt.evidence and "iommu=pt" in pt.fix
    ids = find(ready, "cmdline-vfio-ids")
    assert ids.status == INFO
    assert "8086:10d3,1b36:0010" in ids.evidence and "every device with these IDs" in ids.evidence


def test_cmdline_ignores_init_arguments(ready):
    put(ready, "/proc/cmdline", "root=/dev/vda1 intel_iommu=on -- iommu=off\n")
    assert checks.cmdline(Host(ready.root)) == ["root=/dev/vda1", "intel_iommu=on"]
    assert find(ready, "cmdline-iommu").status == PASS


# ====================================================================== fix text per distribution

def _no_intel_iommu(b: FakeHostBuilder) -> None:
    put(b, "/proc/cmdline", "root=/dev/vda1 quiet\n")
    rm(b, "/sys/kernel/iommu_groups")
    for p in ("/etc/default/grub", "/usr/sbin/update-grub", "/etc/os-release"):
        rm(b, p)


def test_fix_debian_grub(ready):
    _no_intel_iommu(ready)
    debian(ready)
    fix = find(ready, "cmdline-iommu").fix
    assert fix.startswith("edit GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub to add intel_iommu=on iommu=pt, "
                          "then run `update-grub` and reboot")
    assert "`vfioctl boot cmdline --add intel_iommu=on --add iommu=pt`" in fix
    assert find(ready, "iommu").fix == fix


def test_fix_fedora_grubby(ready):
    _no_intel_iommu(ready)
    put(ready, "/etc/os-release", 'ID=fedora\nVERSION_ID=40\n')
    put(ready, "/usr/sbin/grubby")
    put(ready, "/etc/default/grub", 'GRUB_CMDLINE_LINUX="rhgb quiet"\n')
    (ready.root / "boot/loader/entries").mkdir(parents=True)
    # grubby without BLS entries edits nothing: /etc/default/grub is the place
    assert find(ready, "cmdline-iommu").fix.startswith("edit GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub")
    put(ready, f"/boot/loader/entries/abc-{REL}.conf", "title Fedora\noptions root=/dev/vda1\n")
    fix = find(ready, "cmdline-iommu").fix
    assert fix.startswith("grubby --update-kernel=ALL --args='intel_iommu=on iommu=pt', then reboot")


def test_fix_grubby_remove_args(ready):
    put(ready, "/proc/cmdline", "iommu=off\n")
    put(ready, "/etc/os-release", 'ID="rhel"\n')
    rm(ready, "/etc/default/grub")
    put(ready, "/usr/bin/grubby")
    put(ready, "/boot/loader/entries/x.conf", "options root=/dev/vda1 iommu=off\n")
    fix = find(ready, "cmdline-iommu").fix
    assert "--remove-args='iommu=off'" in fix and "--args='intel_iommu=on'" in fix


def test_fix_proxmox(ready):
    _no_intel_iommu(ready)
    put(ready, "/etc/os-release", 'ID=debian\n')
    put(ready, "/etc/kernel/cmdline", "root=ZFS=rpool/ROOT/pve-1 boot=zfs\n")
    put(ready, "/usr/sbin/proxmox-boot-tool")
    fix = find(ready, "cmdline-iommu").fix
    assert fix.startswith("edit /etc/kernel/cmdline to add intel_iommu=on iommu=pt, then run `proxmox-boot-tool refresh`")


def test_fix_systemd_boot(ready):
    _no_intel_iommu(ready)
    put(ready, "/etc/os-release", 'ID=arch\n')
    put(ready, "/etc/kernel/cmdline", "root=/dev/nvme0n1p2 rw\n")
    fix = find(ready, "cmdline-iommu").fix
    assert fix.startswith(f"edit /etc/kernel/cmdline to add intel_iommu=on iommu=pt, then run "
                          f"`kernel-install add {REL} /boot/vmlinuz-{REL}`")


def test_fix_unknown_boot_loader(ready):
    _no_intel_iommu(ready)
    fix = find(ready, "cmdline-iommu").fix
    assert fix.startswith("add intel_iommu=on iommu=pt on the kernel command line in your boot loader's configuration")
    assert "vfioctl boot cmdline --add intel_iommu=on" in fix


# ====================================================================== IOMMU enabled

def test_iommu_off_explains_cmdline_cause(ready):
    _no_intel_iommu(ready)
    f = find(ready, "iommu")
    assert f.status == FAIL
    assert f.evidence.startswith("/sys/kernel/iommu_groups is empty; /sys/class/iommu: dmar0")
    assert "intel_iommu=on is not on the command line" in f.evidence


def test_iommu_off_in_vm_without_iommu(ready):
    """This very machine's case: a KVM guest with no IOMMU and a kernel without the driver."""
    put(ready, "/proc/cpuinfo", cpuinfo("AuthenticAMD", "fpu hypervisor"))
    rm(ready, "/sys/kernel/iommu_groups")
    rm(ready, "/sys/class/iommu/dmar0")
    rm(ready, "/sys/firmware/acpi/tables/DMAR")
    put(ready, "/sys/firmware/acpi/tables/APIC")
    put(ready, f"/boot/config-{REL}", "# CONFIG_AMD_IOMMU is not set\nCONFIG_KVM=y\n")
    f = find(ready, "iommu")
    assert f.status == FAIL
    assert "/sys/class/iommu is empty" in f.evidence
    assert f"CONFIG_AMD_IOMMU not set in /boot/config-{REL}" in f.evidence
    assert "no ACPI IVRS table" in f.evidence
    assert "boot a kernel built with CONFIG_AMD_IOMMU=y" in f.fix
    assert "-device amd-iommu,intremap=on" in f.fix
    assert find(ready, "irq-remap").status == INFO
    assert find(ready, "groups").evidence == "no IOMMU groups"


def test_iommu_off_unknown_cause_points_at_dmesg(ready):
    put(ready, "/proc/cmdline", "intel_iommu=on\n")
    rm(ready, "/sys/kernel/iommu_groups")
    f = find(ready, "iommu")
    assert f.status == FAIL and "no cause found" in f.evidence and "dmesg" in f.fix


# ====================================================================== interrupt remapping

def test_irq_remap_dmesg_enabled(ready):
    f = find(ready, "irq-remap")
    assert f.status == PASS
    assert "kernel log (dmesg): 'DMAR-IR: Enabled IRQ remapping in x2apic mode'" in f.evidence
    assert "ecap IR bit set" in f.evidence
    assert "allow_unsafe_interrupts=N" in f.evidence


def test_irq_remap_amd_dmesg(ready):
    put(ready, "/proc/cpuinfo", cpuinfo("AuthenticAMD", "svm"))
    rm(ready, "/sys/class/iommu/dmar0")
    put_dmesg(ready, "[    1.0] AMD-Vi: Interrupt remapping enabled\n")
    f = find(ready, "irq-remap")
    assert f.status == PASS and "AMD-Vi: Interrupt remapping enabled" in f.evidence


def test_irq_remap_disabled_in_dmesg_fails(ready):
    put_dmesg(ready, "[    0.1] DMAR-IR: Not enabling interrupt remapping\n")
    f = find(ready, "irq-remap")
    assert f.status == FAIL
    assert "refuses to attach groups" in f.evidence
    assert "allow_unsafe_interrupts=1" in f.fix and "unsafe" in f.fix


def test_irq_remap_ecap_clear_without_log_fails(ready):
    put_dmesg(ready, None)
    put(ready, "/sys/devices/virtual/iommu/dmar0/intel-iommu/ecap", "f00f56\n")  # bit 3 clear
    f = find(ready, "irq-remap")
    assert f.status == FAIL and "ecap IR bit clear" in f.evidence
    assert "no kernel log captured" in f.evidence




def test_irq_remap_intremap_off_fails_with_cmdline_fix(ready):
    put_dmesg(ready, None)
    put(ready, "/proc/cmdline", "intel_iommu=on intremap=off\n")
    f = find(ready, "irq-remap")
    assert f.status == FAIL and "intremap=off" in f.evidence
    assert "remove intremap=off" in f.fix and "update-grub" in f.fix


def test_irq_remap_unknown_warns(ready):
    put_dmesg(ready, None)
    rm(ready, "/sys/devices/virtual/iommu/dmar0/intel-iommu")
    f = find(ready, "irq-remap")
    assert f.status == WARN and "could not confirm" in f.evidence
    # "run as root" is for someone who is not root; root is told where to look instead
    assert ("as root" in f.fix) == (os.geteuid() != 0) and ("dmesg" in f.fix)


# ====================================================================== vfio modules

def _unload(b: FakeHostBuilder) -> None:
    for mod in ("vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1"):
        rm(b, f"/sys/module/{mod}")
    rm(b, "/dev/vfio/vfio")


def test_modules_loaded_pass(ready):
    f = find(ready, "vfio-modules")
    assert f.status == PASS
    for mod in ("vfio", "vfio_pci", "vfio_pci_core", "vfio_iommu_type1"):
        assert f"{mod}: loaded (/sys/module/{mod} present)" in f.evidence


def test_modules_loadable_warn_with_modprobe_fix(ready):
    _unload(ready)
    f = find(ready, "vfio-modules")
    assert f.status == WARN
    assert "vfio_pci: loadable (kernel/drivers/vfio/pci/vfio-pci.ko.zst in modules.dep)" in f.evidence
    assert "modprobe -a vfio vfio_iommu_type1 vfio-pci" in f.fix
    assert "/etc/modules-load.d/vfio.conf" in f.fix
    node = find(ready, "dev-vfio")
    assert node.status == WARN and "modprobe vfio-pci" in node.fix


def test_modules_loaded_from_proc_modules(ready):
    _unload(ready)
    put(ready, "/proc/modules", "vfio_pci 16384 0 - Live 0x0\nvfio_pci_core 94208 1 vfio_pci, Live 0x0\n"
                                "vfio_iommu_type1 45056 0 - Live 0x0\nvfio 61440 3 vfio_pci_core,vfio_iommu_type1, Live 0x0\n")
    assert find(ready, "vfio-modules").status == PASS


def test_modules_builtin(ready):
    _unload(ready)
    rm(ready, f"/lib/modules/{REL}/modules.dep")
    put(ready, f"/boot/config-{REL}", GOOD_CONFIG.replace("=m", "=y"))
    f = find(ready, "vfio-modules")
    assert f.status == PASS and "vfio_pci: built-in (CONFIG_VFIO_PCI=y)" in f.evidence
    put(ready, f"/boot/config-{REL}", GOOD_CONFIG)
    put(ready, f"/lib/modules/{REL}/modules.builtin", "kernel/drivers/vfio/vfio.ko\nkernel/drivers/vfio/pci/vfio-pci.ko\n"
                                                     "kernel/drivers/vfio/pci/vfio-pci-core.ko\n"
                                                     "kernel/drivers/vfio/vfio_iommu_type1.ko\n")
    f = find(ready, "vfio-modules")
    assert f.status == PASS and "vfio_pci: built-in (listed in modules.builtin)" in f.evidence


def test_modules_missing_fail(ready):
    _unload(ready)
    put(ready, f"/lib/modules/{REL}/modules.dep", "kernel/arch/x86/kvm/kvm.ko.xz:\n")
    f = find(ready, "vfio-modules")
    assert f.status == FAIL and "vfio_pci: missing" in f.evidence
    node = find(ready, "dev-vfio")
    assert node.status == FAIL


def test_vfio_pci_core_only_from_516(ready):
    assert "vfio_pci_core" in find(ready, "vfio-modules").evidence
    rel = "5.15.0-91-generic"
    put(ready, "/proc/sys/kernel/osrelease", rel + "\n")
    put(ready, f"/boot/config-{rel}", GOOD_CONFIG)
    f = find(ready, "vfio-modules")
    assert f.status == PASS and "vfio_pci_core" not in f.evidence


# ====================================================================== /dev nodes and KVM

def test_kvm_missing_fails(ready):
    rm(ready, "/dev/kvm")
    rm(ready, "/sys/module/kvm_intel")
    f = find(ready, "kvm")
    assert f.status == FAIL and "/dev/kvm absent" in f.evidence and "modprobe kvm_intel" in f.fix


def test_kvm_present_names_modules(ready):
    f = find(ready, "kvm")
    assert f.status == PASS and "modules: kvm, kvm_intel" in f.evidence


def test_live_host_dev_vfio_must_be_char_device(tmp_path, monkeypatch):
    # Host("/") on this machine: /dev/null is a character device, a regular file is not
    live = Host("/")
    assert live.is_char_device("/dev/null") is True
    assert live.is_char_device("/dev/does-not-exist-vfioctl") is None
    assert live.is_char_device("/etc/os-release") is False


# ====================================================================== groups summary

def test_groups_summary_counts_shared_groups(ready):
    f = find(ready, "groups")
    assert f.status == INFO
    assert f.evidence.startswith("7 IOMMU groups; 2 with more than one non-bridge device")
    assert "5 (0000:01:01.0, 0000:01:02.0)" in f.evidence  # the bridge 00:05.0 does not count
    assert "9 (0000:00:1f.0, 0000:00:1f.2, 0000:00:1f.3)" in f.evidence


# ====================================================================== run_checks robustness

def test_unreadable_file_becomes_a_warning(ready):
    def check_boom(host):
        raise VfioctlPermissionError("cannot read /proc/x: Permission denied (EACCES); run as root")

    report = run_checks(Host(ready.root), [checks.check_cpu_virtualization, check_boom])
    assert [f.status for f in report.findings] == [PASS, WARN]
    assert report.findings[1].id == "boom"
    assert "Permission denied" in report.findings[1].evidence
    # "run as root" only to someone who is not root
    assert report.findings[1].fix == (None if os.geteuid() == 0 else "run as root (sudo vfioctl ...)")


# ====================================================================== CLI

def test_cli_check_exit_0_when_ready(ready, capsys):
    rc = main(["--root", str(ready.root), "check"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0].startswith("PASS  CPU virtualization")
    assert "\033[" not in out  # not a tty: no colour
    assert out.rstrip().endswith("11 pass, 0 warn, 0 fail: this host is ready for device assignment")


def test_cli_check_exit_1_on_fail_with_fix_line(ready, capsys):
    _no_intel_iommu(ready)
    debian(ready)
    rc = main(["check", "--root", str(ready.root)])
    out = capsys.readouterr().out
    assert rc == 1
    lines = out.splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.startswith("FAIL  IOMMU enabled"))
    assert "/sys/kernel/iommu_groups is empty" in lines[i]
    assert lines[i + 1].startswith("      fix: edit GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub")
    assert "NOT ready" in lines[-1]


def test_cli_check_exit_0_with_warnings(ready, capsys):
    _unload(ready)
    rc = main(["check", "--root", str(ready.root)])
    assert rc == 0
    assert "WARN  vfio modules" in capsys.readouterr().out


def test_cli_check_json(ready, capsys):
    rm(ready, "/dev/kvm")
    rc = main(["check", "--json", "--root", str(ready.root)])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert data["schema"] == "vfioctl.check/1"
    assert data["summary"]["fail"] == 1
    kvm = next(f for f in data["findings"] if f["id"] == "kvm")
    assert kvm["status"] == "fail" and kvm["fix"]


def test_cli_render_colour_only_when_asked(ready):
    from vfioctl.cli.cmd_check import render

    report = run_checks(Host(ready.root))
    assert "\033[32mPASS" in render(report, colour=True)
    assert "\033[" not in render(report, colour=False)


def test_root_is_not_told_to_run_as_root(monkeypatch, ready):
    """Issue 23: "run as root" was printed to root (and to readers of a snapshot)."""
    import errno

    from vfioctl.base.errors import from_oserror

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    err = from_oserror(PermissionError(errno.EACCES, "Permission denied"), "read", "/sys/x")
    assert "run as root" not in err.message and "refused to root too" in err.message
    assert Host(ready.root).root_advice() is None
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    err = from_oserror(PermissionError(errno.EACCES, "Permission denied"), "read", "/sys/x")
    assert err.message.endswith("run as root (sudo vfioctl ...)")
    assert Host(ready.root).root_advice() == "run as root (sudo vfioctl ...)"
@pytest.mark.parametrize("lines", [
    ["[    0.5] DMAR-IR: " * 40 + "Enabled IRQ remapping in x2apic mode"] * 30000,
    ["DMAR-IR: " * 30000],
    ["x" * 120000 + " DMAR-IR: disabled"],
], ids=["30000-repeated-lines", "one-line-repeating-its-prefix", "one-long-line"])
def test_a_hostile_kernel_log_is_read_in_linear_time(tmp_path, lines):
    """A kernel log line repeated 30,000 times in a snapshot's probes made `check` run past
    30 s (the pattern `DMAR-IR: .*disabled` backtracked quadratically)."""
    import time

    b = standard_host(tmp_path / "root")
    (b.root / ".vfioctl").mkdir()
    (b.root / ".vfioctl/probes.json").write_text(json.dumps({"dmesg": {"lines": lines}}))
    t = time.monotonic()
    f = checks.check_interrupt_remapping(Host(b.root))
    assert time.monotonic() - t < 5
    assert f.status in (PASS, WARN, FAIL, INFO)
