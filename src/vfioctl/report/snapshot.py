"""Capture what vfioctl's readers read from a host into a .tar.gz that ``Host(root=...)`` reads back.

The capture is derived, not kept by hand: every read command (``list``,
``groups``, ``show`` of every function, ``check`` with its group prediction, which reads
the config space the isolation views need, ``status``, ``sriov show``, and what
``boot cmdline`` and ``apply`` read) runs against a recording
:class:`~vfioctl.host.core.Host`, which remembers each path it read, listed,
resolved or looked at; exactly those are archived, with every symbolic link on
their way, so the snapshot answers each of those commands as the live host
did.  Probes (the kernel log, interface addresses, the device nodes processes hold open:
``open-nodes``, bounded, :mod:`vfioctl.host.opens`) go into ``/.vfioctl/probes.json``;
meta.json's ``captured`` lists ``host-use`` so that a reader can tell a capture that holds them
from an older one (whose host use is "not known").

The archive holds one top-level folder ``root/`` with the host's absolute
layout; links keep the kernel's targets and resolve inside the snapshot when
read (:mod:`vfioctl.host.tarroot`).  Of ``/proc``, only what the readers need is
kept: the mount table, and for the processes holding VFIO groups or display
devices their command line and those open files, never anything else.
"""

from __future__ import annotations

import base64
import errno
import functools
import io
import json
import os
import re
import socket
import tarfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from vfioctl.base.errors import VfioctlError
from vfioctl.base.version import __version__
from vfioctl.boot import cmdline
from vfioctl.host import probes
from vfioctl.host.core import PROBES_FILE, Host
from vfioctl.host.output import write_output
from vfioctl.host.trees import walk_path
from vfioctl.ops import session as engine
from vfioctl.ops.config import DEFAULT_PATH, load_config
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import devices
from vfioctl.pci.rom import ROM_DIR, SNAPSHOT_ROM_BYTES, read_rom, rom_present
from vfioctl.pci.topology import read_topology
from vfioctl.report import checks, inventory
from vfioctl.report.inventory import show_sriov
from vfioctl.report.topology import CAPTURED_READINGS, read_facts
from vfioctl.usage.nodes import READING as HOST_USE_READING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable

SCHEMA = "vfioctl.snapshot/1"
META = "/.vfioctl/meta.json"
TOP = "root"

_PROC_FD = re.compile(r"/proc/([0-9]+)/fd/([0-9]+)")
_PROC_PID = re.compile(r"/proc/([0-9]+)(/.*)?")
#: open files worth keeping: VFIO groups (VM holders) and display devices (console hand-off)
_HELD = re.compile(r"/dev/vfio/[0-9]+|/dev/dri/(card|renderD)[0-9]+|/dev/fb[0-9]+")


@dataclass
class SnapshotResult:
    path: str | None
    files: int = 0
    links: int = 0
    size: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "path": self.path, "files": self.files, "links": self.links,
                "size": self.size, "seconds": round(self.seconds, 3), "skipped": self.skipped}


#: the readings a snapshot of this version holds (meta.json ``captured``): a reader asks
#: Host.not_captured(name) before it trusts an absence; older snapshots lack the newer names
CAPTURES = ("rom", *CAPTURED_READINGS, HOST_USE_READING)


def readers(host: Host, *, roms: bool = True) -> None:
    """Run every read view against *host* (a recording host records what they touch)."""
    def quiet(fn: Callable[..., object]) -> None:
        try:
            fn()
        except VfioctlError:
            pass  # a view that cannot answer on this host answers the same from the snapshot

    quiet(lambda: inventory.list_devices(host))
    quiet(lambda: inventory.list_groups(host))
    for dev in devices(host):
        quiet(functools.partial(inventory.show_device, host, str(dev.address)))
    quiet(lambda: checks.run_checks(host))
    quiet(lambda: engine.status(host))
    quiet(lambda: show_sriov(host))
    quiet(lambda: _boot_files(host))
    quiet(lambda: read_facts(host, read_topology(host)))
    if roms:
        for dev in devices(host):
            quiet(functools.partial(_rom, host, dev.address))


