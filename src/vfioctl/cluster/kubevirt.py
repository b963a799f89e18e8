"""KubeVirt: the ``permittedHostDevices`` fragment for the devices a config hides.

KubeVirt's CR (``spec.configuration.permittedHostDevices.pciHostDevices``) lists the PCI
devices a VM may be given, each as ``pciVendorSelector`` (vendor:device), ``resourceName``
(the extended resource the VM requests) and ``externalResourceProvider`` (false: KubeVirt's own
device plugin offers the devices).  Its device plugin (kubevirt/kubevirt
pkg/virt-handler/device-manager) offers every function on a node whose vendor:device matches,
compared in lower case, and that is bound to vfio-pci: it does not bind anything itself.  vfioctl
binds; this module tells KubeVirt what to look for.

The IDs come from the config: an address entry's ``id`` (and, with ``group = true``, the IDs of
the other functions of its IOMMU group on this host), a selector's ``id`` list, or, for a
selector without IDs (``class``, ``pf``...), the IDs of what it matches on this host; an
``[[sriov]]`` entry with ``hide = true`` gives its PF's VF ID.  An entry whose driver is not
vfio-pci (a variant driver, pci-stub) is left out with a note: KubeVirt would not offer it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vfioctl.base.errors import InvalidInput
from vfioctl.base.names import is_dns_subdomain, is_k8s_name, parse_id
from vfioctl.host.core import Host
from vfioctl.ops.config import Config
from vfioctl.ops.state import read_state

SCHEMA = "vfioctl.kubevirt/1"
DEFAULT_PREFIX = "vfioctl.io"
#: the only driver KubeVirt's device plugin offers a PCI device on
KUBEVIRT_DRIVER = "vfio-pci"


@dataclass(frozen=True)
class Source:
    """One thing the config hides, with the vendor:device IDs it stands for."""

    entry: str
    ids: tuple[str, ...]
    driver: str
    #: where the IDs came from, for people
    how: str

    def to_dict(self) -> dict:
        return {"entry": self.entry, "ids": list(self.ids), "driver": self.driver, "how": self.how}


@dataclass
class Fragment:
    config: str | None
    devices: list[dict]
    sources: list[Source]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "config": self.config,
                "permittedHostDevices": {"pciHostDevices": self.devices},
                "sources": [s.to_dict() for s in self.sources], "notes": self.notes}


def check_prefix(prefix: str) -> str:
    """A resource name's domain: a DNS subdomain outside kubernetes.io (Kubernetes keeps that
    namespace for its own resources: an extended resource may not live there)."""
    if not is_dns_subdomain(prefix) or prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io"):
        raise InvalidInput(f"--resource-prefix {prefix[:80]!r} must be a DNS name in lower case outside "
                           "kubernetes.io, e.g. example.com")
    return prefix


def gather(host: Host, config: Config) -> tuple[list[Source], list[str]]:
    """The one reading of the host: the config's entries with their IDs (see the module docstring),
    and notes on what could not be resolved."""
    notes: list[str] = []
    focus = [e.address for e in config.devices if e.address is not None] + [s.pf for s in config.sriov]
    needs_all = any(e.match is not None and not e.match.ids for e in config.devices)
    st = read_state(host, None, None if needs_all else focus, in_use=False, holders=False)
    out: list[Source] = []
    for e in config.devices:
        if e.address is not None and e.id is not None:
            ids = [":".join(e.id)]
            how = f"id of {e.address} in the config"
            d = st.get(e.address)
            if e.group:
                if d is None or d.iommu_group is None:
                    notes.append(f"{e.source}: group = true, but {e.address} has no IOMMU group on this host; "
                                 "only its own ID is listed")
                else:
                    more = [st.devices[m.address].vendor_device for m in st.members(d.iommu_group)
                            if m.role != "bridge" and m.address != e.address]
                    ids += more
                    if more:
                        how += f" and of its IOMMU group {d.iommu_group} on this host"
            if d is not None and d.vendor_device not in ("unknown", ids[0]):
                notes.append(f"{e.source}: this host has {d.vendor_device} at {e.address}, not {ids[0]} "
                             "(`vfioctl apply` would refuse)")
        elif e.match is not None and e.match.ids:
            ids = [":".join(i) for i in e.match.ids]
            how = f"selector {e.match.describe()}"
            if e.match.subsystem or e.match.class_code or e.match.pf or e.match.driver or e.match.numa_node is not None:
                notes.append(f"{e.source}: KubeVirt selects by vendor:device only, so it offers every "
                             f"{'/'.join(ids)} on vfio-pci, not only those the selector ({e.match.describe()}) takes")
        elif e.match is not None:
            ids = sorted({st.devices[a].vendor_device for a in sorted(st.devices) if e.match.matches(st, st.devices[a])})
            how = f"what {e.match.describe()} matches on this host"
            if not ids:
                notes.append(f"{e.source}: {e.match.describe()} matches nothing on this host")
        else:
            continue
        out.append(Source(e.source, tuple(dict.fromkeys(ids)), e.driver, how))
    for s in config.sriov:
        if not s.hide:
            continue
        pf = st.get(s.pf)
        if pf is None or pf.sriov is None or not pf.vendor_id or not pf.sriov.vf_device:
            notes.append(f"{s.source}: the VF ID of {s.pf} is not known on this host (no SR-IOV PF there)")
            continue
        out.append(Source(s.source, (f"{pf.vendor_id}:{pf.sriov.vf_device}",), KUBEVIRT_DRIVER,
                          f"VF ID of the PF {s.pf} on this host"))
    return out, notes


def build(sources: list[Source], prefix: str = DEFAULT_PREFIX, *, config: str | None = None,
          notes: list[str] | None = None) -> Fragment:
    """Pure: one ``pciHostDevices`` entry per vendor:device, in ID order."""
    check_prefix(prefix)
    notes = list(notes or [])
    ids: dict[str, None] = {}
    for s in sources:
        if s.driver != KUBEVIRT_DRIVER:
            notes.append(f"{s.entry}: left out: its driver is {s.driver}, and KubeVirt's device plugin offers "
                         "only devices on vfio-pci")
            continue
        for i in s.ids:
            pair = parse_id(i)
            if pair is None:
                notes.append(f"{s.entry}: left out an unknown ID")
                continue
            ids[":".join(pair)] = None
    devices = []
    for vd in sorted(ids):
        name = vd.replace(":", "_")
        if not is_k8s_name(name):  # four hex digits each side: always a name; a bug otherwise
            raise InvalidInput(f"internal: {name!r} is not a resource name")
        devices.append({"pciVendorSelector": vd, "resourceName": f"{prefix}/{name}", "externalResourceProvider": False})
    return Fragment(config, devices, list(sources), notes)


def _q(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one; the values here are plain ASCII)."""
    return json.dumps(text)


def render(fragment: Fragment) -> str:
    """The fragment as YAML, to go under the KubeVirt CR's ``spec.configuration``."""
    lines = ["# KubeVirt CR: spec.configuration.permittedHostDevices (written by `vfioctl kubevirt`"
             + (f" from {fragment.config}" if fragment.config and fragment.config.isprintable() else "") + ")",
             "# KubeVirt offers every function with one of these IDs that is bound to vfio-pci on a node.",
             "permittedHostDevices:"]
    if not fragment.devices:
        lines.append("  pciHostDevices: []")
    else:
        lines.append("  pciHostDevices:")
        for d in fragment.devices:
            lines.append(f"  - pciVendorSelector: {_q(d['pciVendorSelector'])}")
            lines.append(f"    resourceName: {_q(d['resourceName'])}")
            lines.append(f"    externalResourceProvider: {'true' if d['externalResourceProvider'] else 'false'}")
    return "\n".join(lines) + "\n"
