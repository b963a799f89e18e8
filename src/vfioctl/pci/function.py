"""The one record of a PCI function: its facts at one host state, each read once.

:class:`PciFunction` is everything vfioctl knows of one function, read from its sysfs folder
through :class:`~vfioctl.host.core.Host`: identity (the ``uevent``, or the attribute files
where it lacks a key), where it sits (the folder above it: a bridge or a root bus), its
config space (as far as it is needed), its links (``driver``, ``iommu_group``, ``physfn``,
``virtfnN``), binding (``driver_override``), reset methods, SR-IOV counts, NUMA node and
boot VGA flag.  A fact is read the first time it is asked for and kept, so each file is read
at most once per record, and a record is one reading of the host: asked for a fact it has not
read after the host changed (any write through the Host bumps its generation), it refuses
rather than mix two states.

Each fact has one parser, here.  Everything else is a view of the record:
:class:`~vfioctl.pci.device.PciDevice` (the live handle users hold) answers through a record of
the host's current state; the planners' :class:`~vfioctl.ops.state.DeviceState`, the
topology the grouping replay walks (:mod:`vfioctl.pci.topology`), the reset nodes
(:func:`vfioctl.pci.reset.reset_nodes`), the topology picture
(:mod:`vfioctl.report.topology`) and assess's facts are built from records.

Unknown is not absent: a fact that could not be read is None, and :meth:`PciFunction.why_unknown`
says why; a missing file is "no" only where the kernel's rule makes it so (no ``physfn`` link:
not a VF; no ``sriov_totalvfs``: not an SR-IOV PF; no ``boot_vga`` on a function that is not
VGA: the kernel creates it only for VGA functions).
"""

from __future__ import annotations

import re

from vfioctl.base.errors import InvalidInput, VfioctlError
from vfioctl.base.names import group_number, is_reset_method_name
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress, kernel_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable

    from vfioctl.pci.config import ConfigSpace

PCI_DEVICES = "/sys/bus/pci/devices"
PCI_DRIVERS = "/sys/bus/pci/drivers"

#: the reset methods of a kernel before 5.15, which has a ``reset`` file but no ``reset_method``:
#: some method works, which one is unknown
UNKNOWN_RESET = "unknown"

#: config space: the header (IDs, class, header type), the standard 256 bytes, all of it
HEADER_BYTES, STANDARD_BYTES, EXTENDED_BYTES = 16, 256, 4096

# the patterns every listing uses are compiled here; the others (re.fullmatch with the text of
# the pattern) when first used: compiling one costs ~0.1 ms of every start-up
_ID_PAIR = re.compile(r"([0-9A-F]{4}):([0-9A-F]{4})")
_HEX_CLASS = re.compile(r"(?:0x)?([0-9a-f]{1,6})")
_ROOT_BUS = r"pci[0-9a-f]{4,8}:[0-9a-f]{2}"
_HEX_ID = r"(?:0x)?([0-9a-f]{1,4})"
_VIRTFN = r"virtfn([0-9]{1,5})"
_SMALL_INT = r"(?:0x[0-9a-f]{1,4}|[0-9]{1,5})"


# ------------------------------------------------------------------ parsers: one per fact
def parse_uevent(text: str | None) -> dict[str, str]:
    """``KEY=value`` lines; later lines win, lines without ``=`` are skipped."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        k, eq, v = line.partition("=")
        if eq:
            out[k] = v
    return out


def parse_hex_id(text: str | None) -> int | None:
    """A 16-bit ID as sysfs and the uevent write it (``0x10d3``, ``10D3``); None for anything else."""
    m = re.fullmatch(_HEX_ID, text.strip().lower()) if text else None
    return int(m[1], 16) if m else None


def parse_id_pair(text: str | None) -> tuple[int | None, int | None]:
    """The uevent's ``PCI_ID``/``PCI_SUBSYS_ID`` value ``8086:10D3``; (None, None) for anything else."""
    if not text:
        return None, None
    m = _ID_PAIR.fullmatch(text)  # what the kernel writes ("%04X:%04X"), in one match
    if m:
        return int(m[1], 16), int(m[2], 16)
    a, _, b = text.partition(":")
    return parse_hex_id(a), parse_hex_id(b)


