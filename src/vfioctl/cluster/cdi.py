"""A Container Device Interface (CDI) spec for the devices vfioctl has hidden.

The CDI spec (cncf-tags/container-device-interface, SPEC.md) describes, per device name, the
edits a runtime makes to a container: here the VFIO device nodes.  podman (4.1 and later),
CRI-O and containerd (1.7 and later, ``enable_cdi``) read specs from /etc/cdi and
/var/run/cdi and give a container what ``--device vfioctl.io/pci=NAME`` names.

What is published: every PCI function vfioctl has hidden (its journal says ``hidden``, or the
config names it, and the kernel shows it on a vfio driver), when its IOMMU group is viable
(drivers/vfio/group.c: every non-bridge member on a vfio driver, pci-stub or none) and every
non-bridge member of the group is hidden by vfioctl too.  Anything else is left out with the
reason: a VFIO group gives whoever opens it every device in it, so a group that is not wholly
vfioctl's is never offered.  Devices the libvirt hook hid for a running domain are left out too:
the domain holds them and gives them back when it stops.

Device nodes, per device, only those the kernel has (Documentation/driver-api/vfio.rst):

* the group interface: ``/dev/vfio/vfio`` (the container) and ``/dev/vfio/GROUP``;
* the device cdev (CONFIG_VFIO_DEVICE_CDEV, Linux 6.6 and later): ``/dev/iommu`` and
  ``/dev/vfio/devices/vfioN``, N read from ``/sys/bus/pci/devices/ADDR/vfio-dev/vfioN``.  That
  sysfs entry exists from 6.1 on without a node (seen in the VM lab), so the cdev is offered only
  where ``/dev/vfio/devices/vfioN`` is a character device.

Where the kernel has both, both are emitted: a spec cannot know whether the workload opens the
group (QEMU before 8.2, DPDK, most of today's userspace) or the cdev through iommufd, and both
reach the same, wholly hidden group (the kernel keeps one DMA owner per group either way).
Type, major and minor are left to the runtime, which reads them from the node when the
container is created, so a renumbered node is never described with stale numbers.

Names: each function is published as its address (``0000:03:00.0``: ':' is allowed in CDI
device names, a leading digit since cdiVersion 0.5.0) and as ``pci-0000-03-00-0`` (letters,
digits and '-' only, for tools with a narrower idea of a name), plus the names the config's
``[cdi.names]`` gives: by address, by config entry (``[[device]] #N``) or by the selector that
chose the devices (``id:10de:2335`` as typed for ``hide``); a selector's devices get NAME-0,
NAME-1... in address order.

cdiVersion: the lowest that carries what the spec uses (:func:`required_version`, the rules
of SPEC.md's version table): 0.5.0 for names that start with a digit, 0.6.0 only when
``[cdi] annotations = true``.  Debian 12's podman 4.3.1 is built with CDI 0.5.2, which accepts
versions up to 0.5.0 and refuses a 0.6.0 spec whole (the device then is "unresolvable"), so
annotations are off by default; ``vfioctl cdi --json`` carries the same facts for agents.

The spec is written atomically (a dot-file beside it, which runtimes ignore, fsync, rename),
mode 0644; a target that is a symbolic link, a folder or a file that is not a spec of this kind
is refused with nothing written.  When nothing is published the file is removed: a CDI spec
must name at least one device (SPEC.md, "CDI Devices").
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field

from vfioctl.base.errors import InvalidInput, Refused
from vfioctl.base.names import is_cdi_device_name, is_cdi_vendor, is_plain_abs_path, is_plain_cdi_path, is_vfio_driver
from vfioctl.host.core import Host
from vfioctl.iommu.groups import blocks_viability
from vfioctl.ops.config import Config
from vfioctl.ops.journal import Journal, read_journal
from vfioctl.ops.state import DeviceState, read_state
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES

SCHEMA = "vfioctl.cdi/1"
CLASS = "pci"
#: the cdev's name under vfio-dev/ (noiommu devices have no cdev; vfio.rst)
_CDEV = re.compile(r"vfio[0-9]{1,6}")
#: a spec vfioctl replaces is read to check that it is one of ours, up to this size
MAX_SPEC_BYTES = 4 << 20
#: the cgroup permissions a device node gets: read and write, no mknod
PERMISSIONS = "rw"


# ------------------------------------------------------------------ facts (plain data)
@dataclass(frozen=True)
class Claim:
    """Why vfioctl counts a function as its own: a journal record and/or a config entry."""

    address: str
    #: the journal's (state, origin, entry) for it, None without a record
    journal: tuple[str, str, str | None] | None = None
    #: the config entry that names it (``PATH: [[device]] #N``), None when none does
    config: str | None = None


@dataclass(frozen=True)
class CdiFacts:
    """What :func:`build` needs, read from the host by :func:`gather`."""

    #: the host's functions by address, as the state read them (the one record's view)
    functions: dict[str, DeviceState]
    groups: dict[int, tuple[str, ...]]
    claims: dict[str, Claim]
    #: the device nodes present (character devices): /dev/vfio/vfio, /dev/vfio/7, /dev/iommu...
    nodes: frozenset[str]
    #: ``[[device]] #N`` -> (the entry's label as the journal records it, its address or None)
    entries: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: a claimed function's device cdev name (``vfio3``) where the kernel has one
    cdevs: dict[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------ the result
@dataclass(frozen=True)
class Published:
    address: str
    id: str
    group: int
    names: tuple[str, ...]
    nodes: tuple[str, ...]
    companions: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"address": self.address, "id": self.id, "iommu_group": self.group, "names": list(self.names),
                "nodes": list(self.nodes), "companions": list(self.companions)}


@dataclass
class CdiResult:
    kind: str
    cdi_version: str | None
    #: the spec, None when nothing is published
    spec: dict | None
    devices: list[Published]
    left_out: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    #: where the spec went and what was done there ("written", "removed", "absent"), set by the writer
    path: str | None = None
    action: str | None = None

    def text(self) -> str:
        return render(self.spec) if self.spec is not None else ""

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "kind": self.kind, "cdiVersion": self.cdi_version, "path": self.path,
                "action": self.action, "devices": [d.to_dict() for d in self.devices],
                "left_out": [{"address": a, "reason": r} for a, r in self.left_out],
                "notes": self.notes, "spec": self.spec}


# ------------------------------------------------------------------ names
def address_names(address: str) -> tuple[str, str]:
    """``0000:03:00.0`` and ``pci-0000-03-00-0``: the two names every published function has."""
    a = str(PciAddress.parse(address))
    return a, "pci-" + a.replace(":", "-").replace(".", "-")


def kind_of(vendor: str) -> str:
    if not is_cdi_vendor(vendor):
        raise InvalidInput(f"CDI vendor {vendor[:80]!r} must be a DNS name in lower case that starts with a letter, "
                           "e.g. example.com (the kind is VENDOR/pci)")
    return f"{vendor}/{CLASS}"


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def required_version(spec: dict) -> str:
    """The lowest cdiVersion that carries what *spec* uses, by SPEC.md's table of released
    versions (0.3.0 is the first tagged one): 0.5.0 for a device name that starts with a digit
    or a device node's hostPath; 0.6.0 for annotations or a '.' in the kind's class."""
    need = "0.3.0"

    def bump(v: str) -> None:
        nonlocal need
        if _version_key(v) > _version_key(need):
            need = v

    edits = [spec.get("containerEdits") or {}] + [d.get("containerEdits") or {} for d in spec.get("devices", [])]
    for d in spec.get("devices", []):
        if d.get("name", "")[:1] in "0123456789" and d.get("name", ""):
            bump("0.5.0")
        if d.get("annotations"):
            bump("0.6.0")
    if any(n.get("hostPath") for e in edits for n in e.get("deviceNodes", [])):
        bump("0.5.0")
    if spec.get("annotations") or "." in spec.get("kind", "").partition("/")[2]:
        bump("0.6.0")
    return need


def _expand_names(facts: CdiFacts, names: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    """address -> the config's extra names for it (see the module docstring)."""
    out: dict[str, list[str]] = {}
    for key, name in names:
        if PciAddress.is_valid(key):
            out.setdefault(str(PciAddress.parse(key)), []).append(name)
            continue
        if key in facts.entries:
            label, addr = facts.entries[key]
            if addr is not None:
                out.setdefault(addr, []).append(name)
                continue
        else:
            label = f"cli: {key}"
        chosen = sorted((a for a, c in facts.claims.items() if c.journal and c.journal[2] == label),
                        key=PciAddress.parse)
        for i, a in enumerate(chosen):
            out.setdefault(a, []).append(f"{name}-{i}")
    return out


