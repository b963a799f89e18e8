"""vfioctl boot install | uninstall | cmdline"""

from __future__ import annotations

import argparse

from vfioctl.cli import Context, common_options, dry_run_option, subcommand

EPILOG = """\
examples:
  vfioctl boot install --dry-run            show every file and its content, write nothing
  vfioctl boot install                      write them (the initramfs command is printed)
  vfioctl boot install --initramfs          ... and rebuild the initramfs
  vfioctl boot uninstall                    remove exactly the files install wrote
  vfioctl boot cmdline --add intel_iommu=on --add iommu=pt --dry-run
  vfioctl boot cmdline --remove vfio-pci.ids

Why these files, and in what order they act at boot: docs/boot.md.
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.config import DEFAULT_PATH

    p.epilog = EPILOG
    common_options(p)
    sub = p.add_subparsers(dest="boot_command", metavar="SUBCOMMAND")
    sub.required = True

    i = subcommand(sub, "install", "write the modprobe.d, udev, systemd and initramfs files for the config",
                   "Make the config hold from early boot on (docs/boot.md): a modprobe.d install hook per host "
                   "driver, a udev rule per address, a systemd unit that runs `vfioctl apply --boot`, and the "
                   "initramfs hook.",
                   ["vfioctl boot install --dry-run", "vfioctl boot install --initramfs",
                    "vfioctl boot install --config ./lab.toml --dry-run"])
    common_options(i)
    i.add_argument("--config", metavar="PATH",
                   help=f"config file on this machine, relative to the working directory (default: the host's "
                        f"{DEFAULT_PATH})")
    dry_run_option(i, "show each file's path and content, write nothing")
    i.add_argument("--initramfs", action="store_true", help="also rebuild the initramfs (else the command is printed)")
    i.add_argument("--vfioctl", metavar="PATH",
                   help="the vfioctl the systemd unit runs (default: this installation's, as an absolute path)")
    i.set_defaults(func=run_install)

    u = subcommand(sub, "uninstall", "remove exactly the files `boot install` wrote",
                   "Remove exactly the files `vfioctl boot install` wrote (its manifest lists them); a file "
                   "changed since is left in place and named.",
                   ["vfioctl boot uninstall --dry-run", "vfioctl boot uninstall --initramfs"])
    common_options(u)
    dry_run_option(u, "show what would be removed")
    u.add_argument("--initramfs", action="store_true", help="also rebuild the initramfs (else the command is printed)")
    u.set_defaults(func=run_uninstall)

    c = subcommand(sub, "cmdline", "add or remove kernel command line arguments the way this host boots",
                   "Edit the kernel command line: GRUB (/etc/default/grub), grubby (Fedora/RHEL BLS), "
                   "/etc/kernel/cmdline (systemd-boot, Proxmox).  Idempotent; the file is backed up as "
                   "FILE.vfioctl.bak first.",
                   ["vfioctl boot cmdline --add intel_iommu=on --add iommu=pt --dry-run",
                    "vfioctl boot cmdline --remove vfio-pci.ids"])
    common_options(c)
    c.add_argument("--add", metavar="ARG", action="append", default=[],
                   help="name=value or name; replaces another value of the same name")
    c.add_argument("--remove", metavar="ARG", action="append", default=[],
                   help="name (any value) or name=value (only that value)")
    dry_run_option(c, "show the diff and the commands, change nothing")
    c.set_defaults(func=run_cmdline)


def run_install(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl import boot

    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.config import DEFAULT_PATH

    if not args.dry_run:
        ctx.require_live()
    config_host, path = ctx.caller_file(args.config) if args.config else (ctx.host, DEFAULT_PATH)
    result = boot.install(ctx.host, path, dry_run=args.dry_run, initramfs=args.initramfs,
                          vfioctl=args.vfioctl, config_host=config_host)
    ctx.show(result)
    return 1 if result.failed else 0


def run_uninstall(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl import boot

    if not args.dry_run:
        ctx.require_live()
    result = boot.uninstall(ctx.host, dry_run=args.dry_run, initramfs=args.initramfs)
    ctx.show(result)
    return 1 if result.failed else 0


def run_cmdline(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.base.errors import InvalidInput
    from vfioctl.boot import cmdline

    if not args.add and not args.remove:
        raise InvalidInput("nothing to do: give --add ARG and/or --remove ARG")
    if not args.dry_run:
        ctx.require_live()
    change = cmdline.apply(ctx.host, cmdline.plan(ctx.host, args.add, args.remove), dry_run=args.dry_run)
    if ctx.json:
        ctx.emit_json({"dry_run": args.dry_run, **change.to_dict()})
    else:
        ctx.print(change.render(dry_run=args.dry_run))
    return 1 if any(rc for rc in change.ran.values()) else 0
