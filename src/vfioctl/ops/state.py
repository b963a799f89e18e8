"""The host's state as planning needs it, read once (under the journal lock for a change).

:func:`read_state` reads, through :class:`~vfioctl.host.core.Host`, everything the
planners in :mod:`vfioctl.ops.plan` look at: the devices named and their IOMMU
groups, SR-IOV parents and children, drivers, in-use evidence, VM holders and
the journal.  The planners are pure functions of a :class:`HostState`, so a
plan is what the host was when the lock was taken, and a dry run shows exactly
what a real run does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.base.errors import DeviceNotFound
from vfioctl.host.core import Host
from vfioctl.host.modules import modules_for_modalias, vfio_variants_for_modalias
from vfioctl.host.system import machine_id as read_machine_id
from vfioctl.iommu.groups import IommuGroup
from vfioctl.iommu.roles import roles
from vfioctl.ops.journal import DeviceRecord, HandoffRecord, Journal, SriovRecord, VfNetRecord
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES, PciDevice, loaded_drivers
from vfioctl.pci.device import devices as all_devices
from vfioctl.pci.function import hex4
from vfioctl.pci.reset import ResetReach, reset_reaches
from vfioctl.pci.vfnet import PfNet, read_pf_net
from vfioctl.usage import inuse
from vfioctl.usage.console import (
    GpuConsole,
    VtConsole,
    read_gpu_console,
    read_units,
    vtconsoles,
)
from vfioctl.usage.holders import Holder, group_holders
from vfioctl.usage.record import Use

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable


@dataclass(frozen=True)
class SriovState:
    totalvfs: int
    numvfs: int
    autoprobe: bool | None
    vf_device: str | None
    offset: int | None
    stride: int | None
    vfs: tuple[PciAddress, ...]


@dataclass(frozen=True)
class DeviceState:
    """One function as the kernel showed it when the state was read."""

    address: PciAddress
    vendor_id: str | None
    device_id: str | None
    subsystem: tuple[str | None, str | None]
    class_code: int
    driver: str | None
    driver_module: str | None
    driver_override: str | None
    has_override: bool
    iommu_group: int | None
    is_bridge: bool
    boot_vga: bool
    physfn: PciAddress | None
    sriov: SriovState | None
    reset_methods: tuple[str, ...]
    has_reset_method: bool
    numa_node: int | None
    #: host uses with their evidence (vfioctl.usage.inuse.uses; read for the devices a plan may
    #: change, () for the others); str(use) is the message
    in_use: tuple[Use, ...] = ()
    candidate_modules: tuple[str, ...] = ()
    vfio_variants: tuple[str, ...] = ()

    @property
    def in_use_text(self) -> list[str]:
        """The host uses as the messages say them."""
        return [u.text for u in self.in_use]

    @property
    def vendor_device(self) -> str:
        if self.vendor_id and self.device_id:
            return f"{self.vendor_id}:{self.device_id}"
        return "unknown"

    @property
    def sysfs(self) -> str:
        return f"{PCI_DEVICES}/{self.address}"

    def vf_address(self, index: int) -> PciAddress | None:
        """VF *index*'s address from the SR-IOV offset and stride (drivers/pci/iov.c
        pci_iov_virtfn_bus/devfn): routing ID + First VF Offset + index * VF Stride."""
        s = self.sriov
        if s is None or s.offset is None or s.stride is None:
            return None
        a = self.address
        rid = (a.bus << 8) + (a.slot << 3) + a.function + s.offset + index * s.stride
        if rid > 0xFFFF:
            return None
        return PciAddress(a.domain, rid >> 8, (rid >> 3) & 0x1F, rid & 7)


@dataclass(frozen=True)
class GroupMember:
    address: PciAddress
    role: str
    companion_of: PciAddress | None
    driver: str | None


@dataclass
class HostState:
    """Devices, groups, drivers, holders and journal records at one moment."""

    devices: dict[PciAddress, DeviceState]
    groups: dict[int, tuple[PciAddress, ...]]
    drivers: frozenset[str]
    holders: dict[int, tuple[Holder, ...]]
    journal_devices: dict[str, DeviceRecord] = field(default_factory=dict)
    journal_sriov: dict[str, SriovRecord] = field(default_factory=dict)
    journal_handoff: dict[str, HandoffRecord] = field(default_factory=dict)
    journal_vfnet: dict[str, VfNetRecord] = field(default_factory=dict)
    #: SR-IOV NIC PFs' interfaces and VF settings (read for PFs whose VF settings a request
    #: sets, and those the journal has VF settings of); a PF without a netdev is absent
    pf_net: dict[PciAddress, PfNet] = field(default_factory=dict)
    #: /etc/machine-id, read when a derived VF MAC is asked for
    machine_id: str | None = None
    #: whether the kernel supports driver_override at all (3.16+)
    live: bool = True
    #: the console hand-off's facts of display devices, read when a request may take a console
    consoles: dict[PciAddress, GpuConsole] = field(default_factory=dict)
    vtcons: tuple[VtConsole, ...] = ()
    #: systemd units a request names: name -> (real id, ActiveState)
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: what a bus reset of each reset target reaches (read for a reset request)
    reset_reach: dict[PciAddress, ResetReach] = field(default_factory=dict)
    #: the modules modules.alias offers for each journaled device whose original driver is
    #: not registered: the only modules a restore loads back for it
    offered_modules: dict[PciAddress, tuple[str, ...]] = field(default_factory=dict)

    def device(self, address: PciAddress) -> DeviceState:
        try:
            return self.devices[address]
        except KeyError:
            raise DeviceNotFound(address, f"{PCI_DEVICES}/{address}") from None

    def get(self, address: PciAddress) -> DeviceState | None:
        return self.devices.get(address)

    def members(self, group: int) -> list[GroupMember]:
        """The group's functions with their roles (endpoint, bridge, companion)."""
        addrs = self.groups.get(group, ())
        devs = [self.devices[a] for a in addrs if a in self.devices]
        r = roles([(d.address, d.is_bridge) for d in devs])
        return [GroupMember(d.address, r[d.address][0], r[d.address][1], d.driver) for d in devs]

    def driver_loaded(self, name: str) -> bool:
        return name in self.drivers

    def vf_index(self, vf: PciAddress) -> int | None:
        """*vf*'s index on its PF (its place in the PF's VFs), or None."""
        d = self.devices.get(vf)
        pf = self.devices.get(d.physfn) if d is not None and d.physfn is not None else None
        if pf is None or pf.sriov is None or vf not in pf.sriov.vfs:
            return None
        return pf.sriov.vfs.index(vf)

    def vfs_of(self, pf: PciAddress) -> list[DeviceState]:
        d = self.devices.get(pf)
        if d is None or d.sriov is None:
            return []
        return [self.devices[v] for v in d.sriov.vfs if v in self.devices]


