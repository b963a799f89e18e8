"""vfioctl.pci.rom: PCI expansion ROM image chains, built byte by byte (tests/unit/rombuild.py); the live
read on a fake host with the simulated PCI core (the real kernel: tests/vm/test_devops.py)."""

import base64
import json
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rombuild import UNIT, e1000e_like, image

from vfioctl.base.errors import InvalidInput
from vfioctl.pci.address import PciAddress
from vfioctl.pci.rom import (
    CODE_EFI,
    CODE_X86,
    MACHINE_AARCH64,
    MACHINE_X64,
    MAX_IMAGES,
    live_rom,
    machine_number,
    parse_rom,
    read_rom,
)
from vfioctl.report.devassess import assess_devices

# ---------------------------------------------------------------- well-formed ROMs

def test_x86_and_efi_x64_pair_like_qemu_e1000e():
    data = e1000e_like()
    rom = parse_rom(data)
    assert rom.ok and rom.problems == () and rom.warnings == ()
    assert [i.offset for i in rom.images] == [0, 2 * UNIT]
    x86, efi = rom.images
    assert (x86.code_type, x86.code_type_name, x86.last) == (CODE_X86, "x86 BIOS", False)
    assert (efi.code_type, efi.code_type_name, efi.last) == (CODE_EFI, "EFI", True)
    assert x86.ids == efi.ids == "8086:10d3"
    assert x86.class_code == efi.class_code == 0x020000
    assert x86.pcir_revision == 3 and x86.device_list == (0x10D3,)
    assert x86.checksum_ok is True and efi.checksum_ok is None
    assert efi.efi is not None
    assert (efi.efi.signature, efi.efi.subsystem_name, efi.efi.machine_name) == (0x0EF1, "boot service driver", "X64")
    assert efi.efi.compression_name == "uncompressed" and efi.efi.image_offset == 0x40
    assert rom.has_x86() and rom.has_efi() and rom.has_efi_x64() and not rom.has_efi_aarch64()
    assert rom.has_efi("x64") and rom.has_efi(MACHINE_X64) and rom.efi_machines() == ("X64",)
    assert rom.matches_device("8086", "10d3") and rom.matches_device(0x8086, 0x10D3)
    assert not rom.matches_device("8086", "100e")
    assert rom.summary() == "2 images: x86 BIOS (8086:10d3, 1 KiB); EFI X64 boot service driver (8086:10d3, 1 KiB)"
    d = json.loads(json.dumps(rom.to_dict()))
    assert d["data_size"] == len(data)
    assert [i["code_type_name"] for i in d["images"]] == ["x86 BIOS", "EFI"]
    assert d["images"][0]["device_list"] == ["10d3"] and d["images"][0]["class"] == "020000"
    assert d["images"][1]["efi"]["machine_name"] == "X64" and d["images"][1]["last"] is True


def test_single_legacy_image():
    rom = parse_rom(image(code_type=0, units=1, revision=0))
    assert rom.ok and len(rom.images) == 1
    (i,) = rom.images
    assert i.last and i.size == i.declared_size == UNIT and i.usable
    assert i.pcir_revision == 0 and i.device_list == () and i.max_runtime_size is None
    assert rom.has_x86() and not rom.has_efi() and rom.efi_machines() == ()


def test_efi_only_aarch64():
    rom = parse_rom(image(code_type=3, machine=MACHINE_AARCH64, subsystem=12, compression=1, units=3))
    assert rom.ok
    assert not rom.has_x86() and not rom.has_efi_x64()
    assert rom.has_efi_aarch64() and rom.has_efi("AARCH64") and rom.efi_machines() == ("AARCH64",)
    efi = rom.images[0].efi
    assert efi.subsystem_name == "runtime driver" and efi.compression_name == "EFI compressed"
    assert efi.initialization_size == 3 * UNIT


@pytest.mark.parametrize("machine,name", [
    (0x014C, "IA32"), (0x0200, "IA64"), (0x0EBC, "EBC"), (0x8664, "X64"), (0x01C2, "ARM"),
    (0xAA64, "AARCH64"), (0x5032, "RISCV32"), (0x5064, "RISCV64"), (0x6264, "LOONGARCH64"),
])
def test_efi_machine_names(machine, name):
    rom = parse_rom(image(code_type=3, machine=machine))
    assert rom.images[0].efi.machine_name == name and rom.warnings == ()
    assert machine_number(name.lower()) == machine


