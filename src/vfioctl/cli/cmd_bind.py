"""vfioctl hide | restore | status"""

from __future__ import annotations

import argparse

from vfioctl.base.text import ascii_int
from vfioctl.cli import (
    Context,
    bounded,
    common_options,
    devices_argument,
    dry_run_option,
    force_platform_option,
    plan_and_run,
)

HIDE_EPILOG = """\
How it works: for each device vfioctl records the original driver and
driver_override in the journal (/var/lib/vfioctl/state.json), writes
driver_override=vfio-pci, unbinds the host driver, asks the kernel to probe
the device (drivers_probe) and verifies the `driver` link and /dev/vfio/N.
On any failure (Ctrl-C too) the steps already done are undone in reverse.

The whole IOMMU group is planned: every endpoint in it must end up on vfio-pci
or unbound (bridges stay as they are). Without --group, a group member still
on a host driver makes the plan refuse; --group takes it too.

Devices the host uses are refused (exit 69) without --force: a process with
one of its device nodes open (/dev/dri/renderD*, /dev/snd/*, /dev/input/event*
below a USB controller, /dev/nvidiaN), a mounted filesystem through any layer
(partition, LVM/dm/crypt, md, bcache, loop), swap, a virtio-9p/virtiofs mount
tag, an interface up with an address or route, a port of a bridge/bond, an
upper VLAN/macvlan/macvtap with an address or an open tap, the boot VGA or
console. A use vfioctl could not read (not root, a snapshot that lacks it) is
"not known" and refused the same way. The platform itself (host bridge, ISA/LPC
bridge, IOMMU, the device of the root filesystem or console) is refused even
with --force; only --force-platform takes it. See docs/host-use.md.

An unbind or driver probe that does not return within $VFIOCTL_UNBIND_TIMEOUT
seconds (default 10) stops the plan with exit 75, naming what still holds the
device; the journal says which step did not finish (`vfioctl status`).

Selectors name devices by what they are; with --count N vfioctl takes N free
ones (never one the host uses) and records which, so the same command again
keeps them: id:VVVV:DDDD, class:NAME or class:CODE (nvme, ethernet, vga, 0300),
pf:ADDRESS/vfs:RANGE (VF indices under a PF).

examples:
  vfioctl hide 0000:03:00.0 --dry-run     print the plan, change nothing
  vfioctl hide 03:00.0 --group            the GPU and its audio function
  vfioctl hide 8086:1520                  every function with that ID
  vfioctl hide eth2                       the NIC behind interface eth2
  vfioctl hide id:10de:2335 --count 1     one free GPU of that model
  vfioctl hide class:nvme --count 2       two NVMe controllers the host does not use
  vfioctl hide pf:0000:03:00.0/vfs:0-1    VFs 0 and 1 of that PF
  vfioctl hide 01:00.0 --take-console     the boot GPU of a single-GPU host (see docs/single-gpu.md)
"""

RESTORE_EPILOG = """\
Puts back exactly what the journal recorded: unbinds vfio-pci, restores the
original driver_override, removes IDs vfioctl added with new_id, binds the
original driver (loading its module if needed) and verifies it. A device
whose IOMMU group is held open by a VM is refused, whatever the flags.
After an interrupted or killed run, `vfioctl restore --all` recovers every
device from the journal. For an SR-IOV PF changed with `vfioctl sriov set`,
`restore PF` gives back its VFs first, then its VF count and autoprobe.

examples:
  vfioctl restore 0000:03:00.0 --dry-run     print the plan, change nothing
  vfioctl restore 0000:03:00.0               back to the driver it had
  vfioctl restore --all                      everything vfioctl holds (after a crash too)
  vfioctl restore 0000:00:04.0               an SR-IOV PF: its VFs, then its VF count
"""