def parse_class(text: str | None) -> int | None:
    """A 24-bit class code (``0x020000``, the uevent's ``20000``); None for anything else."""
    m = _HEX_CLASS.fullmatch(text.strip().lower()) if text else None
    return int(m[1], 16) if m else None


def hex4(value: int | None) -> str | None:
    """An ID as vfioctl shows it: 4 lowercase hex digits, None when unknown."""
    return None if value is None else f"{value:04x}"


def parse_small_int(text: str | None) -> int | None:
    """An SR-IOV count or offset (decimal, or hex with 0x); None outside 0..65535 or garbage."""
    t = text.strip().lower() if text else ""
    if not re.fullmatch(_SMALL_INT, t):
        return None
    n = int(t, 0) if t.startswith("0x") else int(t)
    return n if n < 1 << 16 else None


def parse_numa_node(text: str | None) -> int | None:
    """``numa_node``: the node, or None for -1 (no node, or the firmware does not say) and garbage."""
    t = text.strip() if text else ""
    return int(t) if re.fullmatch(r"[0-9]{1,4}", t) else None


def parse_revision(text: str | None) -> str | None:
    """``0x01`` -> ``01``."""
    r = text.strip().lower().removeprefix("0x") if text else ""
    return r.rjust(2, "0") if re.fullmatch(r"[0-9a-f]{1,2}", r) else None


def parse_override(text: str | None) -> str | None:
    """``driver_override``: the driver named, None for none (the kernel shows ``(null)``)."""
    return None if text in (None, "", "(null)") else text


def parse_reset_methods(text: str) -> tuple[str, ...]:
    """``reset_method``: the method names in the kernel's order (at most 16; junk dropped)."""
    return tuple(m for m in text.split() if is_reset_method_name(m))[:16]


def header_type_from_class(class_code: int | None) -> int:
    """The header type a class implies, for a function whose config space cannot be read:
    PCI-to-PCI bridges (0604, 0609) have type 1, CardBus bridges (0607) type 2."""
    sub = (class_code or 0) >> 8
    return 1 if sub in (0x0604, 0x0609) else 2 if sub == 0x0607 else 0


def is_bridge_header(header_type: int | None) -> bool:
    """Anything but a normal header (type 0) is a bridge: drivers/vfio/group.c
    vfio_dev_driver_allowed lets such a member stay on its driver, and vfio-pci refuses it
    (vfio_pci_core_register_device).  The header type decides, not the class: the kernel
    keeps a bridge header whatever the class says (drivers/pci/probe.c pci_setup_device)."""
    return (header_type or 0) != 0


def root_bus_of(address: PciAddress) -> str:
    """The root bus name a function on a root bus has: ``pci0000:00``."""
    return f"pci{address.domain:04x}:{address.bus:02x}"


def function_addresses(host: Host) -> list[PciAddress]:
    """Every PCI function the host lists under /sys/bus/pci/devices, in address order (names
    only in the kernel's spelling: anything else in the folder is not a function)."""
    return [a for a, _, _ in _listed(host)]


def _listed(host: Host) -> list[tuple[PciAddress, str, str | None]]:
    """(address, name, where its link points when that was read) of every function listed, in
    address order: the listing comes sorted, and the kernel's fixed-width lower-case spelling
    sorts as the addresses do."""
    out: list[tuple[PciAddress, str, str | None]] = []
    folders: dict[str, str] = {}
    for name in host.listdir(PCI_DEVICES):
        a = kernel_name(name)
        if a is not None:
            if host.snapshot:
                # the kernel gives every function its own folder; entries sharing one make every
                # per-function read of a captured tree cost the whole tree (an amplified tree)
                target = host.sysfs_target(f"{PCI_DEVICES}/{name}")
                seen = folders.setdefault(target, name)
                if seen != name:
                    raise InvalidInput(f"{PCI_DEVICES}/{name} and {seen} lead to one folder: the kernel gives "
                                       "every PCI function its own (this tree was not captured from a running "
                                       "kernel)")
                out.append((a, name, target))
            else:
                out.append((a, name, None))
    return out


