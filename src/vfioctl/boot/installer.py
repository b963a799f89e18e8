"""Write the boot files under the host root, record them in a manifest, and remove exactly
those again.  Every file operation goes through :class:`~vfioctl.host.core.Host`; every path
read back from the manifest must be one `boot install` writes."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field

from vfioctl.base.errors import HostNotReady, InvalidInput, Refused, valid
from vfioctl.base.names import is_plain_abs_path
from vfioctl.base.text import with_notes
from vfioctl.boot.facts import gather_facts
from vfioctl.boot.render import (
    DRACUT_CONF,
    INITRAMFS_TOOLS_HOOK,
    KNOWN_PATHS,
    MKINITCPIO_CONF,
    GeneratedFile,
    generate,
)
from vfioctl.host.core import Host
from vfioctl.host.system import find_tool, initramfs_tool
from vfioctl.ops.config import DEFAULT_PATH, check_path, load_config
from vfioctl.ops.executor import Result
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.session import Session
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.files import FileState, RunProgram, SetFile, read_file_state

MANIFEST_NAME = "boot-manifest.json"

INITRAMFS_COMMANDS = {
    # -k all: the hook is the same for every kernel, and the one booted next may not be the newest
    "initramfs-tools": ["update-initramfs", "-u", "-k", "all"],
    "dracut": ["dracut", "-f", "--regenerate-all"],
    "mkinitcpio": ["mkinitcpio", "-P"],
}


@dataclass
class CommandRun:
    command: str
    ran: bool
    rc: int | None = None
    output: str = ""

    def to_dict(self) -> dict:
        return {"command": self.command, "ran": self.ran, "rc": self.rc, "output": self.output}


@dataclass
class InstallResult:
    #: files written (or, with dry_run, that would be)
    files: list[GeneratedFile]
    #: commands that make the files take effect, run or to run by hand
    commands: list[CommandRun]
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: commands listed for the user to run (not steps here)
    listed: list[CommandRun] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.ran and c.rc not in (0, None) for c in self.commands)

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "files": [f.to_dict() for f in self.files],
            "removed": self.removed,
            "commands": [c.to_dict() for c in self.commands],
            "notes": self.notes,
        }

    def render(self, show_content: bool | None = None) -> str:
        show = self.dry_run if show_content is None else show_content
        verb_w, verb_r = ("would write", "would remove") if self.dry_run else ("wrote", "removed")
        lines = []
        for f in self.files:
            if f.link:
                lines.append(f"{verb_w} {f.path} -> {f.link}")
                continue
            lines.append(f"{verb_w} {f.path} (mode {f.mode:04o})")
            if show:
                lines += ["    " + x if x else "" for x in f.content.rstrip("\n").split("\n")]
                lines.append("")
        for p in self.removed:
            lines.append(f"{verb_r} {p}")
        for c in self.commands:
            if c.ran:
                lines.append(f"ran: {c.command} (exit {c.rc})" + (f"\n    {c.output.strip()}" if c.rc and c.output.strip() else ""))
            else:
                lines.append(f"run: {c.command}")
        return with_notes(lines, self.notes)


def check_vfioctl_path(path: str) -> str:
    return valid(path, is_plain_abs_path(path),
                 f"--vfioctl {str(path)[:80]!r} must start with an absolute path and have no control characters")


def _command_words(command: str) -> list[str]:
    """``--vfioctl`` as shell words: a program (absolute path) and its arguments
    (``/usr/bin/python3 -m vfioctl``)."""
    if not isinstance(command, str) or not command.isprintable():
        raise InvalidInput(f"--vfioctl {str(command)[:80]!r} has control characters; refusing it")
    try:
        words = shlex.split(command)
    except ValueError as err:
        raise InvalidInput(f"--vfioctl {command[:80]!r}: {err}") from None
    if not words:
        raise InvalidInput("--vfioctl is empty")
    check_vfioctl_path(words[0])  # the other words are printable: shlex only drops quotes from it
    return words


def resolve_vfioctl(host: Host, explicit: str | None = None) -> list[str]:
    """The vfioctl command the unit runs (argv), its program an absolute path on the host.

    The script next to the running interpreter comes first (the same installation that
    wrote the files), then ``vfioctl`` on PATH, then ``<python> -m vfioctl``."""
    if explicit:
        argv = _command_words(explicit)
    else:
        beside = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "vfioctl")
        found = shutil.which("vfioctl")
        if os.path.exists(beside):
            argv = [beside]
        elif found:
            argv = [os.path.abspath(found)]
        else:
            argv = [os.path.abspath(sys.executable), "-m", "vfioctl"]
        check_vfioctl_path(argv[0])
    # on a snapshot (only ever a dry run) the command is this machine's: the caller named it, or
    # it is this installation; a snapshot holds no programs to look for it in
    where = Host("/") if host.captured else host
    if not where.exists(argv[0]):
        raise HostNotReady(
            f"{argv[0]} does not exist on {where.describe()}: the boot files would call a missing vfioctl; "
            "pass --vfioctl PATH"
        )
    return argv


def manifest_path(host: Host) -> str:
    return f"{host.state_dir()}/{MANIFEST_NAME}"


def read_manifest(host: Host) -> dict | None:
    """The manifest of the last install, validated: only paths `boot install` writes."""
    path = manifest_path(host)
    text = host.read_text(path, default=None)
    if text is None:
        return None
    bad = Refused(f"{path} is not a manifest vfioctl wrote; vfioctl cannot tell which boot files are its own. "
                  "Inspect it, then remove it and run `vfioctl boot install` again")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise bad from None
    if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
        raise bad
    for e in data.get("files", []):
        if not isinstance(e, dict) or e.get("path") not in KNOWN_PATHS:
            raise Refused(f"{path} names {str(e.get('path') if isinstance(e, dict) else e)[:80]!r}, which is not a "
                          f"file `vfioctl boot install` writes; refusing to touch it (remove {path} by hand)")
        if "link" in e and not isinstance(e["link"], str):
            raise bad
        if "link" not in e and not isinstance(e.get("sha256"), str):
            raise bad
    if "config" in data and not isinstance(data["config"], str):
        raise bad
    return data


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_stale(host: Host, config_path: str, config_host: Host | None = None) -> str | None:
    """A one-line warning when installed boot files were generated from another version of the
    config (read through *config_host*: the caller's machine for a file named on the command line)."""
    m = read_manifest(host)
    if not m or m.get("config") != config_path:
        return None
    text = (config_host or host).read_text(config_path, default=None)
    if text is not None and _sha(text) != m.get("config_sha256"):
        return (f"{config_path} changed since `vfioctl boot install`: the boot files still hold the old "
                "config; run `vfioctl boot install` again")
    return None


def _same(host: Host, f: GeneratedFile) -> bool:
    kind = host.kind(f.path, follow=False)
    if f.link:
        return kind == "link" and host.readlink(f.path) == f.link
    return kind == "file" and host.read_text(f.path, default="").strip() == f.content.strip()


def _owned(m: dict | None) -> dict[str, dict]:
    return {e["path"]: e for e in (m or {}).get("files", [])}


def _entry_matches(host: Host, e: dict) -> bool | None:
    """Is the file the manifest lists still what vfioctl wrote?  None when it is gone."""
    kind = host.kind(e["path"], follow=False)
    if kind is None:
        return None
    if "link" in e:
        return kind == "link" and host.readlink(e["path"]) == e["link"]
    return kind == "file" and host.sha256(e["path"]) == e.get("sha256")


def _reload_commands(host: Host) -> list[list[str]]:
    cmds = []
    if host.exists("/run/systemd/system") or find_tool(host, "systemctl"):
        cmds.append(["systemctl", "daemon-reload"])
    if find_tool(host, "udevadm"):
        cmds.append(["udevadm", "control", "--reload"])
    return cmds


def _can_run(host: Host, argv: list[str]) -> bool:
    """Whether *argv* can run here: the live host, the tool installed, and for systemctl
    a systemd that is PID 1 (in a container or chroot there is nothing to reload)."""
    if not host.is_live or find_tool(host, argv[0]) is None:
        return False
    return not (argv[0] == "systemctl" and not host.is_dir("/run/systemd/system"))


def _program_steps(host: Host, cmds: list[list[str]], run: bool) -> tuple[list[Step], list[CommandRun]]:
    """A step for each command that runs here (when *run*); the others are listed for the user."""
    steps: list[Step] = []
    listed: list[CommandRun] = []
    for argv in cmds:
        if run and _can_run(host, argv):
            steps.append(RunProgram(tuple(argv)))
        else:
            listed.append(CommandRun(shlex.join(argv), False))
    return steps, listed


def _commands_run(plan: Plan, listed: list[CommandRun], result: Result | None) -> list[CommandRun]:
    """The commands in plan order: each program step with its exit status and output once it
    ran, then those left for the user."""
    out = []
    for step in plan.steps:
        if isinstance(step, RunProgram):
            seen = result.seen(step) if result is not None else None
            if isinstance(seen, tuple):
                out.append(CommandRun(step.value, True, seen[0], seen[1]))
            else:
                out.append(CommandRun(step.value, False))
    return out + listed


def _file(f: GeneratedFile) -> FileState:
    return FileState("link", link=f.link) if f.link else FileState("file", content=f.content, mode=f.mode)


def install_plan(host: Host, config_path: str = DEFAULT_PATH, *, initramfs: bool = False,
                 vfioctl: str | None = None, config_host: Host | None = None) -> tuple[Plan, InstallResult]:
    """The steps that install the boot files for the config at *config_path* (host-absolute),
    and what to show for them.  Refuses to overwrite a file vfioctl did not write; files of an
    earlier install that are no longer generated are removed; a file already as generated is
    left alone.  Commands (daemon and udev reload, the initramfs rebuild with *initramfs*) are
    steps on the live host, and listed for the user elsewhere."""
    # the config: the host's own, or a file the caller named (*config_host*: this machine)
    config = load_config(config_host or host, config_path)  # checks the path first (config.check_path)
    cmd = resolve_vfioctl(host, vfioctl)
    facts = gather_facts(host, config, cmd)
    files = generate(config, facts)
    owned = _owned(read_manifest(host))
    for f in files:
        if host.kind(f.path, follow=False) is not None and f.path not in owned and not _same(host, f):
            raise Refused(f"{f.path} exists and was not written by vfioctl; move it away, then run "
                          "`vfioctl boot install` again", path=f.path)
    new_paths = {f.path for f in files}
    notes = list(facts.notes)
    plan = Plan("boot install")
    for f in files:
        before = read_file_state(host, f.path)
        after = _file(f)
        if before.kind != after.kind or before.content != after.content or before.link != after.link:
            plan.steps.append(SetFile(f.path, after, before))
    removed = []
    for p in (p for p in owned if p not in new_paths):
        state = _entry_matches(host, owned[p])
        if state:
            plan.steps.append(SetFile(p, FileState.absent(), read_file_state(host, p), note="no longer generated"))
            removed.append(p)
        elif state is False:
            notes.append(f"{p} was changed since vfioctl wrote it: left in place")
    manifest = {
        "schema": "vfioctl.boot-manifest/1",
        "config": config_path,
        "config_sha256": _sha((config_host or host).read_text(config_path, default="")),
        "vfioctl": cmd,
        "files": [
            {"path": f.path, "link": f.link} if f.link else
            {"path": f.path, "mode": f"{f.mode:04o}", "sha256": _sha(f.content)}
            for f in files
        ],
    }
    mpath = manifest_path(host)
    plan.steps.append(SetFile(mpath, FileState("file", content=json.dumps(manifest, indent=2) + "\n", mode=0o600),
                              read_file_state(host, mpath), note="what `boot uninstall` removes"))
    steps, listed = _program_steps(host, _reload_commands(host), run=True)
    if facts.initramfs:
        more, more_listed = _program_steps(host, [INITRAMFS_COMMANDS[facts.initramfs]], run=initramfs)
        steps += more
        listed += more_listed
    else:
        notes.append("no initramfs builder found (initramfs-tools, dracut, mkinitcpio): "
                     "host drivers that load from an initramfs are not covered")
    plan.steps += steps
    shown = InstallResult(files=files, commands=_commands_run(plan, listed, None), removed=removed, notes=notes,
                          dry_run=True)
    shown.listed = listed
    return plan, shown


def install(host: Host, config_path: str = DEFAULT_PATH, dry_run: bool = False, initramfs: bool = False,
            vfioctl: str | None = None, config_host: Host | None = None) -> InstallResult:
    """Write the boot files for the config at *config_path* (host-absolute): the steps of
    :func:`install_plan`, run by the executor under the journal lock (each file verified,
    everything put back if one fails).  With *dry_run*, what would be written."""
    if dry_run:
        return install_plan(host, config_path, initramfs=initramfs, vfioctl=vfioctl, config_host=config_host)[1]
    check_path(config_path)  # bad arguments are refused before the lock creates anything
    if vfioctl:
        _command_words(vfioctl)
    with Session(host) as s:
        plan, shown = install_plan(host, config_path, initramfs=initramfs, vfioctl=vfioctl,
                                   config_host=config_host)
        result = s.execute(plan)
    shown.dry_run = False
    shown.commands = _commands_run(plan, shown.listed, result)
    return shown


def uninstall_plan(host: Host, *, initramfs: bool = False) -> tuple[Plan, InstallResult]:
    """The steps that remove exactly the files the manifest lists (unless changed since), then
    the manifest, and reload what reads them."""
    plan = Plan("boot uninstall")
    m = read_manifest(host)
    if m is None:
        return plan, InstallResult(files=[], commands=[], notes=[
            f"no boot files installed (no manifest at {manifest_path(host)})"], dry_run=True)
    removed, notes = [], []
    had_initramfs = False
    for e in m.get("files", []):
        p = e["path"]
        had_initramfs |= p in (INITRAMFS_TOOLS_HOOK, DRACUT_CONF, MKINITCPIO_CONF)
        state = _entry_matches(host, e)
        if state is None:
            notes.append(f"{p} was already gone")
        elif state is False:
            notes.append(f"{p} was changed since vfioctl wrote it: left in place")
        else:
            plan.steps.append(SetFile(p, FileState.absent(), read_file_state(host, p)))
            removed.append(p)
    mpath = manifest_path(host)
    plan.steps.append(SetFile(mpath, FileState.absent(), read_file_state(host, mpath)))
    steps, listed = _program_steps(host, _reload_commands(host), run=True)
    tool = initramfs_tool(host)
    if had_initramfs and tool:
        more, more_listed = _program_steps(host, [INITRAMFS_COMMANDS[tool]], run=initramfs)
        steps += more
        listed += more_listed
        if not (initramfs and host.is_live):
            notes.append("the initramfs still holds the boot hook until it is rebuilt")
    plan.steps += steps
    shown = InstallResult(files=[], commands=_commands_run(plan, listed, None), removed=removed, notes=notes,
                          dry_run=True)
    shown.listed = listed
    return plan, shown


def uninstall(host: Host, dry_run: bool = False, initramfs: bool = False) -> InstallResult:
    """Remove exactly the files the manifest lists (unless changed since), then the manifest:
    the steps of :func:`uninstall_plan` under the journal lock, put back if one fails."""
    if dry_run:
        return uninstall_plan(host, initramfs=initramfs)[1]
    with Session(host) as s:
        plan, shown = uninstall_plan(host, initramfs=initramfs)
        if not plan.steps:
            shown.dry_run = False
            return shown
        result = s.execute(plan)
    shown.dry_run = False
    shown.commands = _commands_run(plan, shown.listed, result)
    return shown