def test_pcir_mismatch():
    rom = parse_rom(image(code_type=0, vendor=0x10DE, device=0x1234))
    assert rom.ok  # the ROM itself is fine; it is for another device
    assert not rom.matches_device("10de", "5678")
    assert [i.ids for i in rom.mismatched("10de", "5678")] == ["10de:1234"]
    assert rom.matches_device("10de", "1234")


def test_pcir_3_device_list_matches():
    rom = parse_rom(image(code_type=0, vendor=0x1002, device=0x67DF, device_list=(0x67EF, 0x6FDF)))
    assert rom.images[0].device_list == (0x67EF, 0x6FDF)
    assert rom.matches_device("1002", "67df") and rom.matches_device("1002", "6fdf")
    assert not rom.matches_device("1002", "1234") and not rom.matches_device("10de", "67ef")


def test_device_list_without_terminator_is_a_warning():
    data = bytearray(image(code_type=0, units=1, device_list=(0x1111,), terminate_list=False))
    data[0x1C + 0x20 + 2:] = b"\x22\x22" * ((len(data) - (0x1C + 0x22)) // 2)  # no 0x0000 anywhere after
    rom = parse_rom(bytes(data))
    assert rom.images[0].device_list[:2] == (0x1111, 0x2222)
    assert any("terminator" in w or "more than" in w for w in rom.warnings)


def test_reserved_code_type_is_named():
    rom = parse_rom(image(code_type=5))
    assert rom.images[0].code_type_name == "reserved code type 0x05"
    assert parse_rom(image(code_type=1)).images[0].code_type_name == "Open Firmware"
    assert parse_rom(image(code_type=2)).images[0].code_type_name == "HP PA-RISC"


def test_bytes_like_inputs():
    data = e1000e_like()
    assert parse_rom(bytearray(data)) == parse_rom(data) == parse_rom(memoryview(data))


def test_trailing_padding_after_last_image_is_ignored():
    rom = parse_rom(e1000e_like() + b"\xff" * 4096)
    assert rom.ok and len(rom.images) == 2


# ---------------------------------------------------------------- what is wrong

def test_truncated_image():
    data = image(code_type=0, units=4)[: 2 * UNIT]
    rom = parse_rom(data)
    (i,) = rom.images
    assert i.declared_size == 4 * UNIT and i.size == 2 * UNIT and i.truncated and not i.usable
    assert not rom.ok and any("only 1024 remain" in p for p in rom.problems)
    assert not rom.has_x86()  # a firmware could not load it


def test_truncated_second_image_keeps_the_first():
    data = e1000e_like()[: 3 * UNIT]
    rom = parse_rom(data)
    assert rom.has_x86() and not rom.has_efi()
    assert rom.images[1].truncated and rom.problems


def test_zero_length_image_stops_the_chain():
    data = image(code_type=0, units=0, last=False) * 4
    rom = parse_rom(data)
    assert len(rom.images) == 1
    assert any("image length 0" in p for p in rom.problems)
    assert not rom.has_x86() and not rom.images[0].usable


def test_chain_is_capped():
    data = image(code_type=0, units=1, last=False) * (MAX_IMAGES + 8)
    rom = parse_rom(data)
    assert len(rom.images) == MAX_IMAGES
    assert any(f"more than {MAX_IMAGES} images" in p for p in rom.problems)


def test_pcir_pointer_back_to_the_image_start():
    data = bytearray(image(code_type=0))
    struct.pack_into("<H", data, 0x18, 0)  # "PCIR" expected where 55 AA is
    rom = parse_rom(bytes(data))
    assert rom.images == () and any("no 'PCIR' signature" in p for p in rom.problems)


def test_pcir_pointer_past_the_data():
    data = bytearray(image(code_type=0))
    struct.pack_into("<H", data, 0x18, 0xFFF0)
    rom = parse_rom(bytes(data))
    assert rom.images == () and any("points past the data" in p for p in rom.problems)


def test_pcir_outside_its_image():
    # the PCIR of a 1-unit image placed in the second 512 bytes (which the data has)
    data = image(code_type=0, units=1, pcir_at=0x210, min_size=0x400, checksum=False)
    rom = parse_rom(data)
    assert any("lies outside the image" in p for p in rom.problems)


def test_header_cut_short():
    rom = parse_rom(b"\x55\xaa\x01\x00")
    assert rom.images == () and any("ends inside the image header" in p for p in rom.problems)


def test_garbage():
    rom = parse_rom(bytes(range(256)) * 8)
    assert not rom.is_rom and not rom.ok
    assert rom.problems == ("no 0x55AA signature at offset 0 (found 0001): not a PCI expansion ROM",)
    assert rom.summary() == "no ROM image"


def test_empty():
    rom = parse_rom(b"")
    assert rom.data_size == 0 and rom.images == ()
    assert "end of data" in rom.problems[0]
    assert not rom.has_x86() and not rom.has_efi() and not rom.matches_device("8086", "10d3")


def test_bad_x86_checksum_is_only_a_warning():
    data = bytearray(image(code_type=0))
    data[0x100] ^= 0x5A
    rom = parse_rom(bytes(data))
    assert rom.ok and rom.has_x86()
    assert rom.images[0].checksum_ok is False
    assert any("checksum" in w for w in rom.warnings)


def test_misaligned_pcir_is_a_warning():
    rom = parse_rom(image(code_type=0, pcir_at=0x1E))
    assert rom.ok and any("not DWORD aligned" in w for w in rom.warnings)


def test_last_flag_missing_and_nothing_follows():
    rom = parse_rom(image(code_type=0, last=False))
    assert rom.ok and rom.has_x86()
    assert any("not marked last" in w for w in rom.warnings)


def test_last_flag_missing_and_garbage_follows():
    rom = parse_rom(image(code_type=0, last=False) + b"\x00" * UNIT)
    assert rom.ok and len(rom.images) == 1
    assert any("no 0x55AA signature" in w for w in rom.warnings)


def test_efi_header_oddities():
    rom = parse_rom(image(code_type=3, efi_signature=0x1234, machine=0x1234))
    assert any("without the 0x0EF1 signature" in w for w in rom.warnings)
    assert any("unknown machine 0x1234" in w for w in rom.warnings)
    assert rom.images[0].efi.subsystem_name == "boot service driver"
    rom = parse_rom(image(code_type=3, efi_image_offset=0xF000))
    assert any("EFI image offset" in p for p in rom.problems)


def test_not_bytes_is_invalid_input():
    with pytest.raises(InvalidInput):
        parse_rom("55aa")  # type: ignore[arg-type]


def test_bad_ids_and_machines_are_invalid_input():
    rom = parse_rom(e1000e_like())
    with pytest.raises(InvalidInput):
        rom.matches_device("80866", "10d3")
    with pytest.raises(InvalidInput):
        rom.has_efi("PDP11")


# ---------------------------------------------------------------- hostile bytes

def _check_invariants(data: bytes) -> None:
    rom = parse_rom(data)
    assert rom.data_size == len(data)
    assert len(rom.images) <= MAX_IMAGES
    for i in rom.images:
        assert 0 <= i.offset < len(data)
        assert 0 <= i.size <= i.declared_size
        assert i.offset + i.size <= len(data)
        assert i.offset <= i.pcir_offset and i.pcir_offset + 0x18 <= len(data)
    json.dumps(rom.to_dict())
    rom.summary()
    rom.has_x86(), rom.has_efi_x64(), rom.has_efi_aarch64(), rom.matches_device(0x8086, 0x10D3)


_fast = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

@_fast
@given(st.binary(max_size=4096))
def test_random_bytes_never_raise(data):
    _check_invariants(data)

@_fast
@given(st.binary(max_size=2048))
def test_random_bytes_after_a_signature_never_raise(data):
    _check_invariants(b"\x55\xaa" + data)

@_fast
@given(st.lists(st.tuples(st.integers(0, 2 * len(e1000e_like()) - 1), st.integers(0, 255)), max_size=24),
       st.integers(0, len(e1000e_like())))
def test_mutated_rom_never_raises(flips, cut):
    data = bytearray(e1000e_like())
    for at, value in flips:
        if at < len(data):
            data[at] = value
    _check_invariants(bytes(data[:cut]))

@_fast
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(0, 0xFFFF), st.integers(0, 5)),
                min_size=1, max_size=6))
