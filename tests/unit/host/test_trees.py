"""A folder given to --root is read race-free and with bounded cost: what is opened is what
was resolved (O_NOFOLLOW|O_DIRECTORY per component from the folder itself), a FIFO or a
device node is refused by its type without being opened, and each read is bounded."""

from __future__ import annotations

import os
import stat
import threading
import time
import tracemalloc

import pytest
from clirun import run

from vfioctl.base.errors import InvalidInput, VfioctlError
from vfioctl.host.core import Host
from vfioctl.host.kernel import cpu


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sys/x/inside").mkdir(parents=True)
    (root / "sys/x/inside/value").write_text("inside\n")
    out = tmp_path / "outside"
    out.mkdir()
    (out / "value").write_text("OUTSIDE\n")
    return root, out


def _swap_to_link(root, out):
    os.rename(root / "sys/x/inside", root / "sys/x/old")
    os.symlink(out, root / "sys/x/inside")


def test_a_folder_swapped_for_a_link_after_it_was_resolved_is_never_followed(tree):
    root, out = tree
    h = Host(root)
    assert h.read("/sys/x/inside/value") == "inside"
    h._tree._fds.clear()  # resolved names remembered, no descriptor kept: the next read opens again
    _swap_to_link(root, out)
    try:
        got = h.read("/sys/x/inside/value")
    except VfioctlError:
        got = None
    assert got != "OUTSIDE"
    # a fresh look resolves the link inside the root (/tmp/.../outside is not under it)
    h.invalidate()
    assert h.read("/sys/x/inside/value", default=None) != "OUTSIDE"


def test_a_folder_swapped_back_and_forth_while_read_never_gives_outside_content(tree):
    """A race in `snapshot` of a folder root put an outside file's content into the archive."""
    root, out = tree
    stop = threading.Event()

    def swapper():
        link, real, old = root / "sys/x/inside", root / "sys/x/inside", root / "sys/x/old"
        while not stop.is_set():
            try:
                os.rename(real, old)
                os.symlink(out, link)
                os.unlink(link)
                os.rename(old, real)
            except OSError:
                pass

    th = threading.Thread(target=swapper, daemon=True)
    th.start()
    seen = set()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            h = Host(root)
            try:
                seen.add(h.read("/sys/x/inside/value", default=None))
            except VfioctlError:
                pass
    finally:
        stop.set()
        th.join()
    assert "OUTSIDE" not in seen, seen


def test_a_fifo_or_device_node_is_refused_without_being_opened(tree, monkeypatch):
    root, _ = tree
    os.mkfifo(root / "sys/x/inside/fifo")
    os.mknod(root / "sys/x/inside/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (root / "proc").mkdir()
    os.mkfifo(root / "proc/cmdline")
    opened = []
    real_open = os.open

    def recording_open(path, flags, *a, **k):
        opened.append(os.fsdecode(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", recording_open)
    h = Host(root)
    for p in ("/sys/x/inside/fifo", "/sys/x/inside/null", "/proc/cmdline"):
        t = time.monotonic()
        with pytest.raises(InvalidInput, match="not a regular file"):
            h.read(p)
        assert time.monotonic() - t < 2
    assert not [p for p in opened if p.rsplit("/", 1)[-1] in ("fifo", "null", "cmdline")], opened


def test_the_cli_refuses_a_fifo_as_cmdline_at_once(tree):
    root, _ = tree
    (root / "proc").mkdir()
    os.mkfifo(root / "proc/cmdline")
    t = time.monotonic()
    rc, out, err = run(["--root", str(root), "check"])
    assert rc in (0, 1) and time.monotonic() - t < 20 and "internal error" not in err


@pytest.mark.parametrize("where", ["/proc/cmdline", "/sys/bus/pci/devices/0000:00:02.0/uevent",
                                   "/sys/bus/pci/devices/0000:00:02.0/vendor"])
def test_a_32_mib_value_is_refused_before_it_costs_memory(fake, where):
    """32 MiB values in /proc/cmdline, cpuinfo or uevent files took 640 MB to 1.2 GB of memory."""
    big = fake.root / "amplify-big"
    big.write_bytes((b"x" * 63 + b"\n") * (1 << 19))
    p = fake.root / where.lstrip("/")
    p.unlink(missing_ok=True)
    p.symlink_to(os.path.relpath(big, os.path.realpath(p.parent)))
    tracemalloc.start()
    try:
        for argv in (["check"], ["list"], ["show", "0000:00:02.0"]):
            rc, out, err = run(["--root", str(fake.root), *argv])
            assert rc in (0, 1, 65), (argv, rc, err)
            assert "internal error" not in err
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 << 20, peak
    assert big.stat().st_size == 32 << 20


def test_cpuinfo_is_read_for_its_first_block_only(fake):
    (fake.root / "proc/cpuinfo").write_bytes(
        b"vendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\n\n" + (b"flags\t\t: " + b"x" * 54 + b"\n") * (1 << 19))
    tracemalloc.start()
    try:
        c = cpu(fake.host())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert c.vendor == "GenuineIntel" and "vmx" in c.flags
    assert peak < 4 << 20, peak


def test_a_chain_of_links_in_front_of_a_folder_is_walked_once(tmp_path):
    """Every lookup below a chain of 30 links paid the chain again."""
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "sys").mkdir()  # a folder root holds sys/, proc/ or etc/
    for i in range(200):
        (root / "real" / f"d{i}").mkdir()
        (root / "real" / f"d{i}" / "v").write_text(f"{i}\n")
    for i in range(29):
        os.symlink(f"c{i + 1}", root / f"c{i}")
    os.symlink("real", root / "c29")
    h = Host(root)
    calls = {"n": 0}
    inner = h._tree._readlink

    def counting(p):
        calls["n"] += 1
        return inner(p)

    h._tree._readlink = counting
    assert [h.read(f"/c0/d{i}/v") for i in range(200)] == [str(i) for i in range(200)]
    assert calls["n"] <= 31, calls


def test_a_device_listing_behind_links_still_names_each_devices_folder(fake):
    """sysfs_target joins a link's relative target to its folder only where that folder is no
    link, as the kernel's are; behind a chain it resolves (a wrong join named another folder)."""
    r = fake.root
    moved = r / "amplify/devices"
    moved.parent.mkdir()
    os.rename(r / "sys/bus/pci/devices", moved)
    for name in os.listdir(moved):
        target = os.path.normpath(os.path.join(r / "sys/bus/pci/devices", os.readlink(moved / name)))
        (moved / name).unlink()
        (moved / name).symlink_to(os.path.relpath(target, moved))
    os.symlink("../../../amplify/devices", r / "sys/bus/pci/devices")
    h = Host(r)
    for a in ("0000:00:02.0", "0000:01:01.0"):
        assert h.sysfs_target(f"/sys/bus/pci/devices/{a}") == h.realpath(f"/sys/bus/pci/devices/{a}")
        assert h.sysfs_target(f"/sys/bus/pci/devices/{a}").endswith("/" + a)
    rc, out, err = run(["--root", str(r), "list"])
    assert rc == 0 and "0000:01:02.0" in out, err
