"""vfioctl snapshot FILE.tar.gz"""

from __future__ import annotations

import argparse

from vfioctl.cli import Context, common_options, printer

EPILOG = """\
The archive holds what vfioctl reads (PCI devices, drivers, IOMMU groups, kernel
command line and config, vfio/kvm module parameters, pci.ids, the kernel's IOMMU
log lines, option ROMs) under root/; read it back with any command's --root
FILE.tar.gz, or unpack it and give --root the folder.  Take it as root: files
root alone may read are skipped otherwise, and listed in root/.vfioctl/meta.json.
What a snapshot does not hold, the commands that read it say "not captured"
(JSON: null, and the reason under "not_captured"), never "absent".

Option ROMs are read as `vfioctl rom` reads them: each ROM is enabled, read and
disabled again (a driver using the device may see another BAR vanish for that
moment on cards whose ROM shares its address decoder); at most 4 MiB of each is
kept.  --no-rom leaves them out.

examples:
  vfioctl snapshot host.tar.gz
  vfioctl --root host.tar.gz check
  vfioctl snapshot - | ssh lab 'cat > host.tar.gz'
  vfioctl snapshot --no-rom --no-ids small.tar.gz
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    p.epilog = EPILOG
    p.add_argument("file", metavar="FILE.tar.gz", help="where to write the snapshot (- for stdout)")
    p.add_argument("--no-ids", action="store_true",
                   help="leave out pci.ids (about 300 KiB): names then come from the pci.ids of the machine that "
                        "reads the snapshot")
    p.add_argument("--no-rom", action="store_true", help="leave out option ROMs (read nothing from ROM BARs)")
    p.set_defaults(func=run_snapshot)


def run_snapshot(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.report import snapshot

    if args.file == "-":
        stream = printer.binary()
        try:
            res = snapshot.capture(ctx.host, stream, include_ids=not args.no_ids,
                                   include_roms=not args.no_rom)
            stream.flush()
        except OSError as err:
            raise printer.output_failed(err) from None
        say = printer.err
    else:
        res = snapshot.write_snapshot(ctx.host, args.file, include_ids=not args.no_ids,
                                      include_roms=not args.no_rom)
        say = ctx.print
    if ctx.json and args.file != "-":
        ctx.emit_json(res.to_dict())
        return 0
    where = res.path or "stdout"
    size = f", {res.size / 1024:.0f} KiB" if res.size else ""
    lines = [f"wrote {where}: {res.files} files, {res.links} links{size} in {res.seconds:.2f} s; "
             f"{len(res.skipped)} skipped"]
    lines += [f"  skipped {s}" for s in res.skipped[:10]]
    if len(res.skipped) > 10:
        lines.append(f"  ... and {len(res.skipped) - 10} more (listed in root/.vfioctl/meta.json)")
    for line in lines:
        say(line)
    return 0
