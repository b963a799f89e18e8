"""vfioctl's command line: parsing, rendering, exit codes.  Calls only the library.

Each command lives in a small module with ``register(parser)`` and
``run(args, ctx) -> int``.  Only the module of the command being run is
imported, and only its parser is built (the whole parser, every command's, is
for ``--help``, a command line that names none, completion and the man page), so
``vfioctl list --json`` pays for nothing it does not use.  ``vfioctl --version``
imports no parser at all.
"""

from __future__ import annotations

import os
import sys

from vfioctl.base.errors import VfioctlError
from vfioctl.base.version import __version__
from vfioctl.cli import printer

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable, Iterator, TypeVar

    N = TypeVar("N", int, float)

    from vfioctl.host.core import Host

#: name -> (module, one-line help).  Order is the order of ``--help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("vfioctl.cli.cmd_check", "is this host ready for device assignment? (exit 1 on a fail)"),
    "list": ("vfioctl.cli.cmd_inventory", "every PCI function: IDs, names, driver, IOMMU group"),
    "groups": ("vfioctl.cli.cmd_inventory", "IOMMU groups as a tree, members' roles and viability"),
    "show": ("vfioctl.cli.cmd_inventory", "everything known about one device"),
    "topology": ("vfioctl.cli.cmd_topology", "the PCI tree with IOMMU groups, drivers and ACS per port (text, json, dot, svg)"),
    "assess": ("vfioctl.cli.cmd_device", "will these devices survive assignment? one verdict each (exit 69 if blocked)"),
    "snapshot": ("vfioctl.cli.cmd_snapshot", "capture this host's state into a .tar.gz for --root"),
    "hide": ("vfioctl.cli.cmd_bind", "take devices from the host: bind them to vfio-pci"),
    "restore": ("vfioctl.cli.cmd_bind", "give hidden devices back to their original drivers"),
    "status": ("vfioctl.cli.cmd_bind", "what vfioctl has hidden, who holds it, and what is inconsistent"),
    "reset": ("vfioctl.cli.cmd_device", "reset hidden devices through the kernel (refused when unsafe)"),
    "rom": ("vfioctl.cli.cmd_device", "read a device's option ROM: images, code types; --dump FILE"),
    "sriov": ("vfioctl.cli.cmd_sriov", "show SR-IOV functions; create, hide and remove VFs"),
    "qemu-args": ("vfioctl.cli.cmd_guest", "QEMU -device arguments for hidden devices"),
    "libvirt-xml": ("vfioctl.cli.cmd_guest", "libvirt <hostdev> XML for hidden devices"),
    "attach": ("vfioctl.cli.cmd_guest", "hide and hot-plug a device into a running QEMU (QMP)"),
    "libvirt-hook": ("vfioctl.cli.cmd_guest", "libvirt hook: hide a domain's managed='no' devices at start, give back at stop"),
    "detach": ("vfioctl.cli.cmd_guest", "hot-unplug a device from a running QEMU (QMP)"),
    "apply": ("vfioctl.cli.cmd_config", "converge the host to the declarative config file"),
    "boot": ("vfioctl.cli.cmd_boot", "make the config hold from early boot; edit the kernel command line"),
    "completion": ("vfioctl.cli.cmd_docs", "print the bash, zsh or fish completion script"),
    "man": ("vfioctl.cli.cmd_docs", "print the man page (roff)"),
    "cdi": ("vfioctl.cli.cmd_cluster", "a CDI spec of the hidden devices for podman, CRI-O, containerd (--output FILE)"),
    "labels": ("vfioctl.cli.cmd_cluster", "Node Feature Discovery labels: IOMMU, interrupt remapping, hidden devices"),
    "kubevirt": ("vfioctl.cli.cmd_cluster", "KubeVirt's permittedHostDevices for the devices the config hides (YAML)"),
}

DEV_HELP = "PCI address, vendor:device, interface, group:N, or a selector (id:, class:, pf:/vfs:)"

