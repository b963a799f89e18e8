"""Every environment variable through one validated reader (vfioctl.host.env): a bad value is
exit 65 with one line naming it, before anything is read or changed; nan/inf/negative/huge
refused; a trace file that is a FIFO refused without blocking; and nothing else in src/
reads os.environ."""

from __future__ import annotations

import ast
import os
import stat
import threading
import time
from pathlib import Path

import pytest
from clirun import run
from fakehost import FakeDev, standard_host

SRC = Path(__file__).resolve().parents[3] / "src" / "vfioctl"




@pytest.fixture
def root(tmp_path):
    b = standard_host(tmp_path / "root")
    b.add(FakeDev("0000:00:09.0", "8086", "10d3", driver="e1000e", group=9))
    return b


BAD_SECONDS = ["abc", "", "0x10", "nan", "inf", "-inf", "-1", "1e9", "99999999", "1e3", "١", "²", " 5", "5s", "1_0"]


@pytest.mark.parametrize("var", ["VFIOCTL_LOCK_TIMEOUT", "VFIOCTL_VERIFY_TIMEOUT", "VFIOCTL_SRIOV_TIMEOUT"])
@pytest.mark.parametrize("value", BAD_SECONDS)
def test_bad_timeouts_are_bad_input(root, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    t = time.monotonic()
    rc, out, err = run(["--root", str(root.root), "restore", "--all"])
    assert time.monotonic() - t < 10
    assert rc == 65, (rc, err)
    assert err.count("\n") == 1 and err.startswith(f"vfioctl: {var}="), err


@pytest.mark.parametrize("var", ["VFIOCTL_FAULT_KILL_AFTER", "VFIOCTL_FAULT_FAIL_AT"])
@pytest.mark.parametrize("value", ["١", "²", "0", "-1", "abc", "", "1" * 30, " 1"])
def test_bad_fault_counts_are_bad_input(root, monkeypatch, var, value):
    """VFIOCTL_FAULT_KILL_AFTER='١' hung: isdigit() took it and int() read 1."""
    monkeypatch.setenv(var, value)
    rc, out, err = run(["--root", str(root.root), "list"])
    assert rc == 65 and err.startswith(f"vfioctl: {var}="), (rc, err)


@pytest.mark.parametrize("value", ["", "relative/dir", "/a/../b", "/a/./b", "/x\ny", "/x\x1b"])
def test_bad_state_dirs_are_bad_input(root, monkeypatch, value):
    monkeypatch.setenv("VFIOCTL_STATE_DIR", value)
    rc, out, err = run(["--root", str(root.root), "status"])
    assert rc == 65 and err.startswith("vfioctl: VFIOCTL_STATE_DIR="), (rc, err)
    assert err.count("\n") == 1


def test_a_state_folder_ten_levels_deep_is_created_private(root, monkeypatch):
    """A state folder path of ten nested missing folders gave exit 70."""
    deep = "/state/" + "/".join(f"d{i}" for i in range(10))
    monkeypatch.setenv("VFIOCTL_STATE_DIR", deep)
    host = root.host()
    from vfioctl.ops.journal import Journal

    with Journal(host, lock_timeout=1):
        pass
    real = root.root / deep.lstrip("/")
    assert stat.S_IMODE(real.stat().st_mode) == 0o700
    assert stat.S_IMODE((root.root / "state").stat().st_mode) == 0o755


def test_nan_and_inf_lock_timeouts_never_wait_forever(root, monkeypatch):
    for v in ("nan", "inf"):
        monkeypatch.setenv("VFIOCTL_LOCK_TIMEOUT", v)
        t = time.monotonic()
        rc, out, err = run(["--root", str(root.root), "restore", "--all"])
        assert rc == 65 and time.monotonic() - t < 5, (rc, err)


def test_a_fifo_as_the_write_trace_is_refused_without_blocking(root, tmp_path, monkeypatch):
    fifo = tmp_path / "trace"
    os.mkfifo(fifo)
    monkeypatch.setenv("VFIOCTL_TRACE_WRITES", str(fifo))
    from vfioctl.host.faults import _trace

    reader = None
    for with_reader in (False, True):
        if with_reader:  # a reader present: the open succeeds, the descriptor's type refuses
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        done: list = []
        th = threading.Thread(target=lambda: done.append(_catch(lambda: _trace("/sys/x", "1"))), daemon=True)
        th.start()
        th.join(5)
        assert done and "not a regular file" in done[0], done
    os.close(reader)


def _catch(fn):
    try:
        fn()
    except Exception as err:  # noqa: BLE001
        return str(err)
    return "no error"


def test_an_empty_vfioctl_root_is_bad_input(root, monkeypatch):
    monkeypatch.setenv("VFIOCTL_ROOT", "")
    rc, out, err = run(["list"])
    assert rc == 65 and "VFIOCTL_ROOT" in err, (rc, err)


def test_good_values_are_taken(root, monkeypatch):
    from vfioctl.host import env

    monkeypatch.setenv("VFIOCTL_LOCK_TIMEOUT", "2.5")
    monkeypatch.setenv("VFIOCTL_VERIFY_TIMEOUT", ".2")
    monkeypatch.setenv("VFIOCTL_FAULT_FAIL_AT", "3")
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/srv/vfioctl/")
    assert env.lock_timeout() == 2.5 and env.verify_timeout() == 0.2 and env.fault_fail_at() == 3
    assert env.state_dir() == "/srv/vfioctl"
    monkeypatch.delenv("VFIOCTL_LOCK_TIMEOUT")
    assert env.lock_timeout() == 60


def test_only_host_env_reads_the_environment():
    """One reader per variable: os.environ and os.getenv appear in vfioctl/host/env.py only."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "host" / "env.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb", "putenv"):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not found, found


def test_every_variable_is_documented():
    from vfioctl.host import env

    doc = (SRC.parents[1] / "docs" / "environment.md").read_text()
    names = [v.name for v in vars(env).values() if isinstance(v, env.Var)]
    assert len(names) >= 10
    for name in names:
        assert f"`{name}`" in doc, name