def driver_module(host: Host, driver: str | None) -> str | None:
    """The kernel module of a registered *driver* (None for a built-in one, or no driver)."""
    return host.link_name(f"{PCI_DRIVERS}/{driver}/module") if driver else None


class SriovFacts:
    """An SR-IOV physical function's counts and VFs (None where a file could not be read):
    sriov_totalvfs, sriov_numvfs, sriov_drivers_autoprobe (do drivers probe new VFs),
    sriov_vf_device, First VF Offset and VF Stride (the VFs' routing IDs), and the VFs there are
    now, by index (virtfnN links).  Compared by value.  (A plain class: making a dataclass costs
    ~0.7 ms of every start-up.)"""

    __slots__ = ("totalvfs", "numvfs", "autoprobe", "vf_device", "offset", "stride", "vfs")

    def __init__(self, totalvfs: int | None, numvfs: int | None, autoprobe: bool | None, vf_device: str | None,
                 offset: int | None, stride: int | None, vfs: tuple[PciAddress, ...]) -> None:
        self.totalvfs, self.numvfs, self.autoprobe, self.vf_device = totalvfs, numvfs, autoprobe, vf_device
        self.offset, self.stride, self.vfs = offset, stride, vfs

    def _values(self) -> tuple:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SriovFacts) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return "SriovFacts(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


