# -*- coding: utf-8 -*-
# Copyright: vfioctl contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import annotations

from ansible_collections.vfioctl.vfio.plugins.module_utils import vfioctl_common as common
from ansible_collections.vfioctl.vfio.plugins.modules import device

TWIN = "0000:00:07.0"


def test_check_mode_reports_change_and_writes_nothing(fake, host, run_module):
    r = run_module(device, {"address": "00:07.0"}, check=True, diff=True)
    assert not r.get("failed"), r
    assert r["changed"] is True
    assert host.writes == []
    assert fake.current_driver(TWIN) == "e1000e"
    assert [c["address"] for c in r["plan"]["changes"]] == [TWIN]
    assert r["diff"]["before"] == f"{TWIN}: e1000e\n"
    assert r["diff"]["after"] == f"{TWIN}: vfio-pci\n"
    assert "done" not in r


def test_hide_then_idempotent_then_restore(fake, host, run_module):
    r = run_module(device, {"address": TWIN}, diff=True)
    assert r["changed"] is True, r
    assert fake.current_driver(TWIN) == "vfio-pci"
    assert r["devices"] == [{"address": TWIN, "present": True, "id": "8086:10d3", "driver": "vfio-pci",
                             "driver_override": "vfio-pci", "iommu_group": 7}]
    assert r["diff"]["after"] == f"{TWIN}: vfio-pci\n"
    assert any(s["path"] == "/sys/bus/pci/drivers_probe" for s in r["done"])

    n = len(host.writes)
    again = run_module(device, {"address": TWIN})
    assert again["changed"] is False
    assert len(host.writes) == n
    checked = run_module(device, {"address": TWIN}, check=True)
    assert checked["changed"] is False

    back = run_module(device, {"address": TWIN, "state": "restored"}, diff=True)
    assert back["changed"] is True
    assert fake.current_driver(TWIN) == "e1000e"
    assert back["diff"] == {"before_header": "PCI drivers (before)", "after_header": "PCI drivers (after)",
                            "before": f"{TWIN}: vfio-pci\n", "after": f"{TWIN}: e1000e\n"}
    assert run_module(device, {"address": TWIN, "state": "restored"})["changed"] is False


def test_in_use_is_a_failure_with_the_evidence(fake, host, run_module):
    (fake.root / "proc/net").mkdir(parents=True, exist_ok=True)
    (fake.root / "proc/net/route").write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"
        "eth1\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    (fake.root / "sys/class/net/eth1/flags").write_text("0x1003\n")
    r = run_module(device, {"address": TWIN})
    assert r["failed"] is True
    assert r["exit_code"] == 69
    assert "eth1" in r["msg"] and "10.0.2.0/24" in r["msg"] and "refusing" in r["msg"]
    assert r["error"]["error"] == "InUse"
    assert fake.current_driver(TWIN) == "e1000e"
    # check mode refuses the same way: a refusal is never a silent skip
    assert run_module(device, {"address": TWIN}, check=True)["failed"] is True


def test_the_platform_needs_force_platform(fake, host, run_module):
    """The host bridge is refused even with force=true; force_platform=true plans it (check
    mode: nothing written), with the reason kept as a note."""
    bridge = "0000:00:00.0"
    r = run_module(device, {"address": bridge, "force": True}, check=True)
    assert r["failed"] is True and r["exit_code"] == 69
    assert "it is a host bridge" in r["msg"] and "--force-platform" in r["msg"]
    r = run_module(device, {"address": bridge, "force_platform": True}, check=True)
    assert r["changed"] is True and "failed" not in r
    assert any(n.startswith(f"--force-platform: {bridge}: it is a host bridge") for n in r["notes"])
    assert fake.current_driver(bridge) is None


def test_group_refused_then_taken_whole(fake, host, run_module):
    r = run_module(device, {"address": "01:01.0"})
    assert r["failed"] is True and "would not be viable" in r["msg"] and "0000:01:02.0" in r["msg"]
    r = run_module(device, {"address": "01:01.0", "group": True}, diff=True)
    assert r["changed"] is True
    assert [d["address"] for d in r["devices"]] == ["0000:01:01.0", "0000:01:02.0"]
    assert r["diff"]["before"] == "0000:01:01.0: e1000\n0000:01:02.0: e1000\n"
    assert r["diff"]["after"] == "0000:01:01.0: vfio-pci\n0000:01:02.0: vfio-pci\n"
    assert fake.current_driver("0000:00:05.0") is None  # the bridge stays
    r = run_module(device, {"address": "01:01.0", "state": "restored"})
    assert fake.current_driver("0000:01:01.0") == "e1000"


def test_id_with_index_picks_one(fake, host, run_module):
    r = run_module(device, {"id": "8086:10d3", "index": 1}, check=True)
    assert [c["address"] for c in r["plan"]["changes"]] == [TWIN]
    r = run_module(device, {"id": "8086:10D3"}, check=True)
    assert [c["address"] for c in r["plan"]["changes"]] == ["0000:00:02.0", TWIN]
    r = run_module(device, {"id": "8086:10d3", "index": 2})
    assert r["failed"] and "index 2 is out of range" in r["msg"] and r["exit_code"] == 65


def test_bad_input(host, run_module):
    r = run_module(device, {"address": "00:99.0"})
    assert r["failed"] and r["exit_code"] == 65 and "invalid PCI address" in r["msg"]
    r = run_module(device, {"address": "00:1e.0"})
    assert r["failed"] and r["exit_code"] == 66 and "no PCI device 0000:00:1e.0" in r["msg"]
    r = run_module(device, {"id": "eth0"})
    assert r["failed"] and "vendor:device" in r["msg"]
    r = run_module(device, {"address": TWIN, "driver": "e1000"})
    assert r["failed"] and "not a vfio driver" in r["msg"]
    r = run_module(device, {"address": "00:05.0"})
    assert r["failed"] and "bridge" in r["msg"]


def test_argument_rules(host, run_module):
    assert "one of the following is required" in run_module(device, {})["msg"]
    assert "mutually exclusive" in run_module(device, {"address": TWIN, "id": "8086:10d3"})["msg"]
    assert "index" in run_module(device, {"address": TWIN, "index": 0})["msg"]


def test_vfioctl_missing_on_the_managed_host(monkeypatch, run_module):
    monkeypatch.setattr(common, "HAS_VFIOCTL", False)
    monkeypatch.setattr(common, "VFIOCTL_IMPORT_ERROR", "ModuleNotFoundError: No module named 'vfioctl'")
    r = run_module(device, {"address": TWIN})
    assert r["failed"]
    assert r["msg"].startswith(common.MISSING_VFIOCTL)
    assert "pip install vfioctl" in r["msg"]
