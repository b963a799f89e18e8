"""libvirt hook: hide a domain's ``managed='no'`` PCI hostdevs when it starts, give them back
when it stops.

libvirt runs ``/etc/libvirt/hooks/qemu.d/*`` (6.5 and newer; before, the single
``/etc/libvirt/hooks/qemu``) as ``HOOK DOMAIN OPERATION SUB-OPERATION EXTRA``
with the domain XML on stdin and ``PATH=/sbin:/usr/sbin:/bin:/usr/bin``
(https://libvirt.org/hooks.html; seen in the lab with libvirt 9.0: prepare/begin,
start/begin, started/begin, then stopped/end, release/end).  A hook that exits
non-zero on prepare stops the start, and libvirt shows its stderr in the error;
libvirt still calls release afterwards, so release gives back only what this
hook took for this domain (journal origin ``libvirt:DOMAIN``).

Installed hook: a two-line sh script that execs vfioctl by its absolute path
(libvirt's PATH has no /usr/local/bin).
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from vfioctl.base.errors import InvalidInput, Refused, VfioctlError
from vfioctl.base.text import parse_int
from vfioctl.boot.installer import resolve_vfioctl
from vfioctl.cluster import cdi
from vfioctl.host import probes
from vfioctl.host.core import Host
from vfioctl.host.process import run_local
from vfioctl.ops import session as engine
from vfioctl.ops.config import DEFAULT_PATH, load_config
from vfioctl.pci.address import PciAddress

HOOKS = "/etc/libvirt/hooks"
HOOK_DIR = f"{HOOKS}/qemu.d"
HOOK_PATH = f"{HOOK_DIR}/vfioctl"
SINGLE_HOOK = f"{HOOKS}/qemu"
MARK = "# vfioctl libvirt hook"
#: libvirt 6.5.0 added the per-driver hook directories (qemu.d)
HOOK_DIR_VERSION = (6, 5)
MAX_XML = 8 << 20
START_OPS = {("prepare", "begin")}
STOP_OPS = {("release", "end")}


@dataclass
class HookResult:
    path: str
    changed: bool
    content: str = ""
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict:
        return {"schema": "vfioctl.libvirt-hook/1", "path": self.path, "changed": self.changed,
                "dry_run": self.dry_run, "content": self.content, "notes": self.notes}

    def render(self) -> str:
        verb = ("would " if self.dry_run else "") + ("write" if self.content else "remove")
        lines = [f"{verb} {self.path}" if self.changed else f"{self.path}: nothing to do"]
        if self.dry_run and self.content:
            lines += ["    " + x for x in self.content.rstrip("\n").split("\n")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


#: MAJOR.MINOR.MICRO, not inside a longer run of digits: one try per run, so linear in the text
_VERSION = re.compile(r"(?<![0-9.])([0-9]{1,6})\.([0-9]{1,6})\.[0-9]")


def libvirt_version(host: Host) -> tuple[int, int] | None:
    """libvirt's (major, minor) from its ``--version`` line (the first 256 characters: a
    snapshot's answer may be anything)."""
    got = host.probe("libvirt-version")
    if isinstance(got, str):
        m = _VERSION.search(got[:256])
        if m:
            return int(m[1]), int(m[2])
    return None


def live_libvirt_version() -> str | None:
    for argv in (["libvirtd", "--version"], ["virtqemud", "--version"], ["virsh", "--version"]):
        # argv: the three fixed commands above
        rc, out = run_local(argv, 10)
        if rc == 0 and out:
            return out.strip().splitlines()[-1][:200]
    return None


#: the first two lines of every hook vfioctl writes, exactly
HEADER = (f"#!/bin/sh\n{MARK}: written by `vfioctl libvirt-hook install`; "
          "`vfioctl libvirt-hook uninstall` removes it.\n")


def hook_text(vfioctl: list[str]) -> str:
    """The hook: POSIX sh, vfioctl's argv shell-quoted word by word."""
    cmd = " ".join(shlex.quote(w) for w in vfioctl)
    return f"{HEADER}exec {cmd} libvirt-hook run \"$@\"\n"


def is_our_hook(text: str) -> bool:
    """Whether *text* is a hook vfioctl wrote, proven by its form, never guessed from a word in
    it: the exact header, then one ``exec`` line that :func:`hook_text` makes for some
    vfioctl command (an absolute program and its shell-quoted words), and nothing else.  A
    file that only mentions the marker in a comment, or that someone edited, is not ours."""
    if not text.startswith(HEADER) or text.count("\n") != 3 or not text.endswith(_TAIL):
        return False
    line = text[len(HEADER):-len(_TAIL)]
    if not line.startswith("exec "):
        return False
    try:
        words = shlex.split(line[len("exec "):])
    except ValueError:
        return False
    return bool(words) and words[0].startswith("/") and hook_text(words) == text


_TAIL = " libvirt-hook run \"$@\"\n"


def hook_path(host: Host) -> str:
    """qemu.d where libvirt has it (or cannot tell: every supported distribution does), else the single file."""
    ver = libvirt_version(host)
    if ver is not None and ver < HOOK_DIR_VERSION and not host.is_dir(HOOK_DIR):
        return SINGLE_HOOK
    return HOOK_PATH


def _ours(host: Host, path: str) -> bool:
    return host.kind(path, follow=False) == "file" and is_our_hook(host.read_text(path, default=""))


