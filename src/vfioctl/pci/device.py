"""The PCI function users hold: keyed by address, answering from the host as it is now.

A :class:`PciDevice` answers through a :class:`~vfioctl.pci.function.PciFunction`, the one
record of a function's facts, made afresh whenever the host changed (any write through the
Host bumps its generation; :meth:`Host.wait_for` does at every poll): between two changes each
file is read once, and :attr:`PciDevice.facts` is that reading, for callers that want one state.
Naming (pci.ids) and the JSON views live in :mod:`vfioctl.report.inventory`, in-use discovery
in :mod:`vfioctl.usage.inuse`, module look-ups in :mod:`vfioctl.host.kernel`.
"""

from __future__ import annotations

import fnmatch

from vfioctl.base.errors import DeviceNotFound, DeviceVanished
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress, kernel_name
from vfioctl.pci.function import (
    PCI_DEVICES,
    PCI_DRIVERS,
    PciFunction,
    driver_module,
    hex4,
    parse_small_int,
    read_functions,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

__all__ = ["ALLOWED_NON_VFIO", "PCI_DEVICES", "PCI_DRIVERS", "PciDevice", "devices", "driver_module",
           "filter_devices", "loaded_drivers", "owner_of"]


#: the uevent keys read (what drivers/pci/pci-driver.c pci_uevent and the driver core write)
_UEVENT_KEYS = frozenset(("DRIVER", "PCI_ID", "PCI_SUBSYS_ID", "PCI_CLASS", "MODALIAS"))


class PciDevice:
    """One PCI function.  Equality and hash on (host, address).

    Values come from :attr:`facts`, the record of the host's current state: read when first
    asked for, and again after the host changed."""

    __slots__ = ("host", "address", "sysfs", "_rec")

    def __init__(self, host: Host, address: PciAddress, *, facts: PciFunction | None = None) -> None:
        self.host = host
        self.address = address
        self.sysfs = facts.sysfs if facts is not None else f"{PCI_DEVICES}/{address}"
        self._rec = facts

    # -------------------------------------------------------------- factory
    @classmethod
    def from_address(cls, host: Host, text: object) -> "PciDevice":
        addr = PciAddress.parse(text)
        dev = cls(host, addr)
        if not host.exists(dev.sysfs):
            raise DeviceNotFound(addr, dev.sysfs)
        return dev

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PciDevice) and other.address == self.address and other.host is self.host

    def __hash__(self) -> int:
        return hash(self.address)

    def __repr__(self) -> str:
        return f"PciDevice({self.address})"

    def __lt__(self, other: "PciDevice") -> bool:
        return self.address < other.address

    @property
    def facts(self) -> PciFunction:
        """The record of this function at the host's current state (one reading of it)."""
        rec = self._rec
        if rec is None or rec.generation != self.host.generation:
            rec = self._rec = PciFunction(self.host, self.address)
        return rec

    def exists(self) -> bool:
        return self.host.exists(self.sysfs)

    def check(self, during: str) -> None:
        """Raise DeviceVanished if the device is gone (hot-unplug, VF teardown)."""
        if not self.exists():
            raise DeviceVanished(self.address, during)

    def attr(self, name: str, default: object = None) -> str | None:
        return self.host.read(f"{self.sysfs}/{name}", default=default)  # type: ignore[no-any-return]

    # -------------------------------------------------------------- identity
    @property
    def vendor_id(self) -> str | None:
        return hex4(self.facts.vendor_id)

    @property
    def device_id(self) -> str | None:
        return hex4(self.facts.device_id)

    @property
    def subsystem_vendor_id(self) -> str | None:
        return hex4(self.facts.subsystem_vendor_id)

    @property
    def subsystem_device_id(self) -> str | None:
        return hex4(self.facts.subsystem_device_id)

    def all_ids(self) -> tuple[str | None, str | None, str | None, str | None]:
        """(vendor, device, subsystem vendor, subsystem device)."""
        f = self.facts
        return (hex4(f.vendor_id), hex4(f.device_id), hex4(f.subsystem_vendor_id), hex4(f.subsystem_device_id))

    @property
    def class_code(self) -> int:
        """The 24-bit class; 0 when it cannot be read (``facts.why_unknown("class_code")`` says why)."""
        return self.facts.class_code or 0

    @property
    def revision(self) -> str | None:
        return self.facts.revision

    @property
    def vendor_device(self) -> str:
        return f"{self.vendor_id}:{self.device_id}"

    # -------------------------------------------------------------- binding
    @property
    def driver(self) -> str | None:
        """The bound driver, read from the ``driver`` link (the kernel's truth)."""
        return self.facts.driver

    @property
    def driver_override(self) -> str | None:
        return self.facts.driver_override

    @property
    def has_driver_override(self) -> bool:
        return self.facts.has_driver_override

    @property
    def driver_module(self) -> str | None:
        """The kernel module of the bound driver (None for a built-in driver or none bound)."""
        return self.facts.driver_module

    @property
    def iommu_group(self) -> int | None:
        return self.facts.iommu_group

    @property
    def numa_node(self) -> int | None:
        return self.facts.numa_node

    @property
    def modalias(self) -> str | None:
        return self.facts.modalias

    # -------------------------------------------------------------- topology
    @property
    def header_type(self) -> int:
        """Config-space header type (0 endpoint, 1 PCI bridge, 2 CardBus), multifunction bit cleared."""
        return self.facts.header_type

    @property
    def is_bridge(self) -> bool:
        """Not a normal header (:func:`vfioctl.pci.function.is_bridge_header`): the header type
        decides, whatever the class says."""
        return self.facts.is_bridge

    @property
    def boot_vga(self) -> bool:
        """The firmware's boot VGA device (``boot_vga`` = 1); False when not known to be
        (``facts.boot_vga`` is None then)."""
        return self.facts.boot_vga is True

    @property
    def physfn(self) -> PciAddress | None:
        return self.facts.physfn

    @property
    def is_vf(self) -> bool:
        return self.facts.is_vf

    @property
    def sriov_capable(self) -> bool:
        return self.facts.sriov_capable

    def sriov_int(self, name: str) -> int | None:
        return parse_small_int(self.attr(name))

    @property
    def sriov_totalvfs(self) -> int | None:
        s = self.facts.sriov
        return s.totalvfs if s is not None else None

    @property
    def sriov_numvfs(self) -> int | None:
        s = self.facts.sriov
        return s.numvfs if s is not None else None

    @property
    def sriov_autoprobe(self) -> bool | None:
        s = self.facts.sriov
        return s.autoprobe if s is not None else None

    @property
    def sriov_vf_device(self) -> str | None:
        s = self.facts.sriov
        return s.vf_device if s is not None else None

    @property
    def virtfns(self) -> list[PciAddress]:
        return list(self.facts.virtfns)

    @property
    def reset_methods(self) -> list[str]:
        """The kernel's reset methods in the order it tries them; [] when it has none.

        Kernels before 5.15 have no ``reset_method``: ``reset`` exists iff some method
        works, which is reported as ``["unknown"]``."""
        return list(self.facts.reset_methods or ())

    @property
    def reset_method(self) -> list[str] | None:
        """``reset_methods`` or None when there is none (schema vfioctl.show/1's field)."""
        return self.reset_methods or None

    def slot_functions(self) -> list[PciAddress]:
        """Other functions present in the same physical slot."""
        out = []
        for fn in range(8):
            if fn == self.address.function:
                continue
            a = self.address.with_function(fn)
            if self.host.exists(f"{PCI_DEVICES}/{a}"):
                out.append(a)
        return out

    def candidate_modules(self) -> list[str]:
        """Kernel modules whose modules.alias patterns match this device."""
        # lazy: host.modules (~2.6 ms at start-up with host.kernel) only for driverless functions' candidates
        from vfioctl.host.modules import modules_for_modalias

        return modules_for_modalias(self.host, self.modalias)


