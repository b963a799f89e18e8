"""The closed set of changes vfioctl makes, each a small class that describes, does,
verifies and undoes itself.

A :class:`Step` is data (what to change and what it was before) plus four
methods: :meth:`Step.describe` for ``--dry-run``, :meth:`Step.do`,
:meth:`Step.verify` (the kernel's answer, with a bounded wait: a write that
"succeeded" proves nothing) and :meth:`Step.undo` (put back what it was;
idempotent, so it is safe on a step that failed half-way).  The executor in
:mod:`vfioctl.apply` is a loop over steps, and rollback is the reverse loop.
Adding a kind of change means adding one class here.

Sysfs semantics, from the kernel's ABI (Documentation/ABI/testing/sysfs-bus-pci):
``driver_override`` restricts which driver may bind a device; ``drivers/X/unbind``
and ``bind`` take an address; ``drivers_probe`` asks the PCI core to find a
driver now; ``new_id``/``remove_id`` add dynamic IDs to a driver (kernels
without driver_override); ``sriov_numvfs`` only changes a non-zero count
through 0 (drivers/pci/iov.c sriov_numvfs_store).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from vfioctl.address import PciAddress
from vfioctl.errors import Busy, DeviceVanished, HostNotReady, VerifyFailed, VfioctlError
from vfioctl.host import Host
from vfioctl.journal import DeviceRecord, HandoffRecord, Journal, SriovRecord
from vfioctl.pci import PCI_DEVICES, PCI_DRIVERS, PciDevice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, ClassVar


def verify_timeout() -> float:
    return float(os.environ.get("VFIOCTL_VERIFY_TIMEOUT", "10"))


def sriov_timeout() -> float:
    return float(os.environ.get("VFIOCTL_SRIOV_TIMEOUT", "120"))


class Exec:
    """What a step acts on: the host, the journal (locked), and per-run scratch space."""

    def __init__(self, host: Host, journal: Journal, **extra: Any) -> None:
        self.host = host
        self.journal = journal
        self.extra = extra
        #: step id -> what do() learnt that undo() needs (keys added to the journal, ...)
        self.memo: dict[int, Any] = {}
        #: set once an undo failed: journal records are then kept for `restore --all`
        self.rollback_failed = False

    def dev(self, address: PciAddress) -> PciDevice:
        return PciDevice(self.host, address)

    def wait(self, what: str, predicate: Callable[[], bool], current: Callable[[], object],
             timeout: float | None = None) -> None:
        """Wait for the kernel to show *what*; VerifyFailed with desired vs current if not."""
        t = verify_timeout() if timeout is None else timeout
        if self.host.wait_for(predicate, t):
            return
        raise VerifyFailed(f"wanted {what}, but the kernel shows {current()} (waited {t:g} s)",
                           desired=what, current=str(current()))


class Step:
    """Base class: a change to the host, its verification and its undo."""

    #: short name in plans and JSON ("write", "modprobe", "journal", ...)
    action: ClassVar[str] = "step"
    #: True when the step changes the host (a plan of steps that do not is empty)
    writes: ClassVar[bool] = True
    note: str

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
    rc, out = x.host.run(["modprobe", module])
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
        from vfioctl.facts import module_name

        _modprobe(x, module or module_name(driver))
    x.host.write(f"{PCI_DRIVERS}/{driver}/bind", str(address))
    _wait_driver(x, address, driver)


# ====================================================================== modules
@dataclass
class LoadModule(Step):
    """``modprobe MODULE`` so that *driver* registers.  Not undone: a loaded module is harmless."""

    module: str
    driver: str
    note: str = ""
    action = "modprobe"

    @property
    def value(self) -> str:
        return self.module

    def describe(self) -> str:
        return f"load module {self.module} (modprobe {self.module})"

    def expectation(self) -> str:
        return f"driver {self.driver} is registered"

    def do(self, x: Exec) -> None:
        _modprobe(x, self.module)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: x.host.is_dir(f"{PCI_DRIVERS}/{self.driver}"), lambda: "it missing")


# ====================================================================== binding
@dataclass
class SetOverride(SysfsWrite):
    """Write ``driver_override`` (None clears it)."""

    address: PciAddress
    driver: str | None
    previous: str | None
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/driver_override"

    @property
    def value(self) -> str:
        return self.driver or ""


    def expectation(self) -> str:
        return f"{self.address} driver_override is {self.driver or 'empty'}"

    def do(self, x: Exec) -> None:
        _present(x, self.address, f"writing {self.path}")
        _write_override(x, self.address, self.driver)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: x.dev(self.address).driver_override == self.driver,
               lambda: f"driver_override {x.dev(self.address).driver_override or 'empty'}")

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if dev.exists() and dev.driver_override != self.previous:
            _write_override(x, self.address, self.previous)


@dataclass
class Unbind(SysfsWrite):
    """Unbind *address* from *driver*; undo binds it back (first restoring the override
    *override_before* that would otherwise refuse the driver)."""

    address: PciAddress
    driver: str
    module: str | None = None
    override_before: str | None = None
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/unbind"

    @property
    def value(self) -> str:
        return str(self.address)


    def expectation(self) -> str:
        return f"{self.address} driver is none"

    def do(self, x: Exec) -> None:
        dev = _present(x, self.address, f"writing {self.path}")
        if dev.driver == self.driver:
            x.host.write(self.path, str(self.address))

    def verify(self, x: Exec) -> None:
        _wait_driver(x, self.address, None)

    def undo(self, x: Exec) -> None:
        _ensure_bound(x, self.address, self.driver, self.module, self.override_before)


@dataclass
class Probe(DeviceWrite):
    """``drivers_probe``: the PCI core binds the driver the override (or the ID tables) allow.
    With *expect* None the kernel chooses and nothing is verified or undone."""

    address: PciAddress
    expect: str | None
    note: str = ""

    @property
    def path(self) -> str:
        return "/sys/bus/pci/drivers_probe"

    @property
    def value(self) -> str:
        return str(self.address)


    def expectation(self) -> str | None:
        return f"{self.address} driver is {self.expect}" if self.expect else None

    def verify(self, x: Exec) -> None:
        if self.expect:
            _wait_driver(x, self.address, self.expect)

    def undo(self, x: Exec) -> None:
        if self.expect and _unbind_if_on(x, self.address, self.expect):
            _wait_driver(x, self.address, None)


@dataclass
class Bind(SysfsWrite):
    """``drivers/DRIVER/bind``: bind explicitly (the driver must be registered)."""

    address: PciAddress
    driver: str
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/bind"

    @property
    def value(self) -> str:
        return str(self.address)


    def expectation(self) -> str:
        return f"{self.address} driver is {self.driver}"

    def do(self, x: Exec) -> None:
        dev = _present(x, self.address, f"writing {self.path}")
        if dev.driver != self.driver:
            x.host.write(self.path, str(self.address))

    def verify(self, x: Exec) -> None:
        _wait_driver(x, self.address, self.driver)

    def undo(self, x: Exec) -> None:
        _unbind_if_on(x, self.address, self.driver)


@dataclass
class NewId(DeviceWrite):
    """``new_id``: for kernels without driver_override (before 3.16), the driver takes every
    unbound device with this vendor:device."""

    address: PciAddress
    driver: str
    id: str  # "vvvv dddd"
    note: str = "no driver_override on this kernel: new_id binds every unbound device with this ID"

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/new_id"

    @property
    def value(self) -> str:
        return self.id


    def expectation(self) -> str:
        return f"{self.address} driver is {self.driver}"

    def verify(self, x: Exec) -> None:
        _wait_driver(x, self.address, self.driver)

    def undo(self, x: Exec) -> None:
        x.host.write(f"{PCI_DRIVERS}/{self.driver}/remove_id", self.id)
        _unbind_if_on(x, self.address, self.driver)


@dataclass
class RemoveId(SysfsWrite):
    """``remove_id``: take back a dynamic ID vfioctl added with new_id."""

    address: PciAddress
    driver: str
    id: str
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DRIVERS}/{self.driver}/remove_id"

    @property
    def value(self) -> str:
        return self.id


    def do(self, x: Exec) -> None:
        if x.host.is_dir(f"{PCI_DRIVERS}/{self.driver}"):
            x.host.write(self.path, self.id)


@dataclass
class CheckGroupNode(Check):
    """The device's IOMMU group has its /dev/vfio/N: the group is usable by VFIO."""

    address: PciAddress
    group: int | None
    note: str = ""

    def expectation(self) -> str:
        g = self.group if self.group is not None else "N"
        return f"/dev/vfio/{g} exists" + ("" if self.group is not None else f" (the group of {self.address})")

    def verify(self, x: Exec) -> None:
        def node() -> str | None:
            g = x.dev(self.address).iommu_group if self.group is None else self.group
            return None if g is None else f"/dev/vfio/{g}"

        x.wait(self.expectation(), lambda: bool(node()) and x.host.exists(node() or "/"), lambda: "it missing")


