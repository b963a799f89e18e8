"""Planning SR-IOV changes (ops/plan/sriov.py): a PF's VF count (through 0 between non-zero
counts), its autoprobe, the VFs bound as they are created (planned against the addresses the
kernel will give them), their network settings before anything binds them, and every refusal
(count, driver, users of the VFs) before any write."""

from __future__ import annotations

import dataclasses
import json

import pytest
from vfnic import A

from vfioctl import engine
from vfioctl.base.errors import HostNotReady, InUse, InvalidInput, Refused, VfioctlError
from vfioctl.ops.journal import DeviceRecord, Journal, SriovRecord
from vfioctl.ops.plan.sriov import new_vfs_plan, sriov_plan
from vfioctl.ops.plan.vfnet import VfWant
from vfioctl.ops.state import read_state
from vfioctl.ops.steps.device import CheckGroupNode, Probe, SetOverride
from vfioctl.ops.steps.journal import JournalCommit, JournalRecord
from vfioctl.ops.steps.sriov import SetAutoprobe, SetNumVfs, SetVfSetting
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.usage.holders import Holder

NVME = PciAddress.parse("0000:00:04.0")


def drv(fake, addr):
    return fake.current_driver(addr)


def journal_data(host):
    with open(host.path("/var/lib/vfioctl/state.json")) as f:
        return json.load(f)


def st(host, *focus):
    journal = Journal(host)
    journal.load()
    return read_state(host, journal, list(focus) or [NVME])


def kinds(plan):
    return [type(s).__name__ for s in plan.steps]


# ------------------------------------------------------------------ through the engine
def test_sriov_set_hide_and_restore(fake, host):
    with pytest.raises(Refused, match="at most 4"):
        engine.sriov_set(host, "00:04.0", 5)
    res = engine.sriov_set(host, "00:04.0", 2, hide=True)
    assert res.changed
    pf = PciDevice(host, PciAddress.parse("00:04.0"))
    vfs = pf.virtfns
    assert [str(v) for v in vfs] == ["0000:00:04.1", "0000:00:04.2"]
    for v in vfs:
        assert drv(fake, str(v)) == "vfio-pci"
    assert pf.attr("sriov_drivers_autoprobe") == "0"
    with pytest.raises(Refused, match="hidden by vfioctl"):
        engine.sriov_set(host, "00:04.0", 3)
    engine.restore(host, ["00:04.0"])
    assert pf.sriov_numvfs == 0 and pf.virtfns == []
    assert pf.attr("sriov_drivers_autoprobe") == "1"
    assert journal_data(host) == {"schema": "vfioctl.journal/1", "devices": {}, "sriov": {}}


def test_sriov_needs_pf_driver(fake, host):
    fake.unbind("0000:00:04.0")
    with pytest.raises(VfioctlError, match="no driver bound"):
        engine.sriov_set(host, "00:04.0", 2)


def test_sriov_nonzero_to_nonzero_goes_through_zero(fake, host):
    engine.sriov_set(host, "00:04.0", 1)
    plan = engine.plan_sriov(host, "00:04.0", 3)
    vals = [s.value for s in plan.steps if s.action == "write"]
    assert vals == ["0", "3"]
    engine.sriov_set(host, "00:04.0", 3)
    assert PciDevice(host, PciAddress.parse("00:04.0")).sriov_numvfs == 3


# ------------------------------------------------------------------ the planner, called directly
def test_refusals_before_any_write(fake, host):
    s = st(host, NVME, PciAddress.parse("00:07.0"))
    with pytest.raises(InvalidInput, match="0000:00:07.0 is not SR-IOV capable"):
        sriov_plan(s, PciAddress.parse("00:07.0"), 1)
    with pytest.raises(InvalidInput, match="VF count must be 0 or more, got -1"):
        sriov_plan(s, NVME, -1)
    with pytest.raises(InvalidInput, match="is not a vfio driver"):
        sriov_plan(s, NVME, 1, hide=True, driver="../../evil")
    with pytest.raises(Refused, match=r"supports at most 4 VFs \(sriov_totalvfs\); 9 asked"):
        sriov_plan(s, NVME, 9)
    with pytest.raises(InvalidInput, match="--hide needs autoprobe off"):
        sriov_plan(s, NVME, 2, hide=True, autoprobe=True)
    assert host.writes == []


