"""Running a program on this machine: the one subprocess call (bounded, never raising for a
missing program)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run_local(argv: list[str], timeout: float, *, input: str | bytes | None = None,
              text: bool = True) -> tuple[int, Any]:
    """Run a program on this machine: (exit status, output).  The one subprocess call."""
    # argv: the caller's, each call site checked by tests/unit/host/test_process.py
    rc, out, err = run_program(argv, timeout, input=input, text=text)
    if text:
        return rc, (out + err).strip()
    return rc, out


def run_program(argv: list[str], timeout: float, *, input: str | bytes | None = None,
                text: bool = True) -> tuple[int, Any, str]:
    """(exit status, stdout, stderr) of a program on this machine (tools such as graphviz, and
    what :meth:`Host.run` and the live probes run); never raises for a missing program."""
    # lazy: subprocess costs ~4 ms at start-up; reading commands run no program
    import subprocess

    empty: Any = "" if text else b""
    try:
        # argv: the caller's, each call site checked by tests/unit/host/test_process.py
        cp = subprocess.run(argv, input=input, capture_output=True, text=text, timeout=timeout)
    except FileNotFoundError:
        return 127, empty, f"{argv[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, empty, f"{' '.join(argv)} did not finish within {timeout:g} s"
    except OSError as err:
        return 126, empty, f"{argv[0]}: {err.strerror}"
    errtext = cp.stderr if text else cp.stderr.decode("utf-8", "replace")
    return cp.returncode, cp.stdout, errtext
