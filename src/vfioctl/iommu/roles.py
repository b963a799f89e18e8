"""The rules of a group, pure: each member's role, and whether a driver keeps the group viable.

The kernel lets userspace use a VFIO group only when every device in it is bound to a vfio
driver, to pci-stub, to no driver, or is a PCI interconnect (bridge) device
(Documentation/driver-api/vfio.rst, "Groups, Devices, and IOMMUs"; drivers/vfio/group.c
``vfio_dev_driver_allowed``).  Readers (:mod:`vfioctl.iommu.groups`) and planners apply
these same functions.
"""

from __future__ import annotations

from vfioctl.base.names import is_vfio_driver_name
from vfioctl.pci.address import PciAddress

ROLE_ENDPOINT = "endpoint"
ROLE_BRIDGE = "bridge"
ROLE_COMPANION = "companion"


def driver_allows_assignment(driver: str | None) -> bool:
    """No driver, a vfio driver or pci-stub (:func:`vfioctl.base.names.is_vfio_driver_name`)."""
    return driver is None or is_vfio_driver_name(driver)


def blocks_viability(is_bridge: bool, driver: str | None) -> bool:
    """The kernel's rule for a group member (bridges never count; drivers/vfio/group.c)."""
    return not is_bridge and not driver_allows_assignment(driver)


def roles(members: list[tuple[PciAddress, bool]]) -> dict[PciAddress, tuple[str, PciAddress | None]]:
    """Pure: role of each (address, is_bridge) of one group: bridges; per slot the lowest
    non-bridge function is the endpoint and the others are its companions."""
    first_in_slot: dict[tuple, PciAddress] = {}
    for a, bridge in sorted(members):
        if not bridge:
            first_in_slot.setdefault(a.slot_key, a)
    out: dict[PciAddress, tuple[str, PciAddress | None]] = {}
    for a, bridge in members:
        if bridge:
            out[a] = (ROLE_BRIDGE, None)
        else:
            head = first_in_slot[a.slot_key]
            out[a] = (ROLE_ENDPOINT, None) if head == a else (ROLE_COMPANION, head)
    return out
