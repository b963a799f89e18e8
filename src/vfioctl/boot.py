"""Make the config hold from early boot: generated files, install and uninstall.

Everything here that produces text is a pure function of the config and of
:class:`BootFacts` (what was measured on the host at install time), so the
generated files are tested against golden files.  :func:`install` writes them
under the host root atomically and records them in a manifest, so that
:func:`uninstall` removes exactly those files.

Why these files, together (docs/boot.md has the long form):

* ``/etc/vfioctl/boot-hook.sh``: a POSIX sh script with the configured
  addresses and IDs baked in.  For each configured function whose
  vendor:device still matches, it writes ``driver_override`` and, when the
  function is unbound, writes its address to ``drivers_probe`` so that it binds
  to vfio-pci at once.  sh, not Python: it must run inside the initramfs, from
  modprobe and udev, in milliseconds, and never fail.
* ``/etc/modprobe.d/vfioctl.conf``: ``install <host driver>`` runs the hook
  and then the real module (``modprobe --ignore-install``), so the overrides
  are in place before the host driver can probe, whoever loads it (udev
  coldplug, the twin device, a user).  Seen on the lab kernel: the configured
  NIC stayed off e1000e while its twin bound normally.  No ``softdep`` beside
  it: kmod then skips the install command (seen on the lab kernel: ``modprobe
  -v e1000e`` loaded vfio-pci, then e1000e, and never ran the hook); the hook
  loads vfio-pci itself, and the initramfs hook adds the vfio modules.  ``options
  vfio_pci ids=`` only for IDs where every function with that ID is configured:
  by ID is never safe when a twin must stay with the host.
* ``/etc/udev/rules.d/61-vfioctl.rules``: on ``add`` of a configured address,
  run the hook for it (before 80-drivers.rules loads drivers).  Covers
  functions that appear later and vfio-pci already being loaded, where an
  override alone binds nothing until something probes again (seen on the
  lab kernel).
* ``vfioctl-apply.service``: runs ``vfioctl apply`` once udev has settled and
  before VM managers start: VF counts, group checks, and moving anything a
  built-in driver took.
* initramfs configuration for this distribution, so that the hook and the
  modprobe.d file are also in the initramfs when host drivers load from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from vfioctl.address import PciAddress
from vfioctl.config import DEFAULT_PATH, Config, load_config
from vfioctl.errors import HostNotReady, Refused, from_oserror
from vfioctl.host import Host

HOOK_PATH = "/etc/vfioctl/boot-hook.sh"
MODPROBE_PATH = "/etc/modprobe.d/vfioctl.conf"
# RUN+= programs run in rule order; 80-drivers.rules adds the module load
UDEV_PATH = "/etc/udev/rules.d/61-vfioctl.rules"
UNIT_NAME = "vfioctl-apply.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
UNIT_TARGET = "multi-user.target"
WANTS_LINK = f"/etc/systemd/system/{UNIT_TARGET}.wants/{UNIT_NAME}"
MANIFEST_NAME = "boot-manifest.json"

INITRAMFS_TOOLS_HOOK = "/etc/initramfs-tools/hooks/vfioctl"
DRACUT_CONF = "/etc/dracut.conf.d/vfioctl.conf"
MKINITCPIO_CONF = "/etc/mkinitcpio.conf.d/vfioctl.conf"

#: the vfio core modules every initramfs needs before vfio-pci can bind
VFIO_MODULES = ("vfio", "vfio_iommu_type1", "vfio_pci")

INITRAMFS_COMMANDS = {
    # -k all: the hook is the same for every kernel, and the one booted next
    # may not be the newest
    "initramfs-tools": "update-initramfs -u -k all",
    "dracut": "dracut -f --regenerate-all",
    "mkinitcpio": "mkinitcpio -P",
}


def module_name(driver: str) -> str:
    """modprobe's spelling of a module: dashes and underscores are the same to it."""
    return driver.replace("-", "_")