# ====================================================================== SR-IOV
def _numvfs_now(x: Exec, pf: PciAddress) -> tuple[int | None, list[PciAddress], bool]:
    dev = x.dev(pf)
    vfs = dev.virtfns
    return dev.sriov_numvfs, vfs, all(x.dev(v).physfn == pf for v in vfs)


def _bounded_write(host: Host, path: str, value: str, timeout: float) -> None:
    """sriov_numvfs writes can block for a long time on real NICs: bound the wait."""
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            host.write(path, value)
        except BaseException as err:  # handed to the caller's thread
            box["err"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Busy(
            f"writing {value} to {path} has not returned after {timeout:g} s; the kernel may still finish it: "
            "check `vfioctl sriov show` (VFIOCTL_SRIOV_TIMEOUT raises the limit)"
        )
    if "err" in box:
        raise box["err"]


@dataclass
class SetNumVfs(SysfsWrite):
    """``sriov_numvfs``: create or remove VFs; *expect_vfs* are the addresses planned for them."""

    address: PciAddress
    numvfs: int
    previous: int
    expect_vfs: tuple[PciAddress, ...] = ()
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/sriov_numvfs"

    @property
    def value(self) -> str:
        return str(self.numvfs)


    def expectation(self) -> str:
        text = f"{self.address} has {self.numvfs} VFs"
        if self.expect_vfs:
            text += f" at {', '.join(str(v) for v in self.expect_vfs)}"
        return text

    def _set(self, x: Exec, n: int) -> None:
        _present(x, self.address, f"writing {self.path}")
        _bounded_write(x.host, self.path, str(n), sriov_timeout())

    def do(self, x: Exec) -> None:
        self._set(x, self.numvfs)

    def verify(self, x: Exec) -> None:
        def ok() -> bool:
            n, vfs, links = _numvfs_now(x, self.address)
            if n != self.numvfs or len(vfs) != self.numvfs or not links:
                return False
            return not self.expect_vfs or tuple(vfs) == self.expect_vfs

        def show() -> str:
            n, vfs, links = _numvfs_now(x, self.address)
            return (f"sriov_numvfs={n} with {len(vfs)} virtfn links ({', '.join(str(v) for v in vfs) or 'none'})"
                    + ("" if links else ", physfn links wrong"))

        x.wait(self.expectation(), ok, show)

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if not dev.exists():
            return
        cur = dev.sriov_numvfs or 0
        if cur == self.previous:
            return
        if cur and self.previous:
            self._set(x, 0)
        self._set(x, self.previous)


@dataclass
class SetAutoprobe(DeviceWrite):
    """``sriov_drivers_autoprobe``: whether host drivers probe new VFs."""

    address: PciAddress
    on: bool
    previous: bool | None
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/sriov_drivers_autoprobe"

    @property
    def value(self) -> str:
        return "1" if self.on else "0"


    def expectation(self) -> str:
        return f"{self.address} sriov_drivers_autoprobe is {self.on}"

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: x.dev(self.address).sriov_autoprobe == self.on,
               lambda: f"sriov_drivers_autoprobe {x.dev(self.address).sriov_autoprobe}")

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if self.previous is not None and dev.exists() and dev.sriov_autoprobe != self.previous:
            x.host.write(self.path, "1" if self.previous else "0")


