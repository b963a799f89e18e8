#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: facts
short_description: Gather passthrough readiness, PCI devices, IOMMU groups and SR-IOV as facts
version_added: 0.1.0
description:
  - Reads the managed host with the vfioctl library and returns C(ansible_facts.vfioctl), so that
    a play can pick the hosts that are ready for device assignment and the devices to use.
  - Read-only; works without root, although some checks then report that they could not read
    what they need.
author:
  - vfioctl maintainers (!UNKNOWN)
requirements:
  - The vfioctl Python package (Python 3.11 or later) on the managed host.
options:
  gather_subset:
    description:
      - Which facts to gather. V(checks) are the readiness findings of C(vfioctl check) (and
        C(ready)); V(devices) the PCI functions; V(groups) the IOMMU groups; V(sriov) the SR-IOV
        physical functions; V(status) what vfioctl has hidden (C(vfioctl status)).
      - V(all) gathers every subset.
    type: list
    elements: str
    choices: [all, checks, devices, groups, sriov, status]
    default: [all]
attributes:
  check_mode:
    description: Reads only, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  facts:
    description: Returns C(ansible_facts.vfioctl).
    support: full
seealso:
  - module: vfioctl.vfio.device
"""

EXAMPLES = r"""
- name: Gather vfioctl facts
  vfioctl.vfio.facts:

- name: Only the devices and groups (no readiness checks)
  vfioctl.vfio.facts:
    gather_subset: [devices, groups]

- name: Stop on hosts that cannot assign devices
  ansible.builtin.assert:
    that: ansible_facts.vfioctl.ready
    fail_msg: "{{ ansible_facts.vfioctl.checks.findings | selectattr('status', 'eq', 'fail') | map(attribute='evidence') | list }}"

- name: The GPUs (display class 0300 or 0302) that are not the boot display
  ansible.builtin.set_fact:
    gpus: >-
      {{ ansible_facts.vfioctl.devices
         | selectattr('class', 'match', '030[02]')
         | rejectattr('boot_vga')
         | map(attribute='address') | list }}
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    vfioctl:
      description: What vfioctl reads on the managed host.
      returned: always
      type: complex
      contains:
        version:
          description: The vfioctl version on the managed host.
          type: str
          returned: always
          sample: 0.1.0
        subsets:
          description: The subsets gathered.
          type: list
          elements: str
          returned: always
        ready:
          description:
            - True when no readiness check failed (warnings allowed), so devices can be assigned.
          type: bool
          returned: when C(checks) is gathered
        checks:
          description:
            - The readiness report of C(vfioctl check --json) (schema C(vfioctl.check/1)), with
              summary and findings (id, title, status, evidence, fix).
          type: dict
          returned: when C(checks) is gathered
        devices:
          description:
            - The PCI functions (schema C(vfioctl.list/1) records of C(vfioctl list --json)), plus C(boot_vga).
          type: list
          elements: dict
          returned: when C(devices) is gathered
          sample:
            - address: "0000:01:00.0"
              class: "030000"
              class_name: VGA compatible controller
              vendor_id: "10de"
              vendor_name: NVIDIA Corporation
              device_id: "2204"
              device_name: GA102 [GeForce RTX 3090]
              subsystem_vendor_id: "1458"
              subsystem_device_id: "403b"
              driver: nouveau
              iommu_group: 14
              physfn: null
              boot_vga: false
        groups:
          description:
            - The IOMMU groups (schema C(vfioctl.groups/1)), C(iommu_enabled) and C(groups) with
              members, roles and viability.
          type: dict
          returned: when C(groups) is gathered
        sriov:
          description: The SR-IOV physical functions (schema C(vfioctl.sriov/1)).
          type: list
          elements: dict
          returned: when C(sriov) is gathered
        status:
          description: What vfioctl has hidden and what is inconsistent (schema C(vfioctl.status/1)).
          type: dict
          returned: when C(status) is gathered
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.vfioctl.vfio.plugins.module_utils import vfioctl_common as common

SUBSETS = ("checks", "devices", "groups", "sriov", "status")


def gather(host, subsets: list[str]) -> dict:
    import vfioctl

    facts: dict = {"version": vfioctl.__version__, "subsets": subsets}
    if "checks" in subsets:
        from vfioctl import run_checks

        report = run_checks(host).to_dict()
        facts["checks"] = report
        facts["ready"] = all(f.get("status") != "fail" for f in report.get("findings", []))
    if "devices" in subsets:
        from vfioctl import PciAddress
        from vfioctl import list_devices
        from vfioctl import PciDevice

        devices = list_devices(host)
        for d in devices:
            d["boot_vga"] = PciDevice(host, PciAddress.parse(d["address"])).boot_vga
        facts["devices"] = devices
    if "groups" in subsets:
        from vfioctl import list_groups

        facts["groups"] = list_groups(host)
    if "sriov" in subsets:
        from vfioctl import show_sriov

        facts["sriov"] = show_sriov(host)
    if "status" in subsets:
        from vfioctl import engine

        facts["status"] = engine.status(host)
    return facts


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            gather_subset=dict(type="list", elements="str", default=["all"],
                               choices=["all"] + list(SUBSETS)),
        ),
        supports_check_mode=True,
    )
    common.require_vfioctl(module)
    wanted = module.params["gather_subset"]
    subsets = list(SUBSETS) if "all" in wanted else [s for s in SUBSETS if s in wanted]
    try:
        facts = gather(common.make_host(), subsets)
    except common.VfioctlError as err:
        common.fail(module, err)
    except Exception as err:  # pylint: disable=broad-exception-caught
        common.fail_unexpected(module, err)
    module.exit_json(changed=False, ansible_facts={"vfioctl": facts})


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
