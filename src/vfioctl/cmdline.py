"""Edit the kernel command line the way this host's boot setup expects.

Three setups, detected from the host root:

* ``grub`` (Debian, Ubuntu, Arch with GRUB): ``GRUB_CMDLINE_LINUX_DEFAULT`` in
  /etc/default/grub, then ``update-grub`` (or ``grub-mkconfig``).
* ``grubby`` (Fedora, RHEL and derivatives: BLS entries in /boot/loader/entries):
  ``grubby --update-kernel=ALL --args=... --remove-args=...`` for the installed
  kernels, and ``GRUB_CMDLINE_LINUX`` in /etc/default/grub for future ones.
* ``kernel-cmdline`` (systemd-boot, Proxmox): /etc/kernel/cmdline, then
  ``proxmox-boot-tool refresh`` or ``kernel-install add``.

Computing the new text is pure (:func:`edit_args`, :func:`edit_grub_default`);
:func:`plan` reads the host and :func:`apply` writes, with a backup.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field

from vfioctl import facts
from vfioctl.errors import HostNotReady, InvalidInput
from vfioctl.host import Host

GRUB_DEFAULT = "/etc/default/grub"
KERNEL_CMDLINE = "/etc/kernel/cmdline"
BLS_ENTRIES = "/boot/loader/entries"
BACKUP_SUFFIX = ".vfioctl.bak"

_ARG_RE = re.compile(r"^[^\s\"'\\$`]+$")


def check_arg(arg: str) -> str:
    """A kernel parameter as vfioctl accepts it: one word, no quotes or shell syntax."""
    if not isinstance(arg, str) or not _ARG_RE.match(arg) or arg.startswith("="):
        raise InvalidInput(
            f"kernel argument {arg!r} is not one word of the form name or name=value "
            "(no spaces, quotes, $ or backslashes)"
        )
    return arg


def _key(arg: str) -> str:
    # the kernel treats dashes and underscores in parameter names alike
    return arg.split("=", 1)[0].replace("-", "_")


def edit_args(current: str, add: list[str] | tuple[str, ...] = (), remove: list[str] | tuple[str, ...] = ()) -> str:
    """The command line *current* with *remove* taken out and *add* put in.

    Idempotent: an argument already present changes nothing.  ``iommu=pt``
    replaces another ``iommu=`` value; removing ``intel_iommu`` removes it
    whatever its value, removing ``intel_iommu=on`` only that exact value.
    """
    tokens = current.split()
    for r in remove:
        check_arg(r)
        if "=" in r:
            tokens = [t for t in tokens if t != r]
        else:
            tokens = [t for t in tokens if _key(t) != _key(r)]
    for a in add:
        check_arg(a)
        if a in tokens:
            continue
        same = [i for i, t in enumerate(tokens) if _key(t) == _key(a)]
        if same:
            tokens[same[0]] = a
            tokens = [t for i, t in enumerate(tokens) if i not in same[1:]]
        else:
            tokens.append(a)
    if tokens == current.split():
        return current
    return " ".join(tokens)


_ASSIGN = r"^(?P<lead>\s*(?:export\s+)?)(?P<var>{var})=(?P<val>.*?)(?P<trail>\s*(?:#.*)?)$"


def _unquote(val: str) -> str:
    if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
        return val[1:-1]
    return val


def edit_grub_default(text: str, var: str, add: list[str], remove: list[str]) -> str:
    """/etc/default/grub with *var*'s value edited; the variable is appended if missing.

    The last assignment wins in a shell file, so that is the one edited.
    """
    lines = text.split("\n")
    pat = re.compile(_ASSIGN.format(var=re.escape(var)))
    idx = None
    for i, line in enumerate(lines):
        if pat.match(line):
            idx = i
    if idx is None:
        new = edit_args("", add, remove)
        if not new:
            return text
        sep = "" if text.endswith("\n") or not text else "\n"
        return f"{text}{sep}{var}=\"{new}\"\n"
    m = pat.match(lines[idx])
    assert m is not None
    old = _unquote(m["val"])
    new = edit_args(old, add, remove)
    if new == old:
        return text
    lines[idx] = f"{m['lead']}{var}=\"{new}\"{m['trail']}"
    return "\n".join(lines)


@dataclass
class FileEdit:
    path: str
    old: str
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old.splitlines(keepends=True), self.new.splitlines(keepends=True),
            fromfile=f"{self.path}{BACKUP_SUFFIX}", tofile=self.path))

    def to_dict(self) -> dict:
        return {"path": self.path, "changed": self.changed, "diff": self.diff,
                "backup": f"{self.path}{BACKUP_SUFFIX}" if self.changed else None}


@dataclass
class CmdlineChange:
    #: "grub", "grubby" or "kernel-cmdline"
    setup: str
    edits: list[FileEdit]
    #: commands that make the change take effect (empty when nothing changes)
    commands: list[str]
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: command -> exit status, for those run by :func:`apply`
    ran: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(e.changed for e in self.edits) or bool(self.commands)

    def to_dict(self) -> dict:
        return {
            "setup": self.setup,
            "add": self.add,
            "remove": self.remove,
            "changed": self.changed,
            "files": [e.to_dict() for e in self.edits],
            "commands": [{"command": c, "ran": c in self.ran, "rc": self.ran.get(c)} for c in self.commands],
            "notes": self.notes,
        }

    def render(self, dry_run: bool = False) -> str:
        lines = [f"boot setup: {self.setup}"]
        if not self.changed:
            lines.append("no changes: the kernel command line already has what was asked")
        for e in self.edits:
            if e.changed:
                lines.append(e.diff.rstrip("\n"))
                if not dry_run:
                    lines.append(f"backup: {e.path}{BACKUP_SUFFIX}")
        for c in self.commands:
            if c in self.ran:
                lines.append(f"ran: {c} (exit {self.ran[c]})")
                out = self.outputs.get(c, "").strip()
                if self.ran[c] and out:
                    lines.append("    " + out.replace("\n", "\n    "))
            else:
                lines.append(f"run: {c}")
        if self.changed:
            lines.append("the new command line takes effect at the next boot")
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)


def detect(host: Host) -> str:
    """Which boot setup this host has: "grubby", "kernel-cmdline" or "grub"."""
    setup = facts.boot_setup(host)
    if setup == "grubby":
        return "grubby"
    if setup in ("proxmox", "systemd-boot"):
        return "kernel-cmdline"
    if setup in ("debian-grub", "grub2"):
        return "grub"
    raise HostNotReady(
        f"cannot tell how this host boots: none of {GRUB_DEFAULT}, {KERNEL_CMDLINE}, "
        f"or {BLS_ENTRIES} with grubby exists; add the arguments in your boot loader's configuration by hand"
    )


def _read(host: Host, path: str) -> str:
    return host.read_text(path, default="")


def _grub_regenerate(host: Host) -> str:
    return facts.grub_regenerate_command(host)


def _grub_d_overrides(host: Host, var: str) -> list[str]:
    """/etc/default/grub.d/*.cfg files that set *var*: they are read after /etc/default/grub."""
    pat = re.compile(_ASSIGN.format(var=re.escape(var)), re.M)
    out = []
    for name in host.listdir("/etc/default/grub.d"):
        if name.endswith(".cfg") and pat.search(_read(host, f"/etc/default/grub.d/{name}")):
            out.append(f"/etc/default/grub.d/{name}")
    return out


def plan(host: Host, add: list[str] | tuple[str, ...] = (), remove: list[str] | tuple[str, ...] = ()) -> CmdlineChange:
    """What would change, and the commands to run; writes nothing."""
    add, remove = [check_arg(a) for a in add], [check_arg(r) for r in remove]
    setup = detect(host)
    notes: list[str] = []
    edits: list[FileEdit] = []
    commands: list[str] = []
    if setup == "grub":
        old = _read(host, GRUB_DEFAULT)
        edits.append(FileEdit(GRUB_DEFAULT, old, edit_grub_default(old, "GRUB_CMDLINE_LINUX_DEFAULT", add, remove)))
        if edits[0].changed:
            commands.append(_grub_regenerate(host))
        for p in _grub_d_overrides(host, "GRUB_CMDLINE_LINUX_DEFAULT"):
            notes.append(f"{p} also sets GRUB_CMDLINE_LINUX_DEFAULT and is read after {GRUB_DEFAULT}: "
                         "check that it keeps the value")
    elif setup == "grubby":
        if host.exists(GRUB_DEFAULT):
            old = _read(host, GRUB_DEFAULT)
            edits.append(FileEdit(GRUB_DEFAULT, old, edit_grub_default(old, "GRUB_CMDLINE_LINUX", add, remove)))
        # the installed kernels: grubby edits their BLS entries; run it only if one would change
        stale = False
        for name in host.listdir(BLS_ENTRIES):
            if not name.endswith(".conf"):
                continue
            opts = None
            for line in _read(host, f"{BLS_ENTRIES}/{name}").splitlines():
                if line.startswith("options "):
                    opts = line[len("options "):].strip()
            if opts is None or "$kernelopts" in opts or edit_args(opts, add, remove) != opts:
                stale = True
        if stale:
            cmd = ["grubby", "--update-kernel=ALL"]
            if add:
                cmd.append("--args=" + " ".join(add))
            if remove:
                cmd.append("--remove-args=" + " ".join(remove))
            commands.append(shlex.join(cmd))
    else:
        old = _read(host, KERNEL_CMDLINE)
        new = edit_args(old.strip(), add, remove)
        edits.append(FileEdit(KERNEL_CMDLINE, old, old if new == old.strip() else new + "\n"))
        if edits[0].changed:
            if facts.find_tool(host, "proxmox-boot-tool"):
                commands.append("proxmox-boot-tool refresh")
            else:
                rel = host.uname_release() or "$(uname -r)"
                commands.append(f"kernel-install add {rel} /boot/vmlinuz-{rel}")
    return CmdlineChange(setup, edits, commands, list(add), list(remove), notes)


def apply(host: Host, change: CmdlineChange, dry_run: bool = False) -> CmdlineChange:
    """Write the edited files (each after a ``.vfioctl.bak`` backup), then run the commands on a live host."""
    if dry_run:
        return change
    for e in change.edits:
        if not e.changed:
            continue
        kind = host.kind(e.path, follow=False)
        if kind not in (None, "file"):
            raise InvalidInput(f"{e.path} is not a regular file ({kind}); edit it by hand")
        host.write_file(e.path + BACKUP_SUFFIX, e.old, 0o600, action="write the backup")
        host.write_file(e.path, e.new, 0o644)
    for c in change.commands:
        argv = shlex.split(c)
        if not host.is_live or facts.find_tool(host, argv[0]) is None or "$(" in c:
            continue
        rc, out = host.run(argv, timeout=600)
        change.ran[c], change.outputs[c] = rc, out[-2000:]
    return change


def fix_command(add: list[str] | tuple[str, ...] = (), remove: list[str] | tuple[str, ...] = ()) -> str:
    """The vfioctl command that makes a kernel argument change (for `vfioctl check` fixes)."""
    parts = ["vfioctl", "boot", "cmdline"]
    for a in add:
        parts += ["--add", a]
    for r in remove:
        parts += ["--remove", r]
    return shlex.join(parts)
