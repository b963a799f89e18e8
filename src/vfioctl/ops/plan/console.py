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

from vfioctl.base.errors import HostNotReady, InUse, InvalidInput
from vfioctl.base.names import is_handoff_unit
from vfioctl.ops.journal import HandoffRecord
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.state import HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.console import SetPlatformFb, SetVtcon, UnitState
from vfioctl.ops.steps.journal import JournalCommit, JournalRecord
from vfioctl.pci.address import PciAddress
from vfioctl.usage.console import DISPLAY_MANAGER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable


def check_stop_units(names: Iterable[str]) -> list[str]:
    """Unit names as ``--stop-unit`` and a config's ``stop_units`` give them, checked before
    anything is read."""
    out = list(names)
    for u in out:
        if not is_handoff_unit(u):
            raise InvalidInput(f"--stop-unit {u[:80]!r} is not a service vfioctl stops (e.g. gdm.service; never a "
                               "target, mount or device, nor one that reboots or rescues the machine)")
    return out


def units_to_read(stop_units: Iterable[str] | None) -> list[str]:
    """The units a hand-off looks at: those named, or the display manager."""
    return check_stop_units(stop_units or [DISPLAY_MANAGER])


def take_console_plan(state: HostState, address: PciAddress, stop_units: list[str] | None, hide: Plan) -> Plan:
    """The hide plan wrapped in the hand-off of *address*'s console: record, stop units,
    unbind consoles and frame buffers, the hide's own steps, commit.  Pure: the console
    facts come from *state* (:func:`vfioctl.ops.state.read_state` with ``consoles``)."""
    gpu = state.consoles[address]
    units: list[tuple[str, str]] = []
    for u in units_to_read(stop_units):
        real, active = state.units.get(u, ("", "unknown"))
        if active == "active":
            units.append((u, real or u))
        elif stop_units and active == "unknown":
            raise HostNotReady(f"cannot tell whether {u} is running (systemctl does not answer): stop it by hand, "
                               "then run without --stop-unit")
    stopping = {real for _, real in units} | {name for name, _ in units}
    blocking = [h for h in gpu.holders if h[3] not in stopping]
    if blocking:
        who = "; ".join(f"PID {pid} {comm} ({', '.join(paths)}{', unit ' + unit if unit else ''})"
                        for pid, comm, paths, unit in blocking)
        raise InUse(f"refusing to take the console of {address}: {who} holds it; stop it (or name its unit with "
                    "--stop-unit UNIT), then try again")
    rec = HandoffRecord(address=str(address))
    steps: list[Step] = []
    for name, real in units:
        rec.units_stopped.append(real)
        steps.append(UnitState(real, False, note=f"holds the GPU ({name})" if name != real else ""))
    if gpu.framebuffers:
        for v in state.vtcons:
            if v.bound and v.frame_buffer:
                rec.vtcons_unbound.append(v.number)
                steps.append(SetVtcon(v.number, False, address, gpu.driver,
                                      note="the frame buffer console on this GPU"))
    for fb in gpu.framebuffers:
        if fb.platform:
            rec.platform_fbs.append([fb.platform[0], fb.platform[1]])
            steps.append(SetPlatformFb(fb.platform[0], fb.platform[1], False, note=f"{fb.name} in this GPU's BAR"))
    plan = Plan("hide", changes=list(hide.changes), notes=list(hide.notes))
    plan.steps = ([JournalRecord([rec], what="the console hand-off")] + steps + list(hide.steps)
                  + [JournalCommit([rec.address], what="the console hand-off")])
    if not steps:
        plan.notes.append(f"{address}: no unit, console or frame buffer to hand over")
    return plan


def take_console(state: HostState, addrs: list[PciAddress], plan: Plan, *,
                 stop_units: list[str] | None = None) -> Plan:
    """``hide --take-console``: the hand-off of the one display device among *addrs* (the boot
    VGA device or one with a frame buffer).  Pure, like :func:`take_console_plan`."""
    if not plan.steps:
        return plan
    gpus = [a for a in addrs if state.device(a).boot_vga or (a in state.consoles and state.consoles[a].framebuffers)]
    if not gpus:
        plan.notes.append("--take-console: none of these devices is the boot VGA device or has a frame buffer")
        return plan
    if len(gpus) > 1:
        raise InvalidInput(f"--take-console hands over one GPU at a time; {', '.join(map(str, gpus))} are several")
    return take_console_plan(state, gpus[0], stop_units, plan)


def give_back_console_steps(rec: HandoffRecord) -> list[Step]:
    """After the device's driver is back: frame buffers, consoles, then units (reverse order)."""
    steps: list[Step] = []
    for dev, drv in rec.platform_fbs:
        steps.append(SetPlatformFb(dev, drv, True))
    for n in rec.vtcons_unbound:
        steps.append(SetVtcon(n, True, note="fbcon takes the consoles back by itself when the frame buffer returns"))
    for u in reversed(rec.units_stopped):
        steps.append(UnitState(u, True))
    return steps
