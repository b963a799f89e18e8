"""Carry out a plan: each step through Host, verified, rolled back on failure.

A write that "succeeded" proves nothing: after each one we read the kernel's
answer (the ``driver`` link, ``/dev/vfio/N``, the VF links) with a bounded
wait.  On any failure, Ctrl-C included, the steps already done are undone in
reverse order and both the failure and the rollback's result are reported.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from vfioctl.address import PciAddress
from vfioctl.errors import (
    Busy,
    DeviceVanished,
    HostNotReady,
    Interrupted,
    VerifyFailed,
    VfioctlError,
)
from vfioctl.host import Host
from vfioctl.journal import DeviceRecord, Journal, SriovRecord
from vfioctl.pci import PCI_DRIVERS, PciDevice
from vfioctl.plan import Plan, Step, describe_expect


def verify_timeout() -> float:
    return float(os.environ.get("VFIOCTL_VERIFY_TIMEOUT", "10"))


def sriov_timeout() -> float:
    return float(os.environ.get("VFIOCTL_SRIOV_TIMEOUT", "120"))


@dataclass
class Result:
    plan: Plan
    done: list[Step] = field(default_factory=list)
    rolled_back: list[Step] = field(default_factory=list)
    rollback_errors: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(
            s.writes or (s.action == "hide-vfs" and getattr(s, "_sub", None) and s._sub.changed)
            for s in self.done
        )

    def to_dict(self) -> dict:
        d = self.plan.to_dict()
        d["schema"] = "vfioctl.result/1"
        d["changed"] = self.changed
        d["changes"] = [c.to_dict() for c in self.all_changes()]
        d["done"] = [s.to_dict() for s in self.done]
        return d

    def all_changes(self) -> list:
        out = list(self.plan.changes)
        for s in self.done:
            sub = getattr(s, "_sub", None)
            if sub is not None:
                out += sub.all_changes()
        return out

    def render(self) -> str:
        if not self.changed:
            return f"{self.plan.action}: no changes" + "".join(f"\nnote: {n}" for n in self.plan.notes)
        lines = []
        for c in self.all_changes():
            lines.append(f"{c.address}  [{c.ids}]  {c.before or 'none'} -> {c.after or 'none'}  (verified)")
        lines += [f"note: {n}" for n in self.plan.notes]
        return "\n".join(lines)


class _StepFailed(Exception):
    def __init__(self, step: Step, err: BaseException) -> None:
        super().__init__(str(err))
        self.step = step
        self.err = err


def execute(host: Host, plan: Plan, journal: Journal) -> Result:
    """Run *plan*'s steps; undo the done ones in reverse on any failure."""
    result = Result(plan)
    try:
        for step in plan.steps:
            try:
                _do(host, journal, step)
            except BaseException as err:
                raise _StepFailed(step, err) from err
            result.done.append(step)
    except _StepFailed as failed:
        _rollback(host, journal, result)
        raise _wrap(failed, result) from failed.err
    return result


def _rollback(host: Host, journal: Journal, result: Result) -> None:
    for step in reversed(result.done):
        try:
            if step.action == "journal":
                if not result.rollback_errors:
                    for a in getattr(step, "_added", []):
                        journal.devices.pop(a, None)
                        journal.sriov.pop(a, None)
                    journal.save()
            elif step.action == "commit":
                continue
            elif step.action == "hide-vfs":
                sub = getattr(step, "_sub", None)
                if sub is not None:
                    _rollback(host, journal, sub)
                    result.rollback_errors += sub.rollback_errors
            else:
                for u in step.undo:
                    _do(host, journal, u)
            result.rolled_back.append(step)
        except KeyboardInterrupt:
            result.rollback_errors.append(f"step '{step.describe()}': interrupted during rollback")
        except Exception as err:  # keep undoing the rest; report every failure
            result.rollback_errors.append(f"undo of '{step.describe()}' failed: {err}")


def _wrap(failed: _StepFailed, result: Result) -> VfioctlError:
    n = result.plan.steps.index(failed.step) + 1
    what = f"{result.plan.action} failed at step {n} ({failed.step.describe()})"
    if result.rollback_errors:
        rb = (
            f"rollback INCOMPLETE: {'; '.join(result.rollback_errors)}; the journal keeps the originals: "
            "run `vfioctl restore --all` to finish"
        )
    elif result.done:
        rb = f"rolled back {len(result.done)} step(s): the host is as it was"
    else:
        rb = "nothing had been changed"
    err = failed.err
    if isinstance(err, KeyboardInterrupt):
        return Interrupted(f"interrupted: {what}; {rb}")
    if isinstance(err, VfioctlError):
        new = type(err).__new__(type(err))
        VfioctlError.__init__(new, f"{err.message} — {what}; {rb}", **err.fields)
        return new
    return VfioctlError(f"{what}: {type(err).__name__}: {err}; {rb}")


