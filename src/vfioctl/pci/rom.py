"""PCI expansion ROMs: walk the image chain and say what each image is for.

Pure: bytes in, :class:`RomInfo` out.  Whoever reads the device's sysfs
``rom`` file (``echo 1 > rom; cat rom; echo 0 > rom``) hands the bytes here.

The layout is the PCI Firmware Specification 3.x, "PCI Expansion ROMs":
every image starts with the 0x55 0xAA signature and holds, at offset 0x18, a
16-bit pointer (relative to the image) to its PCI Data Structure ("PCIR").
The PCIR names the vendor:device the image is for, its class code, its
length in 512-byte units, its code type (0 x86 BIOS, 1 Open Firmware,
2 HP PA-RISC, 3 EFI) and, in bit 7 of the indicator byte, whether it is the
last image.  The next image starts right after this one.  An EFI image has
its own header fields between the signature and the PCIR pointer (UEFI
specification, "PCI Option ROMs"; EDK2's ``EFI_PCI_EXPANSION_ROM_HEADER``):
initialization size, the 0x0EF1 signature, the PE subsystem and machine type
of the driver, its compression, and the offset of the PE image.  The kernel
walks the same chain to size the ``rom`` file (drivers/pci/rom.c
``pci_get_rom_size``: stops at a bad signature, a zero length, the last
image, or the end of the ROM BAR).

Every byte is hostile.  :func:`parse_rom` never raises for any bytes: what is
wrong goes into :attr:`RomInfo.problems` (not a ROM, a structure that points
outside the data, a zero or truncated image length: an image is unusable or
the chain is broken inside it) or :attr:`RomInfo.warnings` (worth saying, does
not stop a firmware: a legacy checksum, alignment, a chain that ends without
its last-image flag, which is where both the kernel and EDK2 stop reading
too).  Data that is not a ROM at all gives
a RomInfo with no images and one problem.  The walk cannot loop: each image
moves the offset forward by at least 512 bytes, a zero length stops it, and
at most :data:`MAX_IMAGES` images are read.  No image is reported that starts
outside the data, and an image's ``size`` never runs past the data (a
truncated image keeps its declared length in ``declared_size``).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass

from vfioctl.base.errors import InvalidInput, KernelError, NotFound, VfioctlError
from vfioctl.host import probes
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES

ROM_SIGNATURE = b"\x55\xaa"
PCIR_SIGNATURE = b"PCIR"
#: image header: the pointer to the PCI Data Structure
PCIR_POINTER = 0x18
#: bytes of a PCI 2.x PCI Data Structure; revision 3 adds three 16-bit fields (0x1C)
PCIR_LENGTH_2 = 0x18
PCIR_LENGTH_3 = 0x1C
IMAGE_UNIT = 512
INDICATOR_LAST = 0x80
#: a ROM BAR is at most 16 MiB; real ROMs hold 1-4 images.  More is garbage.
MAX_IMAGES = 32
#: a PCIR 3.0 device list longer than this is garbage
MAX_DEVICE_LIST = 256

CODE_X86 = 0
CODE_OPEN_FIRMWARE = 1
CODE_PA_RISC = 2
CODE_EFI = 3
CODE_TYPE_NAMES = {
    CODE_X86: "x86 BIOS",
    CODE_OPEN_FIRMWARE: "Open Firmware",
    CODE_PA_RISC: "HP PA-RISC",
    CODE_EFI: "EFI",
}

EFI_SIGNATURE = 0x0EF1
#: PE/COFF subsystem values an EFI option ROM driver carries (UEFI spec, PE image types)
EFI_SUBSYSTEMS = {
    10: "application",
    11: "boot service driver",
    12: "runtime driver",
    13: "EFI ROM",
}
#: PE/COFF machine types (UEFI spec "UEFI Image"; PE format IMAGE_FILE_MACHINE_*)
MACHINE_IA32 = 0x014C
MACHINE_IA64 = 0x0200
MACHINE_EBC = 0x0EBC
MACHINE_X64 = 0x8664
MACHINE_ARM = 0x01C2
MACHINE_AARCH64 = 0xAA64
MACHINE_RISCV32 = 0x5032
MACHINE_RISCV64 = 0x5064
MACHINE_RISCV128 = 0x5128
MACHINE_LOONGARCH32 = 0x6232
MACHINE_LOONGARCH64 = 0x6264
EFI_MACHINES = {
    MACHINE_IA32: "IA32",
    MACHINE_IA64: "IA64",
    MACHINE_EBC: "EBC",
    MACHINE_X64: "X64",
    MACHINE_ARM: "ARM",
    MACHINE_AARCH64: "AARCH64",
    MACHINE_RISCV32: "RISCV32",
    MACHINE_RISCV64: "RISCV64",
    MACHINE_RISCV128: "RISCV128",
    MACHINE_LOONGARCH32: "LOONGARCH32",
    MACHINE_LOONGARCH64: "LOONGARCH64",
}
EFI_COMPRESSION = {0: "uncompressed", 1: "EFI compressed"}


def code_type_name(code: int) -> str:
    return CODE_TYPE_NAMES.get(code, f"reserved code type {code:#04x}")


def machine_name(machine: int) -> str:
    return EFI_MACHINES.get(machine, f"unknown machine {machine:#06x}")


def machine_number(machine: int | str) -> int:
    """``0x8664``, ``"X64"``, ``"x64"`` -> 0x8664.  Unknown names raise InvalidInput."""
    if isinstance(machine, int):
        return machine
    wanted = str(machine).strip().upper()
    for number, name in EFI_MACHINES.items():
        if name == wanted:
            return number
    raise InvalidInput(
        f"unknown EFI machine type {machine!r}: expected one of {', '.join(EFI_MACHINES.values())}"
    )


def _u16(data: bytes, at: int) -> int:
    return struct.unpack_from("<H", data, at)[0]


def _u32(data: bytes, at: int) -> int:
    return struct.unpack_from("<I", data, at)[0]


def _kib(n: int) -> str:
    return f"{n / 1024:g} KiB"


@dataclass(frozen=True)
class EfiHeader:
    """The EFI fields of an image whose code type is 3."""

    #: bytes (the header's 16-bit count of 512-byte units)
    initialization_size: int
    signature: int
    subsystem: int
    machine: int
    compression: int
    #: offset of the PE image, relative to the start of the ROM image
    image_offset: int

    @property
    def subsystem_name(self) -> str:
        return EFI_SUBSYSTEMS.get(self.subsystem, f"unknown subsystem {self.subsystem}")

    @property
    def machine_name(self) -> str:
        return machine_name(self.machine)

    @property
    def compression_name(self) -> str:
        return EFI_COMPRESSION.get(self.compression, f"unknown compression {self.compression}")

    def to_dict(self) -> dict:
        return {
            "initialization_size": self.initialization_size,
            "signature": f"{self.signature:#06x}",
            "subsystem": self.subsystem,
            "subsystem_name": self.subsystem_name,
            "machine": f"{self.machine:#06x}",
            "machine_name": self.machine_name,
            "compression": self.compression,
            "compression_name": self.compression_name,
            "image_offset": self.image_offset,
        }


@dataclass(frozen=True)
class RomImage:
    """One image of the chain.  Offsets are from the start of the ROM data."""

    index: int
    offset: int
    #: bytes of this image present in the data (never past its end)
    size: int
    #: bytes the PCIR says the image has (image length x 512)
    declared_size: int
    pcir_offset: int
    vendor_id: int
    device_id: int
    #: PCIR 3.0 device list (other device IDs this image supports); () when absent
    device_list: tuple[int, ...]
    pcir_revision: int
    pcir_length: int
    #: 24-bit class code: base class, subclass, programming interface
    class_code: int
    code_revision: int
    code_type: int
    indicator: int
    #: PCIR 3.0 only (bytes); None for older structures
    max_runtime_size: int | None = None
    config_utility_pointer: int | None = None
    dmtf_clp_pointer: int | None = None
    efi: EfiHeader | None = None
    #: x86 images: the legacy rule (bytes of the initialization size sum to 0 mod 256); None when not checked
    checksum_ok: bool | None = None

    @property
    def last(self) -> bool:
        return bool(self.indicator & INDICATOR_LAST)

    @property
    def truncated(self) -> bool:
        return self.size < self.declared_size

    @property
    def usable(self) -> bool:
        """Present in full with a non-zero length: what a firmware could load."""
        return self.declared_size > 0 and not self.truncated

    @property
    def code_type_name(self) -> str:
        return code_type_name(self.code_type)

    @property
    def ids(self) -> str:
        return f"{self.vendor_id:04x}:{self.device_id:04x}"

    def supports(self, vendor_id: int, device_id: int) -> bool:
        """The PCIR names this vendor and this device, directly or in its device list."""
        return self.vendor_id == vendor_id and (
            self.device_id == device_id or device_id in self.device_list
        )

    def describe(self) -> str:
        kind = self.code_type_name
        if self.efi is not None:
            kind = f"EFI {self.efi.machine_name} {self.efi.subsystem_name}"
        return f"{kind} ({self.ids}, {_kib(self.declared_size)})"

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "offset": self.offset,
            "size": self.size,
            "declared_size": self.declared_size,
            "pcir_offset": self.pcir_offset,
            "vendor_id": f"{self.vendor_id:04x}",
            "device_id": f"{self.device_id:04x}",
            "device_list": [f"{d:04x}" for d in self.device_list],
            "pcir_revision": self.pcir_revision,
            "class": f"{self.class_code:06x}",
            "code_revision": self.code_revision,
            "code_type": self.code_type,
            "code_type_name": self.code_type_name,
            "last": self.last,
            "usable": self.usable,
            "max_runtime_size": self.max_runtime_size,
            "efi": self.efi.to_dict() if self.efi else None,
            "checksum_ok": self.checksum_ok,
        }


@dataclass(frozen=True)
class RomInfo:
    """What :func:`parse_rom` found."""

    #: bytes handed in
    data_size: int
    images: tuple[RomImage, ...]
    #: the chain is broken here, or an image is unusable
    problems: tuple[str, ...] = ()
    #: worth saying, does not stop a firmware from using the ROM
    warnings: tuple[str, ...] = ()

    @property
    def is_rom(self) -> bool:
        return bool(self.images)

    @property
    def ok(self) -> bool:
        return self.is_rom and not self.problems

    def has_x86(self) -> bool:
        return any(i.code_type == CODE_X86 and i.usable for i in self.images)

    def has_efi(self, machine: int | str | None = None) -> bool:
        """An EFI image (for *machine*, e.g. ``"X64"`` or 0xAA64, when given), present in full."""
        want = None if machine is None else machine_number(machine)
        return any(
            i.efi is not None and i.usable and (want is None or i.efi.machine == want)
            for i in self.images
        )

    def has_efi_x64(self) -> bool:
        """What OVMF on an x86-64 host needs to run the card's UEFI driver (GOP for a GPU)."""
        return self.has_efi(MACHINE_X64)

    def has_efi_aarch64(self) -> bool:
        """What AAVMF (ArmVirtQemu) on an arm64 host needs."""
        return self.has_efi(MACHINE_AARCH64)

    def efi_machines(self) -> tuple[str, ...]:
        return tuple(i.efi.machine_name for i in self.images if i.efi is not None)

    def mismatched(self, vendor_id: int | str, device_id: int | str) -> tuple[RomImage, ...]:
        """Images whose PCIR names neither this vendor:device nor has it in its device list."""
        v, d = _id(vendor_id), _id(device_id)
        return tuple(i for i in self.images if not i.supports(v, d))

    def matches_device(self, vendor_id: int | str, device_id: int | str) -> bool:
        """Every image is for this vendor:device (directly or by its PCIR 3.0 device list)."""
        return self.is_rom and not self.mismatched(vendor_id, device_id)

    def summary(self) -> str:
        if not self.images:
            return "no ROM image"
        n = len(self.images)
        return f"{n} image{'s' if n != 1 else ''}: " + "; ".join(i.describe() for i in self.images)

    def to_dict(self) -> dict:
        return {
            "data_size": self.data_size,
            "images": [i.to_dict() for i in self.images],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
        }


