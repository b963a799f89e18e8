"""Host facts: each parsed here, once, and read by everyone else through this module.

Kernel modules (modules.alias, modules.dep, modules.builtin, /proc/modules),
os-release and the boot setup, the tools a host has, the kernel's build
config and command line, the CPU, the kernel log, and the spelling of IDs and
driver names.  Every file is read through :class:`~vfioctl.host.Host` and
memoised per Host, so a captured host answers exactly like a live one.
"""

from __future__ import annotations

import re

from vfioctl.host import Host

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

# ------------------------------------------------------------------ names and IDs
#: vfio-pci and its variant drivers, whose names put the vendor part first (mlx5_vfio_pci,
#: hisi_acc_vfio_pci, virtio_vfio_pci, pds_vfio_pci), or pci-stub: the drivers that leave an
#: IOMMU group viable (drivers/vfio/group.c vfio_group_has_device / the vfio.rst viability rule).
VFIO_DRIVER_RE = re.compile(r"(?:[a-z0-9]+_)*vfio[-_a-z0-9]*|pci-stub")
#: a driver or module name as the kernel spells them (drivers/base: no '/' or whitespace)
DRIVER_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,63}")
MODULE_NAME_RE = re.compile(r"[a-z0-9_]{1,64}")
#: a systemd unit as vfioctl accepts one to stop and start (no escapes, no templates' %)
UNIT_NAME_RE = re.compile(r"[A-Za-z0-9:_.@-]{1,200}\.(?:service|socket|target|scope|slice|path|timer|mount)")
#: "vvvv:dddd"
ID_RE = re.compile(r"[0-9a-fA-F]{4}:[0-9a-fA-F]{4}")
#: modprobe order of the vfio core; vfio_pci_core (split out in 5.16) comes in through vfio_pci's deps
VFIO_MODULES = ("vfio", "vfio_iommu_type1", "vfio_pci")
VFIO_PCI_CORE = "vfio_pci_core"


def module_name(driver: str) -> str:
    """modprobe's spelling of a module: dashes and underscores are the same to it."""
    return driver.replace("-", "_")


def is_vfio_driver_name(name: str | None) -> bool:
    """vfio-pci, a vfio variant driver or pci-stub, matched whole (never with ``$``)."""
    return bool(name) and VFIO_DRIVER_RE.fullmatch(name) is not None  # type: ignore[arg-type]


def is_vfio_driver(name: str | None) -> bool:
    """vfio-pci or a vfio variant driver (mlx5_vfio_pci...): VFIO's, so not pci-stub."""
    return is_vfio_driver_name(name) and name != "pci-stub"


def is_plain_abs_path(path: object) -> bool:
    """An absolute path of at most 1,024 printable characters (no newline, tab or NUL: what
    may be written into a unit, a hook, a QEMU option)."""
    return isinstance(path, str) and path.startswith("/") and len(path) <= 1024 and path.isprintable()


def is_reset_method_name(name: object) -> bool:
    """A name of the kind sysfs ``reset_method`` lists (flr, bus, device_specific...)."""
    return isinstance(name, str) and 0 < len(name) < 32 and name.replace("_", "").isalnum()


def is_driver_name(name: object) -> bool:
    return isinstance(name, str) and DRIVER_NAME_RE.fullmatch(name) is not None


def hex4(text: str | None) -> str | None:
    """``0x10d3`` / ``10D3`` / ``10d3\\n`` -> ``10d3``; None for nothing or garbage."""
    if not text:
        return None
    m = _HEX4.fullmatch(text.strip().lower())
    return m[1].rjust(4, "0") if m else None


_HEX4 = re.compile(r"(?:0x)?([0-9a-f]{1,4})")


def parse_id(text: str) -> tuple[str, str] | None:
    """``8086:10D3`` -> ("8086", "10d3"); None if it is not exactly that form."""
    if not isinstance(text, str) or ID_RE.fullmatch(text) is None:
        return None
    v, d = text.lower().split(":")
    return v, d


