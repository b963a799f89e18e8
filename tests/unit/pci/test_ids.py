"""Names from pci.ids: a vendor's block found in the raw text, its end by one search."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vfioctl.pci.ids import _DEVICE_LINE, _VENDOR_LINE, HALVES_FROM, PciIds, _halves


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


def _sorted_ids(vendors: dict[int, dict[int, int]], classes: list[int]) -> str:
    """A pci.ids in its maintainers' order (vendors, each one's devices, classes; ascending, each
    once), padded past HALVES_FROM with comment lines so that it is searched by halves."""
    out = ["# pci.ids of a test", *["# " + "x" * 70] * (HALVES_FROM // 72 + 1)]
    for v, devs in sorted(vendors.items()):
        out.append(f"{v:04x}  Vendor {v:04x}")
        for d, subs in sorted(devs.items()):
            out.append(f"\t{d:04x}  Device {v:04x}:{d:04x}")
            out += [f"\t\t{v:04x} {s:04x}  Sub {s:04x}" for s in range(subs)]
    out.append("")
    for c in sorted(set(classes)):
        out += [f"C {c:02x}  Class {c:02x}", f"\t{c:02x}  Subclass {c:02x}"]
    return "\n" + "\n".join(out) + "\n"


IDS = st.integers(0, 0xFFFF)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(IDS, st.dictionaries(IDS, st.integers(0, 3), max_size=6), max_size=12),
       st.lists(st.integers(0, 0xFF), max_size=4), st.lists(IDS, min_size=1, max_size=6))
def test_a_large_file_searched_by_halves_names_what_a_reading_from_the_start_names(vendors, classes, probes):
    text = _sorted_ids(vendors, classes)
    halves, start = PciIds(text), PciIds(text)
    start._halves = False  # every lookup from the start of the file
    assert halves._halves and len(text) >= HALVES_FROM
    asked = [f"{x:04x}" for x in [*vendors, *probes]]
    for v in asked:
        assert halves.vendor(v) == start.vendor(v)
        for d in [*(f"{x:04x}" for x in vendors.get(int(v, 16), {})), *asked]:
            assert halves.device(v, d) == start.device(v, d)
            assert halves.subsystem(v, d, v, "0001") == start.subsystem(v, d, v, "0001")
    for c in [*classes, 0x02, 0xFF]:
        assert halves.class_name(c << 16) == start.class_name(c << 16)
    # the halves find each line themselves (the search from the start only backs a file out of order)
    t = halves._text
    for v, devs in vendors.items():
        at = _halves(t, _VENDOR_LINE, b"%04x" % v, 0, len(t))
        assert at == t.find(b"\n%04x  " % v) >= 0
        block = halves._vendor_block(f"{v:04x}")
        for d in devs:
            assert _halves(t, _DEVICE_LINE, b"%04x" % d, *block) == t.find(b"\n\t%04x  " % d, *block) >= 0
