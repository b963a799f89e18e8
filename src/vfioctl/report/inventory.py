"""Read-only views of the host for `list`, `groups` and `show`: plain data, JSON-ready.

The records are typed (``TypedDict``s, checked by mypy) and documented in
docs/json-schema.md; their shapes are pinned by tests/unit/test_schema.py.
"""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput
from vfioctl.host.core import Host
from vfioctl.pci.device import PciDevice, devices, filter_devices
from vfioctl.pci.function import PciFunction, hex4, read_functions
from vfioctl.pci.ids import PciIds

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypedDict
    class ListRecord(TypedDict):
        address: str
        class_: str
        class_name: str | None
        vendor_id: str | None
        vendor_name: str | None
        device_id: str | None
        device_name: str | None
        subsystem_vendor_id: str | None
        subsystem_device_id: str | None
        driver: str | None
        iommu_group: int | None
        physfn: str | None
        reset_methods: list[str]


def summary(dev: PciDevice | PciFunction, ids: PciIds, *, reset_methods: bool = True) -> dict:
    """The ``vfioctl list --json`` record (schema vfioctl.list/1) of a device or its record;
    without *reset_methods* its ``reset_methods`` is None (the text table does not show them: one
    read less per function)."""
    f = dev.facts if isinstance(dev, PciDevice) else dev
    vid, did = hex4(f.vendor_id), hex4(f.device_id)
    v, d = vid or "", did or ""
    cc = f.class_code or 0
    phys = f.physfn
    return {
        "address": str(f.address),
        "class": f"{cc:06x}",
        "class_name": ids.class_name(cc),
        "vendor_id": vid,
        "vendor_name": ids.vendor(v),
        "device_id": did,
        "device_name": ids.device(v, d),
        "subsystem_vendor_id": hex4(f.subsystem_vendor_id),
        "subsystem_device_id": hex4(f.subsystem_device_id),
        "driver": f.driver,
        "iommu_group": f.iommu_group,
        "physfn": str(phys) if phys else None,
        "reset_methods": list(f.reset_methods or ()) if reset_methods else None,
    }


def names(dev: PciDevice, ids: PciIds) -> dict[str, str | None]:
    v, d = dev.vendor_id or "", dev.device_id or ""
    sv, sd = dev.subsystem_vendor_id or "", dev.subsystem_device_id or ""
    return {
        "vendor_name": ids.vendor(v),
        "device_name": ids.device(v, d),
        "subsystem_name": ids.subsystem(v, d, sv, sd) if sv else None,
        "subsystem_vendor_name": ids.vendor(sv) if sv else None,
        "class_name": ids.class_name(dev.class_code),
    }


def device_info(dev: PciDevice, ids: PciIds) -> dict:
    """Everything known about one device (``vfioctl show --json``, schema vfioctl.show/1)."""
    # lazy: usage.inuse (~7 ms at start-up with its readers) only for 'show', not 'list'
    from vfioctl.usage import inuse

    out = summary(dev, ids)
    out.update(names(dev, ids))
    host_use = inuse.uses(dev)
    s = dev.facts.sriov
    sriov = None
    if s is not None:
        sriov = {
            "totalvfs": s.totalvfs,
            "numvfs": s.numvfs,
            "drivers_autoprobe": s.autoprobe,
            "vf_device": s.vf_device,
            "offset": s.offset,
            "stride": s.stride,
            "vfs": [str(a) for a in s.vfs],
        }
    out.update(
        {
            "revision": dev.revision,
            "driver_override": dev.driver_override,
            "numa_node": dev.numa_node,
            "header_type": dev.header_type,
            "is_bridge": dev.is_bridge,
            "boot_vga": dev.boot_vga,
            "reset_method": dev.reset_method,
            "sriov": sriov,
            "net_interfaces": inuse.net_interfaces(dev),
            "block_devices": inuse.block_devices(dev),
            "in_use": [u.text for u in host_use],
            "host_use": [u.to_dict() for u in host_use],
            "modalias": dev.modalias,
            "candidate_modules": dev.candidate_modules(),
            "slot_functions": [str(a) for a in dev.slot_functions()],
            "vf_settings": _vf_settings(dev),
        }
    )
    return out


def _vf_settings(dev: PciDevice) -> dict | None:
    """A VF's network settings as its PF's driver reports them (None for other functions)."""
    if dev.physfn is None:
        return None
    # lazy: netlink (pyroute2) is paid only by `show` of a VF
    from vfioctl.pci.vfnet import vf_settings

    got = vf_settings(dev.host, dev.address)
    if got is None:
        return None
    net, vs = got
    return {**vs.to_dict(), "pf_ifname": net.ifname, "pf_operstate": net.operstate, "pf_speed_mbps": net.speed}


