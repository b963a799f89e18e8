"""The topology as a picture that answers "what can I assign?": SVG, drawn here (no graphviz).

Pure: a :class:`~vfioctl.report.topology.TopologyView` in, SVG text out.

* One box per IOMMU group: what leaves the host together.  Its header is filled in the
  colour of what the user can do with it (assignable alone, only with its whole group,
  blocked and why); each member has a bar of its own colour, its address, driver, OS names
  (eth3, nvme0n1, card0), marks (on vfio, held by a VM, boot VGA), its ``assess`` verdict,
  its name, NUMA node and PCIe link.  Bridges that share the group are rows of their own,
  outlined red when they do not isolate (why the group is shared).
* A bridge alone in its group adds nothing to decide: it becomes the "via" line of the
  boxes below it.
* Boxes keep the tree's order and flow into columns so that the picture is about as wide as
  a screen (16:10).  With many boxes, runs of alike boxes side by side in the tree (the VFs
  of one PF, the drives behind one switch) become one box with counts, unless *expand*.
* Text is monospace, so its width is known without a font; every string from the host is
  cleaned and XML-escaped, and cut to the box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vfioctl.pci.address import PciAddress
from vfioctl.report.topology import (
    ALONE,
    BLOCKED,
    CAN_COLOURS,
    CAN_WORDS,
    HELD,
    NO_ISOLATION_COLOUR,
    STAYS,
    STUB,
    VERDICT_COLOURS,
    VFIO,
    WITH_GROUP,
    Node,
    TopologyView,
    clean,
    facts_words,
    group_can,
)

FONT = "DejaVu Sans Mono, Menlo, Consolas, Liberation Mono, monospace"
SIZE = 11
#: DejaVu Sans Mono's advance is 0.602 em
CHAR = SIZE * 0.602
LINE = 15
SMALL = 10
BOX_WIDTH = 420
GAP = 14
MARGIN = 18
PAD = 8
#: the picture's shape: width / height, a screen's
ASPECT = 1.6
#: above this many boxes, runs of alike boxes are merged (a screen holds about this many)
COLLAPSE_ABOVE = 40
#: the shortest run worth merging
RUN = 3


@dataclass
class Box:
    """One IOMMU group (or one function without a group), or a run of alike ones."""

    key: object
    members: list[Node]
    #: the tree ancestors outside the box, top first ("via" line)
    path: list[Node] = field(default_factory=list)
    root: str = ""
    #: more boxes of the same kind merged into this one (a run)
    more: list["Box"] = field(default_factory=list)
    #: the boxes of this PF's VFs, drawn inside it (a run, or one VF)
    vfs: "Box | None" = None

    @property
    def can(self) -> str:
        return group_can(self.members)

    @property
    def endpoints(self) -> list[Node]:
        return [n for n in self.members if not n.is_bridge]

    def alike(self) -> tuple | None:
        """What a box shares with its neighbours to be merged into a run: one endpoint, the
        same verdict on it, the same kind of device, the same place (the path up to its own
        port); None for a box that is never merged."""
        ends = self.endpoints
        if len(ends) != 1 or len(self.members) > 2:
            return None
        e = ends[0]
        path = self.path[:-1] if self.path and self.path[-1].is_bridge else self.path
        return (e.assign.can, e.assign.brief, e.class_code, e.physfn, self.root, tuple(n.address for n in path))


def boxes(view: TopologyView, *, expand: bool = False) -> list[Box]:
    """The boxes in the tree's order (depth first, VFs after a PF's bridge children)."""
    order = _tree_order(view)
    by_key: dict[object, Box] = {}
    out: list[Box] = []
    for a in order:
        n = view.nodes[a]
        key: object = ("group", n.group) if n.group is not None else ("function", a)
        box = by_key.get(key)
        if box is None:
            box = by_key[key] = Box(key, [])
            out.append(box)
        box.members.append(n)
    for box in out:
        inside = {n.address for n in box.members}
        chain: list[Node] = []
        p = box.members[0].parent
        while p is not None and p in view.nodes and p not in inside and len(chain) < 64:
            chain.append(view.nodes[p])
            p = view.nodes[p].parent
        box.path = chain[::-1]
        box.root = box.members[0].root
    # a box of bridges alone holds nothing to assign: it is the "via" of the boxes below
    out = [b for b in out if b.endpoints]
    if not expand and len(out) > COLLAPSE_ABOVE:
        out = _with_vfs(_runs(out))
    return out


def _with_vfs(bs: list[Box]) -> list[Box]:
    """A run of VFs right after the box of their PF goes inside it: one box per SR-IOV card."""
    out: list[Box] = []
    for b in bs:
        ends = b.endpoints
        prev = out[-1] if out else None
        if (b.more and prev is not None and prev.vfs is None and ends[0].physfn is not None
                and any(m.address == ends[0].physfn for m in prev.members)):
            prev.vfs = b
        else:
            out.append(b)
    return out


def _tree_order(view: TopologyView) -> list[PciAddress]:
    seen: set[PciAddress] = set()
    out: list[PciAddress] = []

    def walk(a: PciAddress) -> None:
        stack = [a]
        while stack:
            x = stack.pop()
            if x in seen or x not in view.nodes:
                continue
            seen.add(x)
            out.append(x)
            stack.extend(reversed(view.nodes[x].children))

    for _, funcs in view.roots:
        for a in funcs:
            walk(a)
    for a in sorted(view.nodes):
        walk(a)
    return out


def _runs(bs: list[Box]) -> list[Box]:
    out: list[Box] = []
    i = 0
    while i < len(bs):
        key = bs[i].alike()
        j = i + 1
        while key is not None and j < len(bs) and bs[j].alike() == key:
            j += 1
        if j - i >= RUN:
            head = bs[i]
            head.more = bs[i + 1:j]
            out.append(head)
        else:
            out.extend(bs[i:j])
        i = j
    return out


# ------------------------------------------------------------------ text of a box
@dataclass
class _Line:
    text: str
    colour: str = "#212121"
    size: int = SIZE
    bold: bool = False
    #: the member's colour bar (None: none)
    bar: str | None = None
    #: a right-aligned mark and its colour
    mark: str = ""
    mark_colour: str = "#212121"
    #: draw the bar as "does not isolate" (a red outline)
    alarm: bool = False
    #: a band across the box in this colour (the header of a PF's VFs), the text white
    band: str | None = None


def _short(a: PciAddress) -> str:
    return str(a)[5:] if a.domain == 0 else str(a)


def _hop(n: Node) -> str:
    kind = {"root port": "root port", "upstream port": "switch up", "downstream port": "switch down",
            "PCIe-to-PCI bridge": "PCIe-to-PCI bridge"}.get(n.kind, "bridge" if n.is_bridge else "PF")
    return f"{_short(n.address)} {kind}"


def _marks(n: Node) -> list[str]:
    out = []
    if n.state == HELD:
        out.append("VM: " + ", ".join(n.held_by))
    elif n.state == VFIO:
        out.append(f"hidden ({n.driver})")
    elif n.state == STUB:
        out.append("hidden (pci-stub)")
    return out


def _member_lines(n: Node, width: int, numa: bool = True, why: bool = True) -> list[_Line]:
    strong = CAN_COLOURS[n.assign.can][0]
    if n.is_bridge:
        acs = n.acs_summary or ""
        text = f"{_short(n.address)}  {n.kind}" + (f" · {acs}" if acs else "") + "  (stays with the host)"
        return [_Line(_fit(text, width), "#616161", bar=NO_ISOLATION_COLOUR if n.isolates is False else strong,
                      alarm=n.isolates is False)]
    head = "  ".join([_short(n.address), n.driver or "no driver", *n.facts.os_names])
    verdict = n.verdict or ""
    room = width - len(verdict) - 1
    extra = _marks(n) + [w for w in facts_words(n, numa) if w not in n.facts.os_names]
    if n.physfn is not None:
        extra.insert(0, f"VF of {_short(n.physfn)}")
    # the facts share the first line when they fit there (a box per line less), else get their own
    joined = f"{head}  {' · '.join(extra)}" if extra else head
    fits = len(joined) <= room
    lines = [_Line(_fit(joined if fits else head, room), bold=True, bar=strong, mark=verdict,
                   mark_colour=VERDICT_COLOURS.get(verdict, "#212121"))]
    lines.append(_Line(_fit(f"[{n.vendor_id}:{n.device_id}] {short_name(n)}", width), bar=strong))
    if extra and not fits:
        lines.append(_Line(_fit(" · ".join(extra), int(width * SIZE / SMALL)), "#37474f", SMALL, bar=strong))
    if why and n.assign.can == BLOCKED and n.assign.why:
        lines += _wrapped("blocked: " + n.assign.why, width, strong)
    return lines


def _wrapped(text: str, width: int, bar: str, most: int = 2) -> list[_Line]:
    """*text* in small red lines of the box's width, at most *most* of them."""
    chars = int(width * SIZE / SMALL)
    words, lines, cur = text.split(" "), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > chars:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    if len(lines) > most:
        lines = lines[:most - 1] + [" ".join(lines[most - 1:])]
    return [_Line(_fit(x, chars), CAN_COLOURS[BLOCKED][0], SMALL, bar=bar) for x in lines]


