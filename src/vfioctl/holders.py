"""Which processes (VMs) hold a VFIO group open.

A VM manager that opened ``/dev/vfio/N`` holds the group; unbinding a device
of that group then blocks in the kernel until the VM lets go.  We find holders
by reading each process's open files (``/proc/PID/fd``), and name the VM from
QEMU's ``-name guest=NAME`` (or ``-name NAME``) where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfioctl.errors import VfioctlError
from vfioctl.host import Host


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    vm_name: str | None
    group: int

    def to_dict(self) -> dict:
        return {"pid": self.pid, "command": self.command, "vm_name": self.vm_name, "group": self.group}

    def describe(self) -> str:
        vm = f" (VM {self.vm_name})" if self.vm_name else ""
        return f"PID {self.pid} {self.command}{vm}"


def group_holders(host: Host, groups: set[int] | None = None) -> list[Holder]:
    """Processes with /dev/vfio/N open, for N in *groups* (all groups when None)."""
    out: list[Holder] = []
    for pid in host.listdir("/proc"):
        if not pid.isdigit():
            continue
        held: set[int] = set()
        try:
            fds = host.listdir(f"/proc/{pid}/fd")
        except VfioctlError:
            # another user's process: only root sees its files (status still works unprivileged;
            # restore, which relies on this, needs root anyway)
            continue
        for fd in fds:
            target = _readlink(host, f"/proc/{pid}/fd/{fd}")
            if target and target.startswith("/dev/vfio/"):
                n = target[len("/dev/vfio/"):]
                if n.isdigit() and (groups is None or int(n) in groups):
                    held.add(int(n))
        if not held:
            continue
        argv = host.read_bytes(f"/proc/{pid}/cmdline", default=b"").split(b"\0")
        args = [a.decode("utf-8", "replace") for a in argv if a]
        comm = host.read(f"/proc/{pid}/comm", default="") or (args[0].rsplit("/", 1)[-1] if args else "?")
        vm = vm_name_from_args(args)
        for g in sorted(held):
            out.append(Holder(int(pid), comm, vm, g))
    out.sort(key=lambda h: (h.group, h.pid))
    return out


def _readlink(host: Host, path: str) -> str | None:
    import os

    try:
        return os.readlink(host.path(path))
    except OSError:
        return None


def vm_name_from_args(args: list[str]) -> str | None:
    """QEMU's VM name: ``-name guest=web1,debug-threads=on`` or ``-name web1``."""
    for i, a in enumerate(args):
        if a in ("-name", "--name") and i + 1 < len(args):
            val = args[i + 1]
            parts = _split_qemu_opts(val)
            for p in parts:
                if p.startswith("guest="):
                    return p[6:]
            if parts and "=" not in parts[0]:
                return parts[0]
    return None


def _split_qemu_opts(val: str) -> list[str]:
    """Split on commas, where ',,' is an escaped comma (QEMU's option syntax)."""
    out, cur, i = [], "", 0
    while i < len(val):
        if val[i] == ",":
            if i + 1 < len(val) and val[i + 1] == ",":
                cur += ","
                i += 2
                continue
            out.append(cur)
            cur = ""
        else:
            cur += val[i]
        i += 1
    out.append(cur)
    return out
