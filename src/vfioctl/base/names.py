"""The spelling of names and IDs as the kernel writes them: drivers, modules, units, IDs.

Pure functions and patterns, matched whole (``re.fullmatch``: a ``$`` would accept a
trailing newline); every layer checks a name from the host or a user through these.
"""

from __future__ import annotations

import os
import re

# ------------------------------------------------------------------ names and IDs
#: vfio-pci and its variant drivers, whose names put the vendor part first (mlx5_vfio_pci,
#: hisi_acc_vfio_pci, virtio_vfio_pci, pds_vfio_pci), or pci-stub: the drivers that leave an
#: IOMMU group viable (drivers/vfio/group.c vfio_group_has_device / the vfio.rst viability rule).
VFIO_DRIVER_RE = re.compile(r"(?:[a-z0-9]+_)*vfio[-_a-z0-9]*|pci-stub")


#: a driver or module name as the kernel spells them (drivers/base: no '/' or whitespace)
DRIVER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")


MODULE_NAME_RE = re.compile(r"[a-z0-9_]{1,64}")


#: a systemd unit as vfioctl accepts one to stop and start (no escapes, no templates' %)
UNIT_NAME_RE = re.compile(r"[A-Za-z0-9:_.@-]{1,200}\.(?:service|socket|target|scope|slice|path|timer|mount)")


#: a service a console hand-off may stop, and its restore start again
SERVICE_NAME_RE = re.compile(r"[A-Za-z0-9:_.@-]{1,200}\.service")


#: services that end or take over the running system (systemd.special(7): what reboot,
#: poweroff, halt, kexec, exit, emergency and rescue targets pull in; the debug shell, a
#: root shell on tty9; systemd's own): never started by a restore, so never stopped either
_NEVER_STARTED = re.compile(r"systemd-.*|emergency|rescue|debug-shell|(?:halt|poweroff|reboot|kexec|exit)(?:-.*)?")


def is_handoff_unit(name: object) -> bool:
    """A unit vfioctl stops for a console hand-off and starts again on restore: a service
    (never a target, device, mount, socket...), not one that ends the running system."""
    if not isinstance(name, str) or SERVICE_NAME_RE.fullmatch(name) is None:
        return False
    return _NEVER_STARTED.fullmatch(name[:-len(".service")].split("@", 1)[0]) is None


#: "vvvv:dddd"
ID_RE = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}")


def module_name(driver: str) -> str:
    """modprobe's spelling of a module: dashes and underscores are the same to it."""
    return driver.replace("-", "_")


def is_vfio_driver_name(name: str | None) -> bool:
    """vfio-pci, a vfio variant driver or pci-stub, matched whole (never with ``$``)."""
    return bool(name) and VFIO_DRIVER_RE.fullmatch(name) is not None  # type: ignore[arg-type]


def is_vfio_driver(name: str | None) -> bool:
    """vfio-pci or a vfio variant driver (mlx5_vfio_pci...): VFIO's, so not pci-stub."""
    return is_vfio_driver_name(name) and name != "pci-stub"


def is_plain_abs_path(path: object) -> bool:
    """An absolute path of at most 1,024 printable characters (no newline, tab or NUL: what
    may be written into a unit, a hook, a QEMU option)."""
    return isinstance(path, str) and path.startswith("/") and len(path) <= 1024 and path.isprintable()


def is_reset_method_name(name: object) -> bool:
    """A name of the kind sysfs ``reset_method`` lists (flr, bus, device_specific...): ASCII
    letters, digits and underscores (``str.isalnum`` would also take "²" or "é")."""
    return isinstance(name, str) and RESET_METHOD_RE.fullmatch(name) is not None


#: a reset method name (drivers/pci/pci.c pci_reset_fn_methods[]: flr, bus, device_specific...)
RESET_METHOD_RE = re.compile(r"[A-Za-z0-9_]{1,31}")


def group_number(text: str | None) -> int | None:
    """An IOMMU group's number as the kernel names it (/sys/kernel/iommu_groups/N, an
    ``iommu_group`` link, /dev/vfio/N): ASCII digits only (``str.isdigit`` also takes "²", which
    ``int`` refuses); None for anything else."""
    return int(text) if text and _GROUP_NUMBER.fullmatch(text) else None


_GROUP_NUMBER = re.compile(r"0|[1-9][0-9]{0,8}")  # as the kernel writes it: no leading zero ("007" would name 7 twice)


def is_driver_name(name: object) -> bool:
    return isinstance(name, str) and DRIVER_NAME_RE.fullmatch(name) is not None


def hex4(text: str | None) -> str | None:
    """``0x10d3`` / ``10D3`` / ``10d3\\n`` -> ``10d3``; None for nothing or garbage."""
    if not text:
        return None
    m = _HEX4.fullmatch(text.strip().lower())
    return m[1].rjust(4, "0") if m else None


_HEX4 = re.compile(r"(?:0x)?([0-9a-f]{1,4})")


def parse_id(text: str) -> tuple[str, str] | None:
    """``8086:10D3`` -> ("8086", "10d3"); None if it is not exactly that form."""
    if not isinstance(text, str) or ID_RE.fullmatch(text) is None:
        return None
    v, d = text.lower().split(":")
    return v, d


# ------------------------------------------------------------------ CDI and Kubernetes names
# The CDI spec (cncf-tags/container-device-interface SPEC.md, "Kind" and "CDI Devices") and its
# parser (pkg/parser/parser.go ValidateDeviceName, ValidateVendorName); Kubernetes'
# k8s.io/apimachinery validation for label names and values.
#: a device name: letters, digits, '_', '-', '.', ':'; first and last a letter or a digit
_CDI_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.:-]*[A-Za-z0-9])?")
#: one DNS label of a subdomain (RFC 1123, lower case as Kubernetes spells them)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
def is_cdi_device_name(name: object) -> bool:
    """The CDI device name grammar (a leading digit needs cdiVersion 0.5.0 or later)."""
    return isinstance(name, str) and len(name) <= 1024 and _CDI_NAME.fullmatch(name) is not None


def is_dns_subdomain(text: object) -> bool:
    """RFC 1123 subdomain as Kubernetes checks it: dot-separated lower-case labels, 253 at most."""
    return isinstance(text, str) and 0 < len(text) <= 253 and all(
        _DNS_LABEL.fullmatch(part) for part in text.split("."))


def is_cdi_vendor(text: object) -> bool:
    """A CDI kind's vendor: a DNS subdomain (the spec) that starts with a letter (the parser)."""
    return is_dns_subdomain(text) and str(text)[0].isalpha()


def is_plain_cdi_path(path: object) -> bool:
    """An absolute, normalised path ending in .json (runtimes read *.json and *.yaml only)."""
    return (is_plain_abs_path(path) and os.path.normpath(str(path)) == path and str(path).endswith(".json")
            and len(os.path.basename(str(path))) > len(".json"))


#: a Kubernetes label name or a qualified name's name part: 63 characters at most, letters,
#: digits, '-', '_', '.', first and last a letter or digit (k8s.io/apimachinery validation)
_K8S_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def is_k8s_name(text: object) -> bool:
    """The name part of a Kubernetes label key, annotation key or extended resource name."""
    return isinstance(text, str) and _K8S_NAME.fullmatch(text) is not None


def is_label_value(text: object) -> bool:
    """A Kubernetes label value: empty, or a name of at most 63 characters."""
    return text == "" or is_k8s_name(text)
