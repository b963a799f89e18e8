"""(split from host.py)"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from vfioctl.host.core import Host
    WriteHook = Callable[["Host", str, str], None]
    RunHook = Callable[["Host", list[str]], "tuple[int, str]"]


#: the largest host file vfioctl reads (pci.ids and modules.alias are ~1.5 MB; a ROM <= 16 MiB)
MAX_READ = 32 << 20


#: links followed in one lookup before ELOOP, for folder roots and snapshots alike:
#: include/linux/namei.h MAXSYMLINKS, checked in fs/namei.c reserve_stack
#: (``total_link_count++ >= MAXSYMLINKS``), so 40 hops resolve
MAX_LINK_HOPS = 40