def _is_assignable_module(mod: str) -> bool:
    return mod.startswith("vfio") or mod == "pci_stub"


# ------------------------------------------------------------------ facts
@dataclass(frozen=True)
class Target:
    """One function the boot files keep from its host driver."""

    address: PciAddress
    id: tuple[str, str]
    subsystem: tuple[str, str] | None
    driver: str
    #: the [[device]] entry it belongs to (itself, or the entry whose group it is in)
    entry: PciAddress
    source: str


@dataclass
class BootFacts:
    """What :func:`gather_facts` measured on the host; the generators' only input besides the config."""

    #: per [[device]] entry address: the entry's own target first, then its group companions
    targets: dict[PciAddress, list[Target]]
    #: host kernel module -> addresses of configured functions it would claim
    host_modules: dict[str, list[PciAddress]]
    #: "vvvv:dddd" IDs where every function with the ID on this host is configured for vfio-pci
    unique_ids: list[str]
    #: "initramfs-tools", "dracut", "mkinitcpio" or None
    initramfs: str | None
    #: the command the systemd unit runs (absolute path, checked at install time)
    vfioctl: str
    #: one-line warnings for the user
    notes: list[str] = field(default_factory=list)

    def all_targets(self) -> list[Target]:
        return [t for ts in self.targets.values() for t in ts]


def gather_facts(host: Host, config: Config, vfioctl: str) -> BootFacts:
    """Measure what the generators need: targets, host drivers, unique IDs, initramfs tool."""
    from vfioctl.iommu import ROLE_BRIDGE, IommuGroup
    from vfioctl.pci import PciDevice, devices

    notes: list[str] = []
    configured = {d.address for d in config.devices}
    targets: dict[PciAddress, list[Target]] = {}
    for entry in config.devices:
        ts = [Target(entry.address, entry.id, entry.subsystem, entry.driver, entry.address, entry.source)]
        dev = PciDevice(host, entry.address)
        if entry.group and dev.exists():
            g = dev.iommu_group
            if g is None:
                notes.append(f"{entry.source}: {entry.address} has no IOMMU group now; its companions are not covered at boot")
            else:
                for m in IommuGroup(host, g).members():
                    a = m.device.address
                    if m.role == ROLE_BRIDGE or a == entry.address or a in configured:
                        continue
                    # companions are matched by vendor:device only: the entry's own
                    # check (subsystem included) already says the hardware is the same
                    ts.append(Target(a, (m.device.vendor_id or "", m.device.device_id or ""),
                                     None, entry.driver, entry.address,
                                     f"{entry.source} (IOMMU group {g})"))
        targets[entry.address] = ts

    builtin = _builtin_modules(host)
    host_modules: dict[str, list[PciAddress]] = {}
    for t in (t for ts in targets.values() for t in ts):
        dev = PciDevice(host, t.address)
        if not dev.exists():
            notes.append(f"{t.source}: nothing at {t.address} now; its host driver is not known, "
                         "only the udev rule and vfioctl-apply.service cover it")
            continue
        mods = [module_name(m) for m in dev.candidate_modules()]
        cur = dev.driver
        if cur and not _is_assignable_module(module_name(cur)):
            from vfioctl.pci import Driver

            mods.append(module_name(Driver(host, cur).module or cur))
        mods = [m for m in dict.fromkeys(mods) if not _is_assignable_module(m)]
        if not mods:
            notes.append(f"{t.address}: no host driver claims it (modules.alias, current driver): "
                         "nothing to intercept")
        for m in mods:
            if m in builtin:
                notes.append(f"{t.address}: host driver {m} is built into the kernel and binds before any "
                             "hook can run; vfioctl-apply.service moves the device at boot "
                             "(or use `vfioctl boot cmdline --add vfio-pci.ids=...` if no twin shares its ID)")
                continue
            host_modules.setdefault(m, []).append(t.address)

    # `options vfio_pci ids=`: only where no function outside the config shares the ID,
    # and no PF could create VFs with it later.
    all_devs = devices(host)
    vf_ids = set()
    for d in all_devs:
        if d.sriov_capable:
            vfd = d.attr("sriov_vf_device")
            if vfd:
                vf_ids.add(f"{d.vendor_id}:{vfd.lower().removeprefix('0x').rjust(4, '0')}")
    target_addrs = {t.address: t for t in (t for ts in targets.values() for t in ts)}
    ids: dict[str, bool] = {}
    for t in target_addrs.values():
        if t.driver == "vfio-pci":
            ids.setdefault(":".join(t.id), True)
    for d in all_devs:
        key = d.vendor_device
        if key in ids:
            t = target_addrs.get(d.address)
            if t is None or t.driver != "vfio-pci":
                ids[key] = False
    unique = sorted(k for k, ok in ids.items() if ok and k not in vf_ids)
    if unique:
        other = _other_vfio_ids_option(host)
        if other:
            notes.append(f"{other} already sets vfio-pci ids=; vfioctl leaves ids= out so as not to override it")
            unique = []

    return BootFacts(targets=targets, host_modules=dict(sorted(host_modules.items())), unique_ids=unique,
                     initramfs=detect_initramfs(host), vfioctl=vfioctl, notes=notes)


