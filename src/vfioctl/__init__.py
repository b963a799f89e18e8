"""vfioctl: safe, fast, boring PCI device assignment with VFIO on Linux KVM hosts.

The public face of the library: what the CLI, the Ansible collection, the libvirt
hook and library callers use, re-exported from the layers that own it (see
docs/architecture.md).  Names are loaded on first use, so ``import vfioctl`` costs
nothing at start-up:

* the host: :class:`Host` (live, a folder or a snapshot archive);
* PCI: :class:`PciAddress`, :class:`PciDevice`, :func:`pf_info`; IOMMU: :class:`IommuGroup`;
* read views: :func:`list_devices`, :func:`list_groups`, :func:`show_device`,
  :func:`show_sriov`, :func:`run_checks`;
* selection and configs: :func:`classify`, :func:`resolve`, :func:`from_table`,
  :func:`load_config`, :func:`parse_config`;
* the change engine: :mod:`vfioctl.engine` (sessions, plans, hide/restore/apply);
* errors: :class:`VfioctlError` and its subclasses.
"""

# the error hierarchy, loaded at once: base.errors imports nothing of vfioctl's
from vfioctl.base.errors import *  # noqa: F403
from vfioctl.base.errors import __all__ as _ERRORS
from vfioctl.base.lazy import lazy_exports
from vfioctl.base.version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:  # what the names are, for type checkers (loaded lazily below)
    from vfioctl import boot, engine
    from vfioctl.host.core import Host
    from vfioctl.iommu.groups import IommuGroup
    from vfioctl.ops.config import Config, load_config, parse_config
    from vfioctl.ops.match import from_table
    from vfioctl.ops.selector import classify, resolve
    from vfioctl.pci.address import PciAddress
    from vfioctl.pci.device import PciDevice
    from vfioctl.pci.sriov import pf_info
    from vfioctl.report.checks import run_checks
    from vfioctl.report.inventory import list_devices, list_groups, show_device, show_sriov

_EXPORTS = {
    "Host": "vfioctl.host.core",
    "PciAddress": "vfioctl.pci.address",
    "PciDevice": "vfioctl.pci.device",
    "pf_info": "vfioctl.pci.sriov",
    "IommuGroup": "vfioctl.iommu.groups",
    "list_devices": "vfioctl.report.inventory",
    "list_groups": "vfioctl.report.inventory",
    "show_device": "vfioctl.report.inventory",
    "show_sriov": "vfioctl.report.inventory",
    "run_checks": "vfioctl.report.checks",
    "classify": "vfioctl.ops.selector",
    "resolve": "vfioctl.ops.selector",
    "from_table": "vfioctl.ops.match",
    "Config": "vfioctl.ops.config",
    "load_config": "vfioctl.ops.config",
    "parse_config": "vfioctl.ops.config",
}
_MODULES = ("engine", "boot")

__all__ = ["__version__", *_ERRORS, *_EXPORTS, *_MODULES]


__getattr__ = lazy_exports(__name__, globals(), _EXPORTS, _MODULES)