def test_random_chains_never_raise(parts):
    data = b"".join(image(code_type=ct, units=units, last=last, pcir_at=min(ptr, 0x7F0), min_size=0x800)
                    [: max(units * UNIT, 0x20)]
                    for units, last, ptr, ct in parts)
    _check_invariants(data)


# ---------------------------------------------------------------- option ROMs
def test_live_rom_enables_reads_and_disables(fake, host):
    rom = e1000e_like()
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(rom)
    got = live_rom(host, "0000:00:07.0")
    assert base64.b64decode(got["base64"]) == rom
    assert host.writes == [("/sys/bus/pci/devices/0000:00:07.0/rom", "1"),
                           ("/sys/bus/pci/devices/0000:00:07.0/rom", "0")]


def test_live_rom_disables_even_when_the_read_fails(fake, host):
    def fail(path, value):
        if path.endswith("/rom") and value == "1":
            (fake._devdir("0000:00:07.0") / "rom").unlink()

    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"\x55\xaa")
    host.write_hook.fail = fail
    got = live_rom(host, "0000:00:07.0")
    assert "cannot read the ROM" in got["error"]
    assert host.writes[-1] == ("/sys/bus/pci/devices/0000:00:07.0/rom", "0")


def test_live_rom_holds_a_runtime_suspended_device_in_d0_for_the_read(fake, host):
    """vfio-pci lets an idle device sleep in D3hot, where its ROM BAR answers nothing (QEMU 10,
    real hardware): power/control "on" for the read, "auto" put back after it, also on failure."""
    dev = fake._devdir("0000:00:07.0")
    (dev / "rom").write_bytes(e1000e_like())
    (dev / "power").mkdir(exist_ok=True)
    (dev / "power/control").write_text("auto\n")
    got = live_rom(host, "0000:00:07.0")
    assert "base64" in got
    base = "/sys/bus/pci/devices/0000:00:07.0"
    assert host.writes == [(f"{base}/power/control", "on"), (f"{base}/rom", "1"), (f"{base}/rom", "0"),
                           (f"{base}/power/control", "auto")]
    host.writes.clear()
    (dev / "rom").unlink()
    assert "cannot read the ROM" in live_rom(host, "0000:00:07.0")["error"]
    assert host.writes[-1] == (f"{base}/power/control", "auto")