def list_devices(
    host: Host,
    *,
    class_prefix: str | None = None,
    vendor_device: str | None = None,
    driver: str | None = None,
    reset_methods: bool = True,
) -> list[dict]:
    """Records of schema vfioctl.list/1, one per PCI function, address order."""
    if class_prefix is not None:
        # lazy: the selectors' grammar (~9 ms at start-up with dataclasses) only for --class
        from vfioctl.ops.match import parse_class

        # one grammar for a class everywhere (selectors, configs, --class): a code or a name
        code, digits = parse_class(class_prefix, "--class")
        class_prefix = f"{code:06x}"[:digits]
    devs: list[PciDevice] | list[PciFunction]
    if class_prefix or vendor_device or driver:
        devs = filter_devices(devices(host), class_prefix=class_prefix, vendor_device=vendor_device, driver=driver)
    else:
        devs = list(read_functions(host).values())  # the records themselves: no handle needed
    ids = PciIds.load(host)
    return [summary(d, ids, reset_methods=reset_methods) for d in devs]


def list_groups(host: Host, only: list[str] | None = None) -> dict:
    """IOMMU groups with members, roles and viability (schema vfioctl.groups/1)."""
    # lazy: the groups' reader (~1 ms at start-up with host.kernel) only for `groups`, not `list`
    from vfioctl.iommu.groups import IommuGroup, groups_read_once, iommu_enabled

    ids = PciIds.load(host)
    if only:
        gs = [IommuGroup.from_number(host, n) for n in only]
    else:
        gs = groups_read_once(host)
    out = []
    for g in gs:
        d = g.to_dict()
        for m in d["members"]:
            m["vendor_name"] = ids.vendor(m["vendor_id"] or "")
            m["device_name"] = ids.device(m["vendor_id"] or "", m["device_id"] or "")
            m["class_name"] = ids.class_name(int(m["class"], 16)) if m.get("class") else None
        out.append(d)
    return {"iommu_enabled": iommu_enabled(host), "groups": out}


def _group_summary(host: Host, number: int) -> dict:
    """A group's viability and members as `show` gives them, read once per state: showing
    every member of a group of N (as a snapshot does) reads the group once, not N times."""
    # lazy: the groups' reader (~1 ms at start-up with host.kernel) only for `show` and `groups`
    from vfioctl.iommu.groups import IommuGroup

    def compute() -> dict:
        g = IommuGroup(host, number).to_dict()
        return {"viable": g["viable"], "blockers": g["blockers"],
                "members": [(m["address"], m["role"]) for m in g["members"]], "vfio_node": g["vfio_node"]}

    summary: dict = host.cached(f"show:group:{number}", compute, volatile=True)
    return dict(summary)


def show_device(host: Host, spec: str) -> dict:
    """Everything known about the one device *spec* names (schema vfioctl.show/1)."""
    # lazy: the selectors and the groups' reader (~2 ms at start-up) only for `show`
    from vfioctl.ops.selector import resolve

    devs = resolve(host, [spec])
    if len(devs) != 1:
        raise InvalidInput(
            f"{spec!r} names {len(devs)} devices ({', '.join(str(d.address) for d in devs)}); "
            "`show` takes one: give its PCI address"
        )
    dev: PciDevice = devs[0]
    info = device_info(dev, PciIds.load(host))
    if info["iommu_group"] is not None:
        info["group"] = _group_summary(host, info["iommu_group"])
    else:
        info["group"] = None
    # lazy: ops.journal and usage.holders (~6 ms at start-up) only for 'show'
    from vfioctl.ops.journal import read_journal
    from vfioctl.usage.holders import group_holders

    grp = info["iommu_group"]
    info["held_by"] = [h.to_dict() for h in group_holders(host, {grp})] if grp is not None else []
    rec = read_journal(host).devices.get(info["address"])
    info["hidden_by_vfioctl"] = (
        {"original_driver": rec.original_driver, "origin": rec.origin, "state": rec.state} if rec else None
    )
    return info


def show_sriov(host: Host, spec: str | None = None) -> list[dict]:
    # lazy: the selectors and the SR-IOV views (~2 ms at start-up) only for `sriov show`
    from vfioctl.ops.selector import resolve
    from vfioctl.pci.sriov import pf_info

    if spec:
        out = []
        for d in resolve(host, [spec]):
            if not d.sriov_capable:
                raise InvalidInput(f"{d.address} is not SR-IOV capable (no {d.sysfs}/sriov_totalvfs)")
            out.append(pf_info(d))
        return out
    return [pf_info(d) for d in devices(host) if d.sriov_capable]
