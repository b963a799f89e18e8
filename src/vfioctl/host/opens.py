"""Which processes have a device node open or mapped: the scan lsof and fuser make.

For every process, ``/proc/PID/fd/*`` (each open file; ``stat`` through the link gives the
node's device number, wherever the node lives) and the ``/dev/...`` lines of
``/proc/PID/maps`` (a node mapped after its descriptor was closed; stat'ed through
``/proc/PID/root``).  Only character and block nodes are kept, less the ones every process
has (memory devices, terminals): the answer is small enough for a snapshot's probes.

The scan is bounded: it stops at *limit_s* seconds or *max_pids* processes and then says it
is incomplete, and it counts the processes whose files it may not read (another user's,
without root): the callers report those as "not known", never as "not open" (STYLE 19).
Measured in the lab and on a desktop: docs/host-use.md.
"""

from __future__ import annotations

import os
import stat
import time

from vfioctl.base.text import is_ascii_int

#: char majors every process holds and no PCI function owns: mem (1: null, zero, random), the
#: controlling terminals (5: tty, console, ptmx) and pseudo-terminals (136-143)
_SKIP_CHAR_MAJORS = frozenset({1, 5, *range(136, 144)})

DEFAULT_LIMIT_S = 5.0
DEFAULT_MAX_PIDS = 200_000


def _devno(st: os.stat_result) -> str | None:
    if stat.S_ISCHR(st.st_mode):
        major = os.major(st.st_rdev)
        if major in _SKIP_CHAR_MAJORS:
            return None
        return f"c:{major}:{os.minor(st.st_rdev)}"
    if stat.S_ISBLK(st.st_mode):
        return f"b:{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    return None


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read(64).decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def scan_open_nodes(limit_s: float = DEFAULT_LIMIT_S, max_pids: int = DEFAULT_MAX_PIDS) -> dict:
    """``{"opens": [[pid, command, path, "c:226:128", "fd" | "maps"], ...], "complete": bool,
    "why": str, "unreadable": N, "processes": N, "seconds": s}`` for the live host."""
    start = time.monotonic()
    me = os.getpid()
    opens: list[list] = []
    unreadable = 0
    scanned = 0
    why = ""
    try:
        pids = [p for p in os.listdir("/proc") if is_ascii_int(p)]
    except OSError as err:
        return {"opens": [], "complete": False, "why": f"/proc could not be listed: {err.strerror}",
                "unreadable": 0, "processes": 0, "seconds": 0.0}
    for pid in pids:
        if int(pid) == me:
            continue
        if scanned >= max_pids or time.monotonic() - start > limit_s:
            why = (f"the scan stopped after {time.monotonic() - start:.1f} s at {scanned} of {len(pids)} "
                   "processes (its bound)")
            break
        scanned += 1
        seen: set[tuple[str, str]] = set()
        comm: list[str] = []

        def found(devno: str | None, path: str, how: str, pid: str = pid) -> None:
            if devno is not None and (devno, path) not in seen:
                seen.add((devno, path))
                if not comm:
                    comm.append(_comm(pid))
                opens.append([int(pid), comm[0], path, devno, how])

        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            continue  # it exited
        except OSError:
            unreadable += 1
            continue
        for fd in fds:
            p = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(p)
                if not target.startswith("/"):
                    continue  # socket:[...], pipe:[...], anon_inode:...
                devno = _devno(os.stat(p))
            except OSError:
                continue
            found(devno, target, "fd")
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                maps = f.read()
        except OSError:
            maps = b""
        if b" /dev/" in maps:
            for line in maps.split(b"\n"):
                i = line.find(b" /dev/")
                if i < 0:
                    continue
                path = line[i + 1:].decode("utf-8", "replace").removesuffix(" (deleted)")
                try:
                    devno = _devno(os.stat(f"/proc/{pid}/root{path}"))
                except OSError:
                    continue
                found(devno, path, "maps")
    seconds = round(time.monotonic() - start, 3)
    return {"opens": opens, "complete": not why, "why": why, "unreadable": unreadable,
            "processes": scanned, "seconds": seconds}
