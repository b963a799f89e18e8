"""The journal: what vfioctl changed, so that `restore` puts back exactly what was there.

One JSON file (``/var/lib/vfioctl/state.json`` under the host root, or
``$VFIOCTL_STATE_DIR``), written atomically (temp file, mode 0600, fsync,
``os.replace``) and only while holding an exclusive ``flock`` on
``state.lock`` beside it.  The lock is held for a whole command (reading the
host's state, planning and applying), so two vfioctl processes never
interleave changes to one device.  The folder must be root's and not writable
by group or others, and the lock is opened without following links.

Every record read back is validated before anything acts on it: addresses,
driver and module names must have their kernel spelling, so a damaged or
planted journal cannot make ``restore`` write anything outside sysfs.
Journals written by vfioctl 0.1.0 read as they are.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, fields

from vfioctl.base.errors import InvalidInput, VfioctlError
from vfioctl.base.names import (
    ID_RE,
    MODULE_NAME_RE,
    is_driver_name,
    is_handoff_unit,
    is_reset_method_name,
    is_vfio_driver_name,
)
from vfioctl.base.text import ascii_int, escape
from vfioctl.host import env
from vfioctl.host.core import Host
from vfioctl.host.lock import StateLock
from vfioctl.pci.address import PciAddress
from vfioctl.pci.vfnet import FIELDS, VfSettings
from vfioctl.usage.console import PLATFORM_FB_DRIVERS

SCHEMA = "vfioctl.journal/1"


def _as_dict(rec: object) -> dict:
    """A record's fields as a dict for JSON: the records hold strings, numbers, None and lists
    of them (dataclasses.asdict deep-copies every value, which a journal save paid per record);
    inner lists are shared, which json.dumps does not mind."""
    return {f.name: (list(v) if isinstance(v := getattr(rec, f.name), (list, tuple)) else v)
            for f in fields(rec)}  # type: ignore[arg-type]


PROBE = "*probe*"  # original driver unknown: let the kernel choose (restore --force)
_STATES = ("pending", "hidden", "changed")
_MAX_BYTES = 4 << 20


@dataclass
class DeviceRecord:
    """What a device looked like before vfioctl touched it."""

    address: str
    vendor_device: str
    original_driver: str | None
    original_override: str | None
    target_driver: str
    origin: str = "hide"
    #: the kernel module of the original driver, to load it again if it was unloaded
    original_module: str | None = None
    #: dynamic IDs vfioctl added with new_id, as (driver, "vvvv dddd")
    added_ids: list[list[str]] = field(default_factory=list)
    #: "pending" while a change is under way, "hidden" once verified
    state: str = "pending"
    since: float = field(default_factory=time.time)
    #: sysfs reset_method before vfioctl chose one (None: vfioctl did not change it)
    original_reset_method: list[str] | None = None
    #: the config entry that chose this device (selectors), e.g. "vfioctl.toml: [[device]] #2"
    entry: str | None = None
    #: the step of a plan that did not finish (a kernel write past its bound), said in words;
    #: the record stays "pending" and `restore` finishes the device
    unfinished: str | None = None


@dataclass
class SriovRecord:
    """What an SR-IOV physical function looked like before vfioctl changed it."""

    pf: str
    original_numvfs: int
    original_autoprobe: bool | None
    origin: str = "sriov"
    state: str = "pending"
    since: float = field(default_factory=time.time)


@dataclass
class VfNetRecord:
    """The VF settings (MAC, VLAN, spoof check, trust, link state, rates) of a PF's VFs
    before vfioctl changed them, field by field: ``originals["0"]["mac"]`` is VF 0's MAC
    before the first change (values as :mod:`vfioctl.pci.vfnet` spells them)."""

    pf: str
    originals: dict[str, dict[str, object]] = field(default_factory=dict)
    origin: str = "sriov"
    state: str = "pending"
    since: float = field(default_factory=time.time)


@dataclass
class HandoffRecord:
    """What a console hand-off (``hide --take-console``) changed besides the device's driver,
    so that restore gives back the consoles and units exactly."""

    address: str
    #: systemd units that were active and that vfioctl stopped
    units_stopped: list[str] = field(default_factory=list)
    #: vtconsole numbers that were bound and that vfioctl unbound
    vtcons_unbound: list[int] = field(default_factory=list)
    #: platform frame buffers vfioctl unbound, as (driver, device)
    platform_fbs: list[list[str]] = field(default_factory=list)
    state: str = "pending"
    since: float = field(default_factory=time.time)


def _fail(path: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"journal {path} is damaged ({why}); vfioctl will not act on it: inspect it, move it away, "
        "and restore devices by hand (`vfioctl status` lists what is on vfio-pci)", path=path)


def _addr(path: str, text: object, what: str) -> str:
    if not isinstance(text, str) or len(text) != 12 or not PciAddress.is_valid(text) or str(PciAddress.parse(text)) != text:
        raise _fail(path, f"{what} {str(text)[:40]!r} is not a PCI address")
    return text


def _opt_str(path: str, rec: dict, key: str, check, what: str) -> None:
    v = rec.get(key)
    if v is not None and not (isinstance(v, str) and check(v)):
        raise _fail(path, f"{what} {str(v)[:40]!r} in {key}")


def _record(path: str, cls: type, raw: object, where: str):
    if not isinstance(raw, dict):
        raise _fail(path, f"{where} is not an object")
    known = {f.name for f in fields(cls)}
    rec = {k: v for k, v in raw.items() if k in known}  # newer versions may add fields
    try:
        return cls(**rec)
    except TypeError as err:
        raise _fail(path, f"{where}: {err}") from None


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a value vfioctl writes")


def _when(v: object) -> bool:
    """A time vfioctl wrote (time.time()): a finite number of seconds since 1970, before 2286."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e10