EPILOG = """\
DEV is a PCI address (03:00.0 or 0000:03:00.0), vendor:device (8086:10d3),
a network interface name (eth0), group:N, or a selector: id:8086:10d3,
class:nvme (or class:0108), pf:0000:03:00.0/vfs:0-3.

Every command takes --json (machine-readable output, stable schema) and every
command that reads the host takes --root PATH (a folder or a .tar.gz made by
`vfioctl snapshot`) to read a captured host instead of this one.

exit codes: 0 ok, 1 problem found (check/status), 2 usage, 65 bad input,
66 not found, 69 refused (in use, not viable, not ready), 70 internal error,
73 change made but the CDI spec not refreshed, 74 kernel refused/did not
confirm, or the output could not be written, 75 busy/timeout, 77 permission
denied, 130 interrupted (rolled back)
"""


def emit_json(data: object) -> None:
    """JSON on stdout (json.dumps escapes every control character)."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    import json

    printer.raw(json.dumps(data, indent=2, sort_keys=False) + "\n")


class Context:
    """What every command gets: the host, and how to print."""

    def __init__(self, args: argparse.Namespace | Arguments) -> None:
        self.args = args
        self.json = bool(getattr(args, "json", False))
        given = getattr(args, "root", None)
        # an empty --root or VFIOCTL_ROOT is refused by Host (65), never read as "/"
        # lazy: the environment's readers (their patterns: re, ~5 ms) not for `vfioctl --version`
        from vfioctl.host import env

        self.root = given if given is not None else (env.root() or "/")
        self._host: Host | None = None

    @property
    def host(self):
        if self._host is None:
            # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
            from vfioctl.host.core import Host

            self._host = Host(self.root)
        return self._host

    def caller_file(self, path: str) -> tuple[Host, str]:
        """A file named on the command line (``--config``) is the caller's, on this machine, a
        relative path taken from the working directory, whatever host ``--root`` names: the
        Host that reads it and its absolute path."""
        # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
        from vfioctl.host.core import Host

        full = os.path.abspath(path) if "\0" not in path else path
        return (self.host if self.root == "/" else Host("/")), full

    def require_live(self) -> None:
        """Refuse a change on a captured host, or on a root that only resolves to /, before
        anything is read or locked."""
        # an archive, or a snapshot unpacked (its meta.json in the folder or in its root/)
        meta = [os.path.join(self.root, *sub, ".vfioctl", "meta.json") for sub in ((), ("root",))]
        if self.root != "/" and (os.path.isfile(self.root) or any(map(os.path.isfile, meta))):
            # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
            from vfioctl.base.errors import Refused

            raise Refused(f"--root {self.root} is a snapshot, which is read-only: changes need the live host "
                          "(drop --root)")
        self.host.require_changeable()

    def emit_json(self, data: object) -> None:
        emit_json(data)

    def print(self, text: str = "", *, style: Callable[[str], str] | None = None) -> None:
        """Human-readable lines on stdout: data in them escaped (:mod:`vfioctl.cli.printer`)."""
        printer.out(text, style=style)

    def note(self, text: str) -> None:
        """A remark beside the output, on stderr (stdout stays the output alone)."""
        printer.err(f"vfioctl: note: {text}")

    def colour(self) -> bool:
        """Whether to colour: stdout is a terminal and NO_COLOR is not set."""
        # lazy: as in __init__
        from vfioctl.host import env

        return printer.isatty() and not env.no_color()

    def show(self, outcome) -> int:
        """A plan or a result: its ``to_dict()`` with --json, else its ``render()``; exit 0."""
        if self.json:
            self.emit_json(outcome.to_dict())
        else:
            self.print(outcome.render())
        return 0


def sigterm_as_interrupt() -> None:
    """A plain `kill` rolls back like Ctrl-C does (kill -9 leaves it to `restore --all`)."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    import signal

    def handler(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def plan_and_run(ctx: Context, dry_run: bool, make_plan, on_empty=None) -> int:
    """The shape every changing command shares: a session (the journal lock unless a dry
    run), the plan from the state read inside it, then the plan shown or executed
    (*on_empty*, when given, answers a plan with nothing to do)."""
    # lazy: a command imports what it runs when it runs (start-up: `vfioctl list` loads none of this)
    from vfioctl import engine

    if not dry_run:
        ctx.require_live()
    sigterm_as_interrupt()
    with engine.Session(ctx.host, dry_run=dry_run) as session:
        plan = make_plan(session)
        if on_empty is not None and plan.empty:
            return int(on_empty(plan))
        if dry_run:
            return ctx.show(plan)
        return ctx.show(session.execute(plan))


def common_options(p: argparse.ArgumentParser, *, reads_host: bool = True) -> None:
    """--json and --root on every subcommand (SUPPRESS keeps the top-level value)."""
    # lazy: argparse is imported by the command module that calls this (no cost here)
    import argparse

    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable JSON output")
    if reads_host:
        p.add_argument(
            "--root", metavar="PATH", default=argparse.SUPPRESS,
            help="read a captured host (folder or snapshot .tar.gz) instead of this one",
        )


def bounded(parse: Callable[[str], N | None], low: N, high: N, not_one: Callable[[str], str],
            out_of_range: Callable[[str, N], str]) -> Callable[[str], N]:
    """An argparse ``type``: *parse* the text (None: not a number of that kind) and keep it within
    *low* and *high*; each refusal is an ArgumentTypeError with its own words."""

    def convert(text: str) -> N:
        # lazy: argparse is imported by the parser that calls this (no cost here)
        import argparse

        n = parse(text)
        if n is None:
            raise argparse.ArgumentTypeError(not_one(text))
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(out_of_range(text, n))
        return n

    return convert


def devices_argument(p: argparse.ArgumentParser, nargs: str, help: str = DEV_HELP) -> None:
    """The devices a command acts on (``DEV ...``)."""
    p.add_argument("devices", nargs=nargs, metavar="DEV", help=help)


def dry_run_option(p: argparse.ArgumentParser, help: str = "print the plan and change nothing") -> None:
    p.add_argument("--dry-run", action="store_true", help=help)


def force_platform_option(p: argparse.ArgumentParser, tail: str) -> None:
    """``--force-platform``, the loud flag that alone takes a platform function (docs/host-use.md)."""
    p.add_argument("--force-platform", action="store_true",
                   help="DANGEROUS: also take a function of the platform itself (host bridge, ISA/LPC bridge, "
                        f"IOMMU, the device of the root filesystem or of the console){tail}")


def build_parser() -> argparse.ArgumentParser:
    """The whole parser, every command registered (completion scripts, the man page, tests);
    ``main`` registers only the command it runs."""
    return _build_parser(None, every=True)


def subcommand(sub, name: str, help: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """A nested command (``sriov show``, ``boot install``) with its one-line help, a description and
    examples, as every command has (tests/unit/cli/test_help.py walks the parser for them)."""
    # lazy: the parser's module comes with argparse (~7 ms at start-up with re), which
    # `vfioctl --version` does without; a command module that calls this has imported both
    from vfioctl.cli.parsing import HelpFormatter

    return sub.add_parser(name, help=help, description=description,
                          epilog="examples:\n" + "".join(f"  {e}\n" for e in examples),
                          formatter_class=HelpFormatter)


def _build_parser(selected: str | None, *, every: bool = False) -> argparse.ArgumentParser:
    """The parser with every command's parser registered (*every*), or with only *selected*'s
    (the command the command line names: the other commands' parsers are not built at all),
    or, when *selected* is None, with every command's name and one-line help (what the help,
    a missing command and a wrong one show) and none registered."""
    # lazy: argparse (~7 ms at start-up with re) only when a command line is parsed
    import argparse
    import importlib

    # lazy: (with argparse) the formatter, which sizes help as argparse does without shutil
    from vfioctl.cli.parsing import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="vfioctl",
        description="Safe, fast, boring PCI device assignment (VFIO) for Linux KVM hosts.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vfioctl {__version__}")
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")
    parser.add_argument("--root", metavar="PATH", help="read a captured host (folder or .tar.gz) instead of this one")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, helptext) in COMMANDS.items():
        if selected is not None and not every and name != selected:
            continue
        sp = sub.add_parser(name, help=helptext, description=helptext, formatter_class=HelpFormatter)
        if every or name == selected:
            importlib.import_module(module).register(name, sp)
    return parser


