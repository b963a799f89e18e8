"""vfioctl snapshot FILE.tar.gz"""

from __future__ import annotations

import argparse
import sys

from vfioctl.cli import Context, common_options

EPILOG = """\
The archive holds what vfioctl reads (PCI devices, drivers, IOMMU groups, kernel
command line and config, vfio/kvm module parameters, pci.ids, the kernel's IOMMU
log lines) under root/; read it back with any command's --root FILE.tar.gz.
Unreadable files are skipped and listed in root/.vfioctl/meta.json.

examples:
  vfioctl snapshot host.tar.gz
  vfioctl --root host.tar.gz check
  vfioctl snapshot - | ssh lab 'cat > host.tar.gz'
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    p.epilog = EPILOG
    p.add_argument("file", metavar="FILE.tar.gz", help="where to write the snapshot (- for stdout)")
    p.add_argument("--no-ids", action="store_true", help="leave out pci.ids (names then come from the reader's machine)")
    p.set_defaults(func=run_snapshot)


def run_snapshot(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.report import snapshot

    if args.file == "-":
        res = snapshot.capture(ctx.host, sys.stdout.buffer, include_ids=not args.no_ids)
        sys.stdout.buffer.flush()
        say = sys.stderr.write
    else:
        res = snapshot.write_snapshot(ctx.host, args.file, include_ids=not args.no_ids)
        say = sys.stdout.write
    if ctx.json and args.file != "-":
        ctx.emit_json(res.to_dict())
        return 0
    where = res.path or "stdout"
    size = f", {res.size / 1024:.0f} KiB" if res.size else ""
    say(f"wrote {where}: {res.files} files, {res.links} links{size} in {res.seconds:.2f} s; "
        f"{len(res.skipped)} skipped\n")
    for s in res.skipped[:10]:
        say(f"  skipped {s}\n")
    if len(res.skipped) > 10:
        say(f"  ... and {len(res.skipped) - 10} more (listed in root/.vfioctl/meta.json)\n")
    return 0