def test_a_pf_without_a_driver_names_the_module_to_load(fake, host):
    fake.unbind("0000:00:04.0")
    s = st(host)
    with pytest.raises(HostNotReady) as e:
        sriov_plan(s, NVME, 2)
    assert "load or bind its host driver first (e.g. modprobe <driver>)" in e.value.message
    # the modules whose aliases match it (vfio ones are no host driver)
    s.devices[NVME] = dataclasses.replace(s.devices[NVME], candidate_modules=("nvme", "vfio_pci"))
    with pytest.raises(HostNotReady) as e:
        sriov_plan(s, NVME, 2)
    assert "load or bind nvme first (e.g. modprobe nvme)" in e.value.message
    assert sriov_plan(s, NVME, 0).steps == []  # the count as it is: nothing to ask the driver


def test_the_count_as_it_is_is_an_empty_plan(fake, host):
    plan = sriov_plan(st(host), NVME, 0)
    assert plan.steps == [] and plan.changes == []


def test_creating_vfs_journals_then_writes_the_count_with_their_addresses(fake, host):
    plan = sriov_plan(st(host), NVME, 2, autoprobe=False, origin="apply")
    assert kinds(plan) == ["JournalRecord", "SetAutoprobe", "SetNumVfs", "JournalCommit"]
    rec = plan.steps[0]
    assert isinstance(rec, JournalRecord)
    assert rec.records == [SriovRecord(pf="0000:00:04.0", original_numvfs=0, original_autoprobe=True, origin="apply",
                                       since=rec.records[0].since)]
    ap, nv = plan.steps[1], plan.steps[2]
    assert isinstance(ap, SetAutoprobe) and (ap.on, ap.previous) == (False, True)
    assert isinstance(nv, SetNumVfs) and (nv.numvfs, nv.previous) == (2, 0)
    assert [str(v) for v in nv.expect_vfs] == ["0000:00:04.1", "0000:00:04.2"]
    (change,) = plan.changes
    assert (change.address, change.role, change.before, change.after) == ("0000:00:04.0", "PF", "0 VFs", "2 VFs")
    assert sriov_plan(st(host), NVME, 2, autoprobe=True).steps[1:2] == [nv]  # autoprobe already on: no step


def test_between_non_zero_counts_through_zero(fake, host):
    host.write("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs", "1")
    plan = sriov_plan(st(host), NVME, 3)
    counts = [(s.numvfs, s.previous, s.note) for s in plan.steps if isinstance(s, SetNumVfs)]
    assert counts == [(0, 1, "the kernel only changes a non-zero count through 0"), (3, 0, "")]
    removing = sriov_plan(st(host), NVME, 0)
    assert [(s.numvfs, s.previous, s.expect_vfs) for s in removing.steps if isinstance(s, SetNumVfs)] == [(0, 1, ())]


def test_hide_binds_the_planned_vfs_with_autoprobe_off(fake, host):
    plan = sriov_plan(st(host), NVME, 3, hide=True, vf_indices=[1, 7])
    assert kinds(plan)[:4] == ["JournalRecord", "SetAutoprobe", "SetNumVfs", "JournalCommit"]
    binds = [(type(s).__name__, str(s.address)) for s in plan.steps
             if isinstance(s, (SetOverride, Probe, CheckGroupNode))]
    # VF index 7 is past the count: only VF 1 (0000:00:04.2) is bound
    assert binds == [("SetOverride", "0000:00:04.2"), ("Probe", "0000:00:04.2"), ("CheckGroupNode", "0000:00:04.2")]
    recs = [r for s in plan.steps if isinstance(s, JournalRecord) for r in s.records if isinstance(r, DeviceRecord)]
    assert [(r.address, r.vendor_device, r.original_driver, r.target_driver) for r in recs] == [
        ("0000:00:04.2", "1b36:0010", None, "vfio-pci")]
    assert [c.role for c in plan.changes] == ["PF", "VF1"]