# ------------------------------------------------------------------ the generator
def _hidden(facts: CdiFacts, address: str) -> str | None:
    """None when vfioctl has hidden *address* and it is on a vfio driver, else why not, as what
    follows the address in a sentence ("is on e1000e, ...")."""
    f = facts.functions.get(address)
    c = facts.claims.get(address)
    if f is None:
        return "is not on this host"
    if c is None:
        if is_vfio_driver(f.driver):
            return f"is on {f.driver} but not hidden by vfioctl"
        return f"is on {f.driver}" if f.driver else "is unbound and not hidden by vfioctl"
    if c.journal is not None:
        state, origin, _ = c.journal
        if origin.startswith("libvirt:"):
            return (f"is hidden for the libvirt domain {origin[len('libvirt:'):]!r} while it runs (the hook gives "
                    "it back when the domain stops)")
        if state != "hidden":
            return f"has a change that did not finish (journal state {state}; `vfioctl restore --all` recovers it)"
    if f.driver == "pci-stub":
        return "is on pci-stub, which has no VFIO device node"
    if not is_vfio_driver(f.driver):
        hint = " (`vfioctl apply` hides it)" if c.journal is None else ""
        return f"is on {f.driver or 'no driver'}, not on a vfio driver{hint}"
    return None


def _group_problem(facts: CdiFacts, f: DeviceState) -> str | None:
    members = [facts.functions[a] for a in facts.groups.get(f.iommu_group or 0, ()) if a in facts.functions]
    blockers = [m for m in members if blocks_viability(m.is_bridge, m.driver)]
    if blockers:
        return f"is in IOMMU group {f.iommu_group}, which is not viable: " + ", ".join(
            f"{m.address} is on {m.driver}" for m in blockers)
    others = [f"{m.address} {why}" for m in members
              if not m.is_bridge and m.address != f.address and (why := _hidden(facts, str(m.address))) is not None]
    if others:
        return f"is in IOMMU group {f.iommu_group}, which vfioctl has not wholly hidden: " + "; ".join(others)
    return None


