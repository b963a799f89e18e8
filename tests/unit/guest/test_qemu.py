"""QEMU -device arguments: slot pairing, ids, golden output, refusals, and QEMU's own parser."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from vfioctl import engine
from vfioctl.base.errors import InvalidInput
from vfioctl.cli import main
from vfioctl.guest import DEFAULT_ROOT_SLOT, hostdev_id, layout
from vfioctl.guest.qemu import command_line, qemu_args
from vfioctl.pci.address import PciAddress

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "guest"


def A(*texts):
    return [PciAddress.parse(t) for t in texts]


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    assert path.exists(), f"missing golden file {path}"
    assert text == path.read_text()


# ---------------------------------------------------------------- pure layout
def test_id_from_address():
    assert hostdev_id(PciAddress.parse("03:00.0")) == "hostdev-0000-03-00-0"
    assert hostdev_id(PciAddress.parse("abcd:ff:1f.7")) == "hostdev-abcd-ff-1f-7"


def test_single_functions_leave_the_address_to_qemu():
    out = layout(A("04:00.0", "03:00.0", "03:00.0"))
    assert [str(a.host) for a in out] == ["0000:03:00.0", "0000:04:00.0"]
    assert all(a.guest_slot is None and not a.multifunction for a in out)


def test_companions_share_one_guest_slot():
    out = layout(A("03:00.1", "03:00.0"))
    assert [(a.guest_addr, a.multifunction) for a in out] == [
        (f"{DEFAULT_ROOT_SLOT:02x}.0", True), (f"{DEFAULT_ROOT_SLOT:02x}.1", False)
    ]


def test_every_slot_gets_its_own_guest_slot_once_one_is_shared():
    out = layout(A("03:00.0", "03:00.1", "04:00.0"), bus="rp1")
    assert [(str(a.host), a.bus, a.guest_addr, a.multifunction) for a in out] == [
        ("0000:03:00.0", "rp1", "00.0", True),
        ("0000:03:00.1", "rp1", "00.1", False),
        ("0000:04:00.0", "rp1", "01.0", False),
    ]


def test_functions_without_function_0_are_renumbered():
    # a guest only enumerates a slot that has a function 0
    out = layout(A("03:00.2", "03:00.3"), slot=5)
    assert [(a.guest_addr, a.multifunction) for a in out] == [("05.0", True), ("05.1", False)]


def test_slots_must_fit():
    with pytest.raises(InvalidInput, match="--slot"):
        layout(A("03:00.0", "03:00.1", "04:00.0"), slot=0x1F)
    with pytest.raises(InvalidInput):
        layout([])


def test_qemu_args_golden():
    golden("qemu-single.txt", command_line(qemu_args(A("0000:00:07.0"))) + "\n")
    golden("qemu-gpu-audio.txt", command_line(qemu_args(A("0000:03:00.1", "0000:03:00.0"))) + "\n")
    golden("qemu-gpu-audio-bus.txt", command_line(qemu_args(A("03:00.0", "03:00.1", "05:00.0"), bus="rp1")) + "\n")


def test_bus_with_comma_is_escaped_and_the_line_is_shell_quoted():
    line = command_line(qemu_args(A("03:00.0"), bus="odd,bus"))
    assert shlex.split(line) == ["-device", "vfio-pci,host=0000:03:00.0,id=hostdev-0000-03-00-0,bus=odd,,bus"]


# ---------------------------------------------------------------- CLI on a fake host


def run_cli(fake, capsys, *args):
    rc = main(["--root", str(fake.root), *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_refuses_a_device_on_a_host_driver(fake, capsys):
    rc, out, err = run_cli(fake, capsys, "qemu-args", "00:07.0")
    assert rc == 69 and out == ""
    assert err.count("\n") == 1
    assert "0000:00:07.0 is on e1000e" in err and "`vfioctl hide 00:07.0`" in err


def test_refusal_names_the_group_member_and_group_flag(fake, host, capsys, monkeypatch):
    rc, out, err = run_cli(fake, capsys, "qemu-args", "01:01.0")
    assert rc == 69
    assert "0000:01:02.0 (e1000)" in err and "`vfioctl hide 01:01.0 --group`" in err


def test_refuses_a_group_with_an_endpoint_left_on_the_host(fake, capsys):
    fake.unbind("0000:01:01.0")
    fake.bind("0000:01:01.0", "vfio-pci")
    rc, out, err = run_cli(fake, capsys, "qemu-args", "01:01.0")
    assert rc == 69
    assert "IOMMU group 5" in err and "0000:01:02.0 (e1000)" in err and "--group" in err


def test_hidden_devices_give_arguments(fake, host, capsys, monkeypatch):
    monkeypatch.setattr("vfioctl.cli.Context.host", property(lambda self: host))
    engine.hide(host, ["00:07.0"])
    rc, out, err = run_cli(fake, capsys, "qemu-args", "00:07.0")
    assert rc == 0, err
    assert out == "-device vfio-pci,host=0000:00:07.0,id=hostdev-0000-00-07-0\n"
    rc, out, err = run_cli(fake, capsys, "qemu-args", "00:07.0", "--json")
    assert json.loads(out) == ["-device", "vfio-pci,host=0000:00:07.0,id=hostdev-0000-00-07-0"]


def test_group_spec_passes_endpoints_not_the_bridge(fake, host, capsys, monkeypatch):
    monkeypatch.setattr("vfioctl.cli.Context.host", property(lambda self: host))
    engine.hide(host, ["01:01.0"], group=True)
    rc, out, err = run_cli(fake, capsys, "qemu-args", "group:5", "--bus", "rp1")
    assert rc == 0, err
    assert shlex.split(out) == [
        "-device", "vfio-pci,host=0000:01:01.0,id=hostdev-0000-01-01-0,bus=rp1",
        "-device", "vfio-pci,host=0000:01:02.0,id=hostdev-0000-01-02-0,bus=rp1",
    ]
    rc, out, err = run_cli(fake, capsys, "qemu-args", "00:05.0")
    assert rc == 65 and "bridge" in err


# ---------------------------------------------------------------- QEMU's own parser
QEMU = shutil.which("qemu-system-x86_64")


def test_qemu_parses_the_arguments():
    """QEMU accepts every option we write; it stops only at opening the (absent) host device."""
    assert QEMU, "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
    args = qemu_args(A("0000:ff:1f.0", "0000:ff:1f.1"), bus="rp1")
    cmd = [QEMU, "-S", "-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "64",
           "-device", "pcie-root-port,id=rp1,chassis=1,slot=1", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    # the failure is about the host device, not about an option or the address
    assert "vfio /sys/bus/pci/devices/0000:ff:1f.0: no such host device" in res.stderr, res.stderr
    assert "Invalid parameter" not in res.stderr and "not a valid" not in res.stderr


def test_vfs_of_one_slot_in_different_groups_are_not_paired():
    vfs = A("03:10.0", "03:10.2")
    assert all(a.guest_slot is None for a in layout(vfs, groups={vfs[0]: 20, vfs[1]: 21}))
    # same slot and same group: companions, paired
    assert [a.multifunction for a in layout(vfs, groups={vfs[0]: 20, vfs[1]: 20})] == [True, False]


def test_cli_vfs_stay_separate(fake, host, capsys, monkeypatch):
    monkeypatch.setattr("vfioctl.cli.Context.host", property(lambda self: host))
    engine.sriov_set(host, "00:04.0", 2, hide=True)
    rc, out, err = run_cli(fake, capsys, "qemu-args", "00:04.1", "00:04.2")
    assert rc == 0, err
    assert "addr=" not in out and "multifunction" not in out
