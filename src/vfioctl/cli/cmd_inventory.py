"""vfioctl list | groups | show"""

from __future__ import annotations

import re

from vfioctl.base.text import is_ascii_int
from vfioctl.cli import DEV_HELP, Context, common_options
from vfioctl.report import inventory

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from vfioctl.pci.address import PciAddress

LIST_EPILOG = """\
examples:
  vfioctl list                      every PCI function
  vfioctl list --class 02           network controllers (class prefix, hex)
  vfioctl list --class nvme         NVMe controllers (the class names of selectors)
  vfioctl list --id 8086:*          every Intel function
  vfioctl list --driver vfio-pci    what is hidden now (--driver none: unbound)
  vfioctl list --json               schema vfioctl.list/1 (docs/json-schema.md)
"""


GROUPS_EPILOG = """\
Roles: endpoint, bridge (PCI interconnect, ignored for viability), companion
(another function of an endpoint's slot, e.g. a GPU's audio function).
A group is viable when every non-bridge member is on vfio-*/pci-stub or unbound.

--why says, for a group, where on each member's path to the root complex
isolation is lost (a port without ACS, ACS present but disabled, a
multifunction device without ACS, a PCIe-to-PCI bridge, a DMA-alias or ACS
quirk), which other slots have an isolated path, and what you can do.
Reading a port's ACS capability needs root (non-root reads of config space
stop at 64 bytes).

--predict replays the kernel's rules (drivers/iommu/iommu.c pci_device_group)
from config space and compares the result with the kernel's groups: a
difference means a quirk on this platform that the rules do not show.

examples:
  vfioctl groups                       every group, its members and viability
  vfioctl groups 14                    only group 14
  vfioctl groups --why 14              why group 14 has these members
  vfioctl groups --why 03:00.0         the group of this GPU, explained
  vfioctl groups --why                 every group with more than one member
  vfioctl groups --predict             predicted groups, compared with the kernel's
  vfioctl groups --json                schema vfioctl.groups/1 (--why: vfioctl.groups-why/1)
"""


