"""Typed, read-on-demand views of /sys/bus/pci devices and drivers."""

from __future__ import annotations

import fnmatch
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from vfioctl.address import PciAddress
from vfioctl.errors import DeviceNotFound, DeviceVanished
from vfioctl.host import Host
from vfioctl.pciids import PciIds

PCI_DEVICES = "/sys/bus/pci/devices"
PCI_DRIVERS = "/sys/bus/pci/drivers"

#: drivers that leave a device assignable (the kernel's vfio viability rule)
VFIO_DRIVERS_PREFIX = "vfio"
ALLOWED_NON_VFIO = ("pci-stub",)


def _hex4(text: str | None) -> str | None:
    if not text:
        return None
    return text.lower().removeprefix("0x").rjust(4, "0")


class PciDevice:
    """One PCI function.  Equality and hash on (host root, address).

    Values are read from sysfs each time they are asked for; callers that need
    a consistent view call :meth:`info` once.
    """

    __slots__ = ("host", "address", "sysfs", "_uevent")

    def __init__(self, host: Host, address: PciAddress) -> None:
        self.host = host
        self.address = address
        self.sysfs = f"{PCI_DEVICES}/{address}"
        self._uevent: dict[str, str] | None = None

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
        return self.host.read(f"{self.sysfs}/{name}", default=default)  # type: ignore[return-value]

    def _ue(self) -> dict[str, str]:
        if self._uevent is None:
            ue: dict[str, str] = {}
            for line in (self.attr("uevent", "") or "").splitlines():
                k, _, v = line.partition("=")
                ue[k] = v
            self._uevent = ue
        return self._uevent

    # -------------------------------------------------------------- identity
    @property
    def vendor_id(self) -> str | None:
        pid = self._ue().get("PCI_ID")
        if pid:
            return pid.split(":")[0].lower()
        return _hex4(self.attr("vendor"))

    @property
    def device_id(self) -> str | None:
        pid = self._ue().get("PCI_ID")
        if pid:
            return pid.split(":")[1].lower()
        return _hex4(self.attr("device"))

    @property
    def subsystem_vendor_id(self) -> str | None:
        sid = self._ue().get("PCI_SUBSYS_ID")
        if sid:
            return sid.split(":")[0].lower()
        return _hex4(self.attr("subsystem_vendor"))

    @property
    def subsystem_device_id(self) -> str | None:
        sid = self._ue().get("PCI_SUBSYS_ID")
        if sid:
            return sid.split(":")[1].lower()
        return _hex4(self.attr("subsystem_device"))

    @property
    def class_code(self) -> int:
        c = self._ue().get("PCI_CLASS")
        if c:
            return int(c, 16)
        return int(self.attr("class", "0") or "0", 16)

    @property
    def revision(self) -> str | None:
        r = self.attr("revision")
        return r.lower().removeprefix("0x").rjust(2, "0") if r else None

    @property
    def vendor_device(self) -> str:
        return f"{self.vendor_id}:{self.device_id}"

    def names(self) -> dict[str, str | None]:
        ids = PciIds.load(self.host)
        v, d = self.vendor_id or "", self.device_id or ""
        sv, sd = self.subsystem_vendor_id or "", self.subsystem_device_id or ""
        return {
            "vendor_name": ids.vendor(v),
            "device_name": ids.device(v, d),
            "subsystem_name": ids.subsystem(v, d, sv, sd) if sv else None,
            "subsystem_vendor_name": ids.vendor(sv) if sv else None,
            "class_name": ids.class_name(self.class_code),
        }

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
    def iommu_group(self) -> int | None:
        g = self.host.link_name(f"{self.sysfs}/iommu_group")
        return int(g) if g is not None and g.isdigit() else None

    @property
    def numa_node(self) -> int | None:
        n = self.attr("numa_node")
        try:
            v = int(n) if n is not None else -1
        except ValueError:
            return None
        return None if v < 0 else v

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
        ht = self.header_type
        return ht is not None and ht != 0

    @property
    def boot_vga(self) -> bool:
        return self.attr("boot_vga") == "1"

    @property
    def physfn(self) -> PciAddress | None:
        name = self.host.link_name(f"{self.sysfs}/physfn")
        return PciAddress.parse(name) if name else None

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
        try:
            return int(v, 0)
        except ValueError:
            return None

    @property
    def sriov_totalvfs(self) -> int | None:
        return self.sriov_int("sriov_totalvfs")

    @property
    def sriov_numvfs(self) -> int | None:
        return self.sriov_int("sriov_numvfs")

    @property
    def virtfns(self) -> list[PciAddress]:
        out = []
        for name in self.host.listdir(self.sysfs):
            if name.startswith("virtfn") and name[6:].isdigit():
                target = self.host.link_name(f"{self.sysfs}/{name}")
                if target:
                    out.append((int(name[6:]), PciAddress.parse(target)))
        return [a for _, a in sorted(out)]

    @property
    def reset_method(self) -> list[str] | None:
        """Reset methods the kernel will use; None when the kernel cannot reset it."""
        rm = self.attr("reset_method")
        if rm is not None:
            return rm.split() or None
        # kernels before 5.15 have no reset_method; 'reset' exists iff some method works
        if self.host.exists(f"{self.sysfs}/reset"):
            return ["unknown"]
        return None

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

    # -------------------------------------------------------------- host use
    def net_interfaces(self) -> list[str]:
        return _class_children(self.host, "net").get(str(self.address), [])

    def block_devices(self) -> list[str]:
        return _class_children(self.host, "block").get(str(self.address), [])

    def candidate_modules(self) -> list[str]:
        """Kernel modules whose modules.alias patterns match this device's modalias."""
        alias = self.modalias
        if not alias:
            return []
        exact, by_vendor, generic = _pci_aliases(self.host)
        found: list[str] = []
        # only patterns naming this vendor:device, this vendor with any device, or no vendor can
        # match: dict look-ups instead of compiling thousands of globs (Intel alone has ~2700)
        key = alias.upper()
        for pattern, module in exact.get(key[:22], []) + by_vendor.get(key[:13], []) + generic:
            if module not in found and fnmatch.fnmatchcase(alias, pattern):
                found.append(module)
        return found

    # -------------------------------------------------------------- views
    def summary(self, ids: PciIds | None = None) -> dict:
        """The ``vfioctl list --json`` record (schema vfioctl.list/1)."""
        ids = ids or PciIds.load(self.host)
        v, d = self.vendor_id or "", self.device_id or ""
        cc = self.class_code
        ue = self._ue()
        drv = ue.get("DRIVER") if "PCI_ID" in ue else None
        if drv is None:
            drv = self.driver
        group = self.host.link_name(f"{self.sysfs}/iommu_group")
        phys = self.host.link_name(f"{self.sysfs}/physfn")
        return {
            "address": str(self.address),
            "class": f"{cc:06x}",
            "class_name": ids.class_name(cc),
            "vendor_id": v,
            "vendor_name": ids.vendor(v),
            "device_id": d,
            "device_name": ids.device(v, d),
            "subsystem_vendor_id": self.subsystem_vendor_id,
            "subsystem_device_id": self.subsystem_device_id,
            "driver": drv,
            "iommu_group": int(group) if group and group.isdigit() else None,
            "physfn": phys,
        }

    def info(self) -> dict:
        """Everything known about the device (``vfioctl show --json``, schema vfioctl.show/1)."""
        out = self.summary()
        out.update(self.names())
        sriov = None
        if self.sriov_capable:
            sriov = {
                "totalvfs": self.sriov_totalvfs,
                "numvfs": self.sriov_numvfs,
                "drivers_autoprobe": self.attr("sriov_drivers_autoprobe") == "1"
                if self.attr("sriov_drivers_autoprobe") is not None else None,
                "vf_device": _hex4(self.attr("sriov_vf_device")),
                "offset": self.sriov_int("sriov_offset"),
                "stride": self.sriov_int("sriov_stride"),
                "vfs": [str(a) for a in self.virtfns],
            }
        out.update(
            {
                "revision": self.revision,
                "driver_override": self.driver_override,
                "numa_node": self.numa_node,
                "header_type": self.header_type,
                "is_bridge": self.is_bridge,
                "boot_vga": self.boot_vga,
                "reset_method": self.reset_method,
                "sriov": sriov,
                "net_interfaces": self.net_interfaces(),
                "block_devices": self.block_devices(),
                "modalias": self.modalias,
                "candidate_modules": self.candidate_modules(),
                "slot_functions": [str(a) for a in self.slot_functions()],
            }
        )
        return out


