"""Build fake host trees under tmp_path, and a small simulated kernel for writes.

The tree has the shape the kernel gives: /sys/devices/pci0000:00/<addr> with
attribute files, /sys/bus/pci/devices/<addr> links, driver and iommu_group
links, /sys/kernel/iommu_groups/N/devices, /sys/bus/pci/drivers/<name>.
``FakeKernel`` is installed as ``Host.write_hook`` and reacts to writes the
way the kernel does (unbind, bind, driver_override + drivers_probe, new_id,
remove_id, sriov_numvfs), so engine tests run without mocks of ``open``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from vfioctl.host.core import Host


@dataclass
class FakeDev:
    address: str
    vendor: str
    device: str
    cls: int = 0x020000
    driver: str | None = None
    group: int | None = None
    header_type: int = 0
    subsystem: tuple[str, str] = ("8086", "0000")
    boot_vga: bool | None = None
    net: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)
    totalvfs: int | None = None
    vf_device: str | None = None
    physfn: str | None = None
    #: the drivers whose id tables match this device, best first
    matches: list[str] = field(default_factory=list)


class FakeHostBuilder:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.devs: dict[str, FakeDev] = {}
        #: secondary bus number -> the bridge's address
        self.bridges: dict[int, str] = {}
        for d in ("sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/kernel/iommu_groups",
                  "sys/devices/pci0000:00", "sys/class/net", "sys/class/block", "proc/sys/kernel",
                  "dev/vfio", "etc", "boot", "lib/modules/6.1.0-test-amd64"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "proc/sys/kernel/osrelease").write_text("6.1.0-test-amd64\n")
        (self.root / "sys/bus/pci/drivers_probe").write_text("")
        (self.root / "sys/bus/pci/rescan").write_text("")

    # ---------------------------------------------------------------- building
    def driver(self, name: str) -> Path:
        d = self.root / "sys/bus/pci/drivers" / name
        if not d.exists():
            d.mkdir(parents=True)
            for f in ("bind", "unbind", "new_id", "remove_id"):
                (d / f).write_text("")
        return d

    def add(self, dev: FakeDev) -> FakeDev:
        self.devs[dev.address] = dev
        parent = self.root / "sys/devices/pci0000:00"
        bus = int(dev.address.split(":")[1], 16)
        if bus and bus in self.bridges:  # nested under its bridge, as sysfs has it
            parent = Path(os.path.realpath(self.root / "sys/bus/pci/devices" / self.bridges[bus]))
        if dev.physfn:
            parent = Path(os.path.realpath(self.root / "sys/bus/pci/devices" / dev.physfn)).parent
        d = parent / dev.address
        d.mkdir(parents=True, exist_ok=True)
        w = lambda n, v: (d / n).write_text(v + "\n")  # noqa: E731
        w("vendor", f"0x{dev.vendor}")
        w("device", f"0x{dev.device}")
        w("class", f"0x{dev.cls:06x}")
        w("subsystem_vendor", f"0x{dev.subsystem[0]}")
        w("subsystem_device", f"0x{dev.subsystem[1]}")
        w("revision", "0x00")
        w("numa_node", "-1")
        w("driver_override", "(null)")
        w("reset_method", "flr bus")
        w("modalias", f"pci:v0000{dev.vendor.upper()}d0000{dev.device.upper()}sv0000{dev.subsystem[0].upper()}"
                      f"sd0000{dev.subsystem[1].upper()}bc{dev.cls >> 16:02X}sc{(dev.cls >> 8) & 0xff:02X}i{dev.cls & 0xff:02X}")
        cfg = bytearray(64)
        cfg[0:2] = int(dev.vendor, 16).to_bytes(2, "little")
        cfg[2:4] = int(dev.device, 16).to_bytes(2, "little")
        cfg[14] = dev.header_type
        if dev.header_type & 0x7F == 1:  # a bridge: primary, secondary and subordinate bus numbers
            sec = max(self.bridges, default=0) + 1
            self.bridges[sec] = dev.address
            cfg[0x18], cfg[0x19], cfg[0x1A] = bus, sec, sec
        (d / "config").write_bytes(bytes(cfg))
        if dev.boot_vga is not None:
            w("boot_vga", "1" if dev.boot_vga else "0")
        if dev.totalvfs is not None:
            w("sriov_totalvfs", str(dev.totalvfs))
            w("sriov_numvfs", "0")
            w("sriov_drivers_autoprobe", "1")
            w("sriov_offset", "1")
            w("sriov_stride", "1")
            w("sriov_vf_device", dev.vf_device or dev.device)
        link = self.root / "sys/bus/pci/devices" / dev.address
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(d, link.parent))
        if dev.physfn:
            pf = Path(os.path.realpath(self.root / "sys/bus/pci/devices" / dev.physfn))
            (d / "physfn").symlink_to(os.path.relpath(pf, d))
        if dev.group is not None:
            g = self.root / "sys/kernel/iommu_groups" / str(dev.group) / "devices"
            g.mkdir(parents=True, exist_ok=True)
            (g / dev.address).symlink_to(os.path.relpath(d, g))
            (d / "iommu_group").symlink_to(os.path.relpath(g.parent, d))
        for n in dev.net:
            nd = d / "net" / n
            nd.mkdir(parents=True, exist_ok=True)
            (nd / "device").symlink_to(os.path.relpath(d, nd))
            (nd / "flags").write_text("0x1002\n")  # down; the kernel always has the file
            (self.root / "sys/class/net" / n).symlink_to(os.path.relpath(nd, self.root / "sys/class/net"))
        for b in dev.block:
            bd = d / "nvme" / "nvme0" / b
            bd.mkdir(parents=True, exist_ok=True)
            (self.root / "sys/class/block" / b).symlink_to(os.path.relpath(bd, self.root / "sys/class/block"))
        self._write_uevent(dev.address)
        if dev.driver:
            self.bind(dev.address, dev.driver)
        return dev

    def _devdir(self, address: str) -> Path:
        return Path(os.path.realpath(self.root / "sys/bus/pci/devices" / address))

    def _write_uevent(self, address: str) -> None:
        dev = self.devs[address]
        d = self._devdir(address)
        drv = os.readlink(d / "driver").rsplit("/", 1)[-1] if (d / "driver").is_symlink() else None
        lines = []
        if drv:
            lines.append(f"DRIVER={drv}")
        lines += [
            f"PCI_CLASS={dev.cls:X}",
            f"PCI_ID={dev.vendor.upper()}:{dev.device.upper()}",
            f"PCI_SUBSYS_ID={dev.subsystem[0].upper()}:{dev.subsystem[1].upper()}",
            f"PCI_SLOT_NAME={address}",
            f"MODALIAS=pci:v0000{dev.vendor.upper()}d0000{dev.device.upper()}sv0000{dev.subsystem[0].upper()}"
            f"sd0000{dev.subsystem[1].upper()}bc{dev.cls >> 16:02X}sc{(dev.cls >> 8) & 0xff:02X}i{dev.cls & 0xff:02X}",
        ]
        (d / "uevent").write_text("\n".join(lines) + "\n")

    def bind(self, address: str, driver: str) -> None:
        d = self._devdir(address)
        drv = self.driver(driver)
        if (d / "driver").is_symlink():
            raise OSError(16, "Device or resource busy")
        (d / "driver").symlink_to(os.path.relpath(drv, d))
        (drv / address).symlink_to(os.path.relpath(d, drv))
        if driver.startswith("vfio") and self.devs[address].group is not None:
            (self.root / "dev/vfio" / str(self.devs[address].group)).write_text("")
        self._write_uevent(address)

    def unbind(self, address: str) -> None:
        d = self._devdir(address)
        if not (d / "driver").is_symlink():
            raise OSError(19, "No such device")
        drv = os.readlink(d / "driver").rsplit("/", 1)[-1]
        (d / "driver").unlink()
        (self.root / "sys/bus/pci/drivers" / drv / address).unlink()
        dev = self.devs[address]
        if drv.startswith("vfio") and dev.group is not None:
            still = any(
                o.group == dev.group and self.current_driver(o.address, ) and self.current_driver(o.address).startswith("vfio")
                for o in self.devs.values() if o.address != address
            )
            if not still:
                (self.root / "dev/vfio" / str(dev.group)).unlink(missing_ok=True)
        self._write_uevent(address)

    def current_driver(self, address: str) -> str | None:
        d = self._devdir(address)
        return os.readlink(d / "driver").rsplit("/", 1)[-1] if (d / "driver").is_symlink() else None

    def host(self, kernel: bool = True) -> Host:
        h = Host(self.root)
        if kernel:
            h.write_hook = FakeKernel(self)
        return h


class FakeKernel:
    """Reacts to sysfs writes like the PCI core does (enough for the engine)."""

    def __init__(self, builder: FakeHostBuilder) -> None:
        self.b = builder
        #: dynamic ids added per driver via new_id
        self.dynids: dict[str, set[tuple[str, str]]] = {}
        #: set to a callable(path, value) raising OSError to inject failures
        self.fail: object = None
        self.loaded: set[str] = {p.name for p in (builder.root / "sys/bus/pci/drivers").iterdir()}

    def _probe(self, address: str) -> None:
        b = self.b
        if b.current_driver(address):
            return
        d = b._devdir(address)
        override = (d / "driver_override").read_text().strip() if (d / "driver_override").exists() else ""
        dev = b.devs[address]
        if override and override != "(null)":
            if (b.root / "sys/bus/pci/drivers" / override).is_dir():
                b.bind(address, override)
            return
        for drv in dev.matches:
            if (b.root / "sys/bus/pci/drivers" / drv).is_dir():
                b.bind(address, drv)
                return
        for drv, ids in self.dynids.items():
            if (dev.vendor, dev.device) in ids:
                b.bind(address, drv)
                return

    def __call__(self, host: Host, path: str, value: str) -> None:
        b = self.b
        if callable(self.fail):
            self.fail(path, value)  # type: ignore[operator]
        value = value.strip()
        parts = path.strip("/").split("/")
        if path == "/sys/bus/pci/drivers_probe":
            self._probe(value)
        elif parts[:4] == ["sys", "bus", "pci", "drivers"] and len(parts) == 6:
            drv, op = parts[4], parts[5]
            if op == "unbind":
                if b.current_driver(value) != drv:
                    raise OSError(19, "No such device")
                b.unbind(value)
                self._fb_gone(value)
            elif op == "bind":
                if b.current_driver(value):
                    raise OSError(16, "Device or resource busy")
                b.bind(value, drv)
                self._fb_back(value, drv)
            elif op == "new_id":
                v, dv = value.split()[:2]
                self.dynids.setdefault(drv, set()).add((v.lower(), dv.lower()))
                for a, dev in b.devs.items():
                    if (dev.vendor, dev.device) == (v.lower(), dv.lower()) and not b.current_driver(a):
                        ovf = b._devdir(a) / "driver_override"
                        ov = ovf.read_text().strip() if ovf.exists() else ""
                        if ov in ("(null)", "", drv):
                            b.bind(a, drv)
            elif op == "remove_id":
                v, dv = value.split()[:2]
                self.dynids.get(drv, set()).discard((v.lower(), dv.lower()))
        elif parts[:4] == ["sys", "bus", "pci", "devices"] and len(parts) == 6:
            address, attr = parts[4], parts[5]
            d = b._devdir(address)
            if attr == "driver_override":
                (d / attr).write_text((value or "(null)") + "\n")
            elif attr == "sriov_numvfs":
                self._numvfs(address, int(value))
            elif attr == "sriov_drivers_autoprobe":
                (d / attr).write_text(value + "\n")
            elif attr in ("remove", "reset", "rom"):
                pass
            else:
                (d / attr).write_text(value + "\n")
        elif parts[:3] == ["sys", "class", "vtconsole"] and len(parts) == 5 and parts[4] == "bind":
            self._vtcon(parts[3], value)
        else:
            target = Path(host.path(path))
            target.write_text(value + "\n")

    # ------------------------------------------------------------ virtual consoles
    # What the lab kernel (6.1) does, measured: "0" to fbcon's vtconN/bind hands the consoles to
    # the dummy console; "1" to it then changes nothing; "0" to the dummy hands them back to
    # fbcon; fbcon's entry leaves with the GPU's driver and returns, bound, when it binds again.
    def _vtcons(self) -> dict[str, Path]:
        d = self.b.root / "sys/class/vtconsole"
        return {v.name: v for v in d.iterdir()} if d.is_dir() else {}

    def _vtcon(self, name: str, value: str) -> None:
        vts = self._vtcons()
        me = vts[name]
        fb = "frame buffer" in (me / "name").read_text()
        bound = (me / "bind").read_text().strip() == "1"
        if value == "0" and bound:
            for n, v in vts.items():
                (v / "bind").write_text(("0" if n == name else "1") + "\n")
        elif value == "1" and not bound and not fb:
            for n, v in vts.items():
                (v / "bind").write_text(("1" if n == name else "0") + "\n")

    def _is_gpu(self, address: str) -> bool:
        return (self.b._devdir(address) / "graphics").is_dir()

    def _fb_gone(self, address: str) -> None:
        if not self._is_gpu(address):
            return
        import shutil

        for v in self._vtcons().values():
            if "frame buffer" in (v / "name").read_text():
                shutil.rmtree(v)
            else:
                (v / "bind").write_text("1\n")

    def _fb_back(self, address: str, drv: str) -> None:
        if not self._is_gpu(address) or drv == "vfio-pci" or not self._vtcons():
            return
        have = self._vtcons()
        for v in have.values():
            (v / "bind").write_text("0\n")
        if not any("frame buffer" in (v / "name").read_text() for v in have.values()):
            v = self.b.root / "sys/class/vtconsole/vtcon0"
            v.mkdir()
            (v / "name").write_text("(M) frame buffer device\n")
        (self.b.root / "sys/class/vtconsole/vtcon0/bind").write_text("1\n")

    def _numvfs(self, pf: str, n: int) -> None:
        b = self.b
        d = b._devdir(pf)
        cur = int((d / "sriov_numvfs").read_text())
        total = int((d / "sriov_totalvfs").read_text())
        if n > total:
            raise OSError(34, "Numerical result out of range")
        if not b.current_driver(pf):
            raise OSError(2, "No such file or directory")
        if cur and n:
            raise OSError(16, "Device or resource busy")
        pfdev = b.devs[pf]
        if n == 0:
            for i in range(cur):
                link = d / f"virtfn{i}"
                vf = os.readlink(link).rsplit("/", 1)[-1]
                if b.current_driver(vf):
                    b.unbind(vf)
                link.unlink()
                vfdir = b._devdir(vf)
                (b.root / "sys/bus/pci/devices" / vf).unlink()
                g = b.devs[vf].group
                if g is not None:
                    (b.root / "sys/kernel/iommu_groups" / str(g) / "devices" / vf).unlink()
                import shutil

                shutil.rmtree(vfdir)
                del b.devs[vf]
        else:
            autoprobe = (d / "sriov_drivers_autoprobe").read_text().strip() == "1"
            base = int(pf.rsplit(".", 1)[0].split(":")[-1], 16)
            used = {int(x) for x in os.listdir(b.root / "sys/kernel/iommu_groups")}
            for i in range(n):
                addr = f"{pf.rsplit(':', 1)[0]}:{base:02x}.{i + 1}"
                grp = max(used) + 1
                used.add(grp)
                b.add(FakeDev(addr, pfdev.vendor, pfdev.vf_device or pfdev.device, cls=pfdev.cls,
                              group=grp, physfn=pf, matches=list(pfdev.matches)))
                (d / f"virtfn{i}").symlink_to(os.path.relpath(b._devdir(addr), d))
                if autoprobe:
                    self._probe(addr)
        (d / "sriov_numvfs").write_text(f"{n}\n")


def standard_host(tmp_path: Path) -> FakeHostBuilder:
    """A small host like the VM lab's: e1000e twins, a bridge group, nvme with SR-IOV, VGA."""
    b = FakeHostBuilder(tmp_path)
    for drv in ("e1000e", "e1000", "nvme", "bochs-drm", "lpc_ich", "ahci", "i801_smbus"):
        b.driver(drv)
    b.add(FakeDev("0000:00:00.0", "8086", "29c0", cls=0x060000, group=0))
    b.add(FakeDev("0000:00:01.0", "1234", "1111", cls=0x030000, group=1, boot_vga=True, driver="bochs-drm", matches=["bochs-drm"]))
    b.add(FakeDev("0000:00:02.0", "8086", "10d3", group=2, driver="e1000e", net=["eth0"], matches=["e1000e"]))
    b.add(FakeDev("0000:00:04.0", "1b36", "0010", cls=0x010802, group=4, driver="nvme", block=["nvme0n1"],
                  totalvfs=4, matches=["nvme"]))
    b.add(FakeDev("0000:00:05.0", "1b36", "000e", cls=0x060400, group=5, header_type=1))
    b.add(FakeDev("0000:01:01.0", "8086", "100e", group=5, driver="e1000", net=["eth2"], matches=["e1000"]))
    b.add(FakeDev("0000:01:02.0", "8086", "100e", group=5, driver="e1000", net=["eth3"], matches=["e1000"]))
    b.add(FakeDev("0000:00:07.0", "8086", "10d3", group=7, driver="e1000e", net=["eth1"], matches=["e1000e"]))
    b.add(FakeDev("0000:00:1f.0", "8086", "2918", cls=0x060100, group=9, driver="lpc_ich", matches=["lpc_ich"]))
    b.add(FakeDev("0000:00:1f.2", "8086", "2922", cls=0x010601, group=9, driver="ahci", matches=["ahci"]))
    b.add(FakeDev("0000:00:1f.3", "8086", "2930", cls=0x0c0500, group=9, driver="i801_smbus", matches=["i801_smbus"]))
    return b