# ------------------------------------------------------------------ tools and distribution
TOOL_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def find_tool(host: Host, *names: str) -> str | None:
    """The host-absolute path of the first of *names* installed on the host, or None."""
    for n in names:
        for d in TOOL_DIRS:
            if host.exists(f"{d}/{n}"):
                return f"{d}/{n}"
    return None


def os_release(host: Host) -> dict[str, str]:
    def compute() -> dict[str, str]:
        out: dict[str, str] = {}
        for path in ("/etc/os-release", "/usr/lib/os-release"):
            text = host.read(path, default="")
            if text:
                for line in text.splitlines():
                    k, eq, v = line.partition("=")
                    if eq:
                        out[k.strip()] = v.strip().strip("\"'")
                break
        return out

    return host.cached("facts:os-release", compute)


def distro_family(host: Host) -> set[str]:
    osr = os_release(host)
    return {osr.get("ID", "")} | set(osr.get("ID_LIKE", "").split())


def boot_setup(host: Host) -> str:
    """How this host's kernel command line is configured: ``grubby`` (Fedora/RHEL: BLS
    entries and grubby), ``proxmox`` or ``systemd-boot`` (/etc/kernel/cmdline, refreshed by
    proxmox-boot-tool or kernel-install), ``debian-grub`` (/etc/default/grub + update-grub),
    ``grub2`` (/etc/default/grub + grub2-mkconfig or grub-mkconfig), or ``unknown``."""
    entries = [n for n in host.listdir("/boot/loader/entries") if n.endswith(".conf")]
    if find_tool(host, "grubby") and entries:
        return "grubby"
    if host.exists("/etc/kernel/cmdline"):
        return "proxmox" if find_tool(host, "proxmox-boot-tool") else "systemd-boot"
    if host.exists("/etc/default/grub"):
        if find_tool(host, "update-grub") or distro_family(host) & {"debian", "ubuntu"}:
            return "debian-grub"
        return "grub2"
    return "unknown"


def grub_regenerate_command(host: Host) -> str:
    if find_tool(host, "update-grub"):
        return "update-grub"
    if find_tool(host, "grub2-mkconfig"):
        return "grub2-mkconfig -o /boot/grub2/grub.cfg"
    return "grub-mkconfig -o /boot/grub/grub.cfg"


def initramfs_tool(host: Host) -> str | None:
    """Which initramfs builder this host uses: the installed tool first, then os-release."""
    if find_tool(host, "update-initramfs"):
        return "initramfs-tools"
    if find_tool(host, "dracut"):
        return "dracut"
    if find_tool(host, "mkinitcpio"):
        return "mkinitcpio"
    family = distro_family(host)
    if family & {"debian", "ubuntu"}:
        return "initramfs-tools"
    if family & {"fedora", "rhel", "centos", "rocky", "almalinux", "suse", "opensuse"}:
        return "dracut"
    if family & {"arch"}:
        return "mkinitcpio"
    return None


# ------------------------------------------------------------------ kernel modules
_KO = re.compile(r"([^/:\s]+)\.ko(?:\.(?:xz|zst|gz))?")
_WILD = frozenset("*?[")


def _modules_file(host: Host, name: str) -> str:
    rel = host.uname_release()
    return host.read_text(f"/lib/modules/{rel}/{name}", default="") if rel else ""


def module_index(host: Host, filename: str) -> dict[str, str]:
    """Module name (``-`` as ``_``) -> its path, from modules.dep or modules.builtin."""

    def compute() -> dict[str, str]:
        out = {}
        for line in _modules_file(host, filename).splitlines():
            path = line.split(":", 1)[0].strip()
            m = _KO.search(path)
            if m and m.end() == len(path):
                out[module_name(m[1])] = path
        return out

    return host.cached(f"facts:{filename}", compute)


def builtin_modules(host: Host) -> set[str]:
    return set(module_index(host, "modules.builtin"))