def _origin(v: object) -> bool:
    """Who asked (hide, apply, sriov, libvirt:DOMAIN with libvirt's domain name of up to 200)."""
    return isinstance(v, str) and 0 < len(v) <= 256 and v.isprintable()


#: what a console hand-off unbinds: a firmware frame buffer's platform device and its driver
#: (the device is named after the driver that binds it: drivers/base/platform.c platform_match)
_PLATFORM_FB = re.compile(r"(" + "|".join(map(re.escape, PLATFORM_FB_DRIVERS)) + r")(?:\.[0-9]{1,4})?")


def _platform_fb(p: object) -> bool:
    if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)):
        return False
    m = _PLATFORM_FB.fullmatch(p[0])
    return m is not None and p[1] == m[1]


def _vfnet_ok(rec: VfNetRecord) -> bool:
    """Every recorded original reads back as the same value through the VF settings' own
    checks (a planted value never reaches a netlink write)."""
    if not isinstance(rec.originals, dict) or not _origin(rec.origin) or not _when(rec.since):
        return False
    for k, vals in rec.originals.items():
        index = ascii_int(k, 4)
        if index is None or not isinstance(vals, dict):
            return False
        for f, v in vals.items():
            if f not in FIELDS:
                return False
            if v is not None and VfSettings.from_raw(index, {f: v}).get(f) != (tuple(v) if isinstance(v, list) else v):
                return False
    return rec.state in _STATES


