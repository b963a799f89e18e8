"""Capture what vfioctl reads from a host into a .tar.gz that ``Host(root=...)`` reads back.

The archive holds one top-level folder ``root/`` with the host's absolute
layout: ``root/sys/bus/pci/devices/0000:00:02.0`` is the same relative link the
kernel has, ``root/sys/devices/...`` holds the attribute files vfioctl reads,
``root/proc/cmdline`` and so on.  Links stay relative so that they resolve
inside the unpacked folder, and :func:`vfioctl.host._unpack_snapshot`
extracts with tarfile's ``data`` filter, which refuses anything else.

Only what vfioctl reads is captured (a few hundred small files, plus pci.ids
and the module indexes), so a capture takes well under a second.  Sysfs files
that cannot be read (EIO, ENODEV, EACCES as non-root) are listed in
``/.vfioctl/meta.json`` under ``skipped``; they never stop the capture.
Device nodes (/dev/vfio/*, /dev/kvm) become empty marker files.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

from vfioctl import __version__
from vfioctl.errors import from_oserror
from vfioctl.host import Host

SCHEMA = "vfioctl.snapshot/1"
META = "/.vfioctl/meta.json"
TOP = "root"

#: attribute files of a PCI function that vfioctl reads
PCI_ATTRS = (
    "vendor", "device", "class", "subsystem_vendor", "subsystem_device", "revision", "uevent",
    "modalias", "driver_override", "numa_node", "boot_vga", "reset_method", "enable", "irq",
    "local_cpulist", "d3cold_allowed", "power_state", "current_link_speed", "current_link_width",
)
#: write-only files whose presence matters (``reset`` exists iff the kernel can reset it)
PCI_MARKERS = ("reset", "remove", "rescan")
PCI_LINKS = ("driver", "iommu_group", "physfn")
#: config space: the standard header is enough for the header type and IDs
CONFIG_BYTES = 64

PROC_FILES = (
    "/proc/cmdline", "/proc/cpuinfo", "/proc/sys/kernel/osrelease", "/proc/sys/kernel/hostname",
    "/proc/modules", "/proc/mounts", "/proc/swaps", "/proc/net/route", "/proc/net/if_inet6",
)
ETC_FILES = ("/etc/os-release", "/etc/default/grub", "/etc/kernel/cmdline")
MODULE_INDEXES = ("modules.alias", "modules.dep", "modules.builtin")
#: boot-loader tools whose presence tells `check` and `boot cmdline` how this host boots
BOOT_TOOLS = ("update-grub", "grubby", "proxmox-boot-tool", "kernel-install", "grub2-mkconfig", "grub-mkconfig")
TOOL_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
MODULE_PREFIXES = ("vfio", "kvm")


@dataclass
class SnapshotResult:
    path: str | None
    files: int = 0
    links: int = 0
    size: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "path": self.path, "files": self.files, "links": self.links,
                "size": self.size, "seconds": round(self.seconds, 3), "skipped": self.skipped}


class _Capture:
    """Adds host files to a tar under ``root/``, each path once, never failing on a read."""

    def __init__(self, host: Host, tar: tarfile.TarFile) -> None:
        self.host = host
        self.tar = tar
        self.seen: set[str] = set()
        self.now = time.time()
        self.result = SnapshotResult(path=None)

    def _info(self, abspath: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(TOP + abspath)
        ti.type = kind
        ti.mode = mode
        ti.mtime = int(self.now)
        ti.uname = ti.gname = ""
        return ti

    def _skip(self, abspath: str, err: OSError) -> None:
        name = os.strerror(err.errno) if err.errno else str(err)
        self.result.skipped.append(f"{abspath}: {name}")

    # ---------------------------------------------------------------- adding
    def data(self, abspath: str, payload: bytes) -> None:
        if abspath in self.seen:
            return
        self.seen.add(abspath)
        ti = self._info(abspath, tarfile.REGTYPE, 0o644)
        ti.size = len(payload)
        self.tar.addfile(ti, io.BytesIO(payload))
        self.result.files += 1

    def file(self, abspath: str, size: int = -1, marker_if_unreadable: bool = False) -> bool:
        """Copy one file's content; False if it does not exist."""
        if abspath in self.seen:
            return True
        try:
            with open(self.host.path(abspath), "rb") as f:
                payload = f.read(size)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except IsADirectoryError:
            self.dir(abspath)
            return True
        except OSError as err:
            if marker_if_unreadable:
                self.marker(abspath)
            else:
                self._skip(abspath, err)
            return True
        self.data(abspath, payload)
        return True

    def marker(self, abspath: str) -> None:
        """An empty file standing for something whose presence is what matters."""
        if self.host.exists(abspath):
            self.data(abspath, b"")

    def dir(self, abspath: str) -> None:
        if abspath in self.seen or not self.host.is_dir(abspath):
            return
        self.seen.add(abspath)
        self.tar.addfile(self._info(abspath, tarfile.DIRTYPE, 0o755))

    def link(self, abspath: str) -> str | None:
        """Copy a symlink as it is (relative, as sysfs has them); its host-absolute target."""
        try:
            target = os.readlink(self.host.path(abspath))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as err:
            if err.errno == 22:  # EINVAL: not a link
                return None
            self._skip(abspath, err)
            return None
        if target.startswith("/"):
            # the 'data' filter refuses absolute links: keep it inside the root
            target = os.path.relpath(target, os.path.dirname(abspath))
        if abspath not in self.seen:
            self.seen.add(abspath)
            ti = self._info(abspath, tarfile.SYMTYPE, 0o777)
            ti.linkname = target
            self.tar.addfile(ti)
            self.result.links += 1
        return self.host.realpath(abspath)

    def tree_files(self, absdir: str) -> None:
        """Every regular file directly in *absdir* (small attribute folders)."""
        for name in self.host.listdir(absdir):
            p = f"{absdir}/{name}"
            if not os.path.islink(self.host.path(p)) and not self.host.is_dir(p):
                self.file(p)

    # ---------------------------------------------------------------- parts
    def pci(self) -> None:
        host = self.host
        self.dir("/sys/bus/pci/devices")
        for name in host.listdir("/sys/bus/pci/devices"):
            real = self.link(f"/sys/bus/pci/devices/{name}")
            if real is None or not host.is_dir(real):
                continue
            self.dir(real)
            for attr in PCI_ATTRS:
                self.file(f"{real}/{attr}")
            self.file(f"{real}/config", CONFIG_BYTES)
            for m in PCI_MARKERS:
                self.marker(f"{real}/{m}")
            for entry in host.listdir(real):
                if entry.startswith("sriov_"):
                    self.file(f"{real}/{entry}")
                elif entry in PCI_LINKS or (entry.startswith("virtfn") and entry[6:].isdigit()):
                    self.link(f"{real}/{entry}")
        for f in ("drivers_probe", "drivers_autoprobe", "rescan"):
            self.marker(f"/sys/bus/pci/{f}")
        self.dir("/sys/bus/pci/drivers")
        for drv in host.listdir("/sys/bus/pci/drivers"):
            d = f"/sys/bus/pci/drivers/{drv}"
            self.dir(d)
            for entry in host.listdir(d):
                p = f"{d}/{entry}"
                if entry in ("bind", "unbind", "new_id", "remove_id", "uevent"):
                    self.marker(p)
                elif entry == "module" or os.path.islink(host.path(p)):
                    self.link(p)

    def iommu(self) -> None:
        host = self.host
        self.dir("/sys/kernel/iommu_groups")
        for g in host.listdir("/sys/kernel/iommu_groups"):
            gd = f"/sys/kernel/iommu_groups/{g}"
            self.dir(gd)
            self.dir(f"{gd}/devices")
            for f in ("type", "reserved_regions"):
                self.file(f"{gd}/{f}")
            for dev in host.listdir(f"{gd}/devices"):
                self.link(f"{gd}/devices/{dev}")
        self.dir("/sys/class/iommu")
        for unit in host.listdir("/sys/class/iommu"):
            real = self.link(f"/sys/class/iommu/{unit}")
            if real is None:
                continue
            self.dir(real)
            for sub in ("intel-iommu", "amd-iommu"):
                self.tree_files(f"{real}/{sub}")
        self.dir("/sys/firmware/acpi/tables")
        for table in ("DMAR", "IVRS"):
            # root-only (mode 0400): copy when readable, else just mark presence
            self.file(f"/sys/firmware/acpi/tables/{table}", marker_if_unreadable=True)

    def classes(self) -> None:
        host = self.host
        extra = {"net": ("operstate", "address", "ifindex"), "block": ("dev", "size", "partition")}
        for cls, attrs in extra.items():
            base = f"/sys/class/{cls}"
            self.dir(base)
            for name in host.listdir(base):
                real = self.link(f"{base}/{name}")
                if real is None:
                    continue
                # the folders on the link's path, so it resolves inside the snapshot
                self.dir(real)
                for a in attrs:
                    self.file(f"{real}/{a}")
                dev = self.link(f"{real}/device")
                if dev:
                    self.dir(dev)

    def modules(self) -> None:
        host = self.host
        for mod in host.listdir("/sys/module"):
            if not mod.startswith(MODULE_PREFIXES):
                continue
            d = f"/sys/module/{mod}"
            self.dir(d)
            for f in ("refcnt", "initstate"):
                self.file(f"{d}/{f}")
            self.tree_files(f"{d}/parameters")
        rel = host.uname_release()
        if rel:
            for name in MODULE_INDEXES:
                self.file(f"/lib/modules/{rel}/{name}")

    def system(self, include_ids: bool) -> None:
        host = self.host
        for p in PROC_FILES + ETC_FILES:
            self.file(p)
        rel = host.uname_release()
        if not (rel and self.file(f"/boot/config-{rel}")):
            self.file("/proc/config.gz")
        for tool in BOOT_TOOLS:
            for d in TOOL_DIRS:
                self.marker(f"{d}/{tool}")
        for folder, suffix in (("/boot/loader/entries", ".conf"), ("/etc/default/grub.d", ".cfg")):
            self.dir(folder)
            for name in host.listdir(folder):
                if name.endswith(suffix):
                    self.file(f"{folder}/{name}")
        if include_ids:
            from vfioctl.pciids import SEARCH

            for p in SEARCH:
                if self.file(p):
                    break
        self.dir("/dev/vfio")
        for name in host.listdir("/dev/vfio"):
            self.marker(f"/dev/vfio/{name}")
        self.marker("/dev/kvm")

    def kernel_log(self) -> None:
        from vfioctl.checks import SNAPSHOT_DMESG, live_dmesg

        if self.host.is_live:
            lines, why = live_dmesg()
            if lines is None:
                self.result.skipped.append(f"dmesg: {why}")
                return
            self.data(SNAPSHOT_DMESG, "".join(line + "\n" for line in lines).encode())
        else:
            self.file(SNAPSHOT_DMESG)

    def meta(self) -> None:
        host = self.host
        if host.is_live:
            u = os.uname()
            uname = {"sysname": u.sysname, "release": u.release, "version": u.version, "machine": u.machine}
            hostname = socket.gethostname()
        else:
            uname = {"release": host.uname_release() or None}
            hostname = host.read("/proc/sys/kernel/hostname", default=None)
        meta = {
            "schema": SCHEMA,
            "vfioctl_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "hostname": hostname,
            "uname": uname,
            "source": host.source,
            "files": self.result.files + 1,
            "links": self.result.links,
            "skipped": self.result.skipped,
        }
        self.data(META, (json.dumps(meta, indent=2) + "\n").encode())


