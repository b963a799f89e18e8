"""An SR-IOV physical function's facts as one record (VF counts, autoprobe, VF IDs, offset,
stride and its VFs), for the inventory and the Ansible facts."""

from __future__ import annotations

from vfioctl.pci.device import PciDevice


def pf_info(pf: PciDevice) -> dict:
    """The ``vfioctl sriov`` record of a PF (its facts read once, through its record)."""
    s = pf.facts.sriov
    vfs = []
    for v in s.vfs if s is not None else ():
        vd = PciDevice(pf.host, v)
        vfs.append({"address": str(v), "iommu_group": vd.iommu_group, "driver": vd.driver,
                    "device_id": vd.device_id})
    return {
        "pf": str(pf.address),
        "id": pf.vendor_device,
        "driver": pf.driver,
        "totalvfs": s.totalvfs if s else None,
        "numvfs": s.numvfs if s else None,
        "drivers_autoprobe": s.autoprobe if s else None,
        "vf_device": s.vf_device if s else None,
        "offset": s.offset if s else None,
        "stride": s.stride if s else None,
        "vfs": vfs,
    }
