"""The SR-IOV steps (ops/steps/sriov.py): the VF count (through 0, its write bounded in time),
VF autoprobe, and one VF network setting (SetVfSetting): each one's do, verify and undo on the
fake host, a fault at each write, and the kernel's refusal named as the user's error."""

from __future__ import annotations

import json
import os
import shutil
import threading

import pytest
from vfnic import IF, PF, A, vf_config

from vfioctl import engine
from vfioctl.base.errors import (
    Busy,
    DeviceVanished,
    InvalidInput,
    KernelError,
    VerifyFailed,
    VfioctlError,
    from_oserror,
)
from vfioctl.ops.steps.sriov import SetAutoprobe, SetNumVfs, SetVfSetting, show_vf_value, vf_value_now
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice

NVME = PciAddress.parse("0000:00:04.0")


# ------------------------------------------------------------------ a fault at each write, the kernel's refusal
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_a_failure_at_each_write_leaves_every_setting_as_it_was(nic, host, monkeypatch, k):
    before = nic.vfs()
    monkeypatch.setenv("VFIOCTL_FAULT_FAIL_AT", str(k))
    with pytest.raises(VfioctlError) as e:
        engine.apply(host, vf_config())
    assert "rolled back" in e.value.message
    assert nic.vfs() == before
    assert "vfnet" not in json.loads(open(host.path("/var/lib/vfioctl/state.json")).read())


def test_the_kernel_refusing_a_setting_names_it_exit_65_and_rolls_back(nic, host):
    before = nic.vfs()
    with pytest.raises(InvalidInput) as e:
        engine.apply(host, vf_config('link_state = "disable"\n'))
    assert e.value.exit_code == 65 and "link_state" in e.value.message and "EOPNOTSUPP" in e.value.message
    assert "\n" not in e.value.message
    assert nic.vfs() == before


# ------------------------------------------------------------------ SetVfSetting, step by step
@pytest.mark.parametrize("field, value, shown", [
    ("vlan", (100, 2, "802.1ad"), "vlan 100 qos 2 proto 802.1ad"),
    ("vlan", [0, 0, "802.1Q"], "vlan 0 qos 0 proto 802.1Q"),
    ("tx_rate", (0, 300), "min_tx_rate 0 max_tx_rate 300"),
    ("trust", True, "trust on"),
    ("spoofchk", False, "spoofchk off"),
    ("mac", "02:00:00:00:00:01", "mac 02:00:00:00:00:01"),
    ("link_state", "disable", "link_state disable"),
    ("trust", None, "(not reported)"),
])
def test_show_vf_value_speaks_ip_link(field, value, shown):
    assert show_vf_value(field, value) == shown


def test_vf_value_now_reads_the_kernel_and_says_none_for_no_such_vf(nic, host):
    assert vf_value_now(host, IF, 0, "vlan") == (0, 0, "802.1Q")
    assert vf_value_now(host, IF, 1, "trust") is False
    assert vf_value_now(host, IF, 2, "trust") is None  # 2 VFs: no VF 2
    table = nic.vfs()
    table[0]["mac"] = "not a mac"  # a value not of its form reads as not reported
    nic.put(table)
    assert vf_value_now(host, IF, 0, "mac") is None


def test_set_vf_setting_describes_itself_as_ip_link():
    s = SetVfSetting(A, IF, 1, "vlan", (5, 0, "802.1Q"), (0, 0, "802.1Q"))
    assert s.action == "netlink" and s.writes and s.target == PF
    assert s.path == "netlink:enp0s8/vf1/vlan"
    assert s.describe() == "ip link set enp0s8 vf 1 vlan 5 qos 0 proto 802.1Q"
    assert s.expectation() == "enp0s8 vf 1 vlan 5 qos 0 proto 802.1Q"


