"""Kernel modules: modules.alias, modules.dep, modules.builtin, /proc/modules and
modprobe.d, parsed once per Host; which module drives a device, and whether one is
loaded, built in, loadable or missing."""

from __future__ import annotations

import fnmatch
import re

from vfioctl.base.names import module_name
from vfioctl.host.core import Host
from vfioctl.host.kernel import kernel_config

#: modprobe order of the vfio core; vfio_pci_core (split out in 5.16) comes in through vfio_pci's deps
VFIO_MODULES = ("vfio", "vfio_iommu_type1", "vfio_pci")


VFIO_PCI_CORE = "vfio_pci_core"


# ------------------------------------------------------------------ kernel modules
#: a module file's name: NAME.ko, compressed or not (matched whole, on the part after the last
#: "/": a search over the line, as before, backtracked quadratically on a long line)
_KO = re.compile(r"([^/:\s]{1,255})\.ko(?:\.(?:xz|zst|gz))?")


_WILD = frozenset("*?[")


def _modules_file(host: Host, name: str) -> str:
    rel = host.uname_release()
    return host.read_text(f"/lib/modules/{rel}/{name}", default="") if rel else ""


def module_index(host: Host, filename: str) -> dict[str, str]:
    """Module name (``-`` as ``_``) -> its path, from modules.dep or modules.builtin."""

    def compute() -> dict[str, str]:
        out = {}
        text = _modules_file(host, filename)
        at = 0
        while at < len(text):  # line by line without a list of every line (a 1M-line file)
            end = text.find("\n", at)
            end = len(text) if end < 0 else end
            colon = text.find(":", at, end)
            path = text[at:colon if colon >= 0 else end].strip()
            at = end + 1
            m = _KO.fullmatch(path.rpartition("/")[2])
            if m:
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
