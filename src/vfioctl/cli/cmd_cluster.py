"""vfioctl cdi | labels | kubevirt, and the CDI refresh after a change (docs/kubernetes.md)."""

from __future__ import annotations

import argparse
import sys

from vfioctl.base.errors import InvalidInput, VfioctlError
from vfioctl.cli import Context, common_options

#: the exit status when a change was made but the CDI spec it should refresh was not (README)
EXIT_SPEC_STALE = 73

CDI_EPILOG = """\
A CDI spec (kind vfioctl.io/pci) names every function vfioctl has hidden whose
IOMMU group is viable and wholly hidden by vfioctl, by its address
(0000:03:00.0), as pci-0000-03-00-0, and by the names in the config's
[cdi.names]; each gives a container the group's /dev/vfio/N and /dev/vfio/vfio
(and /dev/iommu with /dev/vfio/devices/vfioN where the kernel has the cdev).
Anything else is left out with the reason (on stderr, and in --json).
cdiVersion is the lowest that carries what is used (0.5.0; 0.6.0 with
[cdi] annotations = true, which Debian 12's podman 4.3.1 refuses).

--output writes the file on this machine atomically (mode 0644), also when
--root reads a captured host; a symbolic link or a folder there is refused.
With nothing to publish, the file is removed (a spec must name a device).
--refresh writes the config's [cdi] path under the journal's lock: hide,
restore, apply, sriov set and the libvirt hook do it after every change.

examples:
  vfioctl cdi                                          print the spec
  vfioctl cdi --output /var/run/cdi/vfioctl.json       for podman, CRI-O, containerd
  vfioctl cdi --json                                   what is published, what is left out and why
  vfioctl cdi --refresh                                rewrite [cdi] path of /etc/vfioctl/vfioctl.toml
  podman run --device vfioctl.io/pci=0000:03:00.0 ...
"""

LABELS_EPILOG = """\
Node Feature Discovery reads feature files from its features.d folder; this
writes DIR/vfioctl (atomically, mode 0644) with labels in NFD's namespace:
feature.node.kubernetes.io/vfioctl-iommu, -irq-remap, -ready,
-vfio-unsafe.<check> (one per failing `vfioctl check`), -hidden and
-hidden.<vendor>-<device> (functions published for containers, see `vfioctl cdi`).
Without --nfd-dir the file's text is printed.

examples:
  vfioctl labels
  vfioctl labels --nfd-dir /etc/kubernetes/node-feature-discovery/features.d
  vfioctl labels --json --root host.tar.gz
"""

KUBEVIRT_EPILOG = """\
Prints the KubeVirt CR's spec.configuration.permittedHostDevices for the
devices the config hides: one pciHostDevices entry per vendor:device, with
resourceName PREFIX/vvvv_dddd and externalResourceProvider: false. KubeVirt
offers every function with such an ID that is on vfio-pci; vfioctl apply (and
boot install) put them there.

examples:
  vfioctl kubevirt
  vfioctl kubevirt --resource-prefix example.com --config ./node.toml
  vfioctl kubevirt --root host.tar.gz --json
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.config import DEFAULT_PATH

    common_options(p)
    p.add_argument("--config", metavar="PATH",
                   help=f"the config on the host (default {DEFAULT_PATH}, when it exists"
                        + ("" if name != "kubevirt" else "; required") + ")")
    if name == "cdi":
        p.epilog = CDI_EPILOG
        how = p.add_mutually_exclusive_group()
        how.add_argument("--output", metavar="FILE", help="write the spec to FILE on this machine")
        how.add_argument("--print", action="store_true", help="print the spec (the default)")
        how.add_argument("--refresh", action="store_true",
                         help="write the spec to the config's [cdi] path, as a change does")
        p.add_argument("--vendor", metavar="DNS-NAME", help="the kind's vendor (default: [cdi] vendor, or vfioctl.io)")
        p.set_defaults(func=run_cdi)
    elif name == "labels":
        p.epilog = LABELS_EPILOG
        p.add_argument("--nfd-dir", metavar="DIR",
                       help="write DIR/vfioctl on this machine (NFD: /etc/kubernetes/node-feature-discovery/features.d)")
        p.set_defaults(func=run_labels)
    else:
        p.epilog = KUBEVIRT_EPILOG
        p.add_argument("--resource-prefix", metavar="DNS-NAME", default="vfioctl.io",
                       help="the resource names' domain (default vfioctl.io)")
        p.set_defaults(func=run_kubevirt)


def _config(ctx: Context, path: str | None, *, required: bool = False):
    """The config named, or the default one where it exists (None where it does not)."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.ops.config import DEFAULT_PATH, load_config

    if path is None and not required and not ctx.host.exists(DEFAULT_PATH):
        return None
    return load_config(ctx.host, path or DEFAULT_PATH)