def _rom(host: Host, address: PciAddress) -> None:
    """What `vfioctl rom` reads: the ROM's bytes (on the live host through the ``rom`` probe,
    which enables the ROM, reads it and disables it again)."""
    if rom_present(host, address):
        read_rom(host, address)


def _boot_files(host: Host) -> None:
    """What `boot cmdline --dry-run` and `apply --dry-run` read: the boot loader's files and
    the declarative config, so that a support case can replay them."""
    try:
        cmdline.plan(host, [], [])
    except VfioctlError:
        pass
    if host.exists(DEFAULT_PATH):
        load_config(host, DEFAULT_PATH)


class _Archive:
    """The entries to archive: path -> ("file", bytes | None) | ("dir",) | ("link", target)."""

    def __init__(self, src: Host, result: SnapshotResult) -> None:
        self.src = src
        self.result = result
        self.entries: dict[str, tuple] = {}
        self.mypid = str(os.getpid())
        #: one capture sees one tree: what each path is, each link's target and each folder's
        #: resolution are looked at once (a chain of links in front of a folder, walked for
        #: every path below it, cost a lookup per link per path)
        self._kinds: dict[str, bool | None] = {}
        self._targets: dict[str, str | None] = {}
        self._dirs: dict[str, tuple[str, int] | None] = {}

    # ------------------------------------------------------------ walking the live tree
    def _readlink(self, path: str) -> str | None:
        if path in self._targets:
            return self._targets[path]
        try:
            got = self.src.readlink(path)
        except VfioctlError as err:
            self.result.skipped.append(f"{path}: {err.message}")
            got = None
        self._targets[path] = got
        return got

    def _link(self, path: str) -> str | None:
        target = self._readlink(path)
        if target is not None:
            self.entries[path] = ("link", target)
        return target

    def _is_link(self, p: str) -> bool | None:
        if p not in self._kinds:
            kind = self.src.kind(p, follow=False)
            self._kinds[p] = None if kind is None else kind == "link"
        return self._kinds[p]

    def _target(self, p: str) -> str:
        target = self._readlink(p)
        if target is None:
            raise OSError(errno.EINVAL, "unreadable link")
        return target

    def _walk(self, path: str, follow_last: bool, hops: int = 0) -> tuple[str, int] | None:
        """walk_path, capturing every link on the way: (resolved, links taken) or None."""
        try:
            real, links = walk_path(path, self._is_link, self._target, follow_last, hops=hops)
        except OSError as err:
            if err.errno == errno.ELOOP:
                self.result.skipped.append(f"{err.filename or path}: {os.strerror(errno.ELOOP)}")
            return None
        for p, t in links:
            self.entries[p] = ("link", t)
        return real, hops + len(links)

    def _folder(self, folder: str) -> tuple[str, int] | None:
        """A folder's resolution from its parent's, once per capture."""
        if folder not in self._dirs:
            parent, _, base = folder.rpartition("/")
            if base in ("", ".", ".."):
                self._dirs[folder] = self._walk(folder or "/", True)
            else:
                up = self._folder(parent or "/")
                near = None if up is None else (up[0].rstrip("/") + "/" + base, up[1])
                self._dirs[folder] = near if near is None or not self._is_link(near[0]) else \
                    self._walk(near[0], True, near[1])
        return self._dirs[folder]

    def resolve(self, path: str, follow_last: bool = True) -> str | None:
        """The link-free path of *path*, capturing every link on the way; None (and nothing
        captured) on a loop or an unreadable link."""
        folder, _, base = path.rpartition("/")
        if base in ("", ".", ".."):
            got = self._walk(path, follow_last)
            return None if got is None else got[0]
        up = self._folder(folder or "/")
        if up is None:
            return None
        near = up[0].rstrip("/") + "/" + base
        if not follow_last or not self._is_link(near):
            return near
        got = self._walk(near, True, up[1])
        return None if got is None else got[0]

    def shallow(self, path: str) -> None:
        """Record what is at *path* without its content (a marker for a file)."""
        kind = self.src.kind(path, follow=False)
        if kind == "link":
            if self.resolve(path) is not None:  # a loop is left out (and listed in skipped)
                self._link(path)
        elif kind == "dir":
            self.entries.setdefault(path, ("dir",))
        elif kind is not None:
            if path not in self.entries:
                self.entries[path] = ("file", None)

    def content(self, path: str) -> None:
        if self.entries.get(path, ("",))[0] == "file" and self.entries[path][1] is not None:
            return
        kind = self.src.kind(path, follow=False)
        if kind == "dir":
            self.entries.setdefault(path, ("dir",))
            return
        if kind is None:
            return
        try:
            data = self.src.read_bytes(path)
        except VfioctlError as err:
            self.result.skipped.append(f"{path}: {err.message}")
            self.entries.setdefault(path, ("file", None))
            return
        self.entries[path] = ("file", data)

    # ------------------------------------------------------------ one recorded operation
    def take(self, op: str, path: str) -> None:
        if op in ("lexists", "link"):
            parent = self.resolve(os.path.dirname(path) or "/")
            if parent is not None:
                self.shallow(f"{parent.rstrip('/')}/{os.path.basename(path)}" if path != "/" else "/")
            return
        real = self.resolve(path)
        if real is None:
            return
        if op == "read":
            self.content(real)
        elif op == "list":
            self.entries.setdefault(real, ("dir",))
            for name in self.src.listdir(real):
                self.shallow(f"{real.rstrip('/')}/{name}")
        else:  # exists, realpath
            self.shallow(real)

    # ------------------------------------------------------------ privacy of /proc
    def prune_proc(self) -> None:
        """Keep of /proc only the mount table and the holders' display/VFIO files."""
        keep_pids = {self.mypid}
        for p, e in list(self.entries.items()):
            m = _PROC_FD.fullmatch(p)
            if m:
                if e[0] == "link" and _HELD.fullmatch(e[1]):
                    keep_pids.add(m[1])
                else:
                    del self.entries[p]
        for p in list(self.entries):
            m = _PROC_PID.fullmatch(p)
            if not m:
                continue
            pid, rest = m[1], m[2] or ""
            if pid not in keep_pids:
                del self.entries[p]
            elif pid != self.mypid and rest not in ("", "/fd", "/cmdline", "/comm", "/cgroup") \
                    and not _PROC_FD.fullmatch(p):
                del self.entries[p]

    # ------------------------------------------------------------ writing
    def write(self, tar: tarfile.TarFile, now: int) -> None:
        def info(path: str, kind: bytes, mode: int) -> tarfile.TarInfo:
            ti = tarfile.TarInfo(TOP + path if path != "/" else TOP)
            ti.type = kind
            ti.mode = mode
            ti.mtime = now
            ti.uname = ti.gname = ""
            return ti

        tar.addfile(info("/", tarfile.DIRTYPE, 0o755))
        for path in sorted(self.entries):
            if path == "/":
                continue
            e = self.entries[path]
            if e[0] == "dir":
                tar.addfile(info(path, tarfile.DIRTYPE, 0o755))
            elif e[0] == "link":
                ti = info(path, tarfile.SYMTYPE, 0o777)
                ti.linkname = e[1]
                tar.addfile(ti)
                self.result.links += 1
            else:
                data = e[1] or b""
                ti = info(path, tarfile.REGTYPE, 0o644)
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
                self.result.files += 1


