"""Processes with a device node of a PCI function open or mapped.

A function's device nodes are the character and block devices the kernel registered below
it in sysfs: ``/sys/dev/char/MAJ:MIN`` and ``/sys/dev/block/MAJ:MIN`` link to each one's
sysfs folder (Documentation/ABI/stable/sysfs-dev), and the nearest PCI function on that
path owns it: a DRM card and render node, a sound card's PCM and control nodes, the
evdev and hidraw nodes of a USB keyboard below a USB controller, a serial port's tty,
an NVMe controller's char device and its namespaces, infiniband verbs, misc devices.  An
NVMe multipath head lives under the subsystem, not the function: its block devices come
from :func:`vfioctl.usage.inuse.block_devices`.  NVIDIA's proprietary driver registers
``/dev/nvidiaN`` (major 195) outside sysfs: ``/proc/driver/nvidia/gpus/ADDR/information``
names the minor.

Who has them open is the ``open-nodes`` probe (:mod:`vfioctl.host.opens`): every
process's ``/proc/PID/fd`` and ``/proc/PID/maps``, compared by device number, as lsof and
fuser do; a snapshot carries its answer.
"""

from __future__ import annotations

import re

from vfioctl.host import probes
from vfioctl.host.core import Host
from vfioctl.host.opens import scan_open_nodes
from vfioctl.pci.device import owner_of
from vfioctl.pci.function import parse_uevent
from vfioctl.usage.record import PROCESS, Use, not_known

#: the snapshot reading the new host-use readers need (meta.json ``captured``)
READING = "host-use"

_DEVNO = re.compile(r"[0-9]{1,4}:[0-9]{1,7}")
_NV_MINOR = re.compile(r"Device Minor:[ \t]*([0-9]{1,3})")
NVIDIA_GPUS = "/proc/driver/nvidia/gpus"


def _all_nodes(host: Host) -> dict[str, dict[str, str]]:
    """PCI address -> {"c:226:128": "/dev/dri/renderD128", ...} for every node sysfs lists."""

    def compute() -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for kind, folder in (("c", "/sys/dev/char"), ("b", "/sys/dev/block")):
            for name in host.listdir(folder):
                if not _DEVNO.fullmatch(name):
                    continue
                target = host.readlink(f"{folder}/{name}") or ""
                owner = owner_of(target)
                if owner is None:
                    continue
                out.setdefault(owner, {})[f"{kind}:{name}"] = target
        return out

    return host.cached("usage:nodes", compute, volatile=True)  # type: ignore[no-any-return]


def _node_name(host: Host, sysfs_rel: str, devno: str) -> str:
    """/dev/DEVNAME from the node's uevent (``DEVNAME=dri/renderD128``), else the devno."""
    folder = f"/sys/dev/{'char' if devno[0] == 'c' else 'block'}/{devno[2:]}"
    name = parse_uevent(host.read(f"{folder}/uevent", default="")).get("DEVNAME", "").strip()
    if name and ".." not in name and name.isprintable():
        return f"/dev/{name}"
    return f"{sysfs_rel.rsplit('/', 1)[-1]} ({devno})"


def function_nodes(host: Host, address: str, blocks: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """{"c:226:128": "/dev/dri/renderD128", ...}: the device nodes of the function *address*,
    its block devices *blocks* (multipath heads included) and NVIDIA's minor."""
    found = _all_nodes(host).get(address, {})
    out = {devno: _node_name(host, rel, devno) for devno, rel in sorted(found.items())}
    for b in blocks:
        devno = host.read(f"/sys/class/block/{b}/dev", default="")
        if _DEVNO.fullmatch(devno):
            out.setdefault(f"b:{devno}", f"/dev/{b}")
    info = host.read(f"{NVIDIA_GPUS}/{address}/information", default="")
    m = _NV_MINOR.search(info)
    if m:
        out.setdefault(f"c:195:{int(m[1])}", f"/dev/nvidia{int(m[1])}")
    return out


def open_nodes(host: Host) -> dict | None:
    """The ``open-nodes`` probe's answer, once per state (None when it gave none)."""
    got = host.cached("usage:open-nodes", lambda: host.probe("open-nodes"), volatile=True)
    return got if isinstance(got, dict) else None


def process_uses(host: Host, address: str, nodes: dict[str, str]) -> list[Use]:
    """A :data:`PROCESS` use per process and node of *nodes* it has open or mapped; "not known"
    when the scan could not see every process."""
    if not nodes:
        return []
    names = ", ".join(list(nodes.values())[:4]) + (" ..." if len(nodes) > 4 else "")
    what = f"whether a process holds {names}"
    why = host.not_captured(READING)
    if why:
        return [not_known(what, why)]
    scan = open_nodes(host)
    if scan is None or not isinstance(scan.get("opens"), list):
        return [not_known(what, "the scan of /proc/PID/fd gave no answer")]
    out: list[Use] = []
    seen: set[tuple[int, str]] = set()
    for row in scan["opens"]:
        if not (isinstance(row, list) and len(row) == 5):
            continue
        pid, comm, path, devno, how = row
        if devno not in nodes or not isinstance(pid, int) or (pid, devno) in seen:
            continue
        seen.add((pid, devno))
        comm = str(comm)[:64]
        held, src = (f"has {path} open", "fd") if how == "fd" else (f"maps {path}", "maps")
        out.append(Use(PROCESS, f"PID {pid} ({comm}) {held}", f"/proc/{pid}/{src}: {path} ({devno})",
                       pid=pid, command=comm, node=nodes[devno]))
    if not scan.get("complete", False):
        out.append(not_known(what, str(scan.get("why") or "the scan did not finish")))
    n = scan.get("unreadable")
    if isinstance(n, int) and n > 0:
        out.append(not_known(what, f"the open files of {n} process(es) could not be read "
                                   "(another user's: run as root)", "/proc/PID/fd: permission denied"))
    return out


probes.register("open-nodes", lambda host, key: scan_open_nodes())
