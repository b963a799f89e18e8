"""Handing hidden devices to guests: QEMU arguments, libvirt XML, QMP hot-plug.

The generators (:mod:`vfioctl.guest.qemu`, :mod:`vfioctl.guest.libvirt`) are
pure: they turn a list of :class:`Assignment` into text.  This module holds
what they share: the guest slot layout (functions of one host slot go to one
guest slot, so a GPU and its audio function stay together), device ids derived
from the host address, and the readiness check that refuses a device QEMU
could not open (not on vfio-pci, or a group member still on a host driver).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vfioctl.base.errors import HostNotReady, InvalidInput, Refused
from vfioctl.base.names import is_plain_abs_path
from vfioctl.host.core import Host
from vfioctl.iommu.groups import IommuGroup
from vfioctl.iommu.roles import ROLE_BRIDGE, driver_allows_assignment
from vfioctl.ops.selector import classify, resolve
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice

__all__ = [
    "Assignment", "layout", "hostdev_id", "resolve_devices", "check_assignable", "is_vfio_driver",
    "DEFAULT_ROOT_SLOT", "with_rom", "check_rom_file",
]


def check_rom_file(path: str) -> str:
    """A ROM file path for QEMU/libvirt: absolute, printable, no quotes or control characters
    (it goes into a -device option and an XML attribute)."""
    if not is_plain_abs_path(path) or any(c in path for c in "'\"\\"):
        raise InvalidInput(f"--rom {str(path)[:80]!r}: give the ROM file's absolute path (no quotes, backslashes "
                           "or control characters)")
    return path


def with_rom(assignments: list[Assignment], rom_file: str | None, no_rom: bool) -> list[Assignment]:
    """The same assignments with a ROM file or no ROM BAR (one of the two) for every function."""
    if rom_file and no_rom:
        raise InvalidInput("--rom FILE and --no-rom contradict each other: give one")
    if rom_file:
        check_rom_file(rom_file)
        return [replace(a, rom_file=rom_file) for a in assignments]
    if no_rom:
        return [replace(a, rom_bar=False) for a in assignments]
    return assignments

#: First guest slot used for multi-function devices on the root bus when no --slot is given.
#: Low slots are where QEMU and libvirt put their own devices; 0x10 and up are usually free.
DEFAULT_ROOT_SLOT = 0x10


@dataclass(frozen=True)
class Assignment:
    """One host function and where it goes in the guest.

    ``guest_slot``/``guest_function`` are None when the guest address is left
    to QEMU/libvirt (single-function devices, no pairing needed).
    """

    host: PciAddress
    id: str
    bus: str | None = None
    guest_slot: int | None = None
    guest_function: int | None = None
    multifunction: bool = False
    #: a ROM image file for the guest (QEMU romfile=, libvirt <rom file=.../>)
    rom_file: str | None = None
    #: False: expose no ROM BAR (QEMU rombar=0, libvirt <rom bar='off'/>)
    rom_bar: bool | None = None

    @property
    def guest_addr(self) -> str | None:
        """QEMU's ``addr=SLOT.F`` value, e.g. ``10.0``."""
        if self.guest_slot is None:
            return None
        return f"{self.guest_slot:02x}.{self.guest_function or 0:x}"


def hostdev_id(addr: PciAddress) -> str:
    """A QEMU/libvirt-safe device id from the host address: ``hostdev-0000-03-00-0``."""
    return "hostdev-" + str(addr).replace(":", "-").replace(".", "-")


