"""Is the host using this device?  Evidence, not guesses.

A device is in use when unbinding it would take something away from the
running host: a network interface that is up with an address or a route, or
enslaved to a bridge/bond; a block device (or partition) that is mounted, is
swap, or is held by md/LVM/dm; the boot VGA device or a framebuffer console.
Each reason names the evidence so the admin can act on it.
"""

from __future__ import annotations

import fcntl
import ipaddress
import re
import socket
import struct

from vfioctl.base.text import numbered, parse_int
from vfioctl.host import probes
from vfioctl.host.core import Host
from vfioctl.pci.device import PciDevice, owner_of
from vfioctl.usage.console import framebuffers

IFF_UP = 0x1


def reasons(dev: PciDevice) -> list[str]:
    """Why the host still uses *dev*; [] when it does not."""
    host = dev.host
    out: list[str] = []
    for iface in net_interfaces(dev):
        out.extend(_net_reasons(host, iface))
    for blk in block_devices(dev):
        out.extend(_block_reasons(host, blk))
    if dev.boot_vga:
        out.append(f"it is the boot VGA device ({dev.sysfs}/boot_vga = 1): the console may be on it")

    for fb in framebuffers(host, str(dev.address)):
        out.append(f"framebuffer {fb.describe()} (/sys/class/graphics/{fb.name}) is on it: the console may be using it")
    return out


def _net_reasons(host: Host, iface: str) -> list[str]:
    out = []
    base = f"/sys/class/net/{iface}"
    flags = host.read_int(f"{base}/flags", 16, default=0)
    up = bool(flags & IFF_UP)
    master = host.link_name(f"{base}/master")
    if master:
        out.append(f"interface {iface} is a port of {master} ({base}/master)")
    addrs = _addresses(host, iface)
    routes = _routes(host, iface)
    if up and addrs:
        out.append(f"interface {iface} is up with address {', '.join(addrs)}")
    if up and routes:
        out.append(f"interface {iface} carries route {', '.join(routes)} (/proc/net/route)")
    return out


def _addresses(host: Host, iface: str) -> list[str]:
    addrs: list[str] = []
    v4 = host.probe("ipv4", iface)
    if isinstance(v4, str) and v4:
        addrs.append(v4)
    for line in _proc_lines(host, "/proc/net/if_inet6"):
        f = line.split()
        if len(f) >= 6 and f[5] == iface and f[3] != "20":  # scope 0x20 = link-local
            a = _v6(f[0])
            if a is not None and _HEX2.fullmatch(f[2]):
                addrs.append(f"{a}/{int(f[2], 16)}")
    return addrs


_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX2 = re.compile(r"[0-9a-fA-F]{2}")


def _v6(hex32: str) -> str | None:
    """/proc's 32 hex digits as the usual compressed IPv6 form (fec0::5054:ff:fe00:7); None
    for anything else (int() alone would also take a sign or underscores)."""
    if not _HEX32.fullmatch(hex32):
        return None
    return ipaddress.IPv6Address(int(hex32, 16)).compressed


def _routes(host: Host, iface: str) -> list[str]:
    out = []
    for line in _proc_lines(host, "/proc/net/route")[1:]:
        f = line.split()
        if len(f) < 8 or f[0] != iface:
            continue
        words = [parse_int(f[i], 16) for i in (1, 2, 7)]
        if any(w is None for w in words):
            continue
        d, g, m = (w & 0xFFFFFFFF for w in words if w is not None)
        dest, gw = socket.inet_ntoa(struct.pack("<I", d)), socket.inet_ntoa(struct.pack("<I", g))
        mask = bin(m).count("1")
        if dest == "0.0.0.0" and mask == 0:
            out.append(f"default via {gw}")
        else:
            out.append(f"{dest}/{mask}" + (f" via {gw}" if gw != "0.0.0.0" else ""))
    for line in _proc_lines(host, "/proc/net/ipv6_route"):
        f = line.split()
        if len(f) >= 10 and f[9] == iface and not f[0].startswith("fe80") and not f[0].startswith("ff00") \
                and f[0] != "0" * 32:
            a = _v6(f[0])
            if a is None or not _HEX2.fullmatch(f[1]) or int(f[1], 16) == 128:
                continue
            out.append(f"{a}/{int(f[1], 16)}")
    return out


def _proc_lines(host: Host, path: str) -> list[str]:
    """The lines of a /proc/net table, read once per state of the host (as the mounts are):
    every interface of every function looks itself up in the same table (`topology` on a host
    of 1,000 functions read each table once per interface, 400 times)."""
    return host.cached(f"lines:{path}", lambda: host.read(path, default="").splitlines(),  # type: ignore[no-any-return]
                       volatile=True)


