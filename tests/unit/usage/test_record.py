"""The host-use record: its text, JSON form and the kinds a caller's text is read as."""

from __future__ import annotations

from vfioctl.usage.record import CONSOLE, KINDS, NOT_KNOWN, OTHER, PROCESS, Use, from_text, not_known


def test_a_process_record_carries_pid_and_command():
    u = Use(PROCESS, "PID 9 (x) has /dev/dri/renderD128 open", "/proc/9/fd: /dev/dri/renderD128 (c:226:128)",
            pid=9, command="x", node="/dev/dri/renderD128")
    assert str(u) == u.text and u.known and not u.console and not u.platform
    assert u.to_dict() == {"kind": "process", "text": u.text, "evidence": u.evidence, "pid": 9, "command": "x",
                           "node": "/dev/dri/renderD128", "platform": False}


def test_not_known_is_a_record_of_its_own_kind():
    u = not_known("whether a process holds /dev/snd/pcmC0D0p", "the snapshot did not capture it")
    assert u.kind == NOT_KNOWN and not u.known and u.text.startswith("not known: ")
    assert "pid" not in u.to_dict()


def test_text_handed_in_becomes_a_record():
    assert from_text("it is the boot VGA device (x)").kind == CONSOLE
    assert from_text("not known: y").kind == NOT_KNOWN
    assert from_text("eth0 has 192.0.2.1/24").kind == OTHER
    u = Use(PROCESS, "t")
    assert from_text(u) is u
    assert len(set(KINDS)) == len(KINDS)