def capture(host: Host, out: BinaryIO, *, include_ids: bool = True) -> SnapshotResult:
    """Write a snapshot of *host* (live or captured) as a gzip'd tar stream to *out*."""
    start = time.monotonic()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6, format=tarfile.PAX_FORMAT) as tar:
        cap = _Capture(host, tar)
        cap.tar.addfile(cap._info("", tarfile.DIRTYPE, 0o755))  # root/
        cap.pci()
        cap.iommu()
        cap.classes()
        cap.modules()
        cap.system(include_ids)
        cap.kernel_log()
        cap.meta()
    res = cap.result
    res.seconds = time.monotonic() - start
    return res


def write_snapshot(host: Host, path: str | os.PathLike, *, include_ids: bool = True) -> SnapshotResult:
    """Capture *host* into *path* atomically (temp file in the same folder, fsync, rename)."""
    dest = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vfioctl-snapshot-", suffix=".tmp", dir=folder)
    except OSError as err:
        raise from_oserror(err, "create a snapshot in", folder) from err
    try:
        with os.fdopen(fd, "wb") as f:
            res = capture(host, f, include_ids=include_ids)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException as err:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise from_oserror(err, "write snapshot", dest) from err
        raise
    res.path = dest
    res.size = os.path.getsize(dest)
    return res
