"""Selectors: name devices by what they are (model, class, driver, NUMA node, PF and VF range,
count), not only by address, and choose the same ones every time.

A :class:`Match` is parsed from a config ``match`` table or a CLI spec
(``id:10de:2335``, ``class:nvme``, ``pf:0000:03:00.0/vfs:0-1``) and tested
against a :class:`~vfioctl.ops.state.DeviceState`.  :func:`choose` decides what a
selector takes, purely: the devices the journal says the same entry took (while
they still match) first, then free ones in address order; with ``count`` it
never takes a device the host uses or another entry took, and refuses when
fewer than ``count`` are free, naming every candidate and why it was passed
over.  Peers select the same way (the SR-IOV network device plugin's
vendors/devices/pfNames, nova's device_spec, KubeVirt's pciHostDevices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vfioctl.base.errors import InvalidAddress, InvalidInput, Refused
from vfioctl.base.names import DRIVER_NAME_RE, is_vfio_driver_name, parse_id
from vfioctl.pci.address import PciAddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vfioctl.ops.state import DeviceState, HostState

#: class names a selector accepts -> (class code, how many leading hex digits must match)
CLASS_NAMES: dict[str, tuple[int, int]] = {
    "storage": (0x010000, 2), "scsi": (0x010000, 4), "ide": (0x010100, 4), "raid": (0x010400, 4),
    "sata": (0x010600, 4), "ahci": (0x010601, 6), "sas": (0x010700, 4), "nvme": (0x010802, 6),
    "network": (0x020000, 2), "ethernet": (0x020000, 4), "infiniband": (0x020700, 4),
    "display": (0x030000, 2), "gpu": (0x030000, 2), "vga": (0x030000, 4), "3d": (0x030200, 4),
    "multimedia": (0x040000, 2), "audio": (0x040300, 4), "hda": (0x040300, 4),
    "usb": (0x0C0300, 4), "serial-bus": (0x0C0000, 2), "fpga": (0x120000, 2), "accelerator": (0x120000, 2),
}
_CLASS_HEX = re.compile(r"(?:0x)?([0-9a-fA-F]{2}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6})")
_RANGE = re.compile(r"([0-9]{1,4})(?:-([0-9]{1,4}))?")
MAX_VF_INDEX = 4095


def parse_class(text: object, where: str) -> tuple[int, int]:
    """``"nvme"``, ``"03"``, ``"0300"``, ``"0x010802"`` -> (code, hex digits compared)."""
    if isinstance(text, str):
        t = text.strip().lower()
        if t in CLASS_NAMES:
            return CLASS_NAMES[t]
        m = _CLASS_HEX.fullmatch(t)
        if m:
            digits = len(m[1])
            return int(m[1], 16) << (4 * (6 - digits)), digits
    raise InvalidInput(f"{where}: class = {str(text)[:40]!r} is neither a class code (02, 0300, 0x010802) nor one of "
                       f"{', '.join(sorted(CLASS_NAMES))}")


#: the most ranges or numbers one ``vfs`` may list (one per VF index at most)
MAX_VF_PARTS = MAX_VF_INDEX + 1


def parse_vfs(text: object, where: str) -> tuple[int, ...]:
    """``"0-3"``, ``"0,2,5-6"`` or a list of numbers -> VF indices, sorted, each once.

    Every range is checked before anything is expanded, and the parts are bounded, so the
    cost is proportional to the indices that can exist (a 1 MiB selector took 30 s)."""
    bad = InvalidInput(f"{where}: vfs = {str(text)[:40]!r}: expected indices like \"0-3\" or \"0,2,5-6\"")
    spans: list[tuple[int, int]] = []
    if isinstance(text, list):
        if len(text) > MAX_VF_PARTS or not all(isinstance(x, int) and not isinstance(x, bool) for x in text):
            raise bad
        spans = [(i, i) for i in text]
    elif isinstance(text, int) and not isinstance(text, bool):
        spans = [(text, text)]
    elif isinstance(text, str) and text.strip():
        if len(text) > 8 * MAX_VF_PARTS or text.count(",") >= MAX_VF_PARTS:
            raise bad
        for part in text.split(","):
            m = _RANGE.fullmatch(part.strip())
            if not m:
                raise bad
            lo, hi = int(m[1]), int(m[2] or m[1])
            if hi < lo:
                raise InvalidInput(f"{where}: vfs range {part.strip()} runs backwards")
            spans.append((lo, hi))
    else:
        raise bad
    if any(not 0 <= lo <= hi <= MAX_VF_INDEX for lo, hi in spans):
        raise InvalidInput(f"{where}: VF indices run from 0 to {MAX_VF_INDEX}")
    marks = bytearray(MAX_VF_INDEX + 1)
    for lo, hi in spans:
        marks[lo:hi + 1] = b"\x01" * (hi + 1 - lo)
    return tuple(i for i, on in enumerate(marks) if on)


@dataclass(frozen=True)
class Match:
    """What a device must be.  Every field given must hold; absent fields match anything."""

    ids: tuple[tuple[str, str], ...] = ()
    subsystem: tuple[str, str] | None = None
    class_code: tuple[int, int] | None = None
    driver: str | None = None
    numa_node: int | None = None
    pf: PciAddress | None = None
    vfs: tuple[int, ...] | None = None

    def describe(self) -> str:
        parts = []
        if self.ids:
            parts.append("id " + "|".join(":".join(i) for i in self.ids))
        if self.subsystem:
            parts.append("subsystem " + ":".join(self.subsystem))
        if self.class_code:
            code, digits = self.class_code
            parts.append(f"class {code >> (4 * (6 - digits)):0{digits}x}")
        if self.driver:
            parts.append(f"driver {self.driver}")
        if self.numa_node is not None:
            parts.append(f"NUMA node {self.numa_node}")
        if self.pf:
            parts.append(f"VFs {_ranges(self.vfs) if self.vfs is not None else 'all'} of {self.pf}")
        return ", ".join(parts) or "any device"

    def to_dict(self) -> dict:
        return {"id": [":".join(i) for i in self.ids] or None,
                "subsystem": ":".join(self.subsystem) if self.subsystem else None,
                "class": f"{self.class_code[0]:06x}/{self.class_code[1]}" if self.class_code else None,
                "driver": self.driver, "numa_node": self.numa_node,
                "pf": str(self.pf) if self.pf else None, "vfs": list(self.vfs) if self.vfs is not None else None}

    def vf_index(self, state: HostState, dev: DeviceState) -> int | None:
        pf = state.get(self.pf) if self.pf else None
        if pf is None or pf.sriov is None or dev.address not in pf.sriov.vfs:
            return None
        return pf.sriov.vfs.index(dev.address)

    def matches(self, state: HostState, dev: DeviceState) -> bool:
        if dev.is_bridge:
            return False
        if self.ids and (dev.vendor_id, dev.device_id) not in self.ids:
            return False
        if self.subsystem and dev.subsystem != self.subsystem:
            return False
        if self.class_code:
            code, digits = self.class_code
            if f"{dev.class_code:06x}"[:digits] != f"{code:06x}"[:digits]:
                return False
        if self.driver is not None and (dev.driver or "none") != self.driver:
            return False
        if self.numa_node is not None and dev.numa_node != self.numa_node:
            return False
        if self.pf is not None:
            i = self.vf_index(state, dev)
            if i is None or (self.vfs is not None and i not in self.vfs):
                return False
        return True


def _ranges(idx: tuple[int, ...] | None) -> str:
    if not idx:
        return "none"
    out, start, prev = [], idx[0], idx[0]
    for i in idx[1:] + (-2,):
        if i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ",".join(out)


MATCH_KEYS = ("id", "subsystem", "class", "driver", "numa_node", "pf", "vfs")


def from_table(table: object, where: str) -> Match:
    """A config ``match = { ... }`` table, validated whole."""
    if not isinstance(table, dict) or not table:
        raise InvalidInput(f"{where}: match must be a table such as match = {{ id = \"8086:10d3\" }}")
    for k in table:
        if k not in MATCH_KEYS:
            raise InvalidInput(f"{where}: match: unknown key {str(k)[:40]!r} (allowed: {', '.join(MATCH_KEYS)})")
    ids: list[tuple[str, str]] = []
    raw_ids = table.get("id", [])
    for v in raw_ids if isinstance(raw_ids, list) else [raw_ids]:
        pair = parse_id(v) if isinstance(v, str) else None
        if pair is None:
            raise InvalidInput(f"{where}: match id {str(v)[:40]!r} is not vvvv:dddd in hexadecimal")
        ids.append(pair)
    sub = None
    if "subsystem" in table:
        sub = parse_id(table["subsystem"]) if isinstance(table["subsystem"], str) else None
        if sub is None:
            raise InvalidInput(f"{where}: match subsystem {str(table['subsystem'])[:40]!r} is not vvvv:dddd")
    cls = parse_class(table["class"], where + ": match") if "class" in table else None
    drv = table.get("driver")
    if drv is not None and not (isinstance(drv, str) and (drv == "none" or DRIVER_NAME_RE.fullmatch(drv))):
        raise InvalidInput(f"{where}: match driver {str(drv)[:40]!r} is not a driver name (or \"none\")")
    numa = table.get("numa_node")
    if numa is not None and (isinstance(numa, bool) or not isinstance(numa, int) or not 0 <= numa < 1024):
        raise InvalidInput(f"{where}: match numa_node = {str(numa)[:20]} must be a node number")
    pf = None
    if "pf" in table:
        try:
            pf = PciAddress.parse(table["pf"])
        except InvalidAddress as err:
            raise InvalidInput(f"{where}: match pf: {err.message}") from None
    vfs = parse_vfs(table["vfs"], where + ": match") if "vfs" in table else None
    if vfs is not None and pf is None:
        raise InvalidInput(f"{where}: match vfs needs pf (the physical function whose VFs these are)")
    return Match(tuple(dict.fromkeys(ids)), sub, cls, drv, numa, pf, vfs)


def from_spec(spec: str) -> Match | None:
    """A CLI selector: ``id:VVVV:DDDD``, ``class:NAME|CODE``, ``pf:ADDR/vfs:RANGE``; None otherwise."""
    s = spec.strip()
    # the spec names the error's place: shown as typed, or quoted when it holds a newline
    where = spec if spec.isprintable() and len(spec) <= 80 else repr(spec[:80])
    if s.startswith("id:"):
        return from_table({"id": s[3:]}, where)
    if s.startswith("class:"):
        return from_table({"class": s[6:]}, where)
    if s.startswith("pf:"):
        pf, sep, rest = s[3:].partition("/")
        table: dict = {"pf": pf}
        if sep:
            if not rest.startswith("vfs:"):
                raise InvalidInput(f"{spec!r}: expected pf:ADDRESS/vfs:RANGE, e.g. pf:0000:03:00.0/vfs:0-1")
            table["vfs"] = rest[4:]
        return from_table(table, where)
    return None


# ------------------------------------------------------------------ choosing
@dataclass
class Choice:
    """What a selector took, and why each other candidate was passed over."""

    chosen: list[PciAddress] = field(default_factory=list)
    #: (address, why it was not taken)
    skipped: list[tuple[PciAddress, str]] = field(default_factory=list)

    def notes(self, what: str) -> list[str]:
        return [f"{what}: passed over {a}: {why}" for a, why in self.skipped]


def choose(state: HostState, match: Match, *, count: int | None, entry: str, taken: set[PciAddress],
           target_driver: str = "vfio-pci", boot: bool = False, take_bound: bool = False) -> Choice:
    """The devices *match* takes: the journal's choice for *entry* first (while it still matches),
    then free devices in address order.  With *count*, devices the host uses, devices another
    entry took, and (at *boot*) devices a host driver claimed are passed over, and fewer than
    *count* free devices is a refusal that names every candidate."""
    cands = sorted(a for a, d in state.devices.items() if match.matches(state, d))
    previous = [a for a in cands if (r := state.journal_devices.get(str(a))) is not None and r.entry == entry]
    order = previous + [a for a in cands if a not in previous]
    others = {PciAddress.parse(k) for k, r in state.journal_devices.items() if r.entry and r.entry != entry}
    out = Choice()
    for a in order:
        d = state.devices[a]
        if count is not None and len(out.chosen) >= count:
            break
        if a in taken:
            out.skipped.append((a, "another entry takes it"))
            continue
        on_vfio = bool(d.driver) and is_vfio_driver_name(d.driver)
        if count is not None and d.in_use and d.driver != target_driver:
            out.skipped.append((a, "the host uses it: " + "; ".join(d.in_use_text)))
            continue
        if count is not None and a in others:
            out.skipped.append((a, "another selector chose it earlier (journal)"))
            continue
        if boot and not take_bound and d.driver and not on_vfio and a not in previous:
            out.skipped.append((a, f"host driver {d.driver} claimed it at boot (take_bound = true allows it)"))
            continue
        out.chosen.append(a)
    if count is not None and len(out.chosen) < count:
        found = "; ".join(f"{a} ({why})" for a, why in out.skipped) or "none"
        raise Refused(f"{entry}: needs {count} free device(s) matching {match.describe()}, found "
                      f"{len(out.chosen)}{' (' + ', '.join(map(str, out.chosen)) + ')' if out.chosen else ''}; "
                      f"candidates passed over: {found}; nothing was changed", entry=entry)
    return out
