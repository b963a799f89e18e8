"""The hide/restore engine against a fake tree with a simulated PCI core."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vfioctl import engine
from vfioctl.base.errors import InUse, InvalidInput, Refused, VerifyFailed, VfioctlError
from vfioctl.ops.journal import Journal
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.usage import inuse


def drv(fake, addr):
    return fake.current_driver(addr)


def journal_data(host):
    with open(host.path("/var/lib/vfioctl/state.json")) as f:
        return json.load(f)


def test_dry_run_prints_plan_and_writes_nothing(fake, host):
    plan = engine.plan_hide(host, ["00:07.0"])
    text = plan.render()
    assert "0000:00:07.0" in text and "e1000e -> vfio-pci" in text
    assert "load module vfio_pci" in text
    assert "driver_override" in text and "drivers_probe" in text
    assert host.writes == []
    assert drv(fake, "0000:00:07.0") == "e1000e"


def test_hide_then_restore_exactly(fake, host):
    res = engine.hide(host, ["0000:00:07.0"])
    assert res.changed
    assert drv(fake, "0000:00:07.0") == "vfio-pci"
    assert (fake.root / "dev/vfio/7").exists()
    j = journal_data(host)
    rec = j["devices"]["0000:00:07.0"]
    assert rec["original_driver"] == "e1000e" and rec["state"] == "hidden"
    assert os.stat(host.path("/var/lib/vfioctl/state.json")).st_mode & 0o777 == 0o600
    res = engine.restore(host, ["00:07.0"])
    assert drv(fake, "0000:00:07.0") == "e1000e"
    assert PciDevice(host, PciAddress.parse("00:07.0")).driver_override is None
    assert journal_data(host)["devices"] == {}


def test_restore_puts_back_the_original_not_whatever_probes(fake, host):
    # the device was on a different driver than the one that would probe first
    fake.driver("pci-stub")
    fake.unbind("0000:00:07.0")
    fake.bind("0000:00:07.0", "pci-stub")
    engine.hide(host, ["00:07.0"])
    assert drv(fake, "0000:00:07.0") == "vfio-pci"
    engine.restore(host, all=True)
    assert drv(fake, "0000:00:07.0") == "pci-stub"


def test_hide_is_idempotent(fake, host):
    engine.hide(host, ["00:07.0"])
    n = len(host.writes)
    res = engine.hide(host, ["00:07.0"])
    assert not res.changed
    assert len(host.writes) == n


def test_group_member_on_host_driver_refused_then_group(fake, host):
    with pytest.raises(Refused) as e:
        engine.hide(host, ["01:01.0"])
    assert "0000:01:02.0 (e1000)" in str(e.value) and "--group" in str(e.value)
    assert drv(fake, "0000:01:01.0") == "e1000"
    engine.hide(host, ["01:01.0"], group=True)
    assert drv(fake, "0000:01:01.0") == "vfio-pci"
    assert drv(fake, "0000:01:02.0") == "vfio-pci"
    assert drv(fake, "0000:00:05.0") is None  # the bridge untouched
    engine.restore(host, all=True)
    assert drv(fake, "0000:01:01.0") == "e1000" and drv(fake, "0000:01:02.0") == "e1000"


def test_bridge_refused(host):
    with pytest.raises(InvalidInput, match="bridge"):
        engine.hide(host, ["00:05.0"])


def test_boot_vga_refused_unless_forced(fake, host):
    with pytest.raises(InUse, match="boot VGA"):
        engine.hide(host, ["00:01.0"])
    engine.hide(host, ["00:01.0"], force=True)
    assert drv(fake, "0000:00:01.0") == "vfio-pci"


def test_route_refused(fake, host):
    (fake.root / "proc/net").mkdir(parents=True, exist_ok=True)
    (fake.root / "proc/net/route").write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    (fake.root / "sys/class/net/eth1/flags").write_text("0x1003\n")
    with pytest.raises(InUse) as e:
        engine.hide(host, ["00:07.0"])
    assert "eth1" in str(e.value) and "10.0.2.0/24" in str(e.value)
    assert drv(fake, "0000:00:07.0") == "e1000e"


def test_mounted_disk_refused(fake, host):
    (fake.root / "proc/self").mkdir(parents=True, exist_ok=True)
    (fake.root / "proc/self/mountinfo").write_text(
        "30 1 259:0 / /mnt rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n"
    )
    with pytest.raises(InUse, match="nvme0n1 is mounted on /mnt"):
        engine.hide(host, ["00:04.0"])


def test_failure_rolls_back(fake, host):
    def fail(path, value):
        if path == "/sys/bus/pci/drivers_probe":
            raise OSError(5, "Input/output error")

    host.write_hook.fail = fail
    with pytest.raises(VfioctlError) as e:
        engine.hide(host, ["00:07.0"])
    msg = str(e.value)
    assert "rolled back" in msg and "drivers_probe" in msg
    assert drv(fake, "0000:00:07.0") == "e1000e"
    assert PciDevice(host, PciAddress.parse("00:07.0")).driver_override is None
    assert journal_data(host)["devices"] == {}


def test_verify_failure_rolls_back(fake, host):
    kernel = host.write_hook

    def lazy(path, value):
        if path == "/sys/bus/pci/drivers_probe":
            raise _Skip()

    class _Skip(Exception):
        pass

    orig_call = kernel.__call__

    def call(h, path, value):
        if path == "/sys/bus/pci/drivers_probe":
            return  # the kernel "accepts" the write but binds nothing
        return orig_call(h, path, value)

    host.write_hook = call
    with pytest.raises(VerifyFailed) as e:
        engine.hide(host, ["00:07.0"])
    assert "wanted 0000:00:07.0 driver is vfio-pci" in str(e.value)
    assert drv(fake, "0000:00:07.0") == "e1000e"


def test_interrupted_run_is_recovered_from_journal(fake, host):
    # simulate kill -9 right after the unbind: the journal holds a pending record
    calls = []

    def die(path, value):
        calls.append(path)
        if path.endswith("/unbind") and len(calls) > 1:
            pass
        if path == "/sys/bus/pci/drivers_probe":
            raise SystemExit("killed")

    host.write_hook.fail = die
    with pytest.raises(BaseException):
        engine.hide(host, ["00:07.0"])
    # SystemExit is not an error we wrap, but rollback ran; now simulate the worst case by hand:
    host.write_hook.fail = None
    fake.unbind("0000:00:07.0") if drv(fake, "0000:00:07.0") else None
    (fake._devdir("0000:00:07.0") / "driver_override").write_text("vfio-pci\n")
    with Journal(host) as j:
        from vfioctl.ops.journal import DeviceRecord

        j.record_device(DeviceRecord("0000:00:07.0", "8086:10d3", "e1000e", None, "vfio-pci"))
        j.save()
    engine.restore(host, all=True)
    assert drv(fake, "0000:00:07.0") == "e1000e"
    assert PciDevice(host, PciAddress.parse("00:07.0")).driver_override is None
    assert journal_data(host)["devices"] == {}


def test_status_reports_inconsistency(fake, host):
    engine.hide(host, ["00:07.0"])
    st = engine.status(host)
    assert st["devices"][0]["consistent"] is True and not st["problems"]
    fake.unbind("0000:00:07.0")
    st = engine.status(host)
    assert any("kernel shows driver none" in p for p in st["problems"])
    fake.unbind("0000:00:02.0")
    fake.bind("0000:00:02.0", "vfio-pci")
    st = engine.status(host)
    assert any("0000:00:02.0: on vfio-pci but not hidden by vfioctl" in p for p in st["problems"])


def test_new_id_path_when_kernel_lacks_driver_override(fake, host):
    os.unlink(fake._devdir("0000:00:07.0") / "driver_override")
    plan = engine.plan_hide(host, ["00:07.0"])
    assert any(s.path and s.path.endswith("/new_id") for s in plan.steps)
    engine.hide(host, ["00:07.0"])
    assert drv(fake, "0000:00:07.0") == "vfio-pci"
    assert drv(fake, "0000:00:02.0") == "e1000e"  # the twin stays on its driver
    assert journal_data(host)["devices"]["0000:00:07.0"]["added_ids"] == [["vfio-pci", "8086 10d3"]]
    engine.restore(host, ["00:07.0"])
    assert drv(fake, "0000:00:07.0") == "e1000e"
    assert ("8086", "10d3") not in host.write_hook.dynids.get("vfio-pci", set())


def test_restore_refused_while_vm_holds_group(fake, host, monkeypatch):
    engine.hide(host, ["00:07.0"])
    from vfioctl.ops import state as state_mod
    from vfioctl.usage.holders import Holder

    monkeypatch.setattr(state_mod, "group_holders", lambda h, g: [Holder(4242, "qemu-system-x86", "web1", 7)])
    with pytest.raises(Refused) as e:
        engine.restore(host, ["00:07.0"], force=True)
    assert "PID 4242" in str(e.value) and "web1" in str(e.value)
    assert drv(fake, "0000:00:07.0") == "vfio-pci"


def test_restore_unjournaled_vfio_device_needs_force(fake, host):
    fake.driver("vfio-pci")
    fake.unbind("0000:00:07.0")
    fake.bind("0000:00:07.0", "vfio-pci")
    with pytest.raises(Refused, match="original driver is unknown"):
        engine.restore(host, ["00:07.0"])
    engine.restore(host, ["00:07.0"], force=True)
    assert drv(fake, "0000:00:07.0") == "e1000e"


def test_hide_group_spec_takes_endpoints_not_the_bridge(fake, host):
    engine.hide(host, ["group:5"])
    assert drv(fake, "0000:01:01.0") == "vfio-pci" and drv(fake, "0000:01:02.0") == "vfio-pci"
    assert drv(fake, "0000:00:05.0") is None
    engine.restore(host, ["group:5"])
    assert drv(fake, "0000:01:01.0") == "e1000" and drv(fake, "0000:01:02.0") == "e1000"


def test_plan_names_vfio_variant_drivers_from_modules_alias(fake, host):
    (fake.root / "lib/modules/6.1.0-test-amd64/modules.alias").write_text(
        "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n"
        "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci\n"
        "alias vfio_pci:v00008086d000010D3sv*sd*bc*sc*i* igb_vfio_pci\n"
    )
    plan = engine.plan_hide(host, ["00:07.0"])
    notes = [n for n in plan.notes if "variant" in n]
    assert notes == ["modules.alias names vfio variant driver(s) igb_vfio_pci for 0000:00:07.0; "
                     "choose one with --driver igb_vfio_pci"]
    plan = engine.plan_hide(host, ["00:02.0"], driver="igb_vfio_pci")
    assert any(s.value == "igb_vfio_pci" for s in plan.steps if s.action == "modprobe")


def test_mounted_nvme_multipath_head_refused(fake, host):
    """With CONFIG_NVME_MULTIPATH the mounted nvme0n1 lives under /sys/devices/virtual and only
    its path device nvme0c0n1 sits under the PCI function (seen on the lab's Debian kernel)."""
    import os as _os

    root = fake.root
    head = root / "sys/devices/virtual/nvme-subsystem/nvme-subsys0/nvme0n1"
    (head / "multipath").mkdir(parents=True)
    (head / "dev").write_text("259:0\n")
    path_dev = fake._devdir("0000:00:04.0") / "nvme/nvme0/nvme0c0n1"
    path_dev.mkdir(parents=True)
    (head / "multipath/nvme0c0n1").symlink_to(_os.path.relpath(path_dev, head / "multipath"))
    (root / "sys/class/block/nvme0n1").unlink()
    (root / "sys/class/block/nvme0n1").symlink_to(_os.path.relpath(head, root / "sys/class/block"))
    (root / "sys/class/block/nvme0c0n1").symlink_to(_os.path.relpath(path_dev, root / "sys/class/block"))
    dev = PciDevice(host, PciAddress.parse("00:04.0"))
    assert sorted(inuse.block_devices(dev)) == ["nvme0c0n1", "nvme0n1"]
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/mountinfo").write_text("30 1 259:0 / /tmp/mnt rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n")
    with pytest.raises(InUse, match="nvme0n1 is mounted on /tmp/mnt"):
        engine.hide(host, ["00:04.0"])


def test_mounted_nvme_head_found_through_its_subsystem_on_6_1(fake, host):
    """Linux 6.1 (the lab's Debian kernel): no multipath/ dir; the head's `device` is the
    nvme-subsystem, whose nvme0 entry links to the controller under the PCI function."""
    import os as _os

    root = fake.root
    subsys = root / "sys/devices/virtual/nvme-subsystem/nvme-subsys0"
    head = subsys / "nvme0n1"
    head.mkdir(parents=True)
    (head / "dev").write_text("259:1\n")
    (head / "device").symlink_to(_os.path.relpath(subsys, head))
    ctrl = fake._devdir("0000:00:04.0") / "nvme/nvme0"
    ctrl.mkdir(parents=True, exist_ok=True)
    (subsys / "nvme0").symlink_to(_os.path.relpath(ctrl, subsys))
    (root / "sys/class/block/nvme0n1").unlink()
    (root / "sys/class/block/nvme0n1").symlink_to(_os.path.relpath(head, root / "sys/class/block"))
    dev = PciDevice(host, PciAddress.parse("00:04.0"))
    assert inuse.block_devices(dev) == ["nvme0n1"]
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/mountinfo").write_text("43 33 259:1 / /tmp/mnt rw,relatime - ext4 /dev/nvme0n1 rw\n")
    with pytest.raises(InUse, match="nvme0n1 is mounted on /tmp/mnt"):
        engine.hide(host, ["00:04.0"])


def test_a_journal_written_by_0_1_0_still_restores(fake, host):
    """tests/unit/golden/journal-0.1.0.json was written by vfioctl 0.1.0's engine on this fake
    host (the twin, the bridge group, two VFs of the NVMe PF hidden); this version restores
    exactly that state from it."""
    engine.hide(host, ["00:07.0"])
    engine.hide(host, ["01:01.0"], group=True)
    engine.sriov_set(host, "00:04.0", 2, hide=True)
    old = (Path(__file__).resolve().parents[1] / "golden" / "journal-0.1.0.json").read_text()
    (fake.root / "var/lib/vfioctl/state.json").write_text(old)
    st = engine.status(host)
    assert st["problems"] == [] and len(st["devices"]) == 5
    engine.restore(host, all=True)
    assert [drv(fake, a) for a in ("0000:00:07.0", "0000:01:01.0", "0000:01:02.0")] == ["e1000e", "e1000", "e1000"]
    assert (fake._devdir("0000:00:04.0") / "sriov_numvfs").read_text().strip() == "0"
    assert journal_data(host).get("devices", {}) == {} and journal_data(host).get("sriov", {}) == {}
