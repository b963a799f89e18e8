"""What a step is, and what every step shares.

A :class:`Step` is data (what to change and what it was before) plus four methods:
describe, do, verify (the kernel's answer, with a bounded wait), undo (idempotent).
:class:`SysfsWrite`, :class:`DeviceWrite` and :class:`Check` are the common shapes; the
helpers below (present-check, waiting for a driver, modprobe) serve every kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# at run time: dataclass tells a ClassVar annotation from a field by this module's name for it
from typing import ClassVar

from vfioctl.base.errors import (
    DeviceVanished,
    HostNotReady,
    VerifyFailed,
)
from vfioctl.base.names import module_name
from vfioctl.host import env
from vfioctl.host.core import Host
from vfioctl.ops.journal import Journal
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES, PCI_DRIVERS, PciDevice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable



class Exec:
    """What a step acts on: the host, the journal (locked), and per-run scratch space."""

    def __init__(self, host: Host, journal: Journal, *, qmp: object | None = None) -> None:
        self.host = host
        self.journal = journal
        #: the QEMU monitor the QMP steps of an attach or detach talk to
        self.qmp = qmp
        #: step id -> what do() learnt that undo() needs (keys added to the journal, ...)
        self.memo: dict[int, Any] = {}
        #: set once an undo failed: journal records are then kept for `restore --all`
        self.rollback_failed = False
        #: what must run once every undo is done, in the order asked, each once by name
        self.deferred: dict[str, Callable[[], object]] = {}

    def after_rollback(self, name: str, action: Callable[[], object]) -> None:
        """Run *action* when the rollback has undone every step (a program that regenerates
        from files runs after the files are back); asked twice by one name, it runs once."""
        self.deferred.setdefault(name, action)

    def dev(self, address: PciAddress) -> PciDevice:
        return PciDevice(self.host, address)

    def wait(self, what: str, predicate: Callable[[], bool], current: Callable[[], object],
             timeout: float | None = None) -> None:
        """Wait for the kernel to show *what*; VerifyFailed with desired vs current if not."""
        t = env.verify_timeout() if timeout is None else timeout
        if self.host.wait_for(predicate, t):
            return
        raise VerifyFailed(f"wanted {what}, but the kernel shows {current()} (waited {t:g} s)",
                           desired=what, current=str(current()))


@dataclass
class Step:
    """Base class: a change to the host, its verification and its undo.  Subclasses are
    dataclasses of their own facts; every one takes ``note=`` (keyword only, last)."""

    #: short name in plans and JSON ("write", "modprobe", "journal", ...)
    action: ClassVar[str] = "step"
    #: True when the step changes the host (a plan of steps that do not is empty)
    writes: ClassVar[bool] = True
    #: a word for plans and JSON on why the step is there, or what to know about it
    note: str = field(default="", kw_only=True)

    @property
    def target(self) -> str | None:
        a = getattr(self, "address", None)
        return str(a) if a is not None else None

    @property
    def path(self) -> str | None:
        """The sysfs file written, for display."""
        return None

    @property
    def value(self) -> str | None:
        return None

    def describe(self) -> str:
        raise NotImplementedError

    def expectation(self) -> str | None:
        """What :meth:`verify` checks, in words (None: nothing)."""
        return None

    def do(self, x: Exec) -> None:
        raise NotImplementedError

    def verify(self, x: Exec) -> None:
        return None

    def undo(self, x: Exec) -> None:
        return None

    def line(self) -> str:
        text = self.describe()
        exp = self.expectation()
        if exp:
            text += f"   [verify: {exp}]"
        if self.note:
            text += f"   ({self.note})"
        return text

    def to_dict(self) -> dict:
        return {"action": self.action, "step": type(self).__name__, "target": self.target, "path": self.path,
                "value": self.value, "verify": self.expectation(), "note": self.note or None}


class SysfsWrite(Step):
    """A step that writes one sysfs attribute: described as ``write VALUE > PATH``."""

    action = "write"

    def describe(self) -> str:
        return f"write {self.value or '(empty: clear)'} > {self.path}"


class DeviceWrite(SysfsWrite):
    """A SysfsWrite for one PCI function, which must still be there when it is written."""

    address: PciAddress

    def do(self, x: Exec) -> None:
        path, value = self.path, self.value
        assert path is not None and value is not None  # every subclass names both
        _present(x, self.address, f"writing {path}")
        x.host.write(path, value)


class Check(Step):
    """A step that changes nothing and only verifies (``verify`` in plans)."""

    action = "verify"
    writes = False

    def describe(self) -> str:
        return "verify"

    def do(self, x: Exec) -> None:
        return None


def _present(x: Exec, address: PciAddress, doing: str) -> PciDevice:
    dev = x.dev(address)
    if not dev.exists():
        raise DeviceVanished(address, doing)
    return dev


def _write_override(x: Exec, address: PciAddress, value: str | None) -> None:
    # an empty write ("\n") clears driver_override (drivers/pci/pci-sysfs.c driver_override_store)
    x.host.write(f"{PCI_DEVICES}/{address}/driver_override", value or "\n")


def _show_driver(x: Exec, address: PciAddress) -> Callable[[], str]:
    return lambda: f"driver {x.dev(address).driver or 'none'}"


def _wait_driver(x: Exec, address: PciAddress, driver: str | None, what: str | None = None) -> None:
    """Wait until *address* is on *driver* (None: on no driver)."""
    x.wait(what or f"{address} driver is {driver or 'none'}", lambda: x.dev(address).driver == driver,
           _show_driver(x, address))


def _unbind_if_on(x: Exec, address: PciAddress, driver: str) -> bool:
    """Unbind *address* from *driver* if it is still there on it (how undo takes a bind back)."""
    dev = x.dev(address)
    if dev.exists() and dev.driver == driver:
        x.host.write(f"{PCI_DRIVERS}/{driver}/unbind", str(address))
        return True
    return False


def _modprobe(x: Exec, module: str) -> None:
    rc, out = x.host.run(["modprobe", "--", module])
    if rc != 0:
        raise HostNotReady(f"modprobe {module} failed (exit {rc}): {out or 'no output'}")


def _ensure_bound(x: Exec, address: PciAddress, driver: str, module: str | None, override: str | None) -> None:
    """Bind *address* to *driver* (loading its module, restoring an override that would
    refuse it): how undo steps give a device back."""
    dev = x.dev(address)
    if not dev.exists() or dev.driver == driver:
        return
    if dev.has_driver_override and dev.driver_override != override:
        _write_override(x, address, override)
    if dev.driver is not None:
        x.host.write(f"{PCI_DRIVERS}/{dev.driver}/unbind", str(address))
    if not x.host.is_dir(f"{PCI_DRIVERS}/{driver}"):
        _modprobe(x, module or module_name(driver))
    x.host.write(f"{PCI_DRIVERS}/{driver}/bind", str(address))
    _wait_driver(x, address, driver)
