"""vfioctl topology"""

from __future__ import annotations

import argparse

from vfioctl.cli import DEV_HELP, Context, common_options

EPILOG = """\
The PCI tree as `lspci -tv` draws it, each function annotated with its IOMMU
group, its driver, and for bridges and ports their ACS state (the controls
implemented and enabled, or what is missing). VFs are shown under their PF.
A port that does not isolate the devices below it is why they share a group:
`vfioctl groups --why DEV` says so in words.

Reading ACS needs root: non-root reads of config space stop at 64 bytes, and
the tree then says "ACS unknown".

formats:
  text   the tree (default)
  json   schema vfioctl.topology/1: every function once, with group, parent, children
  dot    graphviz source: groups as clusters, fill colour per state (yellow host
         driver, green vfio, blue held by a VM, white unbound), red outline on
         ports that do not isolate
  svg    the dot output rendered by graphviz (`apt-get install graphviz`)

examples:
  vfioctl topology                         the whole tree
  vfioctl topology 03:00.0                 only what leads to 03:00.0, its group and what is below it
  vfioctl topology --format svg > pci.svg  a picture of the groups
  vfioctl topology --format dot | dot -Tpng -o pci.png
  vfioctl topology --root host.tar.gz      a host captured with `vfioctl snapshot`
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    p.epilog = EPILOG
    p.add_argument("device", nargs="?", metavar="DEV", help=DEV_HELP)
    p.add_argument("--format", choices=("text", "json", "dot", "svg"), default=None,
                   help="text (default), json (same as --json), dot or svg")
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
    if args.device:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.ops.selector import resolve

        focus = [d.address for d in resolve(host, [args.device])]
    holders = []
    if topo.iommu_enabled:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.usage.holders import group_holders

        try:
            holders = group_holders(host)
        except VfioctlError:
            holders = []  # who holds a group is a nicety here, not worth failing the picture for
    view = T.build(topo, ids=PciIds.load(host), holders=holders, focus=focus)
    if fmt == "json":
        ctx.emit_json(T.render_json(view))
    elif fmt == "dot":
        ctx.print(T.render_dot(view).rstrip("\n"))
    elif fmt == "svg":
        ctx.print(T.render_svg(T.render_dot(view), run_program).rstrip("\n"))
    else:
        if not view.roots and not view.nodes:
            ctx.print("No PCI functions on this host.")
        else:
            ctx.print(T.render_text(view))
    return 0


def run_program(argv: list[str], data: bytes) -> tuple[int, bytes, str]:
    """Run a program on this machine (graphviz renders here, whatever host --root names)."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.host.process import run_program as run

    # argv: ["dot", "-Tsvg"] (report/topology.py render_svg)
    return run(argv, 120, input=data, text=False)
