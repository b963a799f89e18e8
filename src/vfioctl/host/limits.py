"""Bounds on what a read may cost, and the words for a file's type: what live, folder and archive
hosts share."""

from __future__ import annotations

import stat

#: the largest host file vfioctl reads (pci.ids and modules.alias are ~1.5 MB; a ROM <= 16 MiB)
MAX_READ = 32 << 20


#: a sysfs text attribute: the kernel shows one into a page (fs/sysfs/file.c sysfs_kf_seq_show,
#: sysfs_emit: PAGE_SIZE, 4 KiB on x86), a uevent into UEVENT_BUFFER_SIZE (2,048 bytes,
#: include/linux/kobject.h); what vfioctl reads of /sys is far smaller (names, numbers,
#: a uevent of ~200 bytes).  A hostile tree's 32 MiB "uevent" read once per device cost a
#: gigabyte; this bounds each such read.
MAX_SYSFS_TEXT = 4096


#: a PCI expansion ROM: the ROM BAR decodes at most 16 MiB (PCI 3.0, 6.2.5.2)
MAX_ROM = 16 << 20


#: /proc/cmdline: the kernel's COMMAND_LINE_SIZE is 2,048 to 4,096 bytes on most
#: architectures; 64 KiB leaves room for any of them
MAX_CMDLINE = 64 << 10


def read_limit(abspath: str) -> int:
    """The most bytes a whole-file read of *abspath* may return; a larger file is refused (it
    cannot have come from the kernel), never read to its end."""
    if abspath.startswith("/sys/"):
        if abspath.endswith("/rom"):
            return MAX_ROM
        if abspath.startswith("/sys/firmware/"):
            return MAX_READ  # ACPI tables and firmware blobs
        return MAX_SYSFS_TEXT
    if abspath == "/proc/cmdline":
        return MAX_CMDLINE
    return MAX_READ


#: entries of one folder: /proc of a machine at pid_max (4,194,304 on 64-bit) is the most a
#: real host lists; more means a tree made to be slow to read
MAX_DIR_ENTRIES = 1 << 22


#: links followed in one lookup before ELOOP, for folder roots and snapshots alike:
#: include/linux/namei.h MAXSYMLINKS, checked in fs/namei.c reserve_stack
#: (``total_link_count++ >= MAXSYMLINKS``), so 40 hops resolve
MAX_LINK_HOPS = 40


#: a file's type (``stat.S_IFMT`` of its mode): the word the trees answer with (``Host.kind``),
#: and the words a message says it with
_KINDS = {stat.S_IFREG: ("file", "a regular file"), stat.S_IFDIR: ("dir", "a folder"),
          stat.S_IFLNK: ("link", "a symbolic link"), stat.S_IFCHR: ("char", "a character device"),
          stat.S_IFBLK: ("other", "a block device"), stat.S_IFIFO: ("other", "a FIFO"),
          stat.S_IFSOCK: ("other", "a socket")}
_UNKNOWN = ("other", "not a regular file")


def kind_word(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), _UNKNOWN)[0]


def kind_text(mode: int) -> str:
    """What a message calls a file of *mode* ("a FIFO", "a folder", ...)."""
    return _KINDS.get(stat.S_IFMT(mode), _UNKNOWN)[1]
