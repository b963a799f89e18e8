"""Console hand-off for single-GPU hosts: ``hide --take-console`` and its exact reverse.

What users do by hand (and what the single-GPU passthrough guides script), as
journaled, verified, undoable steps: stop the units that draw on the GPU (the
active ``display-manager.service`` by default), unbind the virtual consoles
bound to the frame buffer console (``/sys/class/vtconsole/vtconN/bind``,
Documentation/driver-api/console.rst), unbind a firmware frame buffer
(efi-framebuffer, simple-framebuffer, vesa-framebuffer) that sits in the
GPU's BAR, then the normal hide (the DRM driver is unbound and vfio-pci
bound).  ``restore`` binds the original driver, then the frame buffer, the
consoles and the units, in that order (seen in the lab: once bochs-drm binds
again, fbcon takes vtcon0 by itself; binding it is then a no-op).

Any process that holds the GPU's /dev/dri/cardN or /dev/fbN and does not
belong to a unit being stopped is named and refused: unbinding a DRM driver
under an open file leaves a zombie device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl import console
from vfioctl.address import PciAddress
from vfioctl.errors import HostNotReady, InUse, InvalidInput
from vfioctl.facts import UNIT_NAME_RE
from vfioctl.host import Host
from vfioctl.journal import HandoffRecord
from vfioctl.plan import Plan
from vfioctl.state import HostState
from vfioctl.steps import Exec, JournalCommit, JournalRecord, Step, SysfsWrite

DISPLAY_MANAGER = "display-manager.service"


# ====================================================================== steps
@dataclass
class UnitState(Step):
    """``systemctl stop|start UNIT``, verified by systemd's ActiveState; undone by the opposite."""

    unit: str
    active: bool
    note: str = ""
    action = "systemctl"

    @property
    def value(self) -> str:
        return f"{'start' if self.active else 'stop'} {self.unit}"

    def describe(self) -> str:
        return f"systemctl {self.value}"

    def expectation(self) -> str:
        return f"{self.unit} is {'active' if self.active else 'not active'}"

    def _is(self, x: Exec) -> bool:
        return unit_state(x.host, self.unit)[1] == "active"

    def do(self, x: Exec) -> None:
        if self._is(x) != self.active:
            _systemctl(x.host, "start" if self.active else "stop", self.unit)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: self._is(x) == self.active,
               lambda: f"{self.unit} {unit_state(x.host, self.unit)[1]}", timeout=60)

    def undo(self, x: Exec) -> None:
        if self._is(x) == self.active:
            _systemctl(x.host, "stop" if self.active else "start", self.unit)


def _vtcon_path(n: int) -> str:
    return f"{console.VTCONSOLE}/vtcon{n}/bind"


def _fb_vtcons(x: Exec) -> list[console.VtConsole]:
    return [v for v in console.vtconsoles(x.host) if v.frame_buffer]


@dataclass
class SetVtcon(SysfsWrite):
    """``vtconN/bind``: 0 unbinds the frame buffer console (fbcon) from the virtual consoles; the
    reverse gives them back to fbcon.

    Measured on the lab kernel (6.1), and what drivers/tty/vt/vt.c (vt_bind, vt_unbind)
    makes of it: after ``0 > vtcon0/bind`` the consoles go to the dummy console (vtcon1) and
    ``1 > vtcon0/bind`` changes nothing; ``0 > vtcon1/bind`` (unbinding the dummy) is what
    hands them back to fbcon.  Once the GPU's driver unbinds, fbcon's vtconsole entry is gone
    altogether and comes back, bound, by itself when a frame buffer registers again (the DRM
    driver binding; drivers/video/fbdev/core/fbcon.c fbcon_fb_registered).  So giving the
    consoles back tries, in order: nothing (fbcon already took them), ``1`` to fbcon's entry,
    ``0`` to the other bound consoles, and, when the entry is gone while the GPU never left its
    driver (*gpu*, *gpu_driver*), a re-bind of that driver."""

    number: int
    bind: bool
    gpu: PciAddress | None = None
    gpu_driver: str | None = None
    note: str = ""

    @property
    def path(self) -> str:
        return _vtcon_path(self.number)

    @property
    def value(self) -> str:
        return "1" if self.bind else "0"

    def expectation(self) -> str:
        return "a frame buffer console bound" if self.bind else f"vtcon{self.number} not bound to the frame buffer"

    def _fb_bound(self, x: Exec) -> bool:
        return any(v.bound for v in _fb_vtcons(x))

    def _give_back(self, x: Exec) -> None:
        """The consoles back to fbcon (see the class notes for why it takes these turns)."""
        if self._fb_bound(x):
            return
        entries = _fb_vtcons(x)
        if entries:
            x.host.write(_vtcon_path(entries[0].number), "1")
            if self._fb_bound(x):
                return
            for v in console.vtconsoles(x.host):
                if v.bound and not v.frame_buffer:
                    x.host.write(_vtcon_path(v.number), "0")
            return
        if self.gpu is not None and self.gpu_driver and x.dev(self.gpu).driver == self.gpu_driver:
            # fbcon left with its entry: the GPU's driver registering its frame buffer again brings it back
            from vfioctl.pci import PCI_DRIVERS

            x.host.write(f"{PCI_DRIVERS}/{self.gpu_driver}/unbind", str(self.gpu))
            x.host.write(f"{PCI_DRIVERS}/{self.gpu_driver}/bind", str(self.gpu))

    def do(self, x: Exec) -> None:
        if self.bind:
            self._give_back(x)
            return
        mine = next((v for v in _fb_vtcons(x) if v.number == self.number), None)
        if mine is not None and mine.bound:
            x.host.write(self.path, "0")

    def verify(self, x: Exec) -> None:
        if self.bind:
            if _fb_vtcons(x) or x.host.listdir(console.GRAPHICS):
                x.wait(self.expectation(), lambda: self._fb_bound(x), lambda: "no frame buffer console bound")
            return
        x.wait(self.expectation(), lambda: not any(v.bound and v.number == self.number for v in _fb_vtcons(x)),
               lambda: f"vtcon{self.number} still bound")

    def undo(self, x: Exec) -> None:
        if self.bind:
            for v in _fb_vtcons(x):
                if v.bound:
                    x.host.write(_vtcon_path(v.number), "0")
            return
        self._give_back(x)
        if _fb_vtcons(x) or x.host.listdir(console.GRAPHICS):
            x.wait("a frame buffer console bound", lambda: self._fb_bound(x), lambda: "no frame buffer console bound")