def _nodes(facts: CdiFacts, f: DeviceState) -> list[str]:
    out: list[str] = []
    group_node = f"/dev/vfio/{f.iommu_group}"
    if "/dev/vfio/vfio" in facts.nodes and group_node in facts.nodes:
        out += ["/dev/vfio/vfio", group_node]
    cdev = facts.cdevs.get(str(f.address))
    if cdev is not None and "/dev/iommu" in facts.nodes and f"/dev/vfio/devices/{cdev}" in facts.nodes:
        out += ["/dev/iommu", f"/dev/vfio/devices/{cdev}"]
    return out


def build(facts: CdiFacts, *, vendor: str = "vfioctl.io", annotations: bool = False,
          names: tuple[tuple[str, str], ...] = ()) -> CdiResult:
    """Pure: the spec for *facts* (see the module docstring), the devices it names and those
    left out with the reason."""
    kind = kind_of(vendor)
    extra = _expand_names(facts, names)
    published: list[Published] = []
    left_out: list[tuple[str, str]] = []
    notes: list[str] = []
    for address in sorted(facts.claims, key=PciAddress.parse):
        why = _hidden(facts, address)
        f = facts.functions.get(address)
        if why is None and f is not None:
            if f.iommu_group is None:
                why = "has no IOMMU group (is the IOMMU on? `vfioctl check`)"
            else:
                why = _group_problem(facts, f)
        if why is None and f is not None and f.iommu_group is not None:
            nodes = _nodes(facts, f)
            cdev = facts.cdevs.get(address)
            if not nodes:
                why = (f"has no VFIO device node on this host (/dev/vfio/vfio and /dev/vfio/{f.iommu_group}"
                       + (f", or /dev/iommu and /dev/vfio/devices/{cdev}" if cdev else "") + ")")
            else:
                companions = tuple(a for a in facts.groups.get(f.iommu_group, ())
                                   if a != address and a in facts.functions and not facts.functions[a].is_bridge)
                all_names = list(address_names(address)) + extra.get(address, [])
                published.append(Published(address, f.vendor_device, f.iommu_group, tuple(dict.fromkeys(all_names)), tuple(nodes),
                                           companions))
                continue
        left_out.append((address, why or "not published"))
    seen: dict[str, str] = {}
    devices: list[dict] = []
    for p in published:
        for n in p.names:
            if not is_cdi_device_name(n):  # every name is built from a validated form; a bug otherwise
                raise InvalidInput(f"internal: {n!r} is not a CDI device name")
            if n in seen:
                notes.append(f"the name {n} is given to {seen[n]} and {p.address}: only {seen[n]} keeps it")
                continue
            seen[n] = p.address
            dev: dict = {"name": n}
            if annotations:
                ann = {f"{vendor}/address": p.address, f"{vendor}/id": p.id, f"{vendor}/iommu-group": str(p.group)}
                if p.companions:
                    ann[f"{vendor}/companions"] = ",".join(p.companions)
                dev["annotations"] = ann
            dev["containerEdits"] = {"deviceNodes": [{"path": node, "permissions": PERMISSIONS} for node in p.nodes]}
            devices.append(dev)
    for key, name in names:
        if not any(name == n or re.fullmatch(re.escape(name) + r"-[0-9]+", n) for n in seen):
            notes.append(f"[cdi.names] {key} = {name!r} names no published device")
    if not devices:
        return CdiResult(kind, None, None, published, left_out, notes)
    spec: dict = {"cdiVersion": "", "kind": kind, "devices": devices}
    spec["cdiVersion"] = required_version(spec)
    return CdiResult(kind, spec["cdiVersion"], spec, published, left_out, notes)