def device_state(dev: PciDevice, *, in_use: bool) -> DeviceState:
    """The planners' view of *dev*'s record (:attr:`PciDevice.facts`, read once), with the host-use
    evidence, candidate modules and vfio variant drivers when *in_use* (the devices a plan may change)."""
    f = dev.facts
    host = dev.host
    s = f.sriov
    sriov = None
    if s is not None:
        sriov = SriovState(totalvfs=s.totalvfs or 0, numvfs=s.numvfs or 0, autoprobe=s.autoprobe,
                           vf_device=s.vf_device, offset=s.offset, stride=s.stride, vfs=s.vfs)
    drv = f.driver
    return DeviceState(
        address=f.address,
        vendor_id=hex4(f.vendor_id),
        device_id=hex4(f.device_id),
        subsystem=(hex4(f.subsystem_vendor_id), hex4(f.subsystem_device_id)),
        class_code=f.class_code or 0,
        driver=drv,
        driver_module=f.driver_module,
        driver_override=f.driver_override,
        has_override=f.has_driver_override,
        iommu_group=f.iommu_group,
        is_bridge=f.is_bridge,
        # the planners' bool: a boot_vga the record could not read (None) is not claimed as one
        boot_vga=f.boot_vga is True,
        physfn=f.physfn,
        sriov=sriov,
        reset_methods=tuple(f.reset_methods or ()),
        has_reset_method=f.has_reset_method,
        numa_node=f.numa_node,
        in_use=tuple(inuse.uses(dev)) if in_use else (),
        # only planning a PF without a driver names its candidate modules (plan.plan_sriov)
        candidate_modules=tuple(dev.candidate_modules()) if in_use and not drv else (),
        vfio_variants=tuple(vfio_variants_for_modalias(host, f.modalias)) if in_use else (),
    )


