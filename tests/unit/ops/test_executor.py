"""The executor, with steps made for the test: each step done then verified; on a failure (an error,
Ctrl-C) every attempted step undone in reverse, the step that failed too; undo failures reported and
the rest still undone; the deferred programs run once after the rollback; one line says it all."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vfioctl.base.errors import Interrupted, KernelError, VerifyFailed, VfioctlError
from vfioctl.ops.executor import Result, execute
from vfioctl.ops.journal import Journal
from vfioctl.ops.plan.model import Change, Plan
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.journal import JournalRecord
from vfioctl.pci.address import PciAddress


@dataclass
class Fake(Step):
    """Logs do/verify/undo into *log*; *fail* names the phase that raises *error*."""

    name: str
    log: list
    fail: str = ""
    error: BaseException | None = None

    def describe(self) -> str:
        return f"step {self.name}"

    def _at(self, phase: str) -> None:
        self.log.append(f"{phase} {self.name}")
        if self.fail == phase:
            raise self.error or KernelError(f"{self.name} refused", path="/sys/x")

    def do(self, x) -> None:
        self._at("do")

    def verify(self, x) -> None:
        self._at("verify")

    def undo(self, x) -> None:
        self._at("undo")


@pytest.fixture
def journal(fake):
    with Journal(fake.host(), lock_timeout=1) as j:
        yield j


def run(fake, journal, *steps):
    return execute(fake.host(), Plan("hide", steps=list(steps)), journal)


def test_each_step_is_done_then_verified_in_order(fake, journal):
    log: list = []
    res = run(fake, journal, Fake("a", log), Fake("b", log))
    assert log == ["do a", "verify a", "do b", "verify b"]
    assert [s.name for s in res.done] == ["a", "b"] and res.rolled_back == [] and res.changed


def test_a_failure_undoes_every_attempted_step_in_reverse_the_failed_one_too(fake, journal):
    log: list = []
    steps = [Fake("a", log), Fake("b", log), Fake("c", log, fail="verify"), Fake("d", log)]
    with pytest.raises(KernelError) as err:
        run(fake, journal, *steps)
    assert log == ["do a", "verify a", "do b", "verify b", "do c", "verify c", "undo c", "undo b", "undo a"]
    msg = str(err.value)
    assert msg.startswith("c refused — hide failed at step 3 (step c); rolled back 3 step(s): the host is as it was")
    assert err.value.fields == {"path": "/sys/x"}  # the original error's class and fields are kept
    assert "\n" not in msg


def test_ctrl_c_rolls_back_and_is_reported_as_interrupted(fake, journal):
    log: list = []
    with pytest.raises(Interrupted) as err:
        run(fake, journal, Fake("a", log), Fake("b", log, fail="do", error=KeyboardInterrupt()))
    assert log == ["do a", "verify a", "do b", "undo b", "undo a"]
    assert str(err.value).startswith("interrupted: hide failed at step 2 (step b); rolled back 2 step(s)")
    assert err.value.exit_code == 130


def test_a_failure_at_the_first_step_says_nothing_was_changed(fake, journal):
    log: list = []
    with pytest.raises(VerifyFailed) as err:
        run(fake, journal, Fake("a", log, fail="do", error=VerifyFailed("wanted x", desired="x", current="y")))
    assert "nothing had been changed" in str(err.value) and err.value.fields["desired"] == "x"


def test_an_error_that_is_no_vfioctl_error_is_wrapped_with_its_type(fake, journal):
    log: list = []
    with pytest.raises(VfioctlError) as err:
        run(fake, journal, Fake("a", log), Fake("b", log, fail="do", error=ZeroDivisionError("boom")))
    assert type(err.value) is VfioctlError
    assert "hide failed at step 2 (step b): ZeroDivisionError: boom; rolled back" in str(err.value)


def test_a_failed_undo_is_reported_and_the_rest_still_undone(fake, journal):
    log: list = []
    steps = [Fake("a", log), Fake("b", log, fail="undo"), Fake("c", log, fail="do")]
    with pytest.raises(KernelError) as err:
        run(fake, journal, *steps)
    assert log[-3:] == ["undo c", "undo b", "undo a"]
    msg = str(err.value)
    assert "rollback INCOMPLETE: undo of 'step b' failed: b refused" in msg
    assert "check what is named above by hand" in msg  # no journal record in this plan


def test_an_incomplete_rollback_of_a_journaled_plan_points_at_restore_all(fake, journal):
    log: list = []
    steps = [Fake("a", log, fail="undo"), Fake("b", log, fail="do"), JournalRecord(records=[])]
    with pytest.raises(KernelError) as err:
        run(fake, journal, *steps)
    assert "rollback INCOMPLETE" in str(err.value) and "run `vfioctl restore --all` to finish" in str(err.value)


def test_deferred_actions_run_once_after_every_undo(fake, journal):
    log: list = []

    @dataclass
    class Regenerates(Fake):
        def undo(self, x) -> None:
            super().undo(x)
            x.after_rollback("update-initramfs", lambda: log.append("regenerate") or (0, ""))

    steps = [Regenerates("a", log), Regenerates("b", log), Fake("c", log, fail="verify")]
    with pytest.raises(KernelError):
        run(fake, journal, *steps)
    assert log[-4:] == ["undo c", "undo b", "undo a", "regenerate"]


def test_a_deferred_program_that_fails_is_reported(fake, journal):
    log: list = []

    @dataclass
    class Regenerates(Fake):
        def undo(self, x) -> None:
            x.after_rollback("update-grub", lambda: (1, "no space"))
            x.after_rollback("update-initramfs", lambda: 1 / 0)

    with pytest.raises(KernelError) as err:
        run(fake, journal, Regenerates("a", log), Fake("b", log, fail="do"))
    msg = str(err.value)
    assert "update-grub after the rollback exited 1" in msg
    assert "update-initramfs after the rollback failed: ZeroDivisionError" in msg


def test_a_plan_is_never_executed_without_the_lock(fake):
    with pytest.raises(VfioctlError, match="without the journal lock"):
        execute(fake.host(), Plan("hide", steps=[Fake("a", [])]), Journal(fake.host()))


def test_result_views():
    a = PciAddress.parse("03:00.0")
    change = Change(str(a), "8086:10d3", 3, "endpoint", "e1000e", "vfio-pci")
    plan = Plan("hide", changes=[change], notes=["a note"])
    r = Result(plan)
    assert not r.changed and r.render() == "hide: no changes\nnote: a note"
    step = Fake("a", [])
    r.done.append(step)
    r.observed[id(step)] = "seen"
    assert r.changed and r.seen(step) == "seen"
    assert r.render() == "0000:03:00.0  [8086:10d3]  e1000e -> vfio-pci  (verified)\nnote: a note"
    d = r.to_dict()
    assert d["schema"] == "vfioctl.result/1" and d["changed"] is True and d["done"][0]["step"] == "Fake"
    reset = Change(str(a), "8086:10d3", 3, "endpoint", "vfio-pci", "vfio-pci", why="function reset")
    assert Result(Plan("reset", changes=[reset]), done=[step]).render() == (
        "0000:03:00.0  [8086:10d3]  function reset, still on vfio-pci  (verified)")
