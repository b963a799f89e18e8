"""What the boot files need to know about the host, measured at install time."""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.base.names import ID_RE, MODULE_NAME_RE, module_name
from vfioctl.host.core import Host
from vfioctl.host.modules import builtin_modules, modprobe_options_setting
from vfioctl.host.system import initramfs_tool
from vfioctl.iommu.groups import IommuGroup
from vfioctl.iommu.roles import ROLE_BRIDGE
from vfioctl.ops.config import Config
from vfioctl.ops.configplan import concrete_entries
from vfioctl.ops.journal import read_journal
from vfioctl.ops.state import read_state
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice, devices

MODPROBE_PATH = "/etc/modprobe.d/vfioctl.conf"


@dataclass(frozen=True)
class Target:
    """One function the boot files keep from its host driver."""

    address: PciAddress
    id: tuple[str, str]
    subsystem: tuple[str, str] | None
    driver: str
    #: the [[device]] entry it belongs to (itself, or the entry whose group it is in)
    entry: PciAddress
    source: str


@dataclass
class BootFacts:
    """What :func:`gather_facts` measured on the host; the generators' only input besides the config."""

    #: per [[device]] entry address: the entry's own target first, then its group companions
    targets: dict[PciAddress, list[Target]]
    #: host kernel module -> addresses of configured functions it would claim
    host_modules: dict[str, list[PciAddress]]
    #: "vvvv:dddd" IDs where every function with the ID on this host is configured for vfio-pci
    unique_ids: list[str]
    #: "initramfs-tools", "dracut", "mkinitcpio" or None
    initramfs: str | None
    #: the command the systemd unit runs: argv, the first an absolute path checked at install time
    vfioctl: list[str]
    #: one-line warnings for the user
    notes: list[str] = field(default_factory=list)

    def all_targets(self) -> list[Target]:
        return [t for ts in self.targets.values() for t in ts]


def _is_assignable_module(mod: str) -> bool:
    return mod.startswith("vfio") or mod == "pci_stub"


def gather_facts(host: Host, config: Config, vfioctl: list[str] | str) -> BootFacts:
    """Measure what the generators need: targets, host drivers, unique IDs, initramfs tool."""
    argv = vfioctl.split() if isinstance(vfioctl, str) else list(vfioctl)
    notes: list[str] = []
    entries = config.devices
    if any(e.match is not None for e in entries):
        # selectors are resolved as `apply` resolves them (the journal's choice first); the boot
        # files keep the functions chosen now, and vfioctl-apply.service resolves again at boot
        entries, more = concrete_entries(read_state(host, read_journal(host), None), config)
        notes += more
    configured = {d.address for d in entries}
    targets: dict[PciAddress, list[Target]] = {}
    for entry in entries:
        assert entry.address is not None and entry.id is not None
        ts = [Target(entry.address, entry.id, entry.subsystem, entry.driver, entry.address, entry.source)]
        dev = PciDevice(host, entry.address)
        if entry.group and dev.exists():
            g = dev.iommu_group
            if g is None:
                notes.append(f"{entry.source}: {entry.address} has no IOMMU group now; its companions are not covered at boot")
            else:
                for m in IommuGroup(host, g).members():
                    a = m.device.address
                    if m.role == ROLE_BRIDGE or a == entry.address or a in configured:
                        continue
                    vid, did = m.device.vendor_id, m.device.device_id
                    if not vid or not did:
                        notes.append(f"{a}: its IDs cannot be read; not covered at boot")
                        continue
                    # companions are matched by vendor:device only: the entry's own
                    # check (subsystem included) already says the hardware is the same
                    ts.append(Target(a, (vid, did), None, entry.driver, entry.address,
                                     f"{entry.source} (IOMMU group {g})"))
        targets[entry.address] = ts

    builtin = builtin_modules(host)
    host_modules: dict[str, list[PciAddress]] = {}
    for t in (t for ts in targets.values() for t in ts):
        dev = PciDevice(host, t.address)
        if not dev.exists():
            notes.append(f"{t.source}: nothing at {t.address} now; its host driver is not known, "
                         "only the udev rule and vfioctl-apply.service cover it")
            continue
        mods = [module_name(m) for m in dev.candidate_modules()]
        cur = dev.driver
        if cur and not _is_assignable_module(module_name(cur)):
            mods.append(module_name(dev.driver_module or cur))
        mods = [m for m in dict.fromkeys(mods) if not _is_assignable_module(m)
                and MODULE_NAME_RE.fullmatch(m)]
        if not mods:
            notes.append(f"{t.address}: no host driver claims it (modules.alias, current driver): "
                         "nothing to intercept")
        for mod in mods:
            if mod in builtin:
                notes.append(f"{t.address}: host driver {mod} is built into the kernel and binds before any "
                             "hook can run; vfioctl-apply.service moves the device at boot "
                             "(or use `vfioctl boot cmdline --add vfio-pci.ids=...` if no twin shares its ID)")
                continue
            host_modules.setdefault(mod, []).append(t.address)

    # `options vfio_pci ids=`: only where no function outside the config shares the ID,
    # and no PF could create VFs with it later.
    all_devs = devices(host)
    vf_ids = set()
    for d in all_devs:
        if d.sriov_capable and d.sriov_vf_device:
            vf_ids.add(f"{d.vendor_id}:{d.sriov_vf_device}")
    target_addrs = {t.address: t for t in (t for ts in targets.values() for t in ts)}
    ids: dict[str, bool] = {}
    for t in target_addrs.values():
        if t.driver == "vfio-pci":
            ids.setdefault(":".join(t.id), True)
    for d in all_devs:
        key = d.vendor_device
        if key in ids:
            tgt = target_addrs.get(d.address)
            if tgt is None or tgt.driver != "vfio-pci":
                ids[key] = False
    unique = sorted(k for k, ok in ids.items() if ok and k not in vf_ids and ID_RE.fullmatch(k))
    if unique:
        other = modprobe_options_setting(host, "vfio_pci", "ids", skip=MODPROBE_PATH)
        if other:
            notes.append(f"{other} already sets vfio-pci ids=; vfioctl leaves ids= out so as not to override it")
            unique = []

    return BootFacts(targets=targets, host_modules=dict(sorted(host_modules.items())), unique_ids=unique,
                     initramfs=initramfs_tool(host), vfioctl=argv, notes=notes)
