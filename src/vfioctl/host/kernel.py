"""Facts about the running kernel: its release, build config, command line, CPU and log.

Each file is parsed here once, memoised per Host, and read by everyone else through
this module, so a captured host answers exactly like a live one.  The kernel log is a
probe (:mod:`vfioctl.host.probes`): a snapshot carries the lines that matter.
"""

from __future__ import annotations

import re
import zlib

from vfioctl.base.names import group_number
from vfioctl.host import probes
from vfioctl.host.core import Host
from vfioctl.host.process import run_local

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable


# ------------------------------------------------------------------ the kernel
def kernel_version(host: Host) -> tuple[int, int]:
    m = re.match(r"([0-9]{1,6})\.([0-9]{1,6})", host.uname_release())
    return (int(m[1]), int(m[2])) if m else (0, 0)


def kernel_config(host: Host) -> tuple[str | None, dict[str, str]]:
    """(the file read, {CONFIG_X: "y"|"m"|value}); options not set are absent."""

    def compute() -> tuple[str | None, dict[str, str]]:
        rel = host.uname_release()
        text = None
        source = None
        if rel:
            text = host.read_text(f"/boot/config-{rel}", default=None)
            source = f"/boot/config-{rel}"
        if text is None:
            raw = host.read_bytes("/proc/config.gz", default=None)
            if raw:
                try:
                    # bounded: a config is ~250 KB; a hostile snapshot's bomb stops at 16 MiB
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    text = d.decompress(raw, 16 << 20).decode("utf-8", "replace")
                    source = "/proc/config.gz"
                except (OSError, EOFError, zlib.error):  # (gzip's BadGzipFile is an OSError)
                    text = None
        if text is None:
            return None, {}
        conf = {}
        for line in text.splitlines():
            if line.startswith("CONFIG_"):
                k, _, v = line.partition("=")
                conf[k] = v.strip().strip('"')
        return source, conf

    return host.cached("facts:kconfig", compute)


def config_state(conf: dict[str, str], name: str) -> str:
    """``y``, ``m`` or ``missing``."""
    v = conf.get(name)
    return v if v in ("y", "m") else "missing"


def cmdline(host: Host) -> list[str]:
    """The kernel's own parameters (what follows `` -- `` belongs to init)."""
    words = host.read("/proc/cmdline", default="").split()
    return words[: words.index("--")] if "--" in words else words


IOMMU_GROUPS = "/sys/kernel/iommu_groups"


def iommu_group_numbers(host: Host) -> list[int]:
    """The IOMMU groups the kernel made (/sys/kernel/iommu_groups/N), sorted; [] when the IOMMU
    is off.  Entries that are not a group number are not groups (a crafted tree's "²" included)."""
    out = []
    for name in host.listdir(IOMMU_GROUPS):
        n = group_number(name)
        if n is not None:
            out.append(n)
    return sorted(out)


def cmdline_value(params: Iterable[str], name: str) -> list[str]:
    """Every value given to *name* (``intel_iommu=on,sm_on`` -> ``["on", "sm_on"]``)."""
    out: list[str] = []
    for p in params:
        key, eq, value = p.partition("=")
        if eq and key.replace("-", "_") == name.replace("-", "_"):
            out.extend(v for v in value.split(",") if v)
    return out


class Cpu:
    __slots__ = ("vendor", "flags")

    def __init__(self, vendor: str | None, flags: frozenset[str]) -> None:
        self.vendor = vendor  # GenuineIntel, AuthenticAMD, ...
        self.flags = flags

    @property
    def kind(self) -> str | None:
        return {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "amd"}.get(self.vendor or "")

    @property
    def in_vm(self) -> bool:
        return "hypervisor" in self.flags


#: the part of /proc/cpuinfo read: its first block is under 2 KiB even with every flag
CPUINFO_HEAD = 64 << 10


def cpu(host: Host) -> Cpu:
    def compute() -> Cpu:
        vendor: str | None = None
        flags: frozenset[str] = frozenset()
        # only the first processor block matters: a prefix of the file (a machine of thousands
        # of CPUs has megabytes of it; a hostile tree's 32 MiB cost a gigabyte split into lines)
        head = host.read_bytes("/proc/cpuinfo", CPUINFO_HEAD, default=b"").decode("utf-8", "replace")
        for line in head.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "vendor_id" and vendor is None:
                vendor = value.strip()
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
            elif not line.strip() and vendor is not None:
                break  # the first processor block says it all
        return Cpu(vendor, flags)

    return host.cached("facts:cpu", compute)


# ------------------------------------------------------------------ the kernel log
#: the kernel log lines worth keeping (and all a snapshot captures of the log)
DMESG_PATTERN = re.compile(r"DMAR|IOMMU|AMD-Vi|remapping", re.IGNORECASE)


KERNEL_LOG = "kernel log (dmesg)"


def kernel_log(host: Host) -> tuple[list[str] | None, str]:
    """(IOMMU-related kernel log lines, where from) or (None, why not)."""

    def compute() -> tuple[list[str] | None, str]:
        got = host.probe("dmesg")
        if not isinstance(got, dict):
            return None, "no kernel log captured"
        lines = got.get("lines")
        if not isinstance(lines, list):
            return None, str(got.get("why") or "the kernel log could not be read")
        return [str(x) for x in lines], KERNEL_LOG

    return host.cached("facts:dmesg", compute)


def _measure_dmesg(host: Host, key: str) -> object:
    # reading the log needs root when kernel.dmesg_restrict is 1 (Debian's default)
    rc, out = run_local(["dmesg"], 5)
    if rc != 0:
        why = out.strip().splitlines()
        return {"lines": None, "why": f"dmesg failed: {why[-1] if why else 'exit ' + str(rc)}"}
    return {"lines": [line for line in out.splitlines() if DMESG_PATTERN.search(line)]}


probes.register("dmesg", _measure_dmesg)