def short_name(n: Node) -> str:
    """The vendor as people say it (Intel, not Intel Corporation; AMD/ATI from its brackets) and
    the device: a box has no room for pci.ids' full vendor names."""
    vendor = n.vendor_name or ""
    if "[" in vendor and vendor.endswith("]"):
        vendor = vendor[vendor.rindex("[") + 1:-1]
    else:
        vendor = vendor.split(",")[0]
        for tail in (" Corporation", " Corp.", " Inc.", " Co., Ltd", " Co Ltd", " Technologies", " Technology",
                     " Electronics", " Limited", " Ltd."):
            vendor = vendor.removesuffix(tail)
    return " ".join(x for x in (vendor, n.device_name or "") if x) or n.class_name or n.kind


def _box_lines(box: Box, width: int, numa: bool) -> list[_Line]:
    # a PF's VFs drawn below it say why the PF is blocked; its header says it in brief
    why = box.vfs is None
    lines = _run_lines(box, width, numa) if box.more else [
        ln for n in box.members for ln in _member_lines(n, width, numa, why)]
    if box.vfs is not None:
        v = box.vfs
        lines.append(_Line(_fit(_header(v), width + 2), "#ffffff", bold=True, band=CAN_COLOURS[v.can][0]))
        lines += _run_lines(v, width, numa) if v.more else [
            ln for n in v.members for ln in _member_lines(n, width, numa)]
    return lines


