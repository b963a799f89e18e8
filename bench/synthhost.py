"""Generate a synthetic Linux host tree with N PCI functions, shaped like real sysfs.

The tree is what the peer tools read, so that each of them can be pointed at it
(bind-mounted over /sys and /lib/modules in a private mount namespace, see
bench/run.py):

* /sys/devices/pci<dom>:<bus>/.../<addr>: one directory per function, nested
  under its bridges, with the attribute files the kernel creates (vendor, device,
  class, subsystem_*, revision, uevent, modalias, driver_override, numa_node,
  enable, irq, resource, local_cpus, local_cpulist, a 256-byte binary ``config``
  with correct ID/class/header-type/bus-number bytes, power/, msi_irqs/ ...);
* /sys/bus/pci/devices/<addr> links, /sys/bus/pci/drivers/<drv>/ with the
  reverse links, ``driver``, ``subsystem``, ``iommu_group`` links;
* /sys/kernel/iommu_groups/N/devices/*, /sys/class/{net,nvme,block} links,
  /sys/module/<mod>/ (dpdk-devbind lists it), /sys/bus/pci/slots (empty);
* SR-IOV: sriov_* files on PFs, ``physfn`` and ``virtfnN`` links;
* /lib/modules/<release>/modules.alias (text, vfioctl reads it) and, when gcc
  and depmod are present, the .bin indexes libkmod needs for lspci's
  "Kernel modules:" line (built by depmod from tiny .ko objects that carry only
  a .modinfo section);
* /proc/sys/kernel/osrelease and /proc/cmdline, /dev/vfio/N (for ``--root``).

The mix is a realistic server: a C620-style chipset (multi-function groups,
an ASPEED BMC VGA behind its bridge), SR-IOV NICs (Intel X710 8086:1572 with
700-series VFs, Mellanox ConnectX-5 15b3:1017 with 15b3:1018 VFs), GPUs with
their audio/USB functions sharing a group, NVMe drives direct on root ports and
behind PCIe switches (upstream/downstream ports, class 0604, header type 1).
All IDs exist in pci.ids.  Output is deterministic for (n, seed, release).

Usage: python bench/synthhost.py OUT_DIR -n 1000 [--seed 1] [--release R]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass, field

FORMAT_VERSION = 3  # bump when the tree's shape changes (invalidates bench/.cache)

# ----------------------------------------------------------------------------- catalogue
# (vendor, device, class, driver, module) -- every ID is in pci.ids
HOST_BRIDGE = ("8086", "2020", 0x060000, None)
ROOT_PORTS = ("2030", "2031", "2032", "2033")  # Sky Lake-E PCI Express Root Port A-D
PCH_PORT = ("8086", "a190", 0x060400, "pcieport")
UBOX = [("8086", "2014", 0x088000, None), ("8086", "2016", 0x088000, None), ("8086", "2018", 0x088000, None)]
XHCI = [("8086", "a1af", 0x0C0330, "xhci_hcd"), ("8086", "a1b1", 0x118000, "intel_pch_thermal")]
HECI = [("8086", "a1f8", 0x078000, "mei_me"), ("8086", "a1f9", 0x078000, "mei_me"), ("8086", "a1fc", 0x078000, None)]
SATA = ("8086", "a182", 0x010601, "ahci")
LPC = [("8086", "a1c1", 0x060100, None), ("8086", "a1a1", 0x058000, None),
       ("8086", "a1a3", 0x0C0500, "i801_smbus"), ("8086", "a1a4", 0x0C8000, "intel-spi")]
AST_BRIDGE = ("1a03", "1150", 0x060400, None)
AST_VGA = ("1a03", "2000", 0x030000, "ast")
FILLER = ("8086", "2024", 0x088000, None)  # MM/Vt-d configuration registers (root-bus endpoint)

NICS = {
    # pf id, vf id, pf driver, vf driver, first VF devfn, totalvfs
    "x710": ("8086", "1572", "154c", "i40e", "iavf", 0x10, 64, ("8086", "0000")),
    "cx5": ("15b3", "1017", "1018", "mlx5_core", "mlx5_core", 0x02, 63, ("15b3", "0008")),
}
GPUS = {
    "a100": [("10de", "20b5", 0x030200, "nvidia")],
    "rtx3090": [("10de", "2204", 0x030000, "nvidia"), ("10de", "1aef", 0x040300, "snd_hda_intel")],
    "rtx2080ti": [("10de", "1e07", 0x030000, "nvidia"), ("10de", "10f7", 0x040300, "snd_hda_intel"),
                  ("10de", "1ad6", 0x0C0330, "xhci_hcd"), ("10de", "1ad7", 0x0C8000, "nvidia-gpu")],
}
NVMES = [("8086", "0a54", 0x010802, "nvme"), ("8086", "0b60", 0x010802, "nvme"),
         ("144d", "a808", 0x010802, "nvme"), ("144d", "a80a", 0x010802, "nvme")]
SWITCHES = [("10b5", "8747", 4), ("1000", "c030", 12)]  # vendor, device, downstream ports

#: driver -> module ("" = built in: no /sys/module entry with a .ko, no alias)
DRIVER_MODULE = {
    "pcieport": "", "xhci_hcd": "xhci_pci", "intel_pch_thermal": "intel_pch_thermal",
    "mei_me": "mei_me", "ahci": "ahci", "i801_smbus": "i2c_i801", "intel-spi": "spi_intel_pci",
    "ast": "ast", "i40e": "i40e", "iavf": "iavf", "mlx5_core": "mlx5_core", "nvidia": "nvidia",
    "snd_hda_intel": "snd_hda_intel", "nvidia-gpu": "i2c_nvidia_gpu", "nvme": "nvme",
    "vfio-pci": "vfio_pci",
}
#: module -> modalias patterns (as in a Debian kernel's modules.alias)
MODULE_ALIASES = {
    "xhci_pci": ["pci:v*d*sv*sd*bc0Csc03i30*"],
    "intel_pch_thermal": ["pci:v00008086d0000A1B1sv*sd*bc*sc*i*"],
    "mei_me": ["pci:v00008086d0000A1F8sv*sd*bc*sc*i*", "pci:v00008086d0000A1F9sv*sd*bc*sc*i*"],
    "ahci": ["pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d0000A182sv*sd*bc*sc*i*"],
    "i2c_i801": ["pci:v00008086d0000A1A3sv*sd*bc*sc*i*"],
    "spi_intel_pci": ["pci:v00008086d0000A1A4sv*sd*bc*sc*i*"],
    "ast": ["pci:v00001A03d00002000sv*sd*bc03sc*i*"],
    "i40e": ["pci:v00008086d00001572sv*sd*bc*sc*i*", "pci:v00008086d00001583sv*sd*bc*sc*i*"],
    "iavf": ["pci:v00008086d0000154Csv*sd*bc*sc*i*"],
    "mlx5_core": ["pci:v000015B3d00001017sv*sd*bc*sc*i*", "pci:v000015B3d00001018sv*sd*bc*sc*i*"],
    "nvidia": ["pci:v000010DEd*sv*sd*bc03sc00i00*", "pci:v000010DEd*sv*sd*bc03sc02i00*"],
    "nouveau": ["pci:v000010DEd*sv*sd*bc03sc*i*"],
    "snd_hda_intel": ["pci:v000010DEd*sv*sd*bc04sc03i00*"],
    "i2c_nvidia_gpu": ["pci:v000010DEd*sv*sd*bc0Csc80i00*"],
    "nvme": ["pci:v*d*sv*sd*bc01sc08i02*"],
    "vfio_pci": [],
    "vfio": [], "vfio_iommu_type1": [], "kvm": [], "kvm_intel": [],
}


@dataclass
class Fn:
    domain: int
    bus: int
    slot: int
    fn: int
    vendor: str
    device: str
    cls: int
    driver: str | None
    parent: str  # sysfs path (host-absolute) of the directory holding this one
    header: int = 0
    secondary: int = 0
    subordinate: int = 0
    subsys: tuple[str, str] = ("0000", "0000")
    rev: int = 0
    group: int = -1
    numa: int = 0
    physfn: str | None = None
    vfs: list[str] = field(default_factory=list)
    sriov: dict | None = None
    net: list[str] = field(default_factory=list)
    nvme: int | None = None
    boot_vga: bool | None = None
    multifunction: bool = False

    @property
    def addr(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.fn:x}"

    @property
    def path(self) -> str:
        return f"{self.parent}/{self.addr}"


class RootBus:
    def __init__(self, domain: int, bus: int, first: bool) -> None:
        self.domain, self.bus = domain, bus
        self.path = f"/sys/devices/pci{domain:04x}:{bus:02x}"
        self.used: set[int] = set()
        # CPU root ports at slots 0-3 on every stack (Sky Lake-E layout); the
        # first stack also carries the chipset and its PCH root ports
        self.port_slots = [(s, 0, ROOT_PORTS[s % 4]) for s in ((1, 2, 3) if first else (0, 1, 2, 3))]

    def take_port(self) -> tuple[int, int, str] | None:
        while self.port_slots:
            s, f, dev = self.port_slots.pop(0)
            if s not in self.used:
                self.used.add(s)
                return s, f, dev
        return None

    def free_slot(self) -> int | None:
        reserved = {s for s, _, _ in self.port_slots}
        for s in range(4, 0x20):
            if s not in self.used and s not in reserved:
                self.used.add(s)
                return s
        return None


class Topology:
    """Build the functions of a host with exactly *n* PCI functions."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.fns: list[Fn] = []
        self.group_seq = 0
        self.domain = 0
        self.next_bus = 0
        self.roots: list[RootBus] = []
        self.ifindex = 2
        self.nvme_seq = 0
        self._build()

    # ------------------------------------------------------------ allocation
    @property
    def remaining(self) -> int:
        return self.n - len(self.fns)

    def bus(self) -> tuple[int, int]:
        if self.next_bus > 0xFF:
            self.domain += 1
            self.next_bus = 0
        b = self.next_bus
        self.next_bus += 1
        return self.domain, b

    def new_root(self) -> RootBus:
        dom, b = self.bus()
        rb = RootBus(dom, b, first=not self.roots)
        self.roots.append(rb)
        return rb

    def group(self) -> int:
        g = self.group_seq
        self.group_seq += 1
        return g

    def add(self, dom: int, bus: int, slot: int, fn: int, spec: tuple, parent: str, group: int, **kw) -> Fn:
        vendor, device, cls, driver = spec[:4]
        f = Fn(dom, bus, slot, fn, vendor, device, cls, driver, parent, group=group,
               numa=0 if dom == 0 and bus < 0x80 else 1, rev=kw.pop("rev", self.rng.choice((0, 1, 2, 4))), **kw)
        if f.subsys == ("0000", "0000"):
            f.subsys = (vendor, "0000")
        self.fns.append(f)
        return f

    def root_port(self) -> tuple[Fn, int]:
        """A root port on some root bus, with a fresh secondary bus; returns (port, sec bus)."""
        rb = self.roots[-1]
        got = rb.take_port()
        if got is None:
            rb = self.new_root()
            got = rb.take_port()
        slot, fn, dev = got
        dom, sec = self.bus()
        port = self.add(rb.domain, rb.bus, slot, fn, ("8086", dev, 0x060400, "pcieport"), rb.path, self.group(),
                        header=1, secondary=sec, subordinate=sec, rev=4)
        return port, sec

    def _sub(self, port: Fn, last_bus: int) -> None:
        port.subordinate = last_bus

    # ------------------------------------------------------------ components
    def chipset(self) -> None:
        rb = self.new_root()
        p = rb.path
        pieces = [
            [(0x00, 0, HOST_BRIDGE)],
            [(0x08, i, s) for i, s in enumerate(UBOX)],
            [(0x14, 0, XHCI[0]), (0x14, 2, XHCI[1])],
            [(0x16, 0, HECI[0]), (0x16, 1, HECI[1]), (0x16, 4, HECI[2])],
            [(0x17, 0, SATA)],
            "bmc",
            [(0x1F, 0, LPC[0]), (0x1F, 2, LPC[1]), (0x1F, 4, LPC[2]), (0x1F, 5, LPC[3])],
        ]
        for piece in pieces:
            if piece == "bmc":
                if self.remaining < 3:
                    continue
                # PCH root port -> ASPEED AST1150 bridge (no ACS: one group) -> BMC VGA, the boot display
                rb.used.add(0x1C)
                dom, b1 = self.bus()
                _, b2 = self.bus()
                port = self.add(0, 0, 0x1C, 0, PCH_PORT, p, self.group(), header=1, secondary=b1, subordinate=b2, rev=0x09)
                g = self.group()
                br = self.add(0, b1, 0, 0, AST_BRIDGE, port.path, g, header=1, secondary=b2, subordinate=b2, rev=4)
                self.add(0, b2, 0, 0, AST_VGA, br.path, g, boot_vga=True, rev=0x41, subsys=("1a03", "2000"))
                continue
            if len(piece) > self.remaining:
                piece = piece[: self.remaining]
            if not piece:
                return
            g = self.group()
            for slot, fn, spec in piece:
                rb.used.add(slot)
                self.add(0, 0, slot, fn, spec, p, g, subsys=("15d9", "0997") if spec[0] == "8086" else ("0000", "0000"))

    def nic(self, budget: int) -> None:
        kind = self.rng.choice(("x710", "x710", "cx5"))
        vendor, pf_id, vf_id, pf_drv, vf_drv, first_vf, total, subsys = NICS[kind]
        ports = 2 if budget >= 3 else 1
        room = budget - 1 - ports
        per_pf = []
        for _ in range(ports):
            want = self.rng.choice((0, 8, 16, 32, 63, 64, 64))
            want = min(want, total, room)
            per_pf.append(want)
            room -= want
        port, bus = self.root_port()
        pfs = []
        for i in range(ports):
            pf = self.add(port.domain, bus, 0, i, (vendor, pf_id, 0x020000, pf_drv), port.path, self.group(),
                          subsys=subsys, rev=2 if kind == "x710" else 0)
            pf.multifunction = ports > 1
            pf.net = [self.ifname(pf)]
            pfs.append(pf)
        for i, pf in enumerate(pfs):
            numvfs = per_pf[i]
            first = first_vf + i * total
            pf.sriov = {"totalvfs": total, "numvfs": numvfs, "offset": first - i, "stride": 1,
                        "vf_device": vf_id, "drivers_autoprobe": 1}
            for j in range(numvfs):
                devfn = first + j
                r = self.rng.random()
                drv = vf_drv if r < 0.5 else "vfio-pci" if r < 0.85 else None
                vf = self.add(port.domain, bus, devfn >> 3, devfn & 7, (vendor, vf_id, 0x020000, drv), port.path,
                              self.group(), physfn=pf.addr, subsys=subsys, rev=pf.rev)
                if drv == vf_drv:
                    vf.net = [self.ifname(vf)]
                pf.vfs.append(vf.addr)

    def gpu(self, budget: int) -> None:
        fits = [k for k, fns in GPUS.items() if len(fns) + 1 <= budget]
        kind = self.rng.choice(fits)
        port, bus = self.root_port()
        g = self.group()
        passthrough = self.rng.random() < 0.5  # half the GPUs already handed to vfio-pci
        fns = GPUS[kind]
        for i, spec in enumerate(fns):
            drv = "vfio-pci" if passthrough else spec[3]
            f = self.add(port.domain, bus, 0, i, spec[:3] + (drv,), port.path, g, subsys=("10de", "1467"), rev=0xA1)
            f.multifunction = len(fns) > 1
            if spec[2] >> 8 == 0x0300:
                f.boot_vga = False

    def nvme_drive(self, parent: Fn, bus: int) -> None:
        spec = self.rng.choice(NVMES)
        f = self.add(parent.domain, bus, 0, 0, spec, parent.path, self.group(), subsys=(spec[0], "4712"))
        f.nvme = self.nvme_seq
        self.nvme_seq += 1

    def switch(self, budget: int) -> None:
        vendor, device, max_ports = self.rng.choice(SWITCHES)
        ports = min(max_ports, (budget - 2) // 2)
        port, bus = self.root_port()
        dom = port.domain
        up = self.add(dom, bus, 0, 0, (vendor, device, 0x060400, "pcieport"), port.path, self.group(), header=1)
        _, internal = self.bus()
        up.secondary = internal
        for k in range(ports):
            _, dbus = self.bus()
            down = self.add(dom, internal, 8 + k if max_ports <= 8 else k, 0, (vendor, device, 0x060400, "pcieport"),
                            up.path, self.group(), header=1, secondary=dbus, subordinate=dbus)
            self.nvme_drive(down, dbus)
        up.subordinate = port.subordinate = self.next_bus - 1

    def direct_nvme(self) -> None:
        port, bus = self.root_port()
        self.nvme_drive(port, bus)

    def filler(self) -> None:
        rb = self.roots[-1]
        slot = rb.free_slot()
        if slot is None:
            rb = self.new_root()
            slot = rb.free_slot()
        self.add(rb.domain, rb.bus, slot, 0, FILLER, rb.path, self.group())

    def ifname(self, f: Fn) -> str:
        # systemd's predictable names for a PCI path: enP<dom>p<bus>s<slot>f<fn>
        dom = f"P{f.domain}" if f.domain else ""
        return f"en{dom}p{f.bus}s{f.slot}f{f.fn}"

    def _build(self) -> None:
        self.chipset()
        while self.remaining > 0:
            r = self.remaining
            if r == 1:
                self.filler()
                continue
            if self.next_bus > 0xE0:
                # bus numbers run out: the next PCI segment (domain), as on large hosts
                self.domain += 1
                self.next_bus = 0
                self.new_root()
            elif self.roots[-1].bus + 0x40 <= self.next_bus:
                # a new stack (root bus) every 64 buses or so, as on multi-socket hosts
                self.new_root()
            pick = self.rng.random()
            if pick < 0.40 and r >= 3:
                self.nic(r)
            elif pick < 0.55 and r >= 2:
                self.gpu(r)
            elif pick < 0.80 and r >= 4:
                self.switch(r)
            else:
                self.direct_nvme()
        # function 0 of a multi-function slot sets bit 7 of the header type
        slots: dict[tuple, list[Fn]] = {}
        for f in self.fns:
            if f.physfn is None:
                slots.setdefault((f.domain, f.bus, f.slot), []).append(f)
        for fs in slots.values():
            if len(fs) > 1:
                for f in fs:
                    f.multifunction = True
        assert len(self.fns) == self.n, (len(self.fns), self.n)


# ----------------------------------------------------------------------------- writing
def _h(text: str) -> int:
    """A stable hash (str hash() is salted per process; the tree must be reproducible)."""
    return zlib.crc32(text.encode())


def _config(f: Fn) -> bytes:
    c = bytearray(256)
    c[0:2] = int(f.vendor, 16).to_bytes(2, "little")
    c[2:4] = int(f.device, 16).to_bytes(2, "little")
    c[4:6] = (0x0406 if f.driver else 0x0400).to_bytes(2, "little")  # memory + bus master, INTx off
    c[6:8] = (0x0010).to_bytes(2, "little")  # capabilities list
    c[8] = f.rev
    c[9] = f.cls & 0xFF
    c[10] = (f.cls >> 8) & 0xFF
    c[11] = (f.cls >> 16) & 0xFF
    c[12] = 0x10  # cache line size
    c[14] = (f.header & 0x7F) | (0x80 if f.multifunction and f.fn == 0 else 0)
    if f.header == 1:
        c[0x18], c[0x19], c[0x1A] = f.bus, f.secondary, f.subordinate
        c[0x34] = 0x40
    else:
        c[0x10:0x14] = (0xC0000000 | (_h(f.addr) & 0x0FF00000) | 0x0C).to_bytes(4, "little")  # 64-bit prefetchable BAR0
        c[0x2C:0x2E] = int(f.subsys[0], 16).to_bytes(2, "little")
        c[0x2E:0x30] = int(f.subsys[1], 16).to_bytes(2, "little")
        c[0x34] = 0x40
        c[0x3D] = 1  # INTA
    # a PCI Express capability (ID 0x10) at 0x40, end of list
    c[0x40], c[0x41] = 0x10, 0x00
    c[0x42] = 0x02
    c[0x43] = (0x4 if f.header == 1 and f.parent.count("/") == 3 else 0x0) << 4  # root port / endpoint
    return bytes(c)


def _resource(f: Fn) -> str:
    lines = 17 if f.header == 1 else 13
    out = []
    for i in range(lines):
        if i == 0 and f.header == 0:
            base = 0x38000000000 + (_h(f.addr) % 0x100000) * 0x100000
            out.append(f"0x{base:016x} 0x{base + 0xFFFFF:016x} 0x{0x14220C:016x}")
        else:
            out.append(f"0x{0:016x} 0x{0:016x} 0x{0:016x}")
    return "\n".join(out) + "\n"


class Writer:
    def __init__(self, root: str, topo: Topology, release: str, kmod_index: bool = True) -> None:
        self.root = root
        self.build_kmod_index = kmod_index
        self.topo = topo
        self.release = release
        self.drivers: dict[str, list[Fn]] = {}

    def p(self, abspath: str) -> str:
        return self.root + abspath

    def mkdir(self, abspath: str) -> None:
        os.makedirs(self.p(abspath), exist_ok=True)

    def file(self, abspath: str, text: str | bytes) -> None:
        mode = "wb" if isinstance(text, bytes) else "w"
        with open(self.p(abspath), mode) as fh:
            fh.write(text)

    def link(self, abspath: str, target_abs: str) -> None:
        """A relative symlink, as sysfs makes them."""
        rel = os.path.relpath(target_abs, os.path.dirname(abspath))
        os.symlink(rel, self.p(abspath))

    def write(self) -> dict:
        for d in ("/sys/bus/pci/devices", "/sys/bus/pci/drivers", "/sys/bus/pci/slots", "/sys/kernel/iommu_groups",
                  "/sys/class/net", "/sys/class/nvme", "/sys/class/block", "/sys/module", "/proc/sys/kernel",
                  "/dev/vfio", f"/lib/modules/{self.release}"):
            self.mkdir(d)
        for name in ("drivers_probe", "rescan", "resource_alignment", "uevent", "drivers_autoprobe"):
            self.file(f"/sys/bus/pci/{name}", "1\n" if name == "drivers_autoprobe" else "")
        self.file("/proc/sys/kernel/osrelease", self.release + "\n")
        self.file("/proc/cmdline", f"BOOT_IMAGE=/vmlinuz-{self.release} root=/dev/sda1 ro intel_iommu=on iommu=pt\n")
        self.file("/dev/vfio/vfio", "")
        for rb in self.topo.roots:
            self.mkdir(rb.path)
            self.file(rb.path + "/uevent", "")
            self.mkdir(rb.path + "/power")
        ncpu_mask = "00000000,00000000,0fffffff,f0000000,0fffffff"
        groups: dict[int, list[Fn]] = {}
        for f in self.topo.fns:
            groups.setdefault(f.group, []).append(f)
            self.device(f, ncpu_mask)
        for g, members in groups.items():
            gp = f"/sys/kernel/iommu_groups/{g}"
            self.mkdir(gp + "/devices")
            self.file(gp + "/type", "DMA-FQ\n")
            self.file(gp + "/reserved_regions", "0x00000000fee00000 0x00000000feefffff msi\n")
            for f in members:
                self.link(f"{gp}/devices/{f.addr}", f.path)
            if all(m.driver in ("vfio-pci", None) or m.header == 1 for m in members):
                if any(m.driver == "vfio-pci" for m in members):
                    self.file(f"/dev/vfio/{g}", "")
        self.drivers_and_modules()
        kmod = self.modules_alias()
        return {"groups": len(groups), "kmod_index": kmod}

    def device(self, f: Fn, mask: str) -> None:
        d = f.path
        self.mkdir(d)
        w = self.file
        ue = []
        if f.driver:
            ue.append(f"DRIVER={f.driver}")
        ue += [f"PCI_CLASS={f.cls:X}", f"PCI_ID={f.vendor.upper()}:{f.device.upper()}",
               f"PCI_SUBSYS_ID={f.subsys[0].upper()}:{f.subsys[1].upper()}", f"PCI_SLOT_NAME={f.addr}"]
        modalias = (f"pci:v0000{f.vendor.upper()}d0000{f.device.upper()}sv0000{f.subsys[0].upper()}"
                    f"sd0000{f.subsys[1].upper()}bc{f.cls >> 16:02X}sc{(f.cls >> 8) & 0xFF:02X}i{f.cls & 0xFF:02X}")
        ue.append(f"MODALIAS={modalias}")
        w(d + "/uevent", "\n".join(ue) + "\n")
        w(d + "/modalias", modalias + "\n")
        w(d + "/vendor", f"0x{f.vendor}\n")
        w(d + "/device", f"0x{f.device}\n")
        w(d + "/subsystem_vendor", f"0x{f.subsys[0]}\n")
        w(d + "/subsystem_device", f"0x{f.subsys[1]}\n")
        w(d + "/class", f"0x{f.cls:06x}\n")
        w(d + "/revision", f"0x{f.rev:02x}\n")
        w(d + "/driver_override", "vfio-pci\n" if f.driver == "vfio-pci" and f.physfn else "(null)\n")
        w(d + "/numa_node", f"{f.numa}\n")
        w(d + "/enable", "1\n" if f.driver else "0\n")
        w(d + "/irq", f"{16 + (_h(f.addr) % 200) if f.header == 0 else 0}\n")
        w(d + "/resource", _resource(f))
        w(d + "/local_cpus", mask + "\n")
        w(d + "/local_cpulist", ("0-27,56-83" if f.numa == 0 else "28-55,84-111") + "\n")
        w(d + "/config", _config(f))
        w(d + "/dma_mask_bits", "64\n")
        w(d + "/consistent_dma_mask_bits", "64\n")
        w(d + "/d3cold_allowed", "1\n")
        w(d + "/msi_bus", "1\n")
        w(d + "/broken_parity_status", "0\n")
        w(d + "/power_state", "D0\n")
        w(d + "/current_link_speed", "8.0 GT/s PCIe\n")
        w(d + "/current_link_width", "8\n")
        w(d + "/max_link_speed", "8.0 GT/s PCIe\n")
        w(d + "/max_link_width", "8\n")
        w(d + "/ari_enabled", "0\n")
        for name in ("remove", "rescan"):
            w(d + "/" + name, "")
        if f.header == 0:
            w(d + "/reset_method", "flr bus\n")
            w(d + "/reset", "")
        else:
            w(d + "/secondary_bus_number", f"{f.secondary}\n")
            w(d + "/subordinate_bus_number", f"{f.subordinate}\n")
            pb = f"{d}/pci_bus/{f.domain:04x}:{f.secondary:02x}"
            self.mkdir(pb)
            w(pb + "/cpuaffinity", mask + "\n")
            w(pb + "/cpulistaffinity", "0-27,56-83\n")
        if f.boot_vga is not None:
            w(d + "/boot_vga", "1\n" if f.boot_vga else "0\n")
        self.mkdir(d + "/power")
        w(d + "/power/control", "on\n")
        w(d + "/power/runtime_status", "active\n")
        if f.driver and f.header == 0:
            self.mkdir(d + "/msi_irqs")
            base = 100 + _h(f.addr) % 3000
            for i in range(4):
                w(f"{d}/msi_irqs/{base + i}", "msix\n")
        self.link(d + "/subsystem", "/sys/bus/pci")
        self.link(f"/sys/bus/pci/devices/{f.addr}", d)
        self.link(d + "/iommu_group", f"/sys/kernel/iommu_groups/{f.group}")
        if f.driver:
            self.link(d + "/driver", f"/sys/bus/pci/drivers/{f.driver}")
            self.drivers.setdefault(f.driver, []).append(f)
        if f.sriov is not None:
            s = f.sriov
            w(d + "/sriov_totalvfs", f"{s['totalvfs']}\n")
            w(d + "/sriov_numvfs", f"{s['numvfs']}\n")
            w(d + "/sriov_offset", f"{s['offset']}\n")
            w(d + "/sriov_stride", f"{s['stride']}\n")
            w(d + "/sriov_vf_device", f"{s['vf_device']}\n")
            w(d + "/sriov_drivers_autoprobe", f"{s['drivers_autoprobe']}\n")
            for j, vf in enumerate(f.vfs):
                self.link(f"{d}/virtfn{j}", f"{f.parent}/{vf}")
        if f.physfn:
            self.link(d + "/physfn", f"{f.parent}/{f.physfn}")
        for ifname in f.net:
            nd = f"{d}/net/{ifname}"
            self.mkdir(nd)
            self.topo.ifindex += 1
            h = _h(f.addr)
            w(nd + "/address", "02:00:" + ":".join(f"{(h >> (8 * i)) & 0xFF:02x}" for i in range(4)) + "\n")
            w(nd + "/ifindex", f"{self.topo.ifindex}\n")
            w(nd + "/operstate", "up\n" if not f.physfn else "down\n")
            w(nd + "/mtu", "1500\n")
            w(nd + "/type", "1\n")
            self.link(nd + "/device", d)
            self.link(f"/sys/class/net/{ifname}", nd)
        if f.nvme is not None:
            n = f.nvme
            nd = f"{d}/nvme/nvme{n}"
            self.mkdir(f"{nd}/nvme{n}n1")
            w(nd + "/model", "SYNTHETIC NVME\n")
            w(nd + "/serial", f"SYN{n:08d}\n")
            w(nd + "/dev", f"240:{n}\n")
            self.link(nd + "/device", d)
            w(f"{nd}/nvme{n}n1/size", "7501476528\n")
            w(f"{nd}/nvme{n}n1/dev", f"259:{n}\n")
            self.link(f"/sys/class/nvme/nvme{n}", nd)
            self.link(f"/sys/class/block/nvme{n}n1", f"{nd}/nvme{n}n1")

    def drivers_and_modules(self) -> None:
        modules = set(MODULE_ALIASES) | {m for m in DRIVER_MODULE.values() if m}
        for drv in sorted(set(self.drivers) | {"vfio-pci", "pci-stub", "pcieport"}):
            dp = f"/sys/bus/pci/drivers/{drv}"
            self.mkdir(dp)
            for name in ("bind", "unbind", "new_id", "remove_id", "uevent"):
                self.file(f"{dp}/{name}", "")
            mod = DRIVER_MODULE.get(drv, drv.replace("-", "_"))
            if mod:
                self.mkdir(f"/sys/module/{mod}/drivers")
                self.link(f"{dp}/module", f"/sys/module/{mod}")
                self.link(f"/sys/module/{mod}/drivers/pci:{drv}", dp)
            for f in self.drivers.get(drv, []):
                self.link(f"{dp}/{f.addr}", f.path)
        for mod in sorted(modules):
            self.mkdir(f"/sys/module/{mod}")
            self.file(f"/sys/module/{mod}/refcnt", "0\n")
            self.file(f"/sys/module/{mod}/initstate", "live\n")

    def modules_alias(self) -> bool:
        """modules.alias (text) always; the .bin indexes when gcc and depmod can build them."""
        moddir = f"/lib/modules/{self.release}"
        lines = ["# Aliases extracted from modules themselves."]
        for mod in sorted(MODULE_ALIASES):
            for pat in MODULE_ALIASES[mod]:
                lines.append(f"alias {pat} {mod}")
        self.file(moddir + "/modules.alias", "\n".join(lines) + "\n")
        if not self.build_kmod_index:
            return False
        gcc, depmod = shutil.which("gcc"), shutil.which("depmod") or ("/usr/sbin/depmod" if os.path.exists("/usr/sbin/depmod") else None)
        if not (gcc and depmod):
            return False
        kdir = self.p(moddir + "/kernel")
        os.makedirs(kdir, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for mod, pats in sorted(MODULE_ALIASES.items()):
                entries = [f"name={mod}", "license=GPL", "depends="] + [f"alias={p}" for p in pats]
                src = "".join(
                    f'__attribute__((section(".modinfo"), used, aligned(1))) static const char m{i}[] = "{e}";\n'
                    for i, e in enumerate(entries)
                )
                c = os.path.join(tmp, mod + ".c")
                with open(c, "w") as fh:
                    fh.write(src)
                r = subprocess.run([gcc, "-c", c, "-o", os.path.join(kdir, mod + ".ko")], capture_output=True)
                if r.returncode:
                    return False
        with open(os.path.join(self.p(moddir), "modules.order"), "w") as fh:
            fh.write("".join(f"kernel/{m}.ko\n" for m in sorted(MODULE_ALIASES)))
        for name in ("modules.builtin", "modules.builtin.modinfo"):
            open(os.path.join(self.p(moddir), name), "w").close()
        r = subprocess.run([depmod, "-b", self.root, self.release], capture_output=True, text=True)
        return r.returncode == 0 and os.path.exists(self.p(moddir + "/modules.alias.bin"))


def generate(out: str, n: int, seed: int = 1, release: str | None = None, kmod_index: bool = True) -> dict:
    """Write a host tree with *n* PCI functions under *out* (replaced); return its manifest.

    *kmod_index* False skips building libkmod's .bin indexes (gcc + depmod), which only
    lspci's "Kernel modules:" line needs; the text modules.alias is always written.
    """
    release = release or os.uname().release
    topo = Topology(n, seed)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    root = os.path.abspath(out)
    info = Writer(root, topo, release, kmod_index).write()
    fns = topo.fns
    manifest = {
        "format": FORMAT_VERSION,
        "n": n,
        "seed": seed,
        "release": release,
        "groups": info["groups"],
        "kmod_index": info["kmod_index"],
        "net_class": sum(1 for f in fns if f.cls >> 16 == 0x02),
        "nvme": sum(1 for f in fns if f.cls >> 8 == 0x0108),
        "bridges": sum(1 for f in fns if f.header == 1),
        "vfs": sum(1 for f in fns if f.physfn),
        "pfs": sum(1 for f in fns if f.sriov is not None),
        "gpus": sum(1 for f in fns if f.vendor == "10de" and f.cls >> 16 == 0x03),
        "domains": len({f.domain for f in fns}),
        "root_buses": len(topo.roots),
        "first": fns[0].addr,
        "last": max(f.addr for f in fns),
        "sample_vf": next((f.addr for f in reversed(fns) if f.physfn), None),
        "sample_nvme": next((f.addr for f in reversed(fns) if f.nvme is not None), None),
        "vfio_bound": sum(1 for f in fns if f.driver == "vfio-pci"),
        "unbound": sum(1 for f in fns if f.driver is None),
    }
    with open(os.path.join(root, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="directory to (re)create")
    ap.add_argument("-n", type=int, default=1000, help="number of PCI functions (default 1000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--release", help="kernel release for /lib/modules (default: this kernel's)")
    a = ap.parse_args()
    print(json.dumps(generate(a.out, a.n, a.seed, a.release), indent=2))


if __name__ == "__main__":
    main()
