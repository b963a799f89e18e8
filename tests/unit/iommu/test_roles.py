"""The rules of a group: which drivers keep it viable (the kernel's vfio_dev_driver_allowed), and each
member's role (bridge, the endpoint of its slot, that endpoint's companions)."""

import pytest

from vfioctl.iommu.roles import (
    ROLE_BRIDGE,
    ROLE_COMPANION,
    ROLE_ENDPOINT,
    blocks_viability,
    driver_allows_assignment,
    roles,
)
from vfioctl.pci.address import PciAddress

A = PciAddress.parse


@pytest.mark.parametrize("driver,ok", [
    (None, True), ("vfio-pci", True), ("pci-stub", True), ("mlx5_vfio_pci", True),
    ("e1000e", False), ("nvidia", False), ("vfio-pci\n", False), ("", False),
])
def test_drivers_that_allow_assignment(driver, ok):
    assert driver_allows_assignment(driver) is ok


def test_a_bridge_never_blocks_and_an_endpoint_on_a_host_driver_does():
    assert not blocks_viability(True, "pcieport")
    assert blocks_viability(False, "e1000e")
    assert not blocks_viability(False, "vfio-pci") and not blocks_viability(False, None)


def test_roles_per_slot_lowest_function_leads():
    members = [(A("01:00.1"), False), (A("01:00.0"), False), (A("00:1c.0"), True), (A("02:00.3"), False),
               (A("02:00.5"), False)]
    got = roles(members)
    assert got == {
        A("00:1c.0"): (ROLE_BRIDGE, None),
        A("01:00.0"): (ROLE_ENDPOINT, None),
        A("01:00.1"): (ROLE_COMPANION, A("01:00.0")),
        A("02:00.3"): (ROLE_ENDPOINT, None),  # function 0 absent: the lowest present leads
        A("02:00.5"): (ROLE_COMPANION, A("02:00.3")),
    }


def test_a_bridge_function_does_not_lead_its_slot():
    got = roles([(A("00:1c.0"), True), (A("00:1c.1"), False)])
    assert got[A("00:1c.1")] == (ROLE_ENDPOINT, None) and got[A("00:1c.0")] == (ROLE_BRIDGE, None)


def test_slots_of_other_domains_or_buses_are_apart():
    got = roles([(A("01:00.0"), False), (A("0001:01:00.1"), False), (A("02:00.1"), False)])
    assert {r for r, _ in got.values()} == {ROLE_ENDPOINT}


def test_no_members_no_roles():
    assert roles([]) == {}
