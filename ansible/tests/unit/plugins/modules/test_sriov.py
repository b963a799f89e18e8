# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

from ansible_collections.vfioctl.vfio.plugins.modules import sriov

PF = "0000:00:04.0"


def _numvfs(fake):
    return int((fake.root / "sys/bus/pci/devices" / PF / "sriov_numvfs").read_text())


def test_check_mode_plans_and_writes_nothing(fake, host, run_module):
    r = run_module(sriov, {"pf": "00:04.0", "numvfs": 2, "hide": True}, check=True, diff=True)
    assert r["changed"] is True, r
    assert host.writes == []
    assert _numvfs(fake) == 0
    assert r["sriov"]["numvfs"] == 0
    assert r["diff"]["before"] == f"{PF}: 0 VFs, autoprobe 1\n"
    assert r["diff"]["after"] == f"{PF}: 2 VFs, autoprobe 0\n"


def test_set_hide_idempotent_restore(fake, host, run_module):
    r = run_module(sriov, {"pf": PF, "numvfs": 2, "hide": True}, diff=True)
    assert r["changed"] is True, r
    assert _numvfs(fake) == 2
    assert [(v["address"], v["driver"]) for v in r["sriov"]["vfs"]] == [
        ("0000:00:04.1", "vfio-pci"), ("0000:00:04.2", "vfio-pci")]
    assert r["diff"]["after"] == (f"{PF}: 2 VFs, autoprobe 0\n"
                                  "0000:00:04.1: vfio-pci\n0000:00:04.2: vfio-pci\n")

    n = len(host.writes)
    again = run_module(sriov, {"pf": PF, "numvfs": 2, "hide": True})
    assert again["changed"] is False
    assert len(host.writes) == n
    assert run_module(sriov, {"pf": PF, "numvfs": 2, "hide": True}, check=True)["changed"] is False

    r = run_module(sriov, {"pf": PF, "numvfs": 3})
    assert r["failed"] and "hidden by vfioctl" in r["msg"] and r["exit_code"] == 69

    back = run_module(sriov, {"pf": PF, "state": "restored"})
    assert back["changed"] is True
    assert _numvfs(fake) == 0
    assert back["sriov"]["drivers_autoprobe"] is True
    assert run_module(sriov, {"pf": PF, "state": "restored"})["changed"] is False


def test_refusals_and_bad_input(fake, host, run_module):
    r = run_module(sriov, {"pf": PF, "numvfs": 5})
    assert r["failed"] and "at most 4" in r["msg"] and r["exit_code"] == 69
    r = run_module(sriov, {"pf": "00:07.0", "numvfs": 1})
    assert r["failed"] and "not SR-IOV capable" in r["msg"]
    r = run_module(sriov, {"pf": PF})
    assert r["failed"] and "numvfs" in r["msg"]
    fake.unbind(PF)
    r = run_module(sriov, {"pf": PF, "numvfs": 1})
    assert r["failed"] and "no driver bound" in r["msg"]