def render(spec: dict) -> str:
    return json.dumps(spec, indent=2) + "\n"


# ------------------------------------------------------------------ reading the host
def gather(host: Host, config: Config | None, journal: Journal | None = None) -> CdiFacts:
    """The one reading of the host: the journal's devices and the config's, their groups, the
    drivers, the cdevs and which VFIO nodes exist.  *journal*: one already read (under the lock)."""
    if journal is None:
        journal = read_journal(host)
    entries = [e for e in (config.addressed if config else []) if e.address is not None]
    st = read_state(host, journal, [e.address for e in entries if e.address is not None], in_use=False,
                    holders=False)
    claims: dict[str, Claim] = {a: Claim(a, journal=(r.state, r.origin, r.entry)) for a, r in journal.devices.items()}

    def claim(address: str, label: str) -> None:
        old = claims.get(address)
        claims[address] = Claim(address, old.journal if old else None, (old.config if old else None) or label)

    for e in entries:
        a = str(e.address)
        claim(a, e.source)
        d = st.get(e.address) if e.address is not None else None
        if e.group and d is not None and d.iommu_group is not None:
            for m in st.members(d.iommu_group):
                if m.role != "bridge":
                    claim(str(m.address), e.source)
    functions = {str(addr): d for addr, d in st.devices.items()}
    cdevs: dict[str, str] = {}
    for a in claims:
        if a in functions:
            found = [n for n in host.listdir(f"{PCI_DEVICES}/{a}/vfio-dev") if _CDEV.fullmatch(n)]
            if len(found) == 1:
                cdevs[a] = found[0]
    wanted = {"/dev/vfio/vfio", "/dev/iommu"}
    for a in claims:
        f = functions.get(a)
        if f is not None and f.iommu_group is not None:
            wanted.add(f"/dev/vfio/{f.iommu_group}")
        if a in cdevs:
            wanted.add(f"/dev/vfio/devices/{cdevs[a]}")
    nodes = frozenset(n for n in wanted if host.is_char_device(n))
    groups = {g: tuple(str(a) for a in members) for g, members in st.groups.items()}
    entry_keys = {f"[[device]] #{i}": (e.source, str(e.address) if e.address else None)
                  for i, e in enumerate(config.devices if config else [], 1)}
    return CdiFacts(functions, groups, claims, nodes, entry_keys, cdevs)


