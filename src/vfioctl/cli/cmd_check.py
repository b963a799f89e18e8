"""vfioctl check"""

from __future__ import annotations

import argparse

from vfioctl.base.text import escape
from vfioctl.cli import Context, common_options

EPILOG = """\
Each line is one finding: PASS, WARN, FAIL or INFO, what was checked, and the
evidence (the file read and the value found).  FAIL and WARN come with the
exact commands that fix them on this distribution.

exit status: 0 when nothing fails (warnings allowed), 1 when something fails.

examples:
  vfioctl check
  vfioctl check --json                 schema vfioctl.check/1
  vfioctl check --root host.tar.gz     a host captured with `vfioctl snapshot`
"""

# plain ANSI: pulling in rich for four colours would double start-up time
_COLOURS = {"pass": "\033[32m", "warn": "\033[33m", "fail": "\033[1;31m", "info": "\033[36m"}
_RESET = "\033[0m"


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    p.epilog = EPILOG
    p.set_defaults(func=run_check)


def render(report, colour: bool = False) -> str:
    """The text form of a :class:`vfioctl.report.checks.Report` (with *colour*: escaped, then
    coloured, as the printer shows it on a terminal)."""
    width = max([len(f.title) for f in report.findings] + [20]) + 2
    lines = []
    for f in report.findings:
        lines.append(f"{f.status.upper():<5} {f.title:<{width}}{f.evidence}")
        if f.fix and f.status in ("warn", "fail"):
            fix_lines = f.fix.splitlines()
            lines.append(f"      fix: {fix_lines[0]}")
            lines.extend(f"           {more}" for more in fix_lines[1:])
    s = report.summary()
    verdict = {
        "fail": "this host is NOT ready for device assignment",
        "warn": "this host is ready for device assignment, with warnings",
    }.get(report.worst, "this host is ready for device assignment")
    lines.append("")
    lines.append(f"{s['pass']} pass, {s['warn']} warn, {s['fail']} fail: {verdict}")
    text = "\n".join(lines)
    if colour:
        text = "\n".join(style(line) for line in escape(text, keep_newlines=True).split("\n"))
    return text


def style(line: str) -> str:
    """A finding's status label in its colour (applied to a line already escaped)."""
    label = line[:5].strip().lower()
    if label in _COLOURS and line[5:6] == " ":
        return f"{_COLOURS[label]}{line[:5]}{_RESET}{line[5:]}"
    return line


def run_check(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.report.checks import run_checks

    report = run_checks(ctx.host)
    if ctx.json:
        ctx.emit_json(report.to_dict())
    else:
        ctx.print(render(report), style=style if ctx.colour() else None)
    return 1 if report.worst == "fail" else 0
