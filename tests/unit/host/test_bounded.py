"""A bounded unbind: a kernel write that never returns stops the plan with exit 75 within the
bound, the journal says which step did not finish, and the next restore works (issue 21)."""

from __future__ import annotations

import json
import os
import select
import threading
import time

import pytest

from vfioctl import engine
from vfioctl.base.errors import InvalidInput, WriteTimedOut
from vfioctl.host import bounded
from vfioctl.usage.record import PROCESS


def journal(fake) -> dict:
    return json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())


def hang_first(host, path_end: str) -> threading.Event:
    """Make the first write to a path ending in *path_end* block (a driver waiting for its users)."""
    release = threading.Event()
    real = host.write_hook
    hung: list[str] = []

    def hook(h, path, value):
        if path.endswith(path_end) and not hung:
            hung.append(path)
            release.wait(60)
            return  # the kernel never got to it
        real(h, path, value)

    host.write_hook = hook
    return release


def test_an_unbind_that_never_returns_stops_within_the_bound_and_restore_works(fake, host, monkeypatch):
    monkeypatch.setenv("VFIOCTL_UNBIND_TIMEOUT", "1")
    a = "0000:00:07.0"
    release = hang_first(host, "/drivers/e1000e/unbind")
    try:
        start = time.monotonic()
        with pytest.raises(WriteTimedOut) as got:
            engine.hide(host, [a])
        took = time.monotonic() - start
        err = got.value
        assert err.exit_code == 75
        assert took < 1 + 3, took
        assert f"write {a} > /sys/bus/pci/drivers/e1000e/unbind" in err.message
        assert "did not return within 1 s" in err.message and "nothing was rolled back" in err.message
        assert f"vfioctl restore {a}" in err.message
        # the kernel's view: still on its driver (the unbind never happened); the override was written
        assert fake.current_driver(a) == "e1000e"
        assert (fake._devdir(a) / "driver_override").read_text().strip() == "vfio-pci"
        # the journal: the record is pending, and names the step that did not finish
        rec = journal(fake)["devices"][a]
        assert rec["state"] == "pending" and rec["original_driver"] == "e1000e"
        assert rec["unfinished"].startswith("step ") and "e1000e/unbind" in rec["unfinished"]
        assert "did not finish" in rec["unfinished"]
        status = engine.status(host)
        assert a in json.dumps(status.to_dict() if hasattr(status, "to_dict") else status, default=str)
    finally:
        release.set()
    # the next restore gives the device back exactly
    engine.restore(host, [a])
    assert fake.current_driver(a) == "e1000e"
    assert (fake._devdir(a) / "driver_override").read_text().strip() in ("", "(null)")
    assert a not in journal(fake)["devices"]


def test_the_bound_is_validated(monkeypatch):
    for bad in ("0", "-1", "1e9", "ten", "٣", "5000", "", "nan"):
        monkeypatch.setenv("VFIOCTL_UNBIND_TIMEOUT", bad)
        with pytest.raises(InvalidInput, match="VFIOCTL_UNBIND_TIMEOUT"):
            bounded.limit_s()
    monkeypatch.setenv("VFIOCTL_UNBIND_TIMEOUT", "2.5")
    assert bounded.limit_s() == 2.5
    monkeypatch.delenv("VFIOCTL_UNBIND_TIMEOUT")
    assert bounded.limit_s() == 10.0


def test_a_real_write_that_blocks_returns_at_the_bound(tmp_path):
    """The live path: the write is made by a forked child.  A FIFO with no reader blocks the
    child's open() in the kernel as an unbind waiting for its users does."""
    fifo = tmp_path / "unbind"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(WriteTimedOut, match=r"did not return within 0.5 s .*PID \d+ is blocked"):
        bounded.bounded_write(str(fifo), "/sys/bus/pci/drivers/x/unbind", "0000:00:07.0", 0.5)
    assert time.monotonic() - start < 2.5
    # let the child finish: a reader takes its write (the child may not have reached open() yet
    # on a loaded machine), so that no process is left behind
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    got = b""
    deadline = time.monotonic() + 20
    while got != b"0000:00:07.0" and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            got += os.read(fd, 64)
    os.close(fd)
    assert got == b"0000:00:07.0"


def test_a_real_write_that_fails_says_why(tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        bounded.bounded_write(str(tmp_path / "missing"), "/sys/bus/pci/drivers/x/bind", "0000:00:07.0", 5)
    ok = tmp_path / "bind"
    ok.write_text("")
    bounded.bounded_write(str(ok), "/sys/bus/pci/drivers/x/bind", "0000:00:07.0", 5)
    assert ok.read_text() == "0000:00:07.0"


def test_bounded_writes_are_the_unbinds_and_probes():
    assert bounded.is_bounded("/sys/bus/pci/drivers/nvidia/unbind")
    assert bounded.is_bounded("/sys/bus/pci/drivers_probe")
    assert bounded.is_bounded("/sys/bus/pci/drivers/vfio-pci/bind")
    assert not bounded.is_bounded("/sys/bus/pci/devices/0000:00:07.0/driver_override")
    assert PROCESS == "process"
