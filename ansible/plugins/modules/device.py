#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: device
short_description: Hide PCI devices from the host (bind them to vfio-pci) or give them back
version_added: 0.1.0
description:
  - Binds PCI functions to C(vfio-pci) (or another vfio driver) so that they can be passed to a
    virtual machine, or restores them to the driver they had before, exactly as vfioctl's journal
    recorded it.
  - Runs the vfioctl library on the managed host, the same plan, verification and rollback as
    C(vfioctl hide) and C(vfioctl restore). A function the host is using (an interface with an
    address or a route, a mounted disk, the boot VGA) is refused unless O(force=true), and so is
    one whose IOMMU group would not be viable; a refusal fails the task. A function of the
    platform itself (host bridge, ISA/LPC bridge, IOMMU, the device of the root filesystem or of
    the console) is refused even with O(force=true), unless O(force_platform=true).
  - The result is idempotent, C(changed) is true only when something was written to sysfs.
author:
  - vfioctl maintainers (!UNKNOWN)
requirements:
  - The vfioctl Python package (Python 3.11 or later) on the managed host, for the interpreter
    that runs the module (C(ansible_python_interpreter)).
  - Root on the managed host for real changes (C(become=true)); check mode works without.
options:
  address:
    description:
      - PCI address of the function, V(0000:03:00.0) or V(03:00.0).
      - Exactly one of O(address) and O(id) is required.
    type: str
  id:
    description:
      - Vendor and device ID in hexadecimal, V(10de:2204), selecting every function with that ID
        (in address order), or only the O(index)-th one.
    type: str
  index:
    description:
      - With O(id), pick only the n-th matching function, counting from 0 in address order.
    type: int
  match:
    description:
      - Select functions by what they are, the same keys as a C([[device]]) entry's C(match) in
        vfioctl's config - V(id) (one or a list), V(subsystem), V(class) (a code or a name such as
        V(nvme), V(ethernet), V(vga)), V(driver), V(numa_node), V(pf) with V(vfs) (a VF index range
        such as V(0-3)).
      - The same playbook then hides the right functions on hosts whose slots differ. What it chose
        is recorded on the host (C(vfioctl status) shows the entry), and a later run keeps it.
      - Exactly one of O(address), O(id) and O(match) is required.
    type: dict
  count:
    description:
      - With O(match), take this many matching functions, never one the host uses; fewer free ones
        fail the task, naming what was found. Without it, every match is taken.
    type: int
  state:
    description:
      - V(hidden) binds the function(s) to O(driver).
      - V(restored) gives them back to the driver recorded when vfioctl hid them.
    type: str
    choices: [hidden, restored]
    default: hidden
  group:
    description:
      - Also hide every other function of the same IOMMU group (companion audio functions, the
        other ports of a card). Without it, a group whose other members stay on host drivers is
        refused.
      - Only used with O(state=hidden).
    type: bool
    default: false
  force:
    description:
      - Hide a function even though the host uses it (the reasons are kept as notes in the
        plan); with O(state=restored), unbind a function on a vfio driver that vfioctl did not
        hide and let the kernel choose its driver.
    type: bool
    default: false
  force_platform:
    description:
      - DANGEROUS. Also take a function of the platform itself (host bridge, ISA/LPC bridge,
        IOMMU, the device of the root filesystem or of the console), which O(force) does not; the
        host will most likely hang or lose its root filesystem or console. The same as
        C(vfioctl hide --force-platform); the reasons are kept as notes in the plan.
      - Only used with O(state=hidden).
    type: bool
    default: false
  driver:
    description:
      - The driver to bind to, V(vfio-pci), a vfio variant driver such as V(mlx5_vfio_pci), or
        V(pci-stub). Only used with O(state=hidden).
    type: str
    default: vfio-pci
attributes:
  check_mode:
    description: Plans without writing; C(changed) says whether the plan writes anything.
    support: full
  diff_mode:
    description: The driver of each function concerned, before and after.
    support: full
notes:
  - The devices' state is kept in vfioctl's journal on the managed host (C(/var/lib/vfioctl)), the
    same one the vfioctl CLI uses, so C(vfioctl status) and C(vfioctl restore) see what this
    module did.
seealso:
  - module: vfioctl.vfio.facts
  - module: vfioctl.vfio.sriov
  - module: vfioctl.vfio.config
"""

EXAMPLES = r"""
- name: Hide a GPU and its audio function (the whole IOMMU group)
  vfioctl.vfio.device:
    address: "0000:01:00.0"
    group: true
  become: true

- name: Hide the second of two identical NICs
  vfioctl.vfio.device:
    id: "8086:10d3"
    index: 1
  become: true

- name: One free NIC of this model, whatever slot it is in on each host
  vfioctl.vfio.device:
    match:
      id: "8086:10d3"
    count: 1
  become: true

- name: VFs 0 and 1 of the PF
  vfioctl.vfio.device:
    match:
      pf: "0000:03:00.0"
      vfs: "0-1"
  become: true

