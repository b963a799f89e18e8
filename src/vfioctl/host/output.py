"""Files the user asked for on this machine (a snapshot, a ROM dump), written atomically."""

from __future__ import annotations

import os
import tempfile

from vfioctl.base.errors import InvalidInput, from_oserror

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


def write_output(path: str | os.PathLike, fill: Callable[[Any], object], *, what: str = "file") -> str:
    """Write a file the user asked for on this machine (a snapshot, a ROM dump), not on the host
    root: into a temp file beside it, fsync, mode by the umask, rename over the target; nothing
    is left behind on failure.  *fill* writes the content into the open binary file."""
    dest = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(dest)
    if os.path.isdir(dest):
        raise InvalidInput(f"{dest} is a folder: give the {what}'s file name")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".vfioctl-", suffix=".tmp", dir=folder)
    except OSError as err:
        raise from_oserror(err, f"create the {what} in", folder) from err
    try:
        with os.fdopen(fd, "wb") as f:
            fill(f)
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
            raise from_oserror(err, f"write the {what}", dest) from err
        raise
    return dest