def _run_lines(box: Box, width: int, numa: bool = True) -> list[_Line]:
    every = [box] + box.more
    ends = [b.endpoints[0] for b in every]
    strong = CAN_COLOURS[ends[0].assign.can][0]
    out: list[_Line] = []
    models: dict[str, int] = {}
    for e in ends:
        model = f"[{e.vendor_id}:{e.device_id}] {short_name(e)}"
        models[model] = models.get(model, 0) + 1
    kind = "VFs" if ends[0].physfn is not None else "functions"
    drivers = _counts(e.driver or "none" for e in ends)
    one = "," not in drivers
    first = f"{len(ends)} {kind} {_short(ends[0].address)} … {_short(ends[-1].address)}"
    out.append(_Line(_fit(first + (f"  {drivers.split(' ', 1)[1]}" if one else f"  {drivers}"), width),
                     bold=True, bar=strong))
    for model, count in sorted(models.items(), key=lambda kv: -kv[1]):
        out.append(_Line(_fit(f"{count} × {model}", width), bar=strong))
    hidden = sum(1 for e in ends if e.state in (VFIO, STUB, HELD))
    notes = []
    if hidden:
        notes.append(f"{hidden} hidden")
    held = sum(1 for e in ends if e.state == HELD)
    if held:
        notes.append(f"{held} in a VM")
    names = [x for e in ends for x in e.facts.os_names]
    if names:
        notes.append(f"{names[0]} … {names[-1]}" if len(names) > 1 else names[0])
    common = [w for w in facts_words(ends[0], numa) if w not in ends[0].facts.os_names and
              all(w in facts_words(e, numa) for e in ends)]
    notes += common
    if notes:
        out.append(_Line(_fit(" · ".join(notes), width), "#37474f", SMALL, bar=strong))
    verdicts = [e.verdict for e in ends if e.verdict]
    if verdicts:
        worst = next(v for v in ("blocked", "caveats", "ready") if v in verdicts)
        out[0].mark, out[0].mark_colour = _counts(verdicts), VERDICT_COLOURS[worst]
        out[0].text = _fit(out[0].text, width - len(out[0].mark) - 1)
    if ends[0].assign.can == BLOCKED and ends[0].assign.why:
        out += _wrapped("blocked: " + ends[0].assign.why, width, strong)
    return out