def spec_for(host: Host, config: Config | None, *, vendor: str | None = None,
             journal: Journal | None = None) -> CdiResult:
    """Gather and build with the config's ``[cdi]`` settings (*vendor* overrides its vendor)."""
    cdi = config.cdi if config else None
    return build(gather(host, config, journal), vendor=vendor or (cdi.vendor if cdi else "vfioctl.io"),
                 annotations=cdi.annotations if cdi else False, names=cdi.names if cdi else ())


# ------------------------------------------------------------------ writing
def publish(target: Host, path: str, result: CdiResult) -> CdiResult:
    """Write *result*'s spec at host-absolute *path* on *target* atomically, mode 0644, or remove
    the spec there when nothing is published.  Refused, with nothing written: a symbolic link, a
    folder or anything but a regular file at *path*, and a file that is not a CDI spec of this
    kind (it may be another vendor's)."""
    if not is_plain_abs_path(path):
        raise InvalidInput(f"CDI spec path {path[:80]!r} must be an absolute path without control characters")
    what = target.kind(path, follow=False)
    if what == "link":
        raise InvalidInput(f"{path} is a symbolic link: vfioctl does not write a CDI spec through a link; "
                           "give the path of the file itself", path=path)
    if what == "dir":
        raise InvalidInput(f"{path} is a folder: give the spec's file name, e.g. {path.rstrip('/')}/vfioctl.json",
                           path=path)
    if what not in (None, "file"):
        raise InvalidInput(f"{path} is not a regular file ({what}); refusing to replace it", path=path)
    if what == "file":
        _check_ours(target, path, result.kind)
    result.path = path
    if result.spec is None:
        if what is None:
            result.action = "absent"
        else:
            target.unlink(path)
            result.action = "removed"
        return result
    target.write_file(path, render(result.spec), 0o644, makedirs=True, action="write the CDI spec")
    result.action = "written"
    return result


def _check_ours(target: Host, path: str, kind: str) -> None:
    raw = target.read_bytes(path, MAX_SPEC_BYTES + 1)
    found = None
    if len(raw) <= MAX_SPEC_BYTES:
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("kind"), str):
            found = data["kind"]
    if found != kind:
        what = f"a CDI spec of kind {found[:80]!r}" if found else "not a CDI spec in JSON"
        raise Refused(f"refusing to replace {path}: it is {what}, not vfioctl's (kind {kind}); move it away "
                      "or choose another path", path=path)


def write_output(output: str, result: CdiResult) -> CdiResult:
    """``vfioctl cdi --output FILE``: the spec written on this machine (never inside a snapshot)."""
    dest = os.path.abspath(output)
    return publish(Host("/"), dest, result)


def refresh(host: Host, config: Config) -> CdiResult | None:
    """Rewrite the spec at the config's ``[cdi] path`` from the state now, under the journal's
    lock (every change is followed by its own refresh, so the last one reads the last change);
    None when the config keeps no spec."""
    path = config.cdi.path
    if path is None:
        return None
    if not is_plain_cdi_path(path):  # a Config built in code skips the file's validation
        raise InvalidInput(f"[cdi] path {path[:80]!r} must be a plain absolute path ending in .json")
    with Journal(host) as journal:
        return publish(host, path, spec_for(host, config, journal=journal))