def _builtin_modules(host: Host) -> set[str]:
    rel = host.uname_release()
    text = host.read(f"/lib/modules/{rel}/modules.builtin", default="") if rel else ""
    return {module_name(line.rsplit("/", 1)[-1].removesuffix(".ko")) for line in text.split()}


def _other_vfio_ids_option(host: Host) -> str | None:
    for d in ("/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"):
        for name in host.listdir(d):
            path = f"{d}/{name}"
            if path == MODPROBE_PATH or not name.endswith(".conf"):
                continue
            for line in host.read(path, default="").splitlines():
                w = line.split()
                if len(w) >= 3 and w[0] == "options" and module_name(w[1]) == "vfio_pci" and any(
                        x.startswith("ids=") for x in w[2:]):
                    return path
    return None


def _os_release(host: Host) -> dict[str, str]:
    out = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = host.read(path, default="")
        if text:
            for line in text.splitlines():
                k, sep, v = line.partition("=")
                if sep:
                    out[k.strip()] = v.strip().strip('"').strip("'")
            break
    return out


def _has_tool(host: Host, *names: str) -> str | None:
    for n in names:
        for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
            if host.exists(f"{d}/{n}"):
                return f"{d}/{n}"
    return None


def detect_initramfs(host: Host) -> str | None:
    """Which initramfs builder this host uses: the installed tool first, then os-release."""
    if _has_tool(host, "update-initramfs"):
        return "initramfs-tools"
    if _has_tool(host, "dracut"):
        return "dracut"
    if _has_tool(host, "mkinitcpio"):
        return "mkinitcpio"
    osr = _os_release(host)
    family = set((osr.get("ID", "") + " " + osr.get("ID_LIKE", "")).split())
    if family & {"debian", "ubuntu"}:
        return "initramfs-tools"
    if family & {"fedora", "rhel", "centos", "rocky", "almalinux", "suse", "opensuse"}:
        return "dracut"
    if family & {"arch"}:
        return "mkinitcpio"
    return None


# ------------------------------------------------------------------ generators
@dataclass(frozen=True)
class GeneratedFile:
    path: str
    content: str
    mode: int = 0o644
    #: set for a symbolic link (content is then empty)
    link: str | None = None

    def to_dict(self) -> dict:
        if self.link:
            return {"path": self.path, "link": self.link}
        return {"path": self.path, "mode": f"{self.mode:04o}", "content": self.content}


def _header(config: Config, comment: str = "#") -> str:
    return (f"{comment} Generated by `vfioctl boot install` from {config.path}: do not edit.\n"
            f"{comment} Edit the config, then run `vfioctl boot install` again.\n")


