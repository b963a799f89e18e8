"""vfioctl: safe, fast, boring PCI device assignment with VFIO on Linux KVM hosts.

The public API: :class:`vfioctl.host.Host`, :class:`vfioctl.address.PciAddress`,
:class:`vfioctl.pci.PciDevice`, :class:`vfioctl.iommu.IommuGroup`, the
read views in :mod:`vfioctl.inventory`, the readiness checks in
:mod:`vfioctl.checks`, and the change engine in :mod:`vfioctl.plan`,
:mod:`vfioctl.apply` and :mod:`vfioctl.journal`.  Errors derive from
:class:`vfioctl.errors.VfioctlError`.
"""

__version__ = "0.1.0"