# ====================================================================== reset
@dataclass
class SetResetMethod(DeviceWrite):
    """``reset_method``: the kernel's reset methods to use, in order (5.15+); None or
    "default" puts back the kernel's own list (drivers/pci/pci.c reset_method_store)."""

    address: PciAddress
    methods: tuple[str, ...]
    previous: tuple[str, ...]
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/reset_method"

    @property
    def value(self) -> str:
        return " ".join(self.methods)


    def expectation(self) -> str:
        return f"{self.address} reset_method is {self.value}"

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: tuple(x.dev(self.address).reset_methods) == self.methods,
               lambda: f"reset_method {' '.join(x.dev(self.address).reset_methods) or '(none)'}")

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if dev.exists() and tuple(dev.reset_methods) != self.previous and self.previous:
            x.host.write(self.path, " ".join(self.previous))


@dataclass
class ResetFunction(DeviceWrite):
    """``reset``: the kernel resets the function with the first method that works, saving and
    restoring its config space around it (drivers/pci/pci.c pci_reset_function).  Cannot be
    undone; verified by the write's success and the device still being on *driver*."""

    address: PciAddress
    driver: str | None
    note: str = ""

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/reset"

    @property
    def value(self) -> str:
        return "1"


    def expectation(self) -> str:
        return f"{self.address} is still present on driver {self.driver or 'none'}"

    def verify(self, x: Exec) -> None:
        _present(x, self.address, "verifying the reset")
        _wait_driver(x, self.address, self.driver, self.expectation())


