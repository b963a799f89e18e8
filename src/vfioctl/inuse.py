"""Is the host using this device?  Evidence, not guesses.

A device is in use when unbinding it would take something away from the
running host: a network interface that is up with an address or a route, or
enslaved to a bridge/bond; a block device (or partition) that is mounted, is
swap, or is held by md/LVM/dm; the boot VGA device or a framebuffer console.
Each reason names the evidence so the admin can act on it.
"""

from __future__ import annotations

import json
import socket
import struct

from vfioctl.host import Host
from vfioctl.pci import PciDevice

IFF_UP = 0x1


def reasons(dev: PciDevice) -> list[str]:
    """Why the host still uses *dev*; [] when it does not."""
    host = dev.host
    out: list[str] = []
    for iface in dev.net_interfaces():
        out.extend(_net_reasons(host, iface))
    for blk in dev.block_devices():
        out.extend(_block_reasons(host, blk))
    if dev.boot_vga:
        out.append(f"it is the boot VGA device ({dev.sysfs}/boot_vga = 1): the console may be on it")
    for fb in _framebuffers(host, str(dev.address)):
        out.append(f"framebuffer {fb} (/sys/class/graphics/{fb}) is on it: the console may be using it")
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
    if host.snapshot:
        # captured hosts carry `ip -j addr` output
        text = host.read("/.vfioctl/ip-addr.json", default="")
        try:
            for link in json.loads(text) if text else []:
                if link.get("ifname") == iface:
                    for a in link.get("addr_info", []):
                        if a.get("scope") != "link":
                            addrs.append(f"{a['local']}/{a['prefixlen']}")
        except (ValueError, KeyError, TypeError):
            pass
        return addrs
    v4 = _ipv4_address(iface)
    if v4:
        addrs.append(v4)
    for line in host.read("/proc/net/if_inet6", default="").splitlines():
        f = line.split()
        if len(f) >= 6 and f[5] == iface and f[3] != "20":  # scope 0x20 = link-local
            addrs.append(f"{_v6(f[0])}/{int(f[2], 16)}")
    return addrs


def _v6(hex32: str) -> str:
    """/proc's 32 hex digits as the usual compressed IPv6 form (fec0::5054:ff:fe00:7)."""
    import ipaddress

    return ipaddress.IPv6Address(int(hex32, 16)).compressed


def _ipv4_address(iface: str) -> str | None:
    """Primary IPv4 address via SIOCGIFADDR/SIOCGIFNETMASK (no /proc file lists them per interface)."""
    import fcntl

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


def _routes(host: Host, iface: str) -> list[str]:
    out = []
    for line in host.read("/proc/net/route", default="").splitlines()[1:]:
        f = line.split()
        if len(f) < 8 or f[0] != iface:
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(f[1], 16)))
        gw = socket.inet_ntoa(struct.pack("<I", int(f[2], 16)))
        mask = bin(int(f[7], 16)).count("1")
        if dest == "0.0.0.0" and mask == 0:
            out.append(f"default via {gw}")
        else:
            out.append(f"{dest}/{mask}" + (f" via {gw}" if gw != "0.0.0.0" else ""))
    for line in host.read("/proc/net/ipv6_route", default="").splitlines():
        f = line.split()
        if len(f) >= 10 and f[9] == iface and not f[0].startswith("fe80") and not f[0].startswith("ff00") and f[0] != "0" * 32:
            plen = int(f[1], 16)
            if plen in (128,):
                continue
            out.append(f"{_v6(f[0])}/{plen}")
    return out


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
    seen: set[str] = set()
    return [r for r in out if not (r in seen or seen.add(r))]


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

    return host.cached("mounts", compute)  # type: ignore[return-value]


def _swaps(host: Host) -> set[str]:
    out = set()
    for line in host.read("/proc/swaps", default="").splitlines()[1:]:
        f = line.split()
        if f and f[0].startswith("/dev/"):
            out.add(f[0][5:])
    return out


def _framebuffers(host: Host, address: str) -> list[str]:
    out = []
    for fb in host.listdir("/sys/class/graphics"):
        if not fb.startswith("fb"):
            continue
        real = host.realpath(f"/sys/class/graphics/{fb}/device")
        if real.rsplit("/", 1)[-1] == address:
            out.append(fb)
    return out