def render_hook(config: Config, facts: BootFacts) -> str:
    """The boot hook: POSIX sh, addresses and IDs baked in, always exits 0."""
    out = ["#!/bin/sh", _header(config).rstrip("\n"), """#
# Keeps the configured PCI functions from their host drivers: writes
# driver_override for each one whose vendor:device still matches, and, when it
# is unbound, asks the PCI core to probe it again (an override alone binds
# nothing once the driver is loaded).  Run by the install commands of
# /etc/modprobe.d/vfioctl.conf before a host driver loads, and by
# /etc/udev/rules.d/61-vfioctl.rules when a function is added.  It never
# fails: a module load must not fail because of it.
#
# usage: boot-hook.sh [ADDRESS]     (no ADDRESS: every configured function)

PATH=/usr/sbin:/usr/bin:/sbin:/bin
sys=${VFIOCTL_SYSFS:-/sys}
kmsg=${VFIOCTL_KMSG:-/dev/kmsg}
only=$1

log() {
    echo "vfioctl boot-hook: $*" 2>/dev/null >>"$kmsg" || echo "vfioctl boot-hook: $*" >&2
}

# is ADDRESS VENDOR DEVICE [SUBVENDOR SUBDEVICE]: is that function there, with these IDs?
is() {
    d=$sys/bus/pci/devices/$1
    [ -e "$d" ] || return 1
    if [ "$(cat "$d/vendor")" != "0x$2" ] || [ "$(cat "$d/device")" != "0x$3" ]; then
        log "$1 is not $2:$3 any more, left alone (vfioctl apply says more)"
        return 1
    fi
    if [ -n "$4" ] && { [ "$(cat "$d/subsystem_vendor")" != "0x$4" ] ||
                        [ "$(cat "$d/subsystem_device")" != "0x$5" ]; }; then
        log "$1 is not subsystem $4:$5 any more, left alone (vfioctl apply says more)"
        return 1
    fi
    return 0
}

# claim ADDRESS DRIVER: override, then bind it now if it is unbound
claim() {
    [ -z "$only" ] || [ "$only" = "$1" ] || return 0
    d=$sys/bus/pci/devices/$1
    cur=
    if [ -e "$d/driver" ]; then
        cur=$(readlink "$d/driver")
        cur=${cur##*/}
    fi
    [ "$cur" = "$2" ] && return 0
    if [ "$(cat "$d/driver_override" 2>/dev/null)" != "$2" ]; then
        echo "$2" 2>/dev/null >"$d/driver_override" || { log "$1: cannot write driver_override"; return 0; }
    fi
    if [ -n "$cur" ]; then
        log "$1 is bound to $cur: vfioctl-apply.service will move it to $2"
        return 0
    fi
    [ -d "$sys/bus/pci/drivers/$2" ] || modprobe -q "$2" || log "$1: cannot load $2"
    echo "$1" 2>/dev/null >"$sys/bus/pci/drivers_probe" || log "$1: probing for $2 failed"
    return 0
}
"""]
    for entry in config.devices:
        ts = facts.targets.get(entry.address, [])
        if not ts:
            continue
        head = ts[0]
        addrs = "|".join(str(t.address) for t in ts)
        out.append(f"# {entry.source}")
        out.append(f'case "$only" in ""|{addrs})')
        out.append(f"    if {_is_args(head)}; then")
        out.append(f"        claim {head.address} {head.driver}")
        for t in ts[1:]:
            out.append(f"        {_is_args(t)} && claim {t.address} {t.driver}  # same IOMMU group")
        out.append("    fi")
        out.append("esac")
    out.append("exit 0")
    return "\n".join(out) + "\n"


def _is_args(t: Target) -> str:
    s = f"is {t.address} {t.id[0]} {t.id[1]}"
    if t.subsystem:
        s += f" {t.subsystem[0]} {t.subsystem[1]}"
    return s


