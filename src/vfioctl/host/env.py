"""Every environment variable vfioctl reads, each through one validated reader.

docs/environment.md lists them for users.  A value that is set but not what its variable
takes (``abc``, ``''``, ``0x10``, ``nan``, ``inf``, a negative or huge number, an
Arabic-Indic digit, a relative path) is refused with one line naming the variable
(:class:`~vfioctl.base.errors.InvalidInput`, exit 65), never guessed at and never a
traceback; the CLI checks them all before a command starts (:func:`check_all`), so a bad
value refuses before anything is read or changed.  Nothing else in ``src/`` reads
``os.environ`` (``tests/unit/host/test_env.py`` fails on it).
"""

from __future__ import annotations

import os

from vfioctl.base.errors import InvalidInput


class Var:
    """One variable: its name, what it takes (for the message and the docs), its default."""

    __slots__ = ("name", "takes", "default")

    def __init__(self, name: str, takes: str, default: str | None) -> None:
        self.name, self.takes, self.default = name, takes, default

    def raw(self) -> str | None:
        return os.environ.get(self.name)

    def bad(self, value: str) -> InvalidInput:
        # lazy: base.text compiles its patterns (re, ~4 ms) at import; `vfioctl --help` reads
        # COLUMNS and the locale variables and nothing else here
        from vfioctl.base.text import one_line

        return InvalidInput(f"{self.name}={one_line(value, 80)!r} is not {self.takes}; unset it or fix it",
                            variable=self.name)


def _seconds(var: Var, low: float, high: float) -> float:
    raw = var.raw()
    text = var.default if raw is None else raw
    # lazy: as in Var.bad
    from vfioctl.base.text import parse_seconds

    value = parse_seconds(text, low, high)
    if value is None:
        raise var.bad(str(text))
    return value


def _count(var: Var) -> int | None:
    raw = var.raw()
    if raw is None:
        return None
    # lazy: as in Var.bad
    from vfioctl.base.text import ascii_int

    n = ascii_int(raw, 7)
    if n is None or n < 1:
        raise var.bad(raw)
    return n


def _abs_path(var: Var) -> str | None:
    raw = var.raw()
    text = var.default if raw is None else raw
    if text is None:
        return None
    # lazy: base.names compiles its patterns (re) at import, as in Var.bad
    from vfioctl.base.names import is_plain_abs_path

    if not is_plain_abs_path(text) or "/../" in f"{text}/" or "/./" in f"{text}/":
        raise var.bad(text)
    return os.path.normpath(text)


LOCK_TIMEOUT = Var("VFIOCTL_LOCK_TIMEOUT", "a number of seconds from 0 to 86400 (e.g. 60 or 2.5)", "60")
VERIFY_TIMEOUT = Var("VFIOCTL_VERIFY_TIMEOUT", "a number of seconds from 0.01 to 3600 (e.g. 10)", "10")
UNBIND_TIMEOUT = Var("VFIOCTL_UNBIND_TIMEOUT", "a number of seconds from 0.1 to 3600 (e.g. 10)", "10")
SRIOV_TIMEOUT = Var("VFIOCTL_SRIOV_TIMEOUT", "a number of seconds from 0.01 to 3600 (e.g. 120)", "120")
STATE_DIR = Var("VFIOCTL_STATE_DIR", "an absolute path without '.' or '..' components or control characters",
                "/var/lib/vfioctl")
ROOT = Var("VFIOCTL_ROOT", "a path (/ , a folder or a snapshot .tar.gz); it is set but empty", None)
TRACE_WRITES = Var("VFIOCTL_TRACE_WRITES", "an absolute path (a regular file, appended to)", None)
FAULT_FAIL_AT = Var("VFIOCTL_FAULT_FAIL_AT", "a count from 1 to 9999999 in ASCII digits", None)
FAULT_KILL_AFTER = Var("VFIOCTL_FAULT_KILL_AFTER", "a count from 1 to 9999999 in ASCII digits", None)
DEBUG = Var("VFIOCTL_DEBUG", "any non-empty value", None)
NO_COLOR = Var("NO_COLOR", "any non-empty value (https://no-color.org)", None)
COLUMNS = Var("COLUMNS", "a positive number of columns in ASCII digits (as the shell sets it)", None)
#: the locale variables Python's gettext reads for the language of argparse's own words, in its order
MESSAGES_LOCALE = tuple(Var(name, "a list of locale names separated by ':' (as gettext takes it)", None)
                        for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"))


def lock_timeout() -> float:
    """Seconds to wait for another vfioctl's lock before exit 75."""
    return _seconds(LOCK_TIMEOUT, 0, 86400)


def verify_timeout() -> float:
    """Seconds a step waits for the kernel to show its result."""
    return _seconds(VERIFY_TIMEOUT, 0.01, 3600)


def unbind_timeout() -> float:
    """Seconds an unbind or driver probe may take before the plan stops (75): host/bounded.py."""
    return _seconds(UNBIND_TIMEOUT, 0.1, 3600)


def sriov_timeout() -> float:
    """Seconds to wait for VFs to appear or go."""
    return _seconds(SRIOV_TIMEOUT, 0.01, 3600)


def state_dir() -> str:
    """vfioctl's state folder, host-absolute (normalised)."""
    got = _abs_path(STATE_DIR)
    assert got is not None
    return got


def root() -> str | None:
    """$VFIOCTL_ROOT: None when unset; set but empty is refused (a script's unset variable
    must not mean the live host)."""
    raw = ROOT.raw()
    if raw is None:
        return None
    if not raw or "\0" in raw:
        raise ROOT.bad(raw)
    return raw


def trace_writes() -> str | None:
    return _abs_path(TRACE_WRITES)


def fault_fail_at() -> int | None:
    return _count(FAULT_FAIL_AT)


def fault_kill_after() -> int | None:
    return _count(FAULT_KILL_AFTER)


def debug() -> bool:
    return bool(DEBUG.raw())


def no_color() -> bool:
    return bool(NO_COLOR.raw())


def columns() -> int | None:
    """$COLUMNS, the width printed help is wrapped to (argparse reads it through shutil): a
    positive number, else None.  Any other value is ignored, as shutil ignores it, not refused:
    the variable is the shell's, and help is no reason to stop."""
    raw = COLUMNS.raw()
    # base.text's ascii_int(raw, 4) without its patterns (re): 1 to 4 characters, each one of 0-9
    n = int(raw) if raw and len(raw) <= 4 and not raw.strip("0123456789") else 0
    return n if n else None


def messages_languages() -> list[str]:
    """The languages Python's gettext tries for a message (``gettext.find``): the first of
    $LANGUAGE, $LC_ALL, $LC_MESSAGES and $LANG that is set and not empty, split at ':'; [] when
    none is (gettext then tries 'C' alone: no translation).  Read, never refused: they are the
    shell's, and `--help` only asks whether argparse's words could come out translated."""
    for var in MESSAGES_LOCALE:
        raw = var.raw()
        if raw:
            return raw.split(":")
    return []


_READERS = (lock_timeout, verify_timeout, unbind_timeout, sriov_timeout, state_dir, root, trace_writes, fault_fail_at,
            fault_kill_after)


def check_all() -> None:
    """Read every variable once: the first bad value raises InvalidInput (65)."""
    for read in _READERS:
        read()