def _explain(ctx: Context, result) -> None:
    for p in result.devices:
        ctx.note(f"{p.address}: {', '.join(f'{result.kind}={n}' for n in p.names)} -> {' '.join(p.nodes)}")
    for address, why in result.left_out:
        ctx.note(f"left out {address}: it {why}")
    for n in result.notes:
        ctx.note(n)


def run_cdi(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cluster import cdi

    config = _config(ctx, args.config)
    if args.refresh:
        ctx.require_live()
        if args.vendor:
            raise InvalidInput("--vendor goes with --print or --output; --refresh uses the config's [cdi] vendor")
        if config is None or config.cdi.path is None:
            raise InvalidInput(f"{config.path if config else 'the default config (absent)'} has no [cdi] path: "
                               "nothing to refresh (docs/kubernetes.md)")
        result = cdi.refresh(ctx.host, config)
    else:
        result = cdi.spec_for(ctx.host, config, vendor=args.vendor)
        if args.output:
            cdi.write_output(args.output, result)
    assert result is not None
    if ctx.json:
        ctx.emit_json(result.to_dict())
        return 0
    if result.path is None:  # --print
        sys.stdout.write(result.text())
        _explain(ctx, result)
        if result.spec is None:
            ctx.note("nothing to publish: no function is hidden in a viable group wholly hidden by vfioctl")
        return 0
    done = {"written": f"wrote {result.path} (cdiVersion {result.cdi_version})",
            "removed": f"removed {result.path}: nothing to publish (a CDI spec must name a device)",
            "absent": f"nothing to publish; {result.path} is absent"}[result.action or "absent"]
    ctx.print(done)
    for p in result.devices:
        ctx.print(f"  {p.address}  [{p.id}]  group {p.group}  {' '.join(p.nodes)}  names: {', '.join(p.names)}")
    for address, why in result.left_out:
        ctx.print(f"  left out {address}: it {why}")
    for n in result.notes:
        ctx.print(f"  note: {n}")
    return 0


def run_labels(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cluster import labels

    result = labels.build(labels.gather(ctx.host, _config(ctx, args.config)))
    text = labels.render(result)
    if args.nfd_dir:
        labels.write(args.nfd_dir, result)
    if ctx.json:
        ctx.emit_json(result.to_dict())
    elif args.nfd_dir:
        ctx.print(f"wrote {result.path}")
    else:
        sys.stdout.write(text)
    for n in result.notes:
        ctx.note(n)
    return 0


def run_kubevirt(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cluster import kubevirt

    kubevirt.check_prefix(args.resource_prefix)
    config = _config(ctx, args.config, required=True)
    sources, notes = kubevirt.gather(ctx.host, config)
    fragment = kubevirt.build(sources, args.resource_prefix, config=config.path, notes=notes)
    if ctx.json:
        ctx.emit_json(fragment.to_dict())
    else:
        sys.stdout.write(kubevirt.render(fragment))
        for n in fragment.notes:
            ctx.note(n)
    return 0


def refresh_after_change(ctx: Context, rc: int, dry_run: bool, config_path: str | None = None) -> int:
    """After a successful change (hide, restore, apply, sriov set): rewrite the CDI spec when the
    config (*config_path*, else the default one where it exists) has ``[cdi] path``.  A failure
    here undoes nothing: one line on stderr, exit 73, and what to run once it is fixed."""
    if rc != 0 or dry_run:
        return rc
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.base.text import one_line
    from vfioctl.cli import printer
    from vfioctl.cluster import cdi

    try:
        config = _config(ctx, config_path)
        if config is not None:
            cdi.refresh(ctx.host, config)
    except VfioctlError as err:
        again = "vfioctl cdi --refresh" + (f" --config {config_path}" if config_path else "")
        printer.err(f"vfioctl: the change was made, but the CDI spec was not refreshed: {one_line(err.message)}"
                    f"; fix that, then run `{one_line(again)}`")
        return EXIT_SPEC_STALE
    return rc