def loaded_modules(host: Host) -> set[str]:
    return host.cached("facts:proc-modules", lambda: {
        line.split()[0] for line in host.read("/proc/modules", default="").splitlines() if line.strip()},
        volatile=True)


class PciAliases:
    """modules.alias ``pci:`` patterns in three tiers (exact vendor:device prefix, vendor
    prefix, the rest); the ``vfio_pci:`` patterns of vfio variant drivers are
    :func:`vfio_aliases`'.  (A plain class:
    `list` imports this module, and dataclasses would cost it ~14 ms of imports.)"""

    __slots__ = ("exact", "by_vendor", "generic")

    def __init__(self, exact: dict[str, list[tuple[str, str]]], by_vendor: dict[str, list[tuple[str, str]]],
                 generic: list[tuple[str, str]]) -> None:
        self.exact, self.by_vendor, self.generic = exact, by_vendor, generic


def pci_aliases(host: Host) -> PciAliases:
    def compute() -> PciAliases:
        text = _modules_file(host, "modules.alias")
        exact: dict[str, list[tuple[str, str]]] = {}
        by_vendor: dict[str, list[tuple[str, str]]] = {}
        generic: list[tuple[str, str]] = []
        # a regex over the whole file runs in C: splitting ~30,000 lines in Python costs over
        # a second under emulation, and only the pci: lines matter here
        for pattern, module in re.findall(r"^alias (pci:\S+) (\S+)[ \t]*$", text, re.M):
            entry = (pattern, module)
            if not _WILD.intersection(pattern[:22]):
                exact.setdefault(pattern[:22].upper(), []).append(entry)
            elif not _WILD.intersection(pattern[:13]):
                by_vendor.setdefault(pattern[:13].upper(), []).append(entry)
            else:
                generic.append(entry)
        return PciAliases(exact, by_vendor, generic)

    return host.cached("facts:pci-aliases", compute)


_VFIO_ALIAS = re.compile(r"alias (vfio_pci:\S+) (\S+)[ \t]*")


def vfio_aliases(host: Host) -> list[tuple[str, str]]:
    """modules.alias ``vfio_pci:`` patterns alone: what ``hide`` asks of every device it plans,
    without sorting the ~30,000 ``pci:`` lines that only a driver look-up needs."""
    def compute() -> list[tuple[str, str]]:
        # str.find jumps between the few matching lines; a multi-line regex visits every line
        text = _modules_file(host, "modules.alias")
        out: list[tuple[str, str]] = []
        at = text.find("alias vfio_pci:")
        while at >= 0:
            end = text.find("\n", at)
            line = text[at:end if end >= 0 else len(text)]
            if at == 0 or text[at - 1] == "\n":
                m = _VFIO_ALIAS.fullmatch(line)
                if m:
                    out.append((m[1], m[2]))
            at = text.find("alias vfio_pci:", at + 1)
        return out

    return host.cached("facts:vfio-aliases", compute)


def modules_for_modalias(host: Host, modalias: str | None) -> list[str]:
    """Kernel modules whose modules.alias patterns match a device's ``pci:`` modalias."""
    import fnmatch

    if not modalias or not modalias.startswith("pci:"):
        return []
    al = pci_aliases(host)
    key = modalias.upper()
    found: list[str] = []
    # only patterns naming this vendor:device, this vendor with any device, or no vendor can
    # match: dict look-ups instead of compiling thousands of globs (Intel alone has ~2700)
    for pattern, module in al.exact.get(key[:22], []) + al.by_vendor.get(key[:13], []) + al.generic:
        if module not in found and fnmatch.fnmatchcase(modalias, pattern):
            found.append(module)
    return found