def _words(argv: list[str], start: int = 0) -> Iterator[int]:
    """Where the words that are not options stand in *argv* from *start* on (the value of
    ``--root`` is an option's)."""
    skip = False
    for i in range(start, len(argv)):
        if skip:
            skip = False
        elif argv[i] == "--root":
            skip = True
        elif not argv[i].startswith("-"):
            yield i


def _selected_command(argv: list[str]) -> tuple[str | None, int]:
    """The command named and where its name stands in *argv* (-1 when none)."""
    for i in _words(argv):
        return (argv[i] if argv[i] in COMMANDS else None), i
    return None, -1


def _hook_arguments(argv: list[str], at: int) -> tuple[list[str], list[str] | None]:
    """Split ``... libvirt-hook [options] run DOMAIN OPERATION ...``: what follows ``run`` is
    libvirt's, data and never options (a domain named ``-h``, ``--json``, ``--`` or
    ``--root=/x`` is a domain name).  (argv up to ``run``, libvirt's arguments or None)."""
    for i in _words(argv, at + 1):
        if argv[i] == "run":
            return argv[:i + 1], argv[i + 1:]
        break
    return argv, None


class Arguments:
    """The arguments of a plain command line (:func:`plain_arguments`): what argparse's
    Namespace would hold, without argparse."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return "Arguments(" + ", ".join(f"{k}={v!r}" for k, v in sorted(self.__dict__.items())) + ")"


def plain_arguments(argv: list[str]) -> Arguments | None:
    """The arguments of a command line that names a command and at most ``--json`` and
    ``--root PATH`` (each once, before or after the command), and after the command at most the
    value-less flags its module lists (``FLAGS``: `groups --why`), for a command whose module
    lists what its parser gives then (``DEFAULTS``: `list`, `groups`, `topology`, `check`):
    what scripts, monitoring agents and fact gathering run, parsed without building a parser
    (tests/unit/cli/test_parsing.py holds every such command line to what argparse gives).
    None for any other command line: argparse parses it."""
    command, json, root, flags, i = None, False, None, [], 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--json" and not json:
            json = True
        elif tok == "--root" and root is None and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            root = argv[i + 1]
            i += 1
        elif command is None and tok in COMMANDS:
            command = tok
        elif command is not None and tok.startswith("--") and tok not in flags \
                and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            flags.append(tok)  # a flag of the command's, if its module says so (a value would follow)
        else:
            return None
        i += 1
    if command is None:
        return None
    # lazy: the command's module, which runs next anyway
    import importlib

    module = importlib.import_module(COMMANDS[command][0])
    defaults = getattr(module, "DEFAULTS", {}).get(command)
    known = getattr(module, "FLAGS", {}).get(command, {})
    if defaults is None or any(f not in known for f in flags):
        return None
    return Arguments(json=json, root=root, command=command,
                     **{**defaults, **{dest: value for f in flags for dest, value in [known[f]]}})


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = _main(argv)
    except BaseException:
        _flush_quietly()
        raise
    try:
        printer.flush()
    except printer.OutputFailed as err:
        if not err.quiet:
            printer.err(f"vfioctl: {err.message}")
        printer.discard_stdout()
        return code if code not in (0, 1) else err.exit_code
    return code


def _flush_quietly() -> None:
    try:
        printer.flush()
    except printer.OutputFailed:
        printer.discard_stdout()


def prepared_help(argv: list[str]) -> str | None:
    """What argparse would print for ``vfioctl --help`` or ``vfioctl COMMAND --help`` (``-h``
    alike) taken from :mod:`vfioctl.cli.helptext` (generated from the whole parser), when that
    text is argparse's for this process: the same Python minor version, the terminal width it
    was prepared for, and argparse's words untranslated.  None for any other command line or
    case: argparse builds the parser and prints it."""
    if not (argv and argv[-1] in ("-h", "--help") and (len(argv) == 1 or len(argv) == 2 and argv[0] in COMMANDS)):
        return None
    # lazy: 50 kB of text that only --help prints
    from vfioctl.cli import helptext

    if sys.version_info[:2] != helptext.PYTHON or printer.terminal_columns() != helptext.COLUMNS \
            or _help_may_be_translated():
        return None
    return helptext.TEXTS.get(argv[0] if len(argv) == 2 else "")


def _help_may_be_translated() -> bool:
    """Whether gettext could translate argparse's words ("usage: ", "options"): some language
    other than C comes before C in the locale variables (as ``gettext.find`` reads them) and a
    ``messages.mo`` catalogue (argparse's domain is gettext's default) stands in Python's locale
    folder.  A name with a '/' in it could reach outside that folder: taken as a maybe."""
    # lazy: the environment's readers (argparse would read COLUMNS through them too)
    from vfioctl.host import env

    languages = env.messages_languages()
    if not languages or languages[0] == "C":
        return False
    if any("/" in lang for lang in languages):
        return True
    localedir = os.path.join(sys.base_prefix, "share", "locale")
    try:
        names = os.listdir(localedir)
    except OSError:
        return False
    return any(os.path.exists(os.path.join(localedir, name, "LC_MESSAGES", "messages.mo")) for name in names)


def _main(argv: list[str]) -> int:
    if argv == ["--version"]:
        # what argparse's version action prints, without building a parser for it
        printer.raw(f"vfioctl {__version__}\n")
        return 0
    text = prepared_help(argv)
    if text is not None:
        # argparse's help action: the text on sys.stdout (a failed write ignored), then exit 0
        try:
            sys.stdout.write(text)
        except (AttributeError, OSError):
            pass
        raise SystemExit(0)
    args: Any = plain_arguments(argv)
    if args is None:
        selected, at = _selected_command(argv)
        hook_args = None
        if selected == "libvirt-hook":
            argv, hook_args = _hook_arguments(argv, at)
        parser = _build_parser(selected)
        args = parser.parse_args(argv)
        if hook_args is not None:
            args.args = hook_args
        if not getattr(args, "command", None):
            try:
                parser.print_help()
            except OSError:
                pass
            return 2
    json_out = bool(getattr(args, "json", False))
    # lazy: the environment's readers (their patterns: re, ~5 ms) after `vfioctl --version`
    from vfioctl.host import env

    try:
        env.check_all()
        ctx = Context(args)
        return int(args.func(args, ctx) or 0)
    except VfioctlError as err:
        if json_out and not isinstance(err, printer.OutputFailed):
            try:
                emit_json(err.to_dict())
            except printer.OutputFailed:
                pass
        if not (isinstance(err, printer.OutputFailed) and err.quiet):
            printer.err(f"vfioctl: {err.message}")
        if isinstance(err, printer.OutputFailed):
            printer.discard_stdout()
        return err.exit_code
    except KeyboardInterrupt:
        printer.err("vfioctl: interrupted")
        return 130
    except Exception as err:  # a bug: say so in one line, keep the detail for the report
        if env.debug():
            raise
        printer.err(
            f"vfioctl: internal error: {type(err).__name__}: {err} "
            "(a bug in vfioctl; rerun with VFIOCTL_DEBUG=1 for the traceback and report it)"
        )
        return 70
