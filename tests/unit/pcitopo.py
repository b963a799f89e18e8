"""Fake sysfs PCI trees with real config space blobs, for the isolation and topology tests.

Functions are nested under their parents' folders the way the kernel lays them out
(/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0), each with a ``config`` file
built by :func:`config`: the standard header, a PCI Express capability at 0x40 and,
from 0x100, an ACS extended capability.  ``group=`` is the group the *kernel* is
expected to form (the tests write it by hand from the rules), so a test can check
the prediction against it.
"""

from __future__ import annotations

import os
from pathlib import Path

from vfioctl.host.core import Host
from vfioctl.pci.config import (
    PCI_ACS_CR,
    PCI_ACS_DT,
    PCI_ACS_RR,
    PCI_ACS_SV,
    PCI_ACS_TB,
    PCI_ACS_UF,
)

# PCIe port types
EP, LEG, RP, UP, DP, PCI_BRIDGE, PCIE_BRIDGE, RCIEP, RCEC = 0, 1, 4, 5, 6, 7, 8, 9, 10

#: what QEMU's pcie-root-port advertises and the kernel enables (pci_std_enable_acs)
ACS_CAP_FULL = PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF | PCI_ACS_DT
ACS_ON = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF
FULL_ACS = (ACS_CAP_FULL, ACS_ON)
DISABLED_ACS = (ACS_CAP_FULL, 0)


def config(vendor: int, device: int, *, cls: int = 0x020000, header: int = 0, multifunction: bool = False,
           pcie: int | None = None, slot: bool = False, acs: tuple[int, int] | None = None,
           size: int = 4096, primary: int = 0, secondary: int = 0, subordinate: int = 0,
           subsystem: tuple[int, int] = (0, 0), ext_header_zero: bool = True) -> bytes:
    """A config space blob.  *pcie*: port type (None = conventional PCI); *acs*: (cap, ctrl)."""
    b = bytearray(4096)
    b[0:2] = vendor.to_bytes(2, "little")
    b[2:4] = device.to_bytes(2, "little")
    b[8] = 0x01
    b[9:12] = cls.to_bytes(3, "little")
    b[0x0E] = header | (0x80 if multifunction else 0)
    if header == 1:
        b[0x18], b[0x19], b[0x1A] = primary, secondary, subordinate
    else:
        b[0x2C:0x2E] = subsystem[0].to_bytes(2, "little")
        b[0x2E:0x30] = subsystem[1].to_bytes(2, "little")
    if pcie is not None:
        b[0x06] = 0x10  # capability list
        b[0x34] = 0x40
        b[0x40] = 0x10  # PCI Express, next 0
        b[0x41] = 0x00
        flags = 0x2 | (pcie << 4) | (0x100 if slot else 0)
        b[0x42:0x44] = flags.to_bytes(2, "little")
        if acs is not None:
            header_dw = 0x000D | (1 << 16) | (0 << 20)
            b[0x100:0x104] = header_dw.to_bytes(4, "little")
            b[0x104:0x106] = acs[0].to_bytes(2, "little")
            b[0x106:0x108] = acs[1].to_bytes(2, "little")
        elif not ext_header_zero:
            b[0x100:0x104] = (0x0001 | (1 << 16)).to_bytes(4, "little")  # an AER header, no next
    return bytes(b[:size])


