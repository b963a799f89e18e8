#!/usr/bin/env python3
"""Boot the VM lab and run the README's walkthrough, printing each command and its real output.

Usage:
  .venv/bin/python docs/demo.py > docs/demo-output.md     run it in the lab (about 8 minutes)
  .venv/bin/python docs/demo.py --snapshot
      rerun, without the lab, the steps whose lab state is the committed snapshot's (marked
      SNAPSHOT below: read-only commands run before anything changed, or once all was given
      back) against tests/snapshots/lab-0.2.0.tar.gz, and put their output into
      docs/demo-output.md
  .venv/bin/python docs/demo.py --refresh README.md docs/*.md
      put the output of docs/demo-output.md into every ```console block of those files that
      starts with the same "# COMMAND" line (a note in parentheses after the command is
      ignored; blocks with a "..." line are excerpts: left alone, and checked line by line)
  .venv/bin/python docs/demo.py --check README.md docs/*.md
      fail (exit 1) on drift: a console block that differs from docs/demo-output.md (an
      excerpt whose lines are not, in order, in it), a block no step of the demo produced, or
      a SNAPSHOT step whose recorded output the program no longer gives on the snapshot
      (tests/unit/test_docs.py runs this)

The README and docs quote this output; rerun when commands change.  Commands that run more
than once carry a shell comment ("# while the VM holds it") that makes each line unique.
"""

from __future__ import annotations

import base64
import io
import re
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = "tests/snapshots/lab-0.2.0.tar.gz"

CONFIG = """\
[[device]]
address = "0000:00:07.0"
id = "8086:10d3"

[[sriov]]
pf = "0000:00:04.0"
numvfs = 2
hide = true
"""

SELECT = """\
[[device]]
match = { id = "8086:10d3" }
count = 2
"""

# ("fetch", guest path, repo path) copies a file out of the lab; everything else is a shell line.
STEPS: list[str | tuple[str, str, str]] = [
    "vfioctl snapshot /tmp/lab.tar.gz",
    ("fetch", "/tmp/lab.tar.gz", SNAPSHOT),
    "vfioctl check",
    "vfioctl groups",
    "vfioctl list --class 02",
    "vfioctl hide 0000:01:01.0",
    "vfioctl hide 0000:01:01.0 --group --dry-run",
    "vfioctl hide 0000:00:02.0",
    "vfioctl status",
    "vfioctl qemu-args 0000:00:02.0",
    "vfioctl libvirt-xml 0000:00:02.0",
    "vfioctl cdi --output /var/run/cdi/vfioctl.json    # 0000:00:02.0 hidden",
    "vfioctl qemu-args 0000:00:0e.0 0000:00:0e.1",
    "vfioctl restore 0000:00:02.0",
    "qemu-system-x86_64 -name guest=demo -machine q35 -accel tcg -S -m 64 -nodefaults -display none "
    "-device pcie-root-port,id=rp1,chassis=1,slot=1 -global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off "
    "-qmp unix:/tmp/demo.qmp,server=on,wait=off -daemonize",
    "vfioctl attach 0000:00:02.0 --qmp /tmp/demo.qmp",
    "vfioctl status    # while the VM holds it",
    "vfioctl restore 0000:00:02.0    # while the VM holds it",
    "vfioctl detach 0000:00:02.0 --qmp /tmp/demo.qmp --restore",
    "pkill -f 'guest=dem[o]'",
    "vfioctl sriov set 0000:00:04.0 2 --hide",
    "vfioctl sriov show",
    "vfioctl restore 0000:00:04.0",
    "cat /etc/vfioctl/vfioctl.toml",
    "vfioctl apply --dry-run",
    "vfioctl boot install --dry-run",
    # assess, ROM, reset
    "vfioctl assess 0000:00:07.0 0000:01:01.0 0000:00:08.0 0000:07:01.0",
    "vfioctl hide 0000:00:07.0",
    "vfioctl assess 0000:00:07.0",
    "vfioctl rom 0000:00:07.0 --dump /tmp/07.rom",
    "vfioctl qemu-args 0000:00:07.0 --rom /tmp/07.rom",
    "vfioctl qemu-args 0000:00:07.0 --no-rom",
    "vfioctl restore 0000:00:07.0",
    "vfioctl hide 0000:04:00.0 --reset-method bus --dry-run",
    "vfioctl hide 0000:00:04.0",
    "vfioctl reset 0000:00:04.0",
    "vfioctl restore 0000:00:04.0    # after the reset",
    "vfioctl hide 0000:00:08.0",
    "vfioctl reset 0000:00:08.0",
    "vfioctl restore 0000:00:08.0",
    # isolation
    "vfioctl groups --why 0000:02:00.0",
    "vfioctl groups --why 0000:01:01.0",
    "vfioctl groups --why 0000:08:00.0",
    "vfioctl groups --predict",
    "vfioctl topology",
    "vfioctl topology --format svg > /tmp/lab-topology.svg",
    ("fetch", "/tmp/lab-topology.svg", "docs/lab-topology.svg"),
    # single-GPU hand-off (the lab's bochs display at 00:01.0 gets its DRM driver first)
    "modprobe bochs && sleep 2 && cat /proc/fb && grep . /sys/class/vtconsole/vtcon*/name /sys/class/vtconsole/vtcon*/bind",
    "vfioctl assess 0000:00:01.0",
    "vfioctl hide 0000:00:01.0",
    "vfioctl hide 0000:00:01.0 --take-console --dry-run",
    "vfioctl hide 0000:00:01.0 --take-console",
    "grep . /sys/class/vtconsole/vtcon*/name /sys/class/vtconsole/vtcon*/bind; cat /proc/fb",
    "vfioctl status    # the GPU handed over",
    "vfioctl restore 0000:00:01.0",
    "sleep 1; cat /proc/fb; grep . /sys/class/vtconsole/vtcon*/name /sys/class/vtconsole/vtcon*/bind",
    # selectors
    "vfioctl hide id:8086:10d3 --count 1 --dry-run",
    "vfioctl hide 'pf:0000:00:04.0/vfs:0-1' --dry-run",
    "vfioctl sriov set 0000:00:04.0 2",
    "vfioctl hide 'pf:0000:00:04.0/vfs:1'",
    "vfioctl status    # VFs chosen by a selector",
    "vfioctl restore --all",
    "cat /tmp/select.toml",
    "vfioctl apply --config /tmp/select.toml --dry-run",
]


