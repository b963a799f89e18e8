"""Smoke tests of the lab itself: the guest kernel shows what the other VM tests rely on.

Every assertion reads the guest kernel's state (sysfs, /proc, dmesg) through the agent.
"""

from __future__ import annotations

import sys
import time

import lab as vmlab
import pytest

SYS = "/sys/bus/pci/devices"


def group(lab, bdf: str) -> str:
    link = lab.readlink(f"{SYS}/{bdf}/iommu_group")
    assert link, f"{bdf} has no IOMMU group"
    return link.rsplit("/", 1)[-1]


# ---------------------------------------------------------------- the IOMMU
def test_intel_iommu_is_enabled(lab):
    dmesg = lab.sh("dmesg", check=True).out
    assert "DMAR: IOMMU enabled" in dmesg
    assert "DMAR-IR: Enabled IRQ remapping" in dmesg
    assert lab.exists("/sys/class/iommu/dmar0")
    assert lab.exists("/sys/firmware/acpi/tables/DMAR")
    assert "intel_iommu=on" in lab.read("/proc/cmdline")


def test_bridge_group_has_exactly_the_bridge_and_its_two_nics(lab):
    grp = group(lab, vmlab.BRIDGE)
    members = lab.sh(f"ls /sys/kernel/iommu_groups/{grp}/devices", check=True).out.split()
    assert sorted(members) == sorted(vmlab.BRIDGE_MEMBERS)
    for bdf in vmlab.BRIDGE_MEMBERS[1:]:
        assert lab.read(f"{SYS}/{bdf}/vendor") == "0x8086"
        assert lab.read(f"{SYS}/{bdf}/device") == "0x100e"  # e1000 (82540EM)


def test_multifunction_slot_shares_one_group(lab):
    f0, f1 = vmlab.MULTIFUNCTION
    assert group(lab, f0) == group(lab, f1)
    members = lab.sh(f"ls /sys/kernel/iommu_groups/{group(lab, f0)}/devices", check=True).out.split()
    assert sorted(members) == sorted(vmlab.MULTIFUNCTION)


def test_twins_have_same_ids_and_different_groups(lab):
    a, b = vmlab.MAIN_NIC, vmlab.TWIN_NIC
    ids = [(lab.read(f"{SYS}/{d}/vendor"), lab.read(f"{SYS}/{d}/device")) for d in (a, b)]
    assert ids[0] == ids[1] == ("0x8086", "0x10d3")  # 82574L, the e1000e model
    assert group(lab, a) != group(lab, b)
    for bdf in (a, b):
        members = lab.sh(f"ls /sys/kernel/iommu_groups/{group(lab, bdf)}/devices").out.split()
        assert members == [bdf], f"{bdf} is alone in its group"


def test_bench_devices_exist(lab):
    nics = [b for b, d in lab.pci().items() if d["class"].startswith("0200")]
    assert len(nics) >= 8
    for bdf in vmlab.BENCH_NICS:
        assert lab.driver(bdf) == "e1000"


# ---------------------------------------------------------------- devices at boot
def test_boot_layout_is_what_the_kernel_shows(lab):
    shown = {bdf: d["driver"] for bdf, d in lab.boot_pci.items()}
    assert shown == vmlab.BOOT_LAYOUT
    assert all(d["driver_override"] is None for d in lab.boot_pci.values())


def test_main_nic_is_on_e1000e_with_an_interface(lab):
    assert lab.driver(vmlab.MAIN_NIC) == "e1000e"
    ifaces = lab.sh(f"ls {SYS}/{vmlab.MAIN_NIC}/net", check=True).out.split()
    assert len(ifaces) == 1
    assert lab.sh(f"ip -o link show {ifaces[0]}", check=True).out


def test_nvme_pf_has_sriov(lab):
    pf = vmlab.NVME_PF
    assert lab.driver(pf) == "nvme"
    assert lab.read(f"{SYS}/{pf}/sriov_totalvfs") == str(vmlab.NVME_TOTAL_VFS)
    assert lab.read(f"{SYS}/{pf}/sriov_numvfs") == "0"
    assert lab.read(f"{SYS}/{pf}/nvme/nvme0/state") == "live"
    assert lab.sh("ls /sys/class/block", check=True).out.split().count("nvme0n1") == 1


def test_boot_vga_is_marked(lab):
    assert lab.read(f"{SYS}/{vmlab.BOOT_VGA}/boot_vga") == "1"


# ---------------------------------------------------------------- modules
def builtin_modules(lab) -> set[str]:
    """What the running kernel has built in (modules.builtin), as /proc/modules spells names."""
    out = lab.sh("cat /lib/modules/$(uname -r)/modules.builtin", check=True).out
    return {line.rsplit("/", 1)[-1].split(".ko")[0].replace("-", "_") for line in out.split()}


def test_vfio_pci_not_loaded_at_boot(lab):
    assert not {m for m in lab.boot_modules if m.startswith("vfio")}
    assert all(d["driver"] != "vfio-pci" for d in lab.boot_pci.values())
    assert {"e1000e", "e1000", "nvme", "9p"} <= lab.boot_modules
    # the agent's channel: a module on 6.1, built in on 6.12 (CONFIG_VIRTIO_CONSOLE=y)
    builtin = builtin_modules(lab)
    assert ("virtio_console" in lab.boot_modules) != ("virtio_console" in builtin)
    assert not {m for m in builtin if m.startswith("vfio")}, "vfio is a module: vfioctl loads it"


