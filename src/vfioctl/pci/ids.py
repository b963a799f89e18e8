"""Names from the system's pci.ids database (Debian's ``pci.ids`` package).

We read the distribution's own file rather than bundle one (PyPI ``hwdata``
wraps the same file but adds a dependency and its own copy that ages): the
admin updates names with ``update-pciids`` or the package manager and every
tool on the host agrees.  The file is ~1.4 MB; parsing it whole costs tens of
milliseconds, so lookups search the raw text for the one vendor block they
need (``str.find`` runs in C) and memoise the answer.
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
_BLOCK_END = re.compile(r"\n[^\t#]")


class PciIds:
    def __init__(self, text: str) -> None:
        self._text = text
        # the class section starts at the first "\nC " line
        self._classes_at = text.find("\nC ")
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
                        return cls(data.decode("utf-8", "replace"))
            return cls("")

        return host.cached("pciids", compute)

    def _vendor_block(self, vendor: str) -> tuple[int, int] | None:
        try:
            return self._vendor_blocks[vendor]
        except KeyError:
            pass
        t = self._text
        limit = self._classes_at if self._classes_at >= 0 else len(t)
        start = t.find("\n" + vendor + "  ", 0, limit)
        block = None
        if start >= 0:
            # the block ends at the next line that does not start with a tab or '#' (one search
            # in C: a loop over the lines of a vendor with thousands of them cost milliseconds)
            m = _BLOCK_END.search(t, start + 1, limit + 1)  # the line after the block may start at limit
            block = (start + 1, min(m.start(), limit) if m else limit)
        self._vendor_blocks[vendor] = block
        return block

    def vendor(self, vendor: str) -> str | None:
        key = ("v", vendor)
        if key in self._names:
            return self._names[key]
        name = None
        b = self._vendor_block(vendor)
        if b:
            line_end = self._text.find("\n", b[0])
            name = self._text[b[0] + len(vendor) + 2 : line_end].strip()
        self._names[key] = name
        return name

    def device(self, vendor: str, device: str) -> str | None:
        key = ("d", vendor, device)
        if key in self._names:
            return self._names[key]
        name = None
        b = self._vendor_block(vendor)
        if b:
            t = self._text
            at = t.find("\n\t" + device + "  ", b[0], b[1])
            if at >= 0:
                line_end = t.find("\n", at + 1)
                name = t[at + 2 + len(device) + 2 : line_end].strip()
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
            at = t.find("\n\t" + device + "  ", b[0], b[1])
            if at >= 0:
                # subsystem lines follow the device line, each "\t\tSVID SDID  name"
                end = t.find("\n\t", at + 1)
                while end >= 0 and t.startswith("\n\t\t", end):
                    end = t.find("\n\t", end + 1)
                stop = end if 0 <= end < b[1] else b[1]
                sub = t.find(f"\n\t\t{sub_vendor} {sub_device}  ", at, stop)
                if sub >= 0:
                    line_end = t.find("\n", sub + 1)
                    name = t[sub + 3 + 10 + 1 : line_end].strip()
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
        if self._classes_at >= 0:
            at = t.find(f"\nC {base:02x}  ", self._classes_at)
            if at >= 0:
                line_end = t.find("\n", at + 1)
                name = t[at + 6 : line_end].strip()
                nxt = t.find("\nC ", line_end)
                stop = nxt if nxt >= 0 else len(t)
                s = t.find(f"\n\t{sub:02x}  ", line_end, stop)
                if s >= 0:
                    le = t.find("\n", s + 1)
                    name = t[s + 6 : le].strip()
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
