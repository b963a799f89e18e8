"""Typed, read-on-demand views of /sys/bus/pci devices and drivers.

A :class:`PciDevice` reads the kernel's attributes when asked.  Naming (pci.ids)
and the JSON views live in :mod:`vfioctl.report.inventory`, in-use discovery in
:mod:`vfioctl.usage.inuse`, module look-ups in :mod:`vfioctl.host.kernel`.
"""

from __future__ import annotations

import fnmatch

from vfioctl.base.errors import DeviceNotFound, DeviceVanished, InvalidInput
from vfioctl.base.names import hex4
from vfioctl.base.text import ascii_int, numbered, parse_int
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

PCI_DEVICES = "/sys/bus/pci/devices"
PCI_DRIVERS = "/sys/bus/pci/drivers"


#: the uevent keys read (what drivers/pci/pci-driver.c pci_uevent and the driver core write)
_UEVENT_KEYS = frozenset(("DRIVER", "PCI_ID", "PCI_SUBSYS_ID", "PCI_CLASS", "MODALIAS"))


class PciDevice:
    """One PCI function.  Equality and hash on (host, address).

    Values are read from sysfs each time they are asked for, except the
    ``uevent`` fields, which are kept until the host changes (any write
    through the Host bumps its generation)."""

    __slots__ = ("host", "address", "sysfs", "_uevent", "_gen")

    def __init__(self, host: Host, address: PciAddress) -> None:
        self.host = host
        self.address = address
        self.sysfs = f"{PCI_DEVICES}/{address}"
        self._uevent: dict[str, str] | None = None
        self._gen = -1

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

    def exists(self) -> bool:
        return self.host.exists(self.sysfs)

    def check(self, during: str) -> None:
        """Raise DeviceVanished if the device is gone (hot-unplug, VF teardown)."""
        if not self.exists():
            raise DeviceVanished(self.address, during)

    def attr(self, name: str, default: object = None) -> str | None:
        return self.host.read(f"{self.sysfs}/{name}", default=default)  # type: ignore[no-any-return]

    def _ue(self) -> dict[str, str]:
        if self._uevent is None or self._gen != self.host.generation:
            ue: dict[str, str] = {}
            for line in (self.attr("uevent", "") or "").splitlines():
                k, _, v = line.partition("=")
                if k in _UEVENT_KEYS:  # what is read of it, not all a crafted file holds
                    ue[k] = v
            self._uevent = ue
            self._gen = self.host.generation
        return self._uevent

    def _ue_pair(self, key: str) -> tuple[str | None, str | None]:
        v = self._ue().get(key)
        if v:
            a, _, b = v.partition(":")
            return hex4(a), hex4(b)
        return None, None

    # -------------------------------------------------------------- identity
    @property
    def vendor_id(self) -> str | None:
        return self._ue_pair("PCI_ID")[0] or hex4(self.attr("vendor"))

    @property
    def device_id(self) -> str | None:
        return self._ue_pair("PCI_ID")[1] or hex4(self.attr("device"))

    @property
    def subsystem_vendor_id(self) -> str | None:
        return self._ue_pair("PCI_SUBSYS_ID")[0] or hex4(self.attr("subsystem_vendor"))

    @property
    def subsystem_device_id(self) -> str | None:
        return self._ue_pair("PCI_SUBSYS_ID")[1] or hex4(self.attr("subsystem_device"))

    def all_ids(self) -> tuple[str | None, str | None, str | None, str | None]:
        """(vendor, device, subsystem vendor, subsystem device), the uevent parsed once."""
        v, d = self._ue_pair("PCI_ID")
        sv, sd = self._ue_pair("PCI_SUBSYS_ID")
        return (v or hex4(self.attr("vendor")), d or hex4(self.attr("device")),
                sv or hex4(self.attr("subsystem_vendor")), sd or hex4(self.attr("subsystem_device")))

    @property
    def class_code(self) -> int:
        for read in (lambda: self._ue().get("PCI_CLASS"), lambda: self.attr("class", "0")):
            text = read()  # the class file only when the uevent has no valid PCI_CLASS
            if text:
                v = parse_int(text, 16)
                if v is not None and 0 <= v <= 0xFFFFFF:
                    return v
        return 0

    @property
    def revision(self) -> str | None:
        r = self.attr("revision")
        if not r:
            return None
        r = r.lower().removeprefix("0x")
        return r.rjust(2, "0") if len(r) <= 2 and all(c in "0123456789abcdef" for c in r) else None

    @property
    def vendor_device(self) -> str:
        return f"{self.vendor_id}:{self.device_id}"

    # -------------------------------------------------------------- binding
    @property
    def driver(self) -> str | None:
        """The bound driver, read from the ``driver`` link (the kernel's truth)."""
        return self.host.link_name(f"{self.sysfs}/driver")

    @property
    def driver_override(self) -> str | None:
        v = self.attr("driver_override")
        return None if v in (None, "", "(null)") else v

    @property
    def has_driver_override(self) -> bool:
        return self.host.exists(f"{self.sysfs}/driver_override")

    @property
    def driver_module(self) -> str | None:
        """The kernel module of the bound driver (None for a built-in driver or none bound)."""
        return driver_module(self.host, self.driver)

    @property
    def iommu_group(self) -> int | None:
        g = self.host.link_name(f"{self.sysfs}/iommu_group")
        return ascii_int(g)

    @property
    def numa_node(self) -> int | None:
        n = self.attr("numa_node")
        v = parse_int(n) if n is not None else -1
        return None if v is None or v < 0 else v

    @property
    def modalias(self) -> str | None:
        return self._ue().get("MODALIAS") or self.attr("modalias")

    # -------------------------------------------------------------- topology
    @property
    def header_type(self) -> int | None:
        """Config-space header type (0 endpoint, 1 PCI bridge, 2 CardBus), multifunction bit cleared."""
        cfg = self.host.read_bytes(f"{self.sysfs}/config", 16, default=None)
        if cfg and len(cfg) >= 15:
            return cfg[14] & 0x7F
        # unreadable config: infer from the class (PCI-PCI / CardBus bridges)
        sub = self.class_code >> 8
        if sub in (0x0604, 0x0609):
            return 1
        if sub == 0x0607:
            return 2
        return 0

    @property
    def is_bridge(self) -> bool:
        # the class says it without opening config space (groups reads this for every function):
        # header types 1 and 2 belong to PCI-to-PCI (0604, 0609) and CardBus (0607) bridges; only
        # another class 06 (host, ISA, "other" bridge) is checked against the header type
        cc = self.class_code
        if cc >> 16 != 0x06:
            return False
        if (cc >> 8) & 0xFF in (0x04, 0x07, 0x09):
            return True
        ht = self.header_type
        return ht is not None and ht != 0

    @property
    def boot_vga(self) -> bool:
        return self.attr("boot_vga") == "1"

    @property
    def physfn(self) -> PciAddress | None:
        name = self.host.link_name(f"{self.sysfs}/physfn")
        if not name or not PciAddress.is_valid(name):
            return None
        return PciAddress.parse(name)

    @property
    def is_vf(self) -> bool:
        return self.host.exists(f"{self.sysfs}/physfn")

    @property
    def sriov_capable(self) -> bool:
        return self.host.exists(f"{self.sysfs}/sriov_totalvfs")

    def sriov_int(self, name: str) -> int | None:
        v = self.attr(name)
        if v is None:
            return None
        n = parse_int(v, 0)
        return n if n is not None and 0 <= n < 1 << 16 else None

    @property
    def sriov_totalvfs(self) -> int | None:
        return self.sriov_int("sriov_totalvfs")

    @property
    def sriov_numvfs(self) -> int | None:
        return self.sriov_int("sriov_numvfs")

    @property
    def sriov_autoprobe(self) -> bool | None:
        v = self.attr("sriov_drivers_autoprobe")
        return None if v is None else v == "1"

    @property
    def sriov_vf_device(self) -> str | None:
        return hex4(self.attr("sriov_vf_device"))

    @property
    def virtfns(self) -> list[PciAddress]:
        out = []
        for name in self.host.listdir(self.sysfs):
            n = numbered(name, "virtfn", 5)
            if n is not None:
                target = self.host.link_name(f"{self.sysfs}/{name}")
                if target and PciAddress.is_valid(target):
                    out.append((n, PciAddress.parse(target)))
        return [a for _, a in sorted(out)]

    @property
    def reset_methods(self) -> list[str]:
        """The kernel's reset methods in the order it tries them; [] when it has none.

        Kernels before 5.15 have no ``reset_method``: ``reset`` exists iff some method
        works, which is reported as ``["unknown"]``."""
        rm = self.attr("reset_method")
        if rm is not None:
            return [m for m in rm.split() if m.replace("_", "").isalnum()][:16]
        if self.host.exists(f"{self.sysfs}/reset"):
            return ["unknown"]
        return []

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


def driver_module(host: Host, driver: str | None) -> str | None:
    """The kernel module of a registered *driver* (None for a built-in one, or no driver)."""
    return host.link_name(f"{PCI_DRIVERS}/{driver}/module") if driver else None


def loaded_drivers(host: Host) -> set[str]:
    return set(host.listdir(PCI_DRIVERS))


def devices(host: Host) -> list[PciDevice]:
    """Every PCI function on the host, in address order."""
    out = []
    folders: dict[str, str] = {}
    for name in host.listdir(PCI_DEVICES):
        if PciAddress.is_valid(name) and len(name) == 12:
            if host.snapshot:
                # the kernel gives every function its own folder; entries sharing one make
                # every per-device read of a captured tree cost the whole tree (issue 22)
                seen = folders.setdefault(host.sysfs_target(f"{PCI_DEVICES}/{name}"), name)
                if seen != name:
                    raise InvalidInput(f"{PCI_DEVICES}/{name} and {seen} lead to one folder: the kernel gives "
                                       "every PCI function its own (this tree was not captured from a running kernel)")
            out.append(PciDevice(host, PciAddress.parse(name)))
    out.sort()
    return out


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
        if len(part) == 12 and PciAddress.is_valid(part):
            owner = part
    return owner
