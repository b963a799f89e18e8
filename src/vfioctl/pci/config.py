"""Parse a PCI function's configuration space, as read from sysfs ``config``.  Pure.

Everything here is computed from the bytes alone, which are hostile: any length
(sysfs gives 64 bytes to non-root readers, 128 for CardBus, 256 or 4096 to root),
any content.  :func:`parse` never raises on bytes; what could not be read because
the read was short is listed in :attr:`ConfigSpace.unreadable`, and what looks
wrong (a capability list that loops) in :attr:`ConfigSpace.problems`.

Layouts and constants are the kernel's (include/uapi/linux/pci_regs.h); the
capability walks follow drivers/pci/pci.c: ``__pci_find_next_cap_ttl`` (at most
48 entries, a pointer below 0x40 ends the walk, the low two bits of a pointer
are ignored) and ``pci_find_next_ext_capability`` (from 0x100, at most
(4096 - 256) / 8 entries, a next pointer below 0x100 ends the walk).
"""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput
from vfioctl.base.record import frozen

# include/uapi/linux/pci_regs.h
PCI_STATUS_CAP_LIST = 0x10
PCI_CAPABILITY_LIST = 0x34
PCI_CB_CAPABILITY_LIST = 0x14
PCI_CAP_ID_EXP = 0x10
PCI_EXP_FLAGS_TYPE = 0x00F0
PCI_EXP_FLAGS_SLOT = 0x0100
PCI_EXT_CAP_ID_ACS = 0x000D
PCI_ACS_CAP = 0x04
PCI_ACS_CTRL = 0x06

PCI_ACS_SV = 0x0001  # Source Validation
PCI_ACS_TB = 0x0002  # Translation Blocking
PCI_ACS_RR = 0x0004  # P2P Request Redirect
PCI_ACS_CR = 0x0008  # P2P Completion Redirect
PCI_ACS_UF = 0x0010  # Upstream Forwarding
PCI_ACS_EC = 0x0020  # P2P Egress Control
PCI_ACS_DT = 0x0040  # Direct Translated P2P
#: the ACS bits by name, in the order lspci prints them
ACS_FLAGS: tuple[tuple[str, int], ...] = (
    ("SV", PCI_ACS_SV), ("TB", PCI_ACS_TB), ("RR", PCI_ACS_RR), ("CR", PCI_ACS_CR),
    ("UF", PCI_ACS_UF), ("EC", PCI_ACS_EC), ("DT", PCI_ACS_DT),
)

# PCI Express capability, Device/Port Type (PCI_EXP_TYPE_*)
PCI_EXP_TYPE_ENDPOINT = 0x0
PCI_EXP_TYPE_LEG_END = 0x1
PCI_EXP_TYPE_ROOT_PORT = 0x4
PCI_EXP_TYPE_UPSTREAM = 0x5
PCI_EXP_TYPE_DOWNSTREAM = 0x6
PCI_EXP_TYPE_PCI_BRIDGE = 0x7   # PCIe-to-PCI/PCI-X bridge
PCI_EXP_TYPE_PCIE_BRIDGE = 0x8  # PCI/PCI-X-to-PCIe bridge
PCI_EXP_TYPE_RC_END = 0x9       # Root Complex integrated endpoint
PCI_EXP_TYPE_RC_EC = 0xA        # Root Complex event collector

PORT_TYPE_NAMES = {
    PCI_EXP_TYPE_ENDPOINT: "endpoint",
    PCI_EXP_TYPE_LEG_END: "legacy endpoint",
    PCI_EXP_TYPE_ROOT_PORT: "root port",
    PCI_EXP_TYPE_UPSTREAM: "upstream port",
    PCI_EXP_TYPE_DOWNSTREAM: "downstream port",
    PCI_EXP_TYPE_PCI_BRIDGE: "PCIe-to-PCI bridge",
    PCI_EXP_TYPE_PCIE_BRIDGE: "PCI-to-PCIe bridge",
    PCI_EXP_TYPE_RC_END: "root complex integrated endpoint",
    PCI_EXP_TYPE_RC_EC: "root complex event collector",
}

CAP_NAMES = {
    0x01: "Power Management", 0x05: "MSI", 0x09: "Vendor Specific", 0x0D: "Subsystem ID",
    0x10: "PCI Express", 0x11: "MSI-X", 0x12: "SATA", 0x13: "Advanced Features",
}
EXT_CAP_NAMES = {
    0x0001: "AER", 0x0002: "VC", 0x0003: "Serial Number", 0x000B: "Vendor Specific",
    0x000D: "ACS", 0x000E: "ARI", 0x000F: "ATS", 0x0010: "SR-IOV", 0x0013: "PRI",
    0x0015: "Resizable BAR", 0x0017: "TPH", 0x0018: "LTR", 0x0019: "Secondary PCIe",
    0x001B: "PASID", 0x001D: "DPC", 0x001E: "L1 PM Substates", 0x0023: "DVSEC",
}

