"""Hot-plug over QMP: ``attach`` hides a device and ``device_add``s it into a running QEMU;
``detach`` ``device_del``s it, waits for the guest to let go, and optionally restores it.

QMP is spoken by QEMU's own client library, ``qemu.qmp`` (PyPI), imported only
here and only when used (``pip install 'vfioctl[qmp]'``).  Its API is asyncio;
the public functions below are synchronous and run one event loop each.

What we verify is QEMU's and the kernel's answer, not the command's return:
the device is listed by ``query-pci`` (or, for a paused machine whose root port
has no secondary bus number yet, under ``/machine/peripheral``), and the QEMU
process on the other end of the socket (its PID from ``SO_PEERCRED``: QMP has
no command for it) holds ``/dev/vfio/N`` (read from ``/proc/PID/fd``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from vfioctl.base.errors import (
    Busy,
    HostNotReady,
    InvalidInput,
    KernelError,
    NotFound,
    Refused,
    VerifyFailed,
    VfioctlError,
)
from vfioctl.base.text import ascii_int
from vfioctl.guest import check_assignable, hostdev_id, is_vfio_driver
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.usage.holders import group_holders

__all__ = ["attach", "detach", "free_ports", "AttachResult", "DetachResult", "QemuRefused", "HOTPLUG_PORT_TYPES"]

#: PCIe ports that take a hot-plugged device in their one slot (QEMU device types).
HOTPLUG_PORT_TYPES = ("pcie-root-port", "ioh3420", "xio3130-downstream")
DEFAULT_TIMEOUT = 10.0
_ID_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"


class QemuRefused(KernelError):
    """QEMU answered a QMP command with an error.  User acts on QEMU's message."""


class BadReply(InvalidInput):
    """The peer on the QMP socket answered with what QEMU never sends (a wrong type, a list
    nested past any PCI topology).  User acts: is QEMU what listens there?"""


#: bridges behind bridges in one query-pci answer: at most one per bus number
_MAX_PCI_DEPTH = 256


def _expect(value: Any, kind: type, what: str, path: str) -> Any:
    """*value* when it is of *kind*, else BadReply naming what the peer sent."""
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    got = "null" if value is None else type(value).__name__
    raise BadReply(f"the peer on QMP socket {path} answered {what} with {got}, not the {kind.__name__} QEMU sends; "
                   "is it QEMU that listens there?", socket=path)


def _require_qmp() -> Any:
    try:
        # lazy: optional dependency (the qmp extra; ~48 ms to import), needed only to talk to a QEMU
        import qemu.qmp as qmp  # noqa: PLC0415  (heavy and optional: only when hot-plugging)
    except ImportError:
        raise HostNotReady(
            "talking to QEMU needs the qemu.qmp package, which is not installed: pip install 'vfioctl[qmp]'"
        ) from None
    return qmp


# ---------------------------------------------------------------- results
@dataclass
class AttachResult:
    address: str
    id: str
    bus: str
    bus_chosen: bool
    group: int
    pid: int | None
    hidden: bool  # vfioctl hid the device for this attach
    listed_by: str  # "query-pci" or "qom-list /machine/peripheral"
    vendor_device: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "schema": "vfioctl.attach/1", "address": self.address, "id": self.id, "bus": self.bus,
            "bus_chosen": self.bus_chosen, "iommu_group": self.group, "qemu_pid": self.pid,
            "hidden_now": self.hidden, "listed_by": self.listed_by, "id_in_guest": self.vendor_device,
            "seconds": round(self.seconds, 3), "notes": self.notes,
        }

    def render(self) -> str:
        lines = []
        if self.hidden:
            lines.append(f"{self.address}: hidden (now on vfio-pci, journaled; origin attach)")
        if self.bus_chosen:
            lines.append(f"chose free hot-plug port {self.bus}")
        pid = f"QEMU PID {self.pid}" if self.pid else "QEMU"
        lines.append(
            f"attached {self.address} as {self.id} on bus {self.bus} in {self.seconds:.2f}s: "
            f"listed by {self.listed_by}; {pid} holds /dev/vfio/{self.group}"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class DetachResult:
    address: str
    id: str
    group: int | None
    pid: int | None
    seconds: float
    restored: Any = None  # engine Result when --restore gave the device back
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "schema": "vfioctl.detach/1", "address": self.address, "id": self.id, "iommu_group": self.group,
            "qemu_pid": self.pid, "seconds": round(self.seconds, 3),
            "restored": self.restored.to_dict() if self.restored is not None else None, "notes": self.notes,
        }

    def render(self) -> str:
        lines = [f"detached {self.address} ({self.id}): DEVICE_DELETED after {self.seconds:.2f}s"]
        if self.restored is not None:
            lines.append(self.restored.render())
        else:
            lines.append(f"{self.address} stays on vfio-pci; `vfioctl restore {self.address}` gives it back to the host")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------- the monitor