class TopoBuilder:
    """A fake host tree; ``add`` functions parent first."""

    def __init__(self, root: Path, *, cmdline: str = "intel_iommu=on quiet", iommu: bool = True) -> None:
        self.root = Path(root)
        for d in ("sys/bus/pci/devices", "sys/bus/pci/drivers", "sys/bus/pci/slots", "sys/kernel/iommu_groups",
                  "proc/sys/kernel", "dev/vfio"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "proc/sys/kernel/osrelease").write_text("6.1.0-test-amd64\n")
        (self.root / "proc/cmdline").write_text(cmdline + "\n")
        self.iommu = iommu
        self.dirs: dict[str, Path] = {}
        self.vfs: dict[str, int] = {}

    def add(self, address: str, vendor: int, device: int, *, parent: str | None = None, group: int | None = None,
            driver: str | None = None, physfn: str | None = None, domain_root: str = "pci0000:00",
            cfg: bytes | None = None, **cfg_kw) -> str:
        """One function; *cfg_kw* go to :func:`config` unless *cfg* gives the bytes."""
        if physfn is not None:
            base = self.dirs[physfn].parent  # a VF sits beside its PF (virtfn->dev.parent)
        elif parent is not None:
            base = self.dirs[parent]
        else:
            base = self.root / "sys/devices" / domain_root
        d = base / address
        d.mkdir(parents=True, exist_ok=True)
        self.dirs[address] = d
        blob = cfg if cfg is not None else config(vendor, device, **cfg_kw)
        (d / "config").write_bytes(blob)
        cls = cfg_kw.get("cls", 0x020000)
        (d / "vendor").write_text(f"0x{vendor:04x}\n")
        (d / "device").write_text(f"0x{device:04x}\n")
        (d / "class").write_text(f"0x{cls:06x}\n")
        ue = [f"PCI_CLASS={cls:X}", f"PCI_ID={vendor:04X}:{device:04X}", "PCI_SUBSYS_ID=0000:0000",
              f"PCI_SLOT_NAME={address}"]
        link = self.root / "sys/bus/pci/devices" / address
        link.symlink_to(os.path.relpath(d, link.parent))
        if physfn is not None:
            pf = self.dirs[physfn]
            (d / "physfn").symlink_to(os.path.relpath(pf, d))
            n = self.vfs.get(physfn, 0)
            (pf / f"virtfn{n}").symlink_to(os.path.relpath(d, pf))
            self.vfs[physfn] = n + 1
        if group is not None and self.iommu:
            g = self.root / "sys/kernel/iommu_groups" / str(group) / "devices"
            g.mkdir(parents=True, exist_ok=True)
            (g / address).symlink_to(os.path.relpath(d, g))
            (d / "iommu_group").symlink_to(os.path.relpath(g.parent, d))
        if driver:
            drv = self.root / "sys/bus/pci/drivers" / driver
            drv.mkdir(parents=True, exist_ok=True)
            (d / "driver").symlink_to(os.path.relpath(drv, d))
            (drv / address).symlink_to(os.path.relpath(d, drv))
            ue.insert(0, f"DRIVER={driver}")
        (d / "uevent").write_text("\n".join(ue) + "\n")
        return address

    def slot(self, name: str, address: str) -> None:
        s = self.root / "sys/bus/pci/slots" / name
        s.mkdir(parents=True, exist_ok=True)
        (s / "address").write_text(address + "\n")

    def host(self) -> Host:
        return Host(self.root)


def host_bridge(b: TopoBuilder, group: int | None = 0) -> None:
    """00:00.0, a conventional host bridge (no capabilities), as on q35."""
    b.add("0000:00:00.0", 0x8086, 0x29C0, cls=0x060000, group=group)


def root_port(b: TopoBuilder, address: str, secondary: int, *, group: int | None, acs=FULL_ACS,
              multifunction: bool = False, vendor: int = 0x1B36, device: int = 0x000C, slot: bool = True, **kw) -> str:
    return b.add(address, vendor, device, cls=0x060400, header=1, pcie=RP, acs=acs, slot=slot,
                 multifunction=multifunction, secondary=secondary, subordinate=secondary, group=group, **kw)


def endpoint(b: TopoBuilder, address: str, *, parent: str | None, group: int | None, vendor: int = 0x1AF4,
             device: int = 0x1041, pcie: int | None = EP, acs=None, multifunction: bool = False,
             driver: str | None = "virtio-pci", cls: int = 0x020000, **kw) -> str:
    """A PCIe endpoint (a virtio NIC by default: no vendor quirks apply to it)."""
    return b.add(address, vendor, device, cls=cls, pcie=pcie, acs=acs, multifunction=multifunction,
                 parent=parent, group=group, driver=driver, **kw)