def loaded_drivers(host: Host) -> set[str]:
    return set(host.listdir(PCI_DRIVERS))


def devices(host: Host) -> list[PciDevice]:
    """Every PCI function on the host, in address order, over one reading of the host (the
    records of :func:`vfioctl.pci.function.read_functions`)."""
    return [PciDevice(host, a, facts=f) for a, f in read_functions(host).items()]


def filter_devices(
    devs: Iterable[PciDevice],
    *,
    class_prefix: str | None = None,
    vendor_device: str | None = None,
    driver: str | None = None,
) -> list[PciDevice]:
    """Filter by class prefix (``02`` or ``0200``), ``vvvv:dddd`` (either may be ``*``), driver."""
    out = []
    vd = None
    if vendor_device:
        v, _, d = vendor_device.lower().partition(":")
        vd = (v or "*", d or "*")
    for dev in devs:
        if class_prefix and not f"{dev.class_code:06x}".startswith(class_prefix.lower().removeprefix("0x")):
            continue
        if vd and not (fnmatch.fnmatchcase(dev.vendor_id or "", vd[0]) and fnmatch.fnmatchcase(dev.device_id or "", vd[1])):
            continue
        if driver is not None:
            cur = dev.driver or "none"
            if cur != driver:
                continue
        out.append(dev)
    return out


def owner_of(real: str) -> str | None:
    """The nearest PCI function above a host-absolute sysfs path."""
    owner = None
    for part in real.split("/"):
        if kernel_name(part) is not None:
            owner = part
    return owner
