"""Carry out a plan: a loop over its steps, each done and verified; on any failure
(Ctrl-C and SIGTERM included) the reverse loop undoes what was done.

Every step's :meth:`~vfioctl.ops.steps.base.Step.undo` is idempotent ("put back what
was there if it is not"), so the step that failed is undone too: a write that
half-happened is never left behind.  The failure and the rollback's outcome
are reported in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.base.errors import Interrupted, VfioctlError, WriteTimedOut
from vfioctl.base.text import with_notes
from vfioctl.host.core import Host
from vfioctl.ops.journal import DeviceRecord, Journal
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.steps.base import Exec, Step
from vfioctl.ops.steps.journal import JournalRecord
from vfioctl.pci.device import PciDevice
from vfioctl.usage.inuse import uses


@dataclass
class Result:
    plan: Plan
    done: list[Step] = field(default_factory=list)
    rolled_back: list[Step] = field(default_factory=list)
    rollback_errors: list[str] = field(default_factory=list)
    #: what steps observed while verifying, by id(step) (QMP: how QEMU listed a device)
    observed: dict[int, object] = field(default_factory=dict)

    def seen(self, step: Step) -> object:
        return self.observed.get(id(step))

    @property
    def changed(self) -> bool:
        return any(s.writes for s in self.done)

    def to_dict(self) -> dict:
        d = self.plan.to_dict()
        d["schema"] = "vfioctl.result/1"
        d["changed"] = self.changed
        d["done"] = [s.to_dict() for s in self.done]
        return d

    def render(self) -> str:
        if not self.changed:
            return with_notes([f"{self.plan.action}: no changes"], self.plan.notes)
        # a change that keeps the driver (a reset) says what happened instead of "X -> X"
        lines = [f"{c.address}  [{c.ids}]  {c.why}, still on {c.after}  (verified)" if c.before == c.after and c.why
                 else f"{c.address}  [{c.ids}]  {c.before or 'none'} -> {c.after or 'none'}  (verified)"
                 for c in self.plan.changes]
        return with_notes(lines, self.plan.notes)


def execute(host: Host, plan: Plan, journal: Journal, *, qmp: object | None = None) -> Result:
    """Run *plan*'s steps with *journal* locked; undo in reverse on any failure.  *qmp*: the
    QEMU monitor QMP steps talk to."""
    if not journal.locked:
        raise VfioctlError("internal error: a plan executed without the journal lock")
    x = Exec(host, journal, qmp=qmp)
    result = Result(plan)
    attempted: list[Step] = []
    failed: tuple[Step, BaseException] | None = None
    for step in plan.steps:
        attempted.append(step)
        try:
            step.do(x)
            step.verify(x)
        except BaseException as err:  # noqa: B902  (Ctrl-C and SIGTERM roll back too)
            failed = (step, err)
            break
        result.done.append(step)
    result.observed = x.memo
    if failed is None:
        return result
    if isinstance(failed[1], WriteTimedOut):
        raise _unfinished(x, plan, failed[0], failed[1]) from failed[1]
    rollback(x, result, attempted)
    raise _wrap(failed[0], failed[1], result, plan) from failed[1]


def rollback(x: Exec, result: Result, attempted: list[Step]) -> None:
    """Undo *attempted* in reverse, recording every failure and carrying on past it."""
    for step in reversed(attempted):
        try:
            step.undo(x)
            result.rolled_back.append(step)
        except KeyboardInterrupt:
            x.rollback_failed = True
            result.rollback_errors.append(f"step '{step.describe()}': interrupted during rollback")
        except Exception as err:  # keep undoing the rest; report every failure
            x.rollback_failed = True
            msg = err.message if isinstance(err, VfioctlError) else f"{type(err).__name__}: {err}"
            result.rollback_errors.append(f"undo of '{step.describe()}' failed: {msg}")
    for name, action in x.deferred.items():
        try:
            got = action()
        except Exception as err:  # report it and carry on: the undo itself is done
            msg = err.message if isinstance(err, VfioctlError) else f"{type(err).__name__}: {err}"
            result.rollback_errors.append(f"{name} after the rollback failed: {msg}")
            continue
        if isinstance(got, tuple) and got and got[0] != 0:
            result.rollback_errors.append(f"{name} after the rollback exited {got[0]}")


def _unfinished(x: Exec, plan: Plan, step: Step, err: WriteTimedOut) -> WriteTimedOut:
    """A kernel write that did not return within its bound: nothing is rolled back (a write to
    the same device would wait the same way, and the blocked one may still finish); the
    journal's records of the plan stay "pending" with the step that did not finish named, and
    the error names what still holds the device."""
    n = plan.steps.index(step) + 1
    said = f"step {n} of {plan.action} ({step.describe()}) did not finish: {err.message}"
    address = getattr(step, "address", None)
    recorded = [r for s in plan.steps if isinstance(s, JournalRecord) for r in s.records
                if isinstance(r, DeviceRecord) and r.address in x.journal.devices]
    for r in recorded:
        rec = x.journal.devices[r.address]
        rec.unfinished = said if address is None or r.address == str(address) else (
            f"not reached: {plan.action} stopped at step {n} ({step.describe()})")
    if recorded:
        try:
            x.journal.save()
        except VfioctlError:
            pass  # the records saved before the write still say "pending"
    holds = ""
    if address is not None:
        try:
            found = [u.text for u in uses(PciDevice(x.host, address)) if u.known and not u.console]
        except VfioctlError:
            found = []
        holds = ("; what still holds " + str(address) + ": " + "; ".join(found)) if found else (
            f"; nothing vfioctl can see holds {address} (a kernel user: see the kernel log)")
    journal = (f"; the journal marks it unfinished ({x.journal.file}); once that lets go, the kernel "
               f"finishes the write: then `vfioctl restore {address or '--all'}` gives the device back"
               if recorded else "; nothing was journaled")
    return WriteTimedOut(f"{said}{holds}; nothing was rolled back (a write to the device would wait the "
                         f"same way){journal}")


def _wrap(step: Step, err: BaseException, result: Result, plan: Plan) -> VfioctlError:
    n = plan.steps.index(step) + 1
    what = f"{plan.action} failed at step {n} ({step.describe()})"
    if result.rollback_errors:
        if any(isinstance(s, JournalRecord) for s in plan.steps):
            then = "the journal keeps the originals: run `vfioctl restore --all` to finish"
        else:
            then = "check what is named above by hand"
        rb = f"rollback INCOMPLETE: {'; '.join(result.rollback_errors)}; {then}"
    elif any(s.writes for s in result.rolled_back[1:]) or result.done:
        rb = f"rolled back {len(result.rolled_back)} step(s): the host is as it was"
    else:
        rb = "nothing had been changed"
    if isinstance(err, KeyboardInterrupt):
        return Interrupted(f"interrupted: {what}; {rb}")
    if isinstance(err, VfioctlError):
        new = type(err).__new__(type(err))
        VfioctlError.__init__(new, f"{err.message} — {what}; {rb}", **err.fields)
        return new
    return VfioctlError(f"{what}: {type(err).__name__}: {err}; {rb}")