def test_do_verify_undo_put_the_value_and_back(nic, host, x):
    s = SetVfSetting(A, IF, 0, "vlan", (42, 3, "802.1Q"), (0, 0, "802.1Q"))
    s.do(x)
    s.verify(x)
    assert nic.vfs()[0]["vlan"] == [42, 3, "802.1Q"]
    assert host.writes == [("netlink:enp0s8/vf0/vlan", "(42, 3, '802.1Q')")]
    s.undo(x)
    assert nic.vfs()[0]["vlan"] == [0, 0, "802.1Q"]
    host.writes.clear()
    s.undo(x)  # already back: no second write
    assert host.writes == []


def test_a_vf_created_by_the_plan_has_its_previous_value_read_at_the_write(nic, host, x):
    table = nic.vfs()
    table[1]["mac"] = "02:00:00:00:00:aa"
    nic.put(table)
    s = SetVfSetting(A, IF, 1, "mac", "02:00:00:00:00:bb")
    s.do(x)
    assert x.memo[id(s)] == "02:00:00:00:00:aa"
    s.undo(x)
    assert nic.vfs()[1]["mac"] == "02:00:00:00:00:aa"


def test_undo_without_a_previous_value_or_a_pf_writes_nothing(nic, fake, host, x):
    SetVfSetting(A, IF, 0, "trust", True).undo(x)  # never done: nothing read, nothing to give back
    assert host.writes == []
    s = SetVfSetting(A, IF, 0, "trust", True, False)
    s.do(x)
    fake.unbind(PF)
    host.writes.clear()
    shutil.rmtree(fake._devdir(PF))
    (fake.root / "sys/bus/pci/devices" / PF).unlink()
    s.undo(x)  # the PF is gone: nothing to write to
    assert host.writes == []


def test_a_pf_gone_before_the_write_is_device_vanished(nic, fake, host, x):
    shutil.rmtree(fake._devdir(PF))
    (fake.root / "sys/bus/pci/devices" / PF).unlink()
    with pytest.raises(DeviceVanished):
        SetVfSetting(A, IF, 0, "trust", True, False).do(x)


def test_a_driver_that_ignores_the_write_fails_verify_with_what_it_shows(nic, host, x):
    nic.write = lambda ifname, vf, field, value: None  # accepted, not applied
    s = SetVfSetting(A, IF, 0, "trust", True, False)
    s.do(x)
    with pytest.raises(VerifyFailed) as e:
        s.verify(x)
    assert "wanted enp0s8 vf 0 trust on, but the kernel shows trust off" in e.value.message


@pytest.mark.parametrize("err, kind, words", [
    (22, InvalidInput, "EINVAL: the driver does not take this value"),
    (34, InvalidInput, "ERANGE: the driver does not take this value"),
    (95, InvalidInput, "EOPNOTSUPP: the driver has no such setting"),
    (5, KernelError, "EIO"),        # not a refusal of the value: the kernel's error as it is
    (1, VfioctlError, "EPERM"),
])
def test_the_kernel_errors_of_a_write(nic, host, x, err, kind, words):
    def refuse(ifname, vf, field, value):
        raise from_oserror(OSError(err, os.strerror(err)), "set", f"netlink:{ifname}")

    nic.write = refuse
    with pytest.raises(kind) as e:
        SetVfSetting(A, IF, 1, "tx_rate", (0, 100), (0, 0)).do(x)
    assert words in e.value.message and "\n" not in e.value.message
    if kind is InvalidInput:
        assert e.value.exit_code == 65 and "VF 1's tx_rate (min_tx_rate 0 max_tx_rate 100)" in e.value.message


def test_a_captured_host_refuses_the_write(nic, host, x):
    host.netlink_hook = None  # a folder root is no live host: no netlink without the hook
    with pytest.raises(VfioctlError):
        SetVfSetting(A, IF, 0, "trust", True, False).do(x)


