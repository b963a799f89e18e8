"""Fault injection and the write trace: off unless asked; the k-th write fails; the trace file is
appended to and never followed through a link or blocked on a FIFO."""

from __future__ import annotations

import os

import pytest

from vfioctl.base.errors import InvalidInput, KernelError
from vfioctl.host import faults


@pytest.fixture(autouse=True)
def counters(monkeypatch):
    monkeypatch.setattr(faults, "_WRITES_TRIED", 0)
    monkeypatch.setattr(faults, "_WRITES_DONE", 0)
    for var in ("VFIOCTL_TRACE_WRITES", "VFIOCTL_FAULT_FAIL_AT", "VFIOCTL_FAULT_KILL_AFTER"):
        monkeypatch.delenv(var, raising=False)


def test_everything_is_off_by_default(tmp_path):
    for _ in range(3):
        faults._trace("/sys/x", "1")
        faults._fault_fail("/sys/x")
        faults._fault_point()
    assert os.listdir(tmp_path) == []


def test_the_kth_write_fails_with_eio_and_only_that_one(monkeypatch):
    monkeypatch.setenv("VFIOCTL_FAULT_FAIL_AT", "2")
    faults._fault_fail("/sys/a")
    with pytest.raises(KernelError) as err:
        faults._fault_fail("/sys/b")
    assert err.value.fields["errno"] == "EIO" and "/sys/b" in str(err.value) and "fault injected" in str(err.value)
    faults._fault_fail("/sys/c")


def test_a_bad_fault_setting_is_refused(monkeypatch):
    monkeypatch.setenv("VFIOCTL_FAULT_FAIL_AT", "two")
    with pytest.raises(InvalidInput):
        faults._fault_fail("/sys/a")


def test_the_kill_point_counts_writes_before_it_fires(monkeypatch):
    kills = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.setenv("VFIOCTL_FAULT_KILL_AFTER", "3")
    faults._fault_point()
    faults._fault_point()
    assert kills == []
    faults._fault_point()
    assert kills and kills[0][0] == os.getpid()


def test_the_trace_appends_one_line_per_write(tmp_path, monkeypatch):
    trace = tmp_path / "trace"
    monkeypatch.setenv("VFIOCTL_TRACE_WRITES", str(trace))
    faults._trace("/sys/bus/pci/drivers_probe", "0000:03:00.0\n")
    faults._trace("/sys/x", "vfio-pci")
    assert trace.read_text() == "/sys/bus/pci/drivers_probe\t0000:03:00.0\n/sys/x\tvfio-pci\n"
    assert trace.stat().st_mode & 0o777 == 0o600


def test_a_trace_path_that_is_a_link_is_refused_not_followed(tmp_path, monkeypatch):
    target = tmp_path / "target"
    (tmp_path / "trace").symlink_to(target)
    monkeypatch.setenv("VFIOCTL_TRACE_WRITES", str(tmp_path / "trace"))
    with pytest.raises(InvalidInput):  # ELOOP: a link vfioctl refuses to follow
        faults._trace("/sys/x", "1")
    assert not target.exists()


def test_a_fifo_as_the_trace_never_blocks(tmp_path, monkeypatch):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("VFIOCTL_TRACE_WRITES", str(fifo))
    with pytest.raises(InvalidInput) as err:
        faults._trace("/sys/x", "1")
    assert "not a regular file" in str(err.value)


def test_a_folder_as_the_trace_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VFIOCTL_TRACE_WRITES", str(tmp_path))
    with pytest.raises(InvalidInput):
        faults._trace("/sys/x", "1")
