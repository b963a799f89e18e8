# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

"""Run the modules' main() against a fake host tree with vfioctl's simulated PCI core.

The fake tree and its simulated kernel come from vfioctl's own unit tests
(tests/unit/fakehost.py of the source checkout vfioctl is installed from),
so these tests exercise the real library: planning, journal, verification.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.vfioctl.vfio.plugins.module_utils import vfioctl_common as common

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core before 2.19
    import contextlib

    @contextlib.contextmanager
    def patch_module_args(args=None):
        data = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))
        with mock.patch.object(basic, "_ANSIBLE_ARGS", data):
            yield


def _fakehost_dir():
    if not common.HAS_VFIOCTL:
        return None
    import vfioctl

    d = Path(vfioctl.__file__).resolve().parents[2] / "tests" / "unit"
    return d if (d / "fakehost.py").is_file() else None


class AnsibleExitJson(Exception):
    pass


class AnsibleFailJson(Exception):
    pass


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise AnsibleExitJson(kwargs)


def _fail_json(self, msg, **kwargs):
    kwargs["failed"] = True
    kwargs["msg"] = msg
    raise AnsibleFailJson(kwargs)


@pytest.fixture
def fake(tmp_path):
    """vfioctl's lab-like fake host: e1000e twins 00:02.0/00:07.0, a bridge group, nvme PF, VGA."""
    d = _fakehost_dir()
    if d is None:
        pytest.skip("needs vfioctl installed from a source checkout (tests/unit/fakehost.py)")
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))
    from fakehost import standard_host  # pylint: disable=import-error

    return standard_host(tmp_path / "root")


@pytest.fixture
def host(fake, monkeypatch):
    """The fake host with its simulated kernel, and the modules pointed at it."""
    monkeypatch.setenv("VFIOCTL_VERIFY_TIMEOUT", "0.2")
    h = fake.host()

    def run(_host, argv):
        if argv and argv[0] == "modprobe":
            fake.driver(argv[-1].replace("_", "-"))
            return 0, ""
        return 127, f"{argv[0]}: not found"

    h.run_hook = run
    monkeypatch.setattr(common, "make_host", lambda: h)
    return h


@pytest.fixture
def run_module():
    """run_module(module, args, check=False, diff=False) -> the result dict (``failed`` on failure)."""

    def run(module, args, check=False, diff=False):
        args = dict(args)
        if check:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args), mock.patch.multiple(
            basic.AnsibleModule, exit_json=_exit_json, fail_json=_fail_json
        ):
            try:
                module.main()
            except AnsibleExitJson as e:
                return e.args[0]
            except AnsibleFailJson as e:
                return e.args[0]
        raise AssertionError("the module returned without exit_json or fail_json")

    return run