def render_modprobe(config: Config, facts: BootFacts) -> str:
    out = [_header(config).rstrip("\n"), """#
# Before a host driver that would claim a configured function loads, the hook
# writes driver_override on the configured functions (per address, never by
# ID); then the real module loads (--ignore-install) and binds only the others.
# No softdep here: kmod skips a module's install command when it has softdeps."""]
    for mod, addrs in facts.host_modules.items():
        out.append("")
        out.append(f"# {mod} would claim {', '.join(str(a) for a in addrs)}")
        out.append(f"install {mod} /bin/sh {HOOK_PATH} ; /sbin/modprobe --ignore-install {mod} $CMDLINE_OPTS")
    if facts.unique_ids:
        out.append("")
        out.append("# every function with these IDs on this host is configured for vfio-pci")
        out.append(f"options vfio_pci ids={','.join(facts.unique_ids)}")
    return "\n".join(out) + "\n"


def render_udev(config: Config, facts: BootFacts) -> str:
    out = [_header(config).rstrip("\n"), """#
# When a configured function is added (coldplug at boot, hot-plug), run the
# boot hook for it.  Numbered 61 so that this RUN comes before the module
# load of 80-drivers.rules."""]
    for t in facts.all_targets():
        match = (f'ACTION=="add", SUBSYSTEM=="pci", KERNEL=="{t.address}", '
                 f'ATTR{{vendor}}=="0x{t.id[0]}", ATTR{{device}}=="0x{t.id[1]}"')
        if t.subsystem:
            match += f', ATTR{{subsystem_vendor}}=="0x{t.subsystem[0]}", ATTR{{subsystem_device}}=="0x{t.subsystem[1]}"'
        out.append(f'{match}, RUN+="/bin/sh {HOOK_PATH} %k"')
    return "\n".join(out) + "\n"


def render_unit(config: Config, vfioctl: str) -> str:
    """vfioctl-apply.service.  multi-user.target, not sysinit.target: apply needs
    the host drivers loaded (a PF's driver creates its VFs) and must run before
    libvirtd/virtqemud/pve-guests, which are in multi-user.target too."""
    return f"""{_header(config)}
[Unit]
Description=Bind PCI devices to vfio as declared in {config.path}
After=systemd-udev-settle.service systemd-modules-load.service
Wants=systemd-udev-settle.service
# VM managers must find the devices already hidden; harmless where absent
Before=libvirtd.service virtqemud.service pve-guests.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={vfioctl} apply --config {config.path}

[Install]
WantedBy={UNIT_TARGET}
"""


def render_initramfs(config: Config, facts: BootFacts) -> list[GeneratedFile]:
    """The initramfs builder's configuration: vfio modules, the hook and the modprobe.d file."""
    mods = list(VFIO_MODULES) + sorted(
        {module_name(t.driver) for t in facts.all_targets()} - set(VFIO_MODULES) - {"pci_stub"})
    files = f"{HOOK_PATH} {MODPROBE_PATH}"
    if facts.initramfs == "initramfs-tools":
        text = f"""#!/bin/sh
{_header(config)}# Puts the vfio modules, the vfioctl boot hook and its modprobe.d file into the
# initramfs, for host drivers that load from there.
PREREQ=""
prereqs() {{ echo "$PREREQ"; }}
case "$1" in
prereqs) prereqs; exit 0 ;;
esac
. /usr/share/initramfs-tools/hook-functions
manual_add_modules {' '.join(mods)}
copy_file config {HOOK_PATH}
copy_file config {MODPROBE_PATH}
exit 0
"""
        return [GeneratedFile(INITRAMFS_TOOLS_HOOK, text, 0o755)]
    if facts.initramfs == "dracut":
        text = f"""{_header(config)}# Loads vfio early and puts the vfioctl boot hook and its modprobe.d file into the initramfs.
force_drivers+=" {' '.join(mods)} "
install_items+=" {files} "
"""
        return [GeneratedFile(DRACUT_CONF, text)]
    if facts.initramfs == "mkinitcpio":
        text = f"""{_header(config)}# Loads vfio early and puts the vfioctl boot hook and its modprobe.d file into the initramfs.
MODULES+=({' '.join(mods)})
FILES+=({files})
"""
        return [GeneratedFile(MKINITCPIO_CONF, text)]
    return []


