"""A snapshot tarball read in memory, never unpacked.

``vfioctl --root FILE.tar.gz`` answers from a host captured by ``vfioctl snapshot``:
one top folder ``root/`` holding the host's absolute layout (``root/sys/...``,
``root/proc/cmdline``), sysfs links kept relative.  :meth:`TarTree.open` streams the
archive once into an index keyed by host-absolute path (``root/sys/x`` -> ``/sys/x``)
and answers lookups with filesystem semantics rooted at ``root/``, like a chroot.
Nothing is ever written to disk, so a crafted archive cannot place a file anywhere
(CVE-2025-4517 and its kin are about extraction), a signal leaves nothing behind,
and no link is ever resolved against the real machine's files.

The tar headers are parsed here rather than by :mod:`tarfile`, because the floor we
support is Debian 12's Python 3.11.2, whose tarfile
- reads a pax or GNU long-name header's payload whole into memory before any caller
  sees it (``TarInfo._proc_pax``: ``fileobj.read(self._block(self.size))``), so a
  header claiming 1 GB of zeros costs 1 GB of RAM however the caller checks sizes;
- parses pax records with a backtracking regular expression (CVE-2024-6232, fixed in
  3.11.10) and can loop on crafted offsets (CVE-2025-8194, fixed later still);
- never checks a gzip stream's CRC in stream mode (it inflates raw deflate data and
  stops at the end-of-archive blocks).
The subset read here is what tarfile, GNU tar and bsdtar write for files, folders
and symbolic links: ustar/GNU/v7 headers, pax ``x`` headers (``path``, ``linkpath``,
``size``), GNU ``L``/``K`` long names.  Every other kind of member is refused by name.
Every count and size is checked as its header is read, before its data is, and the
gzip layer (zlib in gzip mode, which verifies CRC-32 and length) is read to its end.

Every failure to read an archive raises :class:`~vfioctl.base.errors.InvalidInput` with one
line, ``<path>: not a usable vfioctl snapshot: <reason>``.  Lookups on an open tree
raise the OSError subclasses a filesystem would (FileNotFoundError,
NotADirectoryError, IsADirectoryError, OSError(ELOOP)), so the Host layer translates
them exactly as it does for real files.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import zlib
from dataclasses import dataclass

from vfioctl.base.errors import InvalidInput, from_oserror
from vfioctl.base.text import ascii_int
from vfioctl.host.limits import MAX_LINK_HOPS as MAXSYMLINKS
from vfioctl.host.limits import kind_text

__all__ = ["DEFAULT_LIMITS", "MAXSYMLINKS", "Limits", "TarTree", "is_snapshot_file"]

KiB = 1024
MiB = 1024 * KiB

#: the folder of a snapshot that stands for the host's ``/`` (vfioctl.report.snapshot.TOP)
TOP = "root"


@dataclass(frozen=True)
class Limits:
    """What a snapshot may hold.  Every limit is checked before the bytes it guards are read.

    The committed captures (tests/snapshots) hold 309 and 798 members and 1.4 and 3.5 MB
    of file data, 350 and 580 KB compressed; a very large host (hundreds of PCI functions,
    SR-IOV with hundreds of VFs, many net and block devices) captures 30-60 thousand
    members.  Each default leaves that much headroom and still bounds the memory and
    time one archive can cost: at most ``total_bytes`` of file data are held, and the
    decompressed stream is at most about ``total_bytes + 4 * 512 * members`` bytes.
    """

    #: members (files, folders, links, global pax headers): a host of 8,000 functions (SR-IOV
    #: with thousands of VFs) captures ~106,000; 4 bytes of index per byte of a member name
    #: at most, so 256 Ki members stay within ~100 MiB
    members: int = 262144
    #: one file's size: the largest files captured are pci.ids (~1.3 MB) and
    #: modules.alias (~1.5 MB on a distribution kernel built with every module)
    member_bytes: int = 8 * MiB
    #: all file data together, plus pax and long-name payloads: ~25x a real capture
    total_bytes: int = 96 * MiB
    #: the archive file itself: an uncompressed tar of the largest tree accepted above is
    #: its data plus 1-2 KiB of headers and padding per member; compressed (vfioctl writes
    #: gzip) a capture of 106,000 members is under 2 MiB
    archive_bytes: int = 256 * MiB
    #: a symbolic link's target: PATH_MAX less its NUL (include/uapi/linux/limits.h;
    #: fs/namei.c do_symlinkat takes the target through getname, which stops at PATH_MAX)
    link_bytes: int = 4095
    #: a member's name, ``root/`` included: PATH_MAX less its NUL, as for a link target
    path_bytes: int = 4095
    #: components below ``root/``: sysfs device paths nest a few per bridge level; the
    #: deepest captured is 8, a deep Thunderbolt or switch chain stays well under 64
    path_depth: int = 64
    #: one pax or GNU long-name header's payload: a path and a link target of PATH_MAX
    #: each plus a few short records fit in 16 KiB
    extension_bytes: int = 16 * KiB
    #: zero bytes after the end-of-archive blocks: tar pads to records of 10 KiB (GNU
    #: tar's default blocking factor 20, tarfile.RECORDSIZE); `tar -b 2048` pads to 1 MiB
    trailing_bytes: int = 1 * MiB


#: the limits :meth:`TarTree.open` applies unless told otherwise
DEFAULT_LIMITS = Limits()


class TarTree:
    """A captured host's files, folders and links, in memory, keyed by host-absolute path.

    Build one with :meth:`open`.  Paths given to the lookups are host-absolute
    (``/sys/bus/pci/devices``); ``/`` is the snapshot's ``root/`` folder.  ``//``,
    ``.`` and a trailing ``/`` are normalised away (a trailing ``/`` does not force a
    final link to be followed, unlike the kernel).  Links resolve entirely inside the
    snapshot: a relative target against the link's folder, an absolute target against
    the snapshot's root, ``..`` at the root stays at the root (fs/namei.c nd_jump_root
    and follow_dotdot under a chroot).  A tree never changes once opened.
    """

    def __init__(self, source: str, kinds: dict[str, str], files: dict[str, bytes],
                 links: dict[str, str], children: dict[str, list[str]], members: int) -> None:
        self.source = source
        #: members read from the archive (global pax headers included)
        self.members = members
        self._kinds = kinds
        self._files = files
        self._links = links
        self._children = children
        #: folder -> (its resolution, links taken), remembered as looked up
        self._dirs: dict[str, tuple[str, int]] = {}

    # ---------------------------------------------------------------- building
    @classmethod
    def open(cls, path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> TarTree:
        """Read the snapshot at *path* (gzip-compressed or plain tar) into memory.

        Raises InvalidInput with one line naming *path* and the reason for anything
        that is not a well-formed snapshot within *limits*.
        """
        src = os.fspath(path)
        if isinstance(src, bytes):
            src = os.fsdecode(src)
        try:
            return _read_archive(src, limits)
        except _Bad as bad:
            raise _invalid(src, str(bad)) from None
        except zlib.error as err:
            raise _invalid(src, _zlib_reason(err)) from None
        except (OSError, EOFError) as err:
            raise _invalid(src, f"cannot read it: {_oserror_words(err)}") from None
        except (UnicodeError, ValueError, OverflowError) as err:
            raise _invalid(src, f"malformed archive ({type(err).__name__})") from None

    # ---------------------------------------------------------------- lookups
    def lstat_kind(self, abspath: str) -> str | None:
        """``"file"``, ``"dir"``, ``"link"`` or None if absent; the last component is not followed."""
        try:
            return self._resolve(abspath, follow_last=False, strict=True)[1]
        except (FileNotFoundError, NotADirectoryError):
            return None

    def kind(self, abspath: str) -> str | None:
        """``"file"`` or ``"dir"`` after following links; None if absent or dangling."""
        try:
            return self._resolve(abspath, follow_last=True, strict=True)[1]
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, abspath: str) -> bool:
        """Like os.path.exists: follows links; False on any lookup error (loops included)."""
        try:
            return self.kind(abspath) is not None
        except OSError:
            return False

    def lexists(self, abspath: str) -> bool:
        """Like os.path.lexists: a dangling link exists."""
        try:
            return self.lstat_kind(abspath) is not None
        except OSError:
            return False

    def is_dir(self, abspath: str) -> bool:
        """Like os.path.isdir: follows links; False on any lookup error."""
        try:
            return self.kind(abspath) == "dir"
        except OSError:
            return False

    def read_bytes(self, abspath: str, size: int = -1) -> bytes:
        """A file's content (its first *size* bytes when *size* >= 0), following links."""
        real, kind = self._resolve(abspath, follow_last=True, strict=True)
        if kind == "dir":
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), abspath)
        data = self._files[real]
        return data if size is None or size < 0 else data[:size]

    def listdir(self, abspath: str) -> list[str]:
        """Names in a folder, sorted, following links.  Folders implied by member paths count."""
        real, kind = self._resolve(abspath, follow_last=True, strict=True)
        if kind != "dir":
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), abspath)
        return list(self._children.get(real, ()))

    def readlink(self, abspath: str) -> str:
        """A link's target exactly as stored (relative for sysfs links).  EINVAL if not a link."""
        real, kind = self._resolve(abspath, follow_last=False, strict=True)
        if kind != "link":
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), abspath)
        return self._links[real]

    def realpath(self, abspath: str) -> str:
        """The host-absolute path with every link resolved inside the snapshot.

        Like os.path.realpath (not strict): components that do not exist are kept as
        written, ``..`` after them taken lexically.  A link loop raises OSError(ELOOP).
        """
        return self._resolve(abspath, follow_last=True, strict=False)[0]

    def __repr__(self) -> str:
        return f"TarTree({self.source!r}, {self.members} members)"

    # ---------------------------------------------------------------- resolution
    def _resolve(self, abspath: str, follow_last: bool, strict: bool) -> tuple[str, str | None]:
        """(resolved host path, its kind).  The walk fs/namei.c link_path_walk does, chrooted.

        Strict: a missing component raises FileNotFoundError, a file used as a folder
        NotADirectoryError.  Not strict: the rest is appended lexically (kind None).

        A folder's resolution is remembered (the tree never changes): a chain of links in front
        of /sys/bus/pci/devices is walked once, not once for every device below it; the links
        it took still count toward this lookup's 40."""
        todo = _components(abspath, absolute=True)
        cur, hops = "/", 0
        if len(todo) > 1 and "." not in todo and ".." not in todo:
            parent = "/" + "/".join(todo[:-1])
            memo = self._dirs.get(parent)
            if memo is None:
                got, kind, used = self._walk("/", todo[:-1], True, strict, 0)
                if kind == "dir":
                    self._dirs[parent] = memo = (got, used)
            if memo is not None:
                (cur, hops), todo = memo, todo[-1:]
        return self._walk(cur, todo, follow_last, strict, hops)[:2]

    def _walk(self, cur: str, todo: list[str], follow_last: bool, strict: bool,
              hops: int) -> tuple[str, str | None, int]:
        """Resolve the components *todo* from the resolved folder *cur*: (path, kind, links taken)."""
        todo = list(reversed(todo))
        lost = False  # not strict, past a component that does not exist
        while todo:
            name = todo.pop()
            if name == ".":
                continue
            if name == "..":
                cur = _parent(cur)  # at "/" stays "/": follow_dotdot stops at the root
                continue
            nxt = "/" + name if cur == "/" else cur + "/" + name
            if lost:
                cur = nxt
                continue
            kind = self._kinds.get(nxt)
            if kind is None or (kind == "file" and todo):
                if strict:
                    if kind is None:
                        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), nxt)
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), nxt)
                lost = True
                cur = nxt
                continue
            if kind != "link" or (not todo and not follow_last):
                cur = nxt
                continue
            if hops >= MAXSYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), nxt)
            hops += 1
            target = self._links[nxt]
            if target.startswith("/"):
                cur = "/"  # an absolute target starts again at the snapshot's root (nd_jump_root)
            todo.extend(reversed(_components(target, absolute=False)))
        return cur, (None if lost else self._kinds.get(cur)), hops


