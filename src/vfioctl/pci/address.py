"""PCI addresses: parse, validate, format.  Pure: never touches the filesystem."""

from __future__ import annotations

import re
from collections import namedtuple

from vfioctl.base.errors import InvalidAddress

_RE = re.compile(
    r"(?:(?P<domain>[0-9a-fA-F]{1,4}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<slot>[0-9a-fA-F]{1,2})\.(?P<function>[0-9a-fA-F])"
)


#: a function's name as the kernel spells it in sysfs (drivers/pci/probe.c pci_setup_device:
#: "%04x:%02x:%02x.%d"): what /sys/bus/pci/devices lists and its links name
_KERNEL_NAME = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")

#: text -> address, for the valid addresses seen (a PciAddress is immutable)
_PARSED: dict[str, "PciAddress"] = {}


class PciAddress(namedtuple("PciAddress", "domain bus slot function")):
    """A PCI function address (domain, bus, slot, function), all ints.

    Accepts ``03:10.3`` and ``0000:03:10.3`` in upper or lower case; the string
    form is always the kernel's: ``0000:03:10.3``.  (A collections.namedtuple,
    not typing.NamedTuple: importing typing would cost every command start-up.)
    """

    __slots__ = ()

    @classmethod
    def parse(cls, text: object) -> "PciAddress":
        if isinstance(text, PciAddress):
            return text
        hit = _PARSED.get(text) if isinstance(text, str) else None  # views parse each address 3-4 times
        if hit is not None:
            return hit
        if not isinstance(text, str):
            raise InvalidAddress(str(text), "not a string")
        s = text.strip(" \t")
        m = _RE.fullmatch(s) if len(s) <= 16 else None
        if not m:
            raise InvalidAddress(text[:40], "not of the form [DDDD:]BB:SS.F in hexadecimal")
        domain = int(m["domain"] or "0", 16)
        bus = int(m["bus"], 16)
        slot = int(m["slot"], 16)
        function = int(m["function"], 16)
        if slot > 0x1F:
            raise InvalidAddress(text, f"slot {slot:#x} is out of range 00-1f")
        if function > 7:
            raise InvalidAddress(text, f"function {function} is out of range 0-7")
        a = cls(domain, bus, slot, function)
        if len(_PARSED) < 1 << 16:  # bounded: a hostile snapshot cannot grow it without end
            _PARSED[text] = a
        return a

    @classmethod
    def is_valid(cls, text: str) -> bool:
        try:
            cls.parse(text)
        except InvalidAddress:
            return False
        return True

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def short(self) -> str:
        """``03:10.3`` when the domain is 0, else the full form."""
        if self.domain:
            return str(self)
        return f"{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def slot_key(self) -> tuple[int, int, int]:
        """(domain, bus, slot): functions with the same key share a physical slot."""
        return (self.domain, self.bus, self.slot)

    def with_function(self, function: int) -> "PciAddress":
        return PciAddress(self.domain, self.bus, self.slot, function)


def kernel_name(name: str | None) -> PciAddress | None:
    """The address a sysfs name spells in the kernel's form (``0000:03:00.0``); None for any
    other text (a short or upper-case form is user input, never a kernel's name)."""
    if not name or _KERNEL_NAME.fullmatch(name) is None:
        return None
    return PciAddress.parse(name)
