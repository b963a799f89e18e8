"""The host: the one place that knows where kernel files live.

``Host(root)`` derives every path (/sys, /proc, /dev, /boot, /lib/modules,
/etc, /var/lib/vfioctl) from one root.  ``root`` is ``/`` for the running
machine, a directory holding a captured tree, or a ``.tar.gz`` made by
``vfioctl snapshot``.  All reads go through :meth:`Host.read`; every write to
a kernel file goes through :meth:`Host.write`, so dry-run, logging and test
simulation live in one place.
"""

from __future__ import annotations

import errno
import os
from vfioctl.errors import InvalidInput, NotFound, from_oserror

TYPE_CHECKING = False  # importing typing costs every run ~5 ms; only type checkers need it
if TYPE_CHECKING:
    from typing import Callable, Iterator

    WriteHook = Callable[["Host", str, str], None]
    RunHook = Callable[["Host", list[str]], "tuple[int, str]"]

_MISSING = object()


class Host:
    """A Linux host, live (``root="/"``) or captured (a folder or snapshot tarball)."""

    def __init__(self, root: str | os.PathLike = "/") -> None:
        src = os.fspath(root)
        self.source = src
        if os.path.isfile(src):
            self.root = _unpack_snapshot(src)
            self.snapshot = True
        elif os.path.isdir(src):
            self.root = os.path.realpath(src)
            self.snapshot = self.root != "/"
        else:
            raise NotFound(f"host root {root} does not exist (expected / , a folder or a .tar.gz from `vfioctl snapshot`)")
        self._prefix = "" if self.root == "/" else self.root
        #: every write done through this Host, in order: (path, value)
        self.writes: list[tuple[str, str]] = []
        #: called instead of the real write when set (tests' simulated kernel)
        self.write_hook: WriteHook | None = None
        #: called instead of running a host program when set (tests)
        self.run_hook: RunHook | None = None
        self._cache: dict[str, object] = {}

    # ---------------------------------------------------------------- paths
    def path(self, abspath: str) -> str:
        """Map an absolute host path (``/sys/...``) to where it is under the root."""
        if not abspath.startswith("/"):
            raise ValueError(f"host paths are absolute, got {abspath!r}")
        return self._prefix + abspath

    def unmap(self, real: str) -> str:
        """The host-absolute form of a path under the root."""
        if self._prefix and real.startswith(self._prefix):
            return real[len(self._prefix):] or "/"
        return real

    @property
    def is_live(self) -> bool:
        return not self.snapshot

    # ---------------------------------------------------------------- reads
    def read(self, abspath: str, default: object = _MISSING) -> str:
        """Read a text attribute, stripped.  Missing file -> *default* or NotFound.

        Permission errors are never swallowed (psutil's lesson): they raise
        VfioctlPermissionError even when a default is given.
        """
        p = self._prefix + abspath
        try:
            with open(p, "rb") as f:
                data = f.read()
        except (FileNotFoundError, NotADirectoryError):
            if default is _MISSING:
                raise NotFound(f"{abspath} does not exist on this host", path=abspath) from None
            return default  # type: ignore[return-value]
        except OSError as err:
            if default is not _MISSING and err.errno in (errno.ENODEV, errno.ENXIO, errno.EIO, errno.EINVAL):
                # some sysfs attributes exist but cannot be read on this device
                return default  # type: ignore[return-value]
            raise from_oserror(err, "read", abspath) from err
        return data.decode("utf-8", "replace").strip()

    def read_bytes(self, abspath: str, size: int = -1, default: object = _MISSING) -> bytes:
        p = self._prefix + abspath
        try:
            with open(p, "rb") as f:
                return f.read(size)
        except FileNotFoundError:
            if default is _MISSING:
                raise NotFound(f"{abspath} does not exist on this host", path=abspath) from None
            return default  # type: ignore[return-value]
        except OSError as err:
            if default is not _MISSING:
                return default  # type: ignore[return-value]
            raise from_oserror(err, "read", abspath) from err

    def read_int(self, abspath: str, base: int = 0, default: object = _MISSING) -> int:
        text = self.read(abspath, default=None)
        if text is None or text == "":
            if default is _MISSING:
                raise NotFound(f"{abspath} does not exist on this host", path=abspath)
            return default  # type: ignore[return-value]
        try:
            return int(text, base)
        except ValueError:
            if default is _MISSING:
                raise InvalidInput(f"{abspath} holds {text!r}, not a number") from None
            return default  # type: ignore[return-value]

    def exists(self, abspath: str) -> bool:
        return os.path.lexists(self._prefix + abspath)

    def is_dir(self, abspath: str) -> bool:
        return os.path.isdir(self._prefix + abspath)

    def listdir(self, abspath: str) -> list[str]:
        """Entries of a directory, sorted; [] when it does not exist."""
        try:
            return sorted(os.listdir(self._prefix + abspath))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as err:
            raise from_oserror(err, "list", abspath) from err

    def scandir(self, abspath: str) -> Iterator[os.DirEntry]:
        try:
            with os.scandir(self._prefix + abspath) as it:
                yield from it
        except (FileNotFoundError, NotADirectoryError):
            return

    def link_name(self, abspath: str) -> str | None:
        """Basename of a symlink's target (``driver`` -> ``e1000e``), None if absent."""
        try:
            return os.readlink(self._prefix + abspath).rsplit("/", 1)[-1]
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.EINVAL:  # not a link
                return None
            raise from_oserror(err, "read link", abspath) from err

    def realpath(self, abspath: str) -> str:
        """Host-absolute real path, resolving links inside the root."""
        return self.unmap(os.path.realpath(self._prefix + abspath))

    def uname_release(self) -> str:
        """The running kernel's release (``uname -r``) as the host root shows it."""
        rel = self.read("/proc/sys/kernel/osrelease", default="")
        if rel:
            return rel
        if not self.snapshot:
            return os.uname().release
        return ""

    def cached(self, key: str, compute: Callable[[], object]) -> object:
        """Per-Host memo for values that are costly and stable within one run."""
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = compute()
            return value

    def invalidate(self) -> None:
        self._cache.clear()

    # ---------------------------------------------------------------- writes
    def write(self, abspath: str, value: str) -> None:
        """The one function that writes kernel files.  Raises our errors with the path."""
        if self.write_hook is not None:
            self.writes.append((abspath, value))
            self.write_hook(self, abspath, value)
            return
        if self.snapshot:
            from vfioctl.errors import Refused

            raise Refused(f"cannot write {abspath} on a captured host ({self.source}); changes need the live host")
        self.writes.append((abspath, value))
        _trace(abspath, value)
        p = self._prefix + abspath
        try:
            fd = os.open(p, os.O_WRONLY)
        except OSError as err:
            raise from_oserror(err, f"write {value!r} to", abspath) from err
        try:
            os.write(fd, value.encode())
        except OSError as err:
            raise from_oserror(err, f"write {value!r} to", abspath) from err
        finally:
            os.close(fd)
        _fault_point()

    def run(self, argv: list[str], timeout: float = 60) -> tuple[int, str]:
        """Run a host program (modprobe, udevadm...): the one place vfioctl executes one.

        Returns (exit status, combined output).  On a captured host there is no
        kernel to act on, so this refuses unless a test installed ``run_hook``.
        """
        self.writes.append(("exec", " ".join(argv)))
        if self.run_hook is not None:
            return self.run_hook(self, argv)
        if self.snapshot:
            from vfioctl.errors import Refused

            raise Refused(f"cannot run {' '.join(argv)} on a captured host ({self.source}); changes need the live host")
        import subprocess

        try:
            cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except FileNotFoundError:
            return 127, f"{argv[0]}: command not found"
        except subprocess.TimeoutExpired:
            return 124, f"{' '.join(argv)} did not finish within {timeout:g} s"
        return cp.returncode, (cp.stdout + cp.stderr).strip()

    def write_file(self, abspath: str, content: str, mode: int = 0o644, *, makedirs: bool = False,
                   action: str = "write") -> None:
        """Atomically replace a regular file under the root (journal, config, boot files):
        temp file beside it with *mode*, fsync, ``os.replace``, fsync of the folder.
        Kernel attributes go through :meth:`write`, never here."""
        import tempfile

        real = self._prefix + abspath
        folder = os.path.dirname(real)
        try:
            if makedirs:
                os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(real)}.")
            try:
                os.fchmod(fd, mode)
                with os.fdopen(fd, "w") as f:
                    f.write(content)
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
            raise from_oserror(err, action, abspath) from err

    def wait_for(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
        """Poll *predicate* until true or *timeout* seconds pass (bounded waits)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
            interval = min(interval * 2, 0.1)

    def state_dir(self) -> str:
        """Where vfioctl keeps its journal, host-absolute."""
        return os.environ.get("VFIOCTL_STATE_DIR", "/var/lib/vfioctl")


def _trace(abspath: str, value: str) -> None:
    """Append each kernel write to $VFIOCTL_TRACE_WRITES (tests count writes with it)."""
    trace = os.environ.get("VFIOCTL_TRACE_WRITES")
    if trace:
        with open(trace, "a") as f:
            f.write(f"{abspath}\t{value.strip()}\n")


_WRITES_DONE = 0


def _fault_point() -> None:
    """Fault injection for the crash-recovery tests: $VFIOCTL_FAULT_KILL_AFTER=k makes
    the process SIGKILL itself right after its k-th kernel write (what `kill -9` at the
    worst moment does).  Never set it outside tests."""
    global _WRITES_DONE
    _WRITES_DONE += 1
    k = os.environ.get("VFIOCTL_FAULT_KILL_AFTER")
    if k and k.isdigit() and _WRITES_DONE >= int(k):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _unpack_snapshot(path: str) -> str:
    """Unpack a snapshot tarball into a private temp folder removed at exit."""
    import atexit
    import shutil
    import tarfile
    import tempfile

    if not tarfile.is_tarfile(path):
        raise InvalidInput(f"{path} is not a tar archive made by `vfioctl snapshot`")
    dest = tempfile.mkdtemp(prefix="vfioctl-snap-")
    atexit.register(shutil.rmtree, dest, True)
    try:
        with tarfile.open(path) as tar:
            # the 'data' filter refuses absolute links and paths leaving the folder
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise InvalidInput(f"{path} cannot be unpacked as a vfioctl snapshot: {err}") from err
    inner = os.path.join(dest, "root")
    return inner if os.path.isdir(inner) else dest
