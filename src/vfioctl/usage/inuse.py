"""Is the host using this device?  Evidence from the kernel's own records, not guesses.

A function is in use when taking it would take something away from the running host
(docs/host-use.md lists every kind and where each is read):

- a process has one of its device nodes open or mapped (:mod:`vfioctl.usage.nodes`);
- a filesystem on one of its block devices is mounted, through every layer (partitions,
  dm/LVM/crypt and md and bcache via ``holders/``, loop devices whose backing file lives on
  it), or one is swap; a virtio-9p or virtiofs mount uses its tag;
- a network interface it provides is up with an address or a route, is a port of a bridge,
  bond, team or OVS (``master``), or has an upper device (VLAN, macvlan, macvtap:
  ``upper_*``) that is up with an address or whose tap a process holds; a network function
  whose driver is bound but whose interface is not in this network namespace is "not known";
- the boot VGA device or a frame buffer on it (the console hand-off, :mod:`.console`);
- it is part of the platform: a host bridge, an ISA/LPC bridge, the IOMMU, or the device of
  the root filesystem or of an active console (refused even with --force).

Each use is a :class:`~vfioctl.usage.record.Use` naming its evidence; a reading that could not
be made is one of kind ``not-known`` with why.
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
from vfioctl.pci.function import parse_uevent
from vfioctl.usage import nodes as _nodes
from vfioctl.usage.console import framebuffers
from vfioctl.usage.record import (
    BLOCK_STACK,
    CONSOLE,
    MOUNT,
    MOUNT_TAG,
    NET,
    PLATFORM,
    SWAP,
    Use,
    not_known,
)

IFF_UP = 0x1

#: PCI classes whose function is the machine itself (include/linux/pci_ids.h)
PLATFORM_CLASSES = {0x0600: "a host bridge", 0x0601: "an ISA/LPC bridge", 0x0806: "the IOMMU"}
#: drivers that hold no host use of a function (it is given to a VM, or held for one)
_FREE_DRIVERS = ("vfio-pci", "pci-stub")
_MAX_DEPTH = 6


def reasons(dev: PciDevice) -> list[str]:
    """Why the host still uses *dev*, as text; [] when it does not (:func:`uses` gives records)."""
    return [u.text for u in uses(dev)]


def uses(dev: PciDevice) -> list[Use]:
    """Every host use of *dev* with its evidence, "not known" readings included; [] when none."""
    host = dev.host
    address = str(dev.address)
    out: list[Use] = []
    cls = dev.class_code >> 8
    if cls in PLATFORM_CLASSES:
        out.append(Use(PLATFORM, f"it is {PLATFORM_CLASSES[cls]} (class {dev.class_code:06x}): part of the "
                       "platform, taking it takes the machine", f"{dev.sysfs}/class = 0x{dev.class_code:06x}",
                       platform=True))
    driver = dev.driver
    bound = bool(driver) and driver not in _FREE_DRIVERS and not (driver or "").startswith("vfio")
    ifaces = net_interfaces(dev)
    for iface in ifaces:
        out.extend(_net_uses(host, iface))
    if bound and not ifaces and cls >> 8 == 0x02 and host.is_dir(f"{dev.sysfs}/driver"):
        out.append(not_known(f"the network interface of {address}",
                             f"driver {driver} is bound but no interface of it is in this network namespace "
                             f"({dev.sysfs}/net is empty here): it may be in another namespace (a container)",
                             f"{dev.sysfs}/net"))
    blocks = block_devices(dev)
    for blk in blocks:
        out.extend(_block_uses(host, blk))
    if bound:
        out.extend(_tag_uses(host, dev))
        why = host.not_captured(_nodes.READING)
        if why:
            out.append(not_known("whether a process holds its device nodes, its mount tags and upper devices",
                                 why))
        else:
            nodes = _nodes.function_nodes(host, address, blocks)
            out.extend(_nodes.process_uses(host, address, nodes))
            out.extend(_console_device(host, nodes))
    if dev.boot_vga:
        out.append(Use(CONSOLE, f"it is the boot VGA device ({dev.sysfs}/boot_vga = 1): the console may be on it",
                       f"{dev.sysfs}/boot_vga = 1"))
    for fb in framebuffers(host, address):
        out.append(Use(CONSOLE, f"framebuffer {fb.describe()} (/sys/class/graphics/{fb.name}) is on it: "
                       "the console may be using it", f"/sys/class/graphics/{fb.name}/device"))
    roots = [u for u in out if u.kind in (MOUNT, MOUNT_TAG) and u.node == "/"]
    if roots:
        out.append(Use(PLATFORM, "the host's root filesystem is on it: " + roots[0].text,
                       roots[0].evidence, platform=True))
    return list(dict.fromkeys(out))


def _console_device(host: Host, nodes: dict[str, str]) -> list[Use]:
    """An active console (/proc/consoles: ``ttyS0 -W- (EC p a) 4:64``) on one of *nodes*."""
    out = []
    for line in host.read("/proc/consoles", default="").splitlines():
        f = line.split()
        if len(f) >= 2 and f"c:{f[-1]}" in nodes:
            out.append(Use(PLATFORM, f"the host's console {f[0]} is on it (/proc/consoles: {line.strip()})",
                           f"/proc/consoles: {line.strip()}", node=nodes[f"c:{f[-1]}"], platform=True))
    return out


# ------------------------------------------------------------------ network
def _flags(host: Host, iface: str) -> int | None:
    return host.read_int(f"/sys/class/net/{iface}/flags", 16, default=None)  # type: ignore[no-any-return]


def _net_uses(host: Host, iface: str) -> list[Use]:
    out = []
    base = f"/sys/class/net/{iface}"
    flags = _flags(host, iface)
    master = host.link_name(f"{base}/master")
    if master:
        out.append(Use(NET, f"interface {iface} is a port of {master} ({base}/master)", f"{base}/master -> {master}",
                       node=iface))
    got = _addr_route_uses(host, iface, None if flags is None else bool(flags & IFF_UP), "")
    if flags is None and not any(u.known for u in got):
        got.append(not_known(f"whether interface {iface} is up", f"{base}/flags could not be read", f"{base}/flags"))
    out += got
    out += _upper_uses(host, iface, 0)
    return out


def _addr_route_uses(host: Host, iface: str, up: bool | None, via: str) -> list[Use]:
    """*iface*'s addresses and routes while it is up; with *up* None (its flags could not be
    read) they count, said as such: an address is evidence enough."""
    out = []
    who = f"interface {iface}{via}"
    v4 = _ipv4_known(host, iface)
    if v4 is not None:
        out.append(v4)
    addrs = _addresses(host, iface)
    routes = _routes(host, iface)
    state = "is up" if up else f"(whether up is not known: /sys/class/net/{iface}/flags could not be read)"
    flags = "up" if up else "not read"
    if up is not False and addrs:
        out.append(Use(NET, f"{who} {state} with address {', '.join(addrs)}",
                       f"/sys/class/net/{iface}/flags: {flags}; address {', '.join(addrs)}", node=iface))
    if up is not False and routes:
        out.append(Use(NET, f"{who} carries route {', '.join(routes)} (/proc/net/route)"
                       + ("" if up else f" {state}"), f"/proc/net/route: {', '.join(routes)}", node=iface))
    return out


def _ipv4_known(host: Host, iface: str) -> Use | None:
    """"not known" when a snapshot holds no answer of the ``ipv4`` probe for *iface*."""
    if not host.captured or host.has_probe("ipv4", iface):
        return None
    return not_known(f"the IPv4 address of {iface}", "the snapshot holds no answer of the ipv4 probe for it")


def _upper_uses(host: Host, iface: str, depth: int) -> list[Use]:
    """Upper devices (VLAN, macvlan, macvtap, ...: ``upper_*`` links) that carry addresses or
    routes, whose tap a process holds, or that have uppers of their own that do."""
    out: list[Use] = []
    if depth >= _MAX_DEPTH:
        return out
    base = f"/sys/class/net/{iface}"
    for entry in host.listdir(base):
        if not entry.startswith("upper_"):
            continue
        upper = entry[len("upper_"):]
        kind = _link_kind(host, upper)
        via = f" (upper of {iface}, {kind}: {base}/{entry})"
        flags = _flags(host, upper)
        got = _addr_route_uses(host, upper, None if flags is None else bool(flags & IFF_UP), via)
        if flags is None and not any(u.known for u in got):
            got.append(not_known(f"whether {upper}{via} is up", f"/sys/class/net/{upper}/flags could not be read"))
        out += got
        master = host.link_name(f"/sys/class/net/{upper}/master")
        if master:
            out.append(Use(NET, f"interface {upper}{via} is a port of {master}",
                           f"/sys/class/net/{upper}/master -> {master}", node=upper))
        for tap in host.listdir(f"/sys/class/net/{upper}/macvtap"):
            devno = host.read(f"/sys/class/net/{upper}/macvtap/{tap}/dev", default="")
            if devno:
                nodes = {f"c:{devno}": f"/dev/{tap}"}
                for u in _nodes.process_uses(host, "", nodes):
                    out.append(Use(u.kind, f"{u.text} (the tap of {upper}{via})", u.evidence, u.pid, u.command,
                                   u.node) if u.known else u)
        out += _upper_uses(host, upper, depth + 1)
    return out


def _link_kind(host: Host, iface: str) -> str:
    """"VLAN", "macvtap", ... from the interface's uevent DEVTYPE (net/8021q, drivers/net/macvlan.c)."""
    t = parse_uevent(host.read(f"/sys/class/net/{iface}/uevent", default="")).get("DEVTYPE")
    if t is not None:
        t = t.strip()
        return {"vlan": "VLAN"}.get(t, t) if t.isprintable() else "upper"
    if host.exists(f"/sys/class/net/{iface}/macvtap"):
        return "macvtap"
    return "upper"