def _block_reasons(host: Host, blk: str) -> list[str]:
    out = []
    names = [blk] + [p for p in host.listdir(f"/sys/class/block/{blk}") if host.exists(f"/sys/class/block/{blk}/{p}/partition")]
    mounts = _mounts(host)
    swaps = _swaps(host)
    for n in names:
        devno = host.read(f"/sys/class/block/{n}/dev", default=None)
        for where in mounts.get(n, []) + (mounts.get(devno, []) if devno else []):
            out.append(f"block device /dev/{n} is mounted on {where}")
        if n in swaps:
            out.append(f"block device /dev/{n} is in use as swap (/proc/swaps)")
        holders = host.listdir(f"/sys/class/block/{n}/holders")
        if holders:
            out.append(f"block device /dev/{n} is held by {', '.join(holders)} (md/LVM/dm; /sys/class/block/{n}/holders)")
    # de-duplicate, keep order
    return list(dict.fromkeys(out))


def _mounts(host: Host) -> dict[str, list[str]]:
    """Keyed by device name (``nvme0n1p1``) and by ``major:minor``."""

    def compute() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        text = host.read("/proc/self/mountinfo", default="")
        if text:
            for line in text.splitlines():
                f = line.split()
                if len(f) < 10:
                    continue
                devno, where = f[2], f[4].replace("\\040", " ")
                sep = f.index("-") if "-" in f else -1
                source = f[sep + 2] if sep > 0 and len(f) > sep + 2 else ""
                out.setdefault(devno, []).append(where)
                if source.startswith("/dev/"):
                    out.setdefault(source[5:], []).append(where)
        else:
            for line in host.read("/proc/mounts", default="").splitlines():
                f = line.split()
                if len(f) >= 2 and f[0].startswith("/dev/"):
                    out.setdefault(f[0][5:], []).append(f[1])
        for k in out:
            out[k] = list(dict.fromkeys(out[k]))
        return out

    return host.cached("mounts", compute, volatile=True)


def _swaps(host: Host) -> set[str]:
    out = set()
    for line in _proc_lines(host, "/proc/swaps")[1:]:
        f = line.split()
        if f and f[0].startswith("/dev/"):
            out.add(f[0][5:])
    return out


# ------------------------------------------------------------------ what hangs under a function
def net_interfaces(dev: PciDevice) -> list[str]:
    """Network interfaces the function provides (/sys/class/net entries under it)."""
    return _class_children(dev.host, "net").get(str(dev.address), [])


def block_devices(dev: PciDevice) -> list[str]:
    """Block devices (and partitions) the function provides, NVMe multipath heads included."""
    return _class_children(dev.host, "block").get(str(dev.address), [])


def _class_children(host: Host, cls: str) -> dict[str, list[str]]:
    """Map PCI address -> names in /sys/class/<cls> that sit under that function.

    Partitions are listed too (they can be mounted).  An NVMe multipath head
    (``nvme0n1`` under /sys/devices/virtual/nvme-subsystem, the node that gets
    mounted when CONFIG_NVME_MULTIPATH=y, as on Debian) belongs to every
    controller of its subsystem: those its ``multipath/`` lists (newer kernels),
    or the ``nvmeN`` links of the subsystem its ``device`` points to (6.1).
    """

    def compute() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        owner_map: dict[str, str] = {}
        names = host.listdir(f"/sys/class/{cls}")
        for name in names:
            owner = owner_of(host.sysfs_target(f"/sys/class/{cls}/{name}"))
            if owner:
                owner_map[name] = owner
                out.setdefault(owner, []).append(name)
        if cls == "block":
            for name in names:
                if name in owner_map:
                    continue
                owners = {owner_map[p] for p in host.listdir(f"/sys/class/block/{name}/multipath") if p in owner_map}
                if not owners and host.exists(f"/sys/class/block/{name}/device"):
                    # 6.1 has no multipath/ links: the head's device is the nvme-subsystem,
                    # whose nvmeN entries link to the controllers (under their PCI functions)
                    subsys = host.realpath(f"/sys/class/block/{name}/device")
                    if "/nvme-subsystem/" in subsys:
                        for entry in host.listdir(subsys):
                            if numbered(entry, "nvme", 4) is not None:
                                owner = owner_of(host.realpath(f"{subsys}/{entry}"))
                                if owner:
                                    owners.add(owner)
                for owner in sorted(owners):
                    out.setdefault(owner, []).append(name)
                    # the head's partitions (nvme0n1p1) are what gets mounted
                    out[owner] += [p for p in names if p.startswith(name + "p") and p not in owner_map]
        return out

    return host.cached(f"class:{cls}", compute, volatile=True)


def _ipv4_address(iface: str) -> str | None:
    """Primary IPv4 address via SIOCGIFADDR/SIOCGIFNETMASK (no /proc file lists them per interface)."""

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", iface.encode()[:15])
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])
            try:
                mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x891B, req)[20:24])
                prefix = bin(struct.unpack("!I", socket.inet_aton(mask))[0]).count("1")
            except OSError:
                prefix = 32
            return f"{addr}/{prefix}"
    except OSError:
        return None


probes.register("ipv4", lambda host, key: _ipv4_address(key))
