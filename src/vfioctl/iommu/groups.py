"""IOMMU groups: members, their roles, and whether the group is viable.

The kernel lets userspace use a VFIO group only when every device in it is
bound to a vfio driver, to pci-stub, to no driver, or is a PCI interconnect
(bridge) device (Documentation/driver-api/vfio.rst, "Groups, Devices, and
IOMMUs"; drivers/vfio/group.c ``vfio_dev_driver_allowed``).  That is the rule
:attr:`IommuGroup.viable` applies.
"""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput, NotFound
from vfioctl.base.text import ascii_int
from vfioctl.host.core import Host
from vfioctl.iommu.roles import (
    ROLE_BRIDGE,
    blocks_viability,
    roles,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice, devices

GROUPS = "/sys/kernel/iommu_groups"

class Member:
    """A device in a group with its role; ``companion_of`` names the slot's endpoint."""

    __slots__ = ("device", "role", "companion_of", "driver")

    def __init__(self, device: PciDevice, role: str, companion_of: PciAddress | None, driver: str | None) -> None:
        self.device = device
        self.role = role
        self.companion_of = companion_of
        self.driver = driver

    def __repr__(self) -> str:
        return f"Member({self.device.address}, {self.role})"

    @property
    def blocks_viability(self) -> bool:
        return blocks_viability(self.role == ROLE_BRIDGE, self.driver)

    def to_dict(self) -> dict:
        return {
            "address": str(self.device.address),
            "role": self.role,
            "companion_of": str(self.companion_of) if self.companion_of else None,
            "driver": self.driver,
            "class": f"{self.device.class_code:06x}",
            "vendor_id": self.device.vendor_id,
            "device_id": self.device.device_id,
        }


class IommuGroup:
    """One IOMMU group, keyed by its number."""

    def __init__(self, host: Host, number: int, *, addresses: list[PciAddress] | None = None,
                 vfio_nodes: set[str] | None = None) -> None:
        self.host = host
        self.number = number
        self.sysfs = f"{GROUPS}/{number}"
        #: known members (read once for every group by :func:`groups_read_once`), else listed
        self._addresses = addresses
        self._vfio_nodes = vfio_nodes

    @classmethod
    def from_number(cls, host: Host, number: object) -> "IommuGroup":
        n = number if isinstance(number, int) and not isinstance(number, bool) else ascii_int(str(number))
        if n is None:
            raise InvalidInput(f"invalid IOMMU group {number!r}: expected a number, e.g. group:12")
        if n < 0:
            raise InvalidInput(f"invalid IOMMU group {number!r}: must not be negative")
        g = cls(host, n)
        if not host.is_dir(g.sysfs):
            raise NotFound(f"no IOMMU group {n} on this host ({g.sysfs} does not exist); `vfioctl groups` lists them")
        return g

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IommuGroup) and other.number == self.number

    def __hash__(self) -> int:
        return hash(self.number)

    def __repr__(self) -> str:
        return f"IommuGroup({self.number})"

    def addresses(self) -> list[PciAddress]:
        if self._addresses is not None:
            return list(self._addresses)
        out = []
        for name in self.host.listdir(f"{self.sysfs}/devices"):
            if len(name) == 12 and PciAddress.is_valid(name):
                out.append(PciAddress.parse(name))
        return sorted(out)

    def devices(self) -> list[PciDevice]:
        return [PciDevice(self.host, a) for a in self.addresses()]

    def members(self) -> list[Member]:
        devs = self.devices()
        r = roles([(d.address, d.is_bridge) for d in devs])
        return [Member(d, r[d.address][0], r[d.address][1], d.driver) for d in devs]

    def blockers(self) -> list[Member]:
        """Members whose current driver makes the group unusable by VFIO."""
        return [m for m in self.members() if m.blocks_viability]

    @property
    def viable(self) -> bool:
        return not self.blockers()

    @property
    def vfio_node(self) -> str:
        return f"/dev/vfio/{self.number}"

    def to_dict(self) -> dict:
        members = self.members()
        blockers = [m for m in members if m.blocks_viability]
        return {
            "group": self.number,
            "viable": not blockers,
            "blockers": [str(m.device.address) for m in blockers],
            "vfio_node": self.vfio_node if (str(self.number) in self._vfio_nodes if self._vfio_nodes is not None
                                            else self.host.exists(self.vfio_node)) else None,
            "members": [m.to_dict() for m in members],
        }


def groups(host: Host) -> list[IommuGroup]:
    out = []
    for name in host.listdir(GROUPS):
        n = ascii_int(name)
        if n is not None:
            out.append(IommuGroup(host, n))
    out.sort(key=lambda g: g.number)
    return out


def groups_read_once(host: Host) -> list[IommuGroup]:
    """Every group with its PCI members, for a view of all of them: the members come from each
    function's ``iommu_group`` link (one readlink each) instead of a listing per group, and
    /dev/vfio is listed once.  The same answer as :func:`groups` at a fraction of the reads on a
    host with thousands of groups; for a view, not for planning (nothing is re-read later)."""
    members: dict[int, list[PciAddress]] = {}
    for dev in devices(host):
        g = dev.iommu_group
        if g is not None:
            members.setdefault(g, []).append(dev.address)
    nodes = set(host.listdir("/dev/vfio"))
    return [IommuGroup(host, g.number, addresses=sorted(members.get(g.number, [])), vfio_nodes=nodes)
            for g in groups(host)]


def iommu_enabled(host: Host) -> bool:
    return bool(host.listdir(GROUPS))
