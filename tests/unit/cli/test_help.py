"""Every command's help: a description and at least one example (issue 23: `show`, `status`,
`restore` and `sriov` had one line).  Walks the whole parser, nested commands too."""

import argparse
import io
from contextlib import redirect_stdout

import pytest

from vfioctl.cli import build_parser, main


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