class Driver:
    """A PCI driver under /sys/bus/pci/drivers."""

    __slots__ = ("host", "name", "sysfs")

    def __init__(self, host: Host, name: str) -> None:
        self.host = host
        self.name = name
        self.sysfs = f"{PCI_DRIVERS}/{name}"

    def __repr__(self) -> str:
        return f"Driver({self.name})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Driver) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def loaded(self) -> bool:
        return self.host.is_dir(self.sysfs)

    @property
    def module(self) -> str | None:
        return self.host.link_name(f"{self.sysfs}/module")

    def devices(self) -> list[PciAddress]:
        return [PciAddress.parse(n) for n in self.host.listdir(self.sysfs) if PciAddress.is_valid(n)]


def devices(host: Host) -> list[PciDevice]:
    """Every PCI function on the host, in address order."""
    out = []
    for name in host.listdir(PCI_DEVICES):
        try:
            out.append(PciDevice(host, PciAddress.parse(name)))
        except ValueError:
            continue
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


def _owner(real: str) -> str | None:
    """The nearest PCI function above a sysfs path."""
    owner = None
    for part in real.split("/"):
        if len(part) == 12 and PciAddress.is_valid(part):
            owner = part
    return owner


def _class_children(host: Host, cls: str) -> dict[str, list[str]]:
    """Map PCI address -> names in /sys/class/<cls> that sit under that function.

    Partitions are listed too (they can be mounted).  An NVMe multipath head
    (``nvme0n1`` under /sys/devices/virtual/nvme-subsystem, the node that gets
    mounted when CONFIG_NVME_MULTIPATH=y, as on Debian) belongs to every
    controller of its subsystem: those its ``multipath/`` lists (newer kernels),
    or the ``nvmeN`` links of the subsystem its ``device`` points to (6.1).
    """

    def compute() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        owner_of: dict[str, str] = {}
        names = host.listdir(f"/sys/class/{cls}")
        for name in names:
            owner = _owner(host.realpath(f"/sys/class/{cls}/{name}"))
            if owner:
                owner_of[name] = owner
                out.setdefault(owner, []).append(name)
        if cls == "block":
            for name in names:
                if name in owner_of:
                    continue
                owners = {owner_of[p] for p in host.listdir(f"/sys/class/block/{name}/multipath") if p in owner_of}
                if not owners and host.exists(f"/sys/class/block/{name}/device"):
                    # 6.1 has no multipath/ links: the head's device is the nvme-subsystem,
                    # whose nvmeN entries link to the controllers (under their PCI functions)
                    subsys = host.realpath(f"/sys/class/block/{name}/device")
                    if "/nvme-subsystem/" in subsys:
                        for entry in host.listdir(subsys):
                            if entry.startswith("nvme") and entry[4:].isdigit():
                                owner = _owner(host.realpath(f"{subsys}/{entry}"))
                                if owner:
                                    owners.add(owner)
                for owner in sorted(owners):
                    out.setdefault(owner, []).append(name)
                    # the head's partitions (nvme0n1p1) are what gets mounted
                    out[owner] += [p for p in names if p.startswith(name + "p") and p not in owner_of]
        return out

    return host.cached(f"class:{cls}", compute)  # type: ignore[return-value]


_WILD = frozenset("*?[")


def _pci_aliases(host: Host):
    """modules.alias pci patterns in three tiers: by ``pci:vVVVVVVVVdDDDDDDDD`` prefix,
    by ``pci:vVVVVVVVV`` prefix (device wildcarded), and the rest."""

    def compute():
        rel = host.uname_release()
        text = host.read(f"/lib/modules/{rel}/modules.alias", default="") if rel else ""
        exact: dict[str, list[tuple[str, str]]] = {}
        by_vendor: dict[str, list[tuple[str, str]]] = {}
        generic: list[tuple[str, str]] = []
        for line in text.splitlines():
            if line.startswith("alias pci:"):
                _, pattern, module = line.split(None, 2)
                entry = (pattern, module.strip())
                if not _WILD.intersection(pattern[:22]):
                    exact.setdefault(pattern[:22].upper(), []).append(entry)
                elif not _WILD.intersection(pattern[:13]):
                    by_vendor.setdefault(pattern[:13].upper(), []).append(entry)
                else:
                    generic.append(entry)
        return exact, by_vendor, generic

    return host.cached("pci-aliases", compute)