# ------------------------------------------------------------------ mount tags
def _tag_uses(host: Host, dev: PciDevice) -> list[Use]:
    """virtio-9p (``virtioN/mount_tag``, net/9p/trans_virtio.c) and virtiofs (``/sys/fs/virtiofs/N/tag``,
    fs/fuse/virtio_fs.c, 6.9+) devices whose tag a mount uses (mountinfo's source is the tag)."""
    out: list[Use] = []
    tags: dict[str, tuple[str, str]] = {}
    for child in host.listdir(dev.sysfs):
        if numbered(child, "virtio") is None:
            continue
        folder = f"{dev.sysfs}/{child}"
        tag = host.read(f"{folder}/mount_tag", default="").rstrip("\0")
        if tag:
            tags[tag] = ("9p", f"{folder}/mount_tag")
        elif host.link_name(f"{folder}/driver") == "virtiofs":
            for n in host.listdir("/sys/fs/virtiofs"):
                if owner_of(host.realpath(f"/sys/fs/virtiofs/{n}/device")) == str(dev.address):
                    t = host.read(f"/sys/fs/virtiofs/{n}/tag", default="")
                    if t:
                        tags[t] = ("virtiofs", f"/sys/fs/virtiofs/{n}/tag")
            if not any(kind == "virtiofs" for kind, _ in tags.values()):
                mounted = [m for m in _mountinfo(host) if m[1] == "virtiofs"]
                if mounted:
                    out.append(not_known(f"which virtiofs mount uses {folder}",
                                         "this kernel does not publish virtiofs tags (/sys/fs/virtiofs, 6.9+) "
                                         f"and {len(mounted)} virtiofs mount(s) exist"))
    for where, fstype, source, _ in _mountinfo(host):
        got = tags.get(source)
        if got and got[0] == fstype:
            out.append(Use(MOUNT_TAG, f"{fstype} tag {source} ({got[1]}) is mounted on {where}",
                           f"/proc/self/mountinfo: {fstype} {source} on {where}", node=where))
    # one line per mount point is enough for the message: keep the root and the first few
    roots = [u for u in out if u.node == "/"]
    rest = [u for u in out if u.node != "/"]
    if len(rest) > 3:
        more = len(rest) - 3
        rest = rest[:3] + [Use(MOUNT_TAG, f"... and {more} more mount(s) of the same tag", rest[3].evidence)]
    return roots + rest


