"""vfioctl qemu-args | libvirt-xml | attach | detach"""

from __future__ import annotations

import argparse

from vfioctl.base.text import ascii_int, parse_int, parse_seconds
from vfioctl.cli import Context, bounded, common_options, devices_argument, dry_run_option, subcommand

QEMU_EPILOG = """\
Prints one shell-quoted line of -device vfio-pci,... arguments. Functions of
one host slot (a GPU and its audio function) go to one guest slot: function 0
with multifunction=on, the others at the same addr=SLOT.F. Ids are derived
from the host address (hostdev-0000-03-00-0). Devices must be hidden first
(`vfioctl hide DEV`), and every other endpoint of their IOMMU groups must be
off host drivers.

examples:
  qemu-system-x86_64 ... $(vfioctl qemu-args 03:00.0 03:00.1)
  vfioctl qemu-args group:12 --bus rp1      on a pcie-root-port with id rp1
  vfioctl qemu-args 03:00.0 --json          the same as a JSON list of strings
"""

LIBVIRT_EPILOG = """\
Prints <hostdev mode='subsystem' type='pci'> elements (one per function) for a
domain's <devices>, paired per slot like qemu-args. --managed lets libvirt
unbind the host driver itself at domain start (and re-probe, not restore, at
stop); without it the devices must be hidden first, or use the hook: with
`vfioctl libvirt-hook install`, the managed='no' XML printed here is exactly
what the hook hides when the domain starts and gives back to the driver it had
when the domain stops (--hook prints it for devices not hidden yet). --interface gives <interface type='hostdev'> for an
SR-IOV VF, whose MAC (--mac) and VLAN (--vlan) libvirt sets through the PF.

examples:
  vfioctl libvirt-xml 03:00.0 03:00.1 > gpu.xml && virsh attach-device vm1 gpu.xml --config
  vfioctl libvirt-xml 01:00.0 01:00.1 --hook    for a domain whose start the vfioctl hook prepares
  vfioctl libvirt-xml 04:10.1 --interface --mac 52:54:00:12:34:56 --vlan 42
"""

ATTACH_EPILOG = """\
Hides DEV if it is not hidden yet (journaled, like `vfioctl hide`), then
device_add's it into the running QEMU behind the QMP socket and verifies that
QEMU lists it and holds /dev/vfio/N. Without --bus the first free hot-plug
port (pcie-root-port with nothing in its slot) is used. On any failure the
hide is rolled back. QEMU needs spare ports: -device pcie-root-port,id=rp1,chassis=1,slot=1

examples:
  vfioctl attach 0000:03:00.0 --qmp /run/vm1.qmp
  vfioctl attach 03:00.0 --qmp /run/vm1.qmp --bus rp2     on the port with id rp2
"""

DETACH_EPILOG = """\
device_del's DEV and waits (--timeout) for QEMU's DEVICE_DELETED event, which
comes once the guest OS has let go of the device. On timeout nothing changes
on the host. With --restore, once QEMU has closed /dev/vfio/N, the device goes
back to its original host driver from the journal.

examples:
  vfioctl detach 0000:03:00.0 --qmp /run/vm1.qmp
  vfioctl detach 03:00.0 --qmp /run/vm1.qmp --restore     and give it back to its host driver
"""


_slot = bounded(lambda text: parse_int(text, 16), 0, 0x1F, lambda text: f"{text!r} is not a hex slot number (00-1f)",
               lambda text, n: f"slot {text} is out of range 00-1f")
_vlan = bounded(lambda text: ascii_int(text, 4), 0, 4095, lambda text: f"{text!r} is not a VLAN id (0-4095)",
                lambda text, n: f"VLAN {n} is out of range 0-4095")


def _not_seconds(text: str, n: object = None) -> str:
    return f"{text!r} is not a number of seconds from 0.01 to 3600"


#: parse_seconds keeps the range itself (None outside it)
_timeout = bounded(lambda text: parse_seconds(text, 0.01, 3600), 0.01, 3600.0, _not_seconds, _not_seconds)