def read_state(host: Host, journal: Journal | None, focus: list[PciAddress] | None = None, *,
               in_use: bool = True, holders: bool | None = None, consoles: Iterable[PciAddress] = (),
               display_consoles: bool = False, units: Iterable[str] = (),
               reset_reach: Iterable[PciAddress] = (), vf_net: Iterable[PciAddress] = (),
               machine_id: bool = False) -> HostState:
    """Read the devices in *focus* (all devices when None) and what planning them needs:
    every member of their IOMMU groups, their SR-IOV parents and VFs, the journal's devices,
    the drivers registered, and the processes holding their groups.  Without *in_use* the
    host-use evidence is not read (a restore gives devices back and needs none); *holders*
    (default: as *in_use*) says whether VM holders are.

    What only some requests need is read when asked, so that planning never reads the host:
    the console hand-off facts of *consoles* (and of every display-class function with
    *display_consoles*) with the virtual consoles, the state of systemd *units*, and the
    reach of a bus reset of each of *reset_reach*, the VF settings of the PFs in *vf_net* (and
    of those the journal has VF settings of), the machine-id with *machine_id*."""
    present = {d.address: d for d in all_devices(host)}
    want: list[PciAddress] = []
    seen: set[PciAddress] = set()

    def add(a: PciAddress) -> None:
        if a not in seen and a in present:
            seen.add(a)
            want.append(a)

    todo = list(present) if focus is None else list(focus)
    if journal is not None:
        todo += [PciAddress.parse(a) for a in journal.devices] + [PciAddress.parse(p) for p in journal.sriov]
        todo += [PciAddress.parse(p) for p in journal.vfnet]
    for a in todo:
        add(a)
    states: dict[PciAddress, DeviceState] = {}
    groups: dict[int, tuple[PciAddress, ...]] = {}
    i = 0
    while i < len(want):
        a = want[i]
        i += 1
        d = device_state(present[a], in_use=in_use)
        states[a] = d
        if d.physfn is not None:
            add(d.physfn)
        if d.sriov is not None:
            for v in d.sriov.vfs:
                add(v)
        g = d.iommu_group
        if g is not None and g not in groups:
            members = IommuGroup(host, g).addresses()
            for m in members:
                add(m)
            groups[g] = tuple(members)
    held: dict[int, list[Holder]] = {}
    if groups and (in_use if holders is None else holders):
        for h in group_holders(host, set(groups)):
            held.setdefault(h.group, []).append(h)
    extras: dict = {}
    gpus = [a for a in consoles if a in states]
    if display_consoles:
        gpus += [a for a, d in states.items() if d.class_code >> 16 == 0x03 and a not in gpus]
    if gpus:
        extras["consoles"] = {a: read_gpu_console(host, a) for a in gpus}
        extras["vtcons"] = tuple(vtconsoles(host))
    if units:
        extras["units"] = read_units(host, units)
    targets = [a for a in reset_reach if a in states]
    if targets:
        extras["reset_reach"] = reset_reaches(host, targets)
    drivers = frozenset(loaded_drivers(host))
    if journal is not None:
        offered = {a: tuple(modules_for_modalias(host, present[a].modalias))
                   for k, r in journal.devices.items() if r.original_driver and r.original_driver not in drivers
                   and (a := PciAddress.parse(k)) in states}
        if offered:
            extras["offered_modules"] = offered
    nets = list(vf_net) + ([PciAddress.parse(p) for p in journal.vfnet] if journal is not None else [])
    pf_net = {a: n for a in dict.fromkeys(nets) if a in states and (n := read_pf_net(host, a)) is not None}
    if pf_net:
        extras["pf_net"] = pf_net
    if machine_id:
        extras["machine_id"] = read_machine_id(host)
    return HostState(
        **extras,
        devices=states,
        groups=groups,
        drivers=drivers,
        holders={g: tuple(hs) for g, hs in held.items()},
        journal_devices=dict(journal.devices) if journal is not None else {},
        journal_sriov=dict(journal.sriov) if journal is not None else {},
        journal_handoff=dict(journal.handoff) if journal is not None else {},
        journal_vfnet=dict(journal.vfnet) if journal is not None else {},
        live=host.is_live,
    )
