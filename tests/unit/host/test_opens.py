"""The open-nodes scan of the live host: bounded, its own process left out."""

from __future__ import annotations

import os

from vfioctl.host import opens


def test_the_scan_answers_and_is_bounded():
    got = opens.scan_open_nodes()
    assert set(got) == {"opens", "complete", "why", "unreadable", "processes", "seconds"}
    assert all(row[0] != os.getpid() for row in got["opens"])
    assert all(row[3].startswith(("c:", "b:")) and row[4] in ("fd", "maps") for row in got["opens"])
    cut = opens.scan_open_nodes(max_pids=0)
    assert cut["complete"] is False and "its bound" in cut["why"]


def test_memory_devices_and_terminals_are_left_out():
    st = os.stat("/dev/null")
    assert opens._devno(st) is None
    assert opens._devno(os.stat("/")) is None
