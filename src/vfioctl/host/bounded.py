"""Kernel writes that may block, bounded: an unbind, a driver probe, a bind, a new_id.

Unbinding a device whose driver still has users blocks in the kernel until they let go (a
process with ``/dev/nvidia*`` or a DRM render node open: the driver's remove waits for the
last close), and a write blocked in the kernel cannot be interrupted from the process that
made it (the thread sleeps uninterruptibly; even exit waits for it).  So these writes are made
by a forked child: the parent waits for the child's answer on a pipe for at most the bound,
and on time-out raises :class:`~vfioctl.base.errors.WriteTimedOut` and returns, leaving the
child blocked in the kernel (it exits when the write does; init reaps it).  Measured cost per
write: docs/host-use.md.

The bound is ``$VFIOCTL_UNBIND_TIMEOUT`` seconds (default 10).
"""

from __future__ import annotations

import os
import select
import threading

from vfioctl.base.errors import WriteTimedOut, from_oserror
from vfioctl.host import env

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

ENV = env.UNBIND_TIMEOUT.name
#: the attributes whose write can wait on a driver's users: unbind and the probes
_BOUNDED = ("/unbind", "/bind", "/drivers_probe", "/new_id")


def is_bounded(abspath: str) -> bool:
    return abspath.endswith(_BOUNDED)


def limit_s() -> float:
    """``$VFIOCTL_UNBIND_TIMEOUT`` through its validated reader (seconds, 0.1 to 3600)."""
    return env.unbind_timeout()


def _timed_out(abspath: str, value: str, limit: float, child: str) -> WriteTimedOut:
    return WriteTimedOut(f"writing {value.strip()!r} to {abspath} did not return within {limit:g} s "
                         f"(${ENV}); the kernel is still waiting ({child})")


def bounded_write(real: str, abspath: str, value: str, limit: float) -> None:
    """Write *value* to *real* (the host path of *abspath*) in a child process; raise our error
    for a failed write, :class:`WriteTimedOut` when it does not return within *limit* seconds."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the write and one byte of answer, nothing else (no Python cleanup)
        code = 0
        try:
            os.close(r)
            fd = os.open(real, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as err:
            code = err.errno or 5
        except BaseException:
            code = 5
        try:
            os.write(w, bytes([min(code, 255)]))
        finally:
            os._exit(0)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], limit)
        if not ready:
            raise _timed_out(abspath, value, limit, f"PID {pid} is blocked in the write")
        got = os.read(r, 1)
    finally:
        os.close(r)
    os.waitpid(pid, 0)
    code = got[0] if got else 5
    if code:
        raise from_oserror(OSError(code, os.strerror(code)), f"write {value.strip()!r} to", abspath)


def bounded_call(fn: Callable[[], None], abspath: str, value: str, limit: float) -> None:
    """A simulated kernel write (tests' write hook), bounded the same way: in a thread."""
    box: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as err:  # noqa: B902  (handed to the caller)
            box.append(err)

    t = threading.Thread(target=run, daemon=True, name="vfioctl-write")
    t.start()
    t.join(limit)
    if t.is_alive():
        raise _timed_out(abspath, value, limit, "the simulated write is still running")
    if box:
        raise box[0]
