"""The PCI tree (like ``lspci -tv``), annotated for device assignment.  Pure renderers.

:func:`build` turns a :class:`vfioctl.pci.topology.Topology` into a :class:`TopologyView`:
every function once, under its bridge (VFs under their PF), with its IOMMU group,
its driver and state, the ACS state of every port, each group's viability, and what
the user can do with each function (:class:`Assign`: assignable alone, only with its
group, blocked and why, or a bridge that stays with the host), with the facts
:func:`read_facts` reads (NUMA node, PCIe link, OS names, boot VGA, host use) and the
``assess`` verdicts the caller passes in.  Renderers: :func:`render_text` (a tree),
:func:`render_json` (schema ``vfioctl.topology/1``), :func:`render_dot` (graphviz:
groups as clusters); the picture (SVG) is :mod:`vfioctl.report.picture`.

Names come from sysfs and pci.ids, which other people wrote: every string put
into DOT is escaped (:func:`dot_quote`), and control characters never reach a
terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from vfioctl.base.names import is_vfio_driver
from vfioctl.base.text import ascii_int
from vfioctl.host.core import Host
from vfioctl.iommu.explain import Hop, acs_states
from vfioctl.iommu.roles import blocks_viability
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.pci.topology import Topology
from vfioctl.usage import inuse
from vfioctl.usage.record import Use, from_text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

    from vfioctl.pci.ids import PciIds

SCHEMA = "vfioctl.topology/1"

HOST_DRIVER, VFIO, STUB, UNBOUND, HELD = "host-driver", "vfio", "stub", "unbound", "held-by-vm"

#: what the user can do with a function (:class:`Assign`)
ALONE, WITH_GROUP, BLOCKED, STAYS = "alone", "with-group", "blocked", "stays"
#: how each is said, and its colours (strong, light) in the pictures
CAN_WORDS = {ALONE: "assignable alone", WITH_GROUP: "only with its group", BLOCKED: "blocked",
             STAYS: "stays with the host"}
CAN_COLOURS = {ALONE: ("#2e7d32", "#e8f5e9"), WITH_GROUP: ("#e65100", "#fff3e0"),
               BLOCKED: ("#c62828", "#ffebee"), STAYS: ("#616161", "#f5f5f5")}
#: a port or bridge that does not isolate what is below it: why its group is shared
NO_ISOLATION_COLOUR = "#c62828"
#: the assess verdicts' colours
VERDICT_COLOURS = {"ready": "#2e7d32", "caveats": "#e65100", "blocked": "#c62828"}

#: the readings :func:`read_facts` needs that a snapshot may not hold (Host.not_captured)
CAPTURED_READINGS = ("link", "drm")


@dataclass(frozen=True)
class Link:
    """The PCIe link of a function as sysfs shows it (current_link_speed/width, max_link_*)."""

    speed: str | None
    width: int | None
    max_speed: str | None = None
    max_width: int | None = None

    def describe(self) -> str:
        now = " ".join(x for x in (self.speed, f"x{self.width}" if self.width else None) if x)
        most = " ".join(x for x in (self.max_speed, f"x{self.max_width}" if self.max_width else None) if x)
        return f"{now} (of {most})" if most and most != now and now else now or most

    def to_dict(self) -> dict:
        return {"speed": self.speed, "width": self.width, "max_speed": self.max_speed, "max_width": self.max_width}


@dataclass(frozen=True)
class FunctionFacts:
    """What a function is to the host beyond its place in the tree: the one reader of these is
    :func:`read_facts` (a record per function read once would be their natural source)."""

    numa_node: int | None = None
    link: Link | None = None
    #: network interfaces, whole block devices (nvme0n1), DRM cards (card0) on it
    os_names: tuple[str, ...] = ()
    boot_vga: bool = False
    #: why the host uses it, as records (vfioctl.usage.inuse.uses; text is accepted and made one):
    #: their kinds say console, platform and "not known"; () when it does not
    host_use: tuple[Use, ...] = ()
    #: VFs an SR-IOV PF has now (vfio-pci refuses a PF whose VFs exist)
    num_vfs: int = 0
    #: reading -> why this host could not answer it (a snapshot that did not capture it)
    not_captured: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "host_use", tuple(from_text(u) for u in self.host_use))

    @property
    def in_use(self) -> tuple[str, ...]:
        """The host uses as the messages say them."""
        return tuple(u.text for u in self.host_use)


@dataclass(frozen=True)
class Assign:
    """What the user can do with a function: ``can`` (ALONE, WITH_GROUP, BLOCKED, STAYS), why
    (for WITH_GROUP and BLOCKED), and the endpoints that must go with it.

    The endpoints are kept as the group's (one tuple shared by all its members) less this
    one, made when asked for: a group of n endpoints costs n, not n * n (an amplified tree
    of 8,000 functions in one group took 485 MiB for `topology`)."""

    can: str
    reason: str | None = None
    #: every endpoint of the group, this function (an endpoint: bridges get no group) among them
    group_ends: tuple[PciAddress, ...] = ()
    #: the why in a few words, for one line of a tree or a box
    brief: str | None = None
    #: this function, left out of :attr:`together`
    me: PciAddress | None = None

    @property
    def together(self) -> tuple[PciAddress, ...]:
        return tuple(e for e in self.group_ends if e != self.me)

    @property
    def why(self) -> str | None:
        if self.can == WITH_GROUP and self.reason is None:
            return "with " + ", ".join(str(e) for e in self.together)
        return self.reason

    def describe(self) -> str:
        why = self.why
        return CAN_WORDS[self.can] + (f": {why}" if why else "")

    def short(self) -> str:
        if self.can == WITH_GROUP:
            n = len(self.group_ends) - (self.me is not None)  # an endpoint is one of its group's
            return "only with " + (", ".join(str(a) for a in self.together) if n <= 2 else
                                   f"the {n} others of its group")
        return CAN_WORDS[self.can] + (f" ({self.brief})" if self.brief else "")

    def to_dict(self) -> dict:
        return {"can": self.can, "why": self.why, "with": [str(a) for a in self.together]}


@dataclass(frozen=True)
class Node:
    """One function in the tree."""

    address: PciAddress
    #: tree parent: the bridge above, or the PF of a VF; None on a root bus
    parent: PciAddress | None
    root: str
    children: tuple[PciAddress, ...]
    vendor_id: str
    device_id: str
    class_code: str | None
    vendor_name: str | None
    device_name: str | None
    class_name: str | None
    #: "root port", "PCIe-to-PCI bridge", "endpoint", "PCI bridge", "conventional PCI device", ...
    kind: str
    is_bridge: bool
    physfn: PciAddress | None
    group: int | None
    driver: str | None
    state: str
    held_by: tuple[str, ...]
    #: ACS of a bridge/port (or a function with an ACS capability); None otherwise
    acs: Hop | None
    slot: str | None
    facts: FunctionFacts = FunctionFacts()
    assign: Assign = Assign(STAYS)
    #: the ``assess`` verdict (ready, caveats, blocked); None when not assessed (a bridge, or
    #: the caller did not ask)
    verdict: str | None = None

    @property
    def name(self) -> str:
        return " ".join(x for x in (self.vendor_name or "", self.device_name or "") if x) or self.class_name or \
            self.kind

    @property
    def isolates(self) -> bool | None:
        """False for a port or bridge that does not isolate what is below it."""
        if self.acs is None or not (self.is_port or self.is_bridge):
            return None
        return self.acs.isolates

    @property
    def is_port(self) -> bool:
        return self.kind in ("root port", "downstream port", "upstream port")

    @property
    def acs_summary(self) -> str | None:
        """``ACS SV RR CR UF``, ``no ACS``, ``ACS off: RR CR``, ``ACS by quirk``, ``ACS unknown``; None
        for functions where ACS does not apply."""
        h = self.acs
        if h is None:
            return None
        if h.acs == "enabled":
            return "ACS " + " ".join(h.enabled or ())
        if h.acs == "disabled":
            return "ACS off: " + " ".join(h.missing)
        if h.acs == "absent":
            return "no ACS"
        if h.acs == "quirk":
            return "ACS by quirk" if h.isolates else "no ACS (quirk)"
        if h.acs == "unknown":
            return "ACS unknown"
        return None

    def to_dict(self) -> dict:
        h = self.acs
        return {
            "address": str(self.address),
            "parent": str(self.parent) if self.parent else None,
            "root": self.root,
            "children": [str(c) for c in self.children],
            "vendor_id": self.vendor_id, "device_id": self.device_id, "class": self.class_code,
            "vendor_name": self.vendor_name, "device_name": self.device_name, "class_name": self.class_name,
            "kind": self.kind, "is_bridge": self.is_bridge,
            "physfn": str(self.physfn) if self.physfn else None,
            "iommu_group": self.group, "driver": self.driver, "state": self.state,
            "held_by": list(self.held_by), "slot": self.slot,
            "acs": None if h is None else {
                "state": h.acs, "capable": list(h.capable) if h.capable is not None else None,
                "enabled": list(h.enabled) if h.enabled is not None else None,
                "missing": list(h.missing), "isolates": h.isolates, "note": h.note},
            "assign": self.assign.to_dict(), "verdict": self.verdict,
            "numa_node": self.facts.numa_node,
            "link": self.facts.link.to_dict() if self.facts.link else None,
            "os_names": list(self.facts.os_names), "boot_vga": self.facts.boot_vga,
            "in_use": list(self.facts.in_use),
            "not_captured": dict(self.facts.not_captured),
        }


@dataclass(frozen=True)
class GroupState:
    group: int
    members: tuple[PciAddress, ...]
    viable: bool
    blockers: tuple[PciAddress, ...]

    def to_dict(self) -> dict:
        return {"group": self.group, "viable": self.viable, "members": [str(m) for m in self.members],
                "blockers": [str(b) for b in self.blockers]}


@dataclass(frozen=True)
class TopologyView:
    iommu_enabled: bool
    #: (root bus name, the functions on it), sorted
    roots: tuple[tuple[str, tuple[PciAddress, ...]], ...]
    nodes: dict[PciAddress, Node]
    groups: dict[int, GroupState]


def build(topology: Topology, *, ids: PciIds | None = None, holders: Iterable[object] | None = None,
          focus: Iterable[PciAddress] | None = None, facts: dict[PciAddress, FunctionFacts] | None = None,
          verdicts: dict[PciAddress, str] | None = None) -> TopologyView:
    """The annotated tree.  *holders* are :class:`vfioctl.usage.holders.Holder` (anything with
    ``group`` and ``describe()``); *focus* keeps only those functions, their groups, the
    bridges above them and everything below them; *facts* (:func:`read_facts`) and
    *verdicts* (address -> ``assess`` verdict) annotate each function."""
    held: dict[int, list[str]] = {}
    for h in holders or ():
        held.setdefault(int(getattr(h, "group")), []).append(str(h.describe()))  # type: ignore[attr-defined]
    acs = acs_states(topology)
    funcs = topology.functions

    keep: set[PciAddress] | None = None
    if focus is not None:
        seeds = {a for a in focus if a in funcs}
        seed_groups = {funcs[a].iommu_group for a in seeds if funcs[a].iommu_group is not None}
        seeds |= {a for a, f in funcs.items() if f.iommu_group in seed_groups}
        keep = set()
        for a in seeds:
            keep.add(a)
            p = topology.tree_parent(a)
            while p is not None and p not in keep and p in funcs:
                keep.add(p)
                p = topology.tree_parent(p)
        stack = [a for a in focus if a in funcs]
        while stack:
            a = stack.pop()
            for c in topology.children(a) + topology.vfs(a):
                if c not in keep:
                    keep.add(c)
                    stack.append(c)

    def kids(a: PciAddress) -> tuple[PciAddress, ...]:
        out = topology.children(a) + topology.vfs(a)
        return tuple(c for c in out if keep is None or c in keep)

    nodes: dict[PciAddress, Node] = {}
    for a, f in funcs.items():
        if keep is not None and a not in keep:
            continue
        v, d = f.ids.split(":")
        cc = f"{f.class_code:06x}" if f.class_code is not None else None
        hop = acs.get(a)
        kind = hop.kind if hop is not None else _kind(f)
        holders_of = tuple(held.get(f.iommu_group, ())) if f.iommu_group is not None else ()
        nodes[a] = Node(
            address=a, parent=topology.tree_parent(a), root=topology.root_of(a), children=kids(a),
            vendor_id=v, device_id=d, class_code=cc,
            vendor_name=ids.vendor(v) if ids else None, device_name=ids.device(v, d) if ids else None,
            class_name=ids.class_name(f.class_code) if ids and f.class_code is not None else None,
            kind=kind, is_bridge=f.is_bridge, physfn=f.physfn, group=f.iommu_group, driver=f.driver,
            state=_state(f.driver, holders_of), held_by=holders_of, acs=hop,
            slot=topology.slot_name(a), facts=(facts or {}).get(a, FunctionFacts()),
            verdict=(verdicts or {}).get(a),
        )
    roots = []
    for name in topology.root_buses():
        on = tuple(a for a in topology.on_root_bus(name) if a in nodes)
        if on:
            roots.append((name, on))
    groups: dict[int, GroupState] = {}
    for g, members in topology.kernel_groups().items():
        if keep is not None and not any(m in keep for m in members):
            continue
        blockers = tuple(m for m in members if blocks_viability(funcs[m].is_bridge, funcs[m].driver))
        groups[g] = GroupState(g, tuple(members), not blockers, blockers)
    for g, members in topology.kernel_groups().items():
        _assign_group(nodes, [m for m in members if m in nodes], topology)
    for a, n in nodes.items():
        if n.group is None:
            nodes[a] = replace(n, assign=Assign(STAYS) if n.is_bridge else Assign(
                BLOCKED, "no IOMMU group: the IOMMU is off or does not cover it" if topology.iommu_enabled
                else "no IOMMU group: the IOMMU is off (`vfioctl check` says how to turn it on)",
                brief="no IOMMU group"))
    return TopologyView(topology.iommu_enabled, tuple(roots), nodes, groups)


def _assign_group(nodes: dict[PciAddress, Node], members: list[PciAddress], topology: Topology) -> None:
    """What the user can do with each member of one group (pure): a function the host uses, a
    PF with VFs, or the boot VGA device is blocked, and so is the rest of its group (it leaves the
    host whole or not at all); else an endpoint goes alone when no other endpoint shares the
    group (bridges stay with the host: the kernel ignores them), or only with the others."""
    ends = [m for m in members if not nodes[m].is_bridge]
    own: dict[PciAddress, tuple[str, str]] = {}
    for m in ends:
        f = nodes[m].facts
        if f.boot_vga and any(u.console for u in f.host_use):
            own[m] = ("the boot VGA device, the host console may be on it: hand it over with "
                      "`vfioctl hide --take-console`", "console")
        elif any(u.platform for u in f.host_use):
            own[m] = ("part of the platform: " + next(u.text for u in f.host_use if u.platform), "platform")
        elif f.host_use and not any(u.known for u in f.host_use):
            own[m] = (f.host_use[0].text, "host use not known")
        elif f.host_use:
            own[m] = ("the host uses it: " + next(u.text for u in f.host_use if u.known), "host use")
        elif f.num_vfs:
            own[m] = (f"a PF with {f.num_vfs} VFs: vfio-pci takes a PF only without its VFs (assign the VFs)",
                      f"PF with {f.num_vfs} VFs")
    group = tuple(ends)  # one tuple for the whole group: each member's "others" made from it
    for m in members:
        n = nodes[m]
        count = len(group) - 1  # the others: a member that is no bridge is one of the group's ends
        if n.is_bridge:
            assign = Assign(STAYS)
        elif m in own:
            assign = Assign(BLOCKED, own[m][0], group, own[m][1], m)
        elif own:
            first = next(iter(own))
            assign = Assign(BLOCKED, f"{first} in its group cannot leave the host: {own[first][0]}", group,
                            f"{own[first][1]} in group", m)
        elif count:
            assign = Assign(WITH_GROUP, None, group, f"+{count} in group", m)
        else:
            assign = Assign(ALONE)
        nodes[m] = replace(n, assign=assign)


def read_facts(host: Host, topology: Topology, addresses: Iterable[PciAddress] | None = None,
               ) -> dict[PciAddress, FunctionFacts]:
    """The facts of each function (all of the topology's, or *addresses*): NUMA node, PCIe link,
    OS names, boot VGA, host use, VF count.  What a snapshot did not capture is left empty, with
    the reason in ``not_captured``."""
    missing = {r: why for r in CAPTURED_READINGS if (why := host.not_captured(r))}
    out: dict[PciAddress, FunctionFacts] = {}
    for a in addresses if addresses is not None else topology.functions:
        # the topology's record of the function, not a second reading of it (uevent, links)
        dev = PciDevice(host, a, facts=topology.functions.get(a))
        base = dev.sysfs
        link = None if "link" in missing else _link(host, base)
        names = list(inuse.net_interfaces(dev))
        names += [b for b in inuse.block_devices(dev) if _WHOLE_DISK.fullmatch(b)]
        if "drm" not in missing:
            names += [c for c in host.listdir(f"{base}/drm") if _DRM_CARD.fullmatch(c)]
        numvfs = dev.sriov_numvfs or 0 if dev.sriov_capable else 0
        out[a] = FunctionFacts(
            numa_node=dev.numa_node, link=link, os_names=tuple(names), boot_vga=dev.boot_vga,
            host_use=tuple(inuse.uses(dev)), num_vfs=numvfs,
            not_captured=tuple(sorted((_FIELD_OF[r], why) for r, why in missing.items())))
    return out


#: the field a reading fills: a reading not captured leaves it null (link) or short (os_names)
_FIELD_OF = {"link": "link", "drm": "os_names"}
#: a whole disk (nvme0n1, sda, vda), not a partition or an NVMe path node (nvme0c0n1)
_WHOLE_DISK = re.compile(r"nvme[0-9]+n[0-9]+|[shv]d[a-z]+|xvd[a-z]+")
_DRM_CARD = re.compile(r"card[0-9]+")


def _link(host: Host, base: str) -> Link | None:
    def speed(name: str) -> str | None:
        text = host.read(f"{base}/{name}", default=None)
        if not text or text.startswith("Unknown"):
            return None
        m = re.fullmatch(r"([0-9.]+) GT/s(?: PCIe)?", text)
        return f"{float(m[1]):g} GT/s" if m else None

    def width(name: str) -> int | None:
        text = host.read(f"{base}/{name}", default=None)
        n = ascii_int(text, 2)
        return n if n is not None and 0 < n <= 32 else None

    got = Link(speed("current_link_speed"), width("current_link_width"), speed("max_link_speed"),
               width("max_link_width"))
    return got if any((got.speed, got.width, got.max_speed, got.max_width)) else None


def _h4(v: int | None) -> str:
    return "????" if v is None else f"{v:04x}"


def _kind(f) -> str:
    cfg = f.config
    if cfg.pcie is not None:
        return cfg.pcie.type_name
    if f.is_bridge:
        return "PCI bridge"
    return "conventional PCI device" if cfg.is_pcie is False else "function"


def _state(driver: str | None, holders: tuple[str, ...]) -> str:
    if holders:
        return HELD
    if driver is None:
        return UNBOUND
    if is_vfio_driver(driver):
        return VFIO
    if driver == "pci-stub":
        return STUB
    return HOST_DRIVER


def clean(text: object, limit: int = 120) -> str:
    """A name fit for a terminal: control characters replaced, length bounded."""
    s = str(text)
    if not s.isprintable():  # one C call for the usual name; the walk only for one that needs it
        s = "".join(ch if ch.isprintable() else "?" for ch in s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ================================================================ text
def _label(n: Node) -> str:
    name = " ".join(x for x in (n.vendor_name or "", n.device_name or "") if x) or n.class_name or "device"
    notes = [f"group {n.group}" if n.group is not None else "no group"]
    notes.append(n.driver or "no driver")
    if n.state == HELD:
        notes.append("held by " + ", ".join(n.held_by))
    if n.physfn is not None:
        notes.append(f"VF of {n.physfn}")
    if n.is_bridge or n.is_port:
        notes.append(n.kind)
    s = n.acs_summary
    if s and (n.is_bridge or n.is_port or n.acs is not None):
        notes.append(s)
    if n.slot:
        notes.append(f'slot "{n.slot}"')
    notes += facts_words(n)
    if not n.is_bridge:
        notes.append(n.assign.short() + (f", {n.verdict}" if n.verdict else ""))
    where = f"{n.address.slot:02x}.{n.address.function:x}"
    return f"{where}  [{n.vendor_id}:{n.device_id}] {clean(name)}  ({clean(', '.join(notes), 240)})"


def facts_words(n: Node, numa: bool = True) -> list[str]:
    """OS names, boot VGA, NUMA node (unless not *numa*) and link, as the tree and the picture
    say them."""
    f = n.facts
    out = list(f.os_names)
    if f.boot_vga:
        out.append("boot VGA")
    if numa and f.numa_node is not None:
        out.append(f"NUMA {f.numa_node}")
    if f.link is not None and f.link.describe():
        out.append(f.link.describe())
    return out


def render_text(view: TopologyView) -> str:
    """The tree in ``lspci -tv``'s shape, one function per line, annotated."""
    lines: list[str] = []
    done: set[PciAddress] = set()
    for name, funcs in view.roots:
        label = name[3:] if name.startswith("pci") else name
        head = f"-[{label}]-"
        _bus(view, head, " " * len(head), list(funcs), lines, done)
    # functions whose bridge sysfs does not list (or a tree that loops): shown, not lost
    rest = [a for a in sorted(view.nodes) if a not in done and view.nodes[a].parent not in view.nodes]
    if rest:
        _bus(view, "-[unattached]-", " " * 14, rest, lines, done)
    for a in sorted(view.nodes):
        if a not in done:
            _bus(view, "-[unattached]-", " " * 14, [a], lines, done)
    return "\n".join(lines)


def _bus(view: TopologyView, head: str, pad: str, funcs: list[PciAddress], lines: list[str],
         done: set[PciAddress]) -> None:
    funcs = [a for a in funcs if a not in done]  # each function once, even in a looping tree
    done.update(funcs)
    for i, a in enumerate(funcs):
        n = view.nodes[a]
        last = i == len(funcs) - 1
        if len(funcs) == 1:
            lead = head + "--"
        else:
            lead = (head if i == 0 else pad) + ("\\-" if last else "+-")
        lines.append(lead + _label(n))
        if n.children:
            cont = pad + ("  " if last else "| ")
            kids = list(n.children)
            vfs = [c for c in kids if view.nodes[c].physfn == a]
            bus_kids = [c for c in kids if c not in vfs]
            groups = []
            if bus_kids:
                b = bus_kids[0]
                groups.append((f"[{b.bus:02x}]", bus_kids))
            if vfs:
                groups.append(("[VFs]", vfs))
            for j, (tag, members) in enumerate(groups):
                sub_last = j == len(groups) - 1
                sub_head = cont + "    " + ("\\-" if sub_last else "+-") + tag + "-"
                sub_pad = cont + "    " + ("  " if sub_last else "| ") + " " * (len(tag) + 1)
                _bus(view, sub_head, sub_pad, members, lines, done)


# ================================================================ JSON
def render_json(view: TopologyView) -> dict:
    """Schema ``vfioctl.topology/1``: every function exactly once (address order) with its
    group, parent and children; the root buses; the groups with their viability."""
    return {
        "schema": SCHEMA,
        "iommu_enabled": view.iommu_enabled,
        "assessed": any(n.verdict is not None for n in view.nodes.values()),
        "roots": [{"name": name, "functions": [str(a) for a in funcs]} for name, funcs in view.roots],
        "functions": [n.to_dict() for _, n in sorted(view.nodes.items())],
        "groups": [g.to_dict() for _, g in sorted(view.groups.items())],
    }


# ================================================================ DOT / SVG
def dot_quote(text: object) -> str:
    """A DOT double-quoted string holding *text* literally: backslashes and quotes
    escaped (so label escapes like ``\\N`` or ``\\l`` cannot be smuggled in), control
    characters replaced, newlines not allowed through."""
    s = str(text)
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif not ch.isprintable():
            out.append("?")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _dot_label(*lines: str) -> str:
    """A multi-line label: each line escaped, joined with DOT's own ``\\n`` escape."""
    return '"' + "\\n".join(dot_quote(clean(x, 80))[1:-1] for x in lines if x) + '"'


def render_dot(view: TopologyView) -> str:
    """Graphviz DOT: root complexes, functions and their parents; each IOMMU group a cluster
    outlined in the colour of what can be done with it; each function filled in its colour
    (assignable alone, only with its group, blocked, a bridge that stays); ports that do not
    isolate outlined in red; a legend."""
    out = [
        "digraph pci {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=10, label="What can I assign? PCI topology and IOMMU '
        'groups", labelloc=t, newrank=true];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, fillcolor="#ffffff"];',
        '  edge [color="#666666"];',
        '  subgraph "cluster_legend" { label="legend"; style=solid; color="#999999";',
    ]
    for can in (ALONE, WITH_GROUP, BLOCKED, STAYS):
        strong, light = CAN_COLOURS[can]
        out.append(f'    {dot_quote("legend_" + can)} [label={dot_quote(CAN_WORDS[can])}, fillcolor="{light}", '
                   f'color="{strong}"];')
    out.append(f'    "legend_noacs" [label="port without isolation", color="{NO_ISOLATION_COLOUR}", penwidth=2];')
    out.append("  }")
    for name, _ in view.roots:
        label = _dot_label(name, "root complex")
        out.append(f'  {dot_quote(name)} [label={label}, shape=hexagon, fillcolor="#dddddd"];')
    in_group: set[PciAddress] = set()
    for g, st in sorted(view.groups.items()):
        members = [m for m in st.members if m in view.nodes]
        if not members:
            continue
        can = group_can([view.nodes[m] for m in members])
        out.append(f"  subgraph {dot_quote(f'cluster_group_{g}')} {{")
        out.append(f"    label={dot_quote(f'group {g}: {CAN_WORDS[can]}')}; style=dashed; "
                   f"color={dot_quote(CAN_COLOURS[can][0])};")
        for m in members:
            out.append(f"    {_node_stmt(view.nodes[m])}")
            in_group.add(m)
        out.append("  }")
    for a, n in sorted(view.nodes.items()):
        if a not in in_group:
            out.append(f"  {_node_stmt(n)}")
    for a, n in sorted(view.nodes.items()):
        src = str(n.parent) if n.parent is not None and n.parent in view.nodes else n.root
        style = ', style=dashed, label="VF"' if n.physfn is not None and n.parent == n.physfn else ""
        out.append(f"  {dot_quote(src)} -> {dot_quote(str(a))} [arrowhead=none{style}];")
    out.append("}")
    return "\n".join(out) + "\n"


def group_can(members: list[Node]) -> str:
    """What a group allows as a whole: the worst of its endpoints (STAYS for bridges alone)."""
    order = (BLOCKED, WITH_GROUP, ALONE)
    cans = {n.assign.can for n in members if not n.is_bridge}
    return next((c for c in order if c in cans), STAYS)


def _node_stmt(n: Node) -> str:
    acs = n.acs_summary or ""
    marks = [x for x in (n.driver and f"driver: {n.driver}", "held by a VM" if n.state == HELD else None,
                         n.verdict and f"assess: {n.verdict}") if x]
    bits = [str(n.address), f"[{n.vendor_id}:{n.device_id}] {n.name}", n.kind, ", ".join(marks),
            ", ".join(facts_words(n)), acs, n.assign.short() if not n.is_bridge else ""]
    strong, light = CAN_COLOURS[n.assign.can]
    attrs = [f"label={_dot_label(*bits)}", f"fillcolor={dot_quote(light)}", f"color={dot_quote(strong)}"]
    if n.isolates is False:
        attrs[-1] = f"color={dot_quote(NO_ISOLATION_COLOUR)}, penwidth=2"
    if n.state in (VFIO, HELD):
        attrs.append("peripheries=2")
    return f"{dot_quote(str(n.address))} [{', '.join(attrs)}];"