STATUS_EPILOG = """\
Lists what the journal (/var/lib/vfioctl/state.json) says vfioctl took, each
with its driver now and the one it had, its IOMMU group, the VM that holds it
(a process with /dev/vfio/N open, its PID and name) and who took it (hide,
apply, attach, the libvirt hook); SR-IOV PFs whose VF count it changed; the
consoles it handed over; and devices on a vfio driver it did not take.
Anything inconsistent (a device back on its host driver behind vfioctl's
back, a journal entry whose device is gone) is listed under 'problems'.

exit status: 0, or 1 when something is inconsistent.

examples:
  vfioctl status
  vfioctl status --json                 schema vfioctl.status/1
  vfioctl status --root host.tar.gz     what a captured host's journal held
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    if name == "hide":
        p.epilog = HIDE_EPILOG
        devices_argument(p, "+")
        p.add_argument("--group", action="store_true", help="take every endpoint of the devices' IOMMU groups")
        p.add_argument("--force", action="store_true",
                       help="hide even a device the host is using, or whose use is not known")
        force_platform_option(p, "; --force does not")
        p.add_argument("--driver", default="vfio-pci", help="vfio-pci (default), a vfio variant driver, or pci-stub")
        p.add_argument("--count", type=_positive, metavar="N",
                       help="with a selector (id:, class:, pf:/vfs:): take N free matching devices, skipping "
                            "those the host uses")
        p.add_argument("--reset-method", metavar="M[,M...]",
                       help="the kernel reset methods to use, in order (sysfs reset_method; e.g. bus or flr,bus); "
                            "the original list is journaled and put back by restore")
        p.add_argument("--take-console", action="store_true",
                       help="hand over the boot GPU: stop the display manager, unbind the consoles and frame "
                            "buffers on it (all journaled, given back by restore)")
        p.add_argument("--stop-unit", metavar="UNIT", action="append",
                       help="with --take-console: a systemd unit to stop first (default: the active "
                            "display-manager.service); repeatable")
        dry_run_option(p)
        p.set_defaults(func=run_hide)
    elif name == "restore":
        p.epilog = RESTORE_EPILOG
        devices_argument(p, "*", "devices or SR-IOV PFs to give back")
        p.add_argument("--all", action="store_true", help="everything in the journal (also recovers an interrupted run)")
        p.add_argument("--force", action="store_true", help="also unbind vfio devices vfioctl did not hide (kernel picks the driver)")
        dry_run_option(p)
        p.set_defaults(func=run_restore)
    else:
        p.epilog = STATUS_EPILOG
        p.set_defaults(func=run_status)


def run_hide(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli.cmd_cluster import refresh_after_change

    methods = _methods(args.reset_method)
    rc = plan_and_run(ctx, args.dry_run, lambda s: s.plan_hide(
        args.devices, group=args.group, force=args.force, driver=args.driver, reset_method=methods,
        take_console=args.take_console, stop_units=args.stop_unit or None, count=args.count,
        force_platform=args.force_platform))
    return refresh_after_change(ctx, rc, args.dry_run)


_positive = bounded(lambda text: ascii_int(text, 4), 1, 4096,
                    lambda text: f"expected a whole number, got {text[:20]!r}",
                    lambda text, n: "the count must be between 1 and 4096")


def _methods(text: str | None) -> list[str] | None:
    return None if text is None else text.split(",")


def run_restore(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli.cmd_cluster import refresh_after_change

    rc = plan_and_run(ctx, args.dry_run, lambda s: s.plan_restore(args.devices, all=args.all, force=args.force))
    return refresh_after_change(ctx, rc, args.dry_run)


def run_status(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl import engine

    st = engine.status(ctx.host)
    if ctx.json:
        ctx.emit_json(st)
        return 1 if st["problems"] else 0
    if not st["devices"] and not st["sriov"]:
        ctx.print("vfioctl has hidden nothing on this host.")
    for e in st["devices"]:
        held = "; ".join(
            f"held by PID {h['pid']} {h['command']}" + (f" (VM {h['vm_name']})" if h["vm_name"] else "")
            for h in e["held_by"]
        ) or "not held"
        ctx.print(
            f"{e['address']}  [{e['id']}]  {e['driver'] or 'none'} (was {e['original_driver'] or 'none'})  "
            f"group {e['iommu_group']}  {held}  via {e['origin']}" + (f" ({e['entry']})" if e.get("entry") else "")
        )
    for s in st["sriov"]:
        ctx.print(f"{s['pf']}  SR-IOV PF: {s['numvfs']} VFs (was {s['original_numvfs']})")
    for h in st.get("handoff", []):
        took = [f"stopped {', '.join(h['units_stopped'])}"] if h["units_stopped"] else []
        took += [f"unbound vtcon{', vtcon'.join(map(str, h['vtcons_unbound']))} from the frame buffer console"] \
            if h["vtcons_unbound"] else []
        took += [f"unbound {dev} from {drv}" for dev, drv in h["platform_fbs"]]
        ctx.print(f"{h['address']}  console handed over: {'; '.join(took) or 'nothing to hand over'}"
                  f" (restore gives it back)")
    for o in st["unjournaled"]:
        ctx.print(f"{o['address']}  on {o['driver']}, not hidden by vfioctl")
    for p in st["problems"]:
        ctx.print(f"problem: {p}")
    return 1 if st["problems"] else 0
