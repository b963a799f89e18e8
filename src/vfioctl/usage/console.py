"""The host's consoles and frame buffers: which ones sit on a PCI device.

A GPU carries the host's console in one of two ways: its DRM driver's frame
buffer (``/sys/class/graphics/fbN/device`` points at the PCI function; seen
in the lab: bochs-drm's ``bochs-drmdrmfb``), or a firmware frame buffer
(efifb, vesafb, simplefb, or sysfb's ``BOOTFB``) that is a platform device
drawing into the GPU's BAR: /proc/iomem nests its region under the PCI
function's (drivers/firmware/sysfb.c, drivers/video/fbdev/efifb.c).  The
virtual consoles (``/sys/class/vtconsole/vtconN``) bound to the frame buffer
console are what must be unbound before the device can leave the host
(Documentation/driver-api/console.rst).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vfioctl.base.names import UNIT_NAME_RE
from vfioctl.base.text import is_ascii_int, numbered
from vfioctl.host import probes
from vfioctl.host.core import Host
from vfioctl.host.process import run_local
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES, PciDevice, owner_of
from vfioctl.usage.holders import describe_process, open_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

GRAPHICS = "/sys/class/graphics"
VTCONSOLE = "/sys/class/vtconsole"
PLATFORM = "/sys/bus/platform/devices"
#: firmware frame buffer drivers and the /proc/iomem names of their regions
DISPLAY_MANAGER = "display-manager.service"

PLATFORM_FB_DRIVERS = ("efi-framebuffer", "simple-framebuffer", "vesa-framebuffer")
_FB_REGIONS = ("efifb", "vesafb", "simplefb", "BOOTFB", "simple-framebuffer")
_IOMEM = re.compile(r"( *)([0-9a-f]{1,16})-([0-9a-f]{1,16}) : (.*)")


@dataclass(frozen=True)
class FrameBuffer:
    name: str  # fb0
    #: the driver's name as /proc/fb gives it ("bochs-drmdrmfb", "EFI VGA")
    label: str
    #: the PCI function it belongs to (DRM fbdev) or None for a platform frame buffer
    pci: str | None
    #: a platform frame buffer's device and driver ("efi-framebuffer.0", "efi-framebuffer")
    platform: tuple[str, str] | None = None

    def describe(self) -> str:
        where = f" ({self.platform[1]} {self.platform[0]})" if self.platform else ""
        return f"{self.name} {self.label}{where}".strip()


@dataclass(frozen=True)
class VtConsole:
    number: int
    name: str  # "(M) frame buffer device", "(S) dummy device"
    bound: bool

    @property
    def frame_buffer(self) -> bool:
        return "frame buffer" in self.name

    def describe(self) -> str:
        return f"vtcon{self.number} ({self.name.strip()})"


def _proc_fb(host: Host) -> dict[str, str]:
    def compute() -> dict[str, str]:
        out = {}
        for line in host.read("/proc/fb", default="").splitlines():
            n, _, label = line.partition(" ")
            if is_ascii_int(n, 4):
                out[f"fb{n}"] = label.strip()
        return out

    # read once per state (in-use evidence asks for every device), again after any change
    return host.cached("console:proc-fb", compute, volatile=True)  # type: ignore[no-any-return]


def iomem_regions(host: Host) -> tuple[tuple[int, int, int, str], ...]:
    """(depth, start, end, name) of /proc/iomem (addresses read as 0 without root)."""
    def compute() -> tuple[tuple[int, int, int, str], ...]:
        out = []
        for line in host.read("/proc/iomem", default="").splitlines():
            m = _IOMEM.fullmatch(line)
            if m:
                out.append((len(m[1]) // 2, int(m[2], 16), int(m[3], 16), m[4].strip()))
        return tuple(out)

    return host.cached("console:iomem", compute, volatile=True)  # type: ignore[no-any-return]


def _platform_fb_on(host: Host, address: str) -> bool:
    """Does a firmware frame buffer region sit inside one of *address*'s BARs (/proc/iomem)?"""
    regions = iomem_regions(host)
    bars = [(s, e) for _, s, e, n in regions if n == address and e > 0]
    fbs = [(s, e) for _, s, e, n in regions if n in _FB_REGIONS and e > 0]
    return any(bs <= fs and fe <= be for fs, fe in fbs for bs, be in bars)


