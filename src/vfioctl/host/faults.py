"""Fault injection and the write trace for the rollback and crash-recovery tests.

Each is off unless its environment variable is set; the kernel-write path calls them.
"""

from __future__ import annotations

import errno
import os
import signal
import stat as _stat

from vfioctl.base.errors import InvalidInput, from_oserror
from vfioctl.host import env


def _trace(abspath: str, value: str) -> None:
    """Append each kernel write to $VFIOCTL_TRACE_WRITES (tests count writes with it).

    The trace file is opened with O_NOFOLLOW, O_APPEND and O_NONBLOCK, and must be a regular
    file: a planted link is refused, a FIFO never blocks the write (InvalidInput, 65)."""
    trace = env.trace_writes()
    if trace:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(trace, flags, 0o600)
        except OSError as err:
            if err.errno == errno.ENXIO:  # a FIFO nobody reads
                raise InvalidInput(f"VFIOCTL_TRACE_WRITES={trace} is not a regular file; unset it or fix it") from None
            raise from_oserror(err, "open the write trace", trace, creating=True) from err
        try:
            if not _stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidInput(f"VFIOCTL_TRACE_WRITES={trace} is not a regular file; unset it or fix it")
            os.write(fd, f"{abspath}\t{value.strip()}\n".encode())
        except OSError as err:
            raise from_oserror(err, "write the write trace", trace) from err
        finally:
            os.close(fd)


_WRITES_DONE = 0


_WRITES_TRIED = 0


def _fault_fail(abspath: str) -> None:
    """Fault injection for the rollback tests: $VFIOCTL_FAULT_FAIL_AT=k makes the k-th kernel
    write of this process fail (EIO) without writing, as a refusing kernel would.  Tests only."""
    global _WRITES_TRIED
    _WRITES_TRIED += 1
    k = env.fault_fail_at()
    if k is not None and _WRITES_TRIED == k:
        raise from_oserror(OSError(errno.EIO, os.strerror(errno.EIO)), "write (fault injected) to", abspath)


def _fault_point() -> None:
    """Fault injection for the crash-recovery tests: $VFIOCTL_FAULT_KILL_AFTER=k makes
    the process SIGKILL itself right after its k-th kernel write (what `kill -9` at the
    worst moment does).  Never set it outside tests."""
    global _WRITES_DONE
    _WRITES_DONE += 1
    k = env.fault_kill_after()
    if k is not None and _WRITES_DONE >= k:
        os.kill(os.getpid(), signal.SIGKILL)
