"""Names from pci.ids: a vendor's block found in the raw text, its end by one search."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vfioctl.pci.ids import PciIds


def _block_by_lines(text: str, vendor: str) -> tuple[int, int] | None:
    """The block as a reader of pci.ids sees it, one line at a time (what the search replaced)."""
    limit = text.find("\nC ")
    limit = limit if limit >= 0 else len(text)
    start = text.find("\n" + vendor + "  ", 0, limit)
    if start < 0:
        return None
    end = start + 1
    while True:
        nl = text.find("\n", end)
        if nl < 0 or nl >= limit:
            return start + 1, limit
        if text[nl + 1:nl + 2] not in ("\t", "#", ""):
            return start + 1, nl
        end = nl + 1


LINES = st.sampled_from(["1234  Acme", "\tabcd  Widget", "\t\t1234 0001  Sub", "# comment", "", "5678  Other",
                         "\t0001  Thing", "C 02  Network controller", "\t00  Ethernet", "12345  odd"])


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=12))
def test_a_vendor_block_ends_where_the_next_top_level_line_starts(lines):
    text = "\n" + "\n".join(lines) + "\n"
    ids = PciIds(text)
    for vendor in ("1234", "5678"):
        assert ids._vendor_block(vendor) == _block_by_lines(text, vendor)


def test_names():
    ids = PciIds("\n8086  Intel Corporation\n\t10d3  82574L Gigabit Network Connection\n\t\t8086 0000  Sub\n"
                 "1af4  Red Hat, Inc.\nC 02  Network controller\n\t00  Ethernet controller\n")
    assert ids.vendor("8086") == "Intel Corporation" and ids.vendor("1af4") == "Red Hat, Inc."
    assert ids.device("8086", "10d3") == "82574L Gigabit Network Connection"
    assert ids.device("1af4", "10d3") is None
    assert ids.subsystem("8086", "10d3", "8086", "0000") == "Sub"
    assert ids.class_name(0x020000) == "Ethernet controller"
