"""vfioctl's lock on its state folder, and the check that the folder is one only root controls."""

from __future__ import annotations

import errno
import fcntl
import os
import stat as _stat
import time

from vfioctl.base.errors import Busy, Refused, from_oserror

TYPE_CHECKING = False
if TYPE_CHECKING:
    from vfioctl.host.core import Host


def _check_private_dir(host: Host, abspath: str) -> None:
    """The folder must be a real folder (no link) owned by root (or by us) and not writable by
    group or others: otherwise another user could plant a link in it and make root write
    through it (the ``state.lock`` symlink a review planted)."""
    if host.archive:
        return
    real = host._tree.real(abspath, follow=False)
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return
    except OSError as err:
        raise from_oserror(err, "look at", abspath) from err
    if _stat.S_ISLNK(st.st_mode) or not _stat.S_ISDIR(st.st_mode):
        raise Refused(f"{abspath} is not a folder (a link or a file is there): vfioctl keeps its state only in a "
                      "real folder; move it away")
    if st.st_uid not in (0, os.geteuid()):
        raise Refused(f"{abspath} belongs to uid {st.st_uid}, not root: another user could change vfioctl's "
                      f"state through it; fix with: chown root: {abspath}")
    if st.st_mode & 0o022:
        raise Refused(f"{abspath} is writable by group or others (mode {st.st_mode & 0o777:04o}): another user "
                      f"could plant links in it; fix with: chmod go-w {abspath}")


class StateLock:
    """An exclusive ``flock`` on a lock file in vfioctl's state folder, held as a context manager.

    The folder is created 0700 if missing and checked (:func:`_check_private_dir`); the
    lock file is opened with O_NOFOLLOW so a planted link is refused, never followed."""

    def __init__(self, host: Host, abspath: str, timeout: float) -> None:
        self.host = host
        self.abspath = abspath
        self.timeout = timeout
        self.fd: int | None = None

    def __enter__(self) -> "StateLock":

        host = self.host
        folder = os.path.dirname(self.abspath)
        host.make_dirs(folder)
        _check_private_dir(host, folder)
        real = host._tree.real(self.abspath, follow=False)
        try:
            fd = os.open(real, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise Refused(f"{self.abspath} is a symbolic link: refusing to follow it as root; remove it") from None
            raise from_oserror(err, "create the lock", self.abspath, creating=True) from err
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(fd)
                    raise from_oserror(err, "lock", self.abspath) from err
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise Busy(
                        f"another vfioctl is changing this host (lock {self.abspath} held for over "
                        f"{self.timeout:g} s); try again when it has finished"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
