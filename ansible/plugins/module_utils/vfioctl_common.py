# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

"""What every vfioctl.vfio module shares: the import check, the Host, errors, device state.

The modules run on the managed host and call the vfioctl library there; this
file only adapts it to Ansible (fail_json with vfioctl's one-line message and
exit code, diff text of device drivers).  No decision about devices is made
here: planning, refusals and verification are vfioctl's.
"""

from __future__ import annotations

import sys
import traceback

try:
    from vfioctl import PciAddress
    # VfioctlError is re-exported: the modules catch common.VfioctlError
    from vfioctl import InvalidInput, VfioctlError  # pylint: disable=unused-import
    from vfioctl import Host
    from vfioctl import PciDevice
except ImportError:
    HAS_VFIOCTL = False
    VFIOCTL_IMPORT_ERROR = traceback.format_exc()

    class VfioctlError(Exception):  # type: ignore[no-redef]
        """Stand-in so that ``except VfioctlError`` parses when vfioctl is missing."""

else:
    HAS_VFIOCTL = True
    VFIOCTL_IMPORT_ERROR = None

MISSING_VFIOCTL = (
    "the vfioctl Python package is required on the managed host: pip install vfioctl "
    "(or install from source)"
)

#: shown in diffs for a function with no driver bound
NO_DRIVER = "(none)"
#: shown in diffs for a function that is no longer on the bus (a VF removed)
GONE = "(gone)"


def require_vfioctl(module) -> None:
    """fail_json, naming the interpreter, when vfioctl cannot be imported on the managed host."""
    if not HAS_VFIOCTL:
        module.fail_json(
            msg=f"{MISSING_VFIOCTL}; this module ran with {sys.executable}: install vfioctl for it, or set "
                "ansible_python_interpreter to a Python that has vfioctl",
            exception=VFIOCTL_IMPORT_ERROR,
        )


def make_host():
    """The live host.  Unit tests replace this with a fake tree."""
    return Host("/")


def fail(module, err, **extra) -> None:
    """Report a vfioctl error: its one-line message, exit code and fields; a refusal is a failure."""
    module.fail_json(
        msg=err.message,
        exit_code=err.exit_code,
        error=err.to_dict(),
        **extra,
    )


def fail_unexpected(module, err: BaseException) -> None:
    module.fail_json(
        msg=f"vfioctl failed unexpectedly ({type(err).__name__}: {err}); this is a bug in vfioctl, please report it",
        exit_code=70,
        exception=traceback.format_exc(),
    )


def parse_address(text: str):
    """A PciAddress (raises vfioctl's InvalidAddress with the reason)."""
    return PciAddress.parse(text)


def select_by_id(host, ident: str, index) -> list:
    """The functions with vendor:device *ident* in address order; only the *index*-th when given."""
    from vfioctl import classify, resolve

    kind, _value = classify(ident)
    if kind != "id":
        raise InvalidInput(f"id {ident!r} is not a vendor:device ID in hexadecimal (e.g. 8086:10d3)")
    devs = sorted(resolve(host, [ident]), key=lambda d: str(d.address))
    if index is None:
        return devs
    if index < 0 or index >= len(devs):
        found = ", ".join(str(d.address) for d in devs)
        raise InvalidInput(
            f"id {ident} matches {len(devs)} device(s) ({found}); index {index} is out of range "
            f"(0 to {len(devs) - 1})"
        )
    return [devs[index]]


def device_state(host, address: str) -> dict:
    """What the kernel shows for one function now: driver, override, IOMMU group, ID."""
    dev = PciDevice(host, PciAddress.parse(address))
    if not dev.exists():
        return {"address": address, "present": False, "driver": None, "driver_override": None,
                "iommu_group": None, "id": None}
    return {
        "address": address,
        "present": True,
        "id": dev.vendor_device,
        "driver": dev.driver,
        "driver_override": dev.driver_override,
        "iommu_group": dev.iommu_group,
    }


def drivers(host, addresses) -> dict:
    """address -> driver name (NO_DRIVER when unbound, GONE when not on the bus)."""
    out = {}
    for a in addresses:
        dev = PciDevice(host, PciAddress.parse(a))
        if not dev.exists():
            out[a] = GONE
        else:
            out[a] = dev.driver or NO_DRIVER
    return out


def driver_text(state: dict) -> str:
    """``0000:00:02.0: e1000e`` lines, address order, for a diff."""
    return "".join(f"{a}: {state[a]}\n" for a in sorted(state))


def ordered_union(*lists) -> list:
    out = []
    for seq in lists:
        for x in seq:
            if x not in out:
                out.append(x)
    return out


def predicted(before: dict, plan) -> dict:
    """The drivers a plan will leave (check mode's "after"), from its changes."""
    after = dict(before)
    for c in plan.changes:
        if c.address in after and c.role != "PF":
            after[c.address] = c.after or NO_DRIVER
    return after


def changes_before(result_or_plan) -> dict:
    """address -> driver at planning time, for every device a plan or result changes."""
    plan = getattr(result_or_plan, "plan", result_or_plan)
    return {c.address: (c.before or NO_DRIVER) for c in plan.changes if c.role != "PF"}


def match_label(match: dict, count) -> str:
    """The journal entry a selector task records: the same task on the next run finds its choice."""
    import json

    return "ansible: match " + json.dumps(match, sort_keys=True, separators=(",", ":")) + (
        f" count {count}" if count is not None else "")
