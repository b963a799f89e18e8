"""The host: the one door through which vfioctl touches a machine.

``Host(root)`` derives every path (/sys, /proc, /dev, /boot, /lib/modules,
/etc, /var/lib/vfioctl) from one root and is the only code that opens,
lists, links, writes, unlinks or runs anything:

* ``root="/"``: the running machine;
* a folder: a captured or fake tree; links are resolved inside the folder
  (an absolute link target or a ``..`` chain never reaches this machine's
  files);
* a ``.tar.gz`` made by ``vfioctl snapshot``: read into memory by
  :mod:`vfioctl.host.tarroot` and answered from there, never unpacked.  Such a
  host is read-only: every write, unlink and program run refuses.

Reads never follow into something that is not a regular file (a FIFO or a
device node in a hostile tree cannot hang or flood a read), are bounded in
size, and translate OS errors in one place (:func:`vfioctl.base.errors.from_oserror`),
never swallowing EACCES.  Facts that are not files (the kernel log, an
interface's IPv4 address) come from :meth:`Host.probe`, which a snapshot
answers from what was captured.

A recording host (``record=True``) remembers every path each read touched;
``vfioctl snapshot`` captures exactly those (see :mod:`vfioctl.report.snapshot`).
"""

from __future__ import annotations

import errno
import os
import re
import stat as _stat
import time

from vfioctl.base.errors import InvalidInput, NotFound, Refused, from_oserror
from vfioctl.base.text import parse_int
from vfioctl.host import env, probes
from vfioctl.host.faults import _fault_fail, _fault_point, _trace
from vfioctl.host.limits import read_limit
from vfioctl.host.lock import StateLock, _check_private_dir
from vfioctl.host.process import run_local
from vfioctl.host.trees import _ArchiveTree, _FolderTree, _Tree

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Protocol
    WriteHook = Callable[["Host", str, str], None]
    RunHook = Callable[["Host", list[str]], "tuple[int, str]"]

    class NetlinkHook(Protocol):
        """What tests install as ``Host.netlink_hook``: a simulated PF driver's VF settings."""

        def read(self, ifname: str) -> list[dict] | None: ...

        def write(self, ifname: str, vf: int, field: str, value: object) -> None: ...


_MISSING: Any = object()


#: errors that mean "this attribute exists but has no value here"
_NO_VALUE = (errno.ENODEV, errno.ENXIO, errno.EIO, errno.EINVAL, errno.ENOTTY, errno.EOPNOTSUPP)


PROBES_FILE = "/.vfioctl/probes.json"
#: what `vfioctl snapshot` writes beside the captured files: version, date, what it holds
META_FILE = "/.vfioctl/meta.json"
#: the folder a snapshot archive holds the host's ``/`` in (vfioctl.host.tarroot.TOP)
SNAPSHOT_TOP = "root"


def _folder_root(real: str, given: str) -> str:
    """The folder that stands for ``/``: *real* itself, or its ``root/`` when *real* is an
    unpacked snapshot (``tar xzf host.tar.gz -C DIR`` gives ``DIR/root/...``).  A folder with
    none of a host's top folders (``sys/``, ``proc/``, ``etc/``...) and no snapshot in it is no host:
    refused, not read as an empty machine."""
    if real == "/" or os.path.isdir(os.path.join(real, "sys")):
        return real
    inner = os.path.join(real, SNAPSHOT_TOP)
    if os.path.isdir(os.path.join(inner, "sys")) or os.path.isfile(os.path.join(inner, META_FILE.lstrip("/"))):
        return inner
    if any(os.path.isdir(os.path.join(real, top)) for top in _HOST_TOPS):
        return real
    raise NotFound(f"host root {given} holds none of sys/, proc/, etc/: it is not a captured host (give a folder "
                   "laid out like / , the root/ folder of an unpacked snapshot, or the .tar.gz `vfioctl snapshot` "
                   "wrote)")


#: top folders of a host tree: a folder root with one of them is read as a host (a fake host in a
#: test may hold only etc/ or boot/)
_HOST_TOPS = ("sys", "proc", "etc", "boot", "dev", "lib", "usr", "var", "run", ".vfioctl")


