"""Files the user names on this machine (``snapshot FILE``, ``rom --dump FILE``): the one writer.

What it does with what is at the path:

* nothing there: a new file, mode 0600 whatever the umask (a snapshot holds the kernel
  command line, mounts, the kernel log and addresses; a ROM is the vendor's code);
* a regular file: replaced atomically (a temp file beside it, fsync, rename), keeping the
  old file's mode (and, as root, its owner and group), whatever the umask;
* a symbolic link: refused (exit 65), never followed and never replaced: ``/dev/stdout`` is
  a link to ``/proc/self/fd/1``; ``-`` is how to say standard output;
* a character device (``/dev/null``, ``/dev/full``, a terminal) or a FIFO with a reader:
  written to as a stream, which is what naming one means; opened with O_NOFOLLOW,
  O_NOCTTY and O_NONBLOCK (a FIFO nobody reads is refused at once, never waited on) and
  checked on the descriptor opened; a write that fails (ENOSPC from /dev/full) is exit 74;
* a folder, a block device or a socket: refused (exit 65), never replaced.
"""

from __future__ import annotations

import errno
import os
import stat as _stat
import tempfile

from vfioctl.base.errors import InvalidInput, from_oserror
from vfioctl.host.limits import kind_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

#: the mode of a new output file
NEW_MODE = 0o600


def _shown(path: str) -> str:
    return path if path.isprintable() else ascii(path)


def write_output(path: str | os.PathLike, fill: Callable[[Any], object], *, what: str = "file") -> str:
    """Write a file the user asked for on this machine (not on the host root); *fill* writes
    the content into the open binary file.  Returns the absolute path written."""
    dest = os.path.abspath(os.fspath(path))
    shown = _shown(dest)
    try:
        st: os.stat_result | None = os.lstat(dest)
    except FileNotFoundError:
        st = None
    except OSError as err:
        raise from_oserror(err, f"write the {what}", shown, creating=True) from err
    if st is not None:
        kind = st.st_mode
        if _stat.S_ISLNK(kind):
            raise InvalidInput(f"{shown} is a symbolic link: vfioctl does not write the {what} through a link; "
                               "give the file itself (or - for standard output)", path=dest)
        if _stat.S_ISDIR(kind):
            raise InvalidInput(f"{shown} is a folder: give the {what}'s file name", path=dest)
        if _stat.S_ISCHR(kind) or _stat.S_ISFIFO(kind):
            _stream(dest, st, fill, what)
            return dest
        if not _stat.S_ISREG(kind):
            raise InvalidInput(f"{shown} is {kind_text(kind)}: refusing to write the {what} over it", path=dest)
    _replace(dest, st, fill, what)
    return dest


def _stream(dest: str, st: os.stat_result, fill: Callable[[Any], object], what: str) -> None:
    shown = _shown(dest)
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(dest, flags)
    except OSError as err:
        if err.errno == errno.ENXIO:
            raise InvalidInput(f"{shown} is a FIFO that no process reads: nothing would take the {what}",
                               path=dest) from None
        raise from_oserror(err, f"open the {what}", shown, creating=True) from err
    try:
        now = os.fstat(fd)
        if _stat.S_IFMT(now.st_mode) != _stat.S_IFMT(st.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise InvalidInput(f"{shown} changed while it was opened; refusing to write the {what}", path=dest)
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb", closefd=False) as f:
            fill(f)
            f.flush()
    except OSError as err:
        raise from_oserror(err, f"write the {what} to", shown) from err
    finally:
        os.close(fd)


def _replace(dest: str, st: os.stat_result | None, fill: Callable[[Any], object], what: str) -> None:
    shown = _shown(dest)
    folder = os.path.dirname(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vfioctl-", suffix=".tmp", dir=folder)
    except OSError as err:
        raise from_oserror(err, f"create the {what} in", _shown(folder), creating=True) from err
    try:
        # the mode is set on the descriptor, not asked of the umask: 0600 new, the old mode kept
        os.fchmod(fd, NEW_MODE if st is None else _stat.S_IMODE(st.st_mode))
        if st is not None and os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
            os.fchown(fd, st.st_uid, st.st_gid)
        with os.fdopen(fd, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise from_oserror(err, f"write the {what}", shown, creating=True) from err
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # the file is written; a folder that cannot be synced loses nothing more
