"""Facts about the running kernel read from a folder root: its release and version, the build config
(either file, a gzip bomb bounded), the command line, the IOMMU groups listed, the CPU, the log."""

from __future__ import annotations

import gzip
import json

import pytest

from vfioctl.host import kernel as K
from vfioctl.host.core import Host


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "proc/sys/kernel").mkdir(parents=True)
    (r / "boot").mkdir()
    return r


def write(root, path, text):
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)


@pytest.mark.parametrize("release,version", [
    ("6.1.0-28-amd64\n", (6, 1)), ("5.15.0-91-generic", (5, 15)), ("6.12.9+bpo-amd64", (6, 12)),
    ("", (0, 0)), ("-rf /", (0, 0)), ("6.1.0 x", (0, 0)), ("../../etc", (0, 0)),
])
def test_kernel_version_from_the_release(root, release, version):
    write(root, "/proc/sys/kernel/osrelease", release)
    assert K.kernel_version(Host(root)) == version


def test_kernel_config_from_boot_and_its_states(root):
    write(root, "/proc/sys/kernel/osrelease", "6.1.0-test\n")
    write(root, "/boot/config-6.1.0-test", '# comment\nCONFIG_VFIO=m\nCONFIG_VFIO_PCI=y\nCONFIG_CMDLINE="a b"\n'
                                           "# CONFIG_KVM is not set\n")
    source, conf = K.kernel_config(Host(root))
    assert source == "/boot/config-6.1.0-test"
    assert conf == {"CONFIG_VFIO": "m", "CONFIG_VFIO_PCI": "y", "CONFIG_CMDLINE": "a b"}
    assert [K.config_state(conf, n) for n in ("CONFIG_VFIO", "CONFIG_VFIO_PCI", "CONFIG_CMDLINE", "CONFIG_KVM")] == [
        "m", "y", "missing", "missing"]


def test_kernel_config_from_proc_config_gz_when_boot_has_none(root):
    write(root, "/proc/sys/kernel/osrelease", "6.1.0-test\n")
    write(root, "/proc/config.gz", gzip.compress(b"CONFIG_VFIO=y\n"))
    assert K.kernel_config(Host(root)) == ("/proc/config.gz", {"CONFIG_VFIO": "y"})


def test_a_broken_or_huge_config_gz_is_no_config(root):
    write(root, "/proc/config.gz", b"\x1f\x8bnot gzip at all")
    assert K.kernel_config(Host(root)) == (None, {})
    # a bomb: 64 MiB of one option line; decompression stops at 16 MiB (no error, no gigabytes)
    bomb = gzip.compress(b"CONFIG_A=y\n" + b"#" * (64 << 20), 9)
    write(root, "/proc/config.gz", bomb)
    source, conf = K.kernel_config(Host(root))
    assert source == "/proc/config.gz" and conf == {"CONFIG_A": "y"}


def test_cmdline_stops_where_init_s_arguments_begin(root):
    write(root, "/proc/cmdline", "BOOT_IMAGE=/vmlinuz ro intel_iommu=on,sm_on iommu=pt -- single x=1\n")
    params = K.cmdline(Host(root))
    assert params == ["BOOT_IMAGE=/vmlinuz", "ro", "intel_iommu=on,sm_on", "iommu=pt"]
    assert K.cmdline_value(params, "intel_iommu") == ["on", "sm_on"]
    assert K.cmdline_value(["vfio-pci.ids=8086:10d3,,10de:2335", "vfio_pci.ids=1:2"], "vfio_pci.ids") == [
        "8086:10d3", "10de:2335", "1:2"]  # dashes and underscores are one to the kernel
    assert K.cmdline_value(["intel_iommu", "xintel_iommu=on"], "intel_iommu") == []


def test_iommu_group_numbers_skip_what_is_no_group(root):
    for name in ("0", "12", "3", "²", "x", "-1", "0x4", "1e3", ""):
        (root / "sys/kernel/iommu_groups" / name).mkdir(parents=True, exist_ok=True)
    assert K.iommu_group_numbers(Host(root)) == [0, 3, 12]


def test_no_iommu_no_groups(root):
    assert K.iommu_group_numbers(Host(root)) == []


def test_cpu_reads_the_first_block_only(root):
    write(root, "/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx hypervisor\n\n"
                                 "processor\t: 1\nvendor_id\t: AuthenticAMD\nflags\t\t: svm\n")
    c = K.cpu(Host(root))
    assert c.vendor == "GenuineIntel" and c.kind == "intel" and c.in_vm and "svm" not in c.flags


@pytest.mark.parametrize("vendor,kind", [("AuthenticAMD", "amd"), ("HygonGenuine", "amd"), ("CentaurHauls", None)])
def test_cpu_kind(root, vendor, kind):
    write(root, "/proc/cpuinfo", f"vendor_id : {vendor}\nflags : svm\n")
    c = K.cpu(Host(root))
    assert c.kind == kind and not c.in_vm


def test_a_huge_cpuinfo_is_read_only_at_its_head(root):
    write(root, "/proc/cpuinfo", "vendor_id : GenuineIntel\nflags : vmx\n" + "x" * (1 << 20))
    assert K.cpu(Host(root)).flags == frozenset({"vmx"})


def test_an_empty_cpuinfo_is_an_unknown_cpu(root):
    c = K.cpu(Host(root))
    assert c.vendor is None and c.kind is None and c.flags == frozenset()


def test_the_kernel_log_from_a_snapshot_s_probes(root):
    write(root, "/.vfioctl/probes.json", json.dumps({"dmesg": {"lines": ["DMAR: IOMMU enabled", 3]}}))
    assert K.kernel_log(Host(root)) == (["DMAR: IOMMU enabled", "3"], K.KERNEL_LOG)


def test_a_kernel_log_not_captured_says_why(root):
    assert K.kernel_log(Host(root)) == (None, "no kernel log captured")
    write(root, "/.vfioctl/probes.json", json.dumps({"dmesg": {"lines": None, "why": "dmesg failed: denied"}}))
    assert K.kernel_log(Host(root)) == (None, "dmesg failed: denied")


def test_no_cmdline_no_parameters(root):
    assert K.cmdline(Host(root)) == []
