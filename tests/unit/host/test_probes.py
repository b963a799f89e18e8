"""A snapshot's probes file read through one validated parser (vfioctl.host.probes): bounded
depth, bounded numbers (never Python's int-conversion limit), strings one escaped line."""

from __future__ import annotations

import json

import pytest
from clirun import run
from fakehost import standard_host

from vfioctl.base.errors import InvalidInput
from vfioctl.host.probes import parse_answers


@pytest.mark.parametrize("text,why", [
    ('{"dmesg": ' + "[" * 100000 + "]" * 100000 + "}", "nests deeper"),
    ('{"dmesg": ' + "[" * 20 + "]" * 20 + "}", "nests deeper"),
    ('{"ipv4:eth0": ' + "7" * 5000 + "}", "not valid JSON"),
    ('{"ipv4:eth0": 1' + "0" * 5000 + ".5}", "not valid JSON"),
    ('{"x": NaN}', "not valid JSON"), ('{"x": -Infinity}', "not valid JSON"),
    ("[1, 2]", "not a JSON object"), ("{", "not valid JSON"),
])
def test_hostile_probes_files_are_bad_input(text, why):
    with pytest.raises(InvalidInput, match=why):
        parse_answers(text, "snap")


def test_strings_are_one_escaped_line():
    got = parse_answers(json.dumps({"dmesg": {"lines": ["a\x1b[31m", "b\nc"], "why": "line one\nline two\x9b"},
                                    "k\u202e": "v"}), "snap")
    assert got["dmesg"] == {"lines": ["a\\x1b[31m", "b\\x0ac"], "why": "line one\\x0aline two\\x9b"}
    assert got["k\\u202e"] == "v"


@pytest.mark.parametrize("body", ['{"dmesg": ' + "[" * 50000 + "]" * 50000 + "}",
                                  '{"libvirt-version": ' + "9" * 5000 + "}",
                                  '{"dmesg": {"lines": null, "why": "line one\\nline two\\u001b[31m"}}'])
@pytest.mark.parametrize("argv", [["check"], ["show", "0000:00:02.0"], ["libvirt-xml", "0000:00:02.0", "--hook"]])
def test_a_hostile_probes_file_through_the_cli(tmp_path, body, argv):
    """probes.json nested deeply gave RecursionError (70); a 5,000-digit number the int-conversion
    limit error (70); a probe's text reached the terminal with its newline and ESC."""
    b = standard_host(tmp_path / "root")
    (b.root / ".vfioctl").mkdir()
    (b.root / ".vfioctl/probes.json").write_text(body)
    rc, out, err = run(["--root", str(b.root), *argv])
    assert rc in (0, 1, 65, 69), (rc, err)
    assert "internal error" not in err
    if rc == 65:
        assert err.count("\n") == 1 and "probes file" in err, err
    assert "\x1b" not in out and "\nline two" not in out
