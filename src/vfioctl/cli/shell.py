"""Shell completion (bash, zsh, fish) and the man page, generated from the argparse parser.

One walk of the parser (:func:`spec`) gives every command path (``sriov set``), its options
(which take a value, which a file, which a choice) and its positional arguments; each shell's
script and the roff page are written from it, so none can drift from the parser
(tests/unit/cli/test_shell.py runs the scripts in the real shells).  Nothing here runs at
start-up: only `vfioctl completion` and `vfioctl man` import it.

Why not shtab or argparse-manpage: both install on Debian 12's Python 3.11 and run on 3.13,
but shtab writes no fish, and either would be vfioctl's first run-time dependency (the
package has none); the parser walk both do is this module's first forty lines.  Completion
of a device (DEV, PF) lists /sys/bus/pci/devices in the shell itself, with no Python start.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field

#: options whose value is a file or folder on this machine
FILE_OPTIONS = {"--root", "--config", "--dump", "--rom", "--qmp", "--vfioctl"}
#: positional metavars whose value is a file
FILE_ARGS = {"FILE.tar.gz", "FILE"}
#: positional metavars whose value is a PCI function
DEVICE_ARGS = {"DEV", "PF"}
#: what a shell lists for a device: the functions of this machine, each as the kernel names it
DEVICES_CMD = "ls /sys/bus/pci/devices 2>/dev/null"


@dataclass
class Option:
    flags: list[str]
    help: str
    takes_value: bool
    choices: list[str] = field(default_factory=list)
    metavar: str = ""

    @property
    def file(self) -> bool:
        return any(f in FILE_OPTIONS for f in self.flags)


@dataclass
class Command:
    path: tuple[str, ...]
    help: str
    description: str
    epilog: str
    usage: str
    options: list[Option]
    #: positional metavars, in order (not subcommands)
    args: list[str]
    subcommands: dict[str, str]
    #: the choices of a positional argument that has them (`completion SHELL`)
    arg_choices: list[str] = field(default_factory=list)


def spec(parser: argparse.ArgumentParser) -> list[Command]:
    """Every command of *parser*, the top one first, depth first."""
    out: list[Command] = []

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...], helptext: str) -> None:
        opts, args, subs, children, choices = [], [], {}, [], []
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                helps = {c.dest: c.help or "" for c in a._choices_actions}
                for name, sub in a.choices.items():
                    subs[name] = helps.get(name, "")
                    children.append((sub, path + (name,), helps.get(name, "")))
            elif a.option_strings:
                if a.help == argparse.SUPPRESS:
                    continue
                takes = a.nargs != 0 and not isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                                                            argparse._HelpAction, argparse._VersionAction,
                                                            argparse.BooleanOptionalAction))
                flags = list(a.option_strings)
                opts.append(Option(flags, _one_line(a.help or ""), takes, [str(c) for c in a.choices or ()],
                                   str(a.metavar or a.dest.upper())))
            else:
                args.append(str(a.metavar or a.dest))
                choices += [str(c) for c in a.choices or ()]
        out.append(Command(path, helptext, p.description or "", p.epilog or "", p.format_usage().strip(), opts,
                           args, subs, choices))
        for sub, sub_path, sub_help in children:
            walk(sub, sub_path, sub_help)

    walk(parser, (), parser.description or "")
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _words(items) -> str:
    return " ".join(items)


# ------------------------------------------------------------------ bash
def bash(commands: list[Command]) -> str:
    """A bash completion script (bash-completion's ``complete -F``; works without it too)."""
    cases_path, cases_value = [], []
    for c in commands:
        key = _key(c.path)
        words = [f for o in c.options for f in o.flags] + list(c.subcommands)
        arg = _bash_arg(c)
        cases_path.append(f'        "{key}") words="{_words(words)}"; arg={arg} ;;')
        for o in c.options:
            if not o.takes_value:
                continue
            what = "file" if o.file else f'"{_words(o.choices)}"' if o.choices else "none"
            for f in o.flags:
                cases_value.append(f'        "{key}|{f}") value={what} ;;')
    subs = " ".join(f'[{_q(_key(c.path))}]="{_words(c.subcommands)}"' for c in commands if c.subcommands)
    takes = _words(sorted({f for c in commands for o in c.options if o.takes_value for f in o.flags}))
    return f"""# bash completion for vfioctl (generated by `vfioctl completion bash`)
_vfioctl() {{
    local cur prev i w cmdpath=vfioctl value="" words="" arg=none
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local -A subs=({subs})
    local takes=" {takes} "
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if [[ "$takes" == *" $w "* ]]; then ((i++)); continue; fi
        [[ "$w" == -* ]] && continue
        if [[ " ${{subs[$cmdpath]}} " == *" $w "* ]]; then cmdpath="$cmdpath $w"; fi
    done
    case "$cmdpath|$prev" in
{chr(10).join(cases_value) or '        "") ;;'}
    esac
    if [[ -n "$value" ]]; then
        case "$value" in
            file) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
            none) COMPREPLY=() ;;
            *) COMPREPLY=($(compgen -W "$value" -- "$cur")) ;;
        esac
        return 0
    fi
    case "$cmdpath" in
{chr(10).join(cases_path)}
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    elif [[ -n "${{subs[$cmdpath]}}" ]]; then
        COMPREPLY=($(compgen -W "${{subs[$cmdpath]}}" -- "$cur"))
    elif [[ "$arg" == device ]]; then
        COMPREPLY=($(compgen -W "$({DEVICES_CMD})" -- "$cur"))
    elif [[ "$arg" == file ]]; then
        COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null
    elif [[ "$arg" != none ]]; then
        COMPREPLY=($(compgen -W "$arg" -- "$cur"))
    fi
    return 0
}}
complete -F _vfioctl vfioctl
"""


def _key(path: tuple[str, ...]) -> str:
    """A command path as the scripts name it: ``vfioctl sriov set`` (never empty: bash's
    associative arrays refuse an empty key)."""
    return " ".join(("vfioctl",) + path)


def _bash_arg(c: Command) -> str:
    """What a positional argument takes: ``device``, ``file``, ``none``, or its choices quoted."""
    if c.arg_choices:
        return '"' + " ".join(c.arg_choices) + '"'
    if any(a in DEVICE_ARGS for a in c.args):
        return "device"
    if any(a in FILE_ARGS for a in c.args):
        return "file"
    return "none"


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`") + '"'


# ------------------------------------------------------------------ zsh
def zsh(commands: list[Command]) -> str:
    """A zsh completion function (``#compdef``, for a folder in ``fpath``)."""
    lines = []
    for c in commands:
        key = _key(c.path)
        specs = []
        for o in c.options:
            for f in o.flags:
                action = ""
                if o.takes_value:
                    action = ":file:_files" if o.file else (f":{o.metavar}:({' '.join(o.choices)})" if o.choices
                                                            else f":{o.metavar}: ")
                specs.append(_zq(f"{f}[{_zh(o.help)}]{action}"))
        subs = [_zq(f"{name}:{_zh(h)}") for name, h in c.subcommands.items()]
        arg = _bash_arg(c)
        lines.append(f"        {_zq(key)}) opts=({' '.join(specs)}); subs=({' '.join(subs)}); arg={arg} ;;")
    return f"""#compdef vfioctl
# zsh completion for vfioctl (generated by `vfioctl completion zsh`)
_vfioctl() {{
    local -a opts subs words_before
    local cmdpath=vfioctl arg=none w i
    local -A children
{_zsh_children(commands)}
    for ((i = 2; i < CURRENT; i++)); do
        w="${{words[i]}}"
        [[ "$w" == -* ]] && continue
        if [[ " ${{children[$cmdpath]}} " == *" $w "* ]]; then cmdpath="$cmdpath $w"; fi
    done
    case "$cmdpath" in
{chr(10).join(lines)}
    esac
    if [[ "${{words[CURRENT]}}" == -* || ${{#subs}} -eq 0 && "$arg" == none ]]; then
        _arguments -s "${{opts[@]}}" '*::arg: '
    elif (( ${{#subs}} )); then
        _describe -t commands 'vfioctl command' subs
    elif [[ "$arg" == device ]]; then
        local -a devs
        devs=(${{(f)"$({DEVICES_CMD})"}})
        compadd -a devs
    elif [[ "$arg" == file ]]; then
        _files
    else
        compadd ${{=arg}}
    fi
}}
_vfioctl "$@"
"""


def _zsh_children(commands: list[Command]) -> str:
    # key-value pairs: in zsh a quoted subscript in children['x']=... keeps its quotes in the key
    pairs = " ".join(f"{_zq(_key(c.path))} {_zq(' '.join(c.subcommands))}" for c in commands if c.subcommands)
    return f"    children=({pairs})"


def _zh(text: str) -> str:
    return re.sub(r"[\[\]:]", lambda m: "\\" + m[0], text)


def _zq(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


# ------------------------------------------------------------------ fish
def fish(commands: list[Command]) -> str:
    """fish completions (for ``vendor_completions.d``)."""
    out = ["# fish completion for vfioctl (generated by `vfioctl completion fish`)", "complete -c vfioctl -f"]
    by_path = {c.path: c for c in commands}
    for c in commands:
        cond = _fish_cond(c.path, by_path)
        for name, h in c.subcommands.items():
            out.append(f"complete -c vfioctl -n {_fq(cond)} -a {_fq(name)} -d {_fq(h)}")
        for o in c.options:
            parts = []
            for f in o.flags:
                parts.append(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}")
            value = ""
            if o.takes_value:
                value = " -r -F" if o.file else (f" -r -f -a {_fq(' '.join(o.choices))}" if o.choices else " -r")
            out.append(f"complete -c vfioctl -n {_fq(cond)} {' '.join(parts)}{value} -d {_fq(o.help)}")
        arg = _bash_arg(c)
        if arg == "device" and not c.subcommands:
            out.append(f"complete -c vfioctl -n {_fq(cond)} -a {_fq('(' + DEVICES_CMD + ')')}")
        elif arg == "file" and not c.subcommands:
            out.append(f"complete -c vfioctl -n {_fq(cond)} -F")
        elif c.arg_choices:
            out.append(f"complete -c vfioctl -n {_fq(cond)} -a {_fq(' '.join(c.arg_choices))}")
    return "\n".join(out) + "\n"


def _fish_cond(path: tuple[str, ...], by_path: dict) -> str:
    if not path:
        return "__fish_use_subcommand"
    conds = [f"__fish_seen_subcommand_from {path[i]}" for i in range(len(path))]
    me = by_path.get(path)
    if me is not None and me.subcommands:
        conds.append("not __fish_seen_subcommand_from " + " ".join(me.subcommands))
    return "; and ".join(conds)


def _fq(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


# ------------------------------------------------------------------ man
def man(commands: list[Command], *, version: str, date: str) -> str:
    """The man page (roff, man(7) macros): every command with its usage, description, options
    and examples, then exit status, files and environment."""
    top = commands[0]
    # no tbl(1) table: man(1) runs tbl only when the page asks for it, and groff 1.23 (Debian
    # 13) warns of a table it was not run on; the exit codes are a tagged list
    out = [f'.TH VFIOCTL 1 "{date}" "vfioctl {version}" "User Commands"',
           ".SH NAME", "vfioctl \\- safe, fast, boring PCI device assignment (VFIO) for Linux KVM hosts",
           ".SH SYNOPSIS", f".B vfioctl\n{_roff('[--json] [--root PATH] COMMAND [ARGS]')}",
           ".SH DESCRIPTION", _roff(top.description)]
    out += _text_block(top.epilog.split("exit codes:")[0])
    out.append(".SH COMMANDS")
    for c in commands[1:]:
        out.append(f".SS {_roff(' '.join(('vfioctl',) + c.path))}")
        out.append(".nf\n" + _roff(c.usage.removeprefix("usage: ")) + "\n.fi")
        if c.description:
            out.append(".PP\n" + _roff(c.description))
        for o in c.options:
            if o.flags == ["-h", "--help"]:
                continue
            flag = ", ".join(o.flags) + (f" {o.metavar}" if o.takes_value else "")
            out.append(f".TP\n.B {_roff(flag)}\n{_roff(o.help)}")
        if c.epilog:
            out += _text_block(c.epilog)
    out += [".SH EXIT STATUS",
            *[f".TP\n.B {code}\n{_roff(what)}" for code, what in EXIT_CODES],
            ".SH FILES", ".TP\n/etc/vfioctl/vfioctl.toml\nthe declarative config (`apply`, `boot install`)",
            ".TP\n/var/lib/vfioctl/state.json\nthe journal: every original value vfioctl changed",
            ".TP\n/var/lib/vfioctl/boot-manifest.json\nthe files `boot install` wrote",
            ".SH ENVIRONMENT",
            ".TP\nVFIOCTL_ROOT\nthe host to read, as --root",
            ".TP\nVFIOCTL_STATE_DIR\nwhere the journal is kept (default /var/lib/vfioctl)",
            ".TP\nVFIOCTL_DEBUG\nset: an internal error prints its traceback",
            ".TP\nNO_COLOR\nset: no colour on a terminal",
            ".SH SEE ALSO", "lspci(8), virsh(1), qemu-system-x86_64(1); the documentation in the source: "
            "README.md and docs/"]
    return "\n".join(out) + "\n"


EXIT_CODES = (
    (0, "success"), (1, "the command ran and found a problem (check has a fail, status an inconsistency)"),
    (2, "command-line usage error"),
    (65, "bad input (address, ID, selector, environment variable, config, snapshot, journal, QEMU answer)"),
    (66, "a device, group, interface or file named does not exist"),
    (69, "refused: in use by the host, group not viable, held by a VM, host not ready"),
    (70, "internal error (a bug)"),
    (73, "the change was made, but the CDI spec the config keeps was not refreshed"),
    (74, "the kernel refused a change or did not confirm it (rolled back), or the output could not be written"),
    (75, "busy: another vfioctl holds the lock, or a bounded wait ran out"), (77, "permission denied"),
    (130, "interrupted; what was done has been rolled back"),
)


def _text_block(text: str) -> list[str]:
    """An epilog: prose paragraphs filled, indented blocks (examples, formats) kept as they are."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text.strip("\n")):
        if not para.strip():
            continue
        lines = para.splitlines()
        if lines[0].rstrip().endswith(":") and not lines[0].startswith(" "):
            out.append(f".PP\n.B {_roff(lines[0].strip())}")
            lines = lines[1:]
        if lines and all(ln.startswith(" ") for ln in lines):
            out.append(".nf\n.RS 4\n" + "\n".join(_roff(ln.strip()) for ln in lines) + "\n.RE\n.fi")
        elif lines:
            out.append(".PP\n" + _roff(" ".join(ln.strip() for ln in lines)))
    return out


def _roff(text: str) -> str:
    """Text safe for roff: backslashes escaped, a line never starting with a control character."""
    s = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + ln) if ln[:1] in (".", "'") else ln for ln in s.splitlines())