_CAP_TTL = 48  # drivers/pci/pci.c PCI_FIND_CAP_TTL
_CFG_SPACE_SIZE = 256
_CFG_SPACE_EXP_SIZE = 4096
_EXT_TTL = (_CFG_SPACE_EXP_SIZE - _CFG_SPACE_SIZE) // 8  # pci_find_next_ext_capability


def acs_names(bits: int) -> tuple[str, ...]:
    """``0x1d`` -> ``("SV", "RR", "CR", "UF")``."""
    return tuple(name for name, bit in ACS_FLAGS if bits & bit)


@frozen
class Capability:
    """One entry of the standard capability list."""

    id: int
    offset: int

    @property
    def name(self) -> str:
        return CAP_NAMES.get(self.id, f"capability {self.id:#04x}")


@frozen
class ExtCapability:
    """One entry of the extended (PCI Express) capability list."""

    id: int
    version: int
    offset: int

    @property
    def name(self) -> str:
        return EXT_CAP_NAMES.get(self.id, f"extended capability {self.id:#06x}")


@frozen
class PcieCap:
    """The PCI Express capability: which kind of PCIe function this is."""

    offset: int
    version: int
    port_type: int
    slot_implemented: bool

    @property
    def type_name(self) -> str:
        return PORT_TYPE_NAMES.get(self.port_type, f"PCIe type {self.port_type:#x}")


@frozen
class AcsCap:
    """The ACS extended capability: what the port can do (``cap``) and what is on (``ctrl``).

    ``ctrl`` is None when the capability header was read but the control word was
    cut off by a short read.  ``ctrl_dword`` is the 32-bit word at offset 8, which is
    where Intel Sunrise/Union Point root ports keep their real control bits
    (drivers/pci/quirks.c ``pci_quirk_intel_spt_pch_acs``); None when unreadable.
    """

    offset: int
    cap: int
    ctrl: int | None
    cap_dword: int | None = None
    ctrl_dword: int | None = None

    @property
    def capable(self) -> tuple[str, ...]:
        return acs_names(self.cap)

    @property
    def enabled(self) -> tuple[str, ...]:
        return acs_names(self.ctrl or 0)

    def missing(self, required: int) -> tuple[str, ...] | None:
        """Required controls the port implements but has not enabled (``pci_acs_flags_enabled``:
        a control the capability does not implement is taken as hard-wired on, except EC).
        None when the control word is unreadable."""
        if self.ctrl is None:
            return None
        wanted = required & (self.cap | PCI_ACS_EC)
        return acs_names(wanted & ~self.ctrl)

    def to_dict(self) -> dict:
        return {"offset": self.offset, "cap": self.cap, "ctrl": self.ctrl,
                "capable": list(self.capable), "enabled": list(self.enabled) if self.ctrl is not None else None}


