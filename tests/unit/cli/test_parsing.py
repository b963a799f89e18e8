"""A plain command line (a command with --json and --root PATH) is parsed without a parser into
exactly what argparse gives; any other goes to argparse; help is argparse's, sized as argparse
sizes it."""

from __future__ import annotations

import importlib
import itertools

import pytest

from vfioctl.cli import COMMANDS, _build_parser, plain_arguments
from vfioctl.cli.parsing import terminal_columns

PLAIN = sorted(name for name, (module, _) in COMMANDS.items()
               if name in getattr(importlib.import_module(module), "DEFAULTS", {}))


def test_the_read_views_are_plain():
    assert {"list", "groups", "topology", "check"} <= set(PLAIN)


def _lines(command: str):
    """Every order of the command, --json and --root R (each there or not)."""
    parts = [[command], ["--json"], ["--root", "/some/host"]]
    for n in range(3):
        for extra in itertools.combinations(parts[1:], n):
            for order in itertools.permutations([parts[0], *extra]):
                yield [tok for part in order for tok in part]


@pytest.mark.parametrize("command", PLAIN)
def test_a_plain_command_line_is_what_argparse_gives(command):
    for argv in _lines(command):
        got = plain_arguments(argv)
        assert got is not None, argv
        want = _build_parser(command).parse_args(argv)
        assert vars(got) == vars(want), argv


@pytest.mark.parametrize("argv", [
    ["groups", "--why"], ["groups", "--why", "--json"], ["--json", "groups", "--why", "--root", "/h"],
    ["groups", "--root", "/h", "--why"], ["--root", "/h", "groups", "--json", "--why"],
])
def test_a_flag_the_command_lists_is_what_argparse_gives(argv):
    got = plain_arguments(argv)
    assert got is not None, argv
    assert vars(got) == vars(_build_parser("groups").parse_args(argv))


@pytest.mark.parametrize("argv", [
    ["groups", "--why", "14"], ["groups", "--why", "--why"], ["--why", "groups"], ["list", "--why"],
    ["groups", "--predict"], ["groups", "--why", "--predict"], ["groups", "--wh"], ["topology", "--expand"],
    [], ["--help"], ["list", "--help"], ["list", "--class", "02"], ["list", "--json", "--json"],
    ["--root"], ["list", "--root"], ["list", "--root", "-x"], ["--root=/x", "list"], ["--js", "list"],
    ["list", "groups"], ["sriov", "show"], ["show", "03:00.0"], ["groups", "14"], ["bogus"],
    ["--root", "/a", "list", "--root", "/b"], ["list", "--", "--json"],
])
def test_anything_else_goes_to_argparse(argv):
    assert plain_arguments(argv) is None


def test_help_is_as_wide_as_argparse_makes_it(monkeypatch):
    import shutil

    for columns in ("100", "37", "0", "x", None):
        if columns is None:
            monkeypatch.delenv("COLUMNS", raising=False)
        else:
            monkeypatch.setenv("COLUMNS", columns)
        assert terminal_columns() == shutil.get_terminal_size().columns


def test_argparse_words_are_translated_once_each_and_as_gettext_translates_them():
    import argparse
    import gettext

    import vfioctl.cli.parsing  # noqa: F401  (installs the memo)

    for word in ("usage: ", "options", "show this help message and exit", "positional arguments"):
        assert argparse._(word) == gettext.gettext(word)
    before = argparse._.cache_info().hits
    _build_parser(None, every=True)
    assert argparse._.cache_info().hits > before
