"""One exception hierarchy for vfioctl.

Every error carries a one-line, actionable message and the exit code the CLI
uses for it.  Each class says who must act: the user (bad input, host not
ready, device in use) or us (a bug).  Subclasses also inherit the matching
built-in exception so that callers may catch ``ValueError`` or
``PermissionError`` as they would elsewhere.

Exit codes (documented in the README and ``vfioctl --help``):

====  ===========================================================
0     success
1     the command ran and found a problem (``check`` fail, ``status``
      inconsistency)
2     command-line usage error
65    bad input value: address, ID, config file, environment variable; a tree,
      snapshot, journal or QEMU answer no kernel, QEMU or vfioctl writes (EX_DATAERR)
66    a device, group or file named does not exist (EX_NOINPUT)
69    refused: device in use, group not viable, held by a VM,
      host not ready (EX_UNAVAILABLE)
70    internal error: a bug in vfioctl (EX_SOFTWARE)
74    the kernel refused or did not confirm a change; or vfioctl's own output
      could not be written (full, closed, gone) (EX_IOERR)
75    temporary: lock busy, timeout waiting for the kernel (EX_TEMPFAIL)
77    permission denied (EX_NOPERM)
130   interrupted (Ctrl-C) after rolling back
====  ===========================================================
"""

from __future__ import annotations

import errno as _errno
import os

#: the hierarchy, as the package face (``vfioctl.VfioctlError``, ...) re-exports it
__all__ = [
    "VfioctlError", "InvalidInput", "InvalidAddress", "ConfigError", "NotFound", "DeviceNotFound", "DeviceVanished",
    "Refused", "InUse", "HostNotReady", "KernelError", "VerifyFailed", "Busy", "VfioctlPermissionError",
    "Interrupted",
]


class VfioctlError(Exception):
    """Root of all vfioctl errors.  Subclasses say who must act."""

    exit_code = 70

    def __init__(self, message: str, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        out: dict[str, object] = {"error": type(self).__name__, "message": self.message}
        for k, v in self.fields.items():
            out[k] = v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v)
        return out


class InvalidInput(VfioctlError, ValueError):
    """The user gave a value we cannot accept (address, ID, option).  User acts."""

    exit_code = 65


class InvalidAddress(InvalidInput):
    """A PCI address that does not parse or is out of range.  User acts."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(
            f"invalid PCI address {text!r}: {reason} "
            "(expected [DDDD:]BB:SS.F, e.g. 0000:03:10.3 or 03:10.3)",
            address=text,
        )


class ConfigError(InvalidInput):
    """The config file is malformed.  User acts."""


class NotFound(VfioctlError, LookupError):
    """Something named does not exist on this host.  User acts."""

    exit_code = 66


class DeviceNotFound(NotFound):
    """No PCI function at this address.  User acts (check the address)."""

    def __init__(self, address: object, path: object) -> None:
        super().__init__(
            f"no PCI device {address} on this host ({path} does not exist); "
            "`vfioctl list` shows the devices present",
            address=str(address),
            path=str(path),
        )


class DeviceVanished(NotFound):
    """A device disappeared while we were working on it (hot-unplug, VF teardown)."""

    def __init__(self, address: object, during: str) -> None:
        super().__init__(
            f"PCI device {address} disappeared while {during}; nothing more was done to it",
            address=str(address),
        )


class Refused(VfioctlError):
    """vfioctl refuses to act because it would harm the host or fail.  User acts."""

    exit_code = 69


class InUse(Refused):
    """The host is using the device.  User acts (stop using it, or --force)."""


class HostNotReady(Refused):
    """The host lacks something needed (IOMMU, module, driver).  User acts."""


class KernelError(VfioctlError, OSError):
    """The kernel refused a write or did not confirm it.  User acts on the message."""

    exit_code = 74


class VerifyFailed(KernelError):
    """A write returned success but the kernel state is not what we asked for."""


class Busy(VfioctlError):
    """A lock is held or a bounded wait ran out.  Try again."""

    exit_code = 75


class WriteTimedOut(Busy):
    """A kernel write (an unbind, a driver probe) did not return within its bound: something
    still holds the device.  The write goes on in a child process; vfioctl returns.  User acts
    (end what holds the device, then restore or try again)."""


class VfioctlPermissionError(VfioctlError, PermissionError):
    """Permission denied reading or writing a kernel file.  User acts (run as root)."""

    exit_code = 77


class Interrupted(VfioctlError, KeyboardInterrupt):
    """Ctrl-C during a change; what was done has been rolled back."""

    exit_code = 130


def valid(value: str, ok: bool, message: str) -> str:
    """*value* when *ok*, else InvalidInput(*message*): a value given by the user, checked
    against its grammar where it comes in."""
    if not ok:
        raise InvalidInput(message)
    return value


def from_oserror(err: OSError, action: str, path: object, *, reading: bool = False,
                 creating: bool = False) -> VfioctlError:
    """Translate an OSError raised while touching *path* into our hierarchy.

    A link loop, a folder where a file belongs, something too large or (when
    *reading*) not a regular file means the tree is not what it must be: bad
    input (65), not a kernel refusal (74).  When *creating* a file, folder or link,
    ENOTDIR is a file where the path needs a folder (65); elsewhere it is a path that
    does not exist (66)."""
    code = err.errno or 0
    words = os.strerror(code) if code else str(err)
    name = _errno.errorcode.get(code, "")
    detail = f"{words} ({name})" if name else words
    if code in (_errno.EACCES, _errno.EPERM, _errno.EROFS):
        # root told to run as root learns nothing: what refuses root is the kernel's lockdown, a
        # security module (SELinux, AppArmor) or a read-only mount
        hint = ("refused to root too (kernel lockdown, a security module such as SELinux or AppArmor, or a "
                "read-only mount)" if os.geteuid() == 0 else "run as root (sudo vfioctl ...)")
        return VfioctlPermissionError(f"cannot {action} {path}: {detail}; {hint}", path=str(path), errno=name)
    if code == _errno.ENOTDIR and creating:
        return InvalidInput(f"cannot {action} {path}: a file is already there where its path needs a folder",
                            path=str(path), errno=name)
    if code in (_errno.ENOENT, _errno.ENOTDIR):
        return NotFound(f"cannot {action} {path}: it does not exist", path=str(path), errno=name)
    if code in (_errno.EBUSY, _errno.EAGAIN):
        return Busy(f"cannot {action} {path}: {detail}", path=str(path), errno=name)
    if code in (_errno.ELOOP, _errno.EISDIR, _errno.EEXIST, _errno.EFBIG, _errno.ENAMETOOLONG) or (
            reading and code == _errno.EINVAL):
        what = {_errno.ELOOP: "it is a symbolic link loop or a link vfioctl refuses to follow",
                _errno.EISDIR: "it is a folder, not a file",
                _errno.EEXIST: "something else is already there",
                _errno.EFBIG: "it is too large",
                _errno.ENAMETOOLONG: "the name is too long",
                _errno.EINVAL: "it is not a regular file"}[code]
        return InvalidInput(f"cannot {action} {path}: {what}", path=str(path), errno=name)
    return KernelError(f"cannot {action} {path}: {detail}", path=str(path), errno=name)