def parse(text: str, path: str) -> tuple[dict[str, DeviceRecord], dict[str, SriovRecord], dict[str, HandoffRecord]]:
    """Validate a journal's JSON completely against what vfioctl itself writes; raise
    InvalidInput (65) naming what is wrong.  A console hand-off names only services vfioctl
    stops (never a target, device or mount, nor one that reboots or rescues the machine) and
    only firmware frame buffers; a device's module is checked against the device when a
    restore plans to load it (:mod:`vfioctl.ops.plan.restore`)."""
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as err:
        raise _fail(path, f"not valid JSON: {escape(str(err))[:80]}") from None
    if not isinstance(data, dict):
        raise _fail(path, "not a JSON object")
    devices: dict[str, DeviceRecord] = {}
    sriov: dict[str, SriovRecord] = {}
    handoff: dict[str, HandoffRecord] = {}
    for section in ("devices", "sriov", "handoff", "vfnet"):
        if not isinstance(data.get(section) or {}, dict):
            raise _fail(path, f"{section!r} is not an object")
    for addr, raw in (data.get("devices") or {}).items():
        _addr(path, addr, "device key")
        r: DeviceRecord = _record(path, DeviceRecord, raw, f"devices[{addr}]")
        if r.address != addr:
            raise _fail(path, f"devices[{addr}] names address {str(r.address)[:20]!r}")
        if not isinstance(r.vendor_device, str) or not (ID_RE.fullmatch(r.vendor_device) or
                                                        r.vendor_device in ("unknown", "None:None")):
            raise _fail(path, f"devices[{addr}] vendor_device {str(r.vendor_device)[:20]!r}")
        if r.original_driver != PROBE:
            _opt_str(path, _as_dict(r), "original_driver", is_driver_name, f"devices[{addr}] driver name")
        _opt_str(path, _as_dict(r), "original_override", is_driver_name, f"devices[{addr}] driver name")
        if not is_vfio_driver_name(r.target_driver):
            raise _fail(path, f"devices[{addr}] target_driver {str(r.target_driver)[:40]!r} is not a vfio driver")
        _opt_str(path, _as_dict(r), "original_module", lambda m: MODULE_NAME_RE.fullmatch(m) is not None,
                 f"devices[{addr}] module name")
        if r.state not in _STATES or not _origin(r.origin) or not _when(r.since):
            raise _fail(path, f"devices[{addr}] state/origin/since")
        if r.original_module is not None and r.original_driver in (None, PROBE):
            raise _fail(path, f"devices[{addr}] names a module without a driver")
        if not isinstance(r.added_ids, list) or not all(
                isinstance(i, list) and len(i) == 2 and is_vfio_driver_name(i[0]) and isinstance(i[1], str)
                and ID_RE.fullmatch(i[1].replace(" ", ":")) is not None for i in r.added_ids):
            raise _fail(path, f"devices[{addr}] added_ids")
        rm = r.original_reset_method
        if rm is not None and not (isinstance(rm, list) and all(map(is_reset_method_name, rm))):
            raise _fail(path, f"devices[{addr}] original_reset_method")
        if r.entry is not None and not (isinstance(r.entry, str) and len(r.entry) < 512 and r.entry.isprintable()):
            raise _fail(path, f"devices[{addr}] entry")
        if r.unfinished is not None and not (isinstance(r.unfinished, str) and len(r.unfinished) < 1024
                                             and r.unfinished.isprintable()):
            raise _fail(path, f"devices[{addr}] unfinished")
        devices[addr] = r
    for pf, raw in (data.get("sriov") or {}).items():
        _addr(path, pf, "sriov key")
        s: SriovRecord = _record(path, SriovRecord, raw, f"sriov[{pf}]")
        if s.pf != pf or isinstance(s.original_numvfs, bool) or not isinstance(s.original_numvfs, int) \
                or not 0 <= s.original_numvfs < 65536 or s.original_autoprobe not in (None, True, False) \
                or s.state not in _STATES or not _when(s.since) or not _origin(s.origin):
            raise _fail(path, f"sriov[{pf}]")
        sriov[pf] = s
    for addr, raw in (data.get("handoff") or {}).items():
        _addr(path, addr, "handoff key")
        h: HandoffRecord = _record(path, HandoffRecord, raw, f"handoff[{addr}]")

        if h.address != addr or not isinstance(h.units_stopped, list) or not all(
                is_handoff_unit(u) for u in h.units_stopped) \
                or not isinstance(h.vtcons_unbound, list) or not all(
                    isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 64 for n in h.vtcons_unbound) \
                or not isinstance(h.platform_fbs, list) or not all(map(_platform_fb, h.platform_fbs)) \
                or h.state not in _STATES or not _when(h.since):
            raise _fail(path, f"handoff[{addr}] (vfioctl stops services only, unbinds firmware frame buffers only)")
        handoff[addr] = h
    return devices, sriov, handoff


def parse_vfnet(text: str, path: str) -> dict[str, VfNetRecord]:
    """The journal's ``vfnet`` section, validated (after :func:`parse` checked the rest)."""
    data = json.loads(text, parse_constant=_no_constant)
    out: dict[str, VfNetRecord] = {}
    for pf, raw in (data.get("vfnet") or {}).items():
        _addr(path, pf, "vfnet key")
        v: VfNetRecord = _record(path, VfNetRecord, raw, f"vfnet[{pf}]")
        if v.pf != pf or not _vfnet_ok(v):
            raise _fail(path, f"vfnet[{pf}]")
        out[pf] = v
    return out


