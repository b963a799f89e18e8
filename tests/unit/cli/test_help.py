"""Every command's help: a description and at least one example (issue 23: `show`, `status`,
`restore` and `sriov` had one line).  Walks the whole parser, nested commands too."""

import argparse
import io
from contextlib import redirect_stdout

import pytest

from vfioctl.cli import COMMANDS, build_parser, main, prepared_help


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield path + (name,), sub
                yield from commands(sub, path + (name,))


ALL = list(commands(build_parser()))


def test_the_walk_finds_every_command():
    names = {" ".join(p) for p, _ in ALL}
    assert {"show", "status", "restore", "sriov show", "sriov set", "boot cmdline", "libvirt-hook run"} <= names
    assert len(names) >= 28


@pytest.mark.parametrize("path,parser", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_a_description_and_an_example(path, parser):
    assert parser.description and len(parser.description) > 20, "no description"
    epilog = parser.epilog or ""
    assert "examples:" in epilog, "no examples: section"
    examples = epilog.split("examples:", 1)[1]
    assert "vfioctl " + path[0] in examples, "no example of the command itself"
    for action in parser._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            assert action.help, f"{action.option_strings} has no help"


@pytest.mark.parametrize("name", ["show", "status", "restore", "sriov"])
def test_help_that_was_one_line(name):
    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit):
        main([name, "--help"])
    text = buf.getvalue()
    assert "examples:" in text and text.count("\n") > 15


# --help without argparse (issue 27): the prepared text is argparse's, byte for byte

def _printed(argv, monkeypatch=None, prepared=True):
    import vfioctl.cli as cli

    if not prepared and monkeypatch is not None:
        monkeypatch.setattr(cli, "prepared_help", lambda argv: None)
    buf = io.StringIO()
    with redirect_stdout(buf), pytest.raises(SystemExit) as exc:
        main(list(argv))
    return buf.getvalue(), exc.value.code


def test_the_prepared_help_module_is_what_the_parser_generates_now():
    """src/vfioctl/cli/helptext.py is exactly what `python -m vfioctl.cli.parsing` writes from
    the parser as it is: a changed option, help line or command fails here until it is
    regenerated.  On another Python minor version than the one it was made with, argparse's
    own layout may differ: then the prepared text is never used (next test)."""
    import sys
    from pathlib import Path

    from vfioctl.cli import helptext, parsing

    if sys.version_info[:2] != helptext.PYTHON:
        # another layout may be argparse's here: the prepared text must never answer
        assert prepared_help(["--help"]) is None and prepared_help(["list", "--help"]) is None
        return
    assert Path(helptext.__file__).read_text() == parsing.helptext_module(helptext.COLUMNS)


def test_the_prepared_help_is_used_only_where_it_is_argparses(monkeypatch):
    import sys

    from vfioctl.cli import helptext, prepared_help

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LANG", "C")
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    same_python = sys.version_info[:2] == helptext.PYTHON
    assert (prepared_help(["--help"]) is not None) == same_python
    assert (prepared_help(["list", "-h"]) is not None) == same_python
    for argv in (["--json", "--help"], ["list", "--json", "--help"], ["nosuch", "--help"], ["list"], [],
                 ["--help", "list"], ["sriov", "show", "--help"]):
        assert prepared_help(argv) is None, argv
    monkeypatch.setenv("COLUMNS", "100")
    assert prepared_help(["--help"]) is None
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LANGUAGE", "../../tmp/x")
    assert prepared_help(["--help"]) is None


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["sriov", "-h"]] + [[name, "--help"] for name in COMMANDS])
def test_help_is_the_same_prepared_or_from_argparse(argv, monkeypatch):
    """`vfioctl --help` and every `vfioctl COMMAND --help` print the same bytes and exit the same
    way whether the prepared text answers or argparse builds the parser."""
    monkeypatch.setenv("COLUMNS", "80")
    fast = _printed(argv)
    slow = _printed(argv, monkeypatch, prepared=False)
    assert fast == slow
    assert fast[0].startswith("usage: vfioctl")
