"""Numbers and text as vfioctl reads and shows them: ASCII digits only, and text from data
escaped before a terminal sees it.

``str.isdigit()`` (and ``isdecimal``, ``isnumeric``, a regular expression's ``\\d``) accept
digits of every script: ``"²".isdigit()`` is true and ``int("²")`` raises, ``int("١")`` is 1.
The kernel writes numbers in ASCII, so every number read from a host, a file, a snapshot,
the environment or a command line is parsed here, and anything else is not a number
(``tests/unit/base/test_text.py`` fails on the pattern anywhere in ``src/``).

Text from data (a device name from sysfs or pci.ids, a process's command name, a probe
answer from a snapshot) may hold terminal control sequences: ESC, BEL, the C1 CSI byte,
a carriage return, or a bidirectional override (U+202E) that makes the operator read
something else than what is there.  :func:`escape` writes them as Python escapes
(``\\x1b``, ``\\u202e``); the CLI's printer applies it to every human-readable line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: at most 9 digits: below 2**31, and far below Python's int-conversion limit (4,300 digits)
_DIGITS = {n: re.compile(f"[0-9]{{1,{n}}}") for n in (4, 9, 18, 20)}


def ascii_int(text: object, max_digits: int = 9) -> int | None:
    """The value of *text* when it is 1 to *max_digits* ASCII digits (nothing else: no sign,
    space, underscore or other script's digit), else None."""
    if not isinstance(text, (str, bytes)) or not 0 < len(text) <= max_digits:
        return None
    s = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    pat = _DIGITS.get(max_digits) or re.compile(f"[0-9]{{1,{max_digits}}}")
    return int(s) if pat.fullmatch(s) else None


def is_ascii_int(text: object, max_digits: int = 9) -> bool:
    return ascii_int(text, max_digits) is not None


def numbered(name: str, prefix: str, max_digits: int = 9) -> int | None:
    """N of a name the kernel numbers (``vtcon3``, ``fb0``, ``card1``, ``virtfn12``,
    ``nvme2``): *prefix* then 1 to *max_digits* ASCII digits; None for anything else."""
    if not isinstance(name, str) or not name.startswith(prefix):
        return None
    return ascii_int(name[len(prefix):], max_digits)


_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,16})")
_DEC = re.compile(r"([+-]?)([0-9]{1,20})")


def parse_int(text: str, base: int = 10) -> int | None:
    """A kernel attribute's number: base 10 (an optional sign, at most 20 ASCII digits), 16
    (an optional 0x, at most 16 hex digits) or 0 (16 with a 0x prefix, else 10); None for
    anything else.  Never the int-conversion limit, never another script's digits."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    if base == 0:
        base = 16 if s[:2] in ("0x", "0X") else 10
    if base == 16:
        m = _HEX.fullmatch(s)
        return int(m[1], 16) if m else None
    m = _DEC.fullmatch(s)
    if not m:
        return None
    return -int(m[2]) if m[1] == "-" else int(m[2])


#: seconds as people write them: ASCII digits, at most one point, no sign, exponent or unit
_SECONDS = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?|\.[0-9]{1,6}")


def parse_seconds(text: object, low: float, high: float) -> float | None:
    """A number of seconds from *low* to *high* (``60``, ``2.5``, ``.5``); None for anything
    else (``nan``, ``inf``, ``1e3``, ``0x10``, ``١``: float() takes them all)."""
    if not isinstance(text, str) or not _SECONDS.fullmatch(text):
        return None
    value = float(text)
    return value if low <= value <= high else None


def with_notes(lines: Iterable[str], notes: Iterable[str], indent: str = "") -> str:
    """*lines*, then a ``note: ...`` line for each of *notes*, joined: how the text of a plan, a
    result and an installation ends."""
    return "\n".join([*lines, *(f"{indent}note: {n}" for n in notes)])


# ------------------------------------------------------------------ text shown to a person
#: what a terminal acts on or shows misleadingly: C0 controls, DEL, C1 controls (0x9b is the
#: one-byte CSI), the Unicode bidirectional controls (Trojan Source, CVE-2021-42574), line
#: and paragraph separators, the zero-width no-break space and the interlinear annotations
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")
_UNSAFE_BUT_NL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]")


def _esc(m: re.Match) -> str:
    c = m[0]
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """*text* with every control or bidirectional character written as an escape
    (``\\x1b``, ``\\r``-as-``\\x0d``, ``\\u202e``); with *keep_newlines*, line breaks stay
    (a rendered block of lines).  Printable text, non-ASCII letters included, is unchanged."""
    pat = _UNSAFE_BUT_NL if keep_newlines else _UNSAFE
    return pat.sub(_esc, text) if pat.search(text) else text


def one_line(text: object, limit: int = 400) -> str:
    """Data shown inside a line: escaped (newlines too) and at most *limit* characters."""
    s = escape(str(text))
    return s if len(s) <= limit else s[:limit] + "..."
