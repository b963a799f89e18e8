"""The host's consoles on a PCI device (usage/console.py), read from a fake host: a DRM
driver's frame buffer, a firmware frame buffer drawn into a GPU's BAR (/proc/iomem), the
virtual consoles, the GPU's device nodes and who holds them, and systemd's word on a unit.
What is absent is "none" or "unknown", never an error; what a process or unit says about
itself is taken only in its expected form."""

from __future__ import annotations

import os

import pytest
from fakestate import console_host

from vfioctl.pci.address import PciAddress
from vfioctl.usage import console
from vfioctl.usage.console import (
    FrameBuffer,
    VtConsole,
    _unit_of_pid,
    device_nodes,
    framebuffers,
    iomem_regions,
    live_unit,
    read_gpu_console,
    read_units,
    unit_state,
    vtconsoles,
)

GPU = "0000:00:01.0"
IOMEM = """00000000-00000fff : Reserved
fc000000-febfffff : PCI Bus 0000:00
  fd000000-fdffffff : 0000:00:01.0
    fd000000-fd2fffff : efifb
  febf0000-febf0fff : 0000:00:01.0
  feb80000-febbffff : 0000:00:02.0
this line is no region
"""


def efifb(fake, iomem: str = IOMEM) -> None:
    """fb1: a firmware frame buffer (efi-framebuffer.0, a platform device) and /proc/iomem."""
    r = fake.root
    dev = r / "sys/devices/platform/efi-framebuffer.0"
    (dev / "graphics/fb1").mkdir(parents=True)
    (dev / "graphics/fb1/device").symlink_to("../..")
    (r / "sys/class/graphics").mkdir(parents=True, exist_ok=True)
    (r / "sys/class/graphics/fb1").symlink_to(os.path.relpath(dev / "graphics/fb1", r / "sys/class/graphics"))
    drv = r / "sys/bus/platform/drivers/efi-framebuffer"
    drv.mkdir(parents=True)
    (r / "sys/bus/platform/devices").mkdir(parents=True)
    (r / "sys/bus/platform/devices/efi-framebuffer.0").symlink_to(os.path.relpath(dev, r / "sys/bus/platform/devices"))
    (dev / "driver").symlink_to(os.path.relpath(drv, dev))
    (r / "proc/fb").write_text("1 EFI VGA\n")
    (r / "proc/iomem").write_text(iomem)


def test_records_describe_themselves():
    assert FrameBuffer("fb0", "bochs-drmdrmfb", GPU).describe() == "fb0 bochs-drmdrmfb"
    fb = FrameBuffer("fb1", "EFI VGA", None, ("efi-framebuffer.0", "efi-framebuffer"))
    assert fb.describe() == "fb1 EFI VGA (efi-framebuffer efi-framebuffer.0)"
    assert FrameBuffer("fb2", "", None).describe() == "fb2"
    v = VtConsole(1, "(M) frame buffer device\n", True)
    assert v.frame_buffer and v.describe() == "vtcon1 ((M) frame buffer device)"
    assert not VtConsole(0, "(S) dummy device", False).frame_buffer


def test_a_drm_frame_buffer_is_on_its_gpu(fake):
    h, _ = console_host(fake)
    assert framebuffers(h, GPU) == [FrameBuffer("fb0", "bochs-drmdrmfb", GPU)]
    assert framebuffers(h, "0000:00:02.0") == []


def test_a_firmware_frame_buffer_is_on_the_gpu_whose_bar_holds_it(fake, host):
    efifb(fake)
    (fake.root / "sys/class/graphics/fbcon").mkdir()  # the console's own entry: no frame buffer
    assert framebuffers(host, GPU) == [FrameBuffer("fb1", "EFI VGA", None, ("efi-framebuffer.0", "efi-framebuffer"))]
    assert framebuffers(host, "0000:00:02.0") == []  # its BAR does not hold the region


@pytest.mark.parametrize("iomem", [
    "",  # not readable
    "00000000-00000000 : 0000:00:01.0\n  00000000-00000000 : efifb\n",  # addresses hidden without root
    "fd000000-fdffffff : 0000:00:01.0\nfe000000-fe2fffff : efifb\n",  # the region is elsewhere
    "fd000000-fdffffff : 0000:00:01.0\n  fd000000-fe2fffff : efifb\n",  # reaches past the BAR
])
def test_a_firmware_frame_buffer_not_shown_in_a_bar_is_not_on_the_gpu(fake, host, iomem):
    efifb(fake, iomem)
    assert framebuffers(host, GPU) == []


def test_a_platform_frame_buffer_without_a_driver_link_is_named_by_its_device(fake, host):
    efifb(fake)
    (fake.root / "sys/devices/platform/efi-framebuffer.0/driver").unlink()
    (fb,) = framebuffers(host, GPU)
    assert fb.platform == ("efi-framebuffer.0", "efi-framebuffer")


def test_iomem_regions_depth_and_junk(fake, host):
    (fake.root / "proc/iomem").write_text(IOMEM)
    assert iomem_regions(host) == (
        (0, 0, 0xFFF, "Reserved"), (0, 0xFC000000, 0xFEBFFFFF, "PCI Bus 0000:00"),
        (1, 0xFD000000, 0xFDFFFFFF, GPU), (2, 0xFD000000, 0xFD2FFFFF, "efifb"),
        (1, 0xFEBF0000, 0xFEBF0FFF, GPU), (1, 0xFEB80000, 0xFEBBFFFF, "0000:00:02.0"))
    (fake.root / "proc/iomem").unlink()
    host.invalidate()
    assert iomem_regions(host) == ()