def _id(value: int | str) -> int:
    if isinstance(value, int):
        return value
    text = str(value).strip().lower().removeprefix("0x")
    if len(text) > 4 or not text or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput(f"invalid PCI ID {value!r}: expected 4 hex digits, e.g. 10de")
    return int(text, 16)


def parse_rom(data: bytes | bytearray | memoryview) -> RomInfo:
    """Walk the image chain of a PCI expansion ROM.  Never raises for any bytes.

    Only a value that is not bytes-like raises (:class:`InvalidInput`).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"a PCI expansion ROM is bytes, not {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    images: list[RomImage] = []
    problems: list[str] = []
    warnings: list[str] = []
    offset = 0
    while True:
        n = len(images)
        where = f"image {n} at {offset:#x}"
        if n >= MAX_IMAGES:
            problems.append(f"more than {MAX_IMAGES} images: stopped at {offset:#x} (not a real ROM chain)")
            break
        if data[offset:offset + 2] != ROM_SIGNATURE:
            got = data[offset:offset + 2].hex() or "end of data"
            if n == 0:
                problems.append(f"no 0x55AA signature at offset 0 (found {got}): not a PCI expansion ROM")
            else:
                # drivers/pci/rom.c pci_get_rom_size stops here too ("No more image in the PCI ROM")
                warnings.append(
                    f"{where}: no 0x55AA signature (found {got}) although image {n - 1} is not marked last:"
                    " the chain ends here"
                )
            break
        if offset + PCIR_POINTER + 2 > size:
            problems.append(f"{where}: the data ends inside the image header ({size - offset} bytes)")
            break
        pcir = offset + _u16(data, offset + PCIR_POINTER)
        if pcir + PCIR_LENGTH_2 > size:
            problems.append(
                f"{where}: PCI data structure pointer {pcir - offset:#x} points past the data ({size} bytes)"
            )
            break
        if data[pcir:pcir + 4] != PCIR_SIGNATURE:
            problems.append(
                f"{where}: no 'PCIR' signature at {pcir:#x} (pointer at {offset + PCIR_POINTER:#x})"
            )
            break
        image, image_problems, image_warnings = _image(data, n, offset, pcir)
        images.append(image)
        problems.extend(image_problems)
        warnings.extend(image_warnings)
        if image.declared_size == 0:
            problems.append(f"{where}: image length 0 in its PCI data structure: the chain cannot go on")
            break
        if image.truncated:
            problems.append(
                f"{where}: declares {image.declared_size} bytes but only {image.size} remain"
                " (a partial read, or a wrong length)"
            )
            break
        if image.last:
            break
        offset += image.declared_size
        if offset >= size:
            # the kernel's rom file ends with the last image it found, flag or not
            warnings.append(f"image {n} is not marked last but the data ends at {size:#x}: no further image")
            break
    return RomInfo(size, tuple(images), tuple(problems), tuple(warnings))


def _image(data: bytes, index: int, offset: int, pcir: int) -> tuple[RomImage, list[str], list[str]]:
    size = len(data)
    where = f"image {index} at {offset:#x}"
    problems: list[str] = []
    warnings: list[str] = []
    vendor, device, list_ptr, pcir_len = struct.unpack_from("<HHHH", data, pcir + 4)
    revision = data[pcir + 0x0C]
    class_code = int.from_bytes(data[pcir + 0x0D:pcir + 0x10], "little")
    image_units, code_rev = struct.unpack_from("<HH", data, pcir + 0x10)
    code_type, indicator = data[pcir + 0x14], data[pcir + 0x15]
    declared = image_units * IMAGE_UNIT
    present = max(0, min(declared, size - offset))
    if (pcir - offset) % 4:
        warnings.append(f"{where}: PCI data structure at {pcir:#x} is not DWORD aligned (the spec requires it)")
    if pcir_len < PCIR_LENGTH_2:
        warnings.append(f"{where}: PCI data structure length {pcir_len:#x} is shorter than {PCIR_LENGTH_2:#x}")
    if declared and pcir + PCIR_LENGTH_2 > offset + declared:
        problems.append(f"{where}: its PCI data structure lies outside the image ({declared} bytes)")

    max_runtime = config_util = clp = None
    device_list: tuple[int, ...] = ()
    if revision >= 3 and pcir_len >= PCIR_LENGTH_3 and pcir + PCIR_LENGTH_3 <= size:
        units, config_util, clp = struct.unpack_from("<HHH", data, pcir + 0x16)
        max_runtime = units * IMAGE_UNIT
        if list_ptr:
            device_list, note = _device_list(data, pcir + list_ptr, offset + present)
            if note:
                warnings.append(f"{where}: device list at {pcir + list_ptr:#x} {note}")

    efi = None
    if code_type == CODE_EFI:
        efi = _efi_header(data, offset)
        if efi.signature != EFI_SIGNATURE:
            warnings.append(f"{where}: EFI image without the 0x0EF1 signature (found {efi.signature:#06x})")
        if efi.machine not in EFI_MACHINES:
            warnings.append(f"{where}: EFI image for {efi.machine_name}")
        if declared and not PCIR_POINTER + 2 <= efi.image_offset < declared:
            problems.append(f"{where}: EFI image offset {efi.image_offset:#x} lies outside the image")

    checksum_ok = None
    if code_type == CODE_X86 and present == declared and declared:
        # Legacy BIOS rule: the bytes covered by the initialization size (offset 2,
        # 512-byte units) sum to 0 mod 256.  A BIOS skips a ROM that fails it; OVMF
        # and SeaBIOS-in-QEMU do not care for the EFI part, so it is only a warning.
        init = data[offset + 2] * IMAGE_UNIT
        if not init or init > declared:
            warnings.append(f"{where}: x86 initialization size {init} bytes does not fit the image")
        else:
            checksum_ok = sum(data[offset:offset + init]) % 256 == 0
            if not checksum_ok:
                warnings.append(f"{where}: x86 image checksum is not zero (legacy BIOSes skip such a ROM)")

    image = RomImage(
        index=index, offset=offset, size=present, declared_size=declared, pcir_offset=pcir,
        vendor_id=vendor, device_id=device, device_list=device_list, pcir_revision=revision,
        pcir_length=pcir_len, class_code=class_code, code_revision=code_rev, code_type=code_type,
        indicator=indicator, max_runtime_size=max_runtime, config_utility_pointer=config_util,
        dmtf_clp_pointer=clp, efi=efi, checksum_ok=checksum_ok,
    )
    return image, problems, warnings


def _device_list(data: bytes, start: int, end: int) -> tuple[tuple[int, ...], str | None]:
    """16-bit device IDs from *start*, ending at a 0x0000 entry (PCI Firmware Spec 3.0 device list)."""
    out: list[int] = []
    at = start
    while at + 2 <= end:
        value = _u16(data, at)
        if value == 0:
            return tuple(out), None
        if len(out) >= MAX_DEVICE_LIST:
            return tuple(out), f"has more than {MAX_DEVICE_LIST} entries: read no further"
        out.append(value)
        at += 2
    return tuple(out), "runs to the end of the image without its 0x0000 terminator"


def _efi_header(data: bytes, offset: int) -> EfiHeader:
    # the caller checked offset + 0x1A <= len(data): every field below is inside it
    init_units = _u16(data, offset + 0x02)
    signature = _u32(data, offset + 0x04)
    subsystem, machine, compression = struct.unpack_from("<HHH", data, offset + 0x08)
    image_offset = _u16(data, offset + 0x16)
    return EfiHeader(init_units * IMAGE_UNIT, signature, subsystem, machine, compression, image_offset)


# ------------------------------------------------------------------ option ROMs
#: where a snapshot keeps the ROMs it read, one file per function named by its address
ROM_DIR = "/.vfioctl/rom"
#: the most of one ROM a snapshot keeps: real ROMs are 64 KiB - 2 MiB (a ROM BAR is at most 16 MiB)
SNAPSHOT_ROM_BYTES = 4 << 20


def rom_present(host: Host, address: PciAddress) -> bool:
    """The kernel creates ``rom`` only for a device with an expansion ROM BAR (or a shadow copy).
    On a snapshot that did not capture ROMs the answer means nothing: ask
    :func:`rom_not_captured` first."""
    return host.exists(f"{PCI_DEVICES}/{address}/rom")


def rom_not_captured(host: Host) -> str | None:
    """Why a snapshot cannot say whether a device has a ROM, or what it holds (an older
    snapshot, or one taken with ``--no-rom``); None on a host that can."""
    return host.not_captured("rom")


def read_rom(host: Host, address: PciAddress) -> bytes:
    """The ROM's bytes.  Live: enable, read, disable (always).  Captured: what the snapshot holds.

    Raises NotFound when the device has no ROM, and our errors when it cannot be read."""
    path = f"{PCI_DEVICES}/{address}/rom"
    if not host.exists(path):
        raise NotFound(f"{address} has no option ROM ({path} does not exist)")
    if host.snapshot:
        kept = host.read_bytes(f"{ROM_DIR}/{address}", default=None)
        if kept is not None:
            return kept
    got = host.probe("rom", str(address))
    if isinstance(got, dict) and isinstance(got.get("base64"), str):
        try:
            return base64.b64decode(got["base64"], validate=True)
        except ValueError:
            raise InvalidInput(f"{host.source}: the captured ROM of {address} is not valid base64") from None
    if isinstance(got, dict) and got.get("error"):
        if host.is_live:
            raise KernelError(str(got["error"]))
        raise NotFound(f"{address}: the ROM could not be read when {host.source} was captured: {got['error']}")
    raise NotFound(f"{address}: the ROM was not captured in {host.source} (`vfioctl snapshot` captures ROMs "
                   "unless given --no-rom)")


def live_rom(host: Host, address: str) -> dict:
    """The live probe behind :func:`read_rom`: a dict with ``base64`` or ``error``."""
    path = f"{PCI_DEVICES}/{address}/rom"
    control = f"{PCI_DEVICES}/{address}/power/control"
    try:
        # A device asleep in D3hot answers no memory cycle, its ROM BAR's neither: the sysfs
        # read (pci_read_rom in drivers/pci/pci-sysfs.c) maps the ROM without waking the device,
        # and vfio-pci lets an idle device runtime-suspend to D3hot (vfio_pci_core's runtime PM,
        # since 5.19).  "on" in power/control forbids runtime suspend and resumes the device
        # (rpm_resume through pm_runtime_forbid, drivers/base/power/sysfs.c control_store);
        # what was there ("auto") is put back after the read.
        was = host.read(control, default=None)
        if was == "auto":
            host.write(control, "on", transient=True)
        try:
            # writing anything but "0" permits reads of the ROM (pci_write_rom); the read maps
            # and unmaps the ROM BAR itself (pci_map_rom), "0" forbids it again
            host.write(path, "1", transient=True)
            try:
                data = host.read_bytes(path)
            finally:
                host.write(path, "0", transient=True)
        finally:
            if was == "auto":
                host.write(control, "auto", transient=True)
    except VfioctlError as err:
        return {"error": f"cannot read the ROM of {address}: {err.message}"}
    return {"base64": base64.b64encode(data).decode()}


probes.register("rom", live_rom)
