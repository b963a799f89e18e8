"""The read path under every Host: a regular file read bounded, in as few calls as it takes; a
folder root's folders resolved inside it, each once."""

from __future__ import annotations

import errno
import os

import pytest

from vfioctl.base.errors import NotFound
from vfioctl.host import trees
from vfioctl.host.core import Host
from vfioctl.host.trees import read_regular


@pytest.fixture
def calls(monkeypatch):
    """Every os.read and fcntl-style call the read path makes, by name."""
    seen: list[str] = []
    real_read, real_blocking = os.read, os.set_blocking

    def read(fd, n):
        seen.append("read")
        return real_read(fd, n)

    def set_blocking(fd, on):
        seen.append("set_blocking")
        return real_blocking(fd, on)

    monkeypatch.setattr(trees.os, "read", read)
    monkeypatch.setattr(trees.os, "set_blocking", set_blocking)
    return seen


def test_a_file_of_known_size_is_read_in_one_call(tmp_path, calls):
    f = tmp_path / "uevent"
    f.write_bytes(b"PCI_ID=8086:10D3\n" * 20)
    assert read_regular(str(f), -1) == f.read_bytes()
    assert calls == ["read"]  # no second read for the end, no fcntl


def test_a_prefix_is_one_read(tmp_path, calls):
    f = tmp_path / "config"
    f.write_bytes(bytes(range(256)) * 16)
    assert read_regular(str(f), 16) == bytes(range(16))
    assert calls == ["read"]


def test_a_file_without_a_size_is_read_to_its_end(calls):
    # procfs gives st_size 0: the read goes on until a read gives nothing
    data = read_regular("/proc/self/status", -1)
    assert data.startswith(b"Name:") and data.endswith(b"\n")
    assert calls[-1] == "read" and len(calls) >= 2


def test_a_read_that_would_block_is_retried_blocking(tmp_path, monkeypatch):
    f = tmp_path / "attr"
    f.write_bytes(b"1\n")
    real_read, tries = os.read, []

    def read(fd, n):
        tries.append(os.get_blocking(fd))
        if len(tries) == 1:
            raise BlockingIOError(errno.EAGAIN, "would block")
        return real_read(fd, n)

    monkeypatch.setattr(trees.os, "read", read)
    assert read_regular(str(f), -1) == b"1\n"
    assert tries == [False, True]


def test_no_file_larger_than_the_bound_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(trees, "MAX_READ", 1000)
    f = tmp_path / "big"
    f.write_bytes(b"x" * 1001)
    with pytest.raises(OSError) as err:
        read_regular(str(f), -1)
    assert err.value.errno == errno.EFBIG
    assert read_regular(str(f), 1000) == b"x" * 1000


def test_a_fifo_or_a_folder_is_refused_without_a_read(tmp_path, calls):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as err:
        read_regular(str(fifo), -1)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(IsADirectoryError):
        read_regular(str(tmp_path), -1)
    assert calls == []


def _device_tree(root):
    """sysfs's shape: /sys/bus/pci/devices/X -> ../../../devices/pci0000:00/X."""
    dev = root / "sys/devices/pci0000:00/0000:00:02.0"
    dev.mkdir(parents=True)
    (dev / "uevent").write_text("PCI_ID=8086:10D3\n")
    bus = root / "sys/bus/pci/devices"
    bus.mkdir(parents=True)
    (bus / "0000:00:02.0").symlink_to("../../../devices/pci0000:00/0000:00:02.0")
    return dev


def test_a_folder_root_resolves_the_bus_link_inside_it(tmp_path):
    root = tmp_path / "root"
    _device_tree(root)
    host = Host(root)
    assert host.read("/sys/bus/pci/devices/0000:00:02.0/uevent") == "PCI_ID=8086:10D3"
    tree = host._tree
    assert tree._dirs["/sys/bus/pci/devices/0000:00:02.0"] == str(root / "sys/devices/pci0000:00/0000:00:02.0")
    # a folder under a resolved one is its entry: one lstat, no walk from the top
    (root / "sys/devices/pci0000:00/0000:00:02.0/net").mkdir()
    (root / "sys/devices/pci0000:00/0000:00:02.0/net/flags").write_text("0x1003\n")
    assert host.read("/sys/bus/pci/devices/0000:00:02.0/net/flags") == "0x1003"


def test_a_folder_link_out_of_the_root_stays_in_it(tmp_path):
    root = tmp_path / "root"
    _device_tree(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "uevent").write_text("SECRET\n")
    # an absolute link and a climbing one: both resolve inside the root, as under chroot
    (root / "sys/bus/pci/devices/0000:00:03.0").symlink_to(str(outside))
    (root / "sys/bus/pci/devices/0000:00:04.0").symlink_to("../../../../../outside")
    host = Host(root)
    for name in ("0000:00:03.0", "0000:00:04.0"):
        with pytest.raises(NotFound):
            host.read(f"/sys/bus/pci/devices/{name}/uevent")
    # a folder that became a link after it was resolved is found again after a change
    host.read("/sys/bus/pci/devices/0000:00:02.0/uevent")
    dev = root / "sys/devices/pci0000:00/0000:00:02.0"
    dev.rename(tmp_path / "moved")
    dev.symlink_to(str(outside))
    host.invalidate()
    with pytest.raises(NotFound):
        host.read("/sys/bus/pci/devices/0000:00:02.0/uevent")