def test_proc_fb_names_only_numbered_lines(fake, host):
    (fake.root / "sys/class/graphics").mkdir(parents=True)
    (fake.root / "proc/fb").write_text("0 bochs-drmdrmfb\nx junk\n12345 too many digits\n")
    assert console._proc_fb(host) == {"fb0": "bochs-drmdrmfb"}


def test_no_graphics_class_is_no_frame_buffer(host):
    assert framebuffers(host, GPU) == [] and vtconsoles(host) == [] and device_nodes(host, GPU) == []


def test_vtconsoles_in_order_with_their_binding(fake):
    h, _ = console_host(fake)
    v = fake.root / "sys/class/vtconsole"
    (v / "vtcon10").mkdir()
    (v / "vtcon10/name").write_text("(S) dummy device\n")
    (v / "vtconsole").mkdir()  # not numbered: not a console
    (v / "vtcon2").mkdir()  # no name, no bind: not bound
    assert [(c.number, c.name, c.bound, c.frame_buffer) for c in vtconsoles(h)] == [
        (0, "(M) frame buffer device", True, True), (1, "(S) dummy device", False, False),
        (2, "", False, False), (10, "(S) dummy device", False, False)]


def test_device_nodes_are_cards_render_nodes_and_frame_buffers(fake):
    h, _ = console_host(fake)
    d = fake._devdir(GPU)
    (d / "drm/renderD128").mkdir()
    (d / "drm/controlD64").mkdir()  # gone from the kernel's names: not a node we count
    (d / "drm/card0-Virtual-1").mkdir()  # a connector, not a card
    assert device_nodes(h, GPU) == ["/dev/dri/card0", "/dev/dri/renderD128", "/dev/fb0"]


@pytest.mark.parametrize("cgroup, unit", [
    ("0::/system.slice/gdm.service\n", "gdm.service"),
    ("0::/user.slice/user-1000.slice/session-2.scope\n", "session-2.scope"),
    ("0::/system.slice/display-manager.service/payload\n", "display-manager.service"),
    ("12:pids:/system.slice/sddm.service\n1:name=systemd:/system.slice/sddm.service\n", "sddm.service"),
    ("0::/user.slice\n", None),
    ("0::/\n", None),
    ("0::/system.slice/evil;reboot.service\n", None),
    ("", None),
])
def test_the_unit_of_a_process_from_its_cgroup(fake, host, cgroup, unit):
    (fake.root / "proc/55").mkdir()
    (fake.root / "proc/55/cgroup").write_text(cgroup)
    assert _unit_of_pid(host, 55) == unit
    assert _unit_of_pid(host, 56) is None  # no such process


def test_read_gpu_console_names_the_holders_of_its_nodes(fake):
    h, _ = console_host(fake)
    for pid, target, comm in ((4321, "/dev/dri/card0", "Xorg"), (4400, "/dev/fb0", "fbi"),
                              (4500, "/dev/dri/card1", "other")):
        fd = fake.root / f"proc/{pid}/fd"
        fd.mkdir(parents=True)
        (fd / "7").symlink_to(target)
        (fake.root / f"proc/{pid}/comm").write_text(comm + "\n")
    (fake.root / "proc/4321/cgroup").write_text("0::/system.slice/gdm.service\n")
    got = read_gpu_console(h, PciAddress.parse(GPU))
    assert got.driver == "bochs-drm" and [f.name for f in got.framebuffers] == ["fb0"]
    assert got.holders == ((4321, "Xorg", ("/dev/dri/card0",), "gdm.service"), (4400, "fbi", ("/dev/fb0",), None))


def test_read_gpu_console_of_a_device_without_nodes(host):
    got = read_gpu_console(host, PciAddress.parse("0000:00:02.0"))
    assert (got.driver, got.framebuffers, got.holders) == ("e1000e", (), ())


def test_unit_state_from_the_probe(fake):
    h, _ = console_host(fake)
    assert unit_state(h, "display-manager.service") == ("gdm.service", "active")
    assert unit_state(h, "sddm.service") == ("", "unknown")  # not recorded: systemd did not say
    assert read_units(h, ["gdm.service", "sddm.service", "gdm.service"]) == {
        "gdm.service": ("gdm.service", "active"), "sddm.service": ("", "unknown")}


def test_unit_state_of_an_odd_answer(fake, host):
    import json

    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps({"unit:a.service": {}, "unit:b.service": "active"}))
    assert unit_state(host, "a.service") == ("a.service", "unknown")
    assert unit_state(host, "b.service") == ("", "unknown")


@pytest.mark.parametrize("rc, out, got", [
    (0, "Id=gdm.service\nActiveState=active\n", {"id": "gdm.service", "active": "active"}),
    (0, "Id=\nActiveState=\n", {"id": "display-manager.service", "active": "unknown"}),
    (0, "garbage\n", {"id": "display-manager.service", "active": "unknown"}),
    (1, "Failed to connect to bus", {"id": None, "active": "unknown"}),
    (127, "systemctl: not found", {"id": None, "active": "unknown"}),
])
def test_live_unit_asks_systemctl_show(monkeypatch, rc, out, got):
    seen = []

    def run(argv, timeout):
        seen.append(argv)
        return rc, out

    monkeypatch.setattr(console, "run_local", run)
    assert live_unit("display-manager.service") == got
    assert seen == [["systemctl", "show", "--no-pager", "-p", "Id", "-p", "ActiveState", "--",
                     "display-manager.service"]]