#: a kernel release as UTS_RELEASE spells one (6.1.0-57-amd64, 5.15.0+, 6.8.0-rc1~x)
_RELEASE = re.compile(r"[0-9][A-Za-z0-9._+~-]{0,99}")


#: a relative link target that climbs, then names only ordinary components
_PLAIN_UP = re.compile(r"(?:\.\./)+(?:[^/.][^/]*)(?:/[^/.][^/]*)*")


def _check_abs(abspath: str) -> str:
    if not isinstance(abspath, str) or not abspath.startswith("/") or "\0" in abspath:
        raise ValueError(f"host paths are absolute, got {abspath!r}")
    return abspath


class Host:
    """A Linux host, live (``root="/"``) or captured (a folder or snapshot tarball)."""

    def __init__(self, root: str | os.PathLike = "/", *, record: bool = False) -> None:
        src = os.fspath(root)
        self.source = src
        self._tree: Any
        if not src:
            raise InvalidInput("the host root is empty (expected / , a folder or a .tar.gz from `vfioctl snapshot`)")
        try:
            st = os.stat(src)
        except FileNotFoundError:
            raise NotFound(f"host root {src} does not exist (expected / , a folder or a .tar.gz from "
                           "`vfioctl snapshot`)") from None
        except OSError as err:
            raise from_oserror(err, "open the host root", src) from err
        #: made by `vfioctl snapshot` (an archive, or one unpacked): read-only, its meta.json says
        #: what it holds (:meth:`not_captured`)
        self.captured = False
        if _stat.S_ISDIR(st.st_mode):
            self.root = _folder_root(os.path.realpath(src), src)
            self.archive = False
            self.snapshot = self.root != "/"
            self.captured = self.snapshot and os.path.isfile(os.path.join(self.root, META_FILE.lstrip("/")))
            #: a root given as something else than "/" that resolves to it ("", "//", "/tmp/..",
            #: a link to /, /proc/self/root): read as the live host, never changed through
            self.alias_of_live = self.root == "/" and src != "/"
            self._tree = _FolderTree(self.root) if self.snapshot else _Tree("")
        elif _stat.S_ISREG(st.st_mode):
            self.alias_of_live = False
            self.root = os.path.abspath(src)
            self.archive = True
            self.snapshot = True
            self.captured = True
            self._tree = _ArchiveTree(src)
        else:
            raise InvalidInput(f"host root {src} is neither a folder nor a regular file (a snapshot .tar.gz); "
                               "refusing to read it")
        #: every change done through this Host, in order: (path or "exec", value)
        self.writes: list[tuple[str, str]] = []
        #: called instead of the real write when set (tests' simulated kernel)
        self.write_hook: WriteHook | None = None
        #: called instead of running a host program when set (tests)
        self.run_hook: RunHook | None = None
        #: answers VF-settings netlink reads and writes instead of the kernel when set (tests)
        self.netlink_hook: NetlinkHook | None = None
        #: with record=True: every (operation, path) a read touched, in order
        self.recorded: dict[tuple[str, str], None] | None = {} if record else None
        #: with record=True: the answers of every probe, for the snapshot
        self.probe_answers: dict[str, Any] = {}
        self._cache: dict[str, object] = {}
        self._volatile: set[str] = set()
        #: bumped by every change: readers caching device state compare it
        self.generation = 0
        self._probes: dict[str, Any] | None = None
        self._meta: dict[str, Any] | None = None

    # ---------------------------------------------------------------- identity
    @property
    def is_live(self) -> bool:
        return not self.snapshot

    def describe(self) -> str:
        return "this host" if self.is_live else f"the captured host {self.source}"

    def meta(self) -> dict[str, Any]:
        """The snapshot's meta.json (vfioctl version, date, what was captured); {} for a live
        host or a folder that is no snapshot."""
        if self._meta is None:
            data: Any = {}
            if self.captured:
                # lazy: json costs ~2 ms at start-up; only a captured host's meta needs it
                import json

                try:
                    data = json.loads(self.read_text(META_FILE, default="{}"))
                except ValueError:
                    raise InvalidInput(f"{self.source}: {META_FILE} is not valid JSON") from None
            self._meta = data if isinstance(data, dict) else {}
        return self._meta

    def not_captured(self, what: str) -> str | None:
        """Why this host cannot answer a reading of kind *what* (``rom``, ``link``...), or None
        when it can (callers say "not captured: " and the reason): a live host always can; a snapshot can when its meta.json lists *what*
        under ``captured`` (readings older versions did not capture are not there, and a
        reading the capture left out says why under ``not_captured``)."""
        if not self.captured:
            return None
        meta = self.meta()
        left_out = meta.get("not_captured")
        if isinstance(left_out, dict) and isinstance(left_out.get(what), str):
            return left_out[what]
        got = meta.get("captured")
        if isinstance(got, list) and what in got:
            return None
        version = meta.get("vfioctl_version")
        by = f"vfioctl {version}" if isinstance(version, str) and version.isprintable() else "an older vfioctl"
        return f"the snapshot was made by {by}, which did not capture it"

    def root_advice(self) -> str | None:
        """What would let vfioctl read what permissions hid from it: capturing the host again as
        root (a snapshot), running as root (a live host read by another user), or None when
        nothing would (root on the live host: what root cannot read, no advice gets)."""
        if self.captured:
            # a snapshot taken as root read what root reads: nothing more to get (meta.json's
            # as_root; older snapshots do not say)
            if self.meta().get("as_root") is True:
                return None
            return "capture the host again as root (`sudo vfioctl snapshot FILE`)"
        if os.geteuid() == 0:
            return None
        return "run as root (sudo vfioctl ...)"

    def path(self, abspath: str) -> str:
        """Where *abspath* is on this machine (live or folder roots only; never for reading)."""
        _check_abs(abspath)
        if self.archive:
            raise Refused(f"{self.source} is a snapshot archive: {abspath} has no place on this machine")
        return self._tree.real(abspath, follow=False)

    def _rec(self, op: str, abspath: str) -> None:
        if self.recorded is not None:
            self.recorded[(op, abspath)] = None

    # ---------------------------------------------------------------- reads
    def read_bytes(self, abspath: str, size: int = -1, default: Any = _MISSING) -> bytes:
        """A file's bytes (at most *size*).  Missing -> *default* or NotFound.

        An attribute that exists but has no value on this device (ENODEV, EIO...)
        also gives *default*.  Permission errors are never swallowed."""
        _check_abs(abspath)
        self._rec("read", abspath)
        try:
            return self._tree.read_bytes(abspath, size, read_limit(abspath))
        except (FileNotFoundError, NotADirectoryError):
            if default is _MISSING:
                raise NotFound(f"{abspath} does not exist on {self.describe()}", path=abspath) from None
            return default
        except OSError as err:
            if default is not _MISSING and err.errno in _NO_VALUE:
                return default
            raise from_oserror(err, "read", abspath, reading=True) from err

    def read(self, abspath: str, default: Any = _MISSING) -> str:
        """A text attribute, decoded (invalid UTF-8 replaced) and stripped."""
        data = self.read_bytes(abspath, -1, _MISSING if default is _MISSING else None)
        if data is None:
            return default
        return data.decode("utf-8", "replace").strip()

    def read_text(self, abspath: str, default: Any = _MISSING) -> str:
        """A whole text file as it is (not stripped): configs, journals, GRUB files."""
        data = self.read_bytes(abspath, -1, _MISSING if default is _MISSING else None)
        if data is None:
            return default
        return data.decode("utf-8", "replace")

    def read_int(self, abspath: str, base: int = 0, default: Any = _MISSING) -> int:
        text = self.read(abspath, default=None)
        if text is None or text == "":
            if default is _MISSING:
                raise NotFound(f"{abspath} does not exist on {self.describe()}", path=abspath)
            return default
        n = parse_int(text, base)
        if n is None:
            if default is _MISSING:
                raise InvalidInput(f"{abspath} holds {text[:40]!r}, not a number")
            return default
        return n

    def kind(self, abspath: str, follow: bool = True) -> str | None:
        """"file", "dir", "link" (follow=False only), "char", "other", or None when absent."""
        _check_abs(abspath)
        self._rec("exists" if follow else "lexists", abspath)
        try:
            return self._tree.kind(abspath) if follow else self._tree.lstat_kind(abspath)
        except OSError as err:
            raise from_oserror(err, "look at", abspath, reading=True) from err

    def exists(self, abspath: str) -> bool:
        """True when something is there (a dangling link counts, as os.path.lexists)."""
        return self.kind(abspath, follow=False) is not None

    def is_dir(self, abspath: str) -> bool:
        return self.kind(abspath) == "dir"

    def is_file(self, abspath: str) -> bool:
        return self.kind(abspath) == "file"

    def is_char_device(self, abspath: str) -> bool | None:
        """True for a character device (a snapshot keeps them as marker files), None if absent."""
        k = self.kind(abspath)
        if k is None:
            return None
        return True if self.snapshot else k == "char"

    def listdir(self, abspath: str) -> list[str]:
        """Entries of a directory, sorted; [] when it does not exist."""
        _check_abs(abspath)
        self._rec("list", abspath)
        try:
            return self._tree.listdir(abspath)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise from_oserror(err, "list", abspath, reading=True) from err

    def readlink(self, abspath: str) -> str | None:
        """A symlink's target as written, None if absent or not a link."""
        _check_abs(abspath)
        self._rec("link", abspath)
        try:
            return self._tree.readlink(abspath)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.EINVAL:  # not a link
                return None
            raise from_oserror(err, "read link", abspath, reading=True) from err

    def link_name(self, abspath: str) -> str | None:
        """Basename of a symlink's target (``driver`` -> ``e1000e``), None if absent."""
        t = self.readlink(abspath)
        if not t:
            return None
        name = t.rstrip("/").rsplit("/", 1)[-1]
        if name in ("", ".", "..") or not name.isprintable() or " " in name:
            # sysfs names its links' targets after drivers, groups, addresses and modules:
            # never a space, a newline or a control character (only a crafted tree has one)
            raise InvalidInput(f"{abspath} points to {name!r}, a name the kernel never gives "
                               "(this tree was not captured from a running kernel)")
        return name

    def realpath(self, abspath: str) -> str:
        """Host-absolute real path, links resolved inside the root."""
        _check_abs(abspath)
        self._rec("realpath", abspath)
        try:
            return self._tree.realpath(abspath)
        except OSError as err:
            raise from_oserror(err, "resolve", abspath, reading=True) from err

    def sysfs_target(self, abspath: str) -> str:
        """Where a sysfs entry that is a link points, host-absolute: for the plain links the
        kernel makes in a real folder (``/sys/class/net/eth0`` ->
        ``../../devices/pci0000:00/0000:00:02.0/net/eth0``) the target is joined to the folder
        in one readlink, where :meth:`realpath` looks up every component; anything else (not a
        link, ``.`` or ``..`` inside the target, an absolute target) takes :meth:`realpath`.
        The shortcut holds only where the entry's folder is itself no link, as the kernel's
        ``/sys/class/*`` and ``/sys/bus/*/devices`` are; a captured tree whose folder is one (a
        chain of links in front of /sys/bus/pci/devices) takes :meth:`realpath`."""
        target = self.readlink(abspath)
        if target and _PLAIN_UP.fullmatch(target):
            folder = abspath.rstrip("/").rpartition("/")[0]
            if self.is_live or self.cached(f"plain-folder:{folder}", lambda: self.realpath(folder) == folder):
                up = target.count("../")
                base = folder.split("/")
                if up < len(base):
                    return "/".join(base[:len(base) - up]) + "/" + target[3 * up:]
        return self.realpath(abspath)

    def uname_release(self) -> str:
        """The running kernel's release (``uname -r``) as the host root shows it; "" when it is
        not one (a release starts with its version's digits and names a folder of
        /lib/modules: no "/", space, control character, and never a leading "-" that a program
        would take for an option)."""
        rel = self.read("/proc/sys/kernel/osrelease", default="")
        if not rel and self.is_live:
            rel = os.uname().release
        return rel if _RELEASE.fullmatch(rel) else ""

    def probe(self, name: str, key: str = "") -> Any:
        """A fact that is no file (:mod:`vfioctl.host.probes`): ``dmesg`` (the IOMMU-related
        kernel log lines, or None with why), ``ipv4`` (an interface's address/prefix, or
        None), and what higher layers register.  A live host measures it through the probe
        its owner registered; a captured one answers from the snapshot's probes file."""
        k = f"{name}:{key}" if key else name
        if self.snapshot:
            if self._probes is None:
                text = self.read_text(PROBES_FILE, default=None)
                self._probes = probes.parse_answers(text, self.source) if text else {}
            got = self._probes.get(k)
            if self.recorded is not None and k in self._probes:
                self.probe_answers[k] = got
            elif self.recorded is not None and not self.captured:
                # a folder that is no capture answers as a whole host: nothing there is none
                self.probe_answers[k] = None
            return got
        value = probes.measure(self, name, key)
        if self.recorded is not None:
            self.probe_answers[k] = value
        return value

    def has_probe(self, name: str, key: str = "") -> bool:
        """Whether this host can answer the probe: a live host always; a captured one when its
        probes file holds an answer (an absent answer is "not captured", never "none")."""
        if not self.snapshot:
            return True
        self.probe(name, key)  # loads the probes file
        k = f"{name}:{key}" if key else name
        return self._probes is not None and k in self._probes

    def cached(self, key: str, compute: Callable[[], object], *, volatile: bool = False) -> Any:
        """Per-Host memo.  *volatile* values (driver links, mounts) are forgotten at every change;
        the others (module indexes, pci.ids, kernel config) live as long as the Host."""
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = compute()
            if volatile:
                self._volatile.add(key)
            return value

    def invalidate(self) -> None:
        """Forget what a change may have made stale (called by every write)."""
        self.generation += 1
        if isinstance(self._tree, _FolderTree):
            self._tree.clear()
        for k in self._volatile:
            self._cache.pop(k, None)
        self._volatile.clear()

    # ---------------------------------------------------------------- changes
    def require_changeable(self) -> None:
        """Refuse every change through a root that only resolves to this machine's "/": a
        script whose root variable came out as "//" or a link to / must not act on the
        machine; the live host is changed only when its root is given as "/" itself."""
        if self.alias_of_live:
            raise Refused(f"the host root {self.source!r} resolves to / (this machine): vfioctl changes the live "
                          "host only when the root is / itself (or not given); refusing")

    def _refuse_captured(self, what: str) -> None:
        self.require_changeable()
        if self.captured:
            raise Refused(f"cannot {what} on the snapshot {self.source}: a snapshot is read-only; "
                          "changes need the live host (drop --root)")

    def write(self, abspath: str, value: str, *, transient: bool = False) -> None:
        """The one function that writes kernel attributes.  Raises our errors with the path.

        *transient*: a write the caller undoes before it returns, around a read (permitting a
        ROM read, holding a device awake for it): what readers hold stays valid, so the host's
        generation is not bumped."""
        _check_abs(abspath)
        self.require_changeable()
        # lazy: the bounded write (fork, select, threading: ~6 ms at start-up) only for a write
        from vfioctl.host.bounded import bounded_call, bounded_write, is_bounded, limit_s

        bounded = is_bounded(abspath)
        limit = limit_s() if bounded else 0.0
        if self.write_hook is not None:
            self.writes.append((abspath, value))
            hook = self.write_hook
            try:
                if bounded:
                    bounded_call(lambda: hook(self, abspath, value), abspath, value, limit)
                else:
                    hook(self, abspath, value)
            except OSError as err:  # a simulated kernel refuses as the real one does
                raise from_oserror(err, f"write {value.strip()!r} to", abspath) from err
            finally:
                if not transient:
                    self.invalidate()
            return
        self._refuse_not_live(f"write {abspath}")
        self._log_write(abspath, value)
        if bounded:
            # an unbind or probe can wait on the driver's users: made by a child, bounded
            try:
                bounded_write(self._tree.real(abspath), abspath, value, limit)
            finally:
                if not transient:
                    self.invalidate()
            _fault_point()
            return
        try:
            fd = os.open(self._tree.real(abspath), os.O_WRONLY | os.O_CLOEXEC)
        except OSError as err:
            raise from_oserror(err, f"write {value.strip()!r} to", abspath) from err
        try:
            os.write(fd, value.encode())
        except OSError as err:
            raise from_oserror(err, f"write {value.strip()!r} to", abspath) from err
        finally:
            os.close(fd)
            if not transient:
                self.invalidate()
        _fault_point()

    def _refuse_not_live(self, what: str) -> None:
        self._refuse_captured(what)
        if self.snapshot:
            raise Refused(f"cannot {what} on a captured host ({self.source}); changes need the live host")

    def _log_write(self, where: str, value: str) -> None:
        """Every kernel change, before it is made: remembered, traced, and failed when a test asks."""
        self.writes.append((where, value))
        _trace(where, value)
        _fault_fail(where)

    def vf_info(self, ifname: str) -> list[dict] | None:
        """An SR-IOV PF interface's VF settings as the kernel reports them (IFLA_VFINFO_LIST,
        :mod:`vfioctl.host.netlink`); a captured host answers from its ``vfinfo`` probe."""
        if self.netlink_hook is not None:
            return self.netlink_hook.read(ifname)
        if self.snapshot:
            got = self.probe("vfinfo", ifname)
            return got if isinstance(got, list) else None
        # lazy: pyroute2 is imported only where VF settings are read or written
        from vfioctl.host import netlink

        value = netlink.read_vfinfo(ifname)
        if self.recorded is not None:
            self.probe_answers[f"vfinfo:{ifname}"] = value
        return value

    def set_vf(self, ifname: str, vf: int, field: str, value: object) -> None:
        """The one function that writes a VF setting (RTM_SETLINK on the PF *ifname*): traced,
        fault-injectable and refused on a captured host like :meth:`write`."""
        where = f"netlink:{ifname}/vf{vf}/{field}"
        shown = value if isinstance(value, str) else repr(value)
        hook = self.netlink_hook
        if hook is None:
            self._refuse_not_live(f"set {where}")
        self._log_write(where, shown)
        try:
            if hook is not None:
                hook.write(ifname, vf, field, value)
            else:
                # lazy: pyroute2 is imported only where VF settings are read or written
                from vfioctl.host import netlink

                netlink.set_vf(ifname, vf, field, value)
        finally:
            self.invalidate()
        _fault_point()

    def run(self, argv: list[str], timeout: float = 60, *, input: str | None = None) -> tuple[int, str]:
        """Run a program that changes the host (modprobe, systemctl, update-grub...).

        Returns (exit status, combined output).  A captured host has no kernel to
        act on, so this refuses unless a test installed ``run_hook``."""
        self.require_changeable()
        self.writes.append(("exec", " ".join(argv)))
        if self.run_hook is not None:
            rc_out = self.run_hook(self, argv)
            self.invalidate()
            return rc_out
        self._refuse_captured(f"run {' '.join(argv)}")
        if self.snapshot:
            raise Refused(f"cannot run {' '.join(argv)} on a captured host ({self.source}); changes need the live host")
        try:
            # argv: the caller's, each call site checked by tests/unit/host/test_process.py
            return run_local(argv, timeout, input=input)
        finally:
            self.invalidate()

    def write_file(self, abspath: str, content: str | bytes, mode: int | None = 0o644, *, makedirs: bool = False,
                   action: str = "write") -> None:
        """Atomically replace a regular file under the root (journal, config, boot files):
        temp file beside it with *mode* (None: the mode the file has, 0o644 for a new one),
        fsync, ``os.replace``, fsync of the folder.  The final component is replaced, never
        followed; kernel attributes go through :meth:`write`."""
        # lazy: tempfile costs ~3.4 ms at start-up; only file writes need it
        import tempfile

        _check_abs(abspath)
        self._refuse_captured(f"write {abspath}")
        real = self._tree.real(abspath, follow=False)
        folder = os.path.dirname(real)
        data = content.encode() if isinstance(content, str) else content
        try:
            if makedirs:
                self.make_dirs(os.path.dirname(abspath))
            if mode is None:
                try:
                    st = os.lstat(real)
                    mode = _stat.S_IMODE(st.st_mode) if _stat.S_ISREG(st.st_mode) else 0o644
                except FileNotFoundError:
                    mode = 0o644
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(real)}.")
            try:
                os.fchmod(fd, mode)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, real)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as err:
            raise from_oserror(err, action, abspath, creating=True) from err
        self.writes.append((abspath, "<file>"))

    def write_link(self, abspath: str, target: str) -> None:
        """Create or replace a symbolic link atomically."""
        _check_abs(abspath)
        self._refuse_captured(f"create {abspath}")
        real = self._tree.real(abspath, follow=False)
        tmp = f"{real}.vfioctl-tmp"
        try:
            self.make_dirs(os.path.dirname(abspath))
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.replace(tmp, real)
        except OSError as err:
            raise from_oserror(err, "create link", abspath, creating=True) from err
        self.writes.append((abspath, f"-> {target}"))

    def make_dirs(self, abspath: str) -> None:
        """Create the folder *abspath* and the folders above it that are missing, each with its
        mode set on the folder itself whatever the umask: 0700 for vfioctl's state folder and
        what is in it, 0755 for the others (/etc/libvirt/hooks/qemu.d, /etc/modprobe.d: a
        folder others could write would let them add what root runs)."""
        _check_abs(abspath)
        self._refuse_captured(f"create {abspath}")
        state = self.state_dir()
        real = self._tree.real(abspath)
        missing: list[tuple[str, str]] = []
        host_path = os.path.normpath(abspath)
        while not os.path.lexists(real):
            missing.append((real, host_path))
            parent = os.path.dirname(real)
            if parent == real:
                break
            real, host_path = parent, os.path.dirname(host_path)
        for real, host_path in reversed(missing):
            mode = 0o700 if host_path == state or host_path.startswith(state.rstrip("/") + "/") else 0o755
            try:
                os.mkdir(real, mode)
            except FileExistsError:
                continue  # made meanwhile by someone else: what is there is checked where it is used
            except OSError as err:
                raise from_oserror(err, "create the folder", host_path, creating=True) from err
            try:
                fd = os.open(real, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.fchmod(fd, mode)
                finally:
                    os.close(fd)
            except OSError as err:
                raise from_oserror(err, "set the mode of the folder", host_path) from err

    def unlink(self, abspath: str, *, missing_ok: bool = True) -> bool:
        """Remove a file or link (never a folder); False when it was not there."""
        _check_abs(abspath)
        self._refuse_captured(f"remove {abspath}")
        try:
            os.unlink(self._tree.real(abspath, follow=False))
        except FileNotFoundError:
            if missing_ok:
                return False
            raise NotFound(f"cannot remove {abspath}: it does not exist", path=abspath) from None
        except OSError as err:
            raise from_oserror(err, "remove", abspath) from err
        self.writes.append((abspath, "<removed>"))
        return True

    def file_mode(self, abspath: str) -> int | None:
        """The permission bits of a regular file (not following a final link), None when it is
        not one or the host is an archive (read-only: nothing is ever written back there)."""
        if self.archive:
            return None
        try:
            st = os.lstat(self._tree.real(abspath, follow=False))
        except OSError:
            return None
        return _stat.S_IMODE(st.st_mode) if _stat.S_ISREG(st.st_mode) else None

    def sha256(self, abspath: str) -> str | None:
        """Hex digest of a regular file (not following a final link), None when absent."""
        # lazy: hashlib costs ~2.4 ms at start-up; only boot manifests need it
        import hashlib

        if self.kind(abspath, follow=False) != "file":
            return None
        return hashlib.sha256(self.read_bytes(abspath)).hexdigest()

    def lock(self, abspath: str, timeout: float) -> "StateLock":
        """An exclusive lock on *abspath* in a folder only root can write (see :class:`StateLock`)."""
        self._refuse_captured(f"lock {abspath}")
        return StateLock(self, abspath, timeout)

    def check_private_dir(self, abspath: str) -> None:
        """Refuse a state folder that another user could have prepared (see :class:`StateLock`)."""
        _check_private_dir(self, abspath)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
        """Poll *predicate* until true or *timeout* seconds pass (bounded waits)."""
        deadline = time.monotonic() + timeout
        while True:
            self.invalidate()
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
            interval = min(interval * 2, 0.1)

    def state_dir(self) -> str:
        """Where vfioctl keeps its journal, host-absolute."""
        return env.state_dir()
