"""The help formatter of every vfioctl parser: argparse's RawDescriptionHelpFormatter, sized as
argparse sizes it, without importing shutil for the size.

argparse builds a formatter for every ``add_argument`` (to check the metavar) and asks
``shutil.get_terminal_size`` for the width each time; importing shutil imports bz2, lzma and
fnmatch (~2 ms of every start-up) for a width that only printed help uses.
"""

from __future__ import annotations

import argparse
import os
import sys


def terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``: $COLUMNS when it is a positive number, else the
    terminal's width on stdout, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
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
