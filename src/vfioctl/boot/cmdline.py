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
import shlex
from dataclasses import dataclass, field

from vfioctl.base.errors import HostNotReady, InvalidInput
from vfioctl.boot import grubfile
from vfioctl.host.core import Host
from vfioctl.host.system import (
    EDIT_GRUB,
    EDIT_GRUBBY,
    cmdline_editor,
    find_tool,
    grub_regenerate_command,
)
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.session import Session
from vfioctl.ops.steps.files import FileState, RunProgram, SetFile

GRUB_DEFAULT = "/etc/default/grub"
KERNEL_CMDLINE = "/etc/kernel/cmdline"
BLS_ENTRIES = "/boot/loader/entries"
BACKUP_SUFFIX = ".vfioctl.bak"


def check_arg(arg: str) -> str:
    """A kernel parameter as vfioctl accepts it: see :func:`vfioctl.boot.grubfile.check_arg`."""
    return grubfile.check_arg(arg)


def edit_args(current: str, add: list[str] | tuple[str, ...] = (), remove: list[str] | tuple[str, ...] = ()) -> str:
    """The command line *current* with *remove* taken out and *add* put in.

    Idempotent: an argument already present changes nothing.  ``iommu=pt``
    replaces another ``iommu=`` value; removing ``intel_iommu`` removes it
    whatever its value, removing ``intel_iommu=on`` only that exact value.
    The arguments given are checked (:func:`check_arg`); the tokens already in
    *current* are kept as they are.
    """
    tokens = grubfile.edit_words(current.split(), add, remove)
    if tokens == current.split():
        return current
    return " ".join(tokens)


def edit_grub_default(text: str, var: str, add: list[str], remove: list[str], *,
                      regenerate: str = "update-grub") -> str:
    """/etc/default/grub with *var*'s value edited; the variable is appended if missing.

    The file is shell code: :func:`vfioctl.boot.grubfile.edit` edits the assignment
    that takes effect (the last) as sh reads it, and refuses (exit 69) what it
    cannot edit with certainty; the refusal tells the user to edit by hand and
    then run *regenerate*.
    """
    return grubfile.edit(text, var, add, remove, path=GRUB_DEFAULT, regenerate=regenerate)


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
    """How this host's command line is edited: "grubby", "kernel-cmdline" or "grub"
    (:data:`vfioctl.host.system.CMDLINE_EDITOR`, from :func:`~vfioctl.host.system.boot_setup`)."""
    editor = cmdline_editor(host)
    if editor is not None:
        return editor
    raise HostNotReady(
        f"cannot tell how this host boots: none of {GRUB_DEFAULT}, {KERNEL_CMDLINE}, "
        f"or {BLS_ENTRIES} with grubby exists; add the arguments in your boot loader's configuration by hand"
    )


def _read(host: Host, path: str) -> str:
    return host.read_text(path, default="")


def _grub_d_overrides(host: Host, var: str) -> list[str]:
    """/etc/default/grub.d/*.cfg files that set *var* (or may: they do more than assign
    variables): grub-mkconfig sources them after /etc/default/grub."""
    out = []
    for name in host.listdir("/etc/default/grub.d"):
        path = f"/etc/default/grub.d/{name}"
        if name.endswith(".cfg") and grubfile.parse(_read(host, path)).may_set(var):
            out.append(path)
    return out


def plan(host: Host, add: list[str] | tuple[str, ...] = (), remove: list[str] | tuple[str, ...] = ()) -> CmdlineChange:
    """What would change, and the commands to run; writes nothing."""
    add, remove = [check_arg(a) for a in add], [check_arg(r) for r in remove]
    setup = detect(host)
    notes: list[str] = []
    edits: list[FileEdit] = []
    commands: list[str] = []
    if setup == EDIT_GRUB:
        old = _read(host, GRUB_DEFAULT)
        regenerate = grub_regenerate_command(host)
        edits.append(FileEdit(GRUB_DEFAULT, old, edit_grub_default(old, "GRUB_CMDLINE_LINUX_DEFAULT", add, remove,
                                                                   regenerate=regenerate)))
        if edits[0].changed:
            commands.append(regenerate)
        for p in _grub_d_overrides(host, "GRUB_CMDLINE_LINUX_DEFAULT"):
            notes.append(f"{p} also sets GRUB_CMDLINE_LINUX_DEFAULT and is read after {GRUB_DEFAULT}: "
                         "check that it keeps the value")
    elif setup == EDIT_GRUBBY:
        if host.exists(GRUB_DEFAULT):
            old = _read(host, GRUB_DEFAULT)
            edits.append(FileEdit(GRUB_DEFAULT, old, edit_grub_default(old, "GRUB_CMDLINE_LINUX", add, remove,
                                                                       regenerate=grub_regenerate_command(host))))
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
            if find_tool(host, "proxmox-boot-tool"):
                commands.append("proxmox-boot-tool refresh")
            else:
                rel = host.uname_release() or "$(uname -r)"
                commands.append(f"kernel-install add {rel} /boot/vmlinuz-{rel}")
    return CmdlineChange(setup, edits, commands, list(add), list(remove), notes)


def steps(host: Host, change: CmdlineChange) -> Plan:
    """The change as executor steps: each edited file (its old content kept as FILE.vfioctl.bak,
    its mode kept), then each command that runs here (the live host, the tool installed, no
    placeholder left for the user to fill in); the others stay for the user to run."""
    plan = Plan("boot cmdline")
    for e in change.edits:
        if e.changed:
            plan.steps.append(SetFile(e.path, FileState("file", content=e.new, mode=None),
                                      FileState("file", content=e.old, mode=None), backup_suffix=BACKUP_SUFFIX))
    for c in change.commands:
        argv = shlex.split(c)
        if host.is_live and find_tool(host, argv[0]) is not None and "$(" not in c:
            plan.steps.append(RunProgram(tuple(argv), note="the boot loader's configuration follows the file"))
    return plan


def apply(host: Host, change: CmdlineChange, dry_run: bool = False) -> CmdlineChange:
    """Write the edited files and run the commands on a live host, as executor steps under the
    journal lock: a command that fails puts the files back (and runs it again on them)."""
    if dry_run or not change.changed:
        return change
    for e in change.edits:
        kind = host.kind(e.path, follow=False)
        if e.changed and kind not in (None, "file"):
            raise InvalidInput(f"{e.path} is not a regular file ({kind}); edit it by hand")
    plan = steps(host, change)
    with Session(host) as s:
        result = s.execute(plan)
    for step in plan.steps:
        seen = result.seen(step)
        if isinstance(step, RunProgram) and isinstance(seen, tuple):
            change.ran[step.value], change.outputs[step.value] = seen
    return change


def fix_command(add: list[str] | tuple[str, ...] = (), remove: list[str] | tuple[str, ...] = ()) -> str:
    """The vfioctl command that makes a kernel argument change (for `vfioctl check` fixes)."""
    parts = ["vfioctl", "boot", "cmdline"]
    for a in add:
        parts += ["--add", a]
    for r in remove:
        parts += ["--remove", r]
    return shlex.join(parts)