#: steps whose lab state is the committed snapshot's: read-only commands run right after the
#: snapshot was taken, or once everything was given back (the vfio modules loaded by then
#: change no line of these); `--snapshot` reruns them on the snapshot, `--check` keeps them so
SNAPSHOT_STEPS = (
    "vfioctl check",
    "vfioctl groups",
    "vfioctl list --class 02",
    "vfioctl hide 0000:01:01.0 --group --dry-run",
    "vfioctl groups --why 0000:02:00.0",
    "vfioctl groups --why 0000:01:01.0",
    "vfioctl groups --why 0000:08:00.0",
    "vfioctl groups --predict",
    "vfioctl topology",
)

BLOCK = re.compile(r"```console\n(# [^\n]*)\n(.*?)```", re.S)
#: a note after a command in a block's head: "# vfioctl boot install --dry-run     (excerpt; ...)"
NOTE = re.compile(r"\s{2,}\([^()]*\)$")


def recorded() -> dict[str, str]:
    """"# COMMAND" -> the output docs/demo-output.md recorded for it."""
    return {m[1]: m[2] for m in BLOCK.finditer((REPO / "docs" / "demo-output.md").read_text())}


def _head(head: str) -> str:
    return NOTE.sub("", head)


def _excerpt(body: str) -> bool:
    return any(line.strip().lstrip("│ ").strip() == "..." for line in body.splitlines())


def refresh(files: list[str]) -> int:
    outputs = recorded()
    for name in files:
        path = Path(name)
        text = path.read_text()

        def sub(m: re.Match) -> str:
            head, body = m[1], m[2]
            if _head(head) not in outputs:
                return m[0]
            if _excerpt(body):
                print(f"{name}: excerpt left alone: {head}", file=sys.stderr)
                return m[0]
            return f"```console\n{head}\n{outputs[_head(head)]}```"

        new = BLOCK.sub(sub, text)
        if new != text:
            path.write_text(new)
            print(f"refreshed {name}", file=sys.stderr)
    return 0


