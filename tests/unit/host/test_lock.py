"""vfioctl's lock on its state folder: created private, exclusive, bounded wait, and never through a
planted link or a folder another user controls."""

from __future__ import annotations

import fcntl
import os
import stat

import pytest

from vfioctl.base.errors import Busy, Refused
from vfioctl.host.core import Host
from vfioctl.host.lock import StateLock

LOCK = "/var/lib/vfioctl/state.lock"


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)  # a folder root holds sys/, proc/ or etc/
    return r


def test_the_folder_is_made_private_and_the_lock_file_0600(root):
    with StateLock(Host(root), LOCK, timeout=1) as lock:
        assert lock.fd is not None
        folder = root / "var/lib/vfioctl"
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0
        assert stat.S_IMODE((folder / "state.lock").stat().st_mode) == 0o600
    assert lock.fd is None  # closed on exit, and closing twice is harmless
    lock.__exit__(None, None, None)


def test_a_second_holder_waits_its_timeout_then_busy(root):
    host = Host(root)
    with StateLock(host, LOCK, timeout=1):
        with pytest.raises(Busy) as err:
            with StateLock(host, LOCK, timeout=0.05):
                pass
    assert "another vfioctl is changing this host" in str(err.value) and "0.05 s" in str(err.value)
    assert err.value.exit_code == Busy.exit_code
    with StateLock(host, LOCK, timeout=0.05):  # released: taken at once
        pass


def test_the_lock_is_a_flock_other_processes_see(root):
    with StateLock(Host(root), LOCK, timeout=1):
        fd = os.open(root / "var/lib/vfioctl/state.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_planted_link_as_the_lock_file_is_refused_not_followed(root, tmp_path):
    (root / "var/lib/vfioctl").mkdir(parents=True, mode=0o700)
    target = tmp_path / "elsewhere"
    (root / "var/lib/vfioctl/state.lock").symlink_to(target)
    with pytest.raises(Refused) as err:
        StateLock(Host(root), LOCK, timeout=0.1).__enter__()
    assert "symbolic link" in str(err.value)
    assert not target.exists()


@pytest.mark.parametrize("make", ["link", "file"])
def test_a_state_folder_that_is_a_link_or_a_file_is_refused(root, tmp_path, make):
    (root / "var/lib").mkdir(parents=True)
    if make == "link":
        (tmp_path / "real").mkdir(mode=0o700)
        (root / "var/lib/vfioctl").symlink_to(tmp_path / "real")
    else:
        (root / "var/lib/vfioctl").write_text("")
    with pytest.raises(Refused) as err:
        Host(root).check_private_dir("/var/lib/vfioctl")
    assert "not a folder" in str(err.value)


def test_a_state_folder_others_may_write_is_refused_with_the_fix(root):
    folder = root / "var/lib/vfioctl"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with pytest.raises(Refused) as err:
        StateLock(Host(root), LOCK, timeout=0.1).__enter__()
    assert "chmod go-w /var/lib/vfioctl" in str(err.value) and "0777" in str(err.value)
    assert not (folder / "state.lock").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_state_folder_of_another_user_is_refused(root):
    folder = root / "var/lib/vfioctl"
    folder.mkdir(parents=True, mode=0o700)
    os.chown(folder, 12345, 12345)
    with pytest.raises(Refused) as err:
        Host(root).check_private_dir("/var/lib/vfioctl")
    assert "uid 12345" in str(err.value) and "chown root:" in str(err.value)


def test_a_missing_folder_passes_the_check(root):
    Host(root).check_private_dir("/var/lib/vfioctl")
