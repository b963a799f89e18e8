"""Which processes (VMs) hold a VFIO group open.

A VM manager that opened ``/dev/vfio/N`` holds the group; unbinding a device
of that group then blocks in the kernel until the VM lets go.  We find holders
by reading each process's open files (``/proc/PID/fd``), and name the VM from
QEMU's ``-name guest=NAME`` (or ``-name NAME``) where there is one.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfioctl.base.errors import VfioctlError
from vfioctl.base.names import group_number
from vfioctl.base.text import is_ascii_int, one_line
from vfioctl.host.core import Host


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


def open_files(host: Host, want) -> list[tuple[int, list[str]]]:
    """(pid, [paths]) of the processes with a file open for which ``want(path)`` is true.

    Processes another user owns are skipped when we cannot see their files (status
    works unprivileged; the commands that rely on holders run as root anyway)."""
    out = []
    for pid in host.listdir("/proc"):
        if not is_ascii_int(pid):
            continue
        try:
            fds = host.listdir(f"/proc/{pid}/fd")
        except VfioctlError:
            continue
        hits = []
        for fd in fds:
            try:
                target = host.readlink(f"/proc/{pid}/fd/{fd}")
            except VfioctlError:
                continue
            if target and want(target) and target not in hits:
                hits.append(target)
        if hits:
            out.append((int(pid), hits))
    return out


def describe_process(host: Host, pid: int) -> tuple[str, str | None]:
    """(command name, VM name from QEMU's -name) of a process."""
    argv = host.read_bytes(f"/proc/{pid}/cmdline", 65536, default=b"").split(b"\0")
    args = [a.decode("utf-8", "replace") for a in argv if a]
    comm = host.read(f"/proc/{pid}/comm", default="") or (args[0].rsplit("/", 1)[-1] if args else "?")
    # any user names their own processes (prctl PR_SET_NAME, argv): one escaped line
    vm = vm_name_from_args(args)
    return one_line(comm, 64), (one_line(vm, 200) if vm is not None else None)


def group_holders(host: Host, groups: set[int] | None = None) -> list[Holder]:
    """Processes with /dev/vfio/N open, for N in *groups* (all groups when None)."""

    def want(target: str) -> bool:
        if not target.startswith("/dev/vfio/"):
            return False
        n = group_number(target[len("/dev/vfio/"):])
        return n is not None and (groups is None or n in groups)

    out: list[Holder] = []
    for pid, paths in open_files(host, want):
        comm, vm = describe_process(host, pid)
        for g in sorted({int(p[len("/dev/vfio/"):]) for p in paths}):  # want() took only group numbers
            out.append(Holder(pid, comm, vm, g))
    out.sort(key=lambda h: (h.group, h.pid))
    return out


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