def generate(config: Config, facts: BootFacts) -> list[GeneratedFile]:
    """Every file `boot install` writes, in the order it writes them."""
    out = [
        GeneratedFile(HOOK_PATH, render_hook(config, facts)),
        GeneratedFile(MODPROBE_PATH, render_modprobe(config, facts)),
        GeneratedFile(UDEV_PATH, render_udev(config, facts)),
        GeneratedFile(UNIT_PATH, render_unit(config, facts.vfioctl)),
        GeneratedFile(WANTS_LINK, "", link=f"../{UNIT_NAME}"),
    ]
    out += render_initramfs(config, facts)
    return out


# ------------------------------------------------------------------ install
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


def resolve_vfioctl(host: Host, explicit: str | None = None) -> str:
    """The vfioctl command the unit runs, as an absolute path that exists on the host.

    The script next to the running interpreter comes first (the same
    installation that wrote the files), then ``vfioctl`` on PATH, then
    ``<python> -m vfioctl``.
    """
    if explicit:
        cmd = explicit
    else:
        beside = os.path.join(os.path.dirname(os.path.abspath(sys.executable)), "vfioctl")
        found = shutil.which("vfioctl")
        if os.path.exists(beside):
            cmd = beside
        elif found:
            cmd = os.path.abspath(found)
        else:
            cmd = f"{os.path.abspath(sys.executable)} -m vfioctl"
    exe = shlex.split(cmd)[0]
    if not exe.startswith("/"):
        raise HostNotReady(f"the vfioctl command for the boot files must be an absolute path, got {exe!r}")
    if not host.exists(exe):
        raise HostNotReady(
            f"{exe} does not exist on the host at {host.root}: the boot files would call a missing vfioctl; "
            "pass --vfioctl PATH"
        )
    return cmd


def manifest_path(host: Host) -> str:
    return f"{host.state_dir()}/{MANIFEST_NAME}"


def read_manifest(host: Host) -> dict | None:
    text = host.read(manifest_path(host), default=None)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise Refused(f"{manifest_path(host)} is not valid JSON; vfioctl cannot tell which boot files are its own. "
                      "Fix or remove it") from None
    return data


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def manifest_stale(host: Host, config_path: str) -> str | None:
    """A one-line warning when installed boot files were generated from another version of the config."""
    m = read_manifest(host)
    if not m or m.get("config") != config_path:
        return None
    text = host.read(config_path, default=None)
    if text is not None and _sha(text) != m.get("config_sha256"):
        return (f"{config_path} changed since `vfioctl boot install`: the boot files still hold the old "
                "config; run `vfioctl boot install` again")
    return None


def _write_link(host: Host, path: str, target: str) -> None:
    real = host.path(path)
    try:
        os.makedirs(os.path.dirname(real), exist_ok=True)
        tmp = f"{real}.vfioctl-tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, real)
    except OSError as err:
        raise from_oserror(err, "create link", path) from err


def _current(host: Host, f: GeneratedFile) -> str | None:
    """What is at f.path now: the content (or link target), None when nothing."""
    real = host.path(f.path)
    if os.path.islink(real):
        return "link:" + os.readlink(real)
    if not os.path.lexists(real):
        return None
    return host.read(f.path, default="") + "\n"  # read() strips; compare stripped


def _same(current: str | None, f: GeneratedFile) -> bool:
    if f.link:
        return current == "link:" + f.link
    return current is not None and current.strip() == f.content.strip()


def _owned(m: dict | None) -> dict[str, dict]:
    return {e["path"]: e for e in (m or {}).get("files", [])}