def capture(host: Host, out: BinaryIO, *, include_ids: bool = True, include_roms: bool = True) -> SnapshotResult:
    """Write a snapshot of *host* (live or captured) as a gzip'd tar stream to *out*.  Option ROMs
    are read as `vfioctl rom` reads them (each enabled, read, disabled), unless *include_roms* is
    false; each is kept up to :data:`~vfioctl.pci.rom.SNAPSHOT_ROM_BYTES`."""
    start = time.monotonic()
    rec = Host(host.source, record=True)
    readers(rec, roms=include_roms)
    result = SnapshotResult(path=None)
    arc = _Archive(host, result)  # raw reads only: no cache of *host* stands between
    for op, path in list(rec.recorded or {}):
        if not include_ids and "pci.ids" in path:
            continue
        try:
            arc.take(op, path)
        except VfioctlError as err:
            result.skipped.append(f"{path}: {err.message}")
    arc.prune_proc()
    result.skipped = list(dict.fromkeys(result.skipped))
    now = int(time.time())
    # a capture of a capture keeps its probes as they were; a plain folder's answers are its own
    answers = dict(rec.probe_answers) if host.is_live else {**rec.probe_answers, **_carried_probes(host)}
    _rom_files(answers, arc.entries)
    arc.entries[PROBES_FILE] = ("file", (json.dumps(answers, indent=1, sort_keys=True) + "\n").encode())
    captured, not_captured = _what_is_captured(host, include_roms)
    if host.is_live:
        u = os.uname()
        uname = {"sysname": u.sysname, "release": u.release, "version": u.version, "machine": u.machine}
        hostname = socket.gethostname()
    else:
        uname = {"release": host.uname_release() or ""}
        hostname = host.read("/proc/sys/kernel/hostname", default=None)
    meta = {
        "schema": SCHEMA, "vfioctl_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": hostname, "uname": uname, "source": host.source,
        "files": sum(1 for e in arc.entries.values() if e[0] == "file") + 1,
        "links": sum(1 for e in arc.entries.values() if e[0] == "link"),
        "skipped": result.skipped,
        "as_root": host.meta().get("as_root") if host.captured else os.geteuid() == 0,
        "captured": captured,
        "not_captured": not_captured,
    }
    arc.entries[META] = ("file", (json.dumps(meta, indent=2) + "\n").encode())
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        arc.write(tar, now)
    result.seconds = time.monotonic() - start
    return result