def _peer_pid(sock: socket.socket) -> int | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid = struct.unpack("3i", raw)[0]
    return pid or None  # 0: the peer is in another PID namespace


class _Monitor:
    """One QMP session: the client, the QEMU PID, bounded commands with our errors."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.qmp = _require_qmp()
        self.client: Any = None
        self.pid: int | None = None

    async def __aenter__(self) -> "_Monitor":
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise NotFound(f"no QMP socket {self.path} (start QEMU with -qmp unix:{self.path},server=on,wait=off)") from None
        except OSError as err:
            raise HostNotReady(f"cannot use QMP socket {self.path}: {err.strerror}") from None
        if not stat.S_ISSOCK(st.st_mode):
            raise InvalidInput(f"{self.path} is not a unix socket (expected QEMU's -qmp unix:PATH,server=on)")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.path)
            sock.setblocking(False)
        except ConnectionRefusedError:
            sock.close()
            raise HostNotReady(f"nothing listens on QMP socket {self.path}: is the QEMU behind it still running?") from None
        except OSError as err:
            sock.close()
            raise HostNotReady(f"cannot connect to QMP socket {self.path}: {err.strerror or err}") from None
        self.pid = _peer_pid(sock)
        self.client = self.qmp.QMPClient("vfioctl")
        try:
            await asyncio.wait_for(self.client.connect(sock), self.timeout)
        except asyncio.TimeoutError:
            sock.close()
            raise Busy(
                f"no QMP greeting on {self.path} within {self.timeout:g}s: is another client (libvirt, qmp-shell) "
                "connected? QEMU serves one client per -qmp socket"
            ) from None
        except self.qmp.QMPError as err:
            sock.close()
            raise HostNotReady(f"QMP session on {self.path} failed: {err}") from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(), self.timeout)
            except (asyncio.TimeoutError, OSError, self.qmp.QMPError):
                pass

    async def run(self, cmd: str, **args: Any) -> Any:
        try:
            return await asyncio.wait_for(self.client.execute(cmd, args or None), self.timeout)
        except asyncio.TimeoutError:
            raise Busy(f"QEMU did not answer {cmd} within {self.timeout:g}s ({self.path})") from None
        except self.qmp.ExecuteError as err:
            raise QemuRefused(f"QEMU refused {cmd}: {err.error_class}: {_qmp_desc(err)}", command=cmd) from None
        except self.qmp.QMPError as err:
            raise HostNotReady(f"QMP connection to {self.path} failed during {cmd}: {err}") from None

    # ---- QOM helpers
    async def entries(self, container: str) -> list[tuple[str, str]]:
        """(name, type) of each property ``qom-list`` gives for *container*, checked."""
        what = f"qom-list {container}"
        out = []
        for p in _expect(await self.run("qom-list", path=container), list, what, self.path):
            p = _expect(p, dict, what, self.path)
            out.append((_expect(p.get("name"), str, what, self.path), _expect(p.get("type", ""), str, what, self.path)))
        return out

    async def peripherals(self) -> dict[str, str]:
        """id -> QOM type of every device created with an id (``/machine/peripheral``)."""
        out = {}
        for name, t in await self.entries("/machine/peripheral"):
            if t.startswith("child<") and t.endswith(">"):
                out[name] = t[6:-1]
        return out

    async def prop(self, path: str, name: str) -> Any:
        try:
            return await self.run("qom-get", path=path, property=name)
        except QemuRefused:
            return None

    async def used_buses(self) -> set[str]:
        """QOM paths of the buses that have a device on them."""
        used = set()
        for container in ("/machine/peripheral", "/machine/peripheral-anon"):
            try:
                entries = await self.entries(container)
            except QemuRefused:
                continue
            for name, t in entries:
                if t.startswith("child<"):
                    bus = await self.prop(f"{container}/{name}", "parent_bus")
                    if isinstance(bus, str) and bus:
                        used.add(bus)
        return used

    async def pci_devices(self) -> list[dict]:
        """Every function query-pci shows, behind bridges too (each answer's type checked,
        the bridges walked without recursion and at most 256 deep)."""
        what = "query-pci"
        out: list[dict] = []
        todo: list[tuple[Any, int]] = []
        for bus in _expect(await self.run("query-pci"), list, what, self.path):
            todo.append((_expect(bus, dict, what, self.path).get("devices", []), 0))
        while todo:
            devs, depth = todo.pop()
            if depth > _MAX_PCI_DEPTH:
                raise BadReply(f"the peer on QMP socket {self.path} answered query-pci with bridges nested deeper "
                               f"than {_MAX_PCI_DEPTH}, which no PCI topology has", socket=self.path)
            for d in _expect(devs, list, what, self.path):
                d = _expect(d, dict, what, self.path)
                out.append(d)
                bridge = _expect(d.get("pci_bridge") or {}, dict, what, self.path)
                todo.append((bridge.get("devices") or [], depth + 1))
        return out


def _qmp_desc(err: Any) -> str:
    try:
        return str(err.error_message.error.desc)
    except AttributeError:
        return str(err)


async def _free_ports(mon: _Monitor) -> tuple[list[str], list[str]]:
    """(free, busy) hot-pluggable ports, by id."""
    periph = await mon.peripherals()
    ports = sorted((i for i, t in periph.items() if t in HOTPLUG_PORT_TYPES), key=_natural)
    used = await mon.used_buses()
    free: list[str] = []
    busy: list[str] = []
    for pid_ in ports:
        path = f"/machine/peripheral/{pid_}"
        if await mon.prop(path, "hotplug") is False:
            busy.append(pid_)
            continue
        (busy if any(b.startswith(path + "/") for b in used) else free).append(pid_)
    return free, busy


def _natural(s: str) -> tuple:
    return tuple(n if (n := ascii_int(t, 18)) is not None else t for t in re.split(r"([0-9]{1,18})", s))


def free_ports(qmp_socket: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Ids of the hot-pluggable PCIe ports of the QEMU behind *qmp_socket* with an empty slot."""

    async def go() -> list[str]:
        async with _Monitor(qmp_socket, timeout) as mon:
            return (await _free_ports(mon))[0]

    return asyncio.run(go())


