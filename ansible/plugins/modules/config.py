#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: config
short_description: Write the vfioctl config file, apply it, and optionally make it hold from boot
version_added: 0.1.0
description:
  - Writes the declarative vfioctl config (TOML, which devices the host must not use and SR-IOV
    VF counts) to O(path) when its content differs, after validating it completely; a config with
    a problem is not written.
  - With O(apply=true) (the default), converges the host to it like C(vfioctl apply), every
    entry's ID is compared with the hardware first and nothing is changed on a mismatch.
  - With O(boot_install=true), writes the boot files like C(vfioctl boot install) (modprobe.d,
    udev, systemd unit, initramfs hook) when they differ from what the config generates.
author:
  - vfioctl maintainers (!UNKNOWN)
requirements:
  - The vfioctl Python package (Python 3.11 or later) on the managed host.
  - Root on the managed host for real changes; check mode works without for reading.
options:
  content:
    description:
      - The config's TOML text. Use a template or a file lookup for one kept on the controller.
      - Mutually exclusive with O(src). With neither, the file already at O(path) is used.
    type: str
  src:
    description:
      - A file on the managed host whose content becomes the config at O(path).
    type: path
  path:
    description:
      - Where the config lives on the managed host.
    type: path
    default: /etc/vfioctl/vfioctl.toml
  apply:
    description:
      - Converge the host to the config (hide its devices, set its VF counts).
    type: bool
    default: true
  prune:
    description:
      - With O(apply=true), also restore devices hidden earlier that the config no longer names.
    type: bool
    default: false
  boot_install:
    description:
      - Write the boot files for the config (C(vfioctl boot install)) when they differ.
    type: bool
    default: false
  initramfs:
    description:
      - With O(boot_install=true), also rebuild the initramfs when the boot files change.
    type: bool
    default: false
  vfioctl_command:
    description:
      - With O(boot_install=true), the vfioctl command the boot files run, an absolute path
        that exists on the managed host.
      - Default, the C(vfioctl) script next to the module's Python, else C(vfioctl) on E(PATH),
        else C(<python> -m vfioctl).
    type: str
attributes:
  check_mode:
    description: Validates and plans without writing the file, the devices or the boot files.
    support: full
  diff_mode:
    description: The config file's content, and the driver of each function the apply changes.
    support: full
seealso:
  - module: vfioctl.vfio.device
  - module: vfioctl.vfio.sriov
"""

EXAMPLES = r"""
- name: Declare the passthrough devices, apply now and at every boot
  vfioctl.vfio.config:
    content: |
      [[device]]
      address = "0000:01:00.0"
      id = "10de:2204"
      group = true

      [[sriov]]
      pf = "0000:3b:00.0"
      numvfs = 4
      hide = true
    boot_install: true
  become: true

- name: Use a config kept next to the playbook, and undo what it no longer names
  vfioctl.vfio.config:
    content: "{{ lookup('ansible.builtin.file', 'files/' + inventory_hostname + '.toml') }}"
    prune: true
  become: true
"""

RETURN = r"""
path:
  description: The config file.
  returned: always
  type: str
  sample: /etc/vfioctl/vfioctl.toml
file_changed:
  description: Whether the config file's content was (or, in check mode, would be) replaced.
  returned: always
  type: bool
config:
  description: The validated config (devices and sriov entries).
  returned: success
  type: dict
plan:
  description: The apply plan (schema C(vfioctl.plan/1)), when O(apply=true).
  returned: when apply is true
  type: dict
done:
  description: The apply steps carried out.
  returned: when apply is true and not in check mode
  type: list
  elements: dict
boot:
  description:
    - What boot install wrote (files, commands run or to run, notes), when O(boot_install=true)
      and the boot files were out of date; in check mode, what it would write.
  returned: when boot_install is true
  type: dict
boot_changed:
  description: Whether the boot files were (or would be) rewritten.
  returned: when boot_install is true
  type: bool
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.vfioctl.vfio.plugins.module_utils import vfioctl_common as common


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8")
    except FileNotFoundError:
        return None


def _write(module: AnsibleModule, path: str, text: str) -> None:
    """Write *path* atomically (temp file in the same directory, then rename), mode 0644."""
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _boot_out_of_date(host, cfg, path: str, file_changed: bool, command) -> bool:
    """Would `vfioctl boot install` write anything for *cfg*?"""
    from vfioctl import boot

    cmd = boot.resolve_vfioctl(host, command)  # fails early when the command is missing
    if file_changed:
        return True  # the manifest records the config's checksum
    manifest = boot.read_manifest(host)
    if not manifest or manifest.get("config") != path or manifest.get("vfioctl") != cmd \
            or boot.manifest_stale(host, path):
        return True
    facts = boot.gather_facts(host, cfg, cmd)
    files = boot.generate(cfg, facts)
    for f in files:
        real = host.path(f.path)
        if f.link:
            if not os.path.islink(real) or os.readlink(real) != f.link:
                return True
        elif os.path.islink(real) or (_read(real) or "").strip() != f.content.strip():
            return True
    generated = {f.path for f in files}
    return any(e["path"] not in generated for e in manifest.get("files", []))