# ====================================================================== helpers

def is_snapshot_file(path: str | os.PathLike) -> bool:
    """Whether *path* should be read as a snapshot archive: True for a regular file.

    False for a folder (a captured tree) or a path that does not exist.  Anything
    else (a FIFO, a device, a socket, a link to one) raises InvalidInput rather than
    being opened: reading a FIFO would hang, a device has no end.
    """
    src = os.fspath(path)
    if isinstance(src, bytes):
        src = os.fsdecode(src)
    try:
        st = os.stat(src)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise from_oserror(err, "read", src) from err
    if stat.S_ISREG(st.st_mode):
        return True
    if stat.S_ISDIR(st.st_mode):
        return False
    raise _invalid(src, f"it is {kind_text(st.st_mode)}, not a regular file")


class _Bad(Exception):
    """Why an archive is refused (internal; becomes InvalidInput with the path)."""


def _invalid(src: str, reason: str) -> InvalidInput:
    shown = src if src.isprintable() else ascii(src)
    return InvalidInput(f"{shown}: not a usable vfioctl snapshot: {reason}", path=src)


def _oserror_words(err: BaseException) -> str:
    code = getattr(err, "errno", None)
    if code:
        name = errno.errorcode.get(code, "")
        return f"{os.strerror(code)} ({name})" if name else os.strerror(code)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _zlib_reason(err: zlib.error) -> str:
    text = str(err)
    if "incorrect data check" in text:
        return "its gzip CRC-32 does not match its content (the file is corrupt)"
    if "incorrect length check" in text:
        return "its gzip length trailer does not match its content (the file is corrupt)"
    if "incorrect header check" in text or "unknown compression method" in text:
        return "its gzip header is corrupt"
    return "its gzip data is corrupt (" + text.replace("\n", " ") + ")"