SHOW_EPILOG = """\
Everything vfioctl knows about one function: IDs and names (pci.ids), class,
driver and driver_override, IOMMU group with each member's role and whether it
is viable, reset methods, NUMA node, boot VGA, SR-IOV (VF counts and VFs), the
network interfaces and block devices on it, why the host uses it (an address
or route, a mount, swap, md/LVM, the console), the modules that could drive
it, the VMs that hold its group, and whether vfioctl hid it.

examples:
  vfioctl show 0000:03:00.0
  vfioctl show eth1                     the function behind a network interface
  vfioctl show 03:00.0 --json           schema vfioctl.show/1
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    if name == "list":
        p.epilog = LIST_EPILOG
        p.add_argument("--class", dest="class_prefix", metavar="CLASS",
                       help="class code prefix (02, 0300, 010802) or name (nvme, ethernet, gpu, vga, audio, usb...)")
        p.add_argument("--id", dest="vendor_device", metavar="VVVV:DDDD", help="vendor:device, either may be *")
        p.add_argument("--driver", metavar="NAME", help="current driver (none = unbound)")
        p.set_defaults(func=run_list)
    elif name == "groups":
        p.epilog = GROUPS_EPILOG
        p.add_argument("group", nargs="*", metavar="N", help="only these groups")
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--why", nargs="?", const="", default=None, metavar="GROUP|DEV",
                          help="why a group has its members, and what you can do (every shared group when "
                               "none is named)")
        mode.add_argument("--predict", action="store_true",
                          help="the groups the kernel's rules give from config space, compared with the kernel's")
        p.set_defaults(func=run_groups)
    else:
        p.epilog = SHOW_EPILOG
        p.add_argument("device", metavar="DEV", help=DEV_HELP)
        p.set_defaults(func=run_show)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = inventory.list_devices(
        ctx.host, class_prefix=args.class_prefix, vendor_device=args.vendor_device, driver=args.driver,
        reset_methods=ctx.json,
    )
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.list/1", "devices": rows})
        return 0
    table = [("ADDRESS", "CLASS", "ID", "DRIVER", "GROUP", "DESCRIPTION")]
    for r in rows:
        desc = " ".join(x for x in (r["vendor_name"] or "", r["device_name"] or "") if x) or "?"
        if r["physfn"]:
            desc += f" (VF of {r['physfn']})"
        table.append((
            r["address"],
            f"{(r['class_name'] or '?')} [{r['class'][:4]}]",
            f"{r['vendor_id']}:{r['device_id']}",
            r["driver"] or "-",
            "-" if r["iommu_group"] is None else str(r["iommu_group"]),
            desc,
        ))
    ctx.print(format_table(table))
    if not rows:
        ctx.print("(no PCI devices matched)")
    return 0


def run_groups(args: argparse.Namespace, ctx: Context) -> int:
    if getattr(args, "why", None) is not None:
        return run_why(args, ctx)
    if getattr(args, "predict", False):
        return run_predict(args, ctx)
    data = inventory.list_groups(ctx.host, args.group or None)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.groups/1", "iommu_enabled": data["iommu_enabled"], "groups": data["groups"]})
        return 0
    if not data["iommu_enabled"]:
        ctx.print("No IOMMU groups: the IOMMU is off on this host. `vfioctl check` says why and how to enable it.")
        return 0
    ctx.print(render_group_tree(data["groups"]), style=group_style if ctx.colour() else None)
    return 0


def run_why(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.iommu.explain import explain_many
    from vfioctl.pci.topology import read_topology
    from vfioctl.report.isolation import render_why

    topo = read_topology(ctx.host)
    targets = _why_targets(ctx, topo, [args.why] if args.why else list(args.group))
    whys = explain_many(topo, targets)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.groups-why/1", "iommu_enabled": topo.iommu_enabled,
                       "groups": [w.to_dict() for w in whys]})
        return 0
    if not whys:
        if not topo.iommu_enabled:
            ctx.print("No IOMMU groups: the IOMMU is off on this host. Name a device (`vfioctl groups --why 03:00.0`) "
                      "to see the group the kernel's rules would give it.")
        else:
            ctx.print("Every IOMMU group on this host has a single function: nothing shares a group.")
        return 0
    ctx.print("\n\n".join(render_why(w) for w in whys))
    return 0


def _why_targets(ctx: Context, topo, specs: list[str]) -> list:
    """GROUP (a number or group:N) or DEV, each once; none named: every group with more than one member."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.selector import resolve

    if not specs:
        return [g for g, ms in topo.kernel_groups().items() if len(ms) > 1]
    out: list = []
    seen: set = set()
    for spec in specs:
        s = spec.strip()
        items: list[int | PciAddress]
        n = _group_number(s) if is_ascii_int(s) or s.startswith("group:") else None
        if n is not None:
            items = [n]
        else:
            items = []
            for dev in resolve(ctx.host, [s]):
                g = topo.functions[dev.address].iommu_group if dev.address in topo.functions else None
                items.append(g if g is not None else dev.address)
        for it in items:
            if it not in seen:
                seen.add(it)
                out.append(it)
    return out


