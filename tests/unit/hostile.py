"""Hostile sysfs values a crafted snapshot or folder root can hold, shared by the CLI fuzz tests
and the PCI record's tests."""


def _relink(link, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


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
}
