"""Where a host-absolute path is: the live machine, a folder that stands for a machine
(every path resolved inside it, as under chroot), or a snapshot archive held in memory.

:class:`vfioctl.host.core.Host` reads through one of these; nothing else opens a path.
"""

from __future__ import annotations

import errno
import os
import stat as _stat

from vfioctl.host.limits import MAX_DIR_ENTRIES, MAX_LINK_HOPS, MAX_READ
from vfioctl.host.limits import kind_word as _kind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from vfioctl.host.tarroot import TarTree


_OPEN_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


#: the first read's buffer when fstat gives no size (procfs) or a page (a sysfs attribute holds
#: at most one): one read takes a whole attribute, and no buffer is large enough to be mapped
#: and unmapped by malloc at every read (a 1 MiB one cost two more syscalls each); a file's
#: own size, when fstat gives more, is read at once, and a file that keeps giving doubles it
_CHUNK = 8192


def _checked_fd(fd: int, before: os.stat_result | None = None) -> tuple[int, int]:
    """(*fd*, the file's size) when it is a regular file (the one *before* described, if
    given), else closed and OSError."""
    try:
        st = os.fstat(fd)
        if _stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not _stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if before is not None and (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
            raise OSError(errno.ELOOP, "it changed while it was opened")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def _read_fd(fd: int, size: int, limit: int, known: int = 0) -> bytes:
    """At most *size* bytes (a prefix), or with *size* < 0 the whole file, EFBIG when it is
    larger than *limit*; closes *fd*.

    A regular file's reads do not block whatever O_NONBLOCK says (open(2)): the descriptor is
    made blocking only if a read answers EAGAIN (two fcntl calls a file less).  The file ends
    where a read gives nothing, or where what was read is *known*, the size fstat gave (a
    tree's file or a sysfs binary attribute in one read; a sysfs text attribute, whose size
    reads as a page, takes the second read)."""
    try:
        chunks: list[bytes] = []
        want = limit + 1 if size < 0 else min(size, MAX_READ + 1)
        got = 0
        while got < want:
            try:
                b = os.read(fd, min(want - got, max(known - got, _CHUNK, got)))
            except BlockingIOError:
                os.set_blocking(fd, True)
                continue
            if not b:
                break
            chunks.append(b)
            got += len(b)
            if got == known:
                break
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if len(data) > (limit if size < 0 else MAX_READ):
        raise OSError(errno.EFBIG, "larger than any such file the kernel writes")
    return data


def read_regular(real: str, size: int, flags: int = 0, limit: int | None = None) -> bytes:
    """The bytes of the regular file at *real* on this machine: at most *size* of them, or with
    *size* < 0 the whole file (EFBIG past *limit*, :data:`MAX_READ` unless given).  Opened without blocking and without
    becoming a controlling terminal, then checked on the descriptor: a FIFO or a device node
    never blocks or acts before it is refused."""
    fd, known = _checked_fd(os.open(real, _OPEN_FILE | flags))
    return _read_fd(fd, size, MAX_READ if limit is None else limit, known)


def _followed_kind(stat: Callable[[], os.stat_result]) -> str | None:
    """The kind of what *stat* finds, links followed: None when it is absent or a loop."""
    try:
        st = stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            return None
        raise
    return _kind(st.st_mode)


class _Tree:
    """The live machine: paths as they are (the kernel's own sysfs and /proc)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # "" for the live root

    def real(self, abspath: str, follow: bool = True) -> str:
        return self.prefix + abspath

    def unreal(self, real: str) -> str:
        if self.prefix and (real == self.prefix or real.startswith(self.prefix + "/")):
            return real[len(self.prefix):] or "/"
        return real

    def read_bytes(self, abspath: str, size: int, limit: int = MAX_READ) -> bytes:
        """At most *size* bytes, or the whole file (EFBIG past *limit*).  Opened without
        blocking and without becoming a controlling terminal, then checked on the descriptor:
        a FIFO or a device node never blocks or acts before it is refused."""
        return read_regular(self.prefix + abspath, size, 0, limit)

    def lstat_kind(self, abspath: str) -> str | None:
        try:
            st = os.lstat(self.real(abspath, follow=False))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _kind(st.st_mode)

    def kind(self, abspath: str) -> str | None:
        return _followed_kind(lambda: os.stat(self.real(abspath)))

    def listdir(self, abspath: str) -> list[str]:
        return sorted(os.listdir(self.real(abspath)))

    def readlink(self, abspath: str) -> str:
        return os.readlink(self.real(abspath, follow=False))

    def realpath(self, abspath: str) -> str:
        return self.unreal(os.path.realpath(self.real(abspath)))

    def clear(self) -> None:
        return None

    def close(self) -> None:
        return None


class _FolderTree(_Tree):
    """A folder on this machine that stands for a host: every path resolves inside it, as
    under chroot, and what is read is what was resolved.

    A path is resolved on names first (:func:`walk_path`: links followed inside the folder,
    an absolute target or ``..`` at the top stays in it; each folder's resolution and each
    lstat and link remembered until the next change through the Host, :meth:`clear`), then
    opened one component at a time from a descriptor of the folder itself, each with
    O_NOFOLLOW|O_DIRECTORY: a folder swapped for a link (to one outside) after it was
    looked at is refused, never followed, so nothing outside the folder is ever read.  A
    file's type is looked at without opening it (fstatat, no follow), then opened with
    O_NOFOLLOW|O_NONBLOCK|O_NOCTTY and checked again on the descriptor: a FIFO or a device
    node is never waited on, never opened as a terminal, never read.

    The open folders are kept (at most :data:`DIR_FDS`, least recently used closed first):
    ``list`` on a captured 1,000-function host reads 3,000 files, a few per folder."""

    #: open folder descriptors kept for the next read in the same folder
    DIR_FDS = 64

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        #: host-absolute folder -> its resolution (link-free, host-absolute) and the links taken
        self._dirs: dict[str, tuple[str, int]] = {}
        #: host-absolute path -> is it a link (only what exists: a path that appears later is seen)
        self._links: dict[str, bool] = {}
        self._targets: dict[str, str] = {}
        #: resolved host-absolute folder -> an open descriptor of it (most recent last)
        self._fds: dict[str, int] = {}
        self._root_fd = os.open(prefix, _OPEN_DIR)

    def clear(self) -> None:
        self._dirs.clear()
        self._links.clear()
        self._targets.clear()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def close(self) -> None:
        self.clear()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def __del__(self) -> None:
        try:
            self.close()
        except OSError:
            pass

    # -------------------------------------------------------------- names
    def _is_link(self, p: str) -> bool | None:
        got = self._links.get(p)
        if got is None:
            try:
                got = self._links[p] = _stat.S_ISLNK(self._lstat(p).st_mode)
            except OSError:
                return None
        return got

    def _readlink(self, p: str) -> str:
        got = self._targets.get(p)
        if got is None:
            folder, _, base = p.rpartition("/")
            got = self._targets[p] = os.readlink(base, dir_fd=self._dir_fd(folder or "/"))
        return got

    def _lstat(self, p: str) -> os.stat_result:
        """lstat of a path whose folder is already resolved (no link in it)."""
        folder, _, base = p.rpartition("/")
        if not base:
            return os.stat(self._root_fd)
        return os.stat(base, dir_fd=self._dir_fd(folder or "/"), follow_symlinks=False)

    def _resolve(self, abspath: str, follow: bool) -> str:
        """*abspath* resolved inside the folder (host-absolute, link-free up to its last
        component, which is followed when *follow*)."""
        folder, _, base = abspath.rpartition("/")
        if base in ("", ".", ".."):
            return walk_path(abspath, self._is_link, self._readlink, follow)[0]
        d, hops = self._resolve_dir(folder or "/")
        near = d.rstrip("/") + "/" + base
        if not follow or not self._is_link(near):
            return near
        return walk_path(near, self._is_link, self._readlink, hops=hops)[0]

    def _resolve_dir(self, folder: str) -> tuple[str, int]:
        """A folder's resolution and the links it took, from its parent's (remembered): a chain
        of links in front of /sys/bus/pci/devices is walked once, not once for every device
        below it, and still counts toward each lookup's 40."""
        got = self._dirs.get(folder)
        if got is None:
            parent, _, base = folder.rpartition("/")
            if base in ("", ".", ".."):
                real, links = walk_path(folder or "/", self._is_link, self._readlink)
                got = (real, len(links))
            else:
                d, hops = self._resolve_dir(parent or "/")
                near = d.rstrip("/") + "/" + base
                if self._is_link(near):
                    real, links = walk_path(near, self._is_link, self._readlink, hops=hops)
                    got = (real, hops + len(links))
                else:
                    got = (near, hops)
            self._dirs[folder] = got
        return got

    # -------------------------------------------------------------- descriptors
    def _dir_fd(self, resolved: str) -> int:
        """A descriptor of the resolved folder, opened component by component from the root
        with O_NOFOLLOW|O_DIRECTORY (ELOOP or ENOTDIR if a component is not a folder now)."""
        if resolved == "/":
            return self._root_fd
        fd = self._fds.pop(resolved, None)
        if fd is None:
            parent, _, base = resolved.rpartition("/")
            if base in ("", ".", ".."):
                raise OSError(errno.ELOOP, "not a resolved path", resolved)
            fd = os.open(base, _OPEN_DIR, dir_fd=self._dir_fd(parent or "/"))
            if len(self._fds) >= self.DIR_FDS:
                oldest = next(iter(self._fds))
                os.close(self._fds.pop(oldest))
        self._fds[resolved] = fd  # most recent last
        return fd

    def _in_folder(self, abspath: str, follow: bool) -> tuple[int, str]:
        """(descriptor of the resolved folder, last component) of *abspath*."""
        real = self._resolve(abspath, follow)
        folder, _, base = real.rpartition("/")
        return self._dir_fd(folder or "/"), base

    # -------------------------------------------------------------- the tree's answers
    def read_bytes(self, abspath: str, size: int, limit: int = MAX_READ) -> bytes:
        dfd, base = self._in_folder(abspath, True)
        if not base:
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
        if _stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, "it changed while it was read")  # resolved as no link
        if _stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not _stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")  # never opened
        fd = os.open(base, _OPEN_FILE | os.O_NOFOLLOW, dir_fd=dfd)
        fd, known = _checked_fd(fd, st)
        return _read_fd(fd, size, limit, known)

    def lstat_kind(self, abspath: str) -> str | None:
        try:
            dfd, base = self._in_folder(abspath, False)
            st = os.stat(base, dir_fd=dfd, follow_symlinks=False) if base else os.stat(dfd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _kind(st.st_mode)

    def kind(self, abspath: str) -> str | None:
        def stat() -> os.stat_result:
            dfd, base = self._in_folder(abspath, True)
            return os.stat(base, dir_fd=dfd, follow_symlinks=False) if base else os.stat(dfd)

        return _followed_kind(stat)

    def listdir(self, abspath: str) -> list[str]:
        real = self._resolve(abspath, True)
        fd = os.open(".", _OPEN_DIR, dir_fd=self._dir_fd(real))  # a descriptor listdir may consume
        try:
            names = []
            with os.scandir(fd) as it:
                for entry in it:
                    names.append(entry.name)
                    if len(names) > MAX_DIR_ENTRIES:
                        raise OSError(errno.EFBIG, f"more than {MAX_DIR_ENTRIES} entries")
        finally:
            os.close(fd)
        return sorted(names)

    def readlink(self, abspath: str) -> str:
        dfd, base = self._in_folder(abspath, False)
        return os.readlink(base, dir_fd=dfd)

    def real(self, abspath: str, follow: bool = True) -> str:
        """Where *abspath* is on this machine, for the changes tests make through a folder
        root (the live host never takes this path): its resolution inside the folder."""
        return self.prefix + self._resolve(abspath, follow)

    def realpath(self, abspath: str) -> str:
        return self._resolve(abspath, True)


def walk_path(abspath: str, is_link: Callable[[str], bool | None], readlink: Callable[[str], str],
              follow_last: bool = True, hops: int = 0) -> tuple[str, list[tuple[str, str]]]:
    """Resolve *abspath* component by component as the kernel does (fs/namei.c), with absolute
    link targets and ``..`` kept inside "/": the resolved path and every link passed through,
    as (path, target).  *is_link* answers None for a component that does not exist: the rest
    is then taken as it is.  OSError(ELOOP) once :data:`MAX_LINK_HOPS` links are taken in
    one lookup, *hops* of them before this walk (a resolved folder's, remembered)."""
    stack = [c for c in reversed(abspath.split("/")) if c and c != "."]
    resolved: list[str] = []
    links: list[tuple[str, str]] = []
    while stack:
        c = stack.pop()
        if c == "..":
            if resolved:
                resolved.pop()
            continue
        cand = "/" + "/".join(resolved + [c])
        if not stack and not follow_last:
            resolved.append(c)
            break
        kind = is_link(cand)
        if kind is None:
            resolved += [c] + [x for x in reversed(stack) if x != "."]
            break
        if kind:
            if hops + len(links) >= MAX_LINK_HOPS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), cand)
            target = readlink(cand)
            links.append((cand, target))
            if target.startswith("/"):
                resolved = []
            stack.extend(x for x in reversed(target.split("/")) if x and x != ".")
        else:
            resolved.append(c)
    return "/" + "/".join(resolved), links


class _ArchiveTree:
    """A snapshot tarball, indexed in memory (:mod:`vfioctl.host.tarroot`)."""

    prefix = None

    def __init__(self, path: str) -> None:
        # lazy: the archive reader (~10 ms at start-up with its dataclasses) only for a .tar.gz root
        from vfioctl.host.tarroot import TarTree

        self.tree: TarTree = TarTree.open(path)

    def read_bytes(self, abspath: str, size: int, limit: int = MAX_READ) -> bytes:
        data = self.tree.read_bytes(abspath)
        if size < 0 and len(data) > limit:
            raise OSError(errno.EFBIG, "larger than any such file the kernel writes")
        return data if size < 0 else data[:size]

    def lstat_kind(self, abspath: str) -> str | None:
        return self.tree.lstat_kind(abspath)

    def kind(self, abspath: str) -> str | None:
        try:
            return self.tree.kind(abspath)
        except OSError:
            return None

    def listdir(self, abspath: str) -> list[str]:
        return self.tree.listdir(abspath)

    def readlink(self, abspath: str) -> str:
        return self.tree.readlink(abspath)

    def realpath(self, abspath: str) -> str:
        return self.tree.realpath(abspath)
