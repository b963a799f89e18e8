"""Steps of the console hand-off: systemd units, virtual consoles bound to the frame buffer
console, and firmware frame buffers (platform devices) in a GPU's BAR."""

from __future__ import annotations

from dataclasses import dataclass

from vfioctl.base.errors import HostNotReady, InvalidInput
from vfioctl.base.names import is_handoff_unit
from vfioctl.host.core import Host
from vfioctl.ops.steps.base import Exec, Step, SysfsWrite
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DRIVERS
from vfioctl.usage import console
from vfioctl.usage.console import unit_state


# ====================================================================== steps
@dataclass
class UnitState(Step):
    """``systemctl stop|start UNIT``, verified by systemd's ActiveState; undone by the opposite."""

    unit: str
    active: bool
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

    def _file(self, bind: bool) -> str:
        """The driver's ``bind`` or ``unbind`` file (drivers/base/bus.c bind_store, unbind_store)."""
        return f"/sys/bus/platform/drivers/{self.driver}/{'bind' if bind else 'unbind'}"

    @property
    def path(self) -> str:
        return self._file(self.bind)

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
            x.host.write(self._file(not self.bind), self.device)


def _systemctl(host: Host, verb: str, unit: str) -> None:
    if not is_handoff_unit(unit):
        raise InvalidInput(f"unit name {unit[:80]!r} is not a service vfioctl stops or starts")
    rc, out = host.run(["systemctl", "start" if verb == "start" else "stop", "--", unit], timeout=120)
    if rc != 0:
        raise HostNotReady(f"systemctl {verb} {unit} failed (exit {rc}): {out or 'no output'}")