def _converge(module: AnsibleModule, host, p: dict) -> dict:
    from vfioctl import engine
    from vfioctl import load_config, parse_config
    from vfioctl import ConfigError

    path = p["path"]
    if not path.startswith("/"):
        raise ConfigError(f"config path {path!r} must be absolute")
    check = module.check_mode
    out: dict = {"path": path, "file_changed": False}
    diffs = []

    new_text = p["content"]
    if p["src"] is not None:
        new_text = _read(host.path(p["src"]))
        if new_text is None:
            from vfioctl import NotFound

            raise NotFound(f"src {p['src']} does not exist on the managed host", path=p["src"])
    if new_text is not None:
        cfg = parse_config(new_text, path)  # refuse a bad config before writing it
        if p["apply"]:
            cfg.verify_ids(host)  # ... and one that does not match the hardware
        old_text = _read(host.path(path))
        out["file_changed"] = old_text != new_text
        if module._diff:
            diffs.append(dict(before_header=path, after_header=path, before=old_text or "", after=new_text))
        if out["file_changed"] and not check:
            _write(module, host.path(path), new_text)
    else:
        cfg = load_config(host, path)
    out["config"] = cfg.to_dict()
    changed = out["file_changed"]

    if p["apply"]:
        if new_text is None:
            cfg.verify_ids(host)  # the whole config is refused on a mismatch, nothing written
        # planned and executed in one session, under the journal lock (none in check mode)
        with engine.Session(host, dry_run=check) as session:
            plan = session.plan_apply(cfg, prune=p["prune"])
            touched = [c.address for c in plan.changes if c.role != "PF"]
            before = common.drivers(host, touched)
            if check or plan.empty:
                changed = changed or not plan.empty
                after = common.predicted(before, plan)
            else:
                result = session.execute(plan)
                changed = changed or result.changed
                out["done"] = [s.to_dict() for s in result.done]
                after = common.drivers(host, touched)
        out["plan"] = plan.to_dict()
        if module._diff and touched:
            diffs.append(dict(before_header="PCI drivers (before)", after_header="PCI drivers (after)",
                              before=common.driver_text(before), after=common.driver_text(after)))

    if p["boot_install"]:
        from vfioctl import boot

        command = p["vfioctl_command"]
        stale = _boot_out_of_date(host, cfg, path, out["file_changed"], command)
        out["boot_changed"] = stale
        if stale:
            if check:
                if out["file_changed"]:
                    facts = boot.gather_facts(host, cfg, boot.resolve_vfioctl(host, command))
                    out["boot"] = {"dry_run": True, "files": [f.to_dict() for f in boot.generate(cfg, facts)]}
                else:
                    out["boot"] = boot.install(host, path, dry_run=True, vfioctl=command).to_dict()
            else:
                res = boot.install(host, path, initramfs=p["initramfs"], vfioctl=command)
                out["boot"] = res.to_dict()
                if res.failed:
                    bad = [c for c in res.commands if c.ran and c.rc not in (0, None)]
                    module.fail_json(
                        msg="boot install wrote its files, but " + "; ".join(
                            f"`{c.command}` exited {c.rc}: {c.output.strip()[-300:]}" for c in bad),
                        changed=True, **out)
            changed = True
        else:
            out["boot"] = {}
    out["changed"] = changed
    if module._diff:
        out["diff"] = diffs
    return out


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            content=dict(type="str"),
            src=dict(type="path"),
            path=dict(type="path", default="/etc/vfioctl/vfioctl.toml"),
            apply=dict(type="bool", default=True),
            prune=dict(type="bool", default=False),
            boot_install=dict(type="bool", default=False),
            initramfs=dict(type="bool", default=False),
            vfioctl_command=dict(type="str"),
        ),
        mutually_exclusive=[("content", "src")],
        supports_check_mode=True,
    )
    common.require_vfioctl(module)
    try:
        out = _converge(module, common.make_host(), module.params)
    except common.VfioctlError as err:
        common.fail(module, err)
    except OSError as err:
        module.fail_json(msg=f"cannot write {module.params['path']}: {to_native(err)}", exit_code=74)
    except Exception as err:  # pylint: disable=broad-exception-caught
        common.fail_unexpected(module, err)
    module.exit_json(**out)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