def vfio_variants_for_modalias(host: Host, modalias: str | None) -> list[str]:
    """vfio variant drivers (mlx5_vfio_pci, ...) that modules.alias offers for a device."""
    import fnmatch

    if not modalias or not modalias.startswith("pci:"):
        return []
    want = "vfio_" + modalias
    out: list[str] = []
    for pattern, module in vfio_aliases(host):
        # vfio_pci itself matches every device (vfio_pci:v*d*...): only real variants count
        if module != "vfio_pci" and module not in out and fnmatch.fnmatchcase(want, pattern):
            out.append(module)
    return out


def module_state(host: Host, name: str) -> tuple[str, str]:
    """(state, evidence) with state ``loaded``, ``built-in``, ``loadable`` or ``missing``."""
    sysmod = f"/sys/module/{name}"
    if name in loaded_modules(host) or host.exists(f"{sysmod}/refcnt") or host.exists(f"{sysmod}/initstate"):
        return "loaded", f"{sysmod} present"
    source, conf = kernel_config(host)
    sym = "CONFIG_" + name.upper()
    if name in builtin_modules(host) or conf.get(sym) == "y":
        return "built-in", f"{sym}=y" if conf.get(sym) == "y" else "listed in modules.builtin"
    if host.is_dir(sysmod) and not source:
        # built-in code has /sys/module/<name> (no refcnt) only when it has parameters
        return "built-in", f"{sysmod} without refcnt"
    dep = module_index(host, "modules.dep")
    if name in dep:
        return "loadable", f"{dep[name]} in modules.dep"
    if source and sym not in conf:
        return "missing", f"{sym} not set in {source}"
    rel = host.uname_release()
    return "missing", f"not loaded, not built in, not in /lib/modules/{rel}/modules.dep"


def modprobe_options_setting(host: Host, module: str, option: str, *, skip: str | None = None) -> str | None:
    """The first modprobe.d file (other than *skip*) that sets ``options MODULE OPTION=``."""
    for d in ("/etc/modprobe.d", "/usr/lib/modprobe.d", "/lib/modprobe.d"):
        for name in host.listdir(d):
            path = f"{d}/{name}"
            if path == skip or not name.endswith(".conf"):
                continue
            for line in host.read(path, default="").splitlines():
                w = line.split()
                if len(w) >= 3 and w[0] == "options" and module_name(w[1]) == module and any(
                        x.startswith(option + "=") for x in w[2:]):
                    return path
    return None


# ------------------------------------------------------------------ the kernel
def kernel_version(host: Host) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", host.uname_release())
    return (int(m[1]), int(m[2])) if m else (0, 0)


def kernel_config(host: Host) -> tuple[str | None, dict[str, str]]:
    """(the file read, {CONFIG_X: "y"|"m"|value}); options not set are absent."""

    def compute() -> tuple[str | None, dict[str, str]]:
        rel = host.uname_release()
        text = None
        source = None
        if rel:
            text = host.read_text(f"/boot/config-{rel}", default=None)
            source = f"/boot/config-{rel}"
        if text is None:
            raw = host.read_bytes("/proc/config.gz", default=None)
            if raw:
                import gzip
                import zlib

                try:
                    # bounded: a config is ~250 KB; a hostile snapshot's bomb stops at 16 MiB
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    text = d.decompress(raw, 16 << 20).decode("utf-8", "replace")
                    source = "/proc/config.gz"
                except (OSError, EOFError, zlib.error, gzip.BadGzipFile):
                    text = None
        if text is None:
            return None, {}
        conf = {}
        for line in text.splitlines():
            if line.startswith("CONFIG_"):
                k, _, v = line.partition("=")
                conf[k] = v.strip().strip('"')
        return source, conf

    return host.cached("facts:kconfig", compute)


def config_state(conf: dict[str, str], name: str) -> str:
    """``y``, ``m`` or ``missing``."""
    v = conf.get(name)
    return v if v in ("y", "m") else "missing"


def cmdline(host: Host) -> list[str]:
    """The kernel's own parameters (what follows `` -- `` belongs to init)."""
    words = host.read("/proc/cmdline", default="").split()
    return words[: words.index("--")] if "--" in words else words