# ====================================================================== the journal
def _key(rec: DeviceRecord | SriovRecord | HandoffRecord) -> str:
    return rec.pf if isinstance(rec, SriovRecord) else rec.address


@dataclass
class JournalRecord(Step):
    """Save the originals before anything changes (save before you write)."""

    records: list = field(default_factory=list)
    note: str = ""
    #: what is recorded, for the plan's text ("the console hand-off" for a HandoffRecord)
    what: str = "originals"
    action = "journal"
    writes = False

    def describe(self) -> str:
        return f"journal: record {self.what} of {', '.join(_key(r) for r in self.records)}"

    def do(self, x: Exec) -> None:
        added = []
        for rec in self.records:
            if isinstance(rec, DeviceRecord):
                new = x.journal.record_device(rec)
            elif isinstance(rec, SriovRecord):
                new = x.journal.record_sriov(rec)
            else:
                new = x.journal.record_handoff(rec)
            if new:
                added.append((type(rec).__name__, _key(rec)))
        x.memo[id(self)] = added
        x.journal.save()

    def undo(self, x: Exec) -> None:
        if x.rollback_failed:
            return  # keep the originals: `vfioctl restore --all` needs them
        books: dict[str, dict] = {"DeviceRecord": x.journal.devices, "SriovRecord": x.journal.sriov,
                                  "HandoffRecord": x.journal.handoff}
        for kind, key in x.memo.get(id(self), []):
            books[kind].pop(key, None)
        x.journal.save()


@dataclass
class JournalCommit(Step):
    """Mark records verified: ``hidden`` for devices, ``changed`` for PFs and hand-offs."""

    keys: list[str] = field(default_factory=list)
    note: str = ""
    what: str = ""
    action = "commit"
    writes = False

    def describe(self) -> str:
        return f"journal: mark {self.what + ' of ' if self.what else ''}{', '.join(self.keys)} done"

    def do(self, x: Exec) -> None:
        for k in self.keys:
            if k in x.journal.devices:
                x.journal.devices[k].state = "hidden"
            if k in x.journal.sriov:
                x.journal.sriov[k].state = "changed"
            if k in x.journal.handoff:
                x.journal.handoff[k].state = "changed"
        x.journal.save()


@dataclass
class JournalForget(Step):
    """Drop records once their device is back (undo puts them back)."""

    keys: list[str] = field(default_factory=list)
    note: str = ""
    action = "forget"
    writes = False

    def describe(self) -> str:
        return f"journal: forget {', '.join(self.keys)}"

    def do(self, x: Exec) -> None:
        gone = []
        for k in self.keys:
            for book in (x.journal.devices, x.journal.sriov, x.journal.handoff):
                if k in book:
                    gone.append((book, k, book.pop(k)))
        x.memo[id(self)] = gone
        x.journal.save()

    def undo(self, x: Exec) -> None:
        for book, k, rec in x.memo.get(id(self), []):
            book[k] = rec
        x.journal.save()


#: the hand-off steps (UnitState, SetVtcon, SetPlatformFb) live in vfioctl.handoff and the QMP
#: steps (QmpDeviceAdd, QmpDeviceDel, QmpReleased) in vfioctl.guest.qmp, beside what they drive
ALL_STEPS = (SysfsWrite, DeviceWrite, Check, LoadModule, SetOverride, Unbind, Probe, Bind, NewId, RemoveId, CheckGroupNode, SetNumVfs,
             SetAutoprobe, SetResetMethod, ResetFunction, JournalRecord, JournalCommit, JournalForget)


__all__ = ["Exec", "Step", "VfioctlError", *[c.__name__ for c in ALL_STEPS]]