def drift(files: list[str]) -> list[str]:
    """Every way the docs and the program disagree (empty: none)."""
    outputs = recorded()
    problems = []
    for name in files:
        for m in BLOCK.finditer(Path(name).read_text()):
            head, body = _head(m[1]), m[2]
            if head not in outputs:
                problems.append(f"{name}: no step of docs/demo.py gives {head!r}: add it to STEPS")
            elif _excerpt(body):
                missing = _not_in_order(body, outputs[head])
                if missing:
                    problems.append(f"{name}: excerpt {head!r}: {missing!r} is not in the recorded output (in order)")
            elif body != outputs[head]:
                problems.append(f"{name}: {head!r} differs from docs/demo-output.md (docs/demo.py --refresh)")
    for step in SNAPSHOT_STEPS:
        head = f"# {step}"
        if head not in outputs:
            problems.append(f"docs/demo-output.md: no output for the snapshot step {step!r}")
        elif outputs[head] != run_on_snapshot(step):
            problems.append(f"docs/demo-output.md: {step!r} gives other output on {SNAPSHOT} now "
                            "(docs/demo.py --snapshot, then --refresh)")
    return problems


def _not_in_order(excerpt: str, full: str) -> str | None:
    """The first line of *excerpt* (not a "..." line) not found in *full* after the one before it."""
    lines = full.splitlines()
    at = 0
    for line in excerpt.splitlines():
        if line.strip().lstrip("│├└─ ").strip() in ("...", ""):
            continue
        try:
            at = lines.index(line, at) + 1
        except ValueError:
            return line
    return None


def run_on_snapshot(step: str) -> str:
    """*step*'s output as the demo records it, from the committed snapshot (no lab)."""
    sys.path.insert(0, str(REPO / "src"))
    from vfioctl.cli import main as vfioctl

    out, err = io.StringIO(), io.StringIO()
    argv = ["--root", str(REPO / SNAPSHOT), *step.split()[1:]]
    with redirect_stdout(out), redirect_stderr(err):
        rc = vfioctl(argv)
    text = (out.getvalue() + err.getvalue()).rstrip()
    return f"{text}\n" + (f"(exit {rc})\n" if rc else "")


def from_snapshot() -> int:
    path = REPO / "docs" / "demo-output.md"
    text = path.read_text()
    for step in SNAPSHOT_STEPS:
        head = f"# {step}"
        text = BLOCK.sub(lambda m: f"```console\n{head}\n{run_on_snapshot(step)}```" if m[1] == head else m[0], text)
    path.write_text(text)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["--refresh"]:
        return refresh(sys.argv[2:])
    if sys.argv[1:2] == ["--snapshot"]:
        return from_snapshot()
    if sys.argv[1:2] == ["--check"]:
        problems = drift(sys.argv[2:])
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    sys.path.insert(0, str(REPO / "tests" / "vm"))
    # lazy: the lab (QEMU) only for a lab run; --refresh, --snapshot and --check need none of it
    from lab import VGA2, Lab

    # Not shown: the lab's second std VGA (test_hostuse's) is kept off bochs-drm while the
    # single-GPU hand-off runs (loading bochs would bind it too, and its fb would stay when the
    # console's goes), by a driver_override no driver matches, cleared once 00:01.0 is back.
    override = f"/sys/bus/pci/devices/{VGA2}/driver_override"
    before = {"modprobe bochs": f"echo vfioctl-lab-none > {override}"}
    after = {"vfioctl restore 0000:00:01.0": f"echo > {override}"}
    lab = Lab.boot(repo=REPO, python=sys.executable)
    try:
        lab.sh("mkdir -p /etc/vfioctl && cat > /etc/vfioctl/vfioctl.toml", input=CONFIG, check=True)
        lab.sh("cat > /tmp/select.toml", input=SELECT, check=True)
        for step in STEPS:
            if isinstance(step, tuple):
                _, src, dst = step
                r = lab.sh(f"base64 -w0 {src}", timeout=300, check=True)
                (REPO / dst).write_bytes(base64.b64decode(r.out))
                print(f"<!-- {src} copied to {dst} -->\n")
                continue
            for head, hidden in before.items():
                if step.startswith(head):
                    lab.sh(hidden, check=True)
            if step.startswith("vfioctl "):
                r = lab.vfioctl(step[len("vfioctl "):], timeout=300)
            else:
                r = lab.sh(step)
            for head, hidden in after.items():
                if step.startswith(head):
                    lab.sh(hidden, check=True)
            print(f"```console\n# {step}")
            text = (r.out + r.err).rstrip()
            print(text)
            if r.rc:
                print(f"(exit {r.rc})")
            print("```\n")
        lab.vfioctl("restore --all", timeout=300)
    finally:
        lab.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