# ------------------------------------------------------------------ one step
def _do(host: Host, journal: Journal, step: Step) -> None:
    if step.action == "write":
        assert step.path is not None and step.value is not None
        if step.target and PciAddress.is_valid(step.target):
            dev = PciDevice(host, PciAddress.parse(step.target))
            if not dev.exists():
                raise DeviceVanished(step.target, f"writing {step.path}")
        if step.path.endswith("/sriov_numvfs"):
            _bounded_write(host, step.path, step.value, sriov_timeout())
        else:
            host.write(step.path, step.value)
        host.invalidate()
        if step.expect:
            _verify(host, step)
    elif step.action == "modprobe":
        assert step.value
        rc, out = host.run(["modprobe", step.value])
        host.invalidate()
        if rc != 0:
            raise HostNotReady(f"modprobe {step.value} failed (exit {rc}): {out or 'no output'}")
        if step.expect:
            _verify(host, step)
    elif step.action == "journal":
        added = []
        for rec in step.records:
            key = rec.address if isinstance(rec, DeviceRecord) else rec.pf
            known = key in (journal.devices if isinstance(rec, DeviceRecord) else journal.sriov)
            if isinstance(rec, DeviceRecord):
                journal.record_device(rec)
            elif isinstance(rec, SriovRecord):
                journal.record_sriov(rec)
            if not known:
                added.append(key)
        step._added = added  # type: ignore[attr-defined]
        journal.save()
    elif step.action == "commit":
        for key in step.records:
            if key in journal.devices:
                journal.devices[key].state = "hidden"
            if key in journal.sriov:
                journal.sriov[key].state = "changed"
        journal.save()
    elif step.action == "forget":
        for key in step.records:
            journal.devices.pop(key, None)
            journal.sriov.pop(key, None)
        journal.save()
    elif step.action == "verify":
        _verify(host, step)
    elif step.action == "hide-vfs":
        from vfioctl.plan import plan_hide

        pf = PciDevice(host, PciAddress.parse(step.target or ""))
        vfs = [PciDevice(host, v) for v in pf.virtfns]
        todo = [v for v in vfs if v.driver != step.value]
        sub_plan = plan_hide(host, journal, todo, driver=step.value or "vfio-pci", origin="sriov") if todo else None
        step._sub = execute(host, sub_plan, journal) if sub_plan else None  # type: ignore[attr-defined]
    else:
        raise VfioctlError(f"internal error: unknown step action {step.action!r}")


def _bounded_write(host: Host, path: str, value: str, timeout: float) -> None:
    """sriov_numvfs writes can block for a long time on real NICs: bound the wait."""
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            host.write(path, value)
        except BaseException as err:  # handed to the caller's thread
            box["err"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Busy(
            f"writing {value} to {path} has not returned after {timeout:g} s; the kernel may still finish it: "
            "check `vfioctl sriov show` (VFIOCTL_SRIOV_TIMEOUT raises the limit)"
        )
    if "err" in box:
        raise box["err"]


def current_state(host: Host, expect: tuple) -> object:
    kind = expect[0]
    if kind == "driver":
        return PciDevice(host, PciAddress.parse(expect[1])).driver
    if kind == "override":
        return PciDevice(host, PciAddress.parse(expect[1])).driver_override
    if kind == "loaded":
        return host.is_dir(f"{PCI_DRIVERS}/{expect[1]}")
    if kind == "exists":
        return host.exists(expect[1])
    if kind == "numvfs":
        pf = PciDevice(host, PciAddress.parse(expect[1]))
        vfs = pf.virtfns
        ok_links = all(PciDevice(host, v).physfn == pf.address for v in vfs)
        return (pf.sriov_numvfs, len(vfs), ok_links)
    if kind == "autoprobe":
        return PciDevice(host, PciAddress.parse(expect[1])).attr("sriov_drivers_autoprobe") == "1"
    raise VfioctlError(f"internal error: unknown expectation {expect!r}")


def _holds(host: Host, expect: tuple) -> bool:
    cur = current_state(host, expect)
    kind = expect[0]
    if kind in ("driver", "override"):
        return cur == expect[2]
    if kind in ("loaded", "exists"):
        return bool(cur)
    if kind == "numvfs":
        n = expect[2]
        return cur == (n, n, True)
    if kind == "autoprobe":
        return cur == expect[2]
    return False


def _verify(host: Host, step: Step) -> None:
    exp = step.expect
    assert exp is not None
    if host.wait_for(lambda: _holds(host, exp), verify_timeout()):
        return
    if exp[0] in ("driver", "override", "numvfs", "autoprobe") and not PciDevice(host, PciAddress.parse(exp[1])).exists():
        raise DeviceVanished(exp[1], f"verifying {describe_expect(exp)}")
    cur = current_state(host, exp)
    after = f"after writing {step.value.strip() or '(empty)'} to {step.path}" if step.action == "write" else f"after {step.describe()}"
    raise VerifyFailed(
        f"{after}: wanted {describe_expect(exp)}, but the kernel shows {_show(exp, cur)} "
        f"(waited {verify_timeout():g} s)",
        desired=describe_expect(exp), current=str(cur),
    )


def _show(expect: tuple, cur: object) -> str:
    if expect[0] == "driver":
        return f"driver {cur or 'none'}"
    if expect[0] == "numvfs" and isinstance(cur, tuple):
        return f"sriov_numvfs={cur[0]} with {cur[1]} virtfn links" + ("" if cur[2] else ", physfn links wrong")
    if expect[0] in ("exists", "loaded"):
        return "it missing"
    return repr(cur)