def _mountinfo(host: Host) -> list[tuple[str, str, str, str]]:
    """(mount point, fstype, source, major:minor) of every mount (proc(5) mountinfo): the one
    reading of it.  A line without its ``- fstype source`` part keeps its mount point and
    device number, with fstype and source "" (:func:`_mounts` still counts it)."""

    def compute() -> list[tuple[str, str, str, str]]:
        out = []
        for line in host.read("/proc/self/mountinfo", default="").splitlines():
            f = line.split()
            if len(f) < 10:
                continue
            sep = f.index("-") if "-" in f else -1
            whole = sep > 0 and len(f) >= sep + 3
            out.append((f[4].replace("\\040", " "), f[sep + 1] if whole else "", f[sep + 2] if whole else "", f[2]))
        return out

    return host.cached("mountinfo", compute, volatile=True)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ block devices
def _block_uses(host: Host, blk: str) -> list[Use]:
    out: list[Use] = []
    names = [blk] + [p for p in host.listdir(f"/sys/class/block/{blk}")
                     if host.exists(f"/sys/class/block/{blk}/{p}/partition")]
    for n in names:
        out += _block_layer(host, n, f"/dev/{n}", 0)
    return list(dict.fromkeys(out))


def _block_layer(host: Host, n: str, chain: str, depth: int) -> list[Use]:
    """Uses of block device *n* (reached through *chain*) and of every layer on it."""
    out: list[Use] = []
    if depth > _MAX_DEPTH:
        return out
    mounts = _mounts(host)
    devno = host.read(f"/sys/class/block/{n}/dev", default=None)
    where_all = mounts.get(n, []) + (mounts.get(devno, []) if devno else [])
    for where in dict.fromkeys(where_all):
        out.append(Use(MOUNT, f"block device {chain} is mounted on {where}",
                       f"/proc/self/mountinfo: {devno or n} on {where}", node=where))
    if n in _swaps(host):
        out.append(Use(SWAP, f"block device {chain} is in use as swap (/proc/swaps)", f"/proc/swaps: /dev/{n}",
                       node=f"/dev/{n}"))
    holders = host.listdir(f"/sys/class/block/{n}/holders")
    for h in holders:
        label = _layer_label(host, h)
        sub = _block_layer(host, h, f"{chain} -> {h}{label}", depth + 1)
        if sub:
            out += sub
        else:
            out.append(Use(BLOCK_STACK, f"block device {chain} is held by {h}{label} "
                           f"(/sys/class/block/{n}/holders)", f"/sys/class/block/{n}/holders/{h}", node=f"/dev/{h}"))
    # loop devices whose backing file lives on a filesystem of this device
    for where in dict.fromkeys(where_all):
        for loop, backing in _loops(host):
            if _under(backing, where) and _longest_mount(host, backing) == where:
                out += _block_layer(host, loop, f"{chain} (mounted on {where}) -> {loop} (backing file {backing})",
                                    depth + 1) or [
                    Use(BLOCK_STACK, f"loop device {loop} is backed by {backing} on {chain}",
                        f"/sys/class/block/{loop}/loop/backing_file = {backing}", node=f"/dev/{loop}")]
    return out


