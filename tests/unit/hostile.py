"""Hostile sysfs values a crafted snapshot or folder root can hold, shared by the CLI fuzz tests
and the PCI record's tests."""

import os


def _relink(link, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def _iface(dev, name: str) -> None:
    """A network interface of the function, named *name* (/sys/class/net links to it)."""
    (dev / "net" / name).mkdir(parents=True)
    net = dev.parents[2] / "class/net"  # dev is ROOT/sys/devices/pci0000:00/ADDR
    (net / name).symlink_to(os.path.relpath(dev / "net" / name, net))


HOSTILE_SYSFS = {
    "uevent PCI_CLASS=zz": lambda d: (d / "uevent").write_text("DRIVER=e1000e\nPCI_CLASS=zz\nPCI_ID=8086:10D3\n"),
    "uevent PCI_ID without a colon": lambda d: (d / "uevent").write_text("PCI_ID=zz\nPCI_SUBSYS_ID=\n"),
    "uevent DRIVER with a space": lambda d: (d / "uevent").write_text("DRIVER=vfio-pci x\nPCI_ID=8086:10D3\n"),
    "uevent binary junk": lambda d: (d / "uevent").write_bytes(b"\xff\xfe\x00PCI_CLASS=\x00\n=\n"),
    "group link to a file": lambda d: _relink(d / "iommu_group", "uevent"),
    "group link named abc": lambda d: _relink(d / "iommu_group", "../../../kernel/iommu_groups/abc"),
    "group link that loops": lambda d: _relink(d / "iommu_group", "iommu_group"),
    "driver link named vfio-pci and a newline": lambda d: _relink(d / "driver", "../../../bus/pci/drivers/vfio-pci\n"),
    "driver_override with a trailing newline": lambda d: (d / "driver_override").write_text("vfio-pci\n\n"),
    "class file of junk": lambda d: (d / "class").write_text("0xzz\n"),
    "reset_method of junk": lambda d: (d / "reset_method").write_text("flr \x00 ../bus\n"),
    "config of 3 bytes": lambda d: (d / "config").write_bytes(b"\x86\x80\x00"),
    # issue 22: terminal controls, a value larger than any sysfs attribute, a superscript group
    "interface named with terminal controls": lambda d: _iface(d, "e\x1b]0;x\x07\x9b1m\r\u202eth"),
    "uevent of 64 KiB": lambda d: (d / "uevent").write_text("PCI_ID=8086:10D3\n" + "X=" + "y" * 65536 + "\n"),
    "group link named a superscript two": lambda d: _relink(d / "iommu_group", "../../../kernel/iommu_groups/\u00b2"),
    "numa_node in Arabic-Indic digits": lambda d: (d / "numa_node").write_text("\u0661\n"),
}
