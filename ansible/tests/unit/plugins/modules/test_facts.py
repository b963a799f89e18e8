# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

from ansible_collections.vfioctl.vfio.plugins.modules import device, facts


def test_all_facts(fake, host, run_module):
    r = run_module(facts, {})
    assert r["changed"] is False
    f = r["ansible_facts"]["vfioctl"]
    assert f["subsets"] == ["checks", "devices", "groups", "sriov", "status"]
    assert isinstance(f["ready"], bool)
    assert {x["status"] for x in f["checks"]["findings"]} <= {"pass", "warn", "fail", "info"}
    assert f["ready"] == all(x["status"] != "fail" for x in f["checks"]["findings"])
    by_addr = {d["address"]: d for d in f["devices"]}
    assert by_addr["0000:00:01.0"]["boot_vga"] is True and by_addr["0000:00:01.0"]["class"] == "030000"
    assert by_addr["0000:00:07.0"]["driver"] == "e1000e" and by_addr["0000:00:07.0"]["boot_vga"] is False
    groups = {g["group"]: g for g in f["groups"]["groups"]}
    assert [m["address"] for m in groups[5]["members"]] == ["0000:00:05.0", "0000:01:01.0", "0000:01:02.0"]
    assert [p["pf"] for p in f["sriov"]] == ["0000:00:04.0"]
    assert f["status"]["devices"] == []


def test_subset_and_status_after_hide(fake, host, run_module):
    run_module(device, {"address": "00:07.0"})
    r = run_module(facts, {"gather_subset": ["devices", "status"]}, check=True)
    f = r["ansible_facts"]["vfioctl"]
    assert "checks" not in f and "groups" not in f and "ready" not in f
    assert [(e["address"], e["driver"], e["origin"]) for e in f["status"]["devices"]] == [
        ("0000:00:07.0", "vfio-pci", "ansible")]


def test_gpu_selection_as_the_example_playbook_does(fake, host, run_module):
    """The example playbook picks display-class devices that are not the boot VGA."""
    f = run_module(facts, {"gather_subset": ["devices"]})["ansible_facts"]["vfioctl"]
    gpus = [d["address"] for d in f["devices"] if d["class"][:4] in ("0300", "0302") and not d["boot_vga"]]
    assert gpus == []  # the fake host's only display device is its boot VGA


def test_bad_subset(host, run_module):
    r = run_module(facts, {"gather_subset": ["disks"]})
    assert r["failed"] and "gather_subset" in r["msg"]