HOOK_EPILOG = """\
install writes /etc/libvirt/hooks/qemu.d/vfioctl (libvirt 6.5 and newer; the
single /etc/libvirt/hooks/qemu before, never overwriting one that exists). On
each domain's prepare it hides the domain's <hostdev managed='no'> PCI devices
(the config's entry for an address adds group and console hand-off); on
release it gives back what it took for that domain, to the exact driver the
journal recorded. A refused hide stops the start, and libvirt's error carries
vfioctl's reason. Restart libvirtd (or virtqemud) after install.

examples:
  vfioctl libvirt-hook install --dry-run
  vfioctl libvirt-hook install && systemctl restart libvirtd
  vfioctl libvirt-xml 0000:03:00.0 0000:03:00.1 --hook    the XML the hook acts on
  vfioctl libvirt-hook uninstall
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    if name == "libvirt-hook":
        p.epilog = HOOK_EPILOG
        sub = p.add_subparsers(dest="hook_command", metavar="install|uninstall|run")
        sub.required = True
        i = subcommand(sub, "install", "install the hook for libvirt's qemu driver",
                       "Write the libvirt hook that hides a domain's managed='no' PCI devices at its start and "
                       "gives them back at its stop.",
                       ["vfioctl libvirt-hook install --dry-run",
                        "vfioctl libvirt-hook install && systemctl restart libvirtd"])
        common_options(i)
        dry_run_option(i, "show the file, write nothing")
        i.add_argument("--vfioctl", metavar="PATH", help="the vfioctl the hook runs (default: this installation)")
        i.set_defaults(func=run_hook_install)
        u = subcommand(sub, "uninstall", "remove the hook vfioctl installed (and nothing else)",
                       "Remove the libvirt hook `vfioctl libvirt-hook install` wrote, and nothing else.",
                       ["vfioctl libvirt-hook uninstall --dry-run", "vfioctl libvirt-hook uninstall"])
        common_options(u)
        dry_run_option(u, "show what would be removed")
        u.set_defaults(func=run_hook_uninstall)
        r = subcommand(sub, "run", "what libvirt calls: DOMAIN OPERATION SUB-OPERATION EXTRA, the XML on stdin",
                       "What libvirt runs at each domain event (the installed hook execs it): prepare hides the "
                       "domain's managed='no' devices, release gives them back.",
                       ["virsh dumpxml vm1 | vfioctl libvirt-hook run vm1 prepare begin -",
                        "virsh dumpxml vm1 | vfioctl libvirt-hook run vm1 release end -"])
        common_options(r)
        r.add_argument("args", nargs="*", metavar="ARG")
        r.set_defaults(func=run_hook_run)
        return
    if name in ("qemu-args", "libvirt-xml"):
        devices_argument(p, "+")
        p.add_argument("--slot", type=_slot, metavar="SS",
                       help="first guest slot (hex) for paired functions (default 00 on --bus, else 10)")
        p.add_argument("--rom", metavar="FILE", help="a ROM image for the guest (e.g. from `vfioctl rom DEV --dump`)")
        p.add_argument("--no-rom", action="store_true", help="expose no ROM BAR to the guest")
    if name == "qemu-args":
        p.epilog = QEMU_EPILOG
        p.add_argument("--bus", metavar="ID", help="guest bus id, e.g. a pcie-root-port's id")
        p.set_defaults(func=run_qemu_args)
    elif name == "libvirt-xml":
        p.epilog = LIBVIRT_EPILOG
        p.add_argument("--bus", metavar="N", help="guest bus number (a PCI controller's index, e.g. 1)")
        p.add_argument("--managed", action="store_true", help="managed='yes': libvirt detaches the host driver itself")
        p.add_argument("--hook", action="store_true",
                       help="managed='no' for devices the vfioctl libvirt hook hides at domain start "
                            "(they need not be hidden now)")
        p.add_argument("--interface", action="store_true", help="<interface type='hostdev'> for SR-IOV VFs")
        p.add_argument("--mac", help="with --interface: the VF's MAC address")
        p.add_argument("--vlan", type=_vlan, help="with --interface: VLAN tag 0-4095")
        p.set_defaults(func=run_libvirt_xml)
    elif name == "attach":
        p.epilog = ATTACH_EPILOG
        p.add_argument("device", metavar="DEV", help="PCI address, vendor:device or interface (one function)")
        p.add_argument("--qmp", required=True, metavar="SOCKET", help="QEMU's QMP unix socket (-qmp unix:SOCKET,server=on)")
        p.add_argument("--bus", metavar="ID", help="hot-plug port id (default: the first free pcie-root-port)")
        p.add_argument("--id", dest="dev_id", metavar="ID", help="QEMU device id (default hostdev-DDDD-BB-SS-F)")
        p.add_argument("--force", action="store_true", help="hide it even if the host is using it (see `vfioctl hide --help`)")
        p.add_argument("--timeout", type=_timeout, default=10.0, metavar="S", help="seconds to wait for QEMU (default 10)")
        p.set_defaults(func=run_attach)
    else:
        p.epilog = DETACH_EPILOG
        p.add_argument("device", metavar="DEV", help="PCI address, vendor:device or interface (one function)")
        p.add_argument("--qmp", required=True, metavar="SOCKET", help="QEMU's QMP unix socket")
        p.add_argument("--id", dest="dev_id", metavar="ID", help="QEMU device id (default: found by host address)")
        p.add_argument("--timeout", type=_timeout, default=10.0, metavar="S",
                       help="seconds to wait for the guest to release it (default 10)")
        p.add_argument("--restore", action="store_true", help="then give the device back to its host driver")
        p.set_defaults(func=run_detach)


def _checked(args: argparse.Namespace, ctx: Context, *, managed: bool = False):
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.base.errors import InvalidInput, NotFound
    from vfioctl.guest import check_assignable, check_rom_file, resolve_devices

    if args.rom and args.no_rom:
        raise InvalidInput("--rom FILE and --no-rom contradict each other: give one")
    if args.rom:
        check_rom_file(args.rom)
        if ctx.host.kind(args.rom) != "file":
            raise NotFound(f"--rom {args.rom}: no such file on {ctx.host.describe()} (QEMU reads it when the VM starts)")

    devs = resolve_devices(ctx.host, args.devices)
    check_assignable(ctx.host, devs, managed=managed)
    return [d.address for d in devs], devs, {d.address: d.iommu_group for d in devs}


def run_qemu_args(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.guest import qemu

    addrs, devs, groups = _checked(args, ctx)
    out = qemu.qemu_args(addrs, bus=args.bus, slot=args.slot, groups=groups, rom_file=args.rom,
                         no_rom=args.no_rom)
    vfs = [d for d in devs if d.is_vf]
    if vfs:
        # lazy: netlink (pyroute2) only where VF settings are read
        from vfioctl.pci.vfnet import vf_settings

        for d in vfs:
            got = vf_settings(ctx.host, d.address)
            mac = got[1].mac if got is not None else None
            where = f"on its PF {got[0].ifname}" if got is not None else "on its PF"
            ctx.note(f"{d.address} is an SR-IOV VF: its MAC ({mac or 'not reported'}) and VLAN are set {where}, "
                     "not by QEMU (`vfioctl sriov set PF --vf N mac=...`, or [[sriov.vf]] in the config)")
    if ctx.json:
        ctx.emit_json(out)
    else:
        ctx.print(qemu.command_line(out))
    return 0


def run_libvirt_xml(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.base.errors import InvalidInput
    from vfioctl.guest import libvirt

    if args.interface and (args.rom or args.no_rom):
        raise InvalidInput("--rom and --no-rom apply to <hostdev>; drop --interface")
    if not args.interface and (args.mac or args.vlan is not None):
        raise InvalidInput("--mac and --vlan apply to --interface (an SR-IOV VF as <interface type='hostdev'>)")
    if args.hook and args.managed:
        raise InvalidInput("--hook is for managed='no' devices the vfioctl hook hides; --managed lets libvirt do it: "
                           "give one")
    addrs, devs, groups = _checked(args, ctx, managed=args.managed or args.hook)
    if args.hook:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.guest.hook import installed

        if not installed(ctx.host):
            ctx.note("the vfioctl libvirt hook is not installed: `vfioctl libvirt-hook install`, then restart "
                     "libvirtd (or virtqemud); until then the domain's start fails on a device still on its host driver")
    if args.interface:
        not_vf = [str(d.address) for d in devs if not d.is_vf]
        if not_vf:
            raise InvalidInput(
                f"--interface is for SR-IOV VFs (libvirt sets their MAC/VLAN through the PF); {', '.join(not_vf)} "
                "has no physfn: drop --interface to get <hostdev>"
            )
        mac, vlan = args.mac, args.vlan
        if len(devs) == 1 and (mac is None or vlan is None):
            # by default the VF's own settings on its PF (what `vfioctl apply` / `sriov set --vf` set)
            # lazy: netlink (pyroute2) only where VF settings are read
            from vfioctl.pci.vfnet import vf_settings

            got = vf_settings(ctx.host, devs[0].address)
            if got is not None:
                vs = got[1]
                if mac is None and vs.mac and vs.mac != "00:00:00:00:00:00":
                    mac = vs.mac
                if vlan is None and vs.vlan and vs.vlan[0]:
                    vlan = vs.vlan[0]
        text = libvirt.interface_xml(addrs, managed=args.managed, mac=mac, vlan=vlan, bus=args.bus, slot=args.slot,
                                     groups=groups)
    else:
        text = libvirt.hostdev_xml(addrs, managed=args.managed, bus=args.bus, slot=args.slot, groups=groups,
                                   rom_file=args.rom, no_rom=args.no_rom)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.libvirt-xml/1", "xml": text})
    else:
        ctx.print(text.rstrip("\n"))
    return 0


def run_attach(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli import sigterm_as_interrupt
    from vfioctl.guest import qmp

    sigterm_as_interrupt()
    return ctx.show(qmp.attach(ctx.host, args.device, args.qmp, bus=args.bus, dev_id=args.dev_id, timeout=args.timeout,
                                           force=args.force))


def run_detach(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli import sigterm_as_interrupt
    from vfioctl.guest import qmp

    sigterm_as_interrupt()
    return ctx.show(qmp.detach(ctx.host, args.device, args.qmp, dev_id=args.dev_id, timeout=args.timeout,
                                 restore=args.restore))


def run_hook_install(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.guest import hook

    if not args.dry_run:
        ctx.require_live()
    return ctx.show(hook.install(ctx.host, vfioctl=args.vfioctl, dry_run=args.dry_run))


def run_hook_uninstall(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.guest import hook

    if not args.dry_run:
        ctx.require_live()
    return ctx.show(hook.uninstall(ctx.host, dry_run=args.dry_run))


def run_hook_run(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    import sys

    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli import printer, sigterm_as_interrupt
    from vfioctl.guest import hook

    sigterm_as_interrupt()
    stdin = getattr(sys.stdin, "buffer", None)
    data = stdin.read(hook.MAX_XML + 1) if stdin is not None else b""
    said = hook.run(ctx.host, list(args.args), data.decode("utf-8", "replace"))
    printer.err(f"vfioctl: {said}")
    return 0