@frozen
class ConfigSpace:
    """What the config bytes say.  ``None`` for a field means the read was too short for it."""

    length: int
    vendor_id: int | None
    device_id: int | None
    command: int | None
    status: int | None
    revision: int | None
    class_code: int | None
    #: header layout, multifunction bit cleared: 0 endpoint, 1 PCI-PCI bridge, 2 CardBus
    header_type: int | None
    multifunction: bool | None
    subsystem_vendor_id: int | None
    subsystem_device_id: int | None
    primary_bus: int | None
    secondary_bus: int | None
    subordinate_bus: int | None
    capabilities: tuple[Capability, ...]
    #: True when the standard list was walked to its end (or there is none)
    capabilities_complete: bool
    pcie: PcieCap | None
    ext_capabilities: tuple[ExtCapability, ...]
    #: True when the extended list was walked to its end, or cannot exist (config
    #: space of 256 bytes, or a function that is not PCI Express)
    ext_complete: bool
    acs: AcsCap | None
    #: what a short read left unread, in words (e.g. "the capability list from 0x8c")
    unreadable: tuple[str, ...]
    #: oddities in the bytes (loops, bad pointers), in words
    problems: tuple[str, ...]

    # ------------------------------------------------------------ derived
    @property
    def is_bridge(self) -> bool | None:
        return None if self.header_type is None else self.header_type in (1, 2)

    @property
    def is_pcie(self) -> bool | None:
        """True/False when known; None when the capability list was cut off before
        a PCI Express capability was found."""
        if self.pcie is not None:
            return True
        return False if self.capabilities_complete else None

    @property
    def port_type(self) -> int | None:
        return self.pcie.port_type if self.pcie else None

    @property
    def acs_known(self) -> bool:
        """Whether the presence (and, if present, the bits) of ACS is known."""
        if self.acs is not None:
            return self.acs.ctrl is not None
        if self.is_pcie is False:
            return True
        return self.is_pcie is True and self.ext_complete

    def to_dict(self) -> dict:
        return {
            "length": self.length,
            "vendor_id": _hex(self.vendor_id, 4), "device_id": _hex(self.device_id, 4),
            "class": _hex(self.class_code, 6),
            "header_type": self.header_type, "multifunction": self.multifunction,
            "buses": None if self.secondary_bus is None else
            {"primary": self.primary_bus, "secondary": self.secondary_bus, "subordinate": self.subordinate_bus},
            "capabilities": [{"id": c.id, "name": c.name, "offset": c.offset} for c in self.capabilities],
            "pcie": None if self.pcie is None else {"type": self.pcie.type_name, "port_type": self.pcie.port_type,
                                                    "slot_implemented": self.pcie.slot_implemented},
            "ext_capabilities": [{"id": c.id, "name": c.name, "offset": c.offset} for c in self.ext_capabilities],
            "acs": None if self.acs is None else self.acs.to_dict(),
            "unreadable": list(self.unreadable),
            "problems": list(self.problems),
        }


def _hex(v: int | None, width: int) -> str | None:
    return None if v is None else f"{v:0{width}x}"


class _Bytes:
    """Little-endian reads that answer None past the end instead of raising."""

    __slots__ = ("b",)

    def __init__(self, b: bytes) -> None:
        self.b = b

    def u8(self, off: int) -> int | None:
        return self.b[off] if 0 <= off < len(self.b) else None

    def u16(self, off: int) -> int | None:
        if off < 0 or off + 2 > len(self.b):
            return None
        return self.b[off] | self.b[off + 1] << 8

    def u32(self, off: int) -> int | None:
        if off < 0 or off + 4 > len(self.b):
            return None
        return int.from_bytes(self.b[off:off + 4], "little")