# ------------------------------------------------------------------ the record
class PciFunction:
    """One PCI function's facts at one host state, each read when first asked for, then kept.

    A fact is a plain attribute once read; asking for one not read yet runs the reader of its
    group (a :class:`_Fact` on the class, which an attribute in the instance hides once set):
    one file or link each, and the uevent's reader keeps every fact the uevent gives.  Equality on
    (host, address, generation), hash on the address: two records are equal when they are the
    same reading of the same function."""

    # ---- identity (the uevent; else the attribute files; else config space)
    vendor_id: int | None
    device_id: int | None
    #: for a bridge, the kernel's from its SSVID capability
    subsystem_vendor_id: int | None
    subsystem_device_id: int | None
    #: the 24-bit class as the kernel keeps it (a header/class mismatch makes it 0 there)
    class_code: int | None
    modalias: str | None
    #: the uevent's KEY=value lines
    uevent: dict[str, str]
    revision: str | None
    #: ``vvvv:dddd``, ``????`` for an ID not known
    ids: str
    # ---- links
    #: the bound driver, from the ``driver`` link (the kernel's truth; not the uevent's DRIVER line)
    driver: str | None
    driver_module: str | None
    iommu_group: int | None
    #: a ``physfn`` link is there (the kernel makes one for every VF)
    is_vf: bool
    #: the PF of a VF; None for a PF or a plain function, and for a VF whose link names no
    #: function (then :attr:`is_vf` is True and :meth:`why_unknown` says so)
    physfn: PciAddress | None
    #: the VFs of a PF now (``virtfnN`` links), by index
    virtfns: tuple[PciAddress, ...]
    # ---- place: the sysfs folder's parent
    #: the bridge above it; None on a root bus
    parent: PciAddress | None
    #: the root bus folder (``pci0000:00``) of a function on a root bus
    root_bus: str | None
    # ---- config space
    #: parsed from what was read of it (:meth:`read_config`, :meth:`read_grouping_config`)
    config: ConfigSpace
    #: 0 endpoint, 1 PCI-to-PCI bridge, 2 CardBus bridge (multifunction bit cleared), from config
    #: space; from the class when config space cannot be read (:meth:`why_unknown` says so)
    header_type: int
    #: anything but a normal header: :func:`is_bridge_header`
    is_bridge: bool
    # ---- binding, power
    driver_override: str | None
    #: the kernel has ``driver_override`` (3.16 and later)
    has_driver_override: bool
    #: the firmware's boot VGA device.  The kernel creates ``boot_vga`` only for VGA functions
    #: (drivers/pci/pci-sysfs.c pci_dev_attr_is_visible): absent on another one it is False;
    #: absent or unreadable on a VGA function it is None (not known)
    boot_vga: bool | None
    numa_node: int | None
    # ---- resets
    #: the kernel's methods in the order it tries them; () when ``reset_method`` is empty
    #: (someone wrote "" to it); ``("unknown",)`` on a kernel before 5.15 whose ``reset`` file
    #: says some method works; None when there is neither file (the kernel found none:
    #: drivers/pci/pci-sysfs.c pci_dev_reset_method_attr_is_visible)
    reset_methods: tuple[str, ...] | None
    #: ``reset_method`` exists (5.15+, and the kernel found some method)
    has_reset_method: bool
    # ---- SR-IOV
    #: an SR-IOV PF: the kernel made ``sriov_totalvfs``
    sriov_capable: bool
    sriov: SriovFacts | None

    def __init__(self, host: Host | None, address: PciAddress, *, shares_slot: bool | None = None,
                 name: str | None = None, target: str | None = None) -> None:
        self.host = host
        self.address = address
        #: its folder by the bus's link (*name*: the kernel's spelling, as listed)
        self.sysfs = f"{PCI_DEVICES}/{name or address}"
        self.generation = host.generation if host is not None else -1
        #: other functions share its slot (known to a reader that listed them all): it is
        #: multifunction to the kernel whatever its header says, and grouping reads its ACS
        self.shares_slot = shares_slot
        #: config space bytes read, and how many were asked for (fewer came: the file ends there)
        self._cfg = b""
        self._cfg_asked = 0
        self._unknown: dict[str, str] = {}
        #: where its folder link points, when the reader that listed it resolved that already
        self._target = target

    @classmethod
    def known(cls, address: PciAddress, *, config: ConfigSpace | None = None, **facts: object) -> "PciFunction":
        """A record of facts already known (a model, a test): nothing is read; facts not given
        answer as absent (no driver, no group, not a VF)."""
        unknown = set(facts) - set(_ABSENT)
        if unknown:
            raise TypeError(f"PciFunction.known: no fact named {', '.join(sorted(unknown))}")
        rec = cls(None, address)
        rec.config = config if config is not None else _parse_config(b"", extended_read=True)
        rec._cfg_asked = EXTENDED_BYTES  # nothing more to read
        kept = rec.__dict__
        kept.update(_ABSENT)
        kept.update(facts)
        kept["is_vf"] = kept["physfn"] is not None
        ht = rec.config.header_type
        kept["header_type"] = ht if ht is not None else header_type_from_class(rec.class_code)
        kept["is_bridge"] = is_bridge_header(kept["header_type"])
        return rec

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PciFunction) and other.address == self.address and other.host is self.host
                and other.generation == self.generation)

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return f"PciFunction({self.address})"

    # ------------------------------------------------------------ reading
    def _current(self) -> Host:
        """The host, to read a fact not read yet: refused for a model, and once the host changed."""
        host = self.host
        if host is None:
            raise VfioctlError(f"the record of {self.address} was made from known facts; it has nothing to read "
                               "(a bug in vfioctl)")
        if host.generation != self.generation:
            raise VfioctlError(f"the record of {self.address} was read before the host changed; reading more "
                               "of it now would mix two states (a bug in vfioctl)")
        return host

    def _attr(self, name: str) -> str | None:
        host = self.host
        if host is None or host.generation != self.generation:
            host = self._current()  # which refuses
        return host.read(f"{self.sysfs}/{name}", default=None)

    def _link(self, name: str) -> str | None:
        host = self.host
        if host is None or host.generation != self.generation:
            host = self._current()  # which refuses
        return host.link_name(f"{self.sysfs}/{name}")

    def _exists(self, name: str) -> bool:
        return self._current().exists(f"{self.sysfs}/{name}")

    def _note(self, fact: str, why: str) -> None:
        self._unknown[fact] = why

    def why_unknown(self, fact: str) -> str | None:
        """Why *fact* (an attribute name; read now if it was not) is None (or, for the header
        type, inferred), when that is for want of a reading rather than because the kernel says
        there is none; None when it was read."""
        getattr(self, fact)
        return self._unknown.get(fact)

    # ------------------------------------------------------------ the readers, one per group of facts
    def _read_identity(self) -> None:
        """The uevent, once: IDs, class and modalias.  What it lacks (an older capture, a tree
        without uevent) comes from the attribute file, else from config space, where the kernel
        read it from."""
        ue = parse_uevent(self._attr("uevent"))
        v, d = parse_id_pair(ue.get("PCI_ID"))
        sv, sd = parse_id_pair(ue.get("PCI_SUBSYS_ID"))
        cc = parse_class(ue.get("PCI_CLASS"))
        kept = self.__dict__
        kept["uevent"] = ue
        kept["vendor_id"], kept["device_id"], kept["subsystem_vendor_id"], kept["subsystem_device_id"], \
            kept["class_code"] = v, d, sv, sd, cc
        if v is None or d is None or sv is None or sd is None or cc is None:
            for name, (key, file) in _IDENTITY_SOURCES.items():
                if kept[name] is None:
                    text = self._attr(file)
                    got = parse_class(text) if name == "class_code" else parse_hex_id(text)
                    if got is None:
                        got = getattr(self.config, name)
                        if got is None:
                            self._note(name, f"neither {self.sysfs}/uevent {key}, {self.sysfs}/{file} nor config "
                                             "space gives it")
                    kept[name] = got
        kept["modalias"] = ue.get("MODALIAS") or self._attr("modalias")

    def _read_ids(self) -> None:
        self.ids = f"{hex4(self.vendor_id) or '????'}:{hex4(self.device_id) or '????'}"

    def _read_revision(self) -> None:
        self.revision = parse_revision(self._attr("revision"))

    def _read_driver(self) -> None:
        self.driver = self._link("driver")

    def _read_driver_module(self) -> None:
        self.driver_module = driver_module(self._current(), self.driver) if self.driver else None

    def _read_group(self) -> None:
        name = self._link("iommu_group")
        g = group_number(name)
        if name is not None and g is None:
            self._note("iommu_group", f"{self.sysfs}/iommu_group names {name[:40]!r}, not a group number")
        self.iommu_group = g

    def _read_physfn(self) -> None:
        name = self._link("physfn")
        a = kernel_name(name)
        if name is not None and a is None:
            self._note("physfn", f"{self.sysfs}/physfn names {name[:40]!r}, not a PCI function")
        self.is_vf, self.physfn = name is not None, a

    def _read_virtfns(self) -> None:
        found = []
        for name in self._current().listdir(self.sysfs):
            m = re.fullmatch(_VIRTFN, name)
            if m:
                a = kernel_name(self._link(name))
                if a is not None:
                    found.append((int(m[1]), a))
        self.virtfns = tuple(a for _, a in sorted(found))

    def _read_place(self) -> None:
        target, self._target = self._target, None
        parts = (target or self._current().sysfs_target(self.sysfs)).rstrip("/").split("/")
        up = parts[-2] if len(parts) >= 2 else ""
        parent = kernel_name(up)
        self.parent, self.root_bus = parent, (up if parent is None and re.fullmatch(_ROOT_BUS, up) else None)

    def _read_header(self) -> None:
        parsed = self.__dict__.get("config")
        if parsed is not None:
            ht = parsed.header_type
        else:
            head = self._config_bytes(HEADER_BYTES)
            ht = head[14] & 0x7F if len(head) >= 15 else None
        if ht is None:
            ht = header_type_from_class(self.class_code)
            self._note("header_type", f"{self.sysfs}/config is too short to show it: inferred from the class "
                                      f"(type {ht})")
        self.header_type, self.is_bridge = ht, is_bridge_header(ht)

    def _read_override(self) -> None:
        text = self._attr("driver_override")
        self.driver_override = parse_override(text)
        # a file that gave nothing to read (ENODEV...) is still there
        self.has_driver_override = text is not None or self._exists("driver_override")

    def _read_boot_vga(self) -> None:
        v = self._attr("boot_vga")
        if v is not None:
            self.boot_vga = v == "1"
            return
        cc = self.class_code
        if cc is not None and cc >> 8 not in (0x0300, 0x0001):
            self.boot_vga = False
            return
        self._note("boot_vga", f"{self.sysfs}/boot_vga could not be read"
                   + ("" if cc is not None else " and the class is unknown"))
        self.boot_vga = None

    def _read_numa(self) -> None:
        text = self._attr("numa_node")
        if text is None:
            self._note("numa_node", f"{self.sysfs}/numa_node could not be read")
        self.numa_node = parse_numa_node(text)

    def _read_resets(self) -> None:
        text = self._attr("reset_method")
        self.has_reset_method = text is not None or self._exists("reset_method")
        if text is not None:
            self.reset_methods = parse_reset_methods(text)
        elif self.has_reset_method:
            self.reset_methods = ()  # there, but gave nothing to read
        else:
            self.reset_methods = (UNKNOWN_RESET,) if self._exists("reset") else None

    def _read_sriov(self) -> None:
        # looked at first: most functions are no PF, and a look is cheaper than a failed read
        self.sriov_capable = self._exists("sriov_totalvfs")
        if not self.sriov_capable:
            self.sriov = None
            return
        auto = self._attr("sriov_drivers_autoprobe")
        self.sriov = SriovFacts(
            totalvfs=parse_small_int(self._attr("sriov_totalvfs")),
            numvfs=parse_small_int(self._attr("sriov_numvfs")),
            autoprobe=None if auto is None else auto == "1",
            vf_device=hex4(parse_hex_id(self._attr("sriov_vf_device"))),
            offset=parse_small_int(self._attr("sriov_offset")),
            stride=parse_small_int(self._attr("sriov_stride")),
            vfs=self.virtfns,
        )

    # ------------------------------------------------------------ config space
    def _config_bytes(self, size: int) -> bytes:
        """The first *size* bytes of config space (fewer where the file is shorter: 64 for a
        non-root reader), read once: a later ask for no more than was read, or past where the
        file ended, is answered from what was read."""
        have = self._cfg
        if len(have) >= size or len(have) < self._cfg_asked:
            return have[:size]
        data: bytes = self._current().read_bytes(f"{self.sysfs}/config", size, default=b"")
        self._cfg, self._cfg_asked = data, size
        self.__dict__.pop("config", None)  # parsed again from what was read now
        return data

    def _read_config(self) -> None:
        """:attr:`config`: parsed from what was read (the first 256 bytes when no more was); the
        extended capabilities are "unknown", not "absent", when 256 bytes were asked for and came.
        A deeper read later drops it, to be parsed again when asked for."""
        if self._cfg_asked < STANDARD_BYTES:
            self._config_bytes(STANDARD_BYTES)
        data = self._cfg
        self.config = _parse_config(
            data, extended_read=not (self._cfg_asked == STANDARD_BYTES and len(data) == STANDARD_BYTES))

    def read_config(self) -> ConfigSpace:
        """Config space, the first 256 bytes (the header, the capabilities, a bridge's bus numbers)
        unless more was read already."""
        return self.config

    def read_grouping_config(self) -> ConfigSpace:
        """Config space as far as the grouping rules read it, read once.

        All of it (4096 bytes is the most there is; a hostile snapshot's bigger file stops there)
        for what may have extended capabilities the rules look at: bridges and ports (ACS on the
        path: the class says so before the read), multifunction devices (ACS between functions:
        other functions in the slot, or a function number other than 0); the first 256 bytes for
        the rest, and all of it after all when they show a bridge header, the multifunction bit
        or a capability list that did not parse whole.  A single-function endpoint's ACS plays no
        part in any group (drivers/iommu/iommu.c looks at it only for multifunction devices), and
        on real hardware every 4-byte word of config space read through sysfs is a config cycle
        (sysfs ``config`` reads go through pci_user_read_config_dword): 1,024 of them for the
        whole extended space, 64 for the first 256 bytes.  A VF is never multifunction
        (drivers/pci/iov.c pci_iov_add_virtfn), whatever shares its slot."""
        if not self.is_vf and (self.shares_slot or self.address.function != 0
                               or header_type_from_class(self.class_code) != 0):
            return self._config_to(EXTENDED_BYTES)
        cfg = self.config
        if cfg.length < STANDARD_BYTES or self._cfg_asked > STANDARD_BYTES:
            return cfg
        if cfg.header_type == 0 and cfg.multifunction is False and cfg.capabilities_complete:
            return cfg
        return self._config_to(EXTENDED_BYTES)

    def _config_to(self, size: int) -> ConfigSpace:
        self._config_bytes(size)
        return self.config


