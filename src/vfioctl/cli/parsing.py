"""The help formatter of every vfioctl parser: argparse's RawDescriptionHelpFormatter, sized as
argparse sizes it, without importing shutil for the size; and argparse's messages translated
once each.

argparse builds a formatter for every ``add_argument`` (to check the metavar) and asks
``shutil.get_terminal_size`` for the width each time; importing shutil imports bz2, lzma and
fnmatch (~2 ms of every start-up) for a width that only printed help uses.

argparse translates its own words ("usage: ", "options", "show this help message and exit")
with ``gettext.gettext`` at every parser and every help action it makes, and each call looks
for a catalogue on disk again (``gettext.find``: a locale normalized, a path tried per
language): 79 calls, a third of building the parser for ``vfioctl --help``.  The same message
gets the same translation for the life of the process (the locale is read once at start), so
each is looked up once.
"""

from __future__ import annotations

import argparse
import functools
import gettext
import os
import sys

from vfioctl.host import env

#: argparse's gettext (a module global it calls by name), each message looked up once
argparse._ = functools.lru_cache(maxsize=None)(gettext.gettext)  # type: ignore[attr-defined]


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS when it is a positive number (in ASCII
    digits: :func:`vfioctl.host.env.columns`), else the terminal's width on stdout, else 80."""
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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; the width argparse's default gives (2 less than the
    terminal's)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position,
                         terminal_columns() - 2 if width is None else width)
