"""The declarative config: which devices the host must not use, and SR-IOV VF counts.

The file (default ``/etc/vfioctl/vfioctl.toml``, schema in docs/config.md) is
read with the standard library's :mod:`tomllib` and validated completely
before anything acts on it: every problem is one line naming the file and the
entry, and nothing is applied from a file with a problem.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

from vfioctl.base.errors import (
    ConfigError,
    InvalidAddress,
    InvalidInput,
    NotFound,
    Refused,
)
from vfioctl.base.names import (
    is_cdi_vendor,
    is_handoff_unit,
    is_plain_abs_path,
    is_plain_cdi_path,
    is_reset_method_name,
    is_vfio_driver_name,
    parse_id,
)
from vfioctl.host.core import Host
from vfioctl.ops.match import Match, from_spec
from vfioctl.ops.match import from_table as match_table
from vfioctl.ops.plan.vfnet import VfWant, parse_vf_want
from vfioctl.ops.state import HostState, read_state
from vfioctl.pci.address import PciAddress

DEFAULT_PATH = "/etc/vfioctl/vfioctl.toml"

DEVICE_KEYS = ("address", "id", "subsystem", "group", "driver", "reset_method", "take_console", "stop_units",
               "match", "count", "take_bound")
SRIOV_KEYS = ("pf", "numvfs", "hide", "autoprobe", "vf")
TOP_KEYS = ("device", "sriov", "cdi")


@dataclass(frozen=True)
class DeviceEntry:
    """One ``[[device]]``: the function at *address* (or what *match* selects) goes to *driver*."""

    #: None for a selector entry (``match``)
    address: PciAddress | None
    #: (vendor, device), lower-case hex: what must be at *address* (None for a selector)
    id: tuple[str, str] | None
    subsystem: tuple[str, str] | None = None
    #: take the whole IOMMU group (companion functions too)
    group: bool = False
    driver: str = "vfio-pci"
    #: where it came from, for messages: ``/etc/vfioctl/vfioctl.toml: [[device]] #1``
    source: str = ""
    #: the kernel reset methods to use, in order (sysfs reset_method), None: the kernel's own
    reset_method: tuple[str, ...] | None = None
    #: hand the host console over (hide --take-console) and the units to stop for it
    take_console: bool = False
    stop_units: tuple[str, ...] = ()
    #: a selector instead of an address; *count*: take that many of its matches (None: all)
    match: Match | None = None
    count: int | None = None
    #: at boot, a selector may take a device a host driver already claimed
    take_bound: bool = False

    def to_dict(self) -> dict:
        return {
            "address": str(self.address) if self.address else None,
            "id": ":".join(self.id) if self.id else None,
            "match": self.match.to_dict() if self.match else None,
            "count": self.count,
            "take_console": self.take_console,
            "stop_units": list(self.stop_units),
            "subsystem": ":".join(self.subsystem) if self.subsystem else None,
            "group": self.group,
            "driver": self.driver,
            "reset_method": list(self.reset_method) if self.reset_method else None,
            "source": self.source,
        }


@dataclass(frozen=True)
class SriovEntry:
    """One ``[[sriov]]``: the PF at *pf* must have *numvfs* VFs."""

    pf: PciAddress
    numvfs: int
    #: bind the VFs to vfio-pci (autoprobe off while they are created)
    hide: bool = False
    #: sriov_drivers_autoprobe to leave behind; None: leave the kernel's value
    autoprobe: bool | None = None
    source: str = ""
    #: each ``[[sriov.vf]]``: a VF's network settings (MAC, VLAN, spoof check, trust, ...)
    vfs: tuple[VfWant, ...] = ()

    def to_dict(self) -> dict:
        d = {
            "pf": str(self.pf),
            "numvfs": self.numvfs,
            "hide": self.hide,
            "autoprobe": self.autoprobe,
            "source": self.source,
        }
        if self.vfs:
            d["vf"] = [w.to_dict() for w in self.vfs]
        return d


@dataclass(frozen=True)
class Config:
    devices: list[DeviceEntry] = field(default_factory=list)
    sriov: list[SriovEntry] = field(default_factory=list)
    #: host-absolute path of the file it was read from
    path: str = DEFAULT_PATH
    #: the ``[cdi]`` table (vfioctl.cluster.cdi); its defaults when the file has none
    cdi: CdiConfig = field(default_factory=lambda: CdiConfig())

    @property
    def addressed(self) -> list[DeviceEntry]:
        """The entries that name an address (selectors resolve against a host's state)."""
        return [d for d in self.devices if d.address is not None]

    def device(self, address: PciAddress) -> DeviceEntry | None:
        for d in self.devices:
            if d.address == address:
                return d
        return None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "devices": [d.to_dict() for d in self.devices],
            "sriov": [s.to_dict() for s in self.sriov],
        }

    def mismatches(self, state: HostState) -> list[str]:
        """Entries whose hardware is not what the file says, one line each, from *state*
        (read with every entry's address in focus).

        An empty list means every ``[[device]]`` has a function with the
        declared vendor:device (and subsystem, when given) at its address and
        every ``[[sriov]]`` PF exists.
        """
        out: list[str] = []
        for d in self.devices:
            if d.address is None or d.id is None:
                continue  # a selector: resolved against the host's state when planned
            dev = state.get(d.address)
            want = ":".join(d.id)
            if d.subsystem:
                want += f" subsystem {':'.join(d.subsystem)}"
            if dev is None:
                out.append(f"{d.source}: expected {want} at {d.address}, found nothing at that address")
                continue
            found_id = (dev.vendor_id or "?", dev.device_id or "?")
            found_sub = (dev.subsystem[0] or "?", dev.subsystem[1] or "?")
            if found_id != d.id or (d.subsystem and found_sub != d.subsystem):
                found = ":".join(found_id)
                if d.subsystem:
                    found += f" subsystem {':'.join(found_sub)}"
                out.append(f"{d.source}: expected {want} at {d.address}, found {found}")
        for s in self.sriov:
            if state.get(s.pf) is None:
                out.append(f"{s.source}: expected an SR-IOV PF at {s.pf}, found nothing at that address")
        return out

    def check_ids(self, host: Host) -> list[str]:
        """:meth:`mismatches` against *host* as it is now."""
        focus = [d.address for d in self.devices if d.address is not None] + [s.pf for s in self.sriov]
        return self.mismatches(read_state(host, None, focus, in_use=False, holders=False))

    def verify_ids(self, host: Host) -> None:
        """Raise Refused naming every mismatch (the whole config is refused, nothing written)."""
        bad = self.check_ids(host)
        if bad:
            raise Refused(
                "the hardware does not match the config, nothing was changed "
                "(the hardware probably changed; fix the config): " + "; ".join(bad),
                mismatches=bad,
            )