#: identity fact -> (its uevent key, its attribute file)
_IDENTITY_SOURCES = {
    "vendor_id": ("PCI_ID", "vendor"), "device_id": ("PCI_ID", "device"),
    "subsystem_vendor_id": ("PCI_SUBSYS_ID", "subsystem_vendor"),
    "subsystem_device_id": ("PCI_SUBSYS_ID", "subsystem_device"), "class_code": ("PCI_CLASS", "class"),
}

class _Fact:
    """A fact of :class:`PciFunction` not read yet: asking for it runs its group's reader, which
    sets it (and the others of its group) in the instance, where later asks find it without a
    call (a non-data descriptor: the instance's own attribute wins)."""

    __slots__ = ("name", "read")

    def __init__(self, name: str, read: Callable[[PciFunction], None]) -> None:
        self.name, self.read = name, read

    def __get__(self, rec: PciFunction | None, owner: type | None = None) -> object:
        if rec is None:
            return self
        self.read(rec)
        return rec.__dict__[self.name]


#: fact -> the reader that sets it (and the other facts of its group)
_READERS: dict[str, Callable[[PciFunction], None]] = {}
for _reader, _facts in (
        (PciFunction._read_identity, ("vendor_id", "device_id", "subsystem_vendor_id", "subsystem_device_id",
                                      "class_code", "modalias", "uevent")),
        (PciFunction._read_ids, ("ids",)),
        (PciFunction._read_revision, ("revision",)), (PciFunction._read_config, ("config",)), (PciFunction._read_driver, ("driver",)),
        (PciFunction._read_driver_module, ("driver_module",)), (PciFunction._read_group, ("iommu_group",)),
        (PciFunction._read_physfn, ("is_vf", "physfn")), (PciFunction._read_virtfns, ("virtfns",)),
        (PciFunction._read_place, ("parent", "root_bus")), (PciFunction._read_header, ("header_type", "is_bridge")),
        (PciFunction._read_override, ("driver_override", "has_driver_override")),
        (PciFunction._read_boot_vga, ("boot_vga",)), (PciFunction._read_numa, ("numa_node",)),
        (PciFunction._read_resets, ("reset_methods", "has_reset_method")),
        (PciFunction._read_sriov, ("sriov_capable", "sriov"))):
    for _fact in _facts:
        _READERS[_fact] = _reader
        setattr(PciFunction, _fact, _Fact(_fact, _reader))

