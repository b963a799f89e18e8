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

from vfioctl.base.errors import HostNotReady, InvalidInput, Refused
from vfioctl.base.names import is_plain_abs_path
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
from vfioctl.ops.config import DEFAULT_PATH, load_config

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
        for n in self.notes:
            lines.append(f"note: {n}")
        return "\n".join(lines)


def check_vfioctl_path(path: str) -> str:
    if not is_plain_abs_path(path):
        raise InvalidInput(f"--vfioctl {str(path)[:80]!r} must start with an absolute path and have no control "
                           "characters")
    return path


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
    if not host.exists(argv[0]):
        raise HostNotReady(
            f"{argv[0]} does not exist on {host.describe()}: the boot files would call a missing vfioctl; "
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


def manifest_stale(host: Host, config_path: str) -> str | None:
    """A one-line warning when installed boot files were generated from another version of the config."""
    m = read_manifest(host)
    if not m or m.get("config") != config_path:
        return None
    text = host.read_text(config_path, default=None)
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


def _run_commands(host: Host, cmds: list[list[str]], run: bool) -> list[CommandRun]:
    """Run *cmds* when *run* and the host is the live one and the tool is there; else list them."""
    out = []
    for argv in cmds:
        c = shlex.join(argv)
        can = run and host.is_live and find_tool(host, argv[0]) is not None
        if argv[0] == "systemctl" and not host.is_dir("/run/systemd/system"):
            can = False  # systemd is not PID 1 (container, chroot): nothing to reload
        if not can:
            out.append(CommandRun(c, False))
            continue
        rc, output = host.run(argv, timeout=600)
        out.append(CommandRun(c, True, rc, output[-2000:]))
    return out


def install(host: Host, config_path: str = DEFAULT_PATH, dry_run: bool = False, initramfs: bool = False,
            vfioctl: str | None = None) -> InstallResult:
    """Write the boot files for the config at *config_path* (host-absolute).

    Refuses to overwrite a file vfioctl did not write.  Files of an earlier
    install that are no longer generated are removed.  Commands (daemon and
    udev reload, the initramfs rebuild with *initramfs*) run only on the live
    host; otherwise they are returned for the user to run.
    """
    config = load_config(host, config_path)  # checks the path first (config.check_path)
    cmd = resolve_vfioctl(host, vfioctl)
    facts = gather_facts(host, config, cmd)
    files = generate(config, facts)
    old = read_manifest(host)
    owned = _owned(old)
    for f in files:
        if host.kind(f.path, follow=False) is not None and f.path not in owned and not _same(host, f):
            raise Refused(f"{f.path} exists and was not written by vfioctl; move it away, then run "
                          "`vfioctl boot install` again", path=f.path)
    new_paths = {f.path for f in files}
    stale = [p for p in owned if p not in new_paths]
    notes = list(facts.notes)
    removed: list[str] = []
    if not dry_run:
        for f in files:
            if f.link:
                host.write_link(f.path, f.link)
            else:
                host.write_file(f.path, f.content, f.mode, makedirs=True)
        for p in stale:
            state = _entry_matches(host, owned[p])
            if state:
                host.unlink(p)
                removed.append(p)
            elif state is False:
                notes.append(f"{p} was changed since vfioctl wrote it: left in place")
        text = host.read_text(config_path, default="")
        manifest = {
            "schema": "vfioctl.boot-manifest/1",
            "config": config_path,
            "config_sha256": _sha(text),
            "vfioctl": cmd,
            "files": [
                {"path": f.path, "link": f.link} if f.link else
                {"path": f.path, "mode": f"{f.mode:04o}", "sha256": _sha(f.content)}
                for f in files
            ],
        }
        host.check_private_dir(host.state_dir())
        host.write_file(manifest_path(host), json.dumps(manifest, indent=2) + "\n", 0o600, makedirs=True)
    else:
        removed = stale
    runs = _run_commands(host, _reload_commands(host), run=not dry_run)
    if facts.initramfs:
        runs += _run_commands(host, [INITRAMFS_COMMANDS[facts.initramfs]], run=initramfs and not dry_run)
    else:
        notes.append("no initramfs builder found (initramfs-tools, dracut, mkinitcpio): "
                     "host drivers that load from an initramfs are not covered")
    return InstallResult(files=files, commands=runs, removed=removed, notes=notes, dry_run=dry_run)


def uninstall(host: Host, dry_run: bool = False, initramfs: bool = False) -> InstallResult:
    """Remove exactly the files the manifest lists (unless changed since), then the manifest."""
    m = read_manifest(host)
    if m is None:
        return InstallResult(files=[], commands=[], notes=["no boot files installed (no manifest at "
                                                            f"{manifest_path(host)})"], dry_run=dry_run)
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
            if not dry_run:
                host.unlink(p)
            removed.append(p)
    if not dry_run:
        host.unlink(manifest_path(host))
    runs = _run_commands(host, _reload_commands(host), run=not dry_run)
    tool = initramfs_tool(host)
    if had_initramfs and tool:
        runs += _run_commands(host, [INITRAMFS_COMMANDS[tool]], run=initramfs and not dry_run)
        if not (initramfs and host.is_live):
            notes.append("the initramfs still holds the boot hook until it is rebuilt")
    return InstallResult(files=[], commands=runs, removed=removed, notes=notes, dry_run=dry_run)
