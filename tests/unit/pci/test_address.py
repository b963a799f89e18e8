"""PCI addresses: the forms accepted, the kernel's spelling, and text that is not an address."""

import pytest

from vfioctl.base.errors import InvalidAddress
from vfioctl.pci.address import PciAddress, kernel_name

A = PciAddress.parse


@pytest.mark.parametrize("text,want", [
    ("03:10.3", (0, 3, 0x10, 3)),
    ("0000:03:10.3", (0, 3, 0x10, 3)),
    ("0000:AF:1F.7", (0, 0xAF, 0x1F, 7)),
    ("1:2:3.4", (1, 2, 3, 4)),
    ("ffff:ff:1f.7", (0xFFFF, 0xFF, 0x1F, 7)),
    ("\t03:00.0 ", (0, 3, 0, 0)),  # blanks around, as a shell or a file leaves them
])
def test_accepted_forms(text, want):
    a = A(text)
    assert tuple(a) == want
    assert A(str(a)) == a


def test_string_forms():
    a = A("3:1.2")
    assert str(a) == "0000:03:01.2" and a.short == "03:01.2"
    b = A("10:03:01.2")
    assert str(b) == "0010:03:01.2" and b.short == "0010:03:01.2"  # a domain is never dropped
    assert a.slot_key == (0, 3, 1) and a.with_function(0) == A("03:01.0")
    assert A(a) is a


@pytest.mark.parametrize("text", [
    "", "03:00", "03.00.0", "0000:03:00:0", "00000:03:00.0", "0000:003:00.0", "g3:00.0", "03:20.0", "03:00.8",
    "03:00.f", "03:00.0\n", "03:00.0 x", "٠٣:00.0", "０3:00.0", "0x03:00.0", "-3:00.0", "03:00.0" * 3,
    "0000:03:00.0;rm -rf /",
])
def test_refused_text_says_why_in_one_line(text):
    with pytest.raises(InvalidAddress) as err:
        A(text)
    assert "\n" not in str(err.value)
    assert not PciAddress.is_valid(text)


@pytest.mark.parametrize("value", [None, 3, b"03:00.0", ("0", 3, 0, 0)])
def test_a_value_that_is_no_string_is_refused(value):
    with pytest.raises(InvalidAddress):
        A(value)


def test_range_errors_name_the_part():
    with pytest.raises(InvalidAddress) as err:
        A("03:20.0")
    assert "slot 0x20 is out of range 00-1f" in str(err.value)
    with pytest.raises(InvalidAddress) as err:
        A("03:00.9")
    assert "function 9 is out of range 0-7" in str(err.value)


def test_order_is_numeric():
    assert sorted([A("0000:0a:00.0"), A("0000:02:00.1"), A("0000:02:00.0"), A("0001:00:00.0")]) == [
        A("02:00.0"), A("02:00.1"), A("0a:00.0"), A("0001:00:00.0")]


@pytest.mark.parametrize("name,want", [
    ("0000:03:00.0", "0000:03:00.0"),
    ("0000:03:1f.7", "0000:03:1f.7"),
    ("03:00.0", None),  # the short form is user input, never a sysfs name
    ("0000:03:00.0\n", None),
    ("0000:03:00.A", None),
    ("0000:03:20.0", None),
    ("0000:03:00.8", None),
    ("0000:0A:00.0", None),  # the kernel writes lower case
    ("..", None),
    ("", None),
    (None, None),
])
def test_kernel_name_reads_only_the_kernels_spelling(name, want):
    got = kernel_name(name)
    assert (str(got) if got else None) == want
