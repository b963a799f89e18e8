"""The CLI's one printer: every byte vfioctl writes to stdout or stderr goes through it.

* Text from data (device names, process names, a snapshot's probe answers, a message that
  quotes the user's input) is escaped before the terminal sees it
  (:func:`vfioctl.base.text.escape`): ESC, BEL, C1 controls (0x9b is a one-byte CSI), a
  carriage return and the bidirectional controls (U+202E) come out as ``\\x1b``,
  ``\\x9b``, ``\\u202e``; line breaks of a rendered block stay.  Colour is vfioctl's own,
  added to lines already escaped (*style*), only on a terminal.
* A character the stream's encoding lacks (``PYTHONIOENCODING=ascii``) is written as an
  escape; the tree's box-drawing characters as ASCII art.
* A write that fails (a full disk, /dev/full, an I/O error, a closed stdout, a reader that
  went away) raises :class:`OutputFailed`: exit 74, one line on stderr (none for a reader
  that stopped reading, EPIPE: that is how ``| head`` ends).  Writes to stderr never fail
  a command: with stderr closed the exit code still says what happened.
"""

from __future__ import annotations

import errno
import os
import sys

from vfioctl.base.errors import VfioctlError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, Callable


class OutputFailed(VfioctlError):
    """vfioctl's own output could not be written (stdout closed, full, or gone).  User acts."""

    exit_code = 74

    def __init__(self, message: str, *, quiet: bool = False) -> None:
        super().__init__(message)
        #: say nothing on stderr (a reader that stopped reading)
        self.quiet = quiet


_ASCII_ART = str.maketrans({"├": "|", "└": "`", "│": "|", "─": "-"})


def output_failed(err: OSError, what: str = "standard output") -> OutputFailed:
    code = err.errno or 0
    if code == errno.EPIPE:
        return OutputFailed(f"cannot write to {what}: the reader went away (EPIPE)", quiet=True)
    name = errno.errorcode.get(code, "")
    words = (err.strerror or str(err)) + (f" ({name})" if name else "")
    return OutputFailed(f"cannot write to {what}: {words}")


def _encodable(text: str, stream: object) -> str:
    if text.isascii():
        return text
    enc = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(enc)
        return text
    except (UnicodeError, LookupError):
        pass
    text = text.translate(_ASCII_ART)
    try:
        return text.encode(enc, "backslashreplace").decode(enc)
    except (UnicodeError, LookupError):
        return text.encode("ascii", "backslashreplace").decode("ascii")


def _stdout() -> object:
    out = sys.stdout
    if out is None:
        raise OutputFailed("cannot write to standard output: it is closed")
    return out


def out(text: str, *, style: Callable[[str], str] | None = None) -> None:
    """A block of human-readable lines on stdout, escaped; *style* colours each escaped line."""
    # lazy: the escaper's patterns (re, ~5 ms at start-up) at the first line printed, not for
    # `vfioctl --version`, whose one line is vfioctl's own
    from vfioctl.base.text import escape

    safe = escape(text, keep_newlines=True)
    if style is not None:
        safe = "\n".join(style(line) for line in safe.split("\n"))
    raw(safe + "\n")


def raw(text: str) -> None:
    """Text already safe for a terminal: JSON (which escapes every control character), or a
    document vfioctl generates from its own text (a completion script, the man page)."""
    stream = _stdout()
    try:
        stream.write(_encodable(text, stream))  # type: ignore[attr-defined]
    except OSError as err:
        raise output_failed(err) from None
    except ValueError:  # a closed file object
        raise OutputFailed("cannot write to standard output: it is closed") from None


def binary() -> BinaryIO:
    """stdout as bytes (``snapshot -``)."""
    stream = _stdout()
    buf = getattr(stream, "buffer", None)
    if buf is None:
        raise OutputFailed("standard output takes no binary data here")
    try:
        stream.flush()  # type: ignore[attr-defined]
    except OSError as err:
        raise output_failed(err) from None
    except ValueError:
        raise OutputFailed("cannot write to standard output: it is closed") from None
    return buf  # type: ignore[no-any-return]


def flush() -> None:
    """Make stdout's buffered bytes reach their file now, so that a failure is ours to report."""
    stream = sys.stdout
    if stream is None:
        return
    try:
        stream.flush()
        buf = getattr(stream, "buffer", None)
        if buf is not None:
            buf.flush()
    except OSError as err:
        raise output_failed(err) from None
    except ValueError:
        raise OutputFailed("cannot write to standard output: it is closed") from None


def err(text: str) -> None:
    """One message on stderr, escaped to one line; a closed or broken stderr is ignored."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        # lazy: as in out()
        from vfioctl.base.text import escape

        stream.write(_encodable(escape(text) + "\n", stream))
        stream.flush()
    except (OSError, ValueError):
        pass


def isatty() -> bool:
    try:
        return bool(sys.stdout is not None and sys.stdout.isatty())
    except (OSError, ValueError):
        return False


def discard_stdout() -> None:
    """After stdout failed: point it at /dev/null so that the interpreter's flush at exit
    cannot fail again (it would print 'Exception ignored' and exit 120)."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    except OSError:
        pass


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS when it is a positive number (in ASCII
    digits: :func:`vfioctl.host.env.columns`), else the terminal's width on stdout, else 80."""
    # lazy: the environment's readers, only when help is printed
    from vfioctl.host import env

    columns = env.columns()
    if columns is not None:
        return columns
    out = sys.__stdout__
    if out is None:
        return 80
    try:
        return os.get_terminal_size(out.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80