def test_hide_of_existing_vfs_binds_those_not_bound_yet(fake, host):
    engine.sriov_set(host, "00:04.0", 2)
    plan = sriov_plan(st(host), NVME, 2, hide=True, vf_indices=[0])
    assert not any(isinstance(s, SetNumVfs) for s in plan.steps)
    assert {str(s.address) for s in plan.steps if isinstance(s, SetOverride)} == {"0000:00:04.1"}


def test_vf_addresses_that_cannot_be_planned_refuse_hide(fake, host):
    for f in ("sriov_offset", "sriov_stride"):
        (fake._devdir("0000:00:04.0") / f).unlink()
    s = st(host)
    plan = sriov_plan(s, NVME, 2)  # the count alone needs no addresses
    assert [x.expect_vfs for x in plan.steps if isinstance(x, SetNumVfs)] == [()]
    with pytest.raises(HostNotReady, match="does not show sriov_offset/sriov_stride"):
        sriov_plan(s, NVME, 2, hide=True)
    with pytest.raises(HostNotReady, match="does not show sriov_offset/sriov_stride"):
        new_vfs_plan(s, NVME, 2, None)


def test_a_vf_held_by_a_vm_stops_a_count_change_unless_forced(fake, host):
    engine.sriov_set(host, "00:04.0", 2)
    s = st(host)
    vf0 = s.devices[PciAddress.parse("0000:00:04.1")]
    held = dataclasses.replace(s, holders={vf0.iommu_group: (Holder(4242, "qemu-system-x86", "web1", vf0.iommu_group),)})
    with pytest.raises(InUse) as e:
        sriov_plan(held, NVME, 0)
    assert f"0000:00:04.1: group {vf0.iommu_group} held by PID 4242 qemu-system-x86 (VM web1)" in e.value.message
    assert "(or pass --force)" in e.value.message
    assert [x.numvfs for x in sriov_plan(held, NVME, 0, force=True).steps if isinstance(x, SetNumVfs)] == [0]


def test_hidden_vfs_stop_a_count_change_unless_forced(fake, host):
    engine.sriov_set(host, "00:04.0", 2, hide=True)
    s = st(host)
    with pytest.raises(Refused, match="restore 0000:00:04.0. first, or pass --force"):
        sriov_plan(s, NVME, 1)
    assert [x.numvfs for x in sriov_plan(s, NVME, 1, force=True).steps if isinstance(x, SetNumVfs)] == [0, 1]


def test_new_vfs_plan_binds_the_vfs_a_config_creates(fake, host):
    s = st(host, NVME, PciAddress.parse("00:07.0"))
    with pytest.raises(InvalidInput, match="not SR-IOV capable"):
        new_vfs_plan(s, PciAddress.parse("00:07.0"), 1, None)
    plan = new_vfs_plan(s, NVME, 2, None, origin="apply", entry="sriov[0]")
    assert kinds(plan)[0] == "JournalRecord" and kinds(plan)[-1] == "JournalCommit"
    assert [(r.address, r.origin, r.entry) for r in plan.steps[0].records] == [
        ("0000:00:04.1", "apply", "sriov[0]"), ("0000:00:04.2", "apply", "sriov[0]")]
    assert isinstance(plan.steps[-1], JournalCommit) and plan.steps[-1].keys == ["0000:00:04.1", "0000:00:04.2"]


def test_vf_settings_come_after_the_count_and_before_the_binding(nic, host):
    s = read_state(host, Journal(host), [A], vf_net=[A], machine_id=True)
    plan = sriov_plan(s, A, 3, hide=True, settings=[VfWant(2, trust=True)])
    order = [type(x).__name__ for x in plan.steps]
    assert order.index("SetNumVfs") < order.index("SetVfSetting") < order.index("SetOverride")
    (vs,) = [x for x in plan.steps if isinstance(x, SetVfSetting)]
    assert (vs.vf, vs.field, vs.want, vs.previous) == (2, "trust", True, None)
    with pytest.raises(VfioctlError, match="past the PF's VF count"):
        sriov_plan(s, A, 2, settings=[VfWant(2, trust=True)])
    assert PciDevice(host, A).sriov_numvfs == 2
