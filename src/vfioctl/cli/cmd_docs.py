"""vfioctl completion | man"""

from __future__ import annotations

import argparse

from vfioctl.cli import Context, common_options, printer

COMPLETION_EPILOG = """\
Prints the completion script for the shell, generated from vfioctl's own
argument parser: commands, nested commands, options, their choices, files
where a file is asked for, and this machine's PCI functions where a device is.
Install it where the shell looks (Debian 12's paths for software installed
locally; README, "Set up", does this; bash needs the bash-completion package):

examples:
  vfioctl completion bash > /usr/local/share/bash-completion/completions/vfioctl
  vfioctl completion zsh > /usr/local/share/zsh/site-functions/_vfioctl
  vfioctl completion fish > /etc/fish/completions/vfioctl.fish
  source <(vfioctl completion bash)        this shell only
"""

MAN_EPILOG = """\
Prints the man page (roff), generated from vfioctl's own argument parser:
every command with its usage, description, options and examples, then the
exit codes, files and environment.

examples:
  vfioctl man > /usr/local/share/man/man1/vfioctl.1 && man vfioctl
  vfioctl man | man -l -                   read it without installing it
"""


def register(name: str, p: argparse.ArgumentParser) -> None:
    common_options(p, reads_host=False)
    if name == "completion":
        p.epilog = COMPLETION_EPILOG
        p.add_argument("shell", choices=("bash", "zsh", "fish"), help="the shell: bash, zsh or fish")
        p.set_defaults(func=run_completion)
    else:
        p.epilog = MAN_EPILOG
        p.set_defaults(func=run_man)


def run_completion(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: the whole parser and the generators only for `vfioctl completion`
    from vfioctl.cli import build_parser, shell

    printer.raw(getattr(shell, args.shell)(shell.spec(build_parser())).rstrip("\n") + "\n")
    return 0


def run_man(args: argparse.Namespace, ctx: Context) -> int:
    # lazy: the whole parser and the generators only for `vfioctl man`
    from vfioctl.base.version import __version__
    from vfioctl.cli import build_parser, shell

    printer.raw(shell.man(shell.spec(build_parser()), version=__version__, date=RELEASE_DATE).rstrip("\n") + "\n")
    return 0


#: the page's date: the release's, so that the page is the same whenever it is generated
RELEASE_DATE = "2026-12"
