#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sriov
short_description: Set the number of SR-IOV virtual functions of a PCI physical function
version_added: 0.1.0
description:
  - Sets a physical function's VF count (through 0, as the kernel demands), optionally binding
    every new VF to C(vfio-pci) with C(sriov_drivers_autoprobe) off while they are created, so
    that no host driver grabs them first.
  - With O(state=restored), puts the VF count and autoprobe back as they were before vfioctl first
    changed them (and gives hidden VFs back first).
  - Runs the vfioctl library on the managed host, the same plan, verification and rollback as
    C(vfioctl sriov set); changing the count of a PF whose VFs are in use or hidden is refused
    unless O(force=true), and a refusal fails the task.
author:
  - vfioctl maintainers (!UNKNOWN)
requirements:
  - The vfioctl Python package (Python 3.11 or later) on the managed host.
  - Root on the managed host for real changes; check mode works without.
options:
  pf:
    description:
      - PCI address of the physical function, V(0000:04:00.0).
    type: str
    required: true
  numvfs:
    description:
      - The number of VFs the PF must have, 0 or more, at most its C(sriov_totalvfs).
      - Required with O(state=present).
    type: int
  hide:
    description:
      - Bind every VF to O(driver) (each journaled like the M(vfioctl.vfio.device) module does).
    type: bool
    default: false
  autoprobe:
    description:
      - The C(sriov_drivers_autoprobe) value to leave on the PF. Unset leaves the kernel's value
        (with O(hide=true) it is turned off).
    type: bool
  force:
    description:
      - Change the count even though VFs are in use or hidden (they are destroyed).
    type: bool
    default: false
  driver:
    description:
      - The driver the VFs are bound to with O(hide=true).
    type: str
    default: vfio-pci
  state:
    description:
      - V(present) sets O(numvfs); V(restored) returns the PF to its state before vfioctl.
    type: str
    choices: [present, restored]
    default: present
attributes:
  check_mode:
    description: Plans without writing; C(changed) says whether the plan writes anything.
    support: full
  diff_mode:
    description: The PF's VF count and autoprobe, and each VF's driver, before and after.
    support: full
seealso:
  - module: vfioctl.vfio.device
  - module: vfioctl.vfio.facts
"""

EXAMPLES = r"""
- name: Four VFs on the NIC, all on vfio-pci for guests
  vfioctl.vfio.sriov:
    pf: "0000:3b:00.0"
    numvfs: 4
    hide: true
  become: true

- name: Back to the VF count the host had before
  vfioctl.vfio.sriov:
    pf: "0000:3b:00.0"
    state: restored
  become: true
"""

RETURN = r"""
plan:
  description: The plan vfioctl made (schema C(vfioctl.plan/1)). In check mode nothing of it was done.
  returned: success
  type: dict
done:
  description: The steps carried out, in order.
  returned: success, when not in check mode
  type: list
  elements: dict
sriov:
  description:
    - The PF afterwards (schema C(vfioctl.sriov/1) record), with its VFs. In check mode, the
      current state.
  returned: success
  type: dict
  sample:
    pf: "0000:00:04.0"
    id: "1b36:0010"
    driver: nvme
    totalvfs: 4
    numvfs: 2
    drivers_autoprobe: false
    vf_device: "0010"
    offset: 1
    stride: 1
    vfs:
      - address: "0000:00:04.1"
        iommu_group: 9
        driver: vfio-pci
        device_id: "0010"
notes:
  description: vfioctl's notes on the plan.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vfioctl.vfio.plugins.module_utils import vfioctl_common as common


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            pf=dict(type="str", required=True),
            numvfs=dict(type="int"),
            hide=dict(type="bool", default=False),
            autoprobe=dict(type="bool"),
            force=dict(type="bool", default=False),
            driver=dict(type="str", default="vfio-pci"),
            state=dict(type="str", choices=["present", "restored"], default="present"),
        ),
        required_if=[("state", "present", ("numvfs",))],
        supports_check_mode=True,
    )
    common.require_vfioctl(module)
    try:
        out = _converge(module, common.make_host(), module.params)
    except common.VfioctlError as err:
        common.fail(module, err)
    except Exception as err:  # pylint: disable=broad-exception-caught
        common.fail_unexpected(module, err)
    module.exit_json(**out)


def _text(info: dict) -> str:
    auto = info.get("drivers_autoprobe")
    lines = [f"{info['pf']}: {info['numvfs']} VFs, autoprobe {'-' if auto is None else int(auto)}\n"]
    for vf in info["vfs"]:
        lines.append(f"{vf['address']}: {vf['driver'] or common.NO_DRIVER}\n")
    return "".join(lines)


def _predicted(info: dict, p: dict, plan) -> dict:
    """The PF as check mode's plan would leave it (VF addresses are not known before they exist)."""
    if plan.empty or p["state"] != "present":
        return info
    after = dict(info, numvfs=p["numvfs"], vfs=[])
    if p["autoprobe"] is not None:
        after["drivers_autoprobe"] = p["autoprobe"]
    elif p["hide"] and p["numvfs"]:
        after["drivers_autoprobe"] = False
    if info["numvfs"] == p["numvfs"]:
        after["vfs"] = [dict(vf, driver=p["driver"] if p["hide"] else vf["driver"]) for vf in info["vfs"]]
    return after


def _converge(module: AnsibleModule, host, p: dict) -> dict:
    from vfioctl import engine
    from vfioctl import InvalidInput
    from vfioctl import PciDevice
    from vfioctl import pf_info

    pf = PciDevice.from_address(host, common.parse_address(p["pf"]))
    if not pf.sriov_capable:
        raise InvalidInput(f"{pf.address} is not SR-IOV capable (no {pf.sysfs}/sriov_totalvfs)")
    before = pf_info(pf)
    check = module.check_mode
    addr = str(pf.address)
    with engine.Session(host, dry_run=check) as session:
        if p["state"] == "present":
            plan = session.plan_sriov(addr, p["numvfs"], hide=p["hide"], autoprobe=p["autoprobe"],
                                      force=p["force"], driver=p["driver"])
        else:
            plan = session.plan_restore([addr])
        got = None if check else session.execute(plan)
    out: dict = {}
    if got is None:
        changed = not plan.empty
        after = _predicted(before, p, plan)
    else:
        changed = got.changed
        after = pf_info(pf)
        out["done"] = [s.to_dict() for s in got.done]
    out.update(changed=changed, plan=plan.to_dict(), notes=list(plan.notes), sriov=after if not check else before)
    if module._diff:
        out["diff"] = dict(before_header=f"{addr} SR-IOV (before)", after_header=f"{addr} SR-IOV (after)",
                           before=_text(before), after=_text(after))
    return out


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