def parse(data: bytes | bytearray | memoryview, *, extended_read: bool = True) -> ConfigSpace:
    """Parse config space bytes of any length.  Raises only InvalidInput for a non-bytes argument.

    ``extended_read=False`` says the reader stopped at 256 bytes on purpose: the extended
    capabilities are then unknown (``ext_complete`` False), not absent."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidInput(f"config space must be bytes, got {type(data).__name__}")
    raw = bytes(data[:_CFG_SPACE_EXP_SIZE])
    r = _Bytes(raw)
    n = len(raw)
    unreadable: list[str] = []
    problems: list[str] = []

    vendor, device = r.u16(0x00), r.u16(0x02)
    command, status = r.u16(0x04), r.u16(0x06)
    revision = r.u8(0x08)
    cls = r.u32(0x08)
    class_code = None if cls is None else cls >> 8
    hdr = r.u8(0x0E)
    header_type = None if hdr is None else hdr & 0x7F
    multifunction = None if hdr is None else bool(hdr & 0x80)
    if n < 0x40:
        unreadable.append(f"the standard header (bytes {n:#x}-0x3f)")

    ssvid = ssid = prim = sec = sub = None
    if header_type == 0:
        ssvid, ssid = r.u16(0x2C), r.u16(0x2E)
    elif header_type == 1:
        prim, sec, sub = r.u8(0x18), r.u8(0x19), r.u8(0x1A)

    caps, caps_complete = _walk_caps(r, status, header_type, unreadable, problems)
    pcie = None
    for c in caps:
        if c.id == PCI_CAP_ID_EXP:
            flags = r.u16(c.offset + 2)
            if flags is None:
                unreadable.append(f"the PCI Express capability flags at {c.offset + 2:#x}")
                caps_complete = False  # we cannot say what kind of PCIe function it is
                break
            pcie = PcieCap(c.offset, flags & 0xF, (flags & PCI_EXP_FLAGS_TYPE) >> 4, bool(flags & PCI_EXP_FLAGS_SLOT))
            break  # the kernel uses the first one (pci_find_capability)

    ext: tuple[ExtCapability, ...] = ()
    ext_complete = True
    acs = None
    if pcie is not None or not caps_complete:
        # Extended config space exists only for PCIe (and PCI-X 2.0) functions with a
        # config space larger than 256 bytes (drivers/pci/probe.c pci_cfg_space_size).
        if n <= _CFG_SPACE_SIZE and not extended_read:
            ext_complete = False  # not read: the caller did not need them
        elif n <= _CFG_SPACE_SIZE:
            if n < _CFG_SPACE_SIZE:
                ext_complete = False
                unreadable.append(f"the extended capabilities (the read gave {n} bytes; root reads 256 or 4096)")
            # exactly 256 bytes: the kernel's own config size for this function, so no
            # extended capabilities exist for it (pci_find_next_ext_capability returns 0)
        else:
            ext, ext_complete = _walk_ext(r, unreadable, problems)
            for ec in ext:
                if ec.id == PCI_EXT_CAP_ID_ACS:
                    acs = AcsCap(ec.offset, r.u16(ec.offset + PCI_ACS_CAP) or 0, r.u16(ec.offset + PCI_ACS_CTRL),
                                 r.u32(ec.offset + PCI_ACS_CAP), r.u32(ec.offset + 8))
                    if r.u16(ec.offset + PCI_ACS_CTRL) is None:
                        unreadable.append(f"the ACS control register at {ec.offset + PCI_ACS_CTRL:#x}")
                    break

    return ConfigSpace(
        length=n, vendor_id=vendor, device_id=device, command=command, status=status,
        revision=revision, class_code=class_code, header_type=header_type, multifunction=multifunction,
        subsystem_vendor_id=ssvid, subsystem_device_id=ssid,
        primary_bus=prim, secondary_bus=sec, subordinate_bus=sub,
        capabilities=tuple(caps), capabilities_complete=caps_complete, pcie=pcie,
        ext_capabilities=ext, ext_complete=ext_complete, acs=acs,
        unreadable=tuple(unreadable), problems=tuple(problems),
    )


def _walk_caps(r: _Bytes, status: int | None, header_type: int | None,
               unreadable: list[str], problems: list[str]) -> tuple[list[Capability], bool]:
    """The standard capability list (drivers/pci/pci.c __pci_bus_find_cap_start and
    __pci_find_next_cap_ttl).  Returns (entries, walked to the end)."""
    if status is None or header_type is None:
        unreadable.append("the capability list (status register unread)")
        return [], False
    if not status & PCI_STATUS_CAP_LIST:
        return [], True
    start = PCI_CB_CAPABILITY_LIST if header_type == 2 else PCI_CAPABILITY_LIST
    pos = r.u8(start)
    if pos is None:
        unreadable.append(f"the capability pointer at {start:#x}")
        return [], False
    out: list[Capability] = []
    seen: set[int] = set()
    for _ in range(_CAP_TTL):
        if pos < 0x40:
            return out, True
        if pos & 3:
            problems.append(f"misaligned capability pointer {pos:#x} (the kernel ignores the low two bits)")
        pos &= ~3
        ent = r.u16(pos)
        if ent is None:
            unreadable.append(f"the capability list from {pos:#x} (the read gave {len(r.b)} bytes; root reads 256)")
            return out, False
        cid = ent & 0xFF
        if cid == 0xFF:
            return out, True
        if pos in seen:
            problems.append(f"the capability list loops back to {pos:#x}")
            return out, True
        seen.add(pos)
        out.append(Capability(cid, pos))
        pos = ent >> 8
    problems.append(f"the capability list has more than {_CAP_TTL} entries; the walk stopped there")
    return out, True


def _walk_ext(r: _Bytes, unreadable: list[str], problems: list[str]) -> tuple[tuple[ExtCapability, ...], bool]:
    """The extended capability list from 0x100 (drivers/pci/pci.c pci_find_next_ext_capability)."""
    pos = _CFG_SPACE_SIZE
    header = r.u32(pos)
    if header is None:
        unreadable.append("the extended capability header at 0x100")
        return (), False
    if header == 0:  # no extended capabilities
        return (), True
    out: list[ExtCapability] = []
    seen: set[int] = set()
    for _ in range(_EXT_TTL):
        if pos in seen:
            problems.append(f"the extended capability list loops back to {pos:#x}")
            return tuple(out), True
        seen.add(pos)
        out.append(ExtCapability(header & 0xFFFF, (header >> 16) & 0xF, pos))
        pos = (header >> 20) & 0xFFC
        if pos < _CFG_SPACE_SIZE:
            return tuple(out), True
        header = r.u32(pos)
        if header is None:
            unreadable.append(f"the extended capability list from {pos:#x} (the read gave {len(r.b)} bytes)")
            return tuple(out), False
    problems.append(f"the extended capability list has more than {_EXT_TTL} entries; the walk stopped there")
    return tuple(out), True
