"""Read-only views of the host for `list`, `groups` and `show`: plain data, JSON-ready."""

from __future__ import annotations

from vfioctl.host import Host
from vfioctl.iommu import IommuGroup, groups, iommu_enabled
from vfioctl.pci import PciDevice, devices, filter_devices
from vfioctl.pciids import PciIds
from vfioctl.selector import resolve


def list_devices(
    host: Host,
    *,
    class_prefix: str | None = None,
    vendor_device: str | None = None,
    driver: str | None = None,
) -> list[dict]:
    """Records of schema vfioctl.list/1, one per PCI function, address order."""
    devs = devices(host)
    if class_prefix or vendor_device or driver:
        devs = filter_devices(devs, class_prefix=class_prefix, vendor_device=vendor_device, driver=driver)
    ids = PciIds.load(host)
    return [d.summary(ids) for d in devs]


def list_groups(host: Host, only: list[str] | None = None) -> dict:
    """IOMMU groups with members, roles and viability (schema vfioctl.groups/1)."""
    ids = PciIds.load(host)
    if only:
        gs = [IommuGroup.from_number(host, n) for n in only]
    else:
        gs = groups(host)
    out = []
    for g in gs:
        d = g.to_dict()
        for m in d["members"]:
            m["vendor_name"] = ids.vendor(m["vendor_id"] or "")
            m["device_name"] = ids.device(m["vendor_id"] or "", m["device_id"] or "")
        out.append(d)
    return {"iommu_enabled": iommu_enabled(host), "groups": out}


def show_device(host: Host, spec: str) -> dict:
    """Everything known about the one device *spec* names (schema vfioctl.show/1)."""
    devs = resolve(host, [spec])
    if len(devs) != 1:
        from vfioctl.errors import InvalidInput

        raise InvalidInput(
            f"{spec!r} names {len(devs)} devices ({', '.join(str(d.address) for d in devs)}); "
            "`show` takes one: give its PCI address"
        )
    dev: PciDevice = devs[0]
    info = dev.info()
    if info["iommu_group"] is not None:
        g = IommuGroup(host, info["iommu_group"]).to_dict()
        info["group"] = {
            "viable": g["viable"],
            "blockers": g["blockers"],
            "members": [(m["address"], m["role"]) for m in g["members"]],
            "vfio_node": g["vfio_node"],
        }
    else:
        info["group"] = None
    from vfioctl.holders import group_holders
    from vfioctl.journal import read_journal

    g = info["iommu_group"]
    info["held_by"] = [h.to_dict() for h in group_holders(host, {g})] if g is not None else []
    rec = read_journal(host).devices.get(info["address"])
    info["hidden_by_vfioctl"] = (
        {"original_driver": rec.original_driver, "origin": rec.origin, "state": rec.state} if rec else None
    )
    return info