@dataclass
class SetPlatformFb(SysfsWrite):
    """Unbind (or bind) a firmware frame buffer's platform device from its driver."""

    device: str
    driver: str
    bind: bool
    note: str = ""

    @property
    def path(self) -> str:
        return f"/sys/bus/platform/drivers/{self.driver}/{'bind' if self.bind else 'unbind'}"

    @property
    def value(self) -> str:
        return self.device

    def expectation(self) -> str:
        return f"{self.device} {'on ' + self.driver if self.bind else 'has no driver'}"

    def _bound(self, x: Exec) -> bool:
        return x.host.link_name(f"{console.PLATFORM}/{self.device}/driver") == self.driver

    def do(self, x: Exec) -> None:
        if self._bound(x) != self.bind:
            x.host.write(self.path, self.device)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: self._bound(x) == self.bind,
               lambda: f"{self.device} {'bound' if self._bound(x) else 'unbound'}")

    def undo(self, x: Exec) -> None:
        if self._bound(x) == self.bind:
            other = f"/sys/bus/platform/drivers/{self.driver}/{'unbind' if self.bind else 'bind'}"
            x.host.write(other, self.device)


# ====================================================================== systemd
def unit_state(host: Host, unit: str) -> tuple[str, str]:
    """(the unit's real name, its ActiveState) as systemd reports them; ("", "unknown") when
    systemd does not answer (no systemd, or a captured host that did not record it)."""
    got = host.probe("unit", unit)
    if isinstance(got, dict):
        return str(got.get("id") or unit), str(got.get("active") or "unknown")
    return "", "unknown"


def live_unit(unit: str) -> dict:
    from vfioctl.host import run_local

    rc, out = run_local(["systemctl", "show", "--no-pager", "-p", "Id", "-p", "ActiveState", unit], 10)
    if rc != 0:
        return {"id": None, "active": "unknown"}
    vals = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {"id": vals.get("Id") or unit, "active": vals.get("ActiveState") or "unknown"}


def _systemctl(host: Host, verb: str, unit: str) -> None:
    if not UNIT_NAME_RE.fullmatch(unit):
        raise InvalidInput(f"unit name {unit[:80]!r} is not a systemd unit name vfioctl accepts")
    rc, out = host.run(["systemctl", verb, unit], timeout=120)
    if rc != 0:
        raise HostNotReady(f"systemctl {verb} {unit} failed (exit {rc}): {out or 'no output'}")


def _unit_of_pid(host: Host, pid: int) -> str | None:
    """The systemd unit a process runs in, from /proc/PID/cgroup (cgroup v2: ``0::/system.slice/gdm.service``)."""
    for line in host.read(f"/proc/{pid}/cgroup", default="").splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            if UNIT_NAME_RE.fullmatch(part) and not part.endswith(".slice"):
                return part
    return None


