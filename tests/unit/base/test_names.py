"""The grammar of names: CDI device names and vendors, label values."""

from __future__ import annotations

import pytest

from vfioctl.base.names import group_number, is_cdi_device_name, is_cdi_vendor, is_label_value


# ====================================================================== names
@pytest.mark.parametrize("name", ["0000:03:00.0", "pci-0000-03-00-0", "a", "7", "gpu", "gpu-0", "A_b.c:d-e9",
                                  "x" * 200])
def test_cdi_device_names_accepted(name):
    assert is_cdi_device_name(name)


@pytest.mark.parametrize("name", ["", "-a", "a-", "a:", ".a", "a b", "a/b", "a=b", "é", "a\n", "a\t", "gpu\u0660",
                                  "0000:03:00.0\n", 3, None])
def test_cdi_device_names_refused(name):
    assert not is_cdi_device_name(name)


@pytest.mark.parametrize("vendor,ok", [("vfioctl.io", True), ("example.com", True), ("a.b-c.d", True),
                                       ("Example.com", False), ("1example.com", False), ("-a.com", False),
                                       ("a..b", False), ("a_b.com", False), ("a/b", False), ("", False),
                                       ("a" * 64 + ".com", False), ("a.b.", False)])
def test_cdi_vendor_grammar(vendor, ok):
    assert is_cdi_vendor(vendor) is ok


@pytest.mark.parametrize("text,ok", [("true", True), ("", True), ("8086-10d3", True), ("a" * 63, True),
                                     ("a" * 64, False), ("a b", False), ("-a", False), ("a,b", False)])
def test_label_value_grammar(text, ok):
    assert is_label_value(text) is ok


@pytest.mark.parametrize("text,number", [("0", 0), ("7", 7), ("123456789", 123456789), ("007", None), ("00", None),
                                         ("\u00b2", None), ("\u0661", None), ("1234567890", None), ("", None),
                                         (None, None), ("7\n", None), ("-1", None)])
def test_group_numbers_are_spelled_as_the_kernel_spells_them(text, number):
    """A crafted tree's "007" beside "7" would list group 7 twice: only the kernel's spelling."""
    assert group_number(text) == number