def test_modprobe_vfio_pci_loads_and_unloads(lab):
    assert not lab.exists("/sys/module/vfio_pci")
    r = lab.sh("modprobe vfio-pci")
    assert r.rc == 0, r.err
    try:
        assert "vfio_pci" in lab.modules()
        assert lab.exists("/sys/bus/pci/drivers/vfio-pci")
        assert lab.exists("/dev/vfio/vfio")
    finally:
        r = lab.sh("modprobe -r vfio-pci")
    assert r.rc == 0, r.err
    assert "vfio_pci" not in lab.modules()
    assert not lab.exists("/sys/bus/pci/drivers/vfio-pci")


def test_kernel_config_and_modules_match_the_running_kernel(lab):
    kver = lab.sh("uname -r", check=True).out.strip()
    assert kver == lab.kernel.kver
    config = lab.sh("cat /boot/config-$(uname -r)", check=True).out
    assert "CONFIG_INTEL_IOMMU=y" in config and "CONFIG_VFIO_PCI=m" in config
    r = lab.sh("modinfo -F filename vfio-pci", check=True)
    assert r.out.strip().startswith(f"/lib/modules/{kver}/")


# ---------------------------------------------------------------- the chroot
def test_writable_places_are_writable(lab):
    for d in ("/var/lib/vfioctl", "/etc", "/etc/modprobe.d", "/tmp", "/run", "/var/log",
              "/var/cache", "/var/lib/libvirt", "/dev/shm"):
        r = lab.sh(f"f={d}/.lab-smoke-$$ && echo x > $f && cat $f && rm $f")
        assert (r.rc, r.out) == (0, "x\n"), f"{d}: {r.err}"


def test_host_tree_is_read_only(lab):
    r = lab.sh("touch /usr/.lab-smoke")
    assert r.rc != 0 and "Read-only file system" in r.err
    assert lab.sh("test -d /usr/lib/x86_64-linux-gnu").rc == 0  # the host's tree is there


def test_python_is_the_test_runners(lab):
    r = lab.sh(f"{lab.python} -c 'import sys; print(sys.executable, sys.version_info[:2])'", check=True)
    exe, version = r.out.split(" ", 1)
    assert exe == lab.python
    assert version.strip() == str(sys.version_info[:2])


def test_vfioctl_runs_as_a_module(lab):
    r = lab.vfioctl("--help")
    if (vmlab.REPO / "src" / "vfioctl" / "__main__.py").exists():
        assert r.rc == 0, r.err
        assert "usage" in r.out.lower()
    else:
        assert "No module named vfioctl" in r.err


# ---------------------------------------------------------------- the agent
def test_agent_runs_in_repo_with_env_and_input(lab):
    r = lab.sh("pwd; echo $FOO; cat", env={"FOO": "bar"}, input="stdin text\n")
    assert (r.rc, r.out, r.err) == (0, f"{lab.repo}\nbar\nstdin text\n", "")
    r = lab.sh("pwd", cwd="/tmp")
    assert r.out == "/tmp\n"
    r = lab.sh("echo out; echo err >&2; exit 7")
    assert (r.rc, r.out, r.err, r.ok) == (7, "out\n", "err\n", False)


def test_agent_check_raises(lab):
    with pytest.raises(vmlab.LabCommandError) as info:
        lab.sh("echo nope >&2; exit 3", check=True)
    assert info.value.result.rc == 3 and "nope" in str(info.value)


def test_agent_timeout_kills_the_process_group(lab):
    t0 = time.monotonic()
    r = lab.sh("sleep 100 & sleep 100; echo never", timeout=2)
    assert r.timed_out and r.rc == 124 and "never" not in r.out
    assert time.monotonic() - t0 < 30
    assert lab.sh("pgrep -x sleep").rc == 1, "the whole group was killed"


def test_agent_returns_while_a_background_child_holds_stdout(lab):
    t0 = time.monotonic()
    r = lab.sh("sleep 30 & echo started", timeout=20)
    assert (r.rc, r.out, r.timed_out) == (0, "started\n", False)
    assert time.monotonic() - t0 < 15
    lab.sh("pkill -x sleep; true")


def test_agent_survives_binary_output(lab):
    r = lab.sh("printf '\\377\\376ok'")
    assert r.rc == 0 and r.out.endswith("ok")


# ---------------------------------------------------------------- a real bind, by hand
def test_manual_bind_to_vfio_pci_and_back(lab):
    bdf = vmlab.TWIN_NIC
    dev = f"{SYS}/{bdf}"
    grp = group(lab, bdf)
    lab.sh("modprobe vfio-pci", check=True)
    try:
        lab.sh(f"echo {bdf} > {dev}/driver/unbind", check=True)
        assert lab.driver(bdf) is None
        lab.sh(f"echo vfio-pci > {dev}/driver_override && echo {bdf} > /sys/bus/pci/drivers_probe",
               check=True)
        assert lab.driver(bdf) == "vfio-pci"
        assert lab.read(f"{dev}/driver_override") == "vfio-pci"
        assert lab.sh(f"test -c /dev/vfio/{grp}").rc == 0
        assert lab.sh(f"ls {dev}/net 2>/dev/null").out == ""
    finally:
        lab.sh(f"echo {bdf} > {dev}/driver/unbind; echo > {dev}/driver_override; "
               f"echo {bdf} > /sys/bus/pci/drivers_probe")
    assert lab.driver(bdf) == "e1000e"
    assert lab.read(f"{dev}/driver_override") == "(null)"
    assert not lab.exists(f"/dev/vfio/{grp}")
    assert lab.sh(f"ls {dev}/net", check=True).out.split()
    lab.sh("modprobe -r vfio-pci", check=True)
