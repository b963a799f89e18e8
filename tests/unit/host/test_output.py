"""The one writer of files the user names (vfioctl.host.output): `snapshot FILE`, `rom --dump
FILE`.  Never follows a link, never replaces what is not a regular file, keeps an existing
file's mode, makes new ones 0600 whatever the umask."""

from __future__ import annotations

import io
import os
import stat
import time

import pytest
from clirun import run
from fakehost import standard_host

from vfioctl.cli import main

ROM = bytes([0x55, 0xAA, 0x02]) + bytes(509)




@pytest.fixture
def root(tmp_path):
    b = standard_host(tmp_path / "root")
    probes = b.root / ".vfioctl/probes.json"
    probes.parent.mkdir(parents=True)
    import base64
    import json

    probes.write_text(json.dumps({"rom:0000:00:02.0": {"base64": base64.b64encode(ROM).decode()}}))
    (b.root / "sys/bus/pci/devices/0000:00:02.0/rom").write_bytes(b"")
    return b.root


def writers(root, dest):
    return [["--root", str(root), "snapshot", str(dest)], ["--root", str(root), "rom", "0000:00:02.0", "--dump", str(dest)]]


@pytest.fixture
def umask000():
    old = os.umask(0)
    yield
    os.umask(old)


@pytest.mark.parametrize("which", [0, 1])
def test_an_existing_private_file_stays_private(root, tmp_path, umask000, which):
    """A mode-0600 file was replaced by a 0644 one (0666 under umask 000)."""
    dest = tmp_path / "out.bin"
    dest.write_bytes(b"old")
    dest.chmod(0o600)
    rc, out, err = run(writers(root, dest)[which])
    assert rc == 0, err
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600 and dest.read_bytes() != b"old"
    dest.chmod(0o640)
    assert run(writers(root, dest)[which])[0] == 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640


@pytest.mark.parametrize("which", [0, 1])
def test_a_new_file_is_0600_under_any_umask(root, tmp_path, umask000, which):
    dest = tmp_path / "new.bin"
    assert run(writers(root, dest)[which])[0] == 0
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def _chardev(path, minor):
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))  # a private /dev/null (3) or /dev/full (7)
    return path


@pytest.mark.parametrize("which", [0, 1])
def test_a_character_device_is_written_as_a_stream(root, tmp_path, which):
    """/dev/null given as the output was replaced by a regular file."""
    null = _chardev(tmp_path / "null", 3)
    rc, out, err = run(writers(root, null)[which])
    assert rc == 0, err
    assert stat.S_ISCHR(os.lstat(null).st_mode)
    full = _chardev(tmp_path / "full", 7)
    rc, out, err = run(writers(root, full)[which])
    assert rc == 74 and "ENOSPC" in err and err.count("\n") == 1, (rc, err)
    assert stat.S_ISCHR(os.lstat(full).st_mode)


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("target", ["/proc/self/fd/1", "elsewhere", "/dev/null"])
def test_a_link_is_never_followed_nor_replaced(root, tmp_path, which, target):
    """A link to /proc/self/fd/1 was replaced by a file."""
    link = tmp_path / "link"
    link.symlink_to(target if target.startswith("/") else tmp_path / target)
    rc, out, err = run(writers(root, link)[which])
    assert rc == 65 and "symbolic link" in err and err.count("\n") == 1, (rc, err)
    assert os.readlink(link) == (target if target.startswith("/") else str(tmp_path / target))
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("which", [0, 1])
def test_a_fifo_nobody_reads_is_refused_at_once(root, tmp_path, which):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t = time.monotonic()
    rc, out, err = run(writers(root, fifo)[which])
    assert rc == 65 and "no process reads" in err and time.monotonic() - t < 10, (rc, err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_fifo_with_a_reader_gets_the_stream(root, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the ROM fits in the pipe's buffer
    rc, out, err = run(writers(root, fifo)[1])
    got = os.read(fd, 65536)
    os.close(fd)
    assert rc == 0 and got == ROM, err


@pytest.mark.parametrize("which", [0, 1])
def test_a_folder_is_refused(root, tmp_path, which):
    rc, out, err = run(writers(root, tmp_path)[which])
    assert rc == 65 and "is a folder" in err


def test_rom_dump_to_standard_output(root):
    import contextlib

    class Out(io.StringIO):
        def __init__(self):
            super().__init__()
            self.buffer = io.BytesIO()

    o = Out()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["--root", str(root), "rom", "0000:00:02.0", "--dump", "-"])
    assert rc == 0 and o.buffer.getvalue() == ROM