#: what a record made from known values (:meth:`PciFunction.known`) answers for facts not given
_ABSENT: dict[str, object] = {
    "uevent": {}, "vendor_id": None, "device_id": None, "subsystem_vendor_id": None, "subsystem_device_id": None,
    "class_code": None, "modalias": None, "revision": None, "driver": None, "driver_module": None,
    "iommu_group": None, "physfn": None, "virtfns": (), "parent": None, "root_bus": None,
    "driver_override": None, "has_driver_override": False, "boot_vga": False, "numa_node": None,
    "reset_methods": None, "has_reset_method": False, "sriov_capable": False, "sriov": None,
}


def _parse_config(data: bytes, *, extended_read: bool) -> ConfigSpace:
    global _config_parse
    if _config_parse is None:
        # lazy: pci.config (~3 ms at start-up: its dataclasses) only where config space is parsed, not for `list`
        from vfioctl.pci.config import parse

        _config_parse = parse
    return _config_parse(data, extended_read=extended_read)


_config_parse: Callable[..., ConfigSpace] | None = None


def read_functions(host: Host, addresses: Iterable[PciAddress] | None = None) -> dict[PciAddress, PciFunction]:
    """The one reader: a record for every function the host lists (or those of *addresses* that it
    lists), in address order, each knowing whether other functions share its slot.  Nothing in a
    function's folder is read until a fact is asked for."""
    present = _listed(host)
    per_slot: dict[str, int] = {}
    for _, name, _ in present:
        per_slot[name[:-2]] = per_slot.get(name[:-2], 0) + 1
    wanted = None if addresses is None else set(addresses)
    return {a: PciFunction(host, a, shares_slot=per_slot[name[:-2]] > 1, name=name, target=target)
            for a, name, target in present if wanted is None or a in wanted}

