"""vfioctl list | groups | show"""

from __future__ import annotations

import argparse

from vfioctl import inventory
from vfioctl.cli import Context, common_options

LIST_EPILOG = """\
examples:
  vfioctl list                      every PCI function
  vfioctl list --class 02           network controllers (class prefix, hex)
  vfioctl list --id 8086:*          every Intel function
  vfioctl list --driver vfio-pci    what is hidden now (--driver none: unbound)
  vfioctl list --json               schema vfioctl.list/1 (docs/json-schema.md)
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    if name == "list":
        p.epilog = LIST_EPILOG
        p.add_argument("--class", dest="class_prefix", metavar="HEX", help="class code prefix, e.g. 02 or 0300")
        p.add_argument("--id", dest="vendor_device", metavar="VVVV:DDDD", help="vendor:device, either may be *")
        p.add_argument("--driver", metavar="NAME", help="current driver (none = unbound)")
        p.set_defaults(func=run_list)
    elif name == "groups":
        p.epilog = "Roles: endpoint, bridge (PCI interconnect, ignored for viability), companion\n(another function of an endpoint's slot, e.g. a GPU's audio function).\nA group is viable when every non-bridge member is on vfio-*/pci-stub or unbound."
        p.add_argument("group", nargs="*", metavar="N", help="only these groups")
        p.set_defaults(func=run_groups)
    else:
        p.add_argument("device", metavar="DEV", help="PCI address, vendor:device, interface or group:N")
        p.set_defaults(func=run_show)


def run_list(args: argparse.Namespace, ctx: Context) -> int:
    rows = inventory.list_devices(
        ctx.host, class_prefix=args.class_prefix, vendor_device=args.vendor_device, driver=args.driver
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
    data = inventory.list_groups(ctx.host, args.group or None)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.groups/1", "iommu_enabled": data["iommu_enabled"], "groups": data["groups"]})
        return 0
    if not data["iommu_enabled"]:
        ctx.print("No IOMMU groups: the IOMMU is off on this host. `vfioctl check` says why and how to enable it.")
        return 0
    # Plain text, not rich's Tree: on a 10,000-function host rich spent ~5.8 s of CPU laying
    # out the tree (the data took 1.4 s), and its emoji codes garbled addresses on buses
    # ab, cd, ... ("0000:ab:00.0" printed with an emoji).  Colour only on a terminal.
    import sys

    tty = sys.stdout.isatty()
    green, yellow, bold, off = ("\033[32m", "\033[33m", "\033[1m", "\033[0m") if tty else ("", "", "", "")
    out = ["IOMMU groups"]
    gs = data["groups"]
    for gi, g in enumerate(gs):
        last_g = gi == len(gs) - 1
        state = f"{green}viable{off}" if g["viable"] else (
            f"{yellow}not viable{off} (host drivers: " + ", ".join(g["blockers"]) + ")")
        out.append(f"{'└── ' if last_g else '├── '}{bold}group {g['group']}{off}  {state}")
        pad = "    " if last_g else "│   "
        ms = g["members"]
        for mi, m in enumerate(ms):
            role = m["role"] + (f" of {m['companion_of']}" if m["companion_of"] else "")
            name = " ".join(x for x in (m.get("vendor_name") or "", m.get("device_name") or "") if x)
            out.append(f"{pad}{'└── ' if mi == len(ms) - 1 else '├── '}{m['address']}  [{m['vendor_id']}:{m['device_id']}]  "
                       f"{role:<12} driver={m['driver'] or '-'}  {name}")
    ctx.print("\n".join(out))
    return 0


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    info = inventory.show_device(ctx.host, args.device)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.show/1", **info})
        return 0
    width = max(len(k) for k in info)
    for k, v in info.items():
        if isinstance(v, list):
            v = ", ".join(str(x) for x in v) if v else "-"
        elif isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        elif v is None:
            v = "-"
        ctx.print(f"{k:<{width}}  {v}")
    return 0


def format_table(rows: list[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for r in rows:
        parts = [str(c).ljust(w) for c, w in zip(r, widths)]
        parts.append(str(r[-1]))
        lines.append("  ".join(parts))
    return "\n".join(lines)
