"""The state read once for planning: what a focus pulls in (its IOMMU group, the journal's devices),
what is read only when asked (host use, consoles, units, a bus reset's reach), and the pure views
the planners use."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vfioctl.base.errors import DeviceNotFound
from vfioctl.ops.journal import DeviceRecord, Journal
from vfioctl.ops.state import SriovState, read_state
from vfioctl.pci.address import PciAddress

A = PciAddress.parse


def test_a_focus_pulls_in_its_whole_group_and_nothing_else(fake):
    st = read_state(fake.host(), None, [A("01:01.0")], in_use=False)
    assert set(st.devices) == {A("00:05.0"), A("01:01.0"), A("01:02.0")}
    assert st.groups == {5: (A("00:05.0"), A("01:01.0"), A("01:02.0"))}
    assert [(m.address.short, m.role, m.driver) for m in st.members(5)] == [
        ("00:05.0", "bridge", None), ("01:01.0", "endpoint", "e1000"), ("01:02.0", "endpoint", "e1000")]
    assert st.holders == {} and st.consoles == {} and st.units == {} and st.reset_reach == {}


def test_the_journal_s_devices_are_read_too(fake):
    host = fake.host()
    with Journal(host, lock_timeout=1) as j:
        j.record_device(DeviceRecord("0000:00:07.0", "8086:10d3", "e1000e", None, "vfio-pci"))
        st = read_state(host, j, [A("00:02.0")], in_use=False)
    assert set(st.devices) == {A("00:02.0"), A("00:07.0")}
    assert set(st.journal_devices) == {"0000:00:07.0"} and st.journal_sriov == {}


def test_a_device_not_on_the_host_is_not_in_the_state(fake):
    st = read_state(fake.host(), None, [A("00:0c.0")], in_use=False)
    assert st.devices == {} and st.get(A("00:0c.0")) is None
    with pytest.raises(DeviceNotFound):
        st.device(A("00:0c.0"))


def test_device_state_is_the_record_the_planners_see(fake):
    st = read_state(fake.host(), None, [A("00:07.0")], in_use=False)
    d = st.device(A("00:07.0"))
    assert (d.vendor_device, d.driver, d.iommu_group, d.is_bridge, d.class_code) == ("8086:10d3", "e1000e", 7,
                                                                                       False, 0x020000)
    assert d.sysfs == "/sys/bus/pci/devices/0000:00:07.0" and d.in_use == () and d.vfio_variants == ()
    assert st.driver_loaded("e1000e") and not st.driver_loaded("vfio-pci")
    assert replace(d, vendor_id=None).vendor_device == "unknown"


def test_what_only_some_requests_need_is_read_when_asked(fake):
    st = read_state(fake.host(), None, [A("00:07.0")], in_use=False, display_consoles=True,
                    reset_reach=[A("00:07.0"), A("00:0c.0")], units=["display-manager.service"])
    assert list(st.reset_reach) == [A("00:07.0")]  # only the functions in the state
    assert st.consoles == {}  # no display-class function in this focus
    assert set(st.units) == {"display-manager.service"}
    st = read_state(fake.host(), None, [A("00:01.0")], in_use=False, display_consoles=True)
    assert list(st.consoles) == [A("00:01.0")]


def test_vf_address_from_offset_and_stride(fake):
    st = read_state(fake.host(), None, [A("00:04.0")], in_use=False)
    pf = st.device(A("00:04.0"))
    s = SriovState(totalvfs=8, numvfs=0, autoprobe=True, vf_device="0010", offset=1, stride=1, vfs=())
    pf = replace(pf, address=A("03:00.0"), sriov=s)
    assert [pf.vf_address(i).short for i in range(3)] == ["03:00.1", "03:00.2", "03:00.3"]
    assert replace(pf, sriov=replace(s, offset=0x80, stride=2)).vf_address(1) == A("03:10.2")
    assert replace(pf, address=A("ff:1f.7"), sriov=replace(s, offset=8, stride=1)).vf_address(0) is None  # past 0xffff
    assert replace(pf, sriov=replace(s, offset=None)).vf_address(0) is None
    assert replace(pf, sriov=None).vf_address(0) is None
    assert st.vfs_of(A("00:07.0")) == [] and st.vfs_of(A("00:0c.0")) == []
