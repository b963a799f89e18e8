"""vfioctl apply: converge the host to the declarative config."""

from __future__ import annotations

import argparse

from vfioctl.base.errors import VfioctlError
from vfioctl.cli import Context, common_options, dry_run_option, force_platform_option

NO_CHANGES = "no changes: the host is in the declared state"

EPILOG = """\
examples:
  vfioctl apply --dry-run                   the plan for /etc/vfioctl/vfioctl.toml
  vfioctl apply                             carry it out (verify each step, roll back on failure)
  vfioctl apply --config ./lab.toml --json
  vfioctl apply --prune                     also restore devices hidden earlier that the config no longer names

The config's schema: docs/config.md.  Every entry's id is compared with the
hardware first; on any mismatch nothing is changed (exit 69).  An entry naming
a function of the platform itself (host bridge, ISA/LPC bridge, IOMMU, the
device of the root filesystem or of the console) is refused (exit 69) unless
--force-platform, as with hide. See docs/host-use.md.
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.config import DEFAULT_PATH

    p.epilog = EPILOG
    common_options(p)
    p.add_argument("--config", metavar="PATH",
                   help=f"config file on this machine, relative to the working directory (default: the host's "
                        f"{DEFAULT_PATH})")
    dry_run_option(p, "show the plan, change nothing")
    p.add_argument("--prune", action="store_true",
                   help="restore devices vfioctl hid earlier that the config no longer names")
    p.add_argument("--boot", action="store_true",
                   help="as vfioctl-apply.service runs it: selectors pass over devices a host driver already "
                        "claimed (unless the entry says take_bound = true)")
    force_platform_option(p, " that an entry names")
    p.set_defaults(func=run_apply)


def run_apply(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli import plan_and_run
    from vfioctl.ops.config import DEFAULT_PATH, load_config

    if not args.dry_run:
        ctx.require_live()
    host = ctx.host
    config_host, path = ctx.caller_file(args.config) if args.config else (host, DEFAULT_PATH)
    config = load_config(config_host, path)
    # refuse the whole config before planning or writing anything
    config.verify_ids(host)
    try:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.boot import manifest_stale

        stale = manifest_stale(host, path, config_host)
    except VfioctlError:  # a broken manifest must not stop apply; `boot install` reports it
        stale = None
    if stale:
        ctx.note(stale)

    def no_changes(plan) -> int:
        if ctx.json:
            ctx.emit_json({**plan.to_dict(), "changes": []})
        else:
            ctx.print(NO_CHANGES)
            for note in plan.notes:
                ctx.print(f"note: {note}")
        return 0

    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli.cmd_cluster import refresh_after_change

    rc = plan_and_run(ctx, args.dry_run, lambda s: s.plan_apply(config, prune=args.prune, boot=args.boot,
                                                            force_platform=args.force_platform),
                      on_empty=no_changes)
    return refresh_after_change(ctx, rc, args.dry_run, args.config)