def _counts(items) -> str:
    c: dict[str, int] = {}
    for x in items:
        c[x] = c.get(x, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def _fit(text: str, chars: int) -> str:
    return clean(text, max(chars, 4))


def _header(box: Box) -> str:
    every = [box] + box.more
    groups = [b.members[0].group for b in every if b.members[0].group is not None]
    if not groups:
        where = "no IOMMU group"
    elif len(groups) == 1:
        where = f"group {groups[0]}"
    elif groups == list(range(groups[0], groups[0] + len(groups))):
        where = f"groups {groups[0]}–{groups[-1]}"
    else:
        where = f"{len(groups)} groups"
    can = box.can
    words = CAN_WORDS[can]
    ends = box.endpoints
    if can == BLOCKED and ends[0].assign.brief:
        words += f": {ends[0].assign.brief}"
    if box.more:
        words = "each " + words
        if ends and ends[0].physfn is not None:
            where = f"{1 + len(box.more)} VFs · {where}"
    elif can == WITH_GROUP:
        words += f" ({len(box.endpoints)} endpoints)"
    return f"{where} · {words}"


def _via(box: Box, one_root: bool) -> str:
    """Where the box hangs: its root bus (when there are several) and the bridges above it;
    "" for a box on the only root bus."""
    hops = [h for h in box.path if h.is_bridge or h.is_port or h.address == box.members[0].physfn]
    if box.more:
        # the run's own ports differ: its place is the path above them
        hops = hops[:-1] if hops and hops[-1].is_bridge else hops
    root = box.root[3:] if box.root.startswith("pci") else box.root
    parts = ([] if one_root else [f"[{root}]"]) + [_hop(h) for h in hops]
    return "via " + " › ".join(parts) if parts else ""


# ------------------------------------------------------------------ layout and SVG
@dataclass
class _Placed:
    box: Box
    lines: list[_Line]
    via: str
    x: float = 0.0
    y: float = 0.0

    @property
    def via_in_header(self) -> bool:
        """The "via" line fits at the right of the header (a line less)."""
        return len(_header(self.box)) * CHAR + len(self.via) * CHAR * SMALL / SIZE + 3 * PAD <= BOX_WIDTH

    @property
    def height(self) -> float:
        via = self.via and not self.via_in_header
        return 22 + (LINE - 2 if via else 2) + sum(LINE if ln.size == SIZE else LINE - 2 for ln in self.lines) + PAD


def render_svg(view: TopologyView, *, title: str = "", expand: bool = False) -> str:
    """The picture (see the module docstring)."""
    chars = int((BOX_WIDTH - 2 * PAD - 10) / CHAR)
    placed = []
    one_root = len(view.roots) <= 1
    # one NUMA node for every function says nothing per function: the title says it once
    nodes = {n.facts.numa_node for n in view.nodes.values()}
    numa = len(nodes - {None}) > 1
    for b in boxes(view, expand=expand):
        placed.append(_Placed(b, _box_lines(b, chars, numa), _via(b, one_root)))
    if not numa and nodes - {None}:
        title = (f"{title} · " if title else "") + f"all on NUMA node {next(iter(nodes - {None}))}"
    by_why: dict[str, set[str]] = {}
    for node in view.nodes.values():
        for k, why in node.facts.not_captured:
            by_why.setdefault(why, set()).add({"link": "PCIe link", "os_names": "DRM cards"}.get(k, k))
    missing = [f"{', '.join(sorted(ks))} ({why})" for why, ks in sorted(by_why.items())]
    legend_h = (4 if missing else 3) * LINE + 18
    total = sum(p.height + GAP for p in placed) or 1
    cols = max(1, min(len(placed) or 1, round(math.sqrt(ASPECT * total / (BOX_WIDTH + GAP)))))
    target = total / cols
    col, y = 0, 0.0
    heights = [0.0]
    for p in placed:
        if y and y + p.height > target * 1.04 and col < cols - 1:
            col, y = col + 1, 0.0
            heights.append(0.0)
        p.x, p.y = MARGIN + col * (BOX_WIDTH + GAP), MARGIN + legend_h + y
        y += p.height + GAP
        heights[-1] = y
    width = max(MARGIN * 2 + len(heights) * (BOX_WIDTH + GAP) - GAP, 760)
    height = MARGIN * 2 + legend_h + max(heights)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" font-size="{SIZE}">',
           f'<rect width="100%" height="100%" fill="#ffffff"/>']
    out += _legend(view, title, width)
    if missing:
        out.append(_text(MARGIN, MARGIN + 12 + 3 * LINE + 10, clean("not captured in this snapshot, so not shown: "
                                                                    + "; ".join(missing), 200), colour="#c62828"))
    for p in placed:
        out += _box_svg(p, chars)
    if not placed:
        out.append(_text(MARGIN, MARGIN + legend_h + LINE, "No PCI function to assign on this host."))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _legend(view: TopologyView, title: str, width: float) -> list[str]:
    n = len(view.nodes)
    g = len(view.groups)
    head = f"What can I assign?  {title + ' · ' if title else ''}{n} PCI functions, {g} IOMMU groups"
    if not view.iommu_enabled:
        head += " · the IOMMU is off: nothing can be assigned"
    out = [_text(MARGIN, MARGIN + 12, clean(head, 160), size=14, bold=True)]
    x: float = MARGIN
    y: float = MARGIN + 12 + LINE + 4
    for can in (ALONE, WITH_GROUP, BLOCKED, STAYS):
        strong, light = CAN_COLOURS[can]
        label = CAN_WORDS[can] + (" (why in red)" if can == BLOCKED else "")
        out.append(f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="{light}" stroke="{strong}" '
                   f'stroke-width="2"/>')
        out.append(_text(x + 20, y, label))
        x += 20 + len(label) * CHAR + 22
    y += LINE + 2
    x = MARGIN
    out.append(f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="#ffffff" stroke="{NO_ISOLATION_COLOUR}" '
               f'stroke-width="2" stroke-dasharray="3,2"/>')
    label = "port or bridge that does not isolate (why its group is shared)"
    out.append(_text(x + 20, y, label))
    x += 20 + len(label) * CHAR + 22
    tail = "hidden = on vfio-pci now · VM = held by a VM · assess verdict at the right: "
    out.append(_text(x, y, tail))
    x += len(tail) * CHAR
    for v in ("ready", "caveats", "blocked"):
        out.append(_text(x, y, v, colour=VERDICT_COLOURS[v], bold=True))
        x += (len(v) + 1) * CHAR
    return out


