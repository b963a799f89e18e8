"""Run the CLI in-process as a user would: (exit code, stdout, stderr)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

from vfioctl.cli import main


def run(argv: list[str], stdout: object = None) -> tuple[int, str, str]:
    out, err = stdout or io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):  # type: ignore[type-var]
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse usage errors
            rc = int(e.code or 0)
    return rc, (out.getvalue() if isinstance(out, io.StringIO) else ""), err.getvalue()
