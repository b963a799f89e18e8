"""Where a host-absolute path is: the live machine, a folder that stands for a machine
(every path resolved inside it, as under chroot), or a snapshot archive held in memory.

:class:`vfioctl.host.core.Host` reads through one of these; nothing else opens a path.
"""

from __future__ import annotations

import errno
import os
import stat as _stat

from vfioctl.host.limits import MAX_LINK_HOPS, MAX_READ

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from vfioctl.host.tarroot import TarTree


#: a read's flags: a FIFO or a device node never blocks the open (it is refused after fstat)
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
#: the first read's buffer when fstat gives no size (procfs) or a page (a sysfs attribute holds
#: at most one): one read takes a whole attribute, and no buffer is large enough to be mapped
#: and unmapped by malloc at every read (a 1 MiB one cost two more syscalls each); a file's
#: own size, when fstat gives more, is read at once, and a file that keeps giving doubles it
_CHUNK = 8192


def read_regular(real: str, size: int, flags: int = 0) -> bytes:
    """The bytes of the regular file at *real* on this machine: at most *size* of them, or with
    *size* < 0 the whole file (EFBIG past :data:`MAX_READ`).

    Opened non-blocking, so that a FIFO or a device node never blocks the open, and refused
    unless fstat on the descriptor shows a regular file.  A regular file's reads do not block
    whatever O_NONBLOCK says (open(2)): the descriptor is made blocking only if a read answers
    EAGAIN (two fcntl calls a file less).  The file ends where a read gives nothing, or where
    what was read is the size fstat gave (a tree's file or a sysfs binary attribute in one
    read; a sysfs text attribute, whose size reads as a page, takes the second read)."""
    fd = os.open(real, _READ_FLAGS | flags)
    try:
        st = os.fstat(fd)
        if not _stat.S_ISREG(st.st_mode):
            if _stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
            raise OSError(errno.EINVAL, "not a regular file")
        want = MAX_READ + 1 if size < 0 else min(size, MAX_READ + 1)
        known = st.st_size
        chunks: list[bytes] = []
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
    if got > MAX_READ:
        raise OSError(errno.EFBIG, f"larger than {MAX_READ >> 20} MiB")
    return data


class _Tree:
    """A filesystem-like tree under a prefix on this machine."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix  # "" for the live root

    def real(self, abspath: str, follow: bool = True) -> str:
        return self.prefix + abspath

    def unreal(self, real: str) -> str:
        if self.prefix and (real == self.prefix or real.startswith(self.prefix + "/")):
            return real[len(self.prefix):] or "/"
        return real

    def read_bytes(self, abspath: str, size: int) -> bytes:
        return read_regular(self.prefix + abspath, size)

    def lstat_kind(self, abspath: str) -> str | None:
        try:
            st = os.lstat(self.real(abspath, follow=False))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _kind(st.st_mode)

    def kind(self, abspath: str) -> str | None:
        try:
            st = os.stat(self.real(abspath))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == errno.ELOOP:
                return None
            raise
        return _kind(st.st_mode)

    def listdir(self, abspath: str) -> list[str]:
        return sorted(os.listdir(self.real(abspath)))

    def readlink(self, abspath: str) -> str:
        return os.readlink(self.real(abspath, follow=False))

    def realpath(self, abspath: str) -> str:
        return self.unreal(os.path.realpath(self.real(abspath)))


class _FolderTree(_Tree):
    """A folder on this machine: every path resolves inside it, as under chroot.

    Reads are the hot path (``list`` on a captured 1,000-function host reads 3,000 files):
    the folder a file is in is resolved once and remembered until the next change through
    the Host (:meth:`clear`), and the file itself is opened with O_NOFOLLOW, so that only a
    final component that is a link takes the slow walk."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self._dirs: dict[str, str] = {}
        #: host-absolute path -> is it a link (only what exists: a path that appears later is seen)
        self._links: dict[str, bool] = {}
        self._targets: dict[str, str] = {}

    def clear(self) -> None:
        self._dirs.clear()
        self._links.clear()
        self._targets.clear()

    def _is_link(self, p: str) -> bool | None:
        got = self._links.get(p)
        if got is None:
            try:
                got = self._links[p] = _stat.S_ISLNK(os.lstat(self.prefix + p).st_mode)
            except OSError:
                return None
        return got

    def _readlink(self, p: str) -> str:
        got = self._targets.get(p)
        if got is None:
            got = self._targets[p] = os.readlink(self.prefix + p)
        return got

    def _in_dir(self, abspath: str) -> str | None:
        """The real path of *abspath*'s last component in its resolved folder (not followed)."""
        folder, _, base = abspath.rpartition("/")
        if base in ("", ".", ".."):
            return None
        d = self._dirs.get(folder)
        if d is None:
            d = self._dir(folder)
        return d + "/" + base

    def _dir(self, folder: str) -> str:
        """A folder's real path (no trailing slash), remembered.  A folder that is no link is
        its resolved parent's entry, one lstat: the folders above a device's are walked once,
        not once for every device; a link is walked from the top as every path was."""
        parent, _, base = folder.rpartition("/")
        d = None
        if parent and base not in ("", ".", ".."):
            up = self._dirs.get(parent)
            if up is None:
                up = self._dir(parent)
            if self._is_link(up[len(self.prefix):] + "/" + base) is False:
                d = up + "/" + base
        if d is None:
            d = self.real(folder or "/").rstrip("/")
        self._dirs[folder] = d
        return d

    def read_bytes(self, abspath: str, size: int) -> bytes:
        real = self._in_dir(abspath)
        if real is not None:
            try:
                return read_regular(real, size, os.O_NOFOLLOW)
            except OSError as err:
                if err.errno != errno.ELOOP:
                    raise
        # the file is a link: resolve it inside the folder
        return read_regular(self.real(abspath), size)

    def real(self, abspath: str, follow: bool = True) -> str:
        if not follow:
            near = self._in_dir(abspath)
            if near is not None:
                return near
        # component by component as the folder's own kernel would, links kept inside the root
        # (an absolute target or .. past the top stays in it); what was seen is remembered
        return self.prefix + walk_path(abspath, self._is_link, self._readlink, follow)[0]

    def realpath(self, abspath: str) -> str:
        return self.unreal(self.real(abspath))


def walk_path(abspath: str, is_link: Callable[[str], bool | None], readlink: Callable[[str], str],
              follow_last: bool = True) -> tuple[str, list[tuple[str, str]]]:
    """Resolve *abspath* component by component as the kernel does (fs/namei.c), with absolute
    link targets and ``..`` kept inside "/": the resolved path and every link passed through,
    as (path, target).  *is_link* answers None for a component that does not exist: the rest
    is then taken as it is.  OSError(ELOOP) after :data:`MAX_LINK_HOPS` links."""
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
            if len(links) >= MAX_LINK_HOPS:
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

    def read_bytes(self, abspath: str, size: int) -> bytes:
        data = self.tree.read_bytes(abspath)
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


def _kind(mode: int) -> str:
    if _stat.S_ISREG(mode):
        return "file"
    if _stat.S_ISDIR(mode):
        return "dir"
    if _stat.S_ISLNK(mode):
        return "link"
    if _stat.S_ISCHR(mode):
        return "char"
    return "other"
