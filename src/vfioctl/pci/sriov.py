"""An SR-IOV physical function's facts as one record (VF counts, autoprobe, VF IDs, offset,
stride and its VFs), for the inventory and the Ansible facts."""

from __future__ import annotations

from vfioctl.pci.device import PciDevice
from vfioctl.pci.vfnet import pf_netdev, read_pf_net


def pf_info(pf: PciDevice) -> dict:
    """The ``vfioctl sriov`` record of a PF (its facts read once, through its record)."""
    s = pf.facts.sriov
    # a NIC PF with VFs: its interface, link and each VF's settings (netlink only then)
    net = read_pf_net(pf.host, pf.address) if s is not None and s.vfs and pf_netdev(pf.host, pf.address) else None
    vfs = []
    for i, v in enumerate(s.vfs if s is not None else ()):
        vd = PciDevice(pf.host, v)
        got = net.vf(i) if net is not None else None
        vfs.append({"address": str(v), "iommu_group": vd.iommu_group, "driver": vd.driver,
                    "device_id": vd.device_id, "settings": got.to_dict() if got is not None else None})
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
        "net": {k: v for k, v in net.to_dict().items() if k != "vfs"} if net is not None else None,
    }
