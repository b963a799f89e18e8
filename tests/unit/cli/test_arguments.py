"""The ranged argument types every command shares (cli.bounded): each refusal is a usage error (exit
2) whose words say what was wrong, and a good value comes through as a number."""

from __future__ import annotations

import argparse

import pytest

from vfioctl.cli import bounded, build_parser, main
from vfioctl.cli.cmd_bind import _positive
from vfioctl.cli.cmd_guest import _slot, _timeout, _vlan


@pytest.mark.parametrize("convert,text,want", [
    (_slot, "1f", 0x1F), (_slot, "00", 0), (_vlan, "4095", 4095), (_vlan, "0", 0),
    (_timeout, "2.5", 2.5), (_timeout, ".01", 0.01), (_positive, "4096", 4096), (_positive, "1", 1),
])
def test_good_values(convert, text, want):
    assert convert(text) == want


@pytest.mark.parametrize("convert,text,words", [
    (_slot, "zz", "'zz' is not a hex slot number (00-1f)"),
    (_slot, "20", "slot 20 is out of range 00-1f"),
    (_vlan, "٤٠", "is not a VLAN id (0-4095)"),  # non-ASCII digits are no number
    (_vlan, "4096", "VLAN 4096 is out of range 0-4095"),
    (_timeout, "0", "'0' is not a number of seconds from 0.01 to 3600"),
    (_timeout, "nan", "'nan' is not a number of seconds"),
    (_timeout, "1e3", "'1e3' is not a number of seconds"),
    (_positive, "0", "the count must be between 1 and 4096"),
    (_positive, "x" * 50, "expected a whole number, got 'xxxxxxxxxxxxxxxxxxxx'"),
])
def test_refusals_say_why(convert, text, words):
    with pytest.raises(argparse.ArgumentTypeError) as err:
        convert(text)
    assert words in str(err.value)


def test_bounded_checks_the_parse_then_the_range():
    seen = []
    c = bounded(lambda t: seen.append(t) or (int(t) if t.isdigit() else None), 2, 4,
                lambda t: f"not one: {t}", lambda t, n: f"{n} out of range")
    assert c("3") == 3 and seen == ["3"]
    with pytest.raises(argparse.ArgumentTypeError, match="not one: x"):
        c("x")
    with pytest.raises(argparse.ArgumentTypeError, match="5 out of range"):
        c("5")


def test_through_the_parser_a_bad_value_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["qemu-args", "03:00.0", "--slot", "20"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "slot 20 is out of range 00-1f" in err


def test_the_shared_arguments_are_declared_once_alike():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("hide", "reset", "restore"):
        p = sub.choices[name]
        dry = next(a for a in p._actions if a.dest == "dry_run")
        devs = next(a for a in p._actions if a.dest == "devices")
        assert dry.help == "print the plan and change nothing" and devs.metavar == "DEV"
