"""vfioctl sriov show | set"""

from __future__ import annotations

import argparse

from vfioctl.base.text import ascii_int
from vfioctl.cli import Context, common_options, subcommand

EPILOG = """\
SR-IOV lets one physical function (PF) create virtual functions (VFs), each a
PCI function of its own that can go to a VM. `show` lists every PF with its VF
count, autoprobe and VFs; `set` changes a PF's VF count through the same
journaled, verified, rolled-back engine as `hide`.

examples:
  vfioctl sriov show                        every SR-IOV capable function
  vfioctl sriov set 0000:00:04.0 2 --hide   2 VFs, bound to vfio-pci, no host driver ever probes them
  vfioctl sriov set 0000:00:04.0 0          remove the VFs (refused while vfioctl has them hidden)
  vfioctl restore 0000:00:04.0              VFs back, then the original count and autoprobe

Going from one non-zero count to another writes 0 first, as the kernel demands.
With --hide, sriov_drivers_autoprobe is turned off before the VFs are created,
so no host driver grabs them, and each VF is bound to vfio-pci through the
same journaled engine as `hide`. The original count and autoprobe are
journaled; VF counts do not survive a reboot: see `vfioctl apply` and
`vfioctl boot install` for that.
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    p.epilog = EPILOG
    sub = p.add_subparsers(dest="sriov_cmd", metavar="show|set")
    s = subcommand(sub, "show", "SR-IOV functions, VF counts and VFs",
                   "Every SR-IOV physical function (or the one named): its driver, VF count out of the most it "
                   "offers, autoprobe, VF device ID, offset and stride, and each VF with its IOMMU group and driver.",
                   ["vfioctl sriov show", "vfioctl sriov show 0000:00:04.0 --json"])
    common_options(s)
    s.add_argument("pf", nargs="?", metavar="PF", help="only this PF (default: every SR-IOV capable function)")
    s.set_defaults(func=run_show)
    t = subcommand(sub, "set", "change a PF's VF count or its VFs' settings",
                   "Change a PF's VF count (0 removes the VFs); with --hide the new VFs go to vfio-pci with "
                   "autoprobe off, so no host driver ever binds them.  --vf N KEY=VALUE... sets VF N's network "
                   "settings on the PF (mac=aa:bb:cc:dd:ee:ff or mac=derived, vlan=0-4095, qos=0-7, "
                   "proto=802.1Q|802.1ad, spoofchk=on|off, trust=on|off, link_state=auto|enable|disable, "
                   "min_tx_rate=/max_tx_rate= Mbit/s), through netlink, each checked before any write and read "
                   "back after it.  The originals are journaled: `vfioctl restore PF` puts them back.",
                   ["vfioctl sriov set 0000:00:04.0 2 --hide --dry-run", "vfioctl sriov set 0000:00:04.0 0",
                    "vfioctl sriov set 0000:0a:00.0 --vf 0 mac=derived vlan=100 --vf 1 trust=on spoofchk=off"])
    common_options(t)
    t.add_argument("pf", metavar="PF", help="the physical function (PCI address)")
    t.add_argument("numvfs", type=_count, metavar="N", nargs="?", help="how many VFs (0 removes them)")
    t.add_argument("--vf", nargs="+", action="append", metavar=("N", "KEY=VALUE"), default=[],
                   help="VF N's settings, e.g. --vf 0 mac=derived vlan=100 (repeat --vf for more VFs)")
    t.add_argument("--hide", action="store_true", help="bind every new VF to vfio-pci (autoprobe off while creating)")
    t.add_argument("--autoprobe", choices=["on", "off"], help="set sriov_drivers_autoprobe")
    t.add_argument("--force", action="store_true", help="even when VFs are hidden or in host use")
    t.add_argument("--driver", default="vfio-pci", help="driver for --hide (default vfio-pci)")
    t.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    t.set_defaults(func=run_set)
    p.set_defaults(func=run_show, pf=None)


def _count(text: str) -> int:
    n = ascii_int(text, 5)
    if n is None:
        raise argparse.ArgumentTypeError(f"VF count must be a whole number, got {text!r}")
    if n < 0:
        raise argparse.ArgumentTypeError(f"VF count must be 0 or more, got {n}")
    return n


def run_show(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.report.inventory import show_sriov

    pfs = show_sriov(ctx.host, args.pf)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.sriov/1", "pfs": pfs})
        return 0
    if not pfs:
        ctx.print("No SR-IOV capable functions on this host.")
    for p in pfs:
        auto = {True: "on", False: "off", None: "-"}[p["drivers_autoprobe"]]
        ctx.print(
            f"{p['pf']}  [{p['id']}]  driver {p['driver'] or 'none'}  VFs {p['numvfs']}/{p['totalvfs']}  "
            f"autoprobe {auto}  VF id {p['vf_device'] or '-'}  offset {p['offset']} stride {p['stride']}"
        )
        net = p.get("net")
        if net:
            ctx.print(f"  interface {net['ifname']}  {net['operstate'] or '?'}  speed {net['speed']}"
                      + (f"  (VF settings: {net['error']})" if net["error"] else ""))
        for v in p["vfs"]:
            line = f"  {v['address']}  group {v['iommu_group']}  driver {v['driver'] or 'none'}"
            st = v.get("settings")
            if st:
                vlan = f"  vlan {st['vlan']} qos {st['qos']} {st['proto']}" if st["vlan"] else ""
                onoff = {True: "on", False: "off", None: "-"}
                line += (f"  vf {st['vf']} mac {st['mac'] or '-'}{vlan}  spoofchk {onoff[st['spoofchk']]}"
                         f"  trust {onoff[st['trust']]}  link {st['link_state'] or '-'}")
                if st["max_tx_rate"] or st["min_tx_rate"]:
                    line += f"  rate {st['min_tx_rate']}-{st['max_tx_rate']} Mbit/s"
            ctx.print(line)
    return 0


def run_set(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.base.errors import InvalidInput
    from vfioctl.cli import plan_and_run
    from vfioctl.ops.plan.vfnet import parse_vf_want

    auto = None if args.autoprobe is None else args.autoprobe == "on"
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli.cmd_cluster import refresh_after_change

    wants = []
    for spec in args.vf:
        pairs = {}
        for kv in spec[1:]:
            k, eq, v = kv.partition("=")
            if not eq:
                raise InvalidInput(f"--vf {spec[0]}: {kv[:40]!r} is not KEY=VALUE (e.g. mac=derived, vlan=100)")
            pairs[k] = v
        wants.append(parse_vf_want(args.pf, spec[0], pairs))
    if args.numvfs is None:
        if not wants:
            raise InvalidInput("give a VF count (N), or VF settings with --vf N KEY=VALUE...")
        if args.hide or args.autoprobe is not None:
            raise InvalidInput("--hide and --autoprobe go with a VF count (N)")
        rc = plan_and_run(ctx, args.dry_run, lambda s: s.plan_vf_settings(args.pf, wants))
    else:
        rc = plan_and_run(ctx, args.dry_run, lambda s: s.plan_sriov(
            args.pf, args.numvfs, hide=args.hide, autoprobe=auto, force=args.force, driver=args.driver,
            settings=wants))
    return refresh_after_change(ctx, rc, args.dry_run)
