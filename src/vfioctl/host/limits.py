"""Bounds on what a read may cost, shared by live, folder and archive hosts."""

from __future__ import annotations

#: the largest host file vfioctl reads (pci.ids and modules.alias are ~1.5 MB; a ROM <= 16 MiB)
MAX_READ = 32 << 20


#: links followed in one lookup before ELOOP, for folder roots and snapshots alike:
#: include/linux/namei.h MAXSYMLINKS, checked in fs/namei.c reserve_stack
#: (``total_link_count++ >= MAXSYMLINKS``), so 40 hops resolve
MAX_LINK_HOPS = 40
