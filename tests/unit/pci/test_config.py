"""Config space parsing: every length, hostile bytes, the kernel's walk limits."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcitopo import ACS_CAP_FULL, ACS_ON, DP, EP, PCI_BRIDGE, RP, config

from vfioctl.base.errors import InvalidInput
from vfioctl.pci import config as pcicfg
from vfioctl.pci.config import PCI_ACS_CR, PCI_ACS_RR, PCI_ACS_SV, PCI_ACS_UF, parse

REQ = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF


def test_root_port_with_acs():
    c = parse(config(0x8086, 0xA110, cls=0x060400, header=1, multifunction=True, pcie=RP, slot=True,
                     acs=(ACS_CAP_FULL, ACS_ON), primary=0, secondary=3, subordinate=4))
    assert (c.vendor_id, c.device_id, c.class_code) == (0x8086, 0xA110, 0x060400)
    assert (c.header_type, c.multifunction) == (1, True)
    assert (c.primary_bus, c.secondary_bus, c.subordinate_bus) == (0, 3, 4)
    assert c.is_bridge and c.is_pcie and c.port_type == RP and c.pcie.type_name == "root port"
    assert c.pcie.slot_implemented
    assert [x.id for x in c.capabilities] == [0x10] and c.capabilities_complete
    assert [x.name for x in c.ext_capabilities] == ["ACS"] and c.ext_complete
    assert c.acs.capable == ("SV", "TB", "RR", "CR", "UF", "DT")
    assert c.acs.enabled == ("SV", "RR", "CR", "UF")
    assert c.acs.missing(REQ) == () and c.acs_known
    assert c.unreadable == () and c.problems == ()
    d = c.to_dict()
    assert d["pcie"]["type"] == "root port" and d["acs"]["enabled"] == ["SV", "RR", "CR", "UF"]


def test_acs_present_but_disabled_names_the_missing_bits():
    c = parse(config(0x1B36, 0x000C, header=1, pcie=RP, acs=(ACS_CAP_FULL, PCI_ACS_SV)))
    assert c.acs.missing(REQ) == ("RR", "CR", "UF")


def test_a_control_the_port_does_not_implement_is_not_required():
    # pci_acs_flags_enabled: acs_flags &= (cap | PCI_ACS_EC)
    c = parse(config(0x1B36, 0x000C, header=1, pcie=DP, acs=(PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR,
                                                             PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR)))
    assert c.acs.missing(REQ) == ()


def test_64_bytes_of_a_pcie_function_leave_the_capabilities_unknown():
    c = parse(config(0x1B36, 0x000E, header=1, pcie=PCI_BRIDGE, size=64))
    assert c.length == 64 and c.vendor_id == 0x1B36 and c.header_type == 1
    assert c.is_pcie is None and c.pcie is None and not c.capabilities_complete
    assert not c.acs_known and not c.ext_complete
    assert any("0x40" in u and "64" in u for u in c.unreadable)


def test_64_bytes_without_a_capability_list_are_enough():
    c = parse(config(0x8086, 0x100E, size=64))  # conventional PCI, no capabilities
    assert c.is_pcie is False and c.acs_known and c.capabilities_complete and c.unreadable == ()


def test_256_bytes_mean_no_extended_capabilities():
    # the kernel's cfg_size is 256: pci_find_next_ext_capability finds nothing
    c = parse(config(0x1B36, 0x000C, header=1, pcie=RP, acs=(ACS_CAP_FULL, ACS_ON), size=256))
    assert c.is_pcie and c.acs is None and c.acs_known and c.ext_complete


def test_an_extended_list_cut_short_is_unreadable_not_absent():
    c = parse(config(0x1B36, 0x000C, header=1, pcie=RP, acs=(ACS_CAP_FULL, ACS_ON), size=0x106))
    assert c.acs is not None and c.acs.ctrl is None and not c.acs_known
    assert any("ACS control" in u for u in c.unreadable)


def test_no_extended_capabilities_when_the_header_is_zero():
    c = parse(config(0x1AF4, 0x1041, pcie=EP))
    assert c.ext_capabilities == () and c.ext_complete and c.acs is None and c.acs_known


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 13, 14, 15, 16, 0x34, 0x35, 0x40, 0x41, 0x43, 0x44, 128, 255, 256,
                               257, 0x103, 0x104, 0x107, 4095, 4096, 5000])
def test_every_length(n):
    blob = config(0x1B36, 0x000C, header=1, pcie=RP, acs=(ACS_CAP_FULL, ACS_ON)) + b"\xff" * 1000
    c = parse(blob[:n])
    assert c.length == min(n, 4096)
    if n < 2:
        assert c.vendor_id is None
    if n < 15:
        assert c.header_type is None and c.multifunction is None
    if n >= 0x108:
        assert c.acs is not None and c.acs.enabled == ("SV", "RR", "CR", "UF")


def test_a_looping_capability_list_ends():
    b = bytearray(config(0x1AF4, 0x1041, pcie=EP))
    b[0x34] = 0x50
    b[0x50], b[0x51] = 0x05, 0x60   # MSI -> 0x60
    b[0x60], b[0x61] = 0x09, 0x50   # vendor -> back to 0x50
    c = parse(bytes(b))
    assert [x.offset for x in c.capabilities] == [0x50, 0x60]
    assert any("loops" in p for p in c.problems) and c.capabilities_complete and c.is_pcie is False


def test_a_pointer_below_0x40_ends_and_a_misaligned_one_is_masked():
    b = bytearray(config(0x1AF4, 0x1041, pcie=EP))
    b[0x34] = 0x43  # the kernel masks the low two bits: 0x40, the PCIe capability
    c = parse(bytes(b))
    assert c.pcie is not None and any("misaligned" in p for p in c.problems)
    b[0x41] = 0x20  # next pointer below 0x40 ends the walk
    assert [x.offset for x in parse(bytes(b)).capabilities] == [0x40]


def test_an_extended_list_that_loops_ends():
    b = bytearray(config(0x1AF4, 0x1041, pcie=EP))
    b[0x100:0x104] = (0x0001 | (1 << 16) | (0x100 << 20)).to_bytes(4, "little")  # AER whose next is itself
    c = parse(bytes(b))
    assert [x.offset for x in c.ext_capabilities] == [0x100] and any("loops" in p for p in c.problems)


def test_capability_id_ff_ends_the_list():
    b = bytearray(config(0x1AF4, 0x1041, pcie=EP))
    b[0x40] = 0xFF
    c = parse(bytes(b))
    assert c.capabilities == () and c.capabilities_complete and c.is_pcie is False


def test_not_bytes_is_our_error():
    with pytest.raises(InvalidInput):
        parse("0000")  # type: ignore[arg-type]
    assert parse(bytearray(b"\x86\x80")).vendor_id == 0x8086
    assert parse(memoryview(b"\x86\x80\x10\x10")).device_id == 0x1010


def test_acs_names():
    assert pcicfg.acs_names(0x7F) == ("SV", "TB", "RR", "CR", "UF", "EC", "DT")
    assert pcicfg.acs_names(0) == ()


def _check(c):
    assert isinstance(c, pcicfg.ConfigSpace)
    c.to_dict()
    _ = (c.is_pcie, c.acs_known, c.is_bridge, c.port_type)
    if c.acs is not None:
        c.acs.missing(REQ)


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=4500))
def test_random_bytes_never_raise(data):
    _check(parse(data))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=40),
       st.integers(0, 4096))
def test_mutated_config_never_raises(edits, size):
    """Random pokes into a well-formed blob reach the walks' corner cases (pointers, loops)."""
    b = bytearray(config(0x1B36, 0x000C, header=1, pcie=RP, acs=(ACS_CAP_FULL, ACS_ON)))
    for off, val in edits:
        b[off] = val
    _check(parse(bytes(b[:size])))
