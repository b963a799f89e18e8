"""An SR-IOV physical function's facts as one record (VF counts, autoprobe, VF IDs, offset,
stride and its VFs), for the inventory and the Ansible facts."""

from __future__ import annotations

from vfioctl.pci.device import PciDevice


def pf_info(pf: PciDevice) -> dict:
    auto = pf.attr("sriov_drivers_autoprobe")
    vfs = []
    for v in pf.virtfns:
        vd = PciDevice(pf.host, v)
        vfs.append({"address": str(v), "iommu_group": vd.iommu_group, "driver": vd.driver,
                    "device_id": vd.device_id})
    vf_dev = pf.attr("sriov_vf_device")
    return {
        "pf": str(pf.address),
        "id": pf.vendor_device,
        "driver": pf.driver,
        "totalvfs": pf.sriov_totalvfs,
        "numvfs": pf.sriov_numvfs,
        "drivers_autoprobe": None if auto is None else auto == "1",
        "vf_device": vf_dev.lower().removeprefix("0x").rjust(4, "0") if vf_dev else None,
        "offset": pf.sriov_int("sriov_offset"),
        "stride": pf.sriov_int("sriov_stride"),
        "vfs": vfs,
    }
