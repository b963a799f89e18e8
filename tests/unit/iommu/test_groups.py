"""IOMMU groups read from the fake host: members and roles, viability by the kernel's rule, the JSON
view, and the one-reading view agreeing with the group-by-group one; hostile numbers and names."""

from __future__ import annotations

import pytest

from vfioctl.base.errors import InvalidInput, NotFound
from vfioctl.iommu.groups import IommuGroup, groups, groups_read_once, iommu_enabled
from vfioctl.pci.address import PciAddress

A = PciAddress.parse


def test_a_group_with_a_bridge_and_two_nics_on_host_drivers(fake):
    g = IommuGroup.from_number(fake.host(), 5)
    assert g.addresses() == [A("00:05.0"), A("01:01.0"), A("01:02.0")]
    roles = {str(m.device.address): (m.role, m.driver) for m in g.members()}
    assert roles == {"0000:00:05.0": ("bridge", None), "0000:01:01.0": ("endpoint", "e1000"),
                     "0000:01:02.0": ("endpoint", "e1000")}
    assert [str(m.device.address) for m in g.blockers()] == ["0000:01:01.0", "0000:01:02.0"]
    assert not g.viable and g.vfio_node == "/dev/vfio/5" and repr(g) == "IommuGroup(5)"


def test_viable_once_every_endpoint_is_off_host_drivers(fake):
    fake.unbind("0000:01:01.0")
    fake.driver("vfio-pci")
    fake.unbind("0000:01:02.0")
    fake.bind("0000:01:02.0", "vfio-pci")
    g = IommuGroup.from_number(fake.host(), 5)
    assert g.viable and g.blockers() == []


def test_to_dict(fake):
    (fake.root / "dev/vfio").mkdir(parents=True, exist_ok=True)
    (fake.root / "dev/vfio/7").write_text("")
    d = IommuGroup.from_number(fake.host(), 7).to_dict()
    assert d == {"group": 7, "viable": False, "blockers": ["0000:00:07.0"], "vfio_node": "/dev/vfio/7",
                 "members": [{"address": "0000:00:07.0", "role": "endpoint", "companion_of": None,
                              "driver": "e1000e", "class": "020000", "vendor_id": "8086", "device_id": "10d3"}]}
    assert IommuGroup.from_number(fake.host(), 2).to_dict()["vfio_node"] is None


def test_read_once_agrees_with_group_by_group(fake):
    host = fake.host()
    assert [g.number for g in groups(host)] == [0, 1, 2, 4, 5, 7, 9]
    assert [g.to_dict() for g in groups_read_once(host)] == [g.to_dict() for g in groups(host)]
    assert iommu_enabled(host)


@pytest.mark.parametrize("number,err", [
    ("x", InvalidInput), (-1, InvalidInput), ("-1", InvalidInput), ("²", InvalidInput), ("1e3", InvalidInput),
    (True, InvalidInput), (None, InvalidInput), (3, NotFound), ("12345", NotFound),
])
def test_group_numbers_that_are_no_group(fake, number, err):
    with pytest.raises(err) as e:
        IommuGroup.from_number(fake.host(), number)
    assert "\n" not in str(e.value)


def test_a_group_number_as_text(fake):
    assert IommuGroup.from_number(fake.host(), "7") == IommuGroup(fake.host(), 7)


def test_names_in_a_group_that_are_no_kernel_address_are_not_members(fake):
    devs = fake.root / "sys/kernel/iommu_groups/7/devices"
    for junk in ("07:00.0", "0000:00:07.0\n", "...", "0000:00:0G.0", "0000:00:07.0 "):
        (devs / junk).mkdir()
    assert IommuGroup.from_number(fake.host(), 7).addresses() == [A("00:07.0")]


def test_no_groups_without_the_iommu(tmp_path):
    from fakehost import FakeHostBuilder

    host = FakeHostBuilder(tmp_path / "root").host()
    assert groups(host) == [] and groups_read_once(host) == [] and not iommu_enabled(host)