def _box_svg(p: _Placed, chars: int) -> list[str]:
    box = p.box
    strong, light = CAN_COLOURS[box.can]
    x, y, h = p.x, p.y, p.height
    out = [f'<g><rect x="{x:.1f}" y="{y:.1f}" width="{BOX_WIDTH}" height="{h:.1f}" rx="6" fill="{light}" '
           f'stroke="{strong}" stroke-width="1.5"/>',
           f'<path d="M{x:.1f},{y + 22:.1f} v-16 a6,6 0 0 1 6,-6 h{BOX_WIDTH - 12} a6,6 0 0 1 6,6 v16 z" '
           f'fill="{strong}"/>',
           _text(x + PAD, y + 15, _fit(_header(box), chars + 2), colour="#ffffff", bold=True)]
    if p.via and p.via_in_header:
        out.append(_text(x + BOX_WIDTH - PAD, y + 15, p.via, colour="#ffffff", size=SMALL, anchor="end"))
    cy = y + 22 + (LINE - 2 if p.via and not p.via_in_header else 2)
    if p.via and not p.via_in_header:
        out.append(_text(x + PAD, cy - 1, _fit(p.via, int(chars * SIZE / SMALL)), colour="#546e7a", size=SMALL))
    for ln in p.lines:
        step = LINE if ln.size == SIZE else LINE - 2
        cy += step
        if ln.band:
            out.append(f'<rect x="{x + 3:.1f}" y="{cy - step + 2:.1f}" width="{BOX_WIDTH - 6}" height="{step:.1f}" '
                       f'rx="3" fill="{ln.band}"/>')
        if ln.bar:
            dash = ' stroke-dasharray="3,2"' if ln.alarm else ""
            out.append(f'<rect x="{x + PAD - 2:.1f}" y="{cy - step + 3:.1f}" width="4" height="{step:.1f}" '
                       f'fill="{ln.bar}"{dash}/>')
        out.append(_text(x + PAD + 8, cy, ln.text, colour=ln.colour, size=ln.size, bold=ln.bold))
        if ln.mark:
            out.append(_text(x + BOX_WIDTH - PAD, cy, ln.mark, colour=ln.mark_colour, bold=True, anchor="end"))
        if ln.alarm:
            out.append(f'<rect x="{x + PAD + 4:.1f}" y="{cy - step + 3:.1f}" width="{BOX_WIDTH - 2 * PAD - 4}" '
                       f'height="{step:.1f}" fill="none" stroke="{NO_ISOLATION_COLOUR}" stroke-width="1.2" rx="3"/>')
    out.append("</g>")
    return out


def _text(x: float, y: float, text: str, *, colour: str = "#212121", size: int = SIZE, bold: bool = False,
          anchor: str = "start") -> str:
    weight = ' font-weight="bold"' if bold else ""
    end = f' text-anchor="{anchor}"' if anchor != "start" else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" fill="{colour}" font-size="{size}"{weight}{end} '
            f'xml:space="preserve">{_xml(text)}</text>')


def _xml(text: str) -> str:
    return (clean(text, 400).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
