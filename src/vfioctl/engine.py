"""The change engine's public API: one plan/journal/verify path for every command.

``hide``, ``restore``, ``sriov set``, ``apply``, QMP ``attach``/``detach``, the
libvirt hook and the Ansible modules all come through a :class:`Session`:

    with engine.Session(host) as s:          # the journal lock, held to the end
        plan = s.plan_hide(["03:00.0"])       # host state read once, planned purely
        result = s.execute(plan)              # each step verified, rolled back on failure

This module is the stable face of :mod:`vfioctl.ops.session` (where the session
lives) for the CLI, the Ansible collection and library callers.
"""

from vfioctl.ops.executor import Result
from vfioctl.ops.plan.model import DEFAULT_DRIVER, Plan
from vfioctl.ops.session import (
    Session,
    apply,
    find_device,
    hide,
    plan_apply,
    plan_hide,
    plan_restore,
    plan_sriov,
    resolve_targets,
    restore,
    sriov_set,
    status,
)

__all__ = [
    "Session", "Plan", "Result", "DEFAULT_DRIVER", "hide", "plan_hide", "restore", "plan_restore", "sriov_set",
    "plan_sriov", "apply", "plan_apply", "status", "find_device", "resolve_targets",
]
