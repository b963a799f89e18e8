"""Fault injection and the write trace for the rollback and crash-recovery tests.

Each is off unless its environment variable is set; the kernel-write path calls them.
"""

from __future__ import annotations

import errno
import os
import signal

from vfioctl.base.errors import from_oserror


def _trace(abspath: str, value: str) -> None:
    """Append each kernel write to $VFIOCTL_TRACE_WRITES (tests count writes with it).

    The trace file is opened with O_NOFOLLOW and O_APPEND: a planted link is refused."""
    trace = os.environ.get("VFIOCTL_TRACE_WRITES")
    if trace:
        try:
            fd = os.open(trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise from_oserror(err, "open the write trace", trace) from err
        try:
            os.write(fd, f"{abspath}\t{value.strip()}\n".encode())
        finally:
            os.close(fd)


_WRITES_DONE = 0


_WRITES_TRIED = 0


def _fault_fail(abspath: str) -> None:
    """Fault injection for the rollback tests: $VFIOCTL_FAULT_FAIL_AT=k makes the k-th kernel
    write of this process fail (EIO) without writing, as a refusing kernel would.  Tests only."""
    global _WRITES_TRIED
    _WRITES_TRIED += 1
    k = os.environ.get("VFIOCTL_FAULT_FAIL_AT")
    if k and k.isdigit() and _WRITES_TRIED == int(k):
        raise from_oserror(OSError(errno.EIO, os.strerror(errno.EIO)), "write (fault injected) to", abspath)


def _fault_point() -> None:
    """Fault injection for the crash-recovery tests: $VFIOCTL_FAULT_KILL_AFTER=k makes
    the process SIGKILL itself right after its k-th kernel write (what `kill -9` at the
    worst moment does).  Never set it outside tests."""
    global _WRITES_DONE
    _WRITES_DONE += 1
    k = os.environ.get("VFIOCTL_FAULT_KILL_AFTER")
    if k and k.isdigit() and _WRITES_DONE >= int(k):
        os.kill(os.getpid(), signal.SIGKILL)