- name: Give the GPU back to its host driver
  vfioctl.vfio.device:
    address: "0000:01:00.0"
    state: restored
  become: true
"""

RETURN = r"""
plan:
  description:
    - The plan vfioctl made (schema C(vfioctl.plan/1)), every device change and every sysfs write
      in order with the kernel state verified after it. In check mode nothing of it was done.
  returned: success
  type: dict
  sample:
    schema: vfioctl.plan/1
    action: hide
    changes:
      - address: "0000:00:02.0"
        id: "8086:10d3"
        iommu_group: 2
        role: endpoint
        from: e1000e
        to: vfio-pci
        why: requested
    steps:
      - action: write
        target: "0000:00:02.0"
        path: /sys/bus/pci/devices/0000:00:02.0/driver_override
        value: vfio-pci
        verify: 0000:00:02.0 driver_override is vfio-pci
        note: null
    notes: []
done:
  description: The steps carried out, in order (the plan's steps once executed).
  returned: success, when not in check mode
  type: list
  elements: dict
devices:
  description:
    - What the kernel shows afterwards for each function concerned (requested, or changed with
      O(group=true)). In check mode, the current state.
  returned: success
  type: list
  elements: dict
  contains:
    address:
      description: PCI address.
      type: str
    present:
      description: Whether the function is on the bus.
      type: bool
    id:
      description: vendor:device.
      type: str
    driver:
      description: Bound driver, null when none.
      type: str
    driver_override:
      description: The function's driver_override, null when empty.
      type: str
    iommu_group:
      description: IOMMU group number.
      type: int
  sample:
    - address: "0000:00:02.0"
      present: true
      id: "8086:10d3"
      driver: vfio-pci
      driver_override: vfio-pci
      iommu_group: 2
notes:
  description: vfioctl's notes on the plan (companion functions, functions left on the host, forced reasons).
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vfioctl.vfio.plugins.module_utils import vfioctl_common as common


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            address=dict(type="str"),
            id=dict(type="str"),
            index=dict(type="int"),
            match=dict(type="dict"),
            count=dict(type="int"),
            state=dict(type="str", choices=["hidden", "restored"], default="hidden"),
            group=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            force_platform=dict(type="bool", default=False),
            driver=dict(type="str", default="vfio-pci"),
        ),
        mutually_exclusive=[("address", "id", "match")],
        required_one_of=[("address", "id", "match")],
        required_by={"index": "id", "count": "match"},
        supports_check_mode=True,
    )
    common.require_vfioctl(module)
    p = module.params
    try:
        out = _converge(module, common.make_host(), p)
    except common.VfioctlError as err:
        common.fail(module, err)
    except Exception as err:  # pylint: disable=broad-exception-caught
        common.fail_unexpected(module, err)
    module.exit_json(**out)


def _converge(module: AnsibleModule, host, p: dict) -> dict:
    from vfioctl import engine
    from vfioctl import PciDevice

    selectors = None
    if p["match"] is not None:
        from vfioctl import from_table

        sel = from_table(p["match"], "match")
        label = common.match_label(p["match"], p["count"])
        selectors = [(label, sel)]
        devs = []
    elif p["address"]:
        devs = [PciDevice.from_address(host, common.parse_address(p["address"]))]
    else:
        devs = common.select_by_id(host, p["id"], p["index"])
    requested = [str(d.address) for d in devs]
    before = common.drivers(host, requested)
    check = module.check_mode

    # one session: the journal lock (none in check mode), the host's state read once, the plan
    with engine.Session(host, dry_run=check) as session:
        if p["state"] == "hidden":
            plan = session.plan_hide(devs, group=p["group"], force=p["force"], driver=p["driver"], origin="ansible",
                                     selectors=selectors, count=p["count"], force_platform=p["force_platform"])
        else:
            if selectors is not None:
                # what this task's selector took earlier (the journal names the entry)
                devs = [a for a, r in session.journal.devices.items() if r.entry == selectors[0][0]]
            plan = session.plan_restore(devs, force=p["force"]) if devs else engine.Plan("restore")
        got = None if check else session.execute(plan)

    out: dict = {}
    touched = common.ordered_union(requested, [c.address for c in plan.changes if c.role != "PF"])
    before = {**common.changes_before(plan), **before}
    if got is None:
        changed = not plan.empty
        after = common.predicted(before, plan)
    else:
        changed = got.changed
        after = common.drivers(host, touched)
        out["done"] = [s.to_dict() for s in got.done]
    out.update(
        changed=changed,
        plan=plan.to_dict(),
        notes=list(plan.notes),
        devices=[common.device_state(host, a) for a in touched],
    )
    if module._diff:
        out["diff"] = dict(
            before_header="PCI drivers (before)",
            after_header="PCI drivers (after)",
            before=common.driver_text({a: before.get(a, common.NO_DRIVER) for a in touched}),
            after=common.driver_text({a: after.get(a, common.NO_DRIVER) for a in touched}),
        )
    return out


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