# ====================================================================== planning
@dataclass
class ConsoleState:
    """What the hand-off of one GPU touches, read under the journal lock."""

    address: PciAddress
    #: the GPU's driver now (its frame buffer, when it has one, is what fbcon draws on)
    driver: str | None
    framebuffers: list[console.FrameBuffer]
    vtcons: list[console.VtConsole]
    #: units to stop: (name as given, its real id) for the active ones
    units: list[tuple[str, str]]
    #: (pid, command, paths, unit) of processes holding the GPU's device nodes
    holders: list[tuple[int, str, list[str], str | None]] = field(default_factory=list)


def read_console_state(host: Host, address: PciAddress, stop_units: list[str] | None) -> ConsoleState:
    from vfioctl.holders import describe_process, open_files

    names = list(stop_units) if stop_units else [DISPLAY_MANAGER]
    for u in names:
        if not UNIT_NAME_RE.fullmatch(u):
            raise InvalidInput(f"--stop-unit {u[:80]!r} is not a systemd unit name (e.g. gdm.service)")
    units = []
    for u in names:
        real, active = unit_state(host, u)
        if active == "active":
            units.append((u, real or u))
        elif stop_units and active == "unknown":
            raise HostNotReady(f"cannot tell whether {u} is running (systemctl does not answer): stop it by hand, "
                               "then run without --stop-unit")
    nodes = set(console.device_nodes(host, str(address)))
    holders = []
    if nodes:
        for pid, paths in open_files(host, lambda p: p in nodes):
            comm, _ = describe_process(host, pid)
            holders.append((pid, comm, paths, _unit_of_pid(host, pid)))
    from vfioctl.pci import PciDevice

    return ConsoleState(address, PciDevice(host, address).driver, console.framebuffers(host, str(address)),
                        console.vtconsoles(host), units, holders)


def plan_take(cs: ConsoleState, hide: Plan) -> Plan:
    """The hide plan wrapped in the hand-off: record, stop units, unbind consoles and frame
    buffers, the hide's own steps, commit.  Pure."""
    stopping = {real for _, real in cs.units} | {name for name, _ in cs.units}
    blocking = [h for h in cs.holders if h[3] not in stopping]
    if blocking:
        who = "; ".join(f"PID {pid} {comm} ({', '.join(paths)}{', unit ' + unit if unit else ''})"
                        for pid, comm, paths, unit in blocking)
        raise InUse(f"refusing to take the console of {cs.address}: {who} holds it; stop it (or name its unit with "
                    "--stop-unit UNIT), then try again")
    rec = HandoffRecord(address=str(cs.address))
    steps: list[Step] = []
    for name, real in cs.units:
        rec.units_stopped.append(real)
        steps.append(UnitState(real, False, note=f"holds the GPU ({name})" if name != real else ""))
    if cs.framebuffers:
        for v in cs.vtcons:
            if v.bound and v.frame_buffer:
                rec.vtcons_unbound.append(v.number)
                steps.append(SetVtcon(v.number, False, cs.address, cs.driver,
                                      note="the frame buffer console on this GPU"))
    for fb in cs.framebuffers:
        if fb.platform:
            rec.platform_fbs.append([fb.platform[0], fb.platform[1]])
            steps.append(SetPlatformFb(fb.platform[0], fb.platform[1], False, note=f"{fb.name} in this GPU's BAR"))
    plan = Plan("hide", changes=list(hide.changes), notes=list(hide.notes))
    plan.steps = ([JournalRecord([rec], what="the console hand-off")] + steps + list(hide.steps)
                  + [JournalCommit([rec.address], what="the console hand-off")])
    if not steps:
        plan.notes.append(f"{cs.address}: no unit, console or frame buffer to hand over")
    return plan


def wrap_hide(host: Host, state: HostState, addrs: list[PciAddress], plan: Plan, *,
              stop_units: list[str] | None = None) -> Plan:
    """``hide --take-console``: the hand-off of the one display device among *addrs*."""
    if not plan.steps:
        return plan
    gpus = [a for a in addrs if state.device(a).boot_vga or console.framebuffers(host, str(a))]
    if not gpus:
        plan.notes.append("--take-console: none of these devices is the boot VGA device or has a frame buffer")
        return plan
    if len(gpus) > 1:
        raise InvalidInput(f"--take-console hands over one GPU at a time; {', '.join(map(str, gpus))} are several")
    return plan_take(read_console_state(host, gpus[0], stop_units), plan)


def restore_steps(rec: HandoffRecord) -> list[Step]:
    """After the device's driver is back: frame buffers, consoles, then units (reverse order)."""
    steps: list[Step] = []
    for dev, drv in rec.platform_fbs:
        steps.append(SetPlatformFb(dev, drv, True))
    for n in rec.vtcons_unbound:
        steps.append(SetVtcon(n, True, note="fbcon takes the consoles back by itself when the frame buffer returns"))
    for u in reversed(rec.units_stopped):
        steps.append(UnitState(u, True))
    return steps