def _layer_label(host: Host, h: str) -> str:
    """" (LVM/dm vg-lv)", " (md array, active)", " (bcache)" for a holder."""
    name = host.read(f"/sys/class/block/{h}/dm/name", default="")
    if name:
        uuid = host.read(f"/sys/class/block/{h}/dm/uuid", default="")
        kind = "LVM" if uuid.startswith("LVM-") else "crypt" if uuid.startswith("CRYPT-") else "dm"
        return f" ({kind} {name})"
    state = host.read(f"/sys/class/block/{h}/md/array_state", default="")
    if state:
        return f" (md array, {state})"
    if h.startswith("bcache"):
        return " (bcache)"
    return ""


def _loops(host: Host) -> list[tuple[str, str]]:
    def compute() -> list[tuple[str, str]]:
        out = []
        for n in host.listdir("/sys/class/block"):
            if numbered(n, "loop") is not None:
                b = host.read(f"/sys/class/block/{n}/loop/backing_file", default="")
                if b.startswith("/"):
                    out.append((n, b.removesuffix(" (deleted)")))
        return out

    return host.cached("usage:loops", compute, volatile=True)  # type: ignore[no-any-return]


def _under(path: str, mount: str) -> bool:
    return mount == "/" or path == mount or path.startswith(mount.rstrip("/") + "/")


def _longest_mount(host: Host, path: str) -> str | None:
    best = None
    for where, fstype, _, _ in _mountinfo(host):
        # a line without its fstype (malformed) is no mount point to attribute a file to
        if fstype and _under(path, where) and (best is None or len(where) > len(best)):
            best = where
    return best


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


def _mounts(host: Host) -> dict[str, list[str]]:
    """Keyed by device name (``nvme0n1p1``) and by ``major:minor``."""

    def compute() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        mounts = _mountinfo(host)
        if mounts:
            for where, _, source, devno in mounts:
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
