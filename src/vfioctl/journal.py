"""The journal: what vfioctl changed, so that `restore` puts back exactly what was there.

One JSON file (``/var/lib/vfioctl/state.json`` under the host root, or
``$VFIOCTL_STATE_DIR``), written atomically (temp file, mode 0600, fsync,
``os.replace``) and only while holding an exclusive ``flock`` on
``state.lock`` beside it.  The lock is held for a whole command (plan and
apply), so two vfioctl processes never interleave writes to one device.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass, field

from vfioctl.errors import Busy, VfioctlError, from_oserror
from vfioctl.host import Host

SCHEMA = "vfioctl.journal/1"


@dataclass
class DeviceRecord:
    """What a device looked like before vfioctl touched it."""

    address: str
    vendor_device: str
    original_driver: str | None
    original_override: str | None
    target_driver: str
    origin: str = "hide"
    #: the kernel module of the original driver, to load it again if it was unloaded
    original_module: str | None = None
    #: dynamic IDs vfioctl added with new_id, as (driver, "vvvv dddd")
    added_ids: list[list[str]] = field(default_factory=list)
    #: "pending" while a change is under way, "hidden" once verified
    state: str = "pending"
    since: float = field(default_factory=time.time)


@dataclass
class SriovRecord:
    """What an SR-IOV physical function looked like before vfioctl changed it."""

    pf: str
    original_numvfs: int
    original_autoprobe: bool | None
    origin: str = "sriov"
    state: str = "pending"
    since: float = field(default_factory=time.time)


class Journal:
    """The state file.  Use as a context manager to hold the lock."""

    def __init__(self, host: Host, lock_timeout: float | None = None) -> None:
        self.host = host
        self.dir = host.path(host.state_dir())
        self.file = os.path.join(self.dir, "state.json")
        self.lock_file = os.path.join(self.dir, "state.lock")
        self.lock_timeout = float(os.environ.get("VFIOCTL_LOCK_TIMEOUT", "60")) if lock_timeout is None else lock_timeout
        self._lock_fd: int | None = None
        self.devices: dict[str, DeviceRecord] = {}
        self.sriov: dict[str, SriovRecord] = {}
        self._loaded = False

    # ------------------------------------------------------------- locking
    def __enter__(self) -> "Journal":
        self.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unlock()

    def lock(self) -> None:
        try:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise from_oserror(err, "create the journal lock", self.host.unmap(self.lock_file)) from err
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise from_oserror(err, "lock", self.host.unmap(self.lock_file)) from err
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise Busy(
                        f"another vfioctl is changing this host (lock {self.host.unmap(self.lock_file)} "
                        f"held for over {self.lock_timeout:g} s); try again when it has finished"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        self._lock_fd = fd
        self.load()

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------- file
    def load(self) -> None:
        self.devices, self.sriov = {}, {}
        try:
            with open(self.file) as f:
                data = json.load(f)
        except FileNotFoundError:
            self._loaded = True
            return
        except json.JSONDecodeError as err:
            raise VfioctlError(
                f"journal {self.host.unmap(self.file)} is not valid JSON ({err}); "
                "it was not written by vfioctl's atomic writer: inspect it, move it away, and restore devices by hand"
            ) from err
        except OSError as err:
            raise from_oserror(err, "read the journal", self.host.unmap(self.file)) from err
        for addr, rec in (data.get("devices") or {}).items():
            self.devices[addr] = DeviceRecord(**rec)
        for pf, rec in (data.get("sriov") or {}).items():
            self.sriov[pf] = SriovRecord(**rec)
        self._loaded = True

    def save(self) -> None:
        if self._lock_fd is None:
            raise VfioctlError("internal error: journal saved without holding its lock")
        data = {
            "schema": SCHEMA,
            "devices": {a: asdict(r) for a, r in sorted(self.devices.items())},
            "sriov": {p: asdict(r) for p, r in sorted(self.sriov.items())},
        }
        self.host.write_file(f"{self.host.state_dir()}/state.json", json.dumps(data, indent=2) + "\n", 0o600,
                             action="write the journal")

    # ------------------------------------------------------------- records
    def record_device(self, rec: DeviceRecord) -> None:
        """Keep the first original: a device hidden twice must restore to its real original."""
        old = self.devices.get(rec.address)
        if old is not None:
            old.target_driver = rec.target_driver
            for i in rec.added_ids:
                if i not in old.added_ids:
                    old.added_ids.append(i)
            return
        self.devices[rec.address] = rec

    def record_sriov(self, rec: SriovRecord) -> None:
        if rec.pf not in self.sriov:
            self.sriov[rec.pf] = rec


def read_journal(host: Host) -> Journal:
    """Read the journal without taking the lock (for status/show)."""
    j = Journal(host)
    if os.path.exists(j.file):
        try:
            j.load()
        except VfioctlError:
            raise
    return j