def _components(path: str, absolute: bool) -> list[str]:
    """Path components without empty ones (``//``, trailing ``/``); ``.``/``..`` kept for the walk."""
    if not isinstance(path, str):
        raise TypeError(f"paths are str, got {type(path).__name__}")
    if absolute and not path.startswith("/"):
        raise ValueError(f"host paths are absolute, got {path!r}")
    if "\0" in path:
        raise ValueError("embedded null byte")
    return [c for c in path.split("/") if c]


def _parent(path: str) -> str:
    head = path.rpartition("/")[0]
    return head or "/"


# ====================================================================== reading

_CHUNK = 64 * KiB
BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
_OCTAL = re.compile(rb"[0-7]*")
_USTAR_MAGIC = b"ustar\x00"  # POSIX; GNU writes b"ustar  \x00" and keeps other data where prefix is
_HIGH = bytes(range(128, 256))

_REGULAR = (b"0", b"\x00", b"7")  # '7' (contiguous) is a regular file to every reader (POSIX)
_DIRTYPE = b"5"
_SYMTYPE = b"2"
_PAX = b"x"
_PAX_GLOBAL = b"g"
_LONGNAME = b"L"
_LONGLINK = b"K"
_EXTENSIONS = {_PAX: "pax", _PAX_GLOBAL: "global pax", _LONGNAME: "GNU long-name", _LONGLINK: "GNU long-link"}
_REFUSED = {
    b"1": "a hard link", b"3": "a character device", b"4": "a block device", b"6": "a FIFO",
    b"S": "a GNU sparse file", b"D": "a GNU dump folder", b"M": "a GNU multi-volume continuation",
    b"V": "a GNU volume label", b"N": "an old GNU long-name record", b"X": "a Solaris extended header",
}
_ONLY = "a snapshot holds only files, folders and symbolic links"
# other compressions, named so the message says what the file is
_MAGICS = ((b"\xfd7zXZ\x00", "xz"), (b"BZh", "bzip2"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"))


class _Source:
    """The archive file's bytes, counted against ``archive_bytes`` as they are read."""

    def __init__(self, fd: int, limit: int) -> None:
        self._fd = fd
        self._limit = limit
        self.count = 0

    def read(self, n: int) -> bytes:
        data = os.read(self._fd, n)
        self.count += len(data)
        if self.count > self._limit:
            raise _Bad(f"it is larger than {self._limit} bytes (limit)")
        return data


class _Plain:
    def __init__(self, src: _Source, first: bytes) -> None:
        self._src = src
        self._first = first

    def chunk(self, want: int) -> bytes:
        if self._first:
            out, self._first = self._first, b""
            return out
        return self._src.read(max(want, _CHUNK))


class _Gunzip:
    """One gzip member, inflated by zlib in gzip mode (it checks the CRC-32 and the length
    trailer, RFC 1952), at most *want* bytes a call; bytes after the member are refused."""

    def __init__(self, src: _Source, first: bytes) -> None:
        self._src = src
        self._input = first
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._done = False

    def chunk(self, want: int) -> bytes:
        want = max(want, _CHUNK)
        while not self._done:
            buf = self._input or self._src.read(_CHUNK)
            self._input = b""
            out = self._z.decompress(buf, want)
            if self._z.eof:
                self._done = True
                if self._z.unused_data or self._src.read(1):
                    raise _Bad("bytes follow the end of its gzip stream (a second gzip member or trailing data)")
                return out
            self._input = self._z.unconsumed_tail
            if out:
                return out
            if not buf:
                raise _Bad("its gzip stream is truncated")
        return b""


class _Stream:
    """Exact reads of the (decompressed) tar stream, tracking the offset for messages."""

    def __init__(self, decoder: _Plain | _Gunzip) -> None:
        self._dec = decoder
        self._buf = b""
        self._pos = 0
        self.offset = 0

    def read(self, n: int) -> bytes:
        """*n* bytes, or fewer at the end of the stream."""
        end = self._pos + n
        if end <= len(self._buf):
            out = self._buf[self._pos:end]
            self._pos = end
        else:
            parts = [self._buf[self._pos:]]
            have = len(parts[0])
            self._buf, self._pos = b"", 0
            while have < n:
                data = self._dec.chunk(n - have)
                if not data:
                    break
                if have + len(data) > n:
                    keep = n - have
                    self._buf, self._pos = data, keep
                    data = data[:keep]
                parts.append(data)
                have += len(data)
            out = b"".join(parts)
        self.offset += len(out)
        return out

    def read_some(self) -> bytes:
        """What is buffered, or the next chunk; b"" at the end."""
        if self._pos < len(self._buf):
            out = self._buf[self._pos:]
            self._buf, self._pos = b"", 0
        else:
            out = self._dec.chunk(_CHUNK)
        self.offset += len(out)
        return out


def _read_archive(src: str, limits: Limits) -> TarTree:
    # stat before opening: opening a FIFO blocks, opening a device may act on it
    st = os.stat(src)
    if not stat.S_ISREG(st.st_mode):
        raise _Bad(f"it is {kind_text(st.st_mode)}, not a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(src, flags)
    try:
        st = os.fstat(fd)  # the file opened is the file checked (it may have been replaced)
        if not stat.S_ISREG(st.st_mode):
            raise _Bad(f"it is {kind_text(st.st_mode)}, not a regular file")
        if st.st_size > limits.archive_bytes:
            raise _Bad(f"it is {st.st_size} bytes, more than {limits.archive_bytes} bytes (limit)")
        source = _Source(fd, limits.archive_bytes)
        first = source.read(_CHUNK)
        if not first:
            raise _Bad("it is empty")
        decoder: _Plain | _Gunzip
        if first.startswith(b"\x1f\x8b"):
            decoder = _Gunzip(source, first)
        else:
            for magic, name in _MAGICS:
                if first.startswith(magic):
                    raise _Bad(f"it is {name}-compressed; vfioctl reads gzip-compressed or plain tar archives")
            decoder = _Plain(source, first)
        return _scan(src, _Stream(decoder), limits)
    finally:
        os.close(fd)


@dataclass
class _Header:
    name: bytes
    linkname: bytes
    size: int
    type: bytes


def _nts(field: bytes) -> bytes:
    """A NUL-terminated header string."""
    return field.split(b"\x00", 1)[0]


def _number(field: bytes, what: str, at: int) -> int:
    """A numeric header field: octal digits, or GNU base-256 (first byte 0x80)."""
    if field[:1] == b"\x80":
        return int.from_bytes(field[1:], "big")
    if field[:1] == b"\xff":
        raise _Bad(f"the tar header at offset {at} has a negative {what}")
    digits = _nts(field).strip(b" ")
    if not _OCTAL.fullmatch(digits):
        raise _Bad(f"the tar header at offset {at} has a malformed {what}")
    return int(digits, 8) if digits else 0


def _header(block: bytes, at: int) -> _Header:
    try:
        stored = _number(block[148:156], "checksum", at)
    except _Bad:
        stored = -1
    # the checksum field counts as 8 spaces; some old tars summed signed chars (tarfile
    # calc_chksums and GNU tar accept both)
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored != unsigned:
        high = BLOCK - len(block.translate(None, _HIGH))
        high -= 8 - len(block[148:156].translate(None, _HIGH))
        if stored != unsigned - 256 * high:
            if at == 0:
                raise _Bad("it is not a tar archive (no valid tar header at its start)")
            raise _Bad(f"the tar header at offset {at} has a bad checksum (the archive is corrupt)")
    typ = block[156:157]
    name = _nts(block[0:100])
    if block[257:263] == _USTAR_MAGIC:
        prefix = _nts(block[345:500])
        if prefix:
            name = prefix + b"/" + name
    return _Header(name=name, linkname=_nts(block[157:257]), size=_number(block[124:136], "size", at),
                   type=typ)


def _pax_records(payload: bytes, at: int) -> dict[bytes, bytes]:
    """``LENGTH KEY=VALUE\\n`` records (POSIX pax), in one linear pass."""
    out: dict[bytes, bytes] = {}
    pos, end = 0, len(payload)
    bad = f"the pax header at offset {at} is malformed"
    while pos < end:
        if payload[pos] == 0:  # some writers pad the payload with NULs
            if payload[pos:].strip(b"\x00"):
                raise _Bad(bad)
            break
        space = payload.find(b" ", pos, pos + 21)
        length = ascii_int(payload[pos:space], 20) if space >= 0 else None
        if length is None:
            raise _Bad(bad)
        stop = pos + length
        if stop > end or stop <= space + 2 or payload[stop - 1] != 0x0A:
            raise _Bad(bad)
        key, eq, value = payload[space + 1:stop - 1].partition(b"=")
        if not eq or not key:
            raise _Bad(bad)
        out[key] = value
        pos = stop
    return out


def _pax_size(value: bytes, at: int) -> int:
    size = ascii_int(value, 20)
    if size is None:
        raise _Bad(f"the pax header at offset {at} has a malformed size")
    return size


def _padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _host_path(name: str, kind: str, limits: Limits) -> str:
    """``root/sys/x`` -> ``/sys/x``; anything else outside ``root/`` is refused."""
    shown = repr(name)
    if not name:
        raise _Bad("a member has an empty name")
    if not name.isprintable():
        # NUL, newline and other controls: no kernel path vfioctl reads has one, and a
        # name ends up in one-line messages
        raise _Bad(f"member {shown} has an unprintable character in its name")
    if name.startswith("/"):
        raise _Bad(f"member {shown} has an absolute name")
    if kind == "dir":
        name = name.rstrip("/")
    parts = name.split("/")
    if ".." in parts:
        raise _Bad(f"member {shown} has a '..' component")
    if "" in parts or "." in parts:
        raise _Bad(f"member {shown} has an empty or '.' component")
    if parts[0] != TOP:
        raise _Bad(f"member {shown} lies outside {TOP}/")
    if len(parts) - 1 > limits.path_depth:
        raise _Bad(f"member {shown} is more than {limits.path_depth} folders deep (limit)")
    return "/" + "/".join(parts[1:])


def _decode(raw: bytes, what: str, at: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad(f"the {what} of the member at offset {at} is not UTF-8") from None


def _scan(src: str, stream: _Stream, limits: Limits) -> TarTree:
    kinds: dict[str, str] = {}
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    members = 0
    total = 0
    ext: dict[bytes, bytes] = {}  # what the extension headers before a member said
    pending: set[bytes] = set()  # the kinds of those headers (one of each at most)
    while True:
        at = stream.offset
        block = stream.read(BLOCK)
        if len(block) < BLOCK:
            if at == 0:
                raise _Bad(f"it is not a tar archive (only {len(block)} bytes)")
            raise _Bad(f"it ends at offset {at + len(block)} without tar's end-of-archive blocks (truncated)")
        if block == _ZERO_BLOCK:
            if pending:
                raise _Bad(f"an extended header is not followed by a member (offset {at})")
            break
        h = _header(block, at)

        if h.type in _EXTENSIONS:
            label = _EXTENSIONS[h.type]
            if h.type == _PAX_GLOBAL:
                members += 1
                if members > limits.members:
                    raise _Bad(f"more than {limits.members} members (limit)")
            elif h.type in pending:
                raise _Bad(f"two {label} headers precede one member (offset {at})")
            if h.size > limits.extension_bytes:
                raise _Bad(f"the {label} header at offset {at} is {h.size} bytes, "
                           f"more than {limits.extension_bytes} bytes (limit)")
            total += h.size
            if total > limits.total_bytes:
                raise _Bad(f"more than {limits.total_bytes} bytes of file data (limit)")
            payload = stream.read(_padded(h.size))
            if len(payload) < _padded(h.size):
                raise _Bad(f"it ends inside the {label} header at offset {at} (truncated)")
            payload = payload[:h.size]
            if h.type == _PAX_GLOBAL:
                rec = _pax_records(payload, at)
                for key in (b"path", b"linkpath", b"size"):
                    if key in rec:
                        raise _Bad(f"the global pax header at offset {at} sets {key.decode()!r} for every member")
                continue
            pending.add(h.type)
            if h.type == _PAX:
                rec = _pax_records(payload, at)
                if any(k.startswith(b"GNU.sparse.") for k in rec):
                    raise _Bad(f"the member after offset {at} is a GNU sparse file; {_ONLY}")
                for key in (b"path", b"linkpath", b"size"):
                    if key in rec:
                        ext[b"pax." + key] = rec[key]
            else:
                ext[h.type] = _nts(payload)
            continue

        members += 1
        if members > limits.members:
            raise _Bad(f"more than {limits.members} members (limit)")
        raw_name = ext.get(b"pax.path", ext.get(_LONGNAME, h.name))
        if len(raw_name) > limits.path_bytes:
            raise _Bad(f"the name of the member at offset {at} is longer than {limits.path_bytes} bytes (limit)")
        name = _decode(raw_name, "name", at)
        typ = h.type
        if typ == b"\x00" and name.endswith("/"):
            typ = _DIRTYPE  # v7 tar marks a folder by a trailing slash
        size = _pax_size(ext[b"pax.size"], at) if b"pax.size" in ext else h.size
        if typ in _REGULAR:
            kind = "file"
        elif typ == _DIRTYPE:
            kind = "dir"
        elif typ == _SYMTYPE:
            kind = "link"
        else:
            what = _REFUSED.get(typ, f"of tar type {typ!r}")
            raise _Bad(f"member {name!r} is {what}; {_ONLY}")
        hp = _host_path(name, kind, limits)
        if hp in kinds:
            raise _Bad(f"member {name!r} appears twice (a later copy must not replace the first)")
        if hp == "/" and kind != "dir":
            raise _Bad(f"member {name!r} must be a folder")

        if kind == "file":
            if size > limits.member_bytes:
                raise _Bad(f"member {name!r} is {size} bytes, more than {limits.member_bytes} bytes (limit)")
            total += size
            if total > limits.total_bytes:
                raise _Bad(f"more than {limits.total_bytes} bytes of file data (limit)")
            data = stream.read(size) if size else b""
            pad = _padded(size) - size
            if len(data) < size or (pad and len(stream.read(pad)) < pad):
                raise _Bad(f"it ends inside member {name!r} (truncated)")
            files[hp] = data
        elif size:
            raise _Bad(f"member {name!r} is a {'folder' if kind == 'dir' else 'link'} with {size} bytes of data")
        elif kind == "link":
            raw_target = ext.get(b"pax.linkpath", ext.get(_LONGLINK, h.linkname))
            if len(raw_target) > limits.link_bytes:
                raise _Bad(f"the target of link {name!r} is longer than {limits.link_bytes} bytes (limit)")
            target = _decode(raw_target, "link target", at)
            if not target:
                raise _Bad(f"link {name!r} has an empty target")
            if not target.isprintable():
                # a driver's or group's name is read from a link's target: keep it one line
                raise _Bad(f"the target of link {name!r} has an unprintable character")
            links[hp] = target
        kinds[hp] = kind
        ext.clear()
        pending.clear()

    # Read to the end: the gzip layer verifies its CRC-32 and length only there, and
    # whatever follows the end-of-archive blocks must be their zero padding.
    rest = 0
    while True:
        data = stream.read_some()
        if not data:
            break
        rest += len(data)
        if rest > limits.trailing_bytes:
            raise _Bad(f"more than {limits.trailing_bytes} bytes follow its end-of-archive blocks (limit)")
        if data.strip(b"\x00"):
            raise _Bad(f"data follows its end-of-archive blocks (offset {stream.offset - len(data)})")
    return _build(src, kinds, files, links, members)


def _build(src: str, kinds: dict[str, str], files: dict[str, bytes], links: dict[str, str],
           members: int) -> TarTree:
    """Add the folders member paths imply and each folder's sorted entries."""
    children: dict[str, set[str]] = {}
    for path in list(kinds):
        child = path
        while child != "/":
            parent, _, base = child.rpartition("/")
            parent = parent or "/"
            children.setdefault(parent, set()).add(base)
            above = kinds.get(parent)
            if above is None:
                kinds[parent] = "dir"  # implied; its own parents are added next
                child = parent
                continue
            if above != "dir":
                what = "a file" if above == "file" else "a symbolic link"
                raise _Bad(f"member {TOP + path!r} lies under {TOP + parent!r}, which is {what}")
            break  # an explicit folder, or one implied before: its parents are done
    if "/" not in kinds:
        raise _Bad(f"it holds no {TOP}/ folder (is it a `vfioctl snapshot` archive?)")
    return TarTree(src, kinds, files, links, {k: sorted(v) for k, v in children.items()}, members)
