"""Reading what :mod:`vfioctl.report.assess`, resets and option ROMs need from a host.

* :func:`assess_devices`: gathers :class:`~vfioctl.report.assess.AssessFacts` for each
  device (IOMMU and interrupt remapping from ``check``, the group with roles,
  reset methods and the reach of a bus reset from the topology, host use,
  console, holders, the option ROM, NUMA, SR-IOV role) and judges them;
* :func:`read_rom`: the option ROM through sysfs: ``rom`` enabled, read, and
  disabled again whatever happens (drivers/pci/pci-sysfs.c pci_write_rom /
  pci_read_rom); a snapshot answers from what it captured;
* :func:`reset_reaches`: :func:`vfioctl.pci.reset.hot_reset_reach` for devices, the
  topology read once.
"""

from __future__ import annotations

from vfioctl.base.errors import VfioctlError
from vfioctl.base.names import is_vfio_driver_name
from vfioctl.host.core import Host
from vfioctl.iommu.groups import IommuGroup
from vfioctl.ops.selector import resolve
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.pci.function import PciFunction, hex4, read_functions
from vfioctl.pci.ids import PciIds
from vfioctl.pci.reset import ResetReach, hot_reset_reach, reset_nodes
from vfioctl.pci.rom import RomInfo, parse_rom, read_rom, rom_not_captured, rom_present
from vfioctl.pci.topology import read_topology
from vfioctl.pci.vfnet import vf_settings
from vfioctl.report import assess as judge
from vfioctl.report.checks import check_interrupt_remapping, check_iommu_enabled
from vfioctl.usage import console, inuse
from vfioctl.usage.holders import group_holders


# ------------------------------------------------------------------ assess
def _should_read_rom(dev: PciDevice, read: bool | None) -> bool:
    """By default a ROM is read only from a device no host driver uses: enabling a ROM BAR can
    share the memory decoder with another BAR (PCI Local Bus spec 6.2.5.2), which a driver in
    use would see vanish for the moment of the read."""
    if read is not None:
        return read
    drv = dev.driver
    return drv is None or is_vfio_driver_name(drv)


def gather(host: Host, dev: PciDevice, *, reach: ResetReach | None,
           statuses: dict[str, tuple[str, str]], read_roms: bool | None = None,
           take_console: bool = False, functions: dict[PciAddress, PciFunction] | None = None,
           held: dict[int, list[str]] | None = None) -> judge.AssessFacts:
    """Assess's facts of *dev*: a view of its record (:attr:`PciDevice.facts`), with what is not a
    fact of the function (host use, console, holders, the ROM, the host's IOMMU).  *functions*, a
    reading of the host, gives the group's members their records; *held*, a reading of who
    holds which group (:func:`holders_by_group`), its holders."""
    f = dev.facts
    a = f.address
    group = f.iommu_group
    members: list[judge.GroupMember] = []
    holders: list[str] = []
    if group is not None:
        for m in IommuGroup(host, group, facts=functions).members():
            members.append(judge.GroupMember(m.device.address, m.role, m.driver,
                                             tuple(inuse.uses(m.device)) if m.device.address != a else ()))
        holders = held.get(group, []) if held is not None else [h.describe() for h in group_holders(host, {group})]
    fbs = console.framebuffers(host, str(a))
    vts = tuple(v.describe() for v in console.vtconsoles(host) if v.bound and (v.frame_buffer and fbs))
    rom: RomInfo | str | None
    unknown = rom_not_captured(host)
    if unknown:
        rom = f"not captured: {unknown}"
    elif not rom_present(host, a):
        rom = None
    elif _should_read_rom(dev, read_roms):
        try:
            rom = parse_rom(read_rom(host, a))
        except VfioctlError as err:
            rom = f"not read: {err.message}"
    else:
        rom = (f"not read: {a} is on host driver {f.driver} (`vfioctl rom {a.short}` or "
               "`vfioctl assess --rom` reads it)")
    sriov = None
    s = f.sriov
    if s is not None:
        sriov = judge.SriovRole("pf", s.totalvfs, s.numvfs)
    elif f.physfn is not None:
        pf = (functions or {}).get(f.physfn)
        net = vf_settings(host, a)
        sriov = judge.SriovRole("vf", physfn=f.physfn,
                                physfn_driver=pf.driver if pf is not None else PciDevice(host, f.physfn).driver,
                                vf_settings=net[1] if net else None, pf_ifname=net[0].ifname if net else None,
                                pf_operstate=net[0].operstate if net else None)
    ids = PciIds.load(host)
    class_code = f.class_code or 0
    return judge.AssessFacts(
        address=a, vendor_id=hex4(f.vendor_id) or "ffff", device_id=hex4(f.device_id) or "ffff",
        class_code=class_code,
        iommu_status=statuses["iommu"][0], iommu_evidence=statuses["iommu"][1],
        irq_remap_status=statuses["irq-remap"][0], irq_remap_evidence=statuses["irq-remap"][1],
        class_name=ids.class_name(class_code), driver=f.driver, iommu_group=group,
        group_members=tuple(members), reset_methods=f.reset_methods, reset_reach=reach,
        in_use=tuple(inuse.uses(dev)), boot_vga=f.boot_vga,
        framebuffers=tuple(fb.describe() for fb in fbs), vtconsoles=vts, holders=tuple(holders),
        rom=rom, numa_node=f.numa_node, sriov=sriov, take_console=take_console,
    )


def _statuses(host: Host) -> dict[str, tuple[str, str]]:
    out = {}
    for fid, check in (("iommu", check_iommu_enabled), ("irq-remap", check_interrupt_remapping)):
        try:
            f = check(host)
            out[fid] = (f.status, f.evidence)
        except VfioctlError as err:
            out[fid] = ("warn", f"could not check: {err.message}")
    return out


def holders_by_group(host: Host) -> dict[int, list[str]]:
    """group -> its holders, described, from one walk of every process's open files: assessing
    every endpoint of a host walked /proc/PID/fd once per device (918 walks, three quarters of
    `vfioctl assess` at 1,000 functions)."""
    out: dict[int, list[str]] = {}
    for h in group_holders(host):  # sorted by group, then pid: each group's list as group_holders gives it
        out.setdefault(h.group, []).append(h.describe())
    return out


def assess_devices(host: Host, specs: list[str], *, read_roms: bool | None = None,
                   take_console: bool = False) -> list[judge.Assessment]:
    """One :class:`~vfioctl.report.assess.Assessment` per device the specs name (every endpoint when empty)."""
    functions = read_functions(host)  # one reading: the devices, their groups and the bus topology
    if specs:
        devs = [PciDevice(host, d.address, facts=functions.get(d.address)) for d in resolve(host, specs)]
    else:
        devs = [PciDevice(host, a, facts=f) for a, f in functions.items() if not f.is_bridge]
    nodes = reset_nodes(read_topology(host, extended=False, functions=functions))  # bus numbers only: no ACS
    statuses = _statuses(host)
    ids = PciIds.load(host)
    held = holders_by_group(host)
    out = []
    for d in devs:
        reach = hot_reset_reach(d.address, nodes) if d.address in nodes else None
        facts = gather(host, d, reach=reach, statuses=statuses, read_roms=read_roms, take_console=take_console,
                       functions=functions, held=held)
        res = judge.assess(facts)
        v, dv = d.vendor_id or "", d.device_id or ""
        name = " ".join(x for x in (ids.vendor(v), ids.device(v, dv)) if x)
        label = f"[{v}:{dv}] {name}".strip()
        out.append(judge.Assessment(res.address, res.verdict, res.findings, label))
    return out
