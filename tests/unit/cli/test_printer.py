"""The CLI's one printer (vfioctl.cli.printer): text from data escaped in every human-readable
output, and a stdout or stderr that fails (ENOSPC, /dev/full, EPIPE, EIO, closed) mapped to a
documented exit code with one line, never 70 and never a traceback word."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clirun import run
from fakehost import FakeDev, standard_host

import vfioctl

SRC = Path(vfioctl.__file__).resolve().parents[1]
HOSTILE = "\x1b]0;owned\x07\x1b[2J\x9b31m\rX\u202egnp.exe"
RAW = ("\x1b", "\x07", "\x9b", "\r", "\u202e")




@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A tree whose device names, labels and process names carry terminal controls."""
    b = standard_host(tmp_path_factory.mktemp("printer") / "root")
    b.add(FakeDev("0000:00:09.0", "8086", "10d3", driver="e1000e", group=9, net=["eth9"]))
    ids = b.root / "usr/share/misc/pci.ids"
    ids.parent.mkdir(parents=True, exist_ok=True)
    ids.write_text(f"# pci.ids\n8086  Intel {HOSTILE}\n\t10d3  82574L {HOSTILE}\n")
    real = Path(os.path.realpath(b.root / "sys/bus/pci/devices/0000:00:09.0"))
    (real / "label").write_text(HOSTILE + "\n")
    probes = b.root / ".vfioctl/probes.json"
    probes.parent.mkdir(parents=True, exist_ok=True)
    probes.write_text(json.dumps({"dmesg": {"lines": None, "why": "line one\nline two\x1b[31m"}}))
    return b.root


@pytest.mark.parametrize("argv", [["list"], ["show", "0000:00:09.0"], ["groups"], ["check"], ["topology"],
                                  ["assess", "0000:00:09.0"], ["groups", "--why", "0000:00:09.0"]])
def test_text_from_data_is_escaped(hostile, argv):
    rc, out, err = run(["--root", str(hostile), *argv])
    assert rc in (0, 1, 69), (rc, err)
    for c in RAW:
        assert c not in out and c not in err, (argv, repr(c))


def test_a_probe_answer_is_one_escaped_line(hostile):
    rc, out, err = run(["--root", str(hostile), "check"])
    assert "line one\\x0aline two\\x1b[31m" in out or "line one" not in out, out
    assert "\nline two" not in out


def test_json_stays_json(hostile):
    rc, out, err = run(["--root", str(hostile), "list", "--json"])
    assert rc == 0
    assert "\x1b" not in out and json.loads(out)


class Broken:
    """A stdout whose writes fail like a full disk, /dev/full, a gone reader or a bad disk."""

    encoding = "utf-8"

    def __init__(self, code: int) -> None:
        self.code = code
        self.buffer = self

    def write(self, s: object) -> int:
        raise OSError(self.code, os.strerror(self.code))

    def flush(self) -> None:
        raise OSError(self.code, os.strerror(self.code))

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("argv", [["list"], ["show", "0000:00:09.0"], ["topology"], ["check"],
                                  ["groups", "--predict"], ["list", "--json"], ["snapshot", "-"]])
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EPIPE])
def test_an_output_that_fails_is_exit_74_in_one_line(hostile, argv, code):
    rc, out, err = run(["--root", str(hostile), *argv], stdout=Broken(code))
    assert rc == 74, (rc, err)
    for word in ("Traceback", "OSError", "AttributeError", "internal error"):
        assert word not in err, err
    if code == errno.EPIPE:
        assert err == ""  # a reader that stopped reading (`| head`): nothing to say
    else:
        assert err.count("\n") == 1 and err.startswith("vfioctl: cannot write to standard output"), err


def _subprocess(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    env.pop("VFIOCTL_ROOT", None)
    return subprocess.run([sys.executable, "-m", "vfioctl", *args], capture_output=True, text=True, env=env,
                          timeout=60, **kw)


def test_dev_full_and_closed_streams(hostile):
    """list > /dev/full; list with stdout closed; show of a missing device with stderr closed."""
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "vfioctl", "--root", str(hostile), "list"], stdout=full,
                           stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    assert p.returncode == 74 and "No space left on device (ENOSPC)" in p.stderr and "Traceback" not in p.stderr, p
    p = subprocess.run(f"exec {sys.executable} -m vfioctl --root {hostile} list >&-", shell=True,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    assert p.returncode == 74 and p.stderr.count("\n") == 1 and "closed" in p.stderr, p
    p = subprocess.run(f"exec {sys.executable} -m vfioctl --root {hostile} show 0000:00:1f.7 2>&-", shell=True,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    assert p.returncode == 66, p
    p = subprocess.run(f"{sys.executable} -m vfioctl --root {hostile} list | head -c1 >/dev/null", shell=True,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_groups_in_an_encoding_without_box_drawing(hostile, encoding):
    """PYTHONIOENCODING=ascii made `groups` exit 70 (the tree's box-drawing characters)."""
    p = subprocess.run([sys.executable, "-m", "vfioctl", "--root", str(hostile), "groups"], capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(SRC), PYTHONIOENCODING=encoding), timeout=60)
    assert p.returncode == 0, p.stderr
    assert b"|-- group" in p.stdout or b"`-- group" in p.stdout, p.stdout[:300]


def test_colour_is_added_to_escaped_lines_only():
    from vfioctl.cli.cmd_inventory import group_style, render_group_tree

    tree = render_group_tree([{"group": 1, "viable": True, "blockers": [], "members": [
        {"role": "endpoint", "companion_of": None, "vendor_name": HOSTILE, "device_name": "", "address": "0000:00:01.0",
         "vendor_id": "8086", "device_id": "10d3", "driver": None}]}])
    from vfioctl.base.text import escape

    styled = [group_style(x) for x in escape(tree, keep_newlines=True).split("\n")]
    assert "\033[32mviable" in styled[1]
    assert not any(c in "".join(styled).replace("\033[", "") for c in ("\x07", "\x9b", "\r", "\u202e"))
