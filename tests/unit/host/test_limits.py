"""The bound on each whole-file read, by what the file is; the words for a file's type."""

import os
import stat

import pytest

from vfioctl.host.limits import MAX_CMDLINE, MAX_READ, MAX_ROM, MAX_SYSFS_TEXT, kind_text, kind_word, read_limit


@pytest.mark.parametrize("path,limit", [
    ("/sys/bus/pci/devices/0000:03:00.0/vendor", MAX_SYSFS_TEXT),
    ("/sys/bus/pci/devices/0000:03:00.0/uevent", MAX_SYSFS_TEXT),
    ("/sys/bus/pci/devices/0000:03:00.0/rom", MAX_ROM),
    ("/sys/firmware/acpi/tables/DMAR", MAX_READ),
    ("/proc/cmdline", MAX_CMDLINE),
    ("/proc/cmdline2", MAX_READ),
    ("/usr/share/misc/pci.ids", MAX_READ),
    ("/lib/modules/6.1.0/modules.alias", MAX_READ),
    ("/sysfoo/rom", MAX_READ),  # not under /sys/
])
def test_read_limit_by_path(path, limit):
    assert read_limit(path) == limit


def test_the_bounds_are_what_the_kernel_can_produce():
    assert MAX_SYSFS_TEXT == 4096  # one page: sysfs_emit
    assert MAX_ROM == 16 << 20  # the ROM BAR decodes 16 MiB at most
    assert MAX_SYSFS_TEXT < MAX_CMDLINE < MAX_ROM < MAX_READ


def test_file_kinds_one_table_for_answers_and_messages(tmp_path):
    (tmp_path / "f").write_text("x")
    os.mkfifo(tmp_path / "p")
    os.symlink("f", tmp_path / "l")
    seen = {n: os.lstat(tmp_path / n).st_mode for n in ("f", "p", "l")}
    assert [kind_word(seen[n]) for n in ("f", "p", "l")] == ["file", "other", "link"]
    assert kind_text(seen["p"]) == "a FIFO" and kind_text(os.stat(tmp_path).st_mode) == "a folder"
    assert kind_word(os.stat("/dev/null").st_mode) == "char"
    assert kind_word(stat.S_IFBLK) == "other" and kind_text(stat.S_IFBLK) == "a block device"
    assert (kind_word(0), kind_text(0)) == ("other", "not a regular file")  # no type bits: not known
