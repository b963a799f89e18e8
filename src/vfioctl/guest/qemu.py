"""QEMU ``-device vfio-pci,...`` arguments for hidden devices.  Pure: model in, text out."""

from __future__ import annotations

import shlex

from vfioctl.guest import Assignment, layout, with_rom
from vfioctl.pci.address import PciAddress

__all__ = ["device_option", "device_args", "qemu_args", "command_line"]


def device_option(a: Assignment) -> str:
    """The value of one ``-device``: ``vfio-pci,host=0000:03:00.0,id=hostdev-0000-03-00-0[,bus=..][,addr=..]``."""
    opts = [f"vfio-pci,host={a.host}", f"id={a.id}"]
    if a.bus:
        opts.append(f"bus={_qemu_escape(a.bus)}")
    if a.guest_addr is not None:
        opts.append(f"addr={a.guest_addr}")
    if a.multifunction:
        opts.append("multifunction=on")
    if a.rom_file:
        opts.append(f"romfile={_qemu_escape(a.rom_file)}")
    if a.rom_bar is False:
        opts.append("rombar=0")
    return ",".join(opts)


def device_args(assignments: list[Assignment]) -> list[str]:
    """``["-device", "vfio-pci,...", ...]``, function 0 of each shared slot first."""
    ordered = sorted(assignments, key=lambda a: (a.guest_slot is None, a.guest_slot or 0, a.guest_function or 0, a.host))
    out: list[str] = []
    for a in ordered:
        out += ["-device", device_option(a)]
    return out


def qemu_args(addresses: list[PciAddress], *, bus: str | None = None, slot: int | None = None,
              groups: dict | None = None, rom_file: str | None = None, no_rom: bool = False) -> list[str]:
    """Arguments that pass *addresses* through, with companion functions paired in one guest slot."""
    return device_args(with_rom(layout(addresses, bus=bus, slot=slot, groups=groups), rom_file, no_rom))


def command_line(args: list[str]) -> str:
    """One shell-quoted line, ready for ``qemu-system-x86_64 $(...)`` or copy-paste."""
    return shlex.join(args)


def _qemu_escape(value: str) -> str:
    """QEMU's option syntax escapes a comma by doubling it."""
    return value.replace(",", ",,")