def installed(host: Host) -> bool:
    """Whether a hook vfioctl wrote is where libvirt looks."""
    return any(_ours(host, p) for p in (HOOK_PATH, SINGLE_HOOK))


def install(host: Host, *, vfioctl: str | None = None, dry_run: bool = False) -> HookResult:
    argv = resolve_vfioctl(host, vfioctl)
    path = hook_path(host)
    content = hook_text(argv)
    kind = host.kind(path, follow=False)
    if kind is not None and not _ours(host, path):
        raise Refused(f"{path} exists and was not written by vfioctl: libvirt runs only one hook file there; "
                      f"call `{' '.join(argv)} libvirt-hook run \"$@\"` from it yourself")
    changed = kind is None or host.read_text(path, default="") != content
    notes = ["libvirt reads its hooks when it starts: restart it (systemctl restart libvirtd, or virtqemud) "
             "for the hook to take effect"] if changed else []
    if changed and not dry_run:
        host.write_file(path, content, 0o755, makedirs=True)
    return HookResult(path, changed, content, notes, dry_run)


def uninstall(host: Host, *, dry_run: bool = False) -> HookResult:
    notes = []
    for path in (HOOK_PATH, SINGLE_HOOK):
        if _ours(host, path):
            if not dry_run:
                host.unlink(path)
            return HookResult(path, True, "", ["restart libvirt so that it forgets the hook"], dry_run)
        if host.exists(path) and path == HOOK_PATH:
            notes.append(f"{path} was not written by vfioctl: left in place")
    return HookResult(HOOK_PATH, False, "", notes, dry_run)


# ------------------------------------------------------------------ what libvirt calls
def hostdevs(xml: str) -> list[PciAddress]:
    """The PCI addresses of the domain's ``<hostdev mode='subsystem' type='pci' managed='no'>``."""
    if len(xml) > MAX_XML:
        raise InvalidInput(f"the domain XML is larger than {MAX_XML >> 20} MiB")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise InvalidInput(f"the domain XML libvirt passed does not parse: {err}") from None
    out = []
    for hd in root.iter("hostdev"):
        if hd.get("mode") != "subsystem" or hd.get("type") != "pci" or hd.get("managed", "no") != "no":
            continue
        a = hd.find("source/address")
        if a is None:
            continue
        try:
            parts = [parse_int(a.get(k, "0" if k == "domain" else ""), 16) for k in ("domain", "bus", "slot", "function")]
            if any(p is None for p in parts):
                raise ValueError
            addr = PciAddress(*parts)
            out.append(PciAddress.parse(str(addr)))
        except (ValueError, InvalidInput):
            raise InvalidInput(f"the domain XML has a hostdev address vfioctl cannot read: {dict(a.attrib)}") from None
    return list(dict.fromkeys(out))


def origin(domain: str) -> str:
    if not domain or len(domain) > 200 or not domain.isprintable():
        raise InvalidInput("libvirt passed a domain name vfioctl cannot record")
    return f"libvirt:{domain}"


def run(host: Host, argv: list[str], xml: str) -> str:
    """The hook's work for one call; returns what it did, one line (libvirt logs nothing of it)."""
    if len(argv) < 3:
        raise InvalidInput("libvirt-hook run expects DOMAIN OPERATION SUB-OPERATION (libvirt passes them)")
    domain, op, sub = argv[0], argv[1], argv[2]
    if (op, sub) not in START_OPS | STOP_OPS:
        return f"{op}/{sub}: nothing to do"
    who = origin(domain)
    addrs = hostdevs(xml)
    if not addrs:
        return f"{domain}: no managed='no' PCI hostdev"
    if (op, sub) in STOP_OPS:
        with engine.Session(host) as s:
            mine = [a for a in addrs if (r := s.journal.devices.get(str(a))) is not None and r.origin == who]
            if not mine:
                return f"{domain}: nothing vfioctl took for it"
            s.execute(s.plan_restore(mine))
        return f"{domain}: gave back {', '.join(map(str, mine))}" + _refresh_cdi(host, None)
    config = load_config(host, DEFAULT_PATH) if host.exists(DEFAULT_PATH) else None
    entries = {e.address: e for e in (config.addressed if config else [])}
    group = any(entries[a].group for a in addrs if a in entries)
    take_console = any(entries[a].take_console for a in addrs if a in entries)
    units = [u for a in addrs if a in entries for u in entries[a].stop_units] or None
    with engine.Session(host) as s:
        plan = s.plan_hide(list(map(str, addrs)), group=group, origin=who, take_console=take_console,
                           stop_units=units)
        s.execute(plan)
    return (f"{domain}: hid {', '.join(c.address for c in plan.changes) or 'nothing (already on vfio-pci)'}"
            + _refresh_cdi(host, config))


def _refresh_cdi(host: Host, config) -> str:
    """The CDI spec rewritten after the hook's change (``[cdi] path``; vfioctl.cluster.cdi), as
    the words to add to the hook's line.  A failure is said there, never raised: a non-zero exit
    at prepare would make libvirt abort the start and give the devices back, undoing the change."""
    try:
        if config is None:
            config = load_config(host, DEFAULT_PATH) if host.exists(DEFAULT_PATH) else None
        if config is not None:
            cdi.refresh(host, config)
    except VfioctlError as err:
        return f"; the CDI spec was not refreshed: {err.message} (fix that, then run `vfioctl cdi --refresh`)"
    return ""


probes.register("libvirt-version", lambda host, key: live_libvirt_version())