def cmdline_value(params: Iterable[str], name: str) -> list[str]:
    """Every value given to *name* (``intel_iommu=on,sm_on`` -> ``["on", "sm_on"]``)."""
    out: list[str] = []
    for p in params:
        key, eq, value = p.partition("=")
        if eq and key.replace("-", "_") == name.replace("-", "_"):
            out.extend(v for v in value.split(",") if v)
    return out


class Cpu:
    __slots__ = ("vendor", "flags")

    def __init__(self, vendor: str | None, flags: frozenset[str]) -> None:
        self.vendor = vendor  # GenuineIntel, AuthenticAMD, ...
        self.flags = flags

    @property
    def kind(self) -> str | None:
        return {"GenuineIntel": "intel", "AuthenticAMD": "amd", "HygonGenuine": "amd"}.get(self.vendor or "")

    @property
    def in_vm(self) -> bool:
        return "hypervisor" in self.flags


def cpu(host: Host) -> Cpu:
    def compute() -> Cpu:
        vendor: str | None = None
        flags: frozenset[str] = frozenset()
        for line in host.read("/proc/cpuinfo", default="").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "vendor_id" and vendor is None:
                vendor = value.strip()
            elif key == "flags" and not flags:
                flags = frozenset(value.split())
            elif not line.strip() and vendor is not None:
                break  # the first processor block says it all
        return Cpu(vendor, flags)

    return host.cached("facts:cpu", compute)


# ------------------------------------------------------------------ the kernel log
#: the kernel log lines worth keeping (and all a snapshot captures of the log)
DMESG_PATTERN = re.compile(r"DMAR|IOMMU|AMD-Vi|remapping", re.IGNORECASE)
KERNEL_LOG = "kernel log (dmesg)"


def kernel_log(host: Host) -> tuple[list[str] | None, str]:
    """(IOMMU-related kernel log lines, where from) or (None, why not)."""

    def compute() -> tuple[list[str] | None, str]:
        got = host.probe("dmesg")
        if not isinstance(got, dict):
            return None, "no kernel log captured"
        lines = got.get("lines")
        if not isinstance(lines, list):
            return None, str(got.get("why") or "the kernel log could not be read")
        return [str(x) for x in lines], KERNEL_LOG

    return host.cached("facts:dmesg", compute)


def live_probe(host: Host, name: str, key: str) -> object:
    """Measure a probe on the live host (see :meth:`Host.probe`)."""
    from vfioctl.host import run_local

    if name == "dmesg":
        # reading the log needs root when kernel.dmesg_restrict is 1 (Debian's default)
        rc, out = run_local(["dmesg"], 5)
        if rc != 0:
            why = out.strip().splitlines()
            return {"lines": None, "why": f"dmesg failed: {why[-1] if why else 'exit ' + str(rc)}"}
        return {"lines": [line for line in out.splitlines() if DMESG_PATTERN.search(line)]}
    if name == "ipv4":
        return _ipv4_address(key)
    if name == "unit":
        from vfioctl.handoff import live_unit

        return live_unit(key)
    if name == "libvirt-version":
        from vfioctl.guest.hook import live_libvirt_version

        return live_libvirt_version()
    if name == "rom":
        from vfioctl.devassess import live_rom

        return live_rom(host, key)
    raise ValueError(f"unknown probe {name!r}")


def _ipv4_address(iface: str) -> str | None:
    """Primary IPv4 address via SIOCGIFADDR/SIOCGIFNETMASK (no /proc file lists them per interface)."""
    import fcntl
    import socket
    import struct

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            req = struct.pack("256s", iface.encode()[:15])
            addr = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])
            try:
                mask = socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x891B, req)[20:24])
                prefix = bin(struct.unpack("!I", socket.inet_aton(mask))[0]).count("1")
            except OSError:
                prefix = 32
            return f"{addr}/{prefix}"
    except OSError:
        return None