def framebuffers(host: Host, address: str) -> list[FrameBuffer]:
    """The frame buffers on the PCI function *address*: its own (DRM) and firmware ones in its BARs."""
    labels = _proc_fb(host)
    out = []
    platform_here = None
    for fb in host.listdir(GRAPHICS):
        if numbered(fb, "fb", 4) is None:
            continue
        real = host.realpath(f"{GRAPHICS}/{fb}/device")
        owner = owner_of(real)
        if owner == address:
            out.append(FrameBuffer(fb, labels.get(fb, ""), address))
            continue
        dev = real.rsplit("/", 1)[-1]
        if dev.startswith(PLATFORM_FB_DRIVERS):
            if platform_here is None:
                platform_here = _platform_fb_on(host, address)
            if platform_here:
                drv = host.link_name(f"{PLATFORM}/{dev}/driver") or dev.rsplit(".", 1)[0]
                out.append(FrameBuffer(fb, labels.get(fb, ""), None, (dev, drv)))
    return out


def vtconsoles(host: Host) -> list[VtConsole]:
    out = []
    for name in host.listdir(VTCONSOLE):
        n = numbered(name, "vtcon", 3)
        if n is not None:
            out.append(VtConsole(n, host.read(f"{VTCONSOLE}/{name}/name", default=""),
                                 host.read(f"{VTCONSOLE}/{name}/bind", default="0") == "1"))
    return sorted(out, key=lambda v: v.number)


def device_nodes(host: Host, address: str) -> list[str]:
    """/dev paths of the device's DRM cards and frame buffers (/dev/dri/cardN, renderDN, /dev/fbN)."""
    out = []
    for n in host.listdir(f"{PCI_DEVICES}/{address}/drm"):
        if numbered(n, "card", 4) is not None or numbered(n, "renderD", 4) is not None:
            out.append(f"/dev/dri/{n}")
    for n in host.listdir(f"{PCI_DEVICES}/{address}/graphics"):
        if numbered(n, "fb", 4) is not None:
            out.append(f"/dev/{n}")
    return out


# ====================================================================== systemd
def unit_state(host: Host, unit: str) -> tuple[str, str]:
    """(the unit's real name, its ActiveState) as systemd reports them; ("", "unknown") when
    systemd does not answer (no systemd, or a captured host that did not record it)."""
    got = host.probe("unit", unit)
    if isinstance(got, dict):
        return str(got.get("id") or unit), str(got.get("active") or "unknown")
    return "", "unknown"


def live_unit(unit: str) -> dict:
    rc, out = run_local(["systemctl", "show", "--no-pager", "-p", "Id", "-p", "ActiveState", "--", unit], 10)
    if rc != 0:
        return {"id": None, "active": "unknown"}
    vals = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"id": vals.get("Id") or unit, "active": vals.get("ActiveState") or "unknown"}


def _unit_of_pid(host: Host, pid: int) -> str | None:
    """The systemd unit a process runs in, from /proc/PID/cgroup (cgroup v2: ``0::/system.slice/gdm.service``)."""
    for line in host.read(f"/proc/{pid}/cgroup", default="").splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if UNIT_NAME_RE.fullmatch(part) and not part.endswith(".slice"):
                return part
    return None


# ====================================================================== one GPU's console
@dataclass(frozen=True)
class GpuConsole:
    """What the console hand-off of one display device touches, read under the journal lock:
    its driver now (its frame buffer, when it has one, is what fbcon draws on), the frame
    buffers on it, and the processes holding its device nodes."""

    address: PciAddress
    driver: str | None
    framebuffers: tuple[FrameBuffer, ...]
    #: (pid, command, paths, unit) of processes holding the GPU's device nodes
    holders: tuple[tuple[int, str, tuple[str, ...], str | None], ...] = ()


def read_gpu_console(host: Host, address: PciAddress) -> GpuConsole:
    nodes = set(device_nodes(host, str(address)))
    holders = []
    if nodes:
        for pid, paths in open_files(host, lambda p: p in nodes):
            comm, _ = describe_process(host, pid)
            holders.append((pid, comm, tuple(paths), _unit_of_pid(host, pid)))
    return GpuConsole(address, PciDevice(host, address).driver, tuple(framebuffers(host, str(address))),
                      tuple(holders))


def read_units(host: Host, names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Each unit name -> (its real id, its ActiveState), as systemd reports them."""
    return {u: unit_state(host, u) for u in dict.fromkeys(names)}


probes.register("unit", lambda host, key: live_unit(key))
