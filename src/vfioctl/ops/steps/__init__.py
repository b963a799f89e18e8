"""The closed set of changes vfioctl makes, each a small class that describes, does,
verifies and undoes itself.

A :class:`Step` is data (what to change and what it was before) plus four
methods: :meth:`Step.describe` for ``--dry-run``, :meth:`Step.do`,
:meth:`Step.verify` (the kernel's answer, with a bounded wait: a write that
"succeeded" proves nothing) and :meth:`Step.undo` (put back what it was;
idempotent, so it is safe on a step that failed half-way).  The executor in
:mod:`vfioctl.ops.executor` is a loop over steps, and rollback is the reverse loop.

One module per kind of change: :mod:`.base` (the Step classes and the helpers every
step shares), :mod:`.device` (drivers, overrides, IDs, modules, resets),
:mod:`.sriov` (VF count, autoprobe, VF settings), :mod:`.journal` (record, commit, forget),
:mod:`.console` (units, virtual consoles, platform frame buffers of the console
hand-off).  The QMP steps live in :mod:`vfioctl.guest.qmp`, beside the client they drive.
Adding a kind of change means adding one class to the module of its kind.

Sysfs semantics, from the kernel's ABI (Documentation/ABI/testing/sysfs-bus-pci):
``driver_override`` restricts which driver may bind a device; ``drivers/X/unbind``
and ``bind`` take an address; ``drivers_probe`` asks the PCI core to find a
driver now; ``new_id``/``remove_id`` add dynamic IDs to a driver (kernels
without driver_override); ``sriov_numvfs`` only changes a non-zero count
through 0 (drivers/pci/iov.c sriov_numvfs_store).
"""

from __future__ import annotations

from vfioctl.ops.steps.base import Check, DeviceWrite, Exec, Step, SysfsWrite
from vfioctl.ops.steps.console import SetPlatformFb, SetVtcon, UnitState
from vfioctl.ops.steps.device import (
    Bind,
    CheckGroupNode,
    LoadModule,
    NewId,
    Probe,
    RemoveId,
    ResetFunction,
    SetOverride,
    SetResetMethod,
    Unbind,
)
from vfioctl.ops.steps.journal import JournalCommit, JournalForget, JournalForgetVf, JournalRecord
from vfioctl.ops.steps.sriov import SetAutoprobe, SetNumVfs, SetVfSetting

#: every kind of host-side change; the QMP steps (QmpDeviceAdd, QmpDeviceDel, QmpReleased)
#: live in vfioctl.guest.qmp, beside what they drive
ALL_STEPS = (SysfsWrite, DeviceWrite, Check, LoadModule, SetOverride, Unbind, Probe, Bind, NewId, RemoveId,
             CheckGroupNode, SetNumVfs, SetAutoprobe, SetResetMethod, ResetFunction, JournalRecord, JournalCommit,
             JournalForget, UnitState, SetVtcon, SetPlatformFb, SetVfSetting, JournalForgetVf)

__all__ = ["Exec", "Step", *[c.__name__ for c in ALL_STEPS]]
