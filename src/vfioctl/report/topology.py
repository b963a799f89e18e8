"""The PCI tree (like ``lspci -tv``), annotated for device assignment.  Pure renderers.

:func:`build` turns a :class:`vfioctl.pci.topology.Topology` into a :class:`TopologyView`:
every function once, under its bridge (VFs under their PF), with its IOMMU group,
its driver and state, the ACS state of every port, and each group's viability.
Renderers: :func:`render_text` (a tree), :func:`render_json` (schema
``vfioctl.topology/1``), :func:`render_dot` (graphviz: groups as clusters) and
:func:`render_svg` (the DOT text piped through ``dot -Tsvg`` by a runner the
caller passes in).

Names come from sysfs and pci.ids, which other people wrote: every string put
into DOT is escaped (:func:`dot_quote`), and control characters never reach a
terminal.
"""

from __future__ import annotations

from dataclasses import dataclass

from vfioctl.base.errors import HostNotReady, VfioctlError
from vfioctl.base.names import is_vfio_driver
from vfioctl.iommu.explain import Hop, acs_states
from vfioctl.iommu.groups import blocks_viability
from vfioctl.pci.address import PciAddress
from vfioctl.pci.topology import Topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable

    from vfioctl.pci.ids import PciIds

    #: runner(argv, input bytes) -> (exit status, stdout bytes, stderr text)
    Runner = Callable[[list[str], bytes], "tuple[int, bytes, str]"]

SCHEMA = "vfioctl.topology/1"

HOST_DRIVER, VFIO, STUB, UNBOUND, HELD = "host-driver", "vfio", "stub", "unbound", "held-by-vm"
#: DOT fill colour per state
STATE_COLOURS = {HOST_DRIVER: "#fff2cc", VFIO: "#d9ead3", STUB: "#d0e0e3", UNBOUND: "#ffffff", HELD: "#cfe2f3"}


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
          focus: Iterable[PciAddress] | None = None) -> TopologyView:
    """The annotated tree.  *holders* are :class:`vfioctl.usage.holders.Holder` (anything with
    ``group`` and ``describe()``); *focus* keeps only those functions, their groups, the
    bridges above them and everything below them."""
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
            slot=topology.slot_name(a),
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
    return TopologyView(topology.iommu_enabled, tuple(roots), nodes, groups)


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
    where = f"{n.address.slot:02x}.{n.address.function:x}"
    return f"{where}  [{n.vendor_id}:{n.device_id}] {clean(name)}  ({clean(', '.join(notes), 240)})"


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
    """Graphviz DOT: root complexes, functions and their parents; each IOMMU group a
    cluster; fill colour per state; ports that do not isolate outlined in red."""
    out = [
        "digraph pci {",
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=10, label="PCI topology and IOMMU groups", labelloc=t];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=9, fillcolor="#ffffff"];',
        '  edge [color="#666666"];',
    ]
    for name, _ in view.roots:
        label = _dot_label(name, "root complex")
        out.append(f'  {dot_quote(name)} [label={label}, shape=hexagon, fillcolor="#dddddd"];')
    in_group: set[PciAddress] = set()
    for g, st in sorted(view.groups.items()):
        members = [m for m in st.members if m in view.nodes]
        if not members:
            continue
        colour = "#38761d" if st.viable else "#b45f06"
        out.append(f"  subgraph {dot_quote(f'cluster_group_{g}')} {{")
        out.append(f"    label={dot_quote(f'group {g}' + (' (viable)' if st.viable else ' (not viable)'))}; "
                   f"style=dashed; color={dot_quote(colour)};")
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


def _node_stmt(n: Node) -> str:
    name = " ".join(x for x in (n.vendor_name or "", n.device_name or "") if x) or n.class_name or n.kind
    acs = n.acs_summary or ""
    bits = [str(n.address), f"[{n.vendor_id}:{n.device_id}] {name}", n.kind,
            f"driver: {n.driver or '-'} ({n.state})", acs]
    attrs = [f"label={_dot_label(*bits)}", f"fillcolor={dot_quote(STATE_COLOURS.get(n.state, '#ffffff'))}"]
    if n.acs is not None and n.acs.isolates is False and (n.is_port or n.is_bridge):
        attrs.append('color="#cc0000", penwidth=2')
    return f"{dot_quote(str(n.address))} [{', '.join(attrs)}];"


def render_svg(dot_text: str, runner: Runner) -> str:
    """SVG from graphviz: ``runner(["dot", "-Tsvg"], dot bytes)``.  HostNotReady when dot is missing."""
    try:
        rc, out, err = runner(["dot", "-Tsvg"], dot_text.encode("utf-8"))
    except FileNotFoundError:
        rc, out, err = 127, b"", "dot: command not found"
    if rc == 127:
        raise HostNotReady("graphviz's `dot` is not installed, so no SVG: install graphviz (apt-get install graphviz), "
                           "or use --format dot")
    if rc != 0:
        first = (err or "").strip().splitlines()[:1]
        raise VfioctlError(f"dot -Tsvg failed (exit {rc}): {clean(first[0] if first else 'no message', 200)}")
    return out.decode("utf-8", "replace")
