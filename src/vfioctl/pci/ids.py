"""Names from the system's pci.ids database (Debian's ``pci.ids`` package).

We read the distribution's own file rather than bundle one (PyPI ``hwdata``
wraps the same file but adds a dependency and its own copy that ages): the
admin updates names with ``update-pciids`` or the package manager and every
tool on the host agrees.  The file is ~1.4 MB; parsing it whole costs tens of
milliseconds, so a lookup searches the raw bytes by halves for the one vendor,
device or class it names, and memoises the answer (:class:`PciIds`).
"""

from __future__ import annotations

import re

from vfioctl.host.core import Host

SEARCH = (
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
    "/usr/local/share/pci.ids",
)


#: a newline before a line that starts with neither a tab nor '#': where a vendor's block ends
_BLOCK_END = re.compile(rb"\n[^\t#]")
#: a vendor's line, and a device's line in a vendor's block, with the ID as lookups spell it
_VENDOR_LINE = re.compile(rb"\n([0-9a-f]{4})  ")
_DEVICE_LINE = re.compile(rb"\n\t([0-9a-f]{4})  ")
_ID = re.compile(r"[0-9a-f]{4}")
#: a file at least this large is searched by halves (pci.ids is ~1.4 MB); a smaller one is
#: read from its start, where one search costs microseconds
HALVES_FROM = 1 << 16


def _halves(t: bytes, line: re.Pattern[bytes], key: bytes, lo: int, hi: int) -> int:
    """Where the first line *line* matches with ID *key* starts (its newline), among the lines
    that start in [lo, hi) in ascending order of their IDs, as pci.ids keeps its vendors and
    each vendor's devices; -1 when there is none.  About 20 searches, each to the next such
    line, where a search from the start scanned the megabyte."""
    found = -1
    while lo < hi:
        mid = (lo + hi) // 2
        m = line.search(t, mid, hi + 8)  # the first such line at or after mid (8: its length)
        if m is None or m.start() >= hi:
            hi = mid
        elif m[1] < key:
            lo = m.end()
        else:
            if m[1] == key:
                found = m.start()
            hi = mid
    return found