def _group_number(text: str) -> int:
    """``N`` or ``group:N`` (ASCII digits: ``str.isdigit`` also takes "²", which int() refuses)."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.selector import classify

    _, n = classify(text if text.startswith("group:") else f"group:{text}")  # or InvalidInput
    return int(n)  # type: ignore[call-overload]


def run_predict(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.iommu.predict import compare, predict
    from vfioctl.pci.ids import PciIds
    from vfioctl.pci.topology import read_topology
    from vfioctl.report.isolation import group_records

    topo = read_topology(ctx.host)
    p = predict(topo)
    ids = PciIds.load(ctx.host)
    only = {_group_number(g.strip()) for g in args.group} if args.group else None
    groups = {k: list(m) for k, m in p.groups.items() if only is None or k in only}
    diffs = compare(p.groups, topo.kernel_groups()) if p.complete and topo.iommu_enabled else []
    if p.complete and not topo.iommu_enabled:
        verdict = "the IOMMU is off: these are the groups the kernel would form with it on"
    elif p.complete:
        verdict = "matches the kernel" if not diffs else (
            f"{len(diffs)} difference(s) from the kernel: a difference means an unknown quirk (ACS or DMA alias) "
            "on this platform")
    else:
        verdict = f"cannot predict: {p.why_incomplete()}"
    if ctx.json:
        ctx.emit_json({
            "schema": "vfioctl.groups/1", "iommu_enabled": topo.iommu_enabled,
            "groups": group_records(topo, groups, ids),
            "prediction": {
                "source": "config space replayed through drivers/iommu/iommu.c pci_device_group",
                "kernel": topo.kernel or None, "complete": p.complete, "verdict": verdict,
                "undecided": [{"address": str(a), "why": w} for a, w in p.undecided],
                "differences": [d.to_dict() for d in diffs],
                "caveats": list(p.caveats),
            },
        })
        return 0
    if p.complete:
        ctx.print(render_group_tree(group_records(topo, groups, ids), "Predicted IOMMU groups (from config space)"),
                  style=group_style if ctx.colour() else None)
    ctx.print(f"prediction: {verdict}")
    for d in diffs:
        ctx.print(f"  - {d.text}")
    for c in p.caveats:
        ctx.print(f"  note: {c}")
    return 0


#: the role column: "endpoint", "bridge", "companion" and a space
ROLE_WIDTH = 12


def render_group_tree(gs: list[dict], title: str = "IOMMU groups") -> str:
    # Plain text, not rich's Tree: on a 10,000-function host rich spent ~5.8 s of CPU laying
    # out the tree (the data took 1.4 s), and its emoji codes garbled addresses on buses
    # ab, cd, ... ("0000:ab:00.0" printed with an emoji).  Colour only on a terminal, added
    # by the printer to lines already escaped (group_style).
    out = [title]
    for gi, g in enumerate(gs):
        last_g = gi == len(gs) - 1
        state = "viable" if g["viable"] else "not viable (host drivers: " + ", ".join(g["blockers"]) + ")"
        out.append(f"{'└── ' if last_g else '├── '}group {g['group']}  {state}")
        pad = "    " if last_g else "│   "
        ms = g["members"]
        for mi, m in enumerate(ms):
            name = " ".join(x for x in (m.get("vendor_name") or "", m.get("device_name") or "") if x) \
                or m.get("class_name") or ""
            # the role column holds the role alone (the widest, "companion", fits); whose companion
            # a function is goes at the end of its line
            of = f"  (companion of {m['companion_of']})" if m["companion_of"] else ""
            out.append(f"{pad}{'└── ' if mi == len(ms) - 1 else '├── '}{m['address']}  [{m['vendor_id']}:{m['device_id']}]  "
                       f"{m['role']:<{ROLE_WIDTH}} driver={m['driver'] or '-'}  {name}{of}".rstrip())
    return "\n".join(out)


_GROUP_LINE = re.compile(r"([├└]── )(group [0-9]+)(  )(viable$|not viable)")


def group_style(line: str) -> str:
    """A group's heading in colour: its number bold, viable green, not viable yellow."""
    m = _GROUP_LINE.match(line)
    if m is None:
        return line
    colour = "\033[32m" if m[4] == "viable" else "\033[33m"
    return f"{m[1]}\033[1m{m[2]}\033[0m{m[3]}{colour}{m[4]}\033[0m{line[m.end():]}"


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    info = inventory.show_device(ctx.host, args.device)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.show/1", **info})
        return 0
    # reset_methods is the list form of reset_method (both are in the JSON for its two schemas)
    # host_use: the records of in_use (its lines), for --json
    shown = {k: v for k, v in info.items() if k not in ("reset_method", "host_use")}
    width = max(len(k) for k in shown)
    for k, v in shown.items():
        ctx.print(f"{k:<{width}}  {show_value(v)}")
    return 0


def show_value(v: object) -> str:
    """A value of `show` as words: yes/no, "-" for none, lists joined, an (address, role) pair as
    "address (role)", a record as "key value; key value" (never a Python repr)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        if len(v) == 2 and all(isinstance(x, str) for x in v) and not isinstance(v, list):
            return f"{v[0]} ({v[1]})"
        return ", ".join(show_value(tuple(x) if isinstance(x, list) and len(x) == 2 else x) for x in v) or "-"
    if isinstance(v, dict):
        if {"pid", "command"} <= set(v):
            vm = f" (VM {v['vm_name']})" if v.get("vm_name") else ""
            return f"PID {v['pid']} {v['command']}{vm}"
        return "; ".join(f"{k.replace('_', ' ')} {show_value(x)}" for k, x in v.items())
    return str(v)


def format_table(rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        parts = [str(c).ljust(w) for c, w in zip(r, widths)]
        parts.append(str(r[-1]))
        lines.append("  ".join(parts))
    return "\n".join(lines)


#: what the parser gives for `list` and `groups` when none of their options is named (the
#: plain command lines vfioctl.cli.plain_arguments parses without building the parser)
DEFAULTS = {
    "list": {"class_prefix": None, "vendor_device": None, "driver": None, "func": run_list},
    "groups": {"group": [], "why": None, "predict": False, "func": run_groups},
}
#: the flags those command lines may carry, each with no value: flag -> (its dest, the value it sets)
FLAGS = {"groups": {"--why": ("why", "")}}