def _entry_matches(host: Host, e: dict) -> bool | None:
    """Is the file the manifest lists still what vfioctl wrote?  None when it is gone."""
    real = host.path(e["path"])
    if not os.path.lexists(real):
        return None
    if "link" in e:
        return os.path.islink(real) and os.readlink(real) == e["link"]
    if os.path.islink(real):
        return False
    try:
        with open(real, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest() == e.get("sha256")
    except OSError:
        return False


def _reload_commands(host: Host) -> list[str]:
    cmds = []
    if host.exists("/run/systemd/system") or _has_tool(host, "systemctl"):
        cmds.append("systemctl daemon-reload")
    if _has_tool(host, "udevadm"):
        cmds.append("udevadm control --reload")
    return cmds


def _run_commands(host: Host, cmds: list[str], run: bool) -> list[CommandRun]:
    """Run *cmds* when *run* and the host is the live one and the tool is there; else list them."""
    out = []
    for c in cmds:
        argv = shlex.split(c)
        can = run and host.is_live and shutil.which(argv[0]) is not None
        if argv[0] == "systemctl" and not os.path.isdir("/run/systemd/system"):
            can = False  # systemd is not PID 1 (container, chroot): nothing to reload
        if not can:
            out.append(CommandRun(c, False))
            continue
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            out.append(CommandRun(c, True, p.returncode, (p.stdout + p.stderr)[-2000:]))
        except (OSError, subprocess.TimeoutExpired) as err:
            out.append(CommandRun(c, True, 127, str(err)))
    return out


def install(host: Host, config_path: str = DEFAULT_PATH, dry_run: bool = False, initramfs: bool = False,
            vfioctl: str | None = None) -> InstallResult:
    """Write the boot files for the config at *config_path* (host-absolute).

    Refuses to overwrite a file vfioctl did not write.  Files of an earlier
    install that are no longer generated are removed.  Commands (daemon and
    udev reload, the initramfs rebuild with *initramfs*) run only on the live
    host; otherwise they are returned for the user to run.
    """
    config = load_config(host, config_path)
    cmd = resolve_vfioctl(host, vfioctl)
    facts = gather_facts(host, config, cmd)
    files = generate(config, facts)
    old = read_manifest(host)
    owned = _owned(old)
    for f in files:
        cur = _current(host, f)
        if cur is not None and f.path not in owned and not _same(cur, f):
            raise Refused(f"{f.path} exists and was not written by vfioctl; move it away, then run "
                          "`vfioctl boot install` again", path=f.path)
    new_paths = {f.path for f in files}
    stale = [p for p in owned if p not in new_paths]
    notes = list(facts.notes)
    removed: list[str] = []
    if not dry_run:
        for f in files:
            if f.link:
                _write_link(host, f.path, f.link)
            else:
                host.write_file(f.path, f.content, f.mode, makedirs=True)
        for p in stale:
            if _entry_matches(host, owned[p]):
                os.unlink(host.path(p))
                removed.append(p)
            elif _entry_matches(host, owned[p]) is False:
                notes.append(f"{p} was changed since vfioctl wrote it: left in place")
        text = host.read(config_path, default="")
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
        host.write_file(manifest_path(host), json.dumps(manifest, indent=2) + "\n", 0o600, makedirs=True)
    else:
        removed = stale
    cmds = _reload_commands(host)
    runs = _run_commands(host, cmds, run=not dry_run)
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
                try:
                    os.unlink(host.path(p))
                except OSError as err:
                    raise from_oserror(err, "remove", p) from err
            removed.append(p)
    if not dry_run:
        try:
            os.unlink(host.path(manifest_path(host)))
        except FileNotFoundError:
            pass
        except OSError as err:
            raise from_oserror(err, "remove", manifest_path(host)) from err
    runs = _run_commands(host, _reload_commands(host), run=not dry_run)
    tool = detect_initramfs(host)
    if had_initramfs and tool:
        runs += _run_commands(host, [INITRAMFS_COMMANDS[tool]], run=initramfs and not dry_run)
        if not (initramfs and host.is_live):
            notes.append("the initramfs still holds the boot hook until it is rebuilt")
    return InstallResult(files=[], commands=runs, removed=removed, notes=notes, dry_run=dry_run)