class PciIds:
    """Names from the bytes of a pci.ids file: a vendor is the first line ``VVVV  name`` before
    the class section, a device the first ``\\tDDDD  name`` in its vendor's block.

    pci.ids keeps its vendors, each vendor's devices and its classes in ascending order, each
    once (the order its maintainers export and ``update-pciids`` fetches): a file of at least
    :data:`HALVES_FROM` bytes is searched by halves (:func:`_halves`), and its class lines from
    its end; a smaller one, or a name the halves miss (a file out of order), is searched from
    the start, line order deciding.  Nothing is decoded but the names asked for."""

    def __init__(self, text: str | bytes) -> None:
        self._text = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        self._halves = len(self._text) >= HALVES_FROM
        self._classes: int | None = None
        self._vendor_blocks: dict[str, tuple[int, int] | None] = {}
        self._names: dict[tuple, str | None] = {}

    @classmethod
    def load(cls, host: Host) -> "PciIds":
        def compute() -> PciIds:
            # the host's own file; a captured host without one (a snapshot made with --no-ids)
            # takes the names from the reader's machine, as `vfioctl snapshot --help` says
            for h in (host, Host("/")) if host.snapshot else (host,):
                for p in SEARCH:
                    data = h.read_bytes(p, default=None)
                    if data:
                        return cls(data)
            return cls(b"")

        return host.cached("pciids", compute)

    @property
    def _classes_at(self) -> int:
        """Where the class section starts (its first ``\\nC ``), -1 when there is none."""
        if self._classes is None:
            self._classes = self._text.find(b"\nC ")
        return self._classes

    def _line(self, start: int, skip: int) -> str:
        """The name on the line whose newline is at *start*, *skip* bytes after it."""
        t = self._text
        return t[start + skip : t.find(b"\n", start + 1)].decode("utf-8", "replace").strip()

    def _vendor_block(self, vendor: str) -> tuple[int, int] | None:
        try:
            return self._vendor_blocks[vendor]
        except KeyError:
            pass
        t = self._text
        start = -1
        if self._halves and _ID.fullmatch(vendor):
            start = _halves(t, _VENDOR_LINE, vendor.encode(), 0, len(t))
            limit = len(t)  # in order, no vendor follows the classes
        if start < 0:
            limit = self._classes_at if self._classes_at >= 0 else len(t)
            start = t.find(b"\n" + vendor.encode("utf-8", "surrogatepass") + b"  ", 0, limit)
        block = None
        if start >= 0:
            # the block ends at the next line that does not start with a tab or '#' (one search
            # in C: a loop over the lines of a vendor with thousands of them cost milliseconds)
            m = _BLOCK_END.search(t, start + 1, limit + 1)  # the line after the block may start at limit
            block = (start + 1, min(m.start(), limit) if m else limit)
        self._vendor_blocks[vendor] = block
        return block

    def _device_at(self, block: tuple[int, int], device: str) -> int:
        """Where the line of *device* starts in a vendor's *block* (its newline), -1 if absent."""
        at = -1
        if self._halves and _ID.fullmatch(device):
            at = _halves(self._text, _DEVICE_LINE, device.encode(), block[0], block[1])
        if at < 0:
            at = self._text.find(b"\n\t" + device.encode("utf-8", "surrogatepass") + b"  ", block[0], block[1])
        return at

    def vendor(self, vendor: str) -> str | None:
        key = ("v", vendor)
        if key in self._names:
            return self._names[key]
        name = None
        b = self._vendor_block(vendor)
        if b:
            name = self._line(b[0] - 1, len(vendor.encode("utf-8", "surrogatepass")) + 3)
        self._names[key] = name
        return name

    def device(self, vendor: str, device: str) -> str | None:
        key = ("d", vendor, device)
        if key in self._names:
            return self._names[key]
        name = None
        b = self._vendor_block(vendor)
        if b:
            at = self._device_at(b, device)
            if at >= 0:
                name = self._line(at, 2 + len(device.encode("utf-8", "surrogatepass")) + 2)
        self._names[key] = name
        return name

    def subsystem(self, vendor: str, device: str, sub_vendor: str, sub_device: str) -> str | None:
        key = ("s", vendor, device, sub_vendor, sub_device)
        if key in self._names:
            return self._names[key]
        name = None
        b = self._vendor_block(vendor)
        if b:
            t = self._text
            at = self._device_at(b, device)
            if at >= 0:
                # subsystem lines follow the device line, each "\t\tSVID SDID  name"
                end = t.find(b"\n\t", at + 1)
                while end >= 0 and t.startswith(b"\n\t\t", end):
                    end = t.find(b"\n\t", end + 1)
                stop = end if 0 <= end < b[1] else b[1]
                sub = t.find(f"\n\t\t{sub_vendor} {sub_device}  ".encode("utf-8", "surrogatepass"), at, stop)
                if sub >= 0:
                    name = self._line(sub, 3 + 10 + 1)
        self._names[key] = name
        return name

    def class_name(self, class_code: int) -> str | None:
        """Name for a 24-bit class code, most specific known level first."""
        key = ("c", class_code)
        if key in self._names:
            return self._names[key]
        t = self._text
        name = None
        base, sub = (class_code >> 16) & 0xFF, (class_code >> 8) & 0xFF
        # each class once, the last section of the file: found from its end
        at = t.rfind(b"\nC %02x  " % base) if self._halves else -1
        if at < 0 and self._classes_at >= 0:
            at = t.find(b"\nC %02x  " % base, self._classes_at)
        if at >= 0:
            line_end = t.find(b"\n", at + 1)
            name = t[at + 6 : line_end].decode("utf-8", "replace").strip()
            nxt = t.find(b"\nC ", line_end)
            stop = nxt if nxt >= 0 else len(t)
            s = t.find(b"\n\t%02x  " % sub, line_end, stop)
            if s >= 0:
                le = t.find(b"\n", s + 1)
                name = t[s + 6 : le].decode("utf-8", "replace").strip()
        if name is None:
            name = _FALLBACK_CLASSES.get(base)
        self._names[key] = name
        return name


# when no pci.ids is installed, still name the base classes
_FALLBACK_CLASSES = {
    0x00: "Unclassified device",
    0x01: "Mass storage controller",
    0x02: "Network controller",
    0x03: "Display controller",
    0x04: "Multimedia controller",
    0x05: "Memory controller",
    0x06: "Bridge",
    0x07: "Communication controller",
    0x08: "Generic system peripheral",
    0x09: "Input device controller",
    0x0A: "Docking station",
    0x0B: "Processor",
    0x0C: "Serial bus controller",
    0x0D: "Wireless controller",
    0x0E: "Intelligent controller",
    0x0F: "Satellite communications controller",
    0x10: "Encryption controller",
    0x11: "Signal processing controller",
    0x12: "Processing accelerators",
    0x13: "Non-Essential Instrumentation",
    0x40: "Coprocessor",
    0xFF: "Unassigned class",
}