def test_cli_rom_lists_each_image_once_with_its_offset(fake, capsys):
    from vfioctl.cli import main

    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps(
        {"rom:0000:00:07.0": {"base64": base64.b64encode(e1000e_like()).decode()}}))
    assert main(["--root", str(fake.root), "rom", "00:07.0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("0000:00:07.0  [8086:10d3]  option ROM, ") and out[0].endswith(" bytes, 2 images:")
    assert out[1].startswith("  image 0 at 0x00000: x86 BIOS (8086:10d3")
    assert out[2].startswith("  image 1 at 0x") and "EFI X64 boot service driver" in out[2]
    assert len(out) == 3


def test_snapshot_answers_the_rom_it_captured(fake):
    rom = e1000e_like()
    (fake._devdir("0000:00:07.0") / "rom").write_bytes(b"")
    (fake.root / ".vfioctl").mkdir(exist_ok=True)
    (fake.root / ".vfioctl/probes.json").write_text(json.dumps(
        {"rom:0000:00:07.0": {"base64": base64.b64encode(rom).decode()}}))
    h = fake.host(kernel=False)
    assert read_rom(h, PciAddress.parse("00:07.0")) == rom
    a = assess_devices(h, ["00:07.0"], read_roms=True)[0]
    rom_finding = a.get("option-rom")
    assert rom_finding is not None and "EFI" in rom_finding.evidence


def test_live_rom_holds_a_runtime_suspended_device_in_d0_for_the_read(fake, host):
    """vfio-pci lets an idle device sleep in D3hot, where its ROM BAR answers nothing (QEMU 10,
    real hardware): power/control "on" for the read, "auto" put back after it, also on failure."""
    dev = fake._devdir("0000:00:07.0")
    (dev / "rom").write_bytes(e1000e_like())
    (dev / "power").mkdir(exist_ok=True)
    (dev / "power/control").write_text("auto\n")
    got = live_rom(host, "0000:00:07.0")
    assert "base64" in got
    base = "/sys/bus/pci/devices/0000:00:07.0"
    assert host.writes == [(f"{base}/power/control", "on"), (f"{base}/rom", "1"), (f"{base}/rom", "0"),
                           (f"{base}/power/control", "auto")]
    host.writes.clear()
    (dev / "rom").unlink()
    assert "cannot read the ROM" in live_rom(host, "0000:00:07.0")["error"]
    assert host.writes[-1] == (f"{base}/power/control", "auto")


def test_a_rom_read_leaves_the_records_read_before_it_valid(fake, host):
    """The ROM read's writes are undone before it returns: a record read before it may read
    more facts after it (assess read the ROM, then the device's driver: "read before the host
    changed ... a bug in vfioctl", exit 70, seen in the lab on QEMU 10)."""
    from vfioctl.pci.function import read_functions

    (fake._devdir("0000:00:07.0") / "rom").write_bytes(e1000e_like())
    rec = read_functions(host)[PciAddress.parse("0000:00:07.0")]
    before = host.generation
    assert "base64" in live_rom(host, "0000:00:07.0")
    assert host.generation == before and len(host.writes) == 2
    assert rec.driver == fake.current_driver("0000:00:07.0")
