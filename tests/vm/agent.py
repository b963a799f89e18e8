"""The VM lab's in-guest agent: runs the harness's commands as root in the guest's chroot.

Started by the initramfs /init (see lab.py) with the host's own Python.  It reads one JSON
object per line from the virtio-serial port named ``vfioctl.agent`` and answers each with one
line, one request at a time:

  {"id": 1, "cmd": "shell text", "timeout": 60, "env": {...}, "cwd": "...", "input": "..."}
    -> {"id": 1, "rc": 0, "out": "...", "err": "...", "secs": 0.01, "timed_out": false}
  {"id": 2, "op": "ping"}                    -> {"id": 2, "op": "pong", "pid": ..., "uptime": ...}
  {"id": 3, "op": "read", "path": "/x"}      -> {"id": 3, "rc": 0, "out": "...", "err": ""}
  {"id": 4, "op": "stat", "path": "/x"}      -> {"id": 4, "exists": true, "link": "..."|null}
  {"id": 5, "op": "pci"}                     -> {"id": 5, "devices": {bdf: {...}}}
  {"id": 6, "op": "poweroff"}                -> {"id": 6, "op": "poweroff"}, then exit 0: /init
                                                 powers the machine off

Commands run as ``/bin/sh -c cmd`` in a new session (process group); on timeout the whole group
is killed (rc 124 unless the kill gave another, timed_out true).  Output goes to temp files, not
pipes, so a command that leaves a background child holding stdout still returns.  Stdlib only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

MAX_OUTPUT = 16 << 20  # bytes of stdout/stderr returned; the rest is cut with a note
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
    # The repo is on a read-only 9p mount: don't try to write .pyc files there.
    "PYTHONDONTWRITEBYTECODE": "1",
    "TMPDIR": "/tmp",
}


def log(msg: str) -> None:
    print(f"agent: {msg}", file=sys.stderr, flush=True)


def find_port(name: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for path in glob.glob("/sys/class/virtio-ports/*/name"):
            try:
                with open(path) as f:
                    if f.read().strip() == name:
                        return "/dev/" + os.path.basename(os.path.dirname(path))
            except OSError:
                continue
        if time.monotonic() > deadline:
            raise SystemExit(f"agent: no virtio port named {name}")
        time.sleep(0.05)


class Channel:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.buf = b""

    def readline(self) -> bytes:
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                return line
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                # The host side is not connected (yet, or any more): wait for it.
                time.sleep(0.05)
                continue
            self.buf += chunk

    def send(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        while data:
            # virtio_console writes at most 32 KiB per call.
            n = os.write(self.fd, data)
            data = data[n:]


def _read_capped(f: Any) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    data = f.read(MAX_OUTPUT)
    text = data.decode(errors="replace")
    if size > MAX_OUTPUT:
        text += f"\n[agent: output cut at {MAX_OUTPUT} of {size} bytes]\n"
    return text


def run_command(req: dict[str, Any], default_cwd: str) -> dict[str, Any]:
    cmd = req["cmd"]
    timeout = float(req.get("timeout") or 120)
    env = {**BASE_ENV, **{str(k): str(v) for k, v in (req.get("env") or {}).items()}}
    cwd = req.get("cwd") or default_cwd
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as inp:  # fmt: skip
        if req.get("input") is not None:
            inp.write(str(req["input"]).encode())
            inp.seek(0)
        t0 = time.monotonic()
        timed_out = False
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", cmd],
                stdin=inp,
                stdout=out,
                stderr=err,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            return {"rc": 127, "out": "", "err": f"agent: cannot start /bin/sh in {cwd}: {e}\n",
                    "secs": 0.0, "timed_out": False}  # fmt: skip
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            rc = 124
        secs = time.monotonic() - t0
        return {"rc": rc, "out": _read_capped(out), "err": _read_capped(err), "secs": secs,
                "timed_out": timed_out}  # fmt: skip


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def pci_snapshot() -> dict[str, dict[str, Any]]:
    base = "/sys/bus/pci/devices"
    devices = {}
    for bdf in sorted(os.listdir(base)):
        d = f"{base}/{bdf}"
        link = f"{d}/driver"
        override = _read(f"{d}/driver_override")
        group = f"{d}/iommu_group"
        numvfs = _read(f"{d}/sriov_numvfs")
        devices[bdf] = {
            "driver": os.path.basename(os.readlink(link)) if os.path.islink(link) else None,
            "driver_override": None if override in (None, "", "(null)") else override,
            "iommu_group": os.path.basename(os.readlink(group)) if os.path.islink(group) else None,
            "vendor": (_read(f"{d}/vendor") or "")[2:],
            "device": (_read(f"{d}/device") or "")[2:],
            "class": (_read(f"{d}/class") or "")[2:],
            "sriov_numvfs": int(numvfs) if numvfs is not None else None,
            "physfn": os.path.basename(os.readlink(f"{d}/physfn"))
            if os.path.islink(f"{d}/physfn")
            else None,
        }
    return devices


def handle(req: dict[str, Any], cwd: str) -> dict[str, Any] | None:
    op = req.get("op")
    if op is None and "cmd" in req:
        return run_command(req, cwd)
    if op == "ping":
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return {"op": "pong", "pid": os.getpid(), "uptime": uptime}
    if op == "read":
        try:
            with open(req["path"], "rb") as f:
                return {"rc": 0, "out": f.read().decode(errors="replace"), "err": ""}
        except OSError as e:
            return {"rc": 1, "out": "", "err": str(e)}
    if op == "stat":
        path = req["path"]
        link = os.readlink(path) if os.path.islink(path) else None
        return {"exists": os.path.lexists(path), "link": link}
    if op == "pci":
        return {"devices": pci_snapshot()}
    if op == "poweroff":
        return {"op": "poweroff"}
    return {"error": f"unknown request {req!r}"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", default="vfioctl.agent", help="virtio-serial port name")
    ap.add_argument("--cwd", default="/", help="default working directory of commands")
    args = ap.parse_args()
    path = find_port(args.port)
    chan = Channel(path)
    log(f"ready on {path} (pid {os.getpid()}, python {sys.version.split()[0]})")
    while True:
        line = chan.readline()
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            rid = req.get("id")
        except (ValueError, AttributeError) as e:
            chan.send({"id": None, "error": f"bad request: {e}"})
            continue
        try:
            reply = handle(req, args.cwd)
        except Exception as e:  # one bad request must not kill the lab
            reply = {"error": f"{type(e).__name__}: {e}"}
        chan.send({"id": rid, **reply})
        if req.get("op") == "poweroff":
            os.sync()
            log("poweroff requested")
            return 0


if __name__ == "__main__":
    sys.exit(main())
