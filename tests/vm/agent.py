"""The VM lab's in-guest agent: runs the harness's commands as root in the guest's chroot.

Started by the initramfs /init (see lab.py) with the host's own Python.  It reads one JSON
object per line from the virtio-serial port named ``vfioctl.agent`` and answers each with one
line, one request at a time:

  {"id": 1, "cmd": "shell text", "timeout": 60, "env": {...}, "cwd": "...", "input": "..."}
    -> {"id": 1, "rc": 0, "out": "...", "err": "...", "secs": 0.01, "timed_out": false}
  {"id": 2, "op": "ping"}                    -> {"id": 2, "op": "pong", "pid": ..., "uptime": ...}
  {"id": 3, "op": "read", "path": "/x"}      -> {"id": 3, "rc": 0, "out": "...", "err": ""}
  {"id": 4, "op": "stat", "path": "/x"}      -> {"id": 4, "exists": true, "link": "..."|null}
  {"id": 5, "op": "pci", "brief": false}     -> {"id": 5, "devices": {bdf: {"driver": ...}}}
  {"id": 6, "op": "poweroff"}                -> {"id": 6, "op": "poweroff"}, then exit 0: /init
                                                 powers the machine off

Commands run as ``/bin/sh -c cmd`` in a new session (process group); on timeout the whole group
is killed (rc 124, timed_out true).  A command killed by signal N reports rc 128+N, as a shell
does.  Output goes to temp files, not pipes, so a command that leaves a background child holding
stdout still returns.  Stdlib only.

Imports are few on purpose: under QEMU's TCG, Python runs ~30x slower than natively, and
subprocess + tempfile + argparse + glob cost ~3 s of the lab's boot.  Hence fork/exec by hand.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time

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
    base = "/sys/class/virtio-ports"
    while True:
        for port in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            try:
                with open(f"{base}/{port}/name") as f:
                    if f.read().strip() == name:
                        return f"/dev/{port}"
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

    def send(self, obj: dict) -> None:
        data = (json.dumps(obj) + "\n").encode()
        while data:
            # virtio_console writes at most 32 KiB per call.
            n = os.write(self.fd, data)
            data = data[n:]


_tmp_serial = 0


def _tmpfile() -> int:
    """An anonymous read-write file in /tmp (a tmpfs in the lab)."""
    global _tmp_serial
    try:
        return os.open("/tmp", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        _tmp_serial += 1
        path = f"/tmp/.vfioctl-agent-{os.getpid()}-{_tmp_serial}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
        os.unlink(path)
        return fd


def _read_capped(fd: int) -> str:
    size = os.lseek(fd, 0, os.SEEK_END)
    os.lseek(fd, 0, os.SEEK_SET)
    chunks, left = [], min(size, MAX_OUTPUT)
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    text = b"".join(chunks).decode(errors="replace")
    if size > MAX_OUTPUT:
        text += f"\n[agent: output cut at {MAX_OUTPUT} of {size} bytes]\n"
    return text


def _spawn(cmd: str, env: dict[str, str], cwd: str, fds: tuple) -> int:
    """fork + exec /bin/sh -c cmd in a new session; returns the pid (= its process group)."""
    pid = os.fork()
    if pid == 0:  # child: only os calls, then exec or _exit
        try:
            os.setsid()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)  # dup2 clears O_CLOEXEC on the copies
            os.chdir(cwd)
            os.closerange(3, 1 << 16)
            # Python ignores SIGPIPE (and SIGXFSZ); commands expect the defaults.
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                signal.signal(sig, signal.SIG_DFL)
            os.execve("/bin/sh", ["/bin/sh", "-c", cmd], env)
        except BaseException as e:  # noqa: BLE001 - the child must never return
            try:
                os.write(2, f"agent: cannot run /bin/sh in {cwd}: {e}\n".encode())
            finally:
                os._exit(127)
    return pid


def _wait(pid: int, timeout: float) -> int | None:
    """The wait status of pid, or None if it outlived timeout."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if pidfd is not None:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                poller.poll(max(1, int(left * 1000)))
            else:
                time.sleep(min(left, 0.01))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def run_command(req: dict, default_cwd: str) -> dict:
    cmd = req["cmd"]
    timeout = float(req.get("timeout") or 120)
    env = {**BASE_ENV, **{str(k): str(v) for k, v in (req.get("env") or {}).items()}}
    cwd = req.get("cwd") or default_cwd
    fds = (_tmpfile(), _tmpfile(), _tmpfile())
    try:
        if req.get("input") is not None:
            os.write(fds[0], str(req["input"]).encode())
            os.lseek(fds[0], 0, os.SEEK_SET)
        t0 = time.monotonic()
        pid = _spawn(cmd, env, cwd, fds)
        status = _wait(pid, timeout)
        timed_out = status is None
        if timed_out:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            rc = 124
        else:
            rc = os.waitstatus_to_exitcode(status)
            if rc < 0:
                rc = 128 - rc
        secs = time.monotonic() - t0
        return {"rc": rc, "out": _read_capped(fds[1]), "err": _read_capped(fds[2]), "secs": secs,
                "timed_out": timed_out}  # fmt: skip
    finally:
        for fd in fds:
            os.close(fd)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _link_name(path: str) -> str | None:
    return os.path.basename(os.readlink(path)) if os.path.islink(path) else None


def pci_snapshot(brief: bool = False) -> dict[str, dict]:
    """Every PCI function's binding; brief: driver, driver_override and sriov_numvfs only."""
    base = "/sys/bus/pci/devices"
    devices = {}
    for bdf in sorted(os.listdir(base)):
        d = f"{base}/{bdf}"
        override = _read(f"{d}/driver_override")
        numvfs = _read(f"{d}/sriov_numvfs")
        dev = devices[bdf] = {
            "driver": _link_name(f"{d}/driver"),
            "driver_override": None if override in (None, "", "(null)") else override,
            "sriov_numvfs": int(numvfs) if numvfs is not None else None,
        }
        if not brief:
            dev["iommu_group"] = _link_name(f"{d}/iommu_group")
            dev["vendor"] = (_read(f"{d}/vendor") or "")[2:]
            dev["device"] = (_read(f"{d}/device") or "")[2:]
            dev["class"] = (_read(f"{d}/class") or "")[2:]
            dev["physfn"] = _link_name(f"{d}/physfn")
    return devices


def handle(req: dict, cwd: str) -> dict | None:
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
        return {"devices": pci_snapshot(bool(req.get("brief")))}
    if op == "poweroff":
        return {"op": "poweroff"}
    return {"error": f"unknown request {req!r}"}


def main(argv: list[str]) -> int:
    """agent.py [--port NAME] [--cwd DIR]: serve the virtio port NAME (default vfioctl.agent)."""
    opts = {"--port": "vfioctl.agent", "--cwd": "/"}
    it = iter(argv)
    for arg in it:
        if arg not in opts:
            raise SystemExit(f"agent: unknown argument {arg!r}; {main.__doc__}")
        opts[arg] = next(it)
    port, cwd = opts["--port"], opts["--cwd"]
    path = find_port(port)
    chan = Channel(path)
    with open("/proc/uptime") as f:
        uptime = f.read().split()[0]
    log(f"[{uptime}] ready on {path} (pid {os.getpid()}, python {sys.version.split()[0]})")
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
            reply = handle(req, cwd)
        except Exception as e:  # one bad request must not kill the lab
            reply = {"error": f"{type(e).__name__}: {e}"}
        chan.send({"id": rid, **reply})
        if req.get("op") == "poweroff":
            os.sync()
            log("poweroff requested")
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
