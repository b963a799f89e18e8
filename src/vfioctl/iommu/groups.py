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
from vfioctl.host.kernel import IOMMU_GROUPS, iommu_group_numbers
from vfioctl.iommu.roles import (
    ROLE_BRIDGE,
    blocks_viability,
    roles,
)
from vfioctl.pci.address import PciAddress, kernel_name
from vfioctl.pci.device import PciDevice
from vfioctl.pci.function import PciFunction, hex4, read_functions

GROUPS = IOMMU_GROUPS

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
        f = self.device.facts
        return {
            "address": str(f.address),
            "role": self.role,
            "companion_of": str(self.companion_of) if self.companion_of else None,
            "driver": self.driver,
            "class": f"{f.class_code or 0:06x}",
            "vendor_id": hex4(f.vendor_id),
            "device_id": hex4(f.device_id),
        }


class IommuGroup:
    """One IOMMU group, keyed by its number."""

    def __init__(self, host: Host, number: int, *, addresses: list[PciAddress] | None = None,
                 vfio_nodes: set[str] | None = None, facts: dict[PciAddress, PciFunction] | None = None) -> None:
        self.host = host
        self.number = number
        self.sysfs = f"{GROUPS}/{number}"
        #: known members (read once for every group by :func:`groups_read_once`), else listed
        self._addresses = addresses
        self._vfio_nodes = vfio_nodes
        #: the records of one reading of the host, which the members' devices answer from
        self._facts = facts or {}

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
            a = kernel_name(name)
            if a is not None:
                out.append(a)
        return sorted(out)

    def devices(self) -> list[PciDevice]:
        return [PciDevice(self.host, a, facts=self._facts.get(a)) for a in self.addresses()]

    def members(self) -> list[Member]:
        devs = self.devices()
        facts = [d.facts for d in devs]
        r = roles([(f.address, f.is_bridge) for f in facts])
        return [Member(d, r[f.address][0], r[f.address][1], f.driver) for d, f in zip(devs, facts)]

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
    return [IommuGroup(host, n) for n in iommu_group_numbers(host)]


def groups_read_once(host: Host) -> list[IommuGroup]:
    """Every group with its PCI members, for a view of all of them: one reading of the host (a
    record per function), the members from each function's ``iommu_group`` link instead of a
    listing per group, and /dev/vfio listed once.  The same answer as :func:`groups` at a
    fraction of the reads on a host with thousands of groups; for a view, not for planning
    (nothing is re-read later)."""
    facts = read_functions(host)
    members: dict[int, list[PciAddress]] = {}
    for a, f in facts.items():
        g = f.iommu_group
        if g is not None:
            members.setdefault(g, []).append(a)
    nodes = set(host.listdir("/dev/vfio"))
    return [IommuGroup(host, n, addresses=members.get(n, []), vfio_nodes=nodes, facts=facts)
            for n in iommu_group_numbers(host)]


def iommu_enabled(host: Host) -> bool:
    return bool(iommu_group_numbers(host))