def load_config(host: Host, path: str = DEFAULT_PATH) -> Config:
    """Read and validate the config at host-absolute *path*.  Raises ConfigError."""
    check_path(path)
    kind = host.kind(path)
    if kind is None:
        raise NotFound(
            f"config file {path} does not exist; write one (docs/config.md) or pass --config PATH",
            path=path,
        )
    if kind != "file":
        raise ConfigError(f"config file {path} is not a regular file ({kind}); refusing to read it", path=path)
    raw = host.read_bytes(path)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES >> 10} KiB; refusing it", path=path)
    return parse_config(raw, path)


#: a config for hundreds of devices is a few tens of KiB
MAX_CONFIG_BYTES = 1 << 20


def check_path(path: str) -> str:
    """A config path vfioctl accepts: absolute, printable, no control characters.  It is written
    into the boot files (the systemd unit's ExecStart), so it must be safe to quote there."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigError(f"config path {path!r} must be absolute")
    if not is_plain_abs_path(path):
        raise ConfigError(f"config path {path!r} has control characters; refusing it")
    return path


def parse_config(raw: bytes | str, path: str = DEFAULT_PATH) -> Config:
    """Validate the TOML text *raw*; *path* names the file in messages."""
    try:
        text = raw.decode("utf-8", "strict") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); a config is a TOML file", path=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message already says "(at line L, column C)"
        raise ConfigError(f"{path}: TOML syntax error: {err}", path=path) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a vfioctl config", path=path) from None

    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(
                f"{path}: unknown top-level key {str(key)[:40]!r} (allowed: [[device]], [[sriov]], [cdi])", path=path
            )
    devices = [_device(path, i, e) for i, e in enumerate(_tables(path, data, "device"), 1)]
    sriov = [_sriov(path, i, e) for i, e in enumerate(_tables(path, data, "sriov"), 1)]

    seen: dict[PciAddress, str] = {}
    for d in devices:
        if d.address is None:
            continue
        if d.address in seen:
            raise ConfigError(f"{d.source}: device {d.address} is already listed in {seen[d.address]}", path=path)
        seen[d.address] = d.source
    seen_pf: dict[PciAddress, str] = {}
    for s in sriov:
        if s.pf in seen_pf:
            raise ConfigError(f"{s.source}: pf {s.pf} is already listed in {seen_pf[s.pf]}", path=path)
        seen_pf[s.pf] = s.source
    cdi = _cdi(path, data.get("cdi", {}), devices)
    return Config(devices=devices, sriov=sriov, path=path, cdi=cdi)


def _tables(path: str, data: dict, key: str) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ConfigError(f"{path}: {key!r} must be an array of tables, written [[{key}]]", path=path)
    return value


def _check_keys(where: str, entry: dict, allowed: tuple[str, ...]) -> None:
    for k in entry:
        if k not in allowed:
            raise ConfigError(f"{where}: unknown key {str(k)[:40]!r} (allowed: {', '.join(allowed)})")


def _address(where: str, entry: dict, key: str) -> PciAddress:
    if key not in entry:
        raise ConfigError(f"{where}: missing required key {key!r} (a PCI address such as \"0000:02:00.0\")")
    try:
        return PciAddress.parse(entry[key])
    except InvalidAddress as err:
        raise ConfigError(f"{where}: {key}: {err.message}") from None


def _hexpair(where: str, key: str, value: object) -> tuple[str, str]:
    pair = parse_id(value) if isinstance(value, str) else None
    if pair is None:
        raise ConfigError(f"{where}: {key} = {str(value)[:40]!r} is not of the form vvvv:dddd in hexadecimal "
                          "(e.g. \"8086:10d3\")")
    return pair


def _bool(where: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} = {value!r} must be true or false")
    return value


def _device(path: str, index: int, entry: dict) -> DeviceEntry:
    where = f"{path}: [[device]] #{index}"
    _check_keys(where, entry, DEVICE_KEYS)
    sel = None
    count = None
    if "match" in entry:
        for k in ("address", "id"):
            if k in entry:
                raise ConfigError(f"{where}: give either address (+ id) or match, not both ({k} is set)")
        try:
            sel = match_table(entry["match"], where)
        except InvalidInput as err:
            raise ConfigError(err.message) from None
        if "count" in entry:
            c = entry["count"]
            if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 4096:
                raise ConfigError(f"{where}: count = {str(c)[:20]} must be a whole number, 1 or more")
            count = c
        address = None
        dev_id = None
        where = f"{path}: [[device]] #{index} (match {sel.describe()})"
    else:
        if "count" in entry or "take_bound" in entry:
            raise ConfigError(f"{where}: count and take_bound go with match (a selector), not with address")
        address = _address(where, entry, "address")
        where = f"{path}: [[device]] #{index} ({address})"
        if "id" not in entry:
            raise ConfigError(
                f"{where}: missing required key 'id' (what must be at that address, e.g. id = \"8086:10d3\"; "
                "`vfioctl show` prints it)"
            )
        dev_id = _hexpair(where, "id", entry["id"])
    subsystem = _hexpair(where, "subsystem", entry["subsystem"]) if "subsystem" in entry else None
    group = _bool(where, "group", entry.get("group", False))
    driver = entry.get("driver", "vfio-pci")
    if not isinstance(driver, str) or not is_vfio_driver_name(driver):
        raise ConfigError(
            f"{where}: driver = {str(driver)[:40]!r} is not a vfio driver (vfio-pci, a vfio variant driver such as "
            "mlx5_vfio_pci, or pci-stub)"
        )
    rm = entry.get("reset_method")
    if rm is not None:
        if isinstance(rm, str):
            rm = [rm]
        if not isinstance(rm, list) or not rm or not all(map(is_reset_method_name, rm)) or len(set(rm)) != len(rm):
            raise ConfigError(f"{where}: reset_method = {str(rm)[:60]} must be a list of kernel reset method "
                              "names, each once (e.g. reset_method = [\"bus\"])")
        rm = tuple(rm)
    take_console = _bool(where, "take_console", entry.get("take_console", False))
    units = entry.get("stop_units", [])
    if not isinstance(units, list) or not all(is_handoff_unit(u) for u in units):
        raise ConfigError(f"{where}: stop_units = {str(units)[:60]} must be a list of services to stop "
                          "(e.g. [\"gdm.service\"]; never a target, mount or device, nor one that reboots or "
                          "rescues the machine)")
    if units and not take_console:
        raise ConfigError(f"{where}: stop_units goes with take_console = true")
    take_bound = _bool(where, "take_bound", entry.get("take_bound", False))
    return DeviceEntry(address, dev_id, subsystem, group, driver, source=f"{path}: [[device]] #{index}",
                       reset_method=rm, take_console=take_console, stop_units=tuple(units), match=sel,
                       count=count, take_bound=take_bound)


def _sriov(path: str, index: int, entry: dict) -> SriovEntry:
    where = f"{path}: [[sriov]] #{index}"
    _check_keys(where, entry, SRIOV_KEYS)
    pf = _address(where, entry, "pf")
    where = f"{path}: [[sriov]] #{index} ({pf})"
    if "numvfs" not in entry:
        raise ConfigError(f"{where}: missing required key 'numvfs' (how many VFs, 0 or more)")
    n = entry["numvfs"]
    # bool is an int in Python; `numvfs = true` is a mistake, not 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"{where}: numvfs = {n!r} must be a whole number, 0 or more")
    hide = _bool(where, "hide", entry.get("hide", False))
    autoprobe = _bool(where, "autoprobe", entry["autoprobe"]) if "autoprobe" in entry else None
    raw_vfs = entry.get("vf", [])
    if not isinstance(raw_vfs, list) or not all(isinstance(v, dict) for v in raw_vfs):
        raise ConfigError(f"{where}: vf must be an array of tables, written [[sriov.vf]] with index = N")
    vfs: list[VfWant] = []
    for t in raw_vfs:
        if "index" not in t:
            raise ConfigError(f"{where}: a [[sriov.vf]] needs index = N (the VF's number on the PF, from 0)")
        try:
            w = parse_vf_want(where, t["index"], {k: v for k, v in t.items() if k != "index"})
        except InvalidInput as err:
            raise ConfigError(err.message) from None
        if w.index >= n:
            raise ConfigError(f"{where}: [[sriov.vf]] index {w.index} is past numvfs = {n} (VFs are numbered from 0)")
        if any(v.index == w.index for v in vfs):
            raise ConfigError(f"{where}: [[sriov.vf]] index {w.index} is given twice")
        vfs.append(w)
    return SriovEntry(pf, n, hide, autoprobe, source=f"{path}: [[sriov]] #{index}", vfs=tuple(vfs))


# ------------------------------------------------------------------ [cdi]
# The CDI name grammar is in vfioctl.base.names (the config and vfioctl.cluster.cdi use it).

CDI_KEYS = ("path", "vendor", "annotations", "names")
CDI_DEFAULT_VENDOR = "vfioctl.io"
#: what a config may call a device: no ':' (never mistaken for an address), 63 characters at most
#: (a Kubernetes label value fits it), and not ending in -N (selector names get -0, -1... appended)
_CONFIG_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_ENTRY_KEY = re.compile(r"\[\[device\]\] #([0-9]{1,4})")


@dataclass(frozen=True)
class CdiConfig:
    """The ``[cdi]`` table: where ``vfioctl cdi --refresh`` (and every change) keeps the spec,
    its kind's vendor, whether devices carry annotations, and extra device names."""

    #: host-absolute path of the spec kept current, None: no spec is kept
    path: str | None = None
    vendor: str = CDI_DEFAULT_VENDOR
    #: device annotations need cdiVersion 0.6.0, which older runtimes refuse
    annotations: bool = False
    #: (key, name): key is a PCI address, ``[[device]] #N`` or a CLI selector such as ``id:10de:2335``
    names: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict:
        return {"path": self.path, "vendor": self.vendor, "annotations": self.annotations,
                "names": dict(self.names)}


