"""Pure planning: a :class:`~vfioctl.ops.state.HostState` and a request -> a :class:`Plan`.

Nothing here reads the host or writes: every planner takes the state read once
(under the journal lock for a real run) and returns typed steps
(:mod:`vfioctl.ops.steps`) with what each must leave behind and how to undo it.
``--dry-run`` prints the plan; :func:`vfioctl.ops.executor.execute` carries it out.

One module per kind of request: :mod:`.hide`, :mod:`.restore`, :mod:`.sriov`,
:mod:`.reset`, :mod:`.console` (the console hand-off around a hide); :mod:`.model`
holds the Plan and the checks they share.  A whole config is planned by
:mod:`vfioctl.ops.configplan` through these.
"""

from vfioctl.ops.plan.console import (
           give_back_console_steps,
           take_console,
           take_console_plan,
)
from vfioctl.ops.plan.hide import hide_plan
from vfioctl.ops.plan.model import (
           DEFAULT_DRIVER,
           Change,
           Plan,
           check_driver,
           check_reset_methods,
)
from vfioctl.ops.plan.reset import reset_plan
from vfioctl.ops.plan.restore import restore_plan
from vfioctl.ops.plan.sriov import new_vfs_plan, sriov_plan

__all__ = ["DEFAULT_DRIVER", "Change", "Plan", "check_driver", "check_reset_methods", "hide_plan", "restore_plan",
           "sriov_plan", "new_vfs_plan", "reset_plan", "take_console", "take_console_plan",
           "give_back_console_steps"]
