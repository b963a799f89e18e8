"""The journal steps: originals saved before a change (and dropped again by undo, unless a rollback
failed: then restore --all needs them), marked done after, forgotten once given back."""

from __future__ import annotations

from vfioctl.ops.journal import DeviceRecord, HandoffRecord, SriovRecord, read_journal
from vfioctl.ops.steps.journal import JournalCommit, JournalForget, JournalRecord


def dev(address="0000:00:07.0"):
    return DeviceRecord(address, "8086:10d3", "e1000e", None, "vfio-pci")


def test_record_saves_the_originals_at_once_and_undo_drops_only_what_it_added(host, x):
    x.journal.record_device(dev("0000:00:02.0"))  # already there before this plan
    step = JournalRecord(records=[dev(), dev("0000:00:02.0"), SriovRecord("0000:00:04.0", 0, True)])
    assert step.writes is False and step.action == "journal"
    assert step.describe() == "journal: record originals of 0000:00:07.0, 0000:00:02.0, 0000:00:04.0"
    step.do(x)
    on_disk = read_journal(host)
    assert set(on_disk.devices) == {"0000:00:07.0", "0000:00:02.0"} and set(on_disk.sriov) == {"0000:00:04.0"}
    assert on_disk.devices["0000:00:07.0"].state == "pending"
    step.undo(x)
    on_disk = read_journal(host)
    assert set(on_disk.devices) == {"0000:00:02.0"} and on_disk.sriov == {}


def test_after_a_failed_rollback_the_records_stay_for_restore_all(host, x):
    step = JournalRecord(records=[dev()])
    step.do(x)
    x.rollback_failed = True
    step.undo(x)
    assert "0000:00:07.0" in read_journal(host).devices


def test_commit_marks_each_kind_done(host, x):
    JournalRecord(records=[dev(), SriovRecord("0000:00:04.0", 0, True),
                           HandoffRecord("0000:00:01.0")]).do(x)
    step = JournalCommit(keys=["0000:00:07.0", "0000:00:04.0", "0000:00:01.0", "0000:00:99.0"], what="the hide")
    assert step.describe() == "journal: mark the hide of 0000:00:07.0, 0000:00:04.0, 0000:00:01.0, 0000:00:99.0 done"
    step.do(x)
    j = read_journal(host)
    assert j.devices["0000:00:07.0"].state == "hidden"
    assert j.sriov["0000:00:04.0"].state == "changed" and j.handoff["0000:00:01.0"].state == "changed"


def test_forget_drops_records_and_undo_puts_them_back(host, x):
    JournalRecord(records=[dev(), dev("0000:00:02.0")]).do(x)
    step = JournalForget(keys=["0000:00:07.0", "0000:00:55.0"])
    assert step.describe() == "journal: forget 0000:00:07.0, 0000:00:55.0"
    step.do(x)
    assert set(read_journal(host).devices) == {"0000:00:02.0"}
    step.undo(x)
    assert set(read_journal(host).devices) == {"0000:00:07.0", "0000:00:02.0"}