def _cdi(path: str, table: object, devices: list[DeviceEntry]) -> CdiConfig:
    where = f"{path}: [cdi]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table (written [cdi] on a line of its own)", path=path)
    _check_keys(where, table, CDI_KEYS)
    spec_path = table.get("path")
    if spec_path is not None and not is_plain_cdi_path(spec_path):
        raise ConfigError(f"{where}: path = {str(spec_path)[:80]!r} must be a plain absolute path ending in .json "
                          "(no '..', no control characters), e.g. \"/var/run/cdi/vfioctl.json\"", path=path)
    vendor = table.get("vendor", CDI_DEFAULT_VENDOR)
    if not is_cdi_vendor(vendor):
        raise ConfigError(f"{where}: vendor = {str(vendor)[:80]!r} must be a DNS name in lower case that starts "
                          "with a letter, e.g. \"example.com\" (the kind is VENDOR/pci)", path=path)
    annotations = _bool(where, "annotations", table.get("annotations", False))
    raw = table.get("names", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: names must be a table of KEY = \"name\", written [cdi.names]", path=path)
    names: list[tuple[str, str]] = []
    taken: dict[str, str] = {}
    for key, name in raw.items():
        shown = str(key)[:60] if str(key).isprintable() else repr(str(key)[:60])
        norm = _names_key(f"{where}.names", key, shown, devices)
        if not isinstance(name, str) or not _CONFIG_NAME.fullmatch(name) or re.search(r"-[0-9]+$", name) \
                or name.startswith("pci-") or PciAddress.is_valid(name):
            raise ConfigError(
                f"{where}.names: {shown} = {str(name)[:80]!r} must be 1 to 63 letters, digits, '_', '-' or '.', "
                "starting and ending with a letter or digit, not ending in -N (selectors get -0, -1... "
                "appended), not starting with 'pci-' and not an address", path=path)
        if name in taken:
            raise ConfigError(f"{where}.names: {shown} and {taken[name]} both give the name {name!r}", path=path)
        if any(k == norm for k, _ in names):
            raise ConfigError(f"{where}.names: {shown} names the same device(s) as another key", path=path)
        taken[name] = shown
        names.append((norm, name))
    return CdiConfig(spec_path, vendor, annotations, tuple(names))


def _names_key(where: str, key: str, shown: str, devices: list[DeviceEntry]) -> str:
    """A ``[cdi.names]`` key as the journal and the config spell it: an address in the kernel's
    form, ``[[device]] #N`` of an entry that exists, or a CLI selector (``id:``, ``class:``, ``pf:``)."""
    m = _ENTRY_KEY.fullmatch(key)
    if m:
        if not 1 <= int(m[1]) <= len(devices):
            raise ConfigError(f"{where}: {shown}: this file has {len(devices)} [[device]] entries")
        return key
    if PciAddress.is_valid(key):
        return str(PciAddress.parse(key))
    try:
        sel = from_spec(key) if key.isprintable() and len(key) <= 200 else None
    except InvalidInput as err:
        raise ConfigError(f"{where}: {shown}: {err.message}") from None
    if sel is None:
        raise ConfigError(f"{where}: {shown} is neither a PCI address, \"[[device]] #N\" (an entry of this file) "
                          "nor a selector such as \"id:10de:2335\"")
    return key