def layout(
    addresses: list[PciAddress],
    *,
    bus: str | None = None,
    slot: int | None = None,
    groups: dict[PciAddress, int | None] | None = None,
) -> list[Assignment]:
    """Pure: guest placement for *addresses* (sorted, duplicates dropped).

    When no two functions share a host slot, the guest address is left to the
    VM manager.  Otherwise every host slot gets its own guest slot, counting up
    from *slot* (default 0 on a given *bus*, a root port's only slot, else
    :data:`DEFAULT_ROOT_SLOT`); function 0 of a shared slot carries
    ``multifunction=on`` and the others keep their function numbers (renumbered
    from 0 if the host's function 0 is not passed, since a guest only
    enumerates a slot that has a function 0).

    With *groups* (address -> IOMMU group), only functions of one slot AND one
    group are paired: SR-IOV VFs share their PF's slot but each has its own
    group, and stay separate devices in the guest.
    """
    addrs = sorted(set(PciAddress.parse(a) for a in addresses))
    if not addrs:
        raise InvalidInput("name at least one device")
    slots: dict[tuple, list[PciAddress]] = {}
    for a in addrs:
        slots.setdefault((a.slot_key, (groups or {}).get(a)), []).append(a)
    if all(len(fns) == 1 for fns in slots.values()):
        return [Assignment(a, hostdev_id(a), bus) for a in addrs]
    base = slot if slot is not None else (0 if bus else DEFAULT_ROOT_SLOT)
    if base < 0 or base + len(slots) - 1 > 0x1F:
        raise InvalidInput(
            f"guest slots {base:#04x}..{base + len(slots) - 1:#04x} do not fit in 00-1f; choose a lower --slot"
        )
    out = []
    for i, fns in enumerate(slots.values()):
        keep = any(a.function == 0 for a in fns)
        for j, a in enumerate(fns):
            gf = a.function if keep else j
            out.append(Assignment(a, hostdev_id(a), bus, base + i, gf, multifunction=len(fns) > 1 and gf == 0))
    return out


def is_vfio_driver(driver: str | None) -> bool:
    """vfio-pci or a vfio variant driver (mlx5_vfio_pci, ...): what QEMU's vfio-pci can open."""
    return bool(driver) and "vfio" in driver  # type: ignore[operator]


def resolve_devices(host: Host, specs: list[str]) -> list[PciDevice]:
    """Devices for DEV arguments; ``group:N`` contributes its endpoints, not its bridges."""
    out: list[PciDevice] = []
    for spec in specs:
        kind, _ = classify(spec)
        for d in resolve(host, [spec]):
            if d.is_bridge:
                if kind == "group":
                    continue
                raise InvalidInput(
                    f"{d.address} is a PCI bridge/port: it cannot be passed to a guest; name the endpoints behind it"
                )
            if d not in out:
                out.append(d)
    return out


def check_assignable(host: Host, devices: list[PciDevice], *, managed: bool = False) -> None:
    """Refuse (one line) when QEMU could not open *devices* as they are now.

    Each device must be on vfio-pci or a vfio variant driver (unless *managed*:
    libvirt then detaches the named devices itself), and every other endpoint of
    its IOMMU group must be on a vfio driver, pci-stub or no driver, or the
    kernel calls the group not viable.
    """
    named = {d.address for d in devices}
    for d in devices:
        d.check("checking it for a guest")
        if d.iommu_group is None:
            raise HostNotReady(
                f"{d.address} has no IOMMU group: the IOMMU is off on this host, so it cannot be assigned; "
                "`vfioctl check` says how to enable it"
            )
    # group members (not named here) that would keep a group unviable
    outside: dict[int, list[str]] = {}
    for g in dict.fromkeys(d.iommu_group for d in devices):
        for m in IommuGroup(host, g).members():  # type: ignore[arg-type]
            if m.role == ROLE_BRIDGE or m.device.address in named:
                continue
            if not driver_allows_assignment(m.driver):
                outside.setdefault(g, []).append(f"{m.device.address} ({m.driver})")  # type: ignore[arg-type]
    off = [] if managed else [d for d in devices if not is_vfio_driver(d.driver)]
    if off:
        grouped = any(d.iommu_group in outside for d in off)
        cmd = "vfioctl hide " + " ".join(d.address.short for d in off) + (" --group" if grouped else "")
        what = ", ".join(f"{d.address} is on {d.driver or 'no driver'}" for d in off)
        extra = ""
        if grouped:
            extra = " (its IOMMU group also has " + ", ".join(b for d in off for b in outside.get(d.iommu_group, [])) + ")"  # type: ignore[arg-type]
        it = "it" if len(off) == 1 else "them"
        raise Refused(f"{what}, not vfio-pci, so QEMU cannot open {it}{extra}: run `{cmd}` first")
    for d in devices:
        blockers = outside.get(d.iommu_group)  # type: ignore[arg-type]
        if blockers:
            raise Refused(
                f"IOMMU group {d.iommu_group} of {d.address} is not viable: {', '.join(blockers)} still on a host "
                f"driver; run `vfioctl hide {d.address.short} --group` (or hide {', '.join(b.split()[0] for b in blockers)})"
            )
