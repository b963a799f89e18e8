"""vfioctl topology"""

from __future__ import annotations

from vfioctl.cli import DEV_HELP, Context, common_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


EPILOG = """\
The PCI tree as `lspci -tv` draws it, each function annotated with its IOMMU
group, its driver, what you can do with it (assignable alone, only with its
group, blocked and why), its OS names (eth3, nvme0n1, card0), boot VGA, NUMA
node and PCIe link, and for bridges and ports their ACS state (the controls
implemented and enabled, or what is missing). VFs are shown under their PF. A
port that does not isolate the devices below it is why they share a group:
`vfioctl groups --why DEV` says so in words.

The picture (--format svg) answers "what can I assign?": one box per IOMMU
group in the colour of what you can do with it (green alone, orange only with
its group, red blocked, with the reason), each member with its driver, OS
names, marks (hidden on vfio-pci, held by a VM, boot VGA), assess verdict,
NUMA node and link; ports that do not isolate outlined red; bridges alone in
their group folded into the "via" line of the boxes below them; boxes flowed
into columns to fit a screen, and at many boxes runs of alike ones (the VFs
of one PF, the drives behind one switch) merged into one (--expand: never).
It needs no graphviz.  The picture and --format dot carry `assess` verdicts
(--assess adds them to text and json; they cost a read of every device).

Reading ACS needs root: non-root reads of config space stop at 64 bytes, and
the tree then says "ACS unknown".

formats:
  text   the tree (default)
  json   schema vfioctl.topology/1: every function once, with group, parent,
         children, what you can do with it and its facts (docs/json-schema.md)
  dot    graphviz source: groups as clusters, colours as in the picture
  svg    the picture

examples:
  vfioctl topology                         the whole tree
  vfioctl topology 03:00.0                 only what leads to 03:00.0, its group and what is below it
  vfioctl topology --group 15              one IOMMU group and the path to it
  vfioctl topology --format svg > pci.svg  the picture (rsvg-convert pci.svg -o pci.png for a PNG)
  vfioctl topology --format dot | dot -Tpng -o pci.png
  vfioctl topology --root host.tar.gz      a host captured with `vfioctl snapshot`
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    # lazy: argparse only when the parser is built (a plain `vfioctl topology` builds none)
    import argparse

    common_options(p)
    p.epilog = EPILOG
    p.add_argument("device", nargs="?", metavar="DEV", help=DEV_HELP)
    p.add_argument("--group", metavar="N", help="only IOMMU group N, the path to it and what is below it")
    p.add_argument("--format", choices=("text", "json", "dot", "svg"), default=None,
                   help="text (default), json (same as --json), dot or svg")
    p.add_argument("--assess", action=argparse.BooleanOptionalAction, default=None,
                   help="judge each device as `vfioctl assess` does (default: for svg and dot)")
    p.add_argument("--expand", action="store_true",
                   help="svg: one box per group always (no runs of alike ones merged)")
    p.set_defaults(func=run_topology)


def run_topology(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.base.errors import VfioctlError
    from vfioctl.pci.ids import PciIds
    from vfioctl.pci.topology import read_topology
    from vfioctl.report import topology as T

    fmt = args.format or ("json" if ctx.json else "text")
    host = ctx.host
    topo = read_topology(host)
    focus = None
    specs = ([args.device] if args.device else []) + ([f"group:{args.group}"] if args.group else [])
    if specs:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.ops.selector import resolve

        focus = [d.address for d in resolve(host, specs)]
    holders = []
    if topo.iommu_enabled:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.usage.holders import group_holders

        try:
            holders = group_holders(host)
        except VfioctlError:
            holders = []  # who holds a group is a nicety here, not worth failing the picture for
    facts = T.read_facts(host, topo)
    verdicts = None
    if args.assess if args.assess is not None else fmt in ("svg", "dot"):
        verdicts = assess_all(host, topo, focus)
    view = T.build(topo, ids=PciIds.load(host), holders=holders, focus=focus, facts=facts, verdicts=verdicts)
    if fmt == "json":
        ctx.emit_json(T.render_json(view))
    elif fmt == "dot":
        ctx.print(T.render_dot(view).rstrip("\n"))
    elif fmt == "svg":
        # lazy: the picture's layout only for --format svg
        from vfioctl.report.picture import render_svg

        ctx.print(render_svg(view, title=_title(host), expand=args.expand).rstrip("\n"))
    else:
        if not view.roots and not view.nodes:
            ctx.print("No PCI functions on this host.")
        else:
            ctx.print(T.render_text(view))
    return 0


def assess_all(host, topo, focus) -> dict:
    """address -> assess verdict of every endpoint (of *focus* and its groups when given)."""
    # lazy: assess reads much more than the tree; only when verdicts are asked for
    from vfioctl.report.devassess import assess_devices

    if focus is None:
        specs: list[str] = []
    else:
        groups = {topo.functions[a].iommu_group for a in focus if a in topo.functions}
        specs = sorted({str(a) for a, f in topo.functions.items()
                        if (a in focus or (f.iommu_group is not None and f.iommu_group in groups)) and not f.is_bridge})
        if not specs:
            return {}
    return {r.address: r.verdict for r in assess_devices(host, specs)}


def _title(host) -> str:
    """The host's name: the live machine's, or the one a snapshot recorded."""
    meta = host.meta() if host.captured else {}
    name = meta.get("hostname") if isinstance(meta.get("hostname"), str) else None
    if name is None and host.is_live:
        # lazy: socket only to name the live host in the picture
        import socket

        name = socket.gethostname()
    return name or ""


#: what the parser gives for `topology` when none of its options is named (the plain command
#: lines vfioctl.cli.plain_arguments parses without building the parser)
DEFAULTS = {
    "topology": {"device": None, "group": None, "format": None, "assess": None, "expand": False,
                 "func": run_topology},
}