def _rom_files(probes: dict, entries: dict[str, tuple]) -> None:
    """ROMs the ``rom`` probe read go into files of their own (one ROM can be megabytes, more
    than a probes file should hold); one over the size kept is named, not kept."""
    for key in [k for k in probes if k.startswith("rom:")]:
        got = probes[key]
        address = key[4:]
        if not (isinstance(got, dict) and isinstance(got.get("base64"), str)) or not PciAddress.is_valid(address):
            continue
        data = base64.b64decode(got["base64"])
        if len(data) > SNAPSHOT_ROM_BYTES:
            probes[key] = {"error": f"the ROM of {address} was not captured: {len(data)} bytes, more than the "
                                    f"{SNAPSHOT_ROM_BYTES >> 20} MiB a snapshot keeps of one ROM"}
            continue
        entries[f"{ROM_DIR}/{PciAddress.parse(address)}"] = ("file", data)
        del probes[key]


def _what_is_captured(host: Host, roms: bool) -> tuple[list[str], dict[str, str]]:
    """meta.json's ``captured`` (the readings this snapshot holds) and ``not_captured`` (those
    left out on purpose, with why).  A snapshot of a snapshot holds what its source held."""
    if host.is_live:
        have = list(CAPTURES)
        why: dict[str, str] = {}
    else:
        have = [c for c in CAPTURES if host.not_captured(c) is None]
        why = {c: host.not_captured(c) or "" for c in CAPTURES if c not in have}
    if not roms and "rom" in have:
        have.remove("rom")
        why["rom"] = "the snapshot was taken with --no-rom"
    return have, why


def _carried_probes(host: Host) -> dict:
    """Re-snapshotting a snapshot keeps its probes as they were (validated as every read is)."""
    text = host.read_text(PROBES_FILE, default=None)
    return probes.parse_answers(text, host.source) if text else {}


def write_snapshot(host: Host, path: str | os.PathLike, *, include_ids: bool = True,
                   include_roms: bool = True) -> SnapshotResult:
    """Capture *host* into *path* atomically (temp file in the same folder, fsync, rename)."""
    box: list[SnapshotResult] = []
    dest = write_output(path, lambda f: box.append(capture(host, f, include_ids=include_ids,
                                                           include_roms=include_roms)), what="snapshot")
    res = box[0]
    res.path = dest
    res.size = os.path.getsize(dest)
    return res
