"""Build PCI expansion ROM images byte by byte for the rom/assess tests.

Layout: PCI Firmware Specification 3.x "PCI Expansion ROMs" (image header,
PCI Data Structure) and the UEFI specification's EFI image header fields.
"""

from __future__ import annotations

import struct

UNIT = 512


def image(
    *,
    code_type: int = 0,
    vendor: int = 0x8086,
    device: int = 0x10D3,
    units: int = 1,
    last: bool = True,
    class_code: int = 0x020000,
    revision: int = 3,
    device_list: tuple[int, ...] = (),
    terminate_list: bool = True,
    pcir_at: int = 0x1C,
    machine: int = 0x8664,
    subsystem: int = 11,
    compression: int = 0,
    efi_signature: int = 0x0EF1,
    efi_image_offset: int = 0x40,
    init_units: int | None = None,
    checksum: bool = True,
    indicator: int | None = None,
    min_size: int = 0x80,
) -> bytes:
    """One image; *units* x 512 bytes long (at least *min_size* bytes when units is 0)."""
    b = bytearray(max(units * UNIT, min_size))
    b[0:2] = b"\x55\xaa"
    if code_type == 3:
        struct.pack_into("<HIHHH", b, 0x02, units if init_units is None else init_units,
                         efi_signature, subsystem, machine, compression)
        struct.pack_into("<H", b, 0x16, efi_image_offset)
    else:
        b[2] = units if init_units is None else init_units
    struct.pack_into("<H", b, 0x18, pcir_at)
    list_ptr = 0
    if device_list:
        list_ptr = 0x20
        at = pcir_at + list_ptr
        for d in device_list:
            struct.pack_into("<H", b, at, d)
            at += 2
        if terminate_list:
            struct.pack_into("<H", b, at, 0)
    length = 0x1C if revision >= 3 else 0x18
    ind = (0x80 if last else 0) if indicator is None else indicator
    if pcir_at + 0x18 <= len(b):
        struct.pack_into("<4sHHHHB", b, pcir_at, b"PCIR", vendor, device, list_ptr, length, revision)
        b[pcir_at + 0x0D:pcir_at + 0x10] = class_code.to_bytes(3, "little")
        struct.pack_into("<HHBB", b, pcir_at + 0x10, units, 1, code_type, ind)
        if revision >= 3 and pcir_at + 0x1C <= len(b):
            struct.pack_into("<HHH", b, pcir_at + 0x16, 1, 0, 0)
    if code_type == 0 and checksum and units:
        init = b[2] * UNIT
        if 0 < init <= len(b):
            b[init - 1] = (-sum(b[:init - 1])) % 256
    return bytes(b)


def e1000e_like() -> bytes:
    """Two images as in Debian's ipxe-qemu efi-e1000e.rom: x86 (PCIR 3.0 with a device
    list) then EFI X64 boot service driver (last), both 8086:10d3, class 020000."""
    return (image(code_type=0, units=2, last=False, device_list=(0x10D3,))
            + image(code_type=3, units=2, last=True, revision=0))


def gpu_legacy_only(vendor: int = 0x10DE, device: int = 0x1C82) -> bytes:
    """A display card's ROM with only an x86 (VGA BIOS) image: no GOP driver."""
    return image(code_type=0, vendor=vendor, device=device, class_code=0x030000, units=2)


def gpu_with_gop(vendor: int = 0x10DE, device: int = 0x1C82) -> bytes:
    return (image(code_type=0, vendor=vendor, device=device, class_code=0x030000, units=2, last=False)
            + image(code_type=3, vendor=vendor, device=device, class_code=0x030000, units=2, revision=3))