# ------------------------------------------------------------------ SetNumVfs, SetAutoprobe
def test_set_numvfs_creates_verifies_and_undoes_through_zero(fake, host, x):
    pf = PciDevice(host, NVME)
    s = SetNumVfs(NVME, 2, 0, (PciAddress.parse("0000:00:04.1"), PciAddress.parse("0000:00:04.2")))
    assert s.describe() == "write 2 > /sys/bus/pci/devices/0000:00:04.0/sriov_numvfs"
    assert s.expectation() == "0000:00:04.0 has 2 VFs at 0000:00:04.1, 0000:00:04.2"
    s.do(x)
    s.verify(x)
    assert [str(v) for v in pf.virtfns] == ["0000:00:04.1", "0000:00:04.2"]
    # a later step went 2 -> 3 through 0; undoing the first (previous 0) writes 0 once
    host.writes.clear()
    s.undo(x)
    assert PciDevice(host, NVME).sriov_numvfs == 0
    assert [v for _, v in host.writes] == ["0"]
    host.writes.clear()
    s.undo(x)  # already at its previous count: nothing
    assert host.writes == []
    up = SetNumVfs(NVME, 3, 0)
    up.do(x)
    back = SetNumVfs(NVME, 3, 1)  # undo to a non-zero count goes through 0
    host.writes.clear()
    back.undo(x)
    assert [v for _, v in host.writes] == ["0", "1"]


def test_set_numvfs_verify_names_what_the_kernel_shows(fake, host, x):
    s = SetNumVfs(NVME, 2, 0, (PciAddress.parse("0000:00:05.1"), PciAddress.parse("0000:00:05.2")))
    s.do(x)
    with pytest.raises(VerifyFailed) as e:
        s.verify(x)
    assert "sriov_numvfs=2 with 2 virtfn links (0000:00:04.1, 0000:00:04.2)" in e.value.message


def test_set_numvfs_on_a_pf_that_is_gone(fake, host, x):
    gone = SetNumVfs(PciAddress.parse("0000:00:0e.0"), 1, 0)
    with pytest.raises(DeviceVanished):
        gone.do(x)
    gone.undo(x)  # nothing there to give back
    shutil.rmtree(fake._devdir("0000:00:04.0"))
    (fake.root / "sys/bus/pci/devices/0000:00:04.0").unlink()
    SetNumVfs(NVME, 2, 0).undo(x)
    assert host.writes == []


def test_a_numvfs_write_that_does_not_return_is_busy_not_a_hang(fake, host, x, monkeypatch):
    monkeypatch.setenv("VFIOCTL_SRIOV_TIMEOUT", "0.05")
    release = threading.Event()
    host.write_hook.fail = lambda path, value: release.wait(5)
    try:
        with pytest.raises(Busy) as e:
            SetNumVfs(NVME, 2, 0).do(x)
    finally:
        release.set()
    assert "has not returned after 0.05 s" in e.value.message and "VFIOCTL_SRIOV_TIMEOUT" in e.value.message


def test_a_numvfs_write_error_comes_back_to_the_caller(fake, host, x):
    def fail(path, value):
        raise OSError(16, "Device or resource busy")

    host.write_hook.fail = fail
    with pytest.raises(VfioctlError) as e:
        SetNumVfs(NVME, 2, 0).do(x)
    assert "sriov_numvfs" in e.value.message


def test_set_autoprobe_do_verify_undo(fake, host, x):
    s = SetAutoprobe(NVME, False, True)
    assert s.describe() == "write 0 > /sys/bus/pci/devices/0000:00:04.0/sriov_drivers_autoprobe"
    s.do(x)
    s.verify(x)
    assert PciDevice(host, NVME).sriov_autoprobe is False
    s.undo(x)
    assert PciDevice(host, NVME).sriov_autoprobe is True
    host.writes.clear()
    s.undo(x)  # already back
    SetAutoprobe(NVME, False, None).undo(x)  # nothing known to give back
    assert host.writes == []
    with pytest.raises(VerifyFailed, match="sriov_drivers_autoprobe True"):
        SetAutoprobe(NVME, False, True).verify(x)


def test_set_numvfs_verify_of_a_count_the_kernel_did_not_take(fake, host, x):
    with pytest.raises(VerifyFailed) as e:
        SetNumVfs(NVME, 2, 0).verify(x)
    assert "wanted 0000:00:04.0 has 2 VFs, but the kernel shows sriov_numvfs=0 with 0 virtfn links (none)" \
        in e.value.message
