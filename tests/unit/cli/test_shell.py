"""`vfioctl completion bash|zsh|fish` and `vfioctl man`: generated from the parser, run in the real
shells (zsh and fish when installed: tests/run-all.sh installs them) and rendered by groff."""

import io
import shutil
import subprocess
from contextlib import redirect_stdout

import pytest

from vfioctl.cli import build_parser, main
from vfioctl.cli.shell import spec


def out(*argv: str) -> str:
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(list(argv)) == 0
    return buf.getvalue()


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    d = tmp_path_factory.mktemp("completion")
    paths = {}
    for shell, name in (("bash", "vfioctl.bash"), ("zsh", "_vfioctl"), ("fish", "vfioctl.fish")):
        paths[shell] = d / name
        paths[shell].write_text(out("completion", shell))
    return paths


def test_the_spec_has_every_command():
    paths = {" ".join(c.path) for c in spec(build_parser())}
    assert {"", "hide", "sriov", "sriov set", "boot cmdline", "completion", "man"} <= paths


BASH = r"""
source "$1"
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _vfioctl; echo "${COMPREPLY[*]}"; }
t vfioctl ""
t vfioctl sr
t vfioctl sriov ""
t vfioctl sriov set --d
t vfioctl topology --format ""
t vfioctl --root /nowhere ""
t vfioctl completion ""
t vfioctl hide --driver ""
"""


def test_bash(scripts):
    r = subprocess.run(["bash", "-c", BASH, "bash", str(scripts["bash"])], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["check", "list", "groups"] and "completion" in lines[0].split()
    assert lines[1:7] == ["sriov", "show set", "--driver --dry-run", "text json dot svg", lines[0], "bash zsh fish"]
    assert lines[7] == ""  # --driver takes a value with no list: nothing offered


ZSH = r"""
_arguments() { print -r -- "ARGUMENTS $*" }
_describe() { print -r -- "DESCRIBE ${(P)4}" }
compadd() { if [[ $1 == -a ]]; then print -r -- "COMPADD ${(P)2}"; else print -r -- "COMPADD $*"; fi }
_files() { print -r -- "FILES" }
eval "$(sed '$d' "$1")"
t() { words=("$@"); CURRENT=$#; _vfioctl }
t vfioctl ""
t vfioctl sriov ""
t vfioctl completion ""
t vfioctl snapshot ""
t vfioctl topology --f
"""


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh(scripts):
    assert subprocess.run(["zsh", "-n", str(scripts["zsh"])], timeout=60).returncode == 0
    r = subprocess.run(["zsh", "-c", ZSH, "zsh", str(scripts["zsh"])], capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("DESCRIBE check:is this host ready") and "man:print the man page" in lines[0]
    assert lines[1] == "DESCRIBE show:SR-IOV functions, VF counts and VFs set:change a PF's VF count or its VFs' settings"
    assert lines[2] == "COMPADD bash zsh fish" and lines[3] == "FILES"
    assert lines[4].startswith("ARGUMENTS -s") and "'--format[text (default)" not in lines[4]
    assert "--format[text (default), json (same as --json), dot or svg]:FORMAT:(text json dot svg)" in lines[4]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish(scripts):
    def complete(line: str) -> list[str]:
        r = subprocess.run(["fish", "-c", f"source {scripts['fish']}; complete -C {line!r}"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return [x.split("\t")[0] for x in r.stdout.splitlines()]

    assert {"check", "topology", "completion"} <= set(complete("vfioctl "))
    assert complete("vfioctl sriov ") == ["set", "show"]
    assert complete("vfioctl topology --format ") == ["dot", "json", "svg", "text"]
    assert complete("vfioctl completion ") == ["bash", "fish", "zsh"]
    assert "--dry-run" in complete("vfioctl sriov set --")


def test_man_page_names_every_command_with_its_examples():
    page = out("man")
    assert page.startswith('.TH VFIOCTL 1 "') and ".SH EXIT STATUS" in page
    assert ".TS" not in page  # man(1) would not run tbl: groff 1.23 warns of an unrun table
    for c in spec(build_parser())[1:]:
        assert f".SS vfioctl {' '.join(c.path)}".replace("-", "\\-") in page
    assert "vfioctl sriov set 0000:00:04.0 2 \\-\\-hide \\-\\-dry\\-run" in page
    # a line that starts with a control character is one of the page's own macros, never text
    macros = {".TH", ".SH", ".SS", ".PP", ".TP", ".B", ".nf", ".fi", ".RS", ".RE", ".TS", ".TE"}
    assert {line.split()[0] for line in page.splitlines() if line[:1] in (".", "'")} <= macros


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_renders_without_warnings(tmp_path):
    page = tmp_path / "vfioctl.1"
    page.write_text(out("man"))
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = subprocess.run(["groff", "-man", "-Tutf8", str(page)], capture_output=True, text=True, timeout=120)
    assert "vfioctl topology --group 15" in r.stdout.replace("\u2010", "-").replace("\u2212", "-")


def test_completion_is_not_on_the_list_path():
    """Start-up: `vfioctl list` must not import the parser walk or the generators."""
    code = ("import sys; from vfioctl.cli import main; main(['--root', '/nonexistent-root', 'list']); "
            "print('vfioctl.cli.shell' in sys.modules, 'vfioctl.report.picture' in sys.modules)")
    r = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "False False"