# ---------------------------------------------------------------- a synchronous session
class SyncMonitor:
    """A :class:`_Monitor` kept open across the executor's steps, which are synchronous:
    it owns an event loop and runs each QMP exchange to completion on it."""

    def __init__(self, path: str, timeout: float) -> None:
        self.mon = _Monitor(path, timeout)
        self.loop = asyncio.new_event_loop()

    def __enter__(self) -> "SyncMonitor":
        try:
            self.loop.run_until_complete(self.mon.__aenter__())
        except BaseException:
            self.loop.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.loop.run_until_complete(self.mon.__aexit__(*exc))
        finally:
            self.loop.close()

    @property
    def pid(self) -> int | None:
        return self.mon.pid

    @property
    def path(self) -> str:
        return self.mon.path

    def call(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


# ---------------------------------------------------------------- steps
import re

from vfioctl.iommu.groups import IommuGroup
from vfioctl.iommu.roles import ROLE_BRIDGE, driver_allows_assignment
from vfioctl.ops import session as engine
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.steps.base import Check, Exec, Step


def _monitor(x: Exec) -> SyncMonitor:
    mon = x.qmp
    if mon is None:
        raise VfioctlError("internal error: a QMP step ran without a QMP session")
    return mon  # type: ignore[return-value]


class QmpStep(Step):
    """A QMP command to the QEMU behind *socket*, over the session the executor holds."""

    action = "qmp"
    socket: str

    def describe(self) -> str:
        return f"qmp {self.socket}: {self.value}"


@dataclass
class QmpDeviceAdd(QmpStep):
    """``device_add driver=vfio-pci host=ADDR id=ID bus=BUS`` into a running QEMU; verified by
    QEMU listing it and its process holding /dev/vfio/GROUP; undone by device_del."""

    address: PciAddress
    dev_id: str
    bus: str
    group: int
    socket: str
    timeout: float = DEFAULT_TIMEOUT

    @property
    def value(self) -> str:
        return f"device_add driver=vfio-pci host={self.address} id={self.dev_id} bus={self.bus}"

    def expectation(self) -> str:
        return f"QEMU lists {self.dev_id} and holds /dev/vfio/{self.group}"

    def do(self, x: Exec) -> None:
        mon = _monitor(x)
        try:
            mon.call(mon.mon.run("device_add", driver="vfio-pci", host=str(self.address), id=self.dev_id, bus=self.bus))
        except QemuRefused as err:
            raise QemuRefused(f"{err.message} (adding {self.address} as {self.dev_id} on bus {self.bus})",
                              **err.fields) from None

    def verify(self, x: Exec) -> None:
        mon = _monitor(x)
        listed_by, ids = mon.call(_listed(mon.mon, self.dev_id))
        if listed_by is None:
            raise VerifyFailed(f"after device_add, QEMU lists no device {self.dev_id} "
                               "(neither query-pci nor /machine/peripheral)")
        x.memo[id(self)] = (listed_by, ids)
        mine = mon.call(_wait_holder(x.host, self.group, mon.pid, True, self.timeout))
        if not mine:
            who = f"QEMU PID {mon.pid}" if mon.pid else "no process"
            raise VerifyFailed(f"after device_add of {self.address}, {who} does not hold /dev/vfio/{self.group} "
                               "(read from /proc/PID/fd)")

    def undo(self, x: Exec) -> None:
        mon = _monitor(x)
        mon.call(_undo_add(mon.mon, self.dev_id))


@dataclass
class QmpDeviceDel(QmpStep):
    """``device_del ID`` and wait for QEMU's DEVICE_DELETED (the guest let go).  Cannot be undone:
    a device the guest released is re-added with `vfioctl attach`."""

    address: PciAddress
    dev_id: str
    socket: str
    timeout: float = DEFAULT_TIMEOUT

    @property
    def value(self) -> str:
        return f"device_del id={self.dev_id}"

    def expectation(self) -> str:
        return f"QEMU reports DEVICE_DELETED for {self.dev_id}"

    def do(self, x: Exec) -> None:
        mon = _monitor(x)

        async def go() -> float:
            with mon.mon.client.listener("DEVICE_DELETED") as events:
                await mon.mon.run("device_del", id=self.dev_id)
                try:
                    return await _wait_deleted(events, self.dev_id, self.timeout)
                except asyncio.TimeoutError:
                    raise Busy(
                        f"the guest did not release {self.address} within {self.timeout:g}s (no DEVICE_DELETED "
                        f"for {self.dev_id}): its OS may not handle hot-unplug (or ignores ACPI unplug "
                        f"requests); nothing was changed on the host and {self.address} stays on vfio-pci, "
                        "assigned to the VM; QEMU keeps the unplug request pending"
                    ) from None

        x.memo[id(self)] = mon.call(go())


@dataclass
class QmpReleased(Check):
    """Wait until the QEMU process lets go of /dev/vfio/GROUP (before a restore)."""

    address: PciAddress
    group: int
    timeout: float = DEFAULT_TIMEOUT

    def expectation(self) -> str:
        return f"no process of this QEMU holds /dev/vfio/{self.group}"

    def verify(self, x: Exec) -> None:
        mon = _monitor(x)
        left = mon.call(_wait_holder(x.host, self.group, mon.pid, False, self.timeout))
        if left:
            raise Busy(
                f"{self.address} left the VM, but {left[0].describe()} still holds /dev/vfio/{self.group} after "
                f"{self.timeout:g}s (another device of group {self.group} still attached?); not restored: detach "
                f"the rest, then `vfioctl restore {self.address}`"
            )


# ---------------------------------------------------------------- attach
def _check_id(dev_id: str) -> str:
    if not dev_id or len(dev_id) > 64 or not dev_id[0].isalpha() or any(c not in _ID_OK for c in dev_id):
        raise InvalidInput(f"--id {dev_id[:70]!r}: a QEMU id starts with a letter and has only letters, digits, "
                           "'-', '.', '_'")
    return dev_id


async def _wait_holder(host: Host, group: int, pid: int | None, present: bool, timeout: float) -> list:
    """Wait until *pid* holds (or, with present=False, no longer holds) /dev/vfio/group."""
    deadline = time.monotonic() + timeout
    while True:
        host.invalidate()
        holders = group_holders(host, {group})
        mine = [h for h in holders if pid is None or h.pid == pid]
        if bool(mine) == present:
            return mine
        if time.monotonic() >= deadline:
            return mine
        await asyncio.sleep(0.05)


def attach(
    host: Host,
    spec: str,
    qmp_socket: str,
    *,
    bus: str | None = None,
    dev_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    force: bool = False,
) -> AttachResult:
    """Hide *spec* if needed (journaled, origin "attach") and hot-plug it into the running QEMU:
    one plan, one executor, one rollback."""
    _require_qmp()
    if host.archive:
        raise Refused(f"cannot hot-plug on the snapshot {host.source}: changes need the live host")
    dev = engine.find_device(host, spec)
    dev_id = _check_id(dev_id) if dev_id else hostdev_id(dev.address)
    if bus is not None:
        _check_id(bus)
    t0 = time.monotonic()
    a = str(dev.address)
    with SyncMonitor(qmp_socket, timeout) as mon, engine.Session(host) as session:
        periph = mon.call(mon.mon.peripherals())
        if dev_id in periph:
            raise Refused(f"QEMU behind {qmp_socket} already has a device with id {dev_id} ({periph[dev_id]}); "
                          f"`vfioctl detach {dev.address.short} --qmp {qmp_socket}` first, or give another --id")
        chosen = bus is None
        if bus is None:
            free, busy = mon.call(_free_ports(mon.mon))
            if not free:
                have = f"its ports {', '.join(busy)} are all taken" if busy else "it has no pcie-root-port"
                raise Refused(
                    f"no free hot-plug port in the QEMU behind {qmp_socket}: {have}; start QEMU with a spare "
                    "`-device pcie-root-port,id=rpN,chassis=N,slot=N` per device to hot-plug, or pass --bus"
                )
            bus = free[0]
        elif bus not in periph:
            raise NotFound(f"QEMU behind {qmp_socket} has no device with id {bus!r} to use as --bus "
                           f"(it has: {', '.join(sorted(periph, key=_natural)) or 'none'})")
        _precheck(host, dev)
        group = dev.iommu_group
        assert group is not None
        other = [h for h in group_holders(host, {group}) if mon.pid and h.pid != mon.pid]
        if other:
            raise Refused(f"/dev/vfio/{group} is already held by {other[0].describe()}: a group goes to one VM "
                          f"at a time; detach {dev.address} there first")
        plan = Plan("attach")
        hid = not is_vfio_driver(dev.driver)
        if hid:
            plan.extend(session.plan_hide([dev], force=force, origin="attach"))
            plan.action = "attach"
        else:
            check_assignable(host, [dev])
        add = QmpDeviceAdd(dev.address, dev_id, bus, group, qmp_socket, timeout)
        plan.steps.append(add)
        seen = session.execute(plan, qmp=mon).seen(add)
        listed_by, ids = seen if isinstance(seen, tuple) else ("query-pci", None)
    res = AttachResult(a, dev_id, bus, chosen, group, mon.pid or None, hid, listed_by, ids, time.monotonic() - t0)
    if not mon.pid:
        res.notes.append("the QMP socket's peer PID is unknown (another PID namespace); any holder of the group was accepted")
    return res


def _precheck(host: Host, dev: PciDevice) -> None:
    """Refuse before changing anything: attach hides DEV alone, so the rest of its group must be ready."""
    g = dev.iommu_group
    if g is None:
        raise HostNotReady(f"{dev.address} has no IOMMU group: the IOMMU is off on this host; `vfioctl check` says how to enable it")
    others = [f"{m.device.address} ({m.driver})" for m in IommuGroup(host, g).members()
              if m.role != ROLE_BRIDGE and m.device.address != dev.address and not driver_allows_assignment(m.driver)]
    if others:
        raise Refused(
            f"IOMMU group {g} of {dev.address} also holds {', '.join(others)} on a host driver, and attach hides only "
            f"{dev.address}: run `vfioctl hide {dev.address.short} --group` first"
        )


async def _listed(mon: _Monitor, dev_id: str) -> tuple[str | None, str | None]:
    for d in await mon.pci_devices():
        if d.get("qdev_id") == dev_id:
            i = _expect(d.get("id", {}), dict, "query-pci", mon.path)
            vendor = _expect(i.get("vendor", 0), int, "query-pci", mon.path)
            device = _expect(i.get("device", 0), int, "query-pci", mon.path)
            return "query-pci", f"{vendor & 0xFFFF:04x}:{device & 0xFFFF:04x}"
    # a paused machine's root port has no secondary bus number yet: query-pci cannot see behind it
    if (await mon.peripherals()).get(dev_id) == "vfio-pci":
        return "qom-list /machine/peripheral", None
    return None, None


async def _undo_add(mon: _Monitor, dev_id: str) -> None:
    """Best effort: take back a device_add whose verification failed."""
    try:
        with mon.client.listener("DEVICE_DELETED") as events:
            await mon.run("device_del", id=dev_id)
            await _wait_deleted(events, dev_id, mon.timeout)
    except (VfioctlError, asyncio.TimeoutError):
        pass


# ---------------------------------------------------------------- detach
async def _wait_deleted(events: Any, dev_id: str, timeout: float) -> float:
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise asyncio.TimeoutError
        ev = await asyncio.wait_for(events.get(), left)
        data = ev.get("data") if isinstance(ev, dict) or hasattr(ev, "get") else None
        if isinstance(data, dict) and data.get("device") == dev_id:
            return time.monotonic() - t0


def detach(
    host: Host,
    spec: str,
    qmp_socket: str,
    *,
    dev_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    restore: bool = False,
) -> DetachResult:
    """``device_del`` *spec*'s device, wait for DEVICE_DELETED; with *restore*, once QEMU let go
    of the group, give it back to the host (planned then, in the same locked session)."""
    _require_qmp()
    if host.archive:
        raise Refused(f"cannot hot-unplug on the snapshot {host.source}: changes need the live host")
    dev = engine.find_device(host, spec)
    if dev_id:
        _check_id(dev_id)
    a = str(dev.address)
    group = dev.iommu_group
    with SyncMonitor(qmp_socket, timeout) as mon, engine.Session(host) as session:
        if dev_id is None:
            dev_id = mon.call(_find_id(mon.mon, dev.address))
            if dev_id is None:
                raise NotFound(f"the QEMU behind {qmp_socket} has no vfio-pci device for host {a} (none in "
                               "/machine/peripheral); give its id with --id if it was added under another name")
        plan = Plan("detach")
        step = QmpDeviceDel(dev.address, dev_id, qmp_socket, timeout)
        plan.steps.append(step)
        if restore and group is not None:
            plan.steps.append(QmpReleased(dev.address, group, timeout))
        secs = session.execute(plan, qmp=mon).seen(step)
        res = DetachResult(a, dev_id, group, mon.pid, float(secs) if isinstance(secs, float) else 0.0)
        if restore:
            res.restored = session.execute(session.plan_restore([dev]), qmp=mon)
    return res


async def _find_id(mon: _Monitor, addr: PciAddress) -> str | None:
    periph = await mon.peripherals()
    for i, t in sorted(periph.items()):
        if t != "vfio-pci":
            continue
        h = await mon.prop(f"/machine/peripheral/{i}", "host")
        try:
            if isinstance(h, str) and h and PciAddress.parse(h if h.count(":") == 2 else f"0000:{h}") == addr:
                return i
        except VfioctlError:
            continue
    derived = hostdev_id(addr)
    return derived if periph.get(derived) == "vfio-pci" else None
