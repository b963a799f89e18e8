"""vfioctl assess | reset | rom"""

from __future__ import annotations

import argparse

from vfioctl.cli import Context, common_options, devices_argument, dry_run_option, printer

ASSESS_EPILOG = """\
One verdict per device: ready, caveats or blocked, with findings in the form
of `vfioctl check` (status, evidence, fix): the host's IOMMU and interrupt
remapping, the IOMMU group (what must go with it), host use, the console,
VM holders, resets (the kernel's methods and what a bus reset would also
reset), the option ROM (images and code types: an OVMF guest needs an EFI
image for its display), SR-IOV role and NUMA node.  docs/reset-rom.md explains
each finding.

The ROM is read only from devices no host driver uses (vfio-pci or none):
enabling a ROM can hide another BAR from a driver in use for a moment.
--rom reads it from every device (as root).

exit status: 0 when no device is blocked, 69 when one is (with one line on stderr naming them).

examples:
  vfioctl assess 0000:03:00.0 0000:03:00.1
  vfioctl assess group:14 --json
  vfioctl assess                        every endpoint on the host
"""

RESET_EPILOG = """\
Resets functions through the kernel (sysfs `reset`: the kernel saves config
space, resets with the first method in reset_method that works, restores
config space).  Only devices on vfio-pci that no VM holds are reset; refused,
naming what would work: a device without any reset method, and one whose only
reset is its bus when that bus also carries functions not on vfio-pci.

examples:
  vfioctl reset 0000:03:00.0 --dry-run
  vfioctl reset 0000:03:00.0
  vfioctl hide 03:00.0 --reset-method bus     choose the kernel's method (restore puts it back)
"""

ROM_EPILOG = """\
Reads the device's option ROM through sysfs (`echo 1 > rom; cat rom; echo 0 > rom`,
the last always) and lists its images: code type (x86 BIOS, EFI with machine
type, Open Firmware), size, the PCIR vendor:device and whether it matches the
device, the last-image flag.  --dump writes the bytes for QEMU's romfile= /
libvirt's <rom file=.../> (`vfioctl qemu-args DEV --rom FILE`).

examples:
  vfioctl rom 0000:03:00.0
  vfioctl rom 0000:03:00.0 --dump gpu.rom --json
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p)
    if name == "assess":
        p.epilog = ASSESS_EPILOG
        devices_argument(p, "*")
        p.add_argument("--rom", action="store_true", help="read option ROMs of devices on host drivers too")
        p.add_argument("--take-console", action="store_true",
                       help="judge the console as if it will be handed over (hide --take-console)")
        p.set_defaults(func=run_assess)
    elif name == "reset":
        p.epilog = RESET_EPILOG
        devices_argument(p, "+")
        dry_run_option(p)
        p.set_defaults(func=run_reset)
    else:
        p.epilog = ROM_EPILOG
        p.add_argument("device", metavar="DEV", help="PCI address, vendor:device or interface (one function)")
        p.add_argument("--dump", metavar="FILE", help="write the ROM's bytes to FILE (- for standard output); a new "
                                                      "file is mode 0600, an existing one keeps its mode")
        p.set_defaults(func=run_rom)


def run_assess(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.report.devassess import assess_devices

    res = assess_devices(ctx.host, args.devices, read_roms=True if args.rom else None,
                         take_console=args.take_console)
    if ctx.json:
        ctx.emit_json({"schema": "vfioctl.assess/1", "devices": [r.to_dict() for r in res]})
    else:
        ctx.print("\n\n".join(r.render() for r in res) if res else "(no devices)")
    blocked = [r.address for r in res if r.verdict == "blocked"]
    if not blocked:
        return 0
    # exit 69 says one line on stderr, as every refusal does; the report above says why
    printer.err(f"vfioctl: blocked: {', '.join(str(a) for a in blocked[:8])}"
                   + (f" and {len(blocked) - 8} more" if len(blocked) > 8 else "")
                   + " (the report says why)")
    return 69


def run_reset(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl.cli import plan_and_run

    return plan_and_run(ctx, args.dry_run, lambda s: s.plan_reset(args.devices))


def run_rom(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl import engine
    from vfioctl.base.errors import InvalidInput
    from vfioctl.pci.rom import parse_rom, read_rom, rom_not_captured, rom_present

    dev = engine.find_device(ctx.host, args.device)
    head = f"{dev.address}  [{dev.vendor_device}]"
    unknown = rom_not_captured(ctx.host)
    if unknown or not rom_present(ctx.host, dev.address):
        if ctx.json:
            ctx.emit_json(rom_record(dev.address, None if unknown else False, unknown=unknown))
        elif unknown:
            ctx.print(f"{head}  option ROM not captured: {unknown}")
        else:
            ctx.print(f"{head}  no option ROM (the kernel shows no {dev.sysfs}/rom)")
        if args.dump:
            ctx.note(f"nothing written to {args.dump}: there is no ROM to dump")
        return 0
    if args.dump == "-" and ctx.json:
        raise InvalidInput("--dump - writes the ROM to standard output, where --json writes too: give one")
    data = read_rom(ctx.host, dev.address)
    info = parse_rom(data)
    dumped = None
    if args.dump == "-":
        stream = printer.binary()
        try:
            stream.write(data)
            stream.flush()
        except OSError as err:
            raise printer.output_failed(err) from None
        return 0
    if args.dump:
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.host.output import write_output

        dumped = write_output(args.dump, lambda f: f.write(data), what="ROM dump")
    if ctx.json:
        ctx.emit_json(rom_record(dev.address, True, data=data, info=info, dumped=dumped,
                                 matches=info.matches_device(dev.vendor_id or "0", dev.device_id or "0")))
        return 0
    n = len(info.images)
    ctx.print(f"{head}  option ROM, {len(data)} bytes, {n} image{'s' if n != 1 else ''}{':' if n else ''}")
    for img in info.images:
        ctx.print(f"  image {img.index} at 0x{img.offset:05x}: {img.describe()}")
    for p in info.problems:
        ctx.print(f"  problem: {p}")
    for w in info.warnings:
        ctx.print(f"  warning: {w}")
    if dumped:
        ctx.print(f"wrote {dumped} ({len(data)} bytes)")
    return 0


def rom_record(address: object, present: bool | None, *, data: bytes | None = None, info=None,
               dumped: str | None = None, matches: bool | None = None, unknown: str | None = None) -> dict:
    """Schema vfioctl.rom/1: every field always there, null where there is no value (no ROM, or
    a snapshot that did not capture it: then ``not_captured`` says why)."""
    parsed = info.to_dict() if info is not None else {"data_size": None, "images": [], "problems": [],
                                                        "warnings": []}
    return {"schema": "vfioctl.rom/1", "address": str(address), "present": present,
            "size": len(data) if data is not None else None, "dumped_to": dumped, "matches_device": matches,
            **parsed, "not_captured": {"present": unknown} if unknown else {}}