class Journal:
    """The state file.  Use as a context manager to hold the lock for a whole command."""

    def __init__(self, host: Host, lock_timeout: float | None = None) -> None:
        self.host = host
        self.dir = host.state_dir()
        self.file = f"{self.dir}/state.json"
        self.lock_file = f"{self.dir}/state.lock"
        self.lock_timeout = env.lock_timeout() if lock_timeout is None else lock_timeout
        self._lock: StateLock | None = None
        self.devices: dict[str, DeviceRecord] = {}
        self.sriov: dict[str, SriovRecord] = {}
        self.handoff: dict[str, HandoffRecord] = {}
        self.vfnet: dict[str, VfNetRecord] = {}

    # ------------------------------------------------------------- locking
    def __enter__(self) -> "Journal":
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    @property
    def locked(self) -> bool:
        return self._lock is not None

    def lock(self) -> None:
        lk = self.host.lock(self.lock_file, self.lock_timeout)
        lk.__enter__()
        self._lock = lk
        try:
            self.load()
        except BaseException:
            self.unlock()
            raise

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    # ------------------------------------------------------------- file
    def load(self) -> None:
        self.host.check_private_dir(self.dir)
        text = self.host.read_text(self.file, default=None)
        if text is None:
            self.devices, self.sriov, self.handoff, self.vfnet = {}, {}, {}, {}
            return
        if len(text) > _MAX_BYTES:
            raise _fail(self.file, "larger than 4 MiB")
        self.devices, self.sriov, self.handoff = parse(text, self.file)
        self.vfnet = parse_vfnet(text, self.file)

    def to_json(self) -> str:
        data: dict = {
            "schema": SCHEMA,
            "devices": {a: _as_dict(r) for a, r in sorted(self.devices.items())},
            "sriov": {p: _as_dict(r) for p, r in sorted(self.sriov.items())},
        }
        if self.handoff:
            data["handoff"] = {a: _as_dict(r) for a, r in sorted(self.handoff.items())}
        if self.vfnet:
            data["vfnet"] = {p: {**_as_dict(r), "originals": {k: {f: list(v) if isinstance(v, tuple) else v
                                                                  for f, v in vals.items()}
                                                              for k, vals in sorted(r.originals.items())}}
                             for p, r in sorted(self.vfnet.items())}
        return json.dumps(data, indent=2) + "\n"

    def save(self) -> None:
        if self._lock is None:
            raise VfioctlError("internal error: journal saved without holding its lock")
        self.host.write_file(self.file, self.to_json(), 0o600, action="write the journal")

    # ------------------------------------------------------------- records
    def record_device(self, rec: DeviceRecord) -> bool:
        """Keep the first original: a device hidden twice must restore to its real original.
        True when the record is new."""
        old = self.devices.get(rec.address)
        if old is not None:
            old.target_driver = rec.target_driver
            for i in rec.added_ids:
                if i not in old.added_ids:
                    old.added_ids.append(i)
            if old.original_reset_method is None:
                old.original_reset_method = rec.original_reset_method
            return False
        self.devices[rec.address] = rec
        return True

    def record_sriov(self, rec: SriovRecord) -> bool:
        if rec.pf not in self.sriov:
            self.sriov[rec.pf] = rec
            return True
        return False

    def record_vfnet(self, rec: VfNetRecord) -> list[tuple[str, str]]:
        """Keep the first original of each VF field; the (vf, field) pairs that are new."""
        old = self.vfnet.setdefault(rec.pf, VfNetRecord(rec.pf, {}, rec.origin, rec.state, rec.since))
        added = []
        for vf, vals in rec.originals.items():
            have = old.originals.setdefault(vf, {})
            for f, v in vals.items():
                if f not in have:
                    have[f] = v
                    added.append((vf, f))
        old.state = "pending" if added else old.state
        return added

    def forget_vfnet(self, pf: str, fields: list[tuple[str, str]]) -> list[tuple[str, str, object]]:
        """Drop the originals of *fields* of *pf* (the whole record once none is left); what was dropped."""
        rec = self.vfnet.get(pf)
        gone: list[tuple[str, str, object]] = []
        if rec is None:
            return gone
        for vf, f in fields:
            vals = rec.originals.get(vf)
            if vals is not None and f in vals:
                gone.append((vf, f, vals.pop(f)))
                if not vals:
                    del rec.originals[vf]
        if not rec.originals:
            del self.vfnet[pf]
        return gone

    def record_handoff(self, rec: HandoffRecord) -> bool:
        if rec.address not in self.handoff:
            self.handoff[rec.address] = rec
            return True
        return False


def read_journal(host: Host) -> Journal:
    """Read the journal without taking the lock (status, show, dry runs).

    A journal that exists but cannot be read (a non-root user) raises
    VfioctlPermissionError (77): an unreadable journal is never taken for an empty one."""
    j = Journal(host)
    if host.exists(j.file):
        j.load()
    return j
