"""The real-kernel test lab: a Debian kernel under QEMU with an emulated Intel IOMMU.

One QEMU q35 machine boots a Debian release's current kernel package (Debian 12's 6.1 or
Debian 13's 6.12: KERNEL_SOURCES; downloaded from Debian's archive whatever release this
machine runs, unpacked, never installed) with a busybox initramfs.  The initramfs mounts the
host's root read-only over 9p, builds a chroot at /host whose writable places are tmpfs (see
``init_script``), loads the NIC and disk drivers the way a host's udev would, and starts
``agent.py`` in the chroot with the same Python that runs pytest.  The harness talks to the agent over a virtio-serial port: one
JSON line per request, one per answer.

Stdlib only.  ``python3 tests/vm/lab.py --help`` lists the commands (prepare, bench, layout,
shell).  Facts behind the choices: /work/shared/vm-lab.md and tests/vm/README.md.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import dataclasses
import fcntl
import gzip
import json
import lzma
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
AGENT = HERE / "agent.py"
AGENT_PORT = "vfioctl.agent"
NINEP_TAG = "hostroot"

DEFAULT_CACHE = Path("/var/cache/vfioctl-lab")
ENV_CACHE = "VFIOCTL_LAB_CACHE"  # where kernels are downloaded and unpacked
ENV_ACCEL = "VFIOCTL_LAB_ACCEL"  # auto (default), kvm or tcg
ENV_KEEP = "VFIOCTL_LAB_KEEP"  # 1: keep the lab's temp dir (console log, initramfs) after close
ENV_BOOT_TIMEOUT = "VFIOCTL_LAB_BOOT_TIMEOUT"  # seconds until the agent must answer (default 240)
ENV_KERNEL_PACKAGE = "VFIOCTL_LAB_KERNEL_PACKAGE"  # 6.1=PKG,6.12=PKG: pins instead of linux-image-amd64's
ENV_QEMU = "VFIOCTL_LAB_QEMU"  # QEMU binary (default qemu-system-x86_64 from PATH)
ENV_APPEND = "VFIOCTL_LAB_APPEND"  # extra guest kernel command line (debugging)
ENV_QEMU_ARGS = "VFIOCTL_LAB_QEMU_ARGS"  # extra QEMU arguments, shell-quoted (debugging)
ENV_9P_CACHE = "VFIOCTL_LAB_9P_CACHE"  # 9p cache mode of the host root: loose (default), none

# Debian packages the lab needs on the machine that runs it, and a file proving each one.
PACKAGES: dict[str, str] = {
    "qemu-system-x86": "qemu-system-x86_64",
    "busybox-static": "/bin/busybox",
    "cpio": "cpio",
    "kmod": "depmod",
    "pciutils": "lspci",
    "pci.ids": "/usr/share/misc/pci.ids",
}

# Guest PCI functions and the driver each is bound to once the lab has booted, as the guest
# kernels showed them (Debian 6.1.0-57-amd64 and 6.12.118+deb13-amd64 alike, QEMU 7.2 and 10.0).  None: no driver, which is what a host
# without udev shows for devices whose drivers are modules nobody loaded (VGA, ICH9 LPC/SATA/
# SMBus).  The smoke tests compare the booted guest against this table.
BOOT_LAYOUT: dict[str, str | None] = {
    "0000:00:00.0": None,  # q35 host bridge
    "0000:00:01.0": None,  # std VGA, the boot VGA device (bochs-drm not loaded)
    "0000:00:02.0": "e1000e",  # main target, has a netdev
    "0000:00:03.0": "virtio-pci",  # 9p export of the host root: never touch
    "0000:00:04.0": "nvme",  # SR-IOV physical function, sriov_totalvfs 4
    "0000:00:05.0": None,  # pcie-pci-bridge br1, shares a group with 01:01.0 and 01:02.0
    "0000:00:06.0": "virtio-pci",  # virtio-serial, the agent channel: never touch
    "0000:00:07.0": "e1000e",  # twin of 00:02.0 (same vendor:device), its own group
    "0000:00:08.0": "e1000",
    "0000:00:09.0": "e1000",
    "0000:00:0a.0": "e1000",
    "0000:00:0b.0": "e1000",
    "0000:00:0c.0": "e1000",
    "0000:00:0d.0": "e1000",
    "0000:00:0e.0": "e1000",  # multi-function slot, function 0 ...
    "0000:00:0e.1": "e1000",  # ... and 1: one IOMMU group
    "0000:00:10.0": "pcieport",  # two root ports in one multifunction slot, ACS disabled ...
    "0000:00:10.1": "pcieport",  # ... (disable-acs=on): one group with both devices below
    "0000:00:11.0": "pcieport",  # the same pair with ACS: a group per port, one per device
    "0000:00:11.1": "pcieport",
    "0000:00:12.0": "pcieport",  # root port above an x3130 switch
    "0000:02:00.0": "e1000",  # below 00:10.0
    "0000:03:00.0": "e1000",  # below 00:10.1
    "0000:04:00.0": "e1000e",  # below 00:11.0: reset_method "pm bus"
    "0000:05:00.0": None,  # ich9-intel-hda below 00:11.1 (a GPU's audio shape): no reset method
    "0000:06:00.0": "pcieport",  # x3130 upstream port
    "0000:07:00.0": "pcieport",  # xio3130 downstream ports ...
    "0000:07:01.0": "pcieport",
    "0000:08:00.0": "e1000",  # ... each with an e1000 below
    "0000:09:00.0": "e1000",
    "0000:00:1f.0": None,  # ICH9 LPC
    "0000:00:1f.2": None,  # ICH9 AHCI
    "0000:00:1f.3": None,  # ICH9 SMBus
    "0000:01:01.0": "e1000",  # behind br1
    "0000:01:02.0": "e1000",  # behind br1
}

# Roles, for tests that want a device by what it is rather than where it is.
MAIN_NIC = "0000:00:02.0"
TWIN_NIC = "0000:00:07.0"
NINEP = "0000:00:03.0"
NVME_PF = "0000:00:04.0"
BRIDGE = "0000:00:05.0"
BRIDGE_MEMBERS = ("0000:00:05.0", "0000:01:01.0", "0000:01:02.0")
AGENT_SERIAL = "0000:00:06.0"
BENCH_NICS = tuple(f"0000:00:{slot:02x}.0" for slot in range(0x08, 0x0E))
BOOT_VGA = "0000:00:01.0"
MULTIFUNCTION = ("0000:00:0e.0", "0000:00:0e.1")
# Topologies for isolation, resets and ROMs (issues 14, 15)
NOACS_PORTS = ("0000:00:10.0", "0000:00:10.1")  # disable-acs=on: one group with 02:00.0 and 03:00.0
NOACS_DEVICES = ("0000:02:00.0", "0000:03:00.0")
ACS_PORTS = ("0000:00:11.0", "0000:00:11.1")
ACS_NIC = "0000:04:00.0"  # e1000e behind a root port: reset_method "pm bus"
HDA = "0000:05:00.0"  # ich9-intel-hda behind a root port: no reset method, no driver
SWITCH_UP = "0000:06:00.0"
SWITCH_DOWN = ("0000:07:00.0", "0000:07:01.0")
SWITCH_NICS = ("0000:08:00.0", "0000:09:00.0")
ROM_NIC = TWIN_NIC  # carries Debian's ipxe-qemu efi-e1000e.rom (an x86 and an EFI image)
ROM_FILE = "/usr/lib/ipxe/qemu/efi-e1000e.rom"
# Devices the lab itself runs on; a test that unbinds them kills the lab.
INFRASTRUCTURE = (NINEP, AGENT_SERIAL)
NVME_TOTAL_VFS = 4
# QEMU's igb (an 82576 SR-IOV NIC, QEMU 8 and later) behind its own root port (issue 26): on the
# root bus its VFs' routing IDs collide with 00:1f.0.  Slot 0x1c and bus 0x0a come after every
# other device, so nothing else is renumbered; added only where the QEMU has igb (see IGB_MIN_QEMU).
IGB_PORT = "0000:00:1c.0"
IGB_PF = "0000:0a:00.0"
IGB_MIN_QEMU = (8, 0)
IGB_TOTAL_VFS = 7
IGB_LAYOUT: dict[str, str | None] = {IGB_PORT: "pcieport", IGB_PF: "igb"}
# Issue 21's two host-use cases, each behind its own root port at slots 0x1d and 0x1e: a second
# std VGA (bochs-drm once `bochs` is loaded; not the boot VGA) and a qemu-xhci controller with a
# usb-kbd (evdev gives /dev/input/eventN).  Their buses come after every other bus (igb's 0x0a
# under QEMU 8+, 0x09's switch NIC under QEMU 7.2), so no existing bus number changes; both have
# no driver at boot (bochs, xhci_pci and evdev are modules in both Debian kernels, and nothing
# loads them).  Their root ports sit on bus 0, so they take IOMMU group numbers before 00:1f.x's
# (groups are numbered in the order the kernel adds devices: all of bus 0, then each bus below).
VGA2_PORT = "0000:00:1d.0"
XHCI_PORT = "0000:00:1e.0"


def hostuse_layout(igb: bool) -> dict[str, str | None]:
    """The root ports and the devices below them: the bus numbers after igb's when it is there."""
    bus = 0x0B if igb else 0x0A
    return {VGA2_PORT: "pcieport", XHCI_PORT: "pcieport",
            f"0000:{bus:02x}:00.0": None, f"0000:{bus + 1:02x}:00.0": None}

# Drivers a host's udev would have loaded for the lab's targets (no udev in the guest).
HOST_DRIVERS = ("e1000e", "e1000", "nvme", "igb")
# Modules the initramfs needs before the 9p root exists; their dependencies are derived.
INITRAMFS_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "virtio_console")

# Mount points in the chroot that get an empty tmpfs (a writable place, like a host's).
TMPFS_DIRS = (
    "/tmp",
    "/run",
    "/var/tmp",
    "/var/log",
    "/var/cache",
    "/var/run",
    "/var/lib/vfioctl",
    "/var/lib/libvirt",
)
DRIVERS_DONE = "/run/vfioctl-lab.drivers"  # in the guest: modprobe's rc once the drivers loaded
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONSOLE_TAIL = 60  # lines of the guest console quoted in errors


# ---------------------------------------------------------------------------------------------
# Errors and results



def emulator_fault(text: str) -> bool:
    """Whether a failed boot was the emulator's, not the guest's: QEMU 10 under TCG has, a few
    times in a day of lab runs on a 2-core machine, aborted during boot ("iotlb_to_section:
    Assertion `section_index < d->map.sections_nb' failed") or left a vCPU's timer undelivered
    before the agent started (the guest's console then shows only "rcu: INFO: rcu_preempt
    detected stalls" and "timer wakeup didn't happen").  Such a boot is tried once more; any
    other failure is the guest's and fails as it is."""
    if "qemu-system" in text and "Assertion" in text:
        return True
    return ": boot" in text and "rcu_preempt detected stalls" in text and "agent: " not in text

class LabError(RuntimeError):
    """The lab failed: boot, agent or QEMU.  The message carries the console's tail."""


class LabSetupError(LabError):
    """The machine running the tests lacks something the lab needs; the user must install it."""


class LabKernelMismatch(LabSetupError):
    """A suite's kernel package is no longer the series the tests were written for."""


class LabCommandError(LabError):
    """A guest command that had to succeed (check=True) did not."""

    def __init__(self, result: "Result") -> None:
        self.result = result
        super().__init__(
            f"guest command failed (rc={result.rc}{', timed out' if result.timed_out else ''}):"
            f" {result.cmd}\n--- stdout ---\n{result.out}--- stderr ---\n{result.err}"
        )


@dataclasses.dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str
    secs: float
    timed_out: bool = False
    cmd: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0

    def check(self) -> "Result":
        if self.rc != 0:
            raise LabCommandError(self)
        return self


def _log(msg: str) -> None:
    print(f"vfioctl-lab: {msg}", file=sys.stderr, flush=True)


def _which(name: str) -> str | None:
    """which(), also looking in the sbin directories a non-login root PATH may lack."""
    if name.startswith("/"):
        return name if os.path.exists(name) else None
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    return shutil.which(name, path=path)


def _run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a host command; raise LabSetupError with its output if it fails."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("env", {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})
    try:
        proc = subprocess.run(cmd, **kw)
    except FileNotFoundError as err:
        raise LabSetupError(f"{cmd[0]} not found: {err}") from err
    if proc.returncode != 0:
        raise LabSetupError(
            f"`{shlex.join(cmd)}` failed with rc={proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc


# ---------------------------------------------------------------------------------------------
# Prerequisites on the machine running the lab


def _elf_is_static(path: str) -> bool:
    """True if the ELF file has no program interpreter (PT_INTERP), i.e. is statically linked."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only; the lab is x86_64
            return False
        little = head[5] == 1
        order = "little" if little else "big"
        phoff = int.from_bytes(head[0x20:0x28], order)
        phentsize = int.from_bytes(head[0x36:0x38], order)
        phnum = int.from_bytes(head[0x38:0x3A], order)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if int.from_bytes(f.read(4), order) == 3:  # PT_INTERP
                return False
    return True


def check_prereqs() -> list[str]:
    """What the lab lacks on this machine, as readable problems; empty when all is there."""
    problems = []
    qemu = os.environ.get(ENV_QEMU, "qemu-system-x86_64")
    for pkg, probe in PACKAGES.items():
        if pkg == "qemu-system-x86":
            probe = qemu
        if not _which(probe):
            problems.append(f"{probe} missing (Debian package {pkg})")
    busybox = "/bin/busybox"
    if os.path.exists(busybox) and not _elf_is_static(busybox):
        problems.append(f"{busybox} is dynamically linked: install busybox-static")
    for tool in ("apt-get", "apt-cache", "dpkg"):
        if not _which(tool):
            problems.append(f"{tool} missing: the lab downloads Debian's kernel package with it")
    return problems


def install_prereqs() -> list[str]:
    """Install the Debian packages the lab needs that are missing; return their names.

    For the test runner script (``lab.py prepare``), as root; pytest itself never installs.
    """

    def installed(pkg: str) -> bool:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True
        )
        return proc.returncode == 0 and "install ok installed" in proc.stdout

    missing = [pkg for pkg in PACKAGES if not installed(pkg)]
    if missing:
        _log(f"installing {' '.join(missing)}")
        _run(["apt-get", "update"])
        _run(["apt-get", "install", "-y", "--no-install-recommends", *missing])
    return missing


def kvm_usable() -> bool:
    """Whether /dev/kvm can create a VM (opening it is not enough on some nested hosts)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        kvm_get_api_version, kvm_create_vm = 0xAE00, 0xAE01
        if fcntl.ioctl(fd, kvm_get_api_version) != 12:
            return False
        vm = fcntl.ioctl(fd, kvm_create_vm, 0)
        os.close(vm)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


_KVM_BOOTS: dict[str, bool] = {}


def kvm_boots(kernel: "Kernel", qemu: str = "qemu-system-x86_64", timeout: float = 6.0) -> bool:
    """Whether a KVM guest of this kernel prints its banner within ``timeout`` seconds.

    Some nested hosts open /dev/kvm and create VMs, and then the guest hangs or QEMU aborts
    (seen: "failed to set MSR 0x10a" with -cpu host; a silent hang after SeaBIOS otherwise).
    """
    key = f"{qemu} {kernel.vmlinuz}"
    if key in _KVM_BOOTS:
        return _KVM_BOOTS[key]
    ok = False
    if kvm_usable():
        with tempfile.TemporaryDirectory(prefix="vfioctl-kvm-", dir="/tmp") as tmp:
            log = Path(tmp) / "serial.log"
            cmd = [
                qemu, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
                "-no-reboot", "-accel", "kvm", "-cpu", "host", "-m", "256",
                "-machine", "q35,kernel-irqchip=split", "-kernel", str(kernel.vmlinuz),
                "-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1", "-serial", f"file:{log}",
            ]  # fmt: skip
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=_set_pdeathsig,
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            try:
                while time.monotonic() < deadline and proc.poll() is None:
                    with contextlib.suppress(OSError):
                        if b"Linux version" in log.read_bytes():
                            ok = True
                            break
                    time.sleep(0.1)
            finally:
                proc.kill()
                proc.wait()
    _KVM_BOOTS[key] = ok
    return ok


# ---------------------------------------------------------------------------------------------
# The guest kernels: Debian's packages, unpacked and depmod-ed in a cache


@dataclasses.dataclass(frozen=True)
class KernelSource:
    """A kernel the lab boots: what Debian ``suite``'s linux-image-amd64 depends on today."""

    label: str  # the kernel series: test ids end in [6.1], VFIOCTL_LAB_KERNELS names it
    suite: str  # the Debian suite whose linux-image-amd64 gives it
    release: str  # for people: "Debian 12"


# Every VM test runs on each of these (the default; VFIOCTL_LAB_KERNELS picks some).  The
# package is fetched from Debian's archive whatever release this machine runs.
KERNEL_SOURCES = (
    KernelSource("6.1", "bookworm", "Debian 12"),
    KernelSource("6.12", "trixie", "Debian 13"),
)
ENV_KERNELS = "VFIOCTL_LAB_KERNELS"  # comma-separated labels or suites (6.12, trixie); default all
ENV_MIRROR = "VFIOCTL_LAB_MIRROR"  # Debian mirror (default http://deb.debian.org/debian)
ENV_SECURITY_MIRROR = "VFIOCTL_LAB_SECURITY_MIRROR"  # default http://deb.debian.org/debian-security
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
META_PACKAGE = "linux-image-amd64"


def selected_kernels(value: str | None = None) -> list[KernelSource]:
    """The kernels VFIOCTL_LAB_KERNELS names (labels or suites), all of them when unset."""
    raw = (os.environ.get(ENV_KERNELS, "") if value is None else value).strip()
    if raw in ("", "all"):
        return list(KERNEL_SOURCES)
    chosen: list[KernelSource] = []
    for word in filter(None, re.split(r"[\s,]+", raw)):
        found = [s for s in KERNEL_SOURCES if word in (s.label, s.suite)]
        if not found:
            known = ", ".join(f"{s.label} ({s.suite})" for s in KERNEL_SOURCES)
            raise LabSetupError(f"{ENV_KERNELS}={raw}: no lab kernel {word!r}; known: {known}, all")
        if found[0] not in chosen:
            chosen.append(found[0])
    return chosen


def kernel_source(which: "KernelSource | str | None" = None) -> KernelSource:
    """A KernelSource from a label or suite; None: the first selected one."""
    if isinstance(which, KernelSource):
        return which
    if which is None:
        return selected_kernels()[0]
    (found,) = selected_kernels(which)
    return found


@dataclasses.dataclass(frozen=True)
class Kernel:
    package: str  # linux-image-6.1.0-56-amd64
    version: str  # the package's version, 6.1.192-2
    kver: str  # uname -r in the guest, 6.1.0-56-amd64
    tree: Path  # dpkg -x output: boot/, lib/modules/<kver>/ with modules.dep
    label: str = ""  # KernelSource.label: 6.1
    suite: str = ""  # KernelSource.suite: bookworm

    @property
    def vmlinuz(self) -> Path:
        return self.tree / "boot" / f"vmlinuz-{self.kver}"

    @property
    def config(self) -> Path:
        return self.tree / "boot" / f"config-{self.kver}"

    @property
    def modules(self) -> Path:
        return self.tree / "lib" / "modules" / self.kver


def cache_dir() -> Path:
    return Path(os.environ.get(ENV_CACHE) or DEFAULT_CACHE)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class SuiteApt:
    """apt-get and apt-cache on one Debian suite, with private sources and lists.

    The machine's own apt sources, lists and preferences are never read or changed: a Debian 12
    machine fetches Debian 13's kernel (and the other way round) without adding the suite to its
    system.  apt still verifies the suite's InRelease signature with the archive keyring.
    """

    KEYRINGS = ("/usr/share/keyrings/debian-archive-keyring.pgp",
                "/usr/share/keyrings/debian-archive-keyring.gpg")

    def __init__(self, source: KernelSource, cache: Path) -> None:
        self.source = source
        self.dir = cache / "apt" / source.suite

    def sources_list(self) -> str:
        mirror = os.environ.get(ENV_MIRROR) or DEFAULT_MIRROR
        security = os.environ.get(ENV_SECURITY_MIRROR) or DEFAULT_SECURITY_MIRROR
        keyring = next((k for k in self.KEYRINGS if os.path.exists(k)), None)
        opts = f"[arch=amd64 signed-by={keyring}] " if keyring else "[arch=amd64] "
        s = self.source.suite
        return (f"deb {opts}{mirror} {s} main\n"
                f"deb {opts}{mirror} {s}-updates main\n"
                f"deb {opts}{security} {s}-security main\n")

    def options(self) -> list[str]:
        d = self.dir
        conf = {
            "Dir::Etc::sourcelist": d / "sources.list",
            "Dir::Etc::sourceparts": d / "sources.list.d",  # empty
            "Dir::Etc::preferences": d / "preferences",  # absent: no pinning
            "Dir::Etc::preferencesparts": d / "preferences.d",  # empty
            "Dir::State::Lists": d / "lists",
            "Dir::Cache": d / "cache",
            "APT::Architecture": "amd64",
            "APT::Architectures": "amd64",
            "Acquire::Languages": "none",
            "APT::Sandbox::User": "root",  # the private dirs are root's
        }
        return [arg for k, v in conf.items() for arg in ("-o", f"{k}={v}")]

    def _setup(self) -> None:
        for sub in ("sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        text = self.sources_list()
        path = self.dir / "sources.list"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)

    def has_lists(self) -> bool:
        return any((self.dir / "lists").glob("*_Packages*"))

    def update(self) -> None:
        self._setup()
        _run(["apt-get", *self.options(), "-q", "update"])

    def cache(self, *args: str) -> str:
        return _run(["apt-cache", *self.options(), *args]).stdout

    def download(self, pkg: str, version: str, dest: Path) -> None:
        _run(["apt-get", *self.options(), "-q", "download", f"{pkg}={version}"], cwd=dest)


def _pinned_package(source: KernelSource) -> str | None:
    """VFIOCTL_LAB_KERNEL_PACKAGE=6.1=linux-image-6.1.0-50-amd64,trixie=...: this kernel's pin."""
    for item in filter(None, re.split(r"[\s,]+", os.environ.get(ENV_KERNEL_PACKAGE, ""))):
        key, sep, pkg = item.partition("=")
        if sep and key in (source.label, source.suite):
            return pkg
    return None


def kernel_package(source: KernelSource, apt: SuiteApt, *, refresh: bool = False) -> tuple[str, str]:
    """(package, version) that the suite's linux-image-amd64 depends on now.

    The suite's lists are fetched when ``refresh`` is set (``lab.py prepare``) or absent.
    """
    pinned = _pinned_package(source)
    if refresh or not apt.has_lists():
        _log(f"apt-get update of {source.suite} (private lists in {apt.dir})")
        apt.update()
    if pinned:
        pkg = pinned
    else:
        deps = apt.cache("depends", META_PACKAGE)
        m = re.search(r"^\s*Depends:\s*(linux-image-[^\s<>]+)", deps, re.M)
        if not m:
            raise LabSetupError(f"{source.suite}: `apt-cache depends {META_PACKAGE}` names no kernel:\n{deps}")
        pkg = m.group(1)
    show = apt.cache("show", "--no-all-versions", pkg)
    m = re.search(r"^Version:\s*(\S+)", show, re.M)
    if not m:
        raise LabSetupError(f"{source.suite}: no version of {pkg}" + (f" (pinned {pinned})" if pinned else ""))
    return pkg, m.group(1)


def _cached_kernels(suite_dir: Path) -> list[Kernel]:
    kernels = []
    for meta in suite_dir.glob("*/kernel.json"):
        try:
            d = json.loads(meta.read_text())
            kernels.append(Kernel(d["package"], d["version"], d["kver"], meta.parent / "tree",
                                  d.get("label", ""), d.get("suite", "")))
        except (OSError, ValueError, KeyError):
            continue
    return sorted(kernels, key=lambda k: k.tree.parent.stat().st_mtime)


def ensure_kernel(
    which: "KernelSource | str | None" = None, cache: Path | None = None, *, refresh: bool = False
) -> Kernel:
    """Download, unpack and depmod a suite's current kernel package, once per package version.

    Cached in ``<cache>/<suite>/<package>_<version>/``; offline, the newest kernel cached for
    that suite is used.  (Kernels a lab.py of an older layout cached at ``<cache>/*/`` are left
    to it.)
    """
    source = kernel_source(which)
    cache = cache or cache_dir()
    suite_dir = cache / source.suite
    apt = SuiteApt(source, cache)
    with _locked(cache / ".lock"):
        try:
            return _fetch_kernel(source, apt, suite_dir, refresh=refresh)
        except LabSetupError as err:
            # Offline: a kernel unpacked earlier still boots the lab.
            cached = _cached_kernels(suite_dir) if suite_dir.is_dir() else []
            if not cached or isinstance(err, LabKernelMismatch):
                raise
            _log(f"{source.suite}: using cached {cached[-1].package} {cached[-1].version}: "
                 f"{str(err).splitlines()[0]}")
            return cached[-1]


def _fetch_kernel(source: KernelSource, apt: SuiteApt, suite_dir: Path, *, refresh: bool) -> Kernel:
    pkg, version = kernel_package(source, apt, refresh=refresh)
    try:
        return _unpacked_kernel(source, apt, suite_dir, pkg, version)
    except LabSetupError:
        if refresh:
            raise
    # Lists older than the mirror: the version they name may be gone from it.
    pkg, version = kernel_package(source, apt, refresh=True)
    return _unpacked_kernel(source, apt, suite_dir, pkg, version)


def _unpacked_kernel(source: KernelSource, apt: SuiteApt, suite_dir: Path, pkg: str, version: str) -> Kernel:
    key = re.sub(r"[^A-Za-z0-9.+~-]", "_", f"{pkg}_{version}")
    entry = suite_dir / key
    for k in _cached_kernels(suite_dir):
        if k.tree.parent == entry:
            return k
    work = suite_dir / f".{key}.partial"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.monotonic()
    _log(f"downloading {pkg}={version} ({source.suite}) into {suite_dir}")
    apt.download(pkg, version, work)
    (deb,) = work.glob("*.deb")
    tree = work / "tree"
    _run(["dpkg", "-x", str(deb), str(tree)])
    deb.unlink()
    # Debian 13's kernels ship usr/lib/modules; depmod -b wants <base>/lib/modules.
    if not (tree / "lib" / "modules").is_dir() and (tree / "usr/lib/modules").is_dir():
        (tree / "lib").symlink_to("usr/lib")
    kvers = sorted(p.name for p in (tree / "lib" / "modules").iterdir() if p.is_dir())
    if len(kvers) != 1:
        raise LabSetupError(f"{pkg}: expected one lib/modules/<kver>, found {kvers}")
    kver = kvers[0]
    if not re.match(rf"{re.escape(source.label)}[.-]", kver):
        raise LabKernelMismatch(
            f"{source.suite}'s {META_PACKAGE} now gives {pkg} ({kver}), not a {source.label} kernel:"
            " update KERNEL_SOURCES in tests/vm/lab.py (and the facts the tests assert for it)"
        )
    depmod = _which("depmod")
    if not depmod:
        raise LabSetupError("depmod missing (Debian package kmod)")
    _run([depmod, "-b", str(tree), kver])
    kernel = Kernel(pkg, version, kver, entry / "tree", source.label, source.suite)
    for path in (tree / "boot" / f"vmlinuz-{kver}", tree / "boot" / f"config-{kver}"):
        if not path.is_file():
            raise LabSetupError(f"{pkg}: {path.relative_to(tree)} missing")
    meta = {"package": pkg, "version": version, "kver": kver, "label": source.label,
            "suite": source.suite, "built": time.time()}
    (work / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(work, entry)
    _log(f"kernel {kver} ready in {time.monotonic() - t0:.1f}s")
    # One kernel per suite is enough; older versions are ~400 MB each.
    for old in _cached_kernels(suite_dir):
        if old.tree.parent != entry:
            shutil.rmtree(old.tree.parent, ignore_errors=True)
    return kernel


def module_files(kernel: Kernel, names: Iterable[str]) -> list[Path]:
    """The .ko files to insmod, in load order, for modules ``names`` and their dependencies.

    Asks modprobe about the depmod-ed tree: dependencies change between kernel packages.
    """
    modprobe = _which("modprobe")
    if not modprobe:
        raise LabSetupError("modprobe missing (Debian package kmod)")
    files: list[Path] = []
    for name in names:
        out = _run(
            [modprobe, "-d", str(kernel.tree), "-S", kernel.kver, "-C", "/dev/null",
             "--show-depends", name]
        ).stdout
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "insmod":
                path = Path(words[1])
                if path not in files:
                    files.append(path)
            # "builtin NAME": nothing to load.
    return files


def _module_bytes(path: Path) -> bytes:
    """An uncompressed module image: busybox insmod does not decompress."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        zstd = _which("zstd")
        if not zstd:
            raise LabSetupError(f"{path.name} is zstd-compressed: install zstd")
        return subprocess.run([zstd, "-dc", str(path)], capture_output=True, check=True).stdout
    return data


# ---------------------------------------------------------------------------------------------
# The initramfs


class _Cpio:
    """A newc cpio archive, the format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._ino = 1

    def _add(
        self,
        name: str,
        mode: int,
        data: bytes = b"",
        rdev: tuple[int, int] = (0, 0),
        st: os.stat_result | None = None,
    ) -> None:
        name_b = name.encode(errors="surrogateescape") + b"\0"
        uid, gid, mtime = (st.st_uid, st.st_gid, int(st.st_mtime)) if st else (0, 0, 0)
        fields = [self._ino, mode, uid, gid, 1, mtime, len(data), 0, 0, *rdev, len(name_b), 0]
        self._ino += 1
        head = b"070701" + b"".join(b"%08X" % v for v in fields)
        self._chunks += [head, name_b, b"\0" * (-(len(head) + len(name_b)) % 4)]
        self._chunks += [data, b"\0" * (-len(data) % 4)]

    def dir(self, name: str) -> None:
        self._add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._add(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._add(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._add(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def tree(self, src: str, dest: str) -> None:
        """Copy a host directory tree: dirs, regular files, symlinks, with modes and owners.

        Unreadable files (a run as non-root) and special files are left out.
        """
        for top, dirs, files in os.walk(src):
            rel = os.path.relpath(top, src)
            out = dest if rel == "." else f"{dest}/{rel}"
            st = os.lstat(top)
            self._add(out, stat.S_IFDIR | stat.S_IMODE(st.st_mode), st=st)
            for name in sorted(files) + sorted(d for d in dirs if os.path.islink(f"{top}/{d}")):
                path = f"{top}/{name}"
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    self._add(f"{out}/{name}", st.st_mode, os.readlink(path).encode(), st=st)
                elif stat.S_ISREG(st.st_mode):
                    try:
                        data = Path(path).read_bytes()
                    except OSError:
                        continue
                    self._add(f"{out}/{name}", st.st_mode, data, st=st)

    def bytes(self) -> bytes:
        self._add("TRAILER!!!", 0)
        return b"".join(self._chunks)


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def chroot_plan(
    *, kernel: Kernel, keep: Iterable[str], root: str = "/"
) -> list[str]:
    """Shell lines that turn the read-only 9p tree (/ro, bound at /host) into a host-like chroot.

    Paths are resolved on this machine, which is the tree the guest sees: a symlinked target
    (/var/run -> /run, /lib -> usr/lib) is mounted where it points; a missing one (usually
    /var/lib/vfioctl) gets its parent "shadowed", a tmpfs that re-binds the parent's entries,
    because nothing can be created on the read-only 9p tree (and overlayfs refuses 9p lowers).
    """
    q = shlex.quote

    def real(path: str) -> str:
        return os.path.realpath(os.path.join(root, path.lstrip("/")))[len(root.rstrip("/")):] or "/"

    lines: list[str] = []
    targets: list[str] = []
    for path in TMPFS_DIRS:
        target = real(path)
        if target not in targets:
            targets.append(target)
    modules_dir = real("/lib/modules")
    boot_dir = real("/boot")
    etc_dir = real("/etc")

    # Shadow the nearest existing ancestor of each missing mount point.
    shadows: set[str] = set()
    for target in targets + [modules_dir, boot_dir]:
        probe = target
        while not os.path.isdir(os.path.join(root, probe.lstrip("/"))):
            probe = os.path.dirname(probe)
        if probe != target:
            shadows.add(probe)
    for shadow in sorted(shadows, key=lambda p: (p.count("/"), p)):
        lines.append(f"# {shadow}: tmpfs re-binding the read-only originals")
        lines.append(f"mount -t tmpfs -o mode=755 lab-shadow /host{q(shadow)}")
        host_dir = os.path.join(root, shadow.lstrip("/"))
        for name in sorted(os.listdir(host_dir)):
            src, dst = q(f"/ro{shadow.rstrip('/')}/{name}"), q(f"/host{shadow.rstrip('/')}/{name}")
            full = os.path.join(host_dir, name)
            if os.path.islink(full):
                lines.append(f"ln -s {q(os.readlink(full))} {dst}")
            elif os.path.isdir(full):
                lines.append(f"mkdir {dst} && mount --bind {src} {dst}")
            else:
                lines.append(f"touch {dst} && mount --bind {src} {dst}")

    lines.append("# kernel file systems")
    lines.append("mount --bind /proc /host/proc && mount --bind /sys /host/sys")
    lines.append("mkdir -p /dev/pts /dev/shm && mount --bind /dev /host/dev")
    lines.append("mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /host/dev/pts")
    lines.append("ln -sf pts/ptmx /host/dev/ptmx")
    lines.append("mount -t tmpfs -o mode=1777 shm /host/dev/shm")
    lines.append("mount -t cgroup2 cgroup2 /host/sys/fs/cgroup 2>/dev/null || true")

    lines.append("# writable places")
    for target in sorted(targets, key=lambda p: (p.count("/"), p)):
        mode = "1777" if target in ("/tmp", "/var/tmp") else "755"
        lines.append(f"mkdir -p /host{q(target)} && mount -t tmpfs -o mode={mode} lab /host{q(target)}")
    lines.append("mkdir -p /host/run/lock /host/run/user")

    # Copied on the host into the initramfs: cp over 9p under TCG took 4-11 s.
    lines.append("# /etc: a writable copy (overlayfs over 9p is refused)")
    lines.append(f"mount --bind /etc-rw /host{q(etc_dir)}")

    tree = str(kernel.tree.resolve())
    kmods = f"/ro{tree}/lib/modules/{kernel.kver}"
    lines.append("# the guest kernel's modules and config, where modprobe and checks look")
    lines.append(f"mkdir -p /host{q(modules_dir)} && mount -t tmpfs -o mode=755 lab /host{q(modules_dir)}")
    lines.append(f"mkdir /host{q(modules_dir)}/{q(kernel.kver)}")
    lines.append(f"mount --bind {q(kmods)} /host{q(modules_dir)}/{q(kernel.kver)}")
    lines.append(f"mkdir -p /host{q(boot_dir)} && mount -t tmpfs -o mode=755 lab /host{q(boot_dir)}")
    for name in (f"config-{kernel.kver}", f"System.map-{kernel.kver}"):
        lines.append(f"cp /ro{q(tree)}/boot/{q(name)} /host{q(boot_dir)}/ 2>/dev/null || true")

    covered = targets + [modules_dir, boot_dir, etc_dir]
    for path in sorted(set(keep)):
        path = real(path)
        if any(_under(path, t) and path != t for t in covered):
            lines.append(f"# {path} lies under a tmpfs: bind the original back")
            lines.append(f"mkdir -p /host{q(path)} && mount --bind /ro{q(path)} /host{q(path)}")
    return lines


def init_script(
    *, kernel: Kernel, modules: list[str], python: str, repo: str, agent: str, keep: Iterable[str]
) -> str:
    """The initramfs /init: pure text, from the kernel, module list and host paths."""
    q = shlex.quote
    insmods = "\n".join(f"insmod /mods/{q(m)} || die 'insmod {m}'" for m in modules)
    # Every step must work: a half-built chroot makes tests fail in confusing ways.
    plan = "\n".join(
        f"t {q(line[2:])}" if line.startswith("# ")
        else line if line.endswith("|| true") else f"{line} || die {q(line)}"
        for line in chroot_plan(kernel=kernel, keep=keep)
    )
    ninep_cache = os.environ.get(ENV_9P_CACHE, "loose")
    chroot_env = f"env -i PATH={GUEST_PATH} HOME=/root LANG=C.UTF-8 TERM=dumb /bin/chroot /host"
    return f"""#!/bin/busybox sh
# Generated by tests/vm/lab.py; runs as PID 1 of the lab guest.
/bin/busybox --install -s /bin
export PATH=/bin
t() {{ read -r up _ </proc/uptime; echo "lab-init: [$up] $*"; }}
die() {{ echo "lab-init: FAILED: $*"; echo "lab-init: mounts:"; cat /proc/mounts; poweroff -f; sleep 5; }}
mkdir -p /proc /sys /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ln -sf /proc/self/fd /dev/fd; ln -sf fd/0 /dev/stdin; ln -sf fd/1 /dev/stdout; ln -sf fd/2 /dev/stderr
t "kernel $(uname -r), modules for 9p and virtio-serial"
{insmods}
mkdir -p /ro /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache={ninep_cache} {NINEP_TAG} /ro || die "9p mount"
mount --bind /ro /host || die "bind /host"
t "host root mounted, building the chroot"
{plan}
hostname vfioctl-lab
ip link set lo up
t "chroot ready, loading host drivers in the background: {' '.join(HOST_DRIVERS)}"
# What udev would do on a host; the harness waits for {DRIVERS_DONE} before tests run.
( {chroot_env} modprobe -a {' '.join(HOST_DRIVERS)}; echo $? >/host{DRIVERS_DONE}
  t "host drivers loaded rc=$(cat /host{DRIVERS_DONE})" ) &
t "starting agent"
{chroot_env} {q(python)} -u -B -S {q(agent)} --port {AGENT_PORT} --cwd {q(repo)} </dev/null
t "agent exited rc=$?, powering off"
sync
poweroff -f
sleep 10
"""


def build_initramfs(
    dest: Path, *, kernel: Kernel, python: str, repo: Path, agent: Path = AGENT
) -> Path:
    busybox = "/bin/busybox"
    if not os.path.exists(busybox) or not _elf_is_static(busybox):
        raise LabSetupError(f"{busybox} must be busybox-static")
    mods = module_files(kernel, INITRAMFS_MODULES)
    names = []
    arc = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "mods", "ro", "host", "etc"):
        arc.dir(d)
    arc.chardev("dev/console", 5, 1)
    arc.tree(os.path.realpath("/etc"), "etc-rw")
    arc.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    for i, path in enumerate(mods):
        name = f"{i:02d}-{path.name.split('.ko')[0]}.ko"
        arc.file(f"mods/{name}", _module_bytes(path))
        names.append(name)
    py = Path(python)
    keep = {str(repo), str(py.parent), str(py.parent.parent), str(agent.parent)}
    script = init_script(
        kernel=kernel, modules=names, python=python, repo=str(repo), agent=str(agent), keep=keep
    )
    arc.file("init", script.encode(), 0o755)
    dest.write_bytes(arc.bytes())
    return dest


# ---------------------------------------------------------------------------------------------
# QEMU


def qemu_command(
    *,
    qemu: str,
    accel: str,
    kernel: Kernel,
    initramfs: Path,
    console: Path,
    agent_socket: Path,
    nvme_image: Path,
    append: str = "",
    layout: str = "a",
) -> list[str]:
    """The lab machine.  Every device has an explicit address; -nodefaults adds nothing else.

    intel-iommu must precede the devices it translates for.  NICs get romfile= so neither
    ipxe ROM files nor their boot-time cost are needed.
    """
    # no_timer_check: the IO-APIC timer check at early boot counts timer ticks in a busy loop,
    # and a TCG guest on a loaded 2-core host can miss them: 6.12 then panicked with "timer
    # doesn't work through Interrupt-remapped IO-APIC" (seen once, a second guest booting
    # beside the first).  The check proves nothing about what the tests look at.
    cmdline = "console=ttyS0 intel_iommu=on panic=-1 quiet no_timer_check " + append
    args = [
        qemu, "-name", "vfioctl-lab", "-nodefaults", "-no-user-config", "-no-reboot",
        "-display", "none", "-monitor", "none",
        "-machine", "q35,kernel-irqchip=split", "-accel", accel,
        "-smp", "2", "-m", "1536",
        "-chardev", f"file,id=con0,path={console}", "-serial", "chardev:con0",
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        "-kernel", str(kernel.vmlinuz), "-initrd", str(initramfs), "-append", cmdline.strip(),
        # 00:01.0 boot VGA
        "-device", "VGA,id=vga0,bus=pcie.0,addr=0x1",
    ]  # fmt: skip
    if accel == "kvm":
        args += ["-cpu", "host"]

    def nic(model: str, n: int, bus: str, addr: str, extra: str = "") -> list[str]:
        return [
            "-netdev", f"user,id=net{n},restrict=on",
            "-device", f"{model},id=nic{n},netdev=net{n},bus={bus},addr={addr},"
            f"mac=52:54:00:00:{n >> 8:02x}:{n & 0xFF:02x},romfile={extra}",
        ]  # fmt: skip

    if layout == "b":
        return args + _layout_b(nic, nvme_image, agent_socket)
    args += nic("e1000e", 2, "pcie.0", "0x2")  # 00:02.0 main target
    args += [  # 00:03.0 the host's root, read-only
        "-fsdev", "local,id=fs0,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", f"virtio-9p-pci,id=ninep,fsdev=fs0,mount_tag={NINEP_TAG},bus=pcie.0,addr=0x3",
    ]  # fmt: skip
    args += [  # 00:04.0 nvme PF with SR-IOV (vm-lab.md's parameters)
        "-device", "nvme-subsys,id=ss0,nqn=nqn.2026-11.org.vfioctl:lab",
        "-drive", f"file={nvme_image},if=none,id=nv0,format=raw",
        "-device", "nvme,id=nvme0,serial=vfioctl-lab,subsys=ss0,sriov_max_vfs=4,"
        "sriov_vq_flexible=8,sriov_vi_flexible=4,max_ioqpairs=12,msix_qsize=16,"
        "bus=pcie.0,addr=0x4",
        "-device", "nvme-ns,drive=nv0,nsid=1,bus=nvme0",
    ]  # fmt: skip
    args += ["-device", "pcie-pci-bridge,id=br1,bus=pcie.0,addr=0x5"]  # 00:05.0
    args += nic("e1000", 0x101, "br1", "0x1")  # 01:01.0
    args += nic("e1000", 0x102, "br1", "0x2")  # 01:02.0
    args += [  # 00:06.0 the agent channel
        "-device", "virtio-serial-pci,id=vser0,bus=pcie.0,addr=0x6",
        "-chardev", f"socket,id=agent,path={agent_socket},server=on,wait=off",
        "-device", f"virtserialport,id=agentport,bus=vser0.0,chardev=agent,name={AGENT_PORT}",
    ]  # fmt: skip
    # 00:07.0 twin of 00:02.0, with a real option ROM (x86 + EFI images) for `vfioctl rom`
    args += nic("e1000e", 7, "pcie.0", "0x7", ROM_FILE if os.path.exists(ROM_FILE) else "")
    for slot in range(0x08, 0x0E):  # 00:08.0 .. 00:0d.0 for benchmarks
        args += nic("e1000", slot, "pcie.0", f"{slot:#x}")
    # 00:0e.0 + 00:0e.1: two functions of one slot, one IOMMU group (no ACS)
    args += nic("e1000", 14, "pcie.0", "0xe.0", ",multifunction=on")
    args += nic("e1000", 15, "pcie.0", "0xe.1")
    # 00:10.0/.1: two root ports in one slot without ACS (QEMU 7.2's disable-acs), a NIC below each
    args += ["-device", "pcie-root-port,id=rpa0,bus=pcie.0,addr=0x10.0,multifunction=on,chassis=10,slot=10,"
             "disable-acs=on",
             "-device", "pcie-root-port,id=rpa1,bus=pcie.0,addr=0x10.1,chassis=11,slot=11,disable-acs=on"]
    args += nic("e1000", 0x20, "rpa0", "0x0")  # 02:00.0
    args += nic("e1000", 0x21, "rpa1", "0x0")  # 03:00.0
    # 00:11.0/.1: the same pair with ACS; an e1000e and an HD audio function below
    args += ["-device", "pcie-root-port,id=rpb0,bus=pcie.0,addr=0x11.0,multifunction=on,chassis=12,slot=12",
             "-device", "pcie-root-port,id=rpb1,bus=pcie.0,addr=0x11.1,chassis=13,slot=13"]
    args += nic("e1000e", 0x22, "rpb0", "0x0")  # 04:00.0
    # a codec on its link (no PCI function of its own): snd_hda_intel then gives /dev/snd/pcmC*
    args += ["-device", "ich9-intel-hda,id=hda0,bus=rpb1,addr=0x0",  # 05:00.0
             "-audiodev", "none,id=snd0", "-device", "hda-duplex,id=hdacodec0,bus=hda0.0,audiodev=snd0"]
    # 00:12.0: a root port with an x3130 switch below, a NIC under each downstream port
    args += ["-device", "pcie-root-port,id=rpc,bus=pcie.0,addr=0x12.0,chassis=14,slot=14",
             "-device", "x3130-upstream,id=up0,bus=rpc,addr=0x0",
             "-device", "xio3130-downstream,id=dn0,bus=up0,addr=0x0,chassis=15,slot=15",
             "-device", "xio3130-downstream,id=dn1,bus=up0,addr=0x1,chassis=16,slot=16"]
    args += nic("e1000", 0x23, "dn0", "0x0")  # 08:00.0
    args += nic("e1000", 0x24, "dn1", "0x0")  # 09:00.0
    if qemu_version(qemu) >= IGB_MIN_QEMU:  # 00:1c.0 root port, igb PF at 0a:00.0 (issue 26)
        args += ["-device", "pcie-root-port,id=rpigb,bus=pcie.0,addr=0x1c.0,chassis=30,slot=30"]
        args += nic("igb", 0x30, "rpigb", "0x0")
    # 00:1d.0: a root port with a second std VGA below (issue 21: a DRM node a process holds)
    args += ["-device", "pcie-root-port,id=rpvga,bus=pcie.0,addr=0x1d.0,chassis=31,slot=31",
             "-device", "VGA,id=vga1,bus=rpvga,addr=0x0"]
    # 00:1e.0: a root port with a qemu-xhci controller and a USB keyboard on it (issue 21: an
    # evdev node a process reads)
    args += ["-device", "pcie-root-port,id=rpusb,bus=pcie.0,addr=0x1e.0,chassis=32,slot=32",
             "-device", "qemu-xhci,id=xhci0,bus=rpusb,addr=0x0",
             "-device", "usb-kbd,id=kbd0,bus=xhci0.0"]
    return args


# A second shape of host for fleet tests (one playbook, two hosts whose devices sit elsewhere):
# the same infrastructure slots (9p at 00:03.0, the agent at 00:06.0), two e1000e twins at
# 00:09.0 and 00:0a.0 instead of 00:02.0 and 00:07.0, the nvme PF at 00:0b.0.
BOOT_LAYOUT_B: dict[str, str | None] = {
    "0000:00:00.0": None,
    "0000:00:01.0": None,
    "0000:00:03.0": "virtio-pci",
    "0000:00:06.0": "virtio-pci",
    "0000:00:09.0": "e1000e",
    "0000:00:0a.0": "e1000e",
    "0000:00:0b.0": "nvme",
    "0000:00:1f.0": None,
    "0000:00:1f.2": None,
    "0000:00:1f.3": None,
}
LAYOUT_SETTLE = {"a": ("0000:00:04.0", "0000:00:02.0"), "b": ("0000:00:0b.0", "0000:00:09.0")}


def _layout_b(nic, nvme_image: Path, agent_socket: Path) -> list[str]:
    args = [
        "-fsdev", "local,id=fs0,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", f"virtio-9p-pci,id=ninep,fsdev=fs0,mount_tag={NINEP_TAG},bus=pcie.0,addr=0x3",
        "-device", "virtio-serial-pci,id=vser0,bus=pcie.0,addr=0x6",
        "-chardev", f"socket,id=agent,path={agent_socket},server=on,wait=off",
        "-device", f"virtserialport,id=agentport,bus=vser0.0,chardev=agent,name={AGENT_PORT}",
    ]  # fmt: skip
    args += nic("e1000e", 9, "pcie.0", "0x9")
    args += nic("e1000e", 10, "pcie.0", "0xa")
    args += [
        "-device", "nvme-subsys,id=ss0,nqn=nqn.2026-11.org.vfioctl:labb",
        "-drive", f"file={nvme_image},if=none,id=nv0,format=raw",
        "-device", "nvme,id=nvme0,serial=vfioctl-lab-b,subsys=ss0,sriov_max_vfs=4,"
        "sriov_vq_flexible=8,sriov_vi_flexible=4,max_ioqpairs=12,msix_qsize=16,bus=pcie.0,addr=0xb",
        "-device", "nvme-ns,drive=nv0,nsid=1,bus=nvme0",
    ]  # fmt: skip
    return args


def _set_pdeathsig() -> None:
    """In the QEMU child: die with the process that started it (pytest killed hard)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_QEMU_VERSION: dict[str, str] = {}


def qemu_version_text(qemu: str | None = None) -> str:
    """`qemu-system-x86_64 --version`'s first line ("" if it cannot run)."""
    qemu = qemu or os.environ.get(ENV_QEMU, "qemu-system-x86_64")
    if qemu not in _QEMU_VERSION:
        try:
            out = subprocess.run([qemu, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        _QEMU_VERSION[qemu] = out.splitlines()[0].strip() if out.strip() else ""
    return _QEMU_VERSION[qemu]


def qemu_version(qemu: str | None = None) -> tuple[int, int]:
    """(major, minor) of the QEMU the lab runs: (7, 2) on Debian 12, (10, 0) on Debian 13."""
    m = re.search(r"version (\d+)\.(\d+)", qemu_version_text(qemu))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


#: the SR-IOV PFs of the lab, in address order
SRIOV_PFS = [NVME_PF]
if qemu_version() >= IGB_MIN_QEMU:  # the igb PF and its root port are there (issue 26)
    BOOT_LAYOUT.update(IGB_LAYOUT)
    SRIOV_PFS.append(IGB_PF)
BOOT_LAYOUT.update(hostuse_layout(qemu_version() >= IGB_MIN_QEMU))
#: issue 21's second std VGA (0b:00.0 with igb, 0a:00.0 without) and qemu-xhci (the bus after)
VGA2, XHCI = sorted(b for b in hostuse_layout(qemu_version() >= IGB_MIN_QEMU) if not b.startswith("0000:00:"))


# ---------------------------------------------------------------------------------------------
# The lab


_LIVE: "set[Lab]" = set()
WORKDIR_PREFIX = "vfioctl-lab-"


def _sweep_stale_workdirs() -> None:
    """Remove temp dirs of labs whose owner died without closing them (pytest SIGKILLed).

    Each workdir holds owner.pid; a dir kept on purpose (VFIOCTL_LAB_KEEP=1) holds no owner.pid.
    """
    for owner in Path("/tmp").glob(f"{WORKDIR_PREFIX}*/owner.pid"):
        try:
            pid = int(owner.read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(owner.parent, ignore_errors=True)
        except (OSError, ValueError):
            continue


@atexit.register
def _close_all() -> None:
    for lab in list(_LIVE):
        with contextlib.suppress(Exception):
            lab.close()


class Lab:
    """A booted lab guest.  Use ``Lab.boot()``; ``close()`` (or ``with``) powers it off."""

    #: what the emulator said when the first boot failed and this is the second (emulator_fault)
    boot_retried = ""

    def __init__(
        self, *, repo: Path, python: str, kernel: Kernel, workdir: Path, accel: str, layout: str = "a"
    ) -> None:
        self.layout = layout
        self.repo = repo
        self.python = python
        self.kernel = kernel
        self.workdir = workdir
        self.accel = accel
        self.console = workdir / "console.log"
        self.socket_path = workdir / "agent.sock"
        self.initramfs = workdir / "initramfs.cpio"
        self.nvme_image = workdir / "nvme.img"
        self.qemu: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self.boot_pci: dict[str, dict[str, Any]] = {}  # the agent's pci snapshot after boot
        self.boot_modules: set[str] = set()
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 1
        self._lock = threading.RLock()
        self._broken: str | None = None
        self._closed = False

    # -- boot -----------------------------------------------------------------------------------

    @classmethod
    def boot(
        cls,
        *,
        repo: Path = REPO,
        python: str = sys.executable,
        accel: str | None = None,
        timeout: float | None = None,
        layout: str = "a",
        kernel: "KernelSource | Kernel | str | None" = None,
    ) -> "Lab":
        """Boot a guest and return once its agent answers and its devices have settled.

        ``kernel``: a label or suite of KERNEL_SOURCES (default: the first selected one), or a
        Kernel already unpacked (a second guest on the same kernel)."""
        problems = check_prereqs()
        if problems:
            raise LabSetupError(
                "the VM lab cannot run here:\n  " + "\n  ".join(problems)
                + "\nInstall them with `python3 tests/vm/lab.py prepare` (as root)."
            )
        repo = Path(repo).resolve()
        python = os.path.abspath(python)
        if not isinstance(kernel, Kernel):
            kernel = ensure_kernel(kernel)
        choice = (accel or os.environ.get(ENV_ACCEL) or "auto").lower()
        if choice not in ("auto", "kvm", "tcg"):
            raise LabSetupError(f"{ENV_ACCEL}={choice}: expected auto, kvm or tcg")
        timeout = timeout or float(os.environ.get(ENV_BOOT_TIMEOUT, "240"))
        if choice == "auto":
            choice = "kvm" if kvm_boots(kernel, os.environ.get(ENV_QEMU, "qemu-system-x86_64")) else "tcg"
            if choice == "kvm":
                # A nested or odd KVM may start and then hang: give it a short leash.
                try:
                    return cls._boot_once(repo, python, kernel, "kvm", min(timeout, 60), layout)
                except LabSetupError:
                    raise
                except LabError as err:
                    _log(f"KVM boot failed, falling back to TCG: {str(err).splitlines()[0]}")
                choice = "tcg"
        try:
            return cls._boot_once(repo, python, kernel, choice, timeout, layout)
        except LabSetupError:
            raise
        except LabError as err:
            if not emulator_fault(str(err)):
                raise
            first = next((line for line in str(err).splitlines() if "Assertion" in line or "rcu" in line), "")
            _log(f"the emulator failed the boot ({first.strip()[:160]}): booting once more")
            lab = cls._boot_once(repo, python, kernel, choice, timeout, layout)
            lab.boot_retried = first.strip()
            return lab

    @classmethod
    def _boot_once(
        cls, repo: Path, python: str, kernel: Kernel, accel: str, timeout: float, layout: str = "a"
    ) -> "Lab":
        # A short path under /tmp: unix socket paths are limited to 107 bytes.
        _sweep_stale_workdirs()
        workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir="/tmp"))
        (workdir / "owner.pid").write_text(f"{os.getpid()}\n")
        lab = cls(repo=repo, python=python, kernel=kernel, workdir=workdir, accel=accel, layout=layout)
        _LIVE.add(lab)
        try:
            lab._start(timeout)
        except BaseException:
            lab.close()
            raise
        return lab

    def _start(self, timeout: float) -> None:
        t0 = time.monotonic()
        build_initramfs(self.initramfs, kernel=self.kernel, python=self.python, repo=self.repo)
        with open(self.nvme_image, "wb") as f:
            f.truncate(64 << 20)
        cmd = qemu_command(
            qemu=os.environ.get(ENV_QEMU, "qemu-system-x86_64"),
            accel=self.accel,
            kernel=self.kernel,
            initramfs=self.initramfs,
            console=self.console,
            agent_socket=self.socket_path,
            nvme_image=self.nvme_image,
            append=os.environ.get(ENV_APPEND, ""),
            layout=self.layout,
        ) + shlex.split(os.environ.get(ENV_QEMU_ARGS, ""))
        (self.workdir / "qemu.cmd").write_text(shlex.join(cmd) + "\n")
        self._qemu_log = open(self.workdir / "qemu.log", "wb")
        self.qemu = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._qemu_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's ^C reaches pytest, which powers off cleanly
            preexec_fn=_set_pdeathsig,
        )
        deadline = t0 + timeout
        while True:
            self._check_alive("while waiting for the agent socket")
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.socket_path))
                self._sock = sock
                break
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
            if time.monotonic() > deadline:
                raise self._error("QEMU never opened the agent socket")
            time.sleep(0.05)
        # The guest reads this ping once its agent opens the port; nothing is lost before.
        self._request({"op": "ping"}, timeout=deadline - time.monotonic(), what="boot")
        self.timings["boot_to_agent_s"] = time.monotonic() - t0
        self._settle(deadline)
        self.timings["boot_to_settled_s"] = time.monotonic() - t0
        self.boot_pci = self.pci()
        self.boot_modules = self.modules()

    def _settle(self, deadline: float) -> None:
        """Wait until the drivers loaded at boot have finished probing (nvme resets async)."""
        script = (
            f"for i in $(seq 600); do [ -s {DRIVERS_DONE} ] &&"
            f" s=$(cat /sys/bus/pci/devices/{LAYOUT_SETTLE[self.layout][0]}/nvme/nvme*/state 2>/dev/null);"
            f' [ "$s" = live ] && ls /sys/bus/pci/devices/{LAYOUT_SETTLE[self.layout][1]}/net/ >/dev/null 2>&1'
            " && exit 0; sleep 0.1; done; exit 1"
        )
        res = self.sh(script, timeout=max(5.0, min(90.0, deadline - time.monotonic())))
        if res.rc != 0:
            raise self._error("devices did not settle after boot (nvme not live or no eth)")

    # -- errors ---------------------------------------------------------------------------------

    def console_tail(self, lines: int = CONSOLE_TAIL) -> str:
        try:
            text = self.console.read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "\n".join(text.splitlines()[-lines:])

    def _error(self, msg: str, cls: type[LabError] = LabError) -> LabError:
        extra = ""
        try:
            qlog = (self.workdir / "qemu.log").read_text(errors="replace").strip()
            if qlog:
                extra = f"\n--- qemu output ---\n{qlog[-3000:]}"
        except OSError:
            pass
        return cls(
            f"{msg} [accel={self.accel}, workdir={self.workdir}]{extra}\n"
            f"--- guest console (last {CONSOLE_TAIL} lines) ---\n{self.console_tail()}"
        )

    def _check_alive(self, doing: str) -> None:
        if self.qemu is not None and self.qemu.poll() is not None:
            self._broken = f"QEMU exited with rc={self.qemu.returncode}"
            raise self._error(f"QEMU exited (rc={self.qemu.returncode}) {doing}")

    # -- the agent protocol ---------------------------------------------------------------------

    def _request(self, req: dict[str, Any], *, timeout: float, what: str) -> dict[str, Any]:
        with self._lock:
            if self._broken:
                raise self._error(f"the lab is unusable ({self._broken}); cannot run {what}")
            if self._sock is None:
                raise LabError("the lab is closed")
            rid = self._next_id
            self._next_id += 1
            data = (json.dumps({**req, "id": rid}) + "\n").encode()
            try:
                self._sock.sendall(data)
            except OSError as err:
                self._broken = f"agent socket: {err}"
                raise self._error(f"cannot send {what} to the agent: {err}") from err
            deadline = time.monotonic() + timeout
            while True:
                nl = self._buf.find(b"\n")
                if nl >= 0:
                    line, self._buf = self._buf[:nl], self._buf[nl + 1:]
                    try:
                        reply = json.loads(line)
                    except ValueError:
                        continue  # noise on the channel before the agent opened it
                    if reply.get("id") == rid:
                        if "error" in reply:
                            raise self._error(f"agent refused {what}: {reply['error']}")
                        return reply
                    continue  # an answer to an abandoned request
                self._check_alive(f"during {what}")
                left = deadline - time.monotonic()
                if left <= 0:
                    self._broken = f"agent silent for {timeout:.0f}s during {what}"
                    raise self._error(f"no answer from the agent within {timeout:.0f}s: {what}")
                self._sock.settimeout(min(left, 0.5))
                try:
                    chunk = self._sock.recv(1 << 20)
                except socket.timeout:
                    continue
                except OSError as err:
                    self._broken = f"agent socket: {err}"
                    raise self._error(f"agent socket failed during {what}: {err}") from err
                if not chunk:
                    self._broken = "agent socket closed"
                    raise self._error(f"agent socket closed during {what}")
                self._buf += chunk

    # -- the API tests use ----------------------------------------------------------------------

    def sh(
        self,
        cmd: str,
        *,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
        check: bool = False,
    ) -> Result:
        """Run ``/bin/sh -c cmd`` as root in the guest's chroot (cwd: the repo)."""
        req: dict[str, Any] = {"cmd": cmd, "timeout": timeout, "env": env or {}}
        if cwd is not None:
            req["cwd"] = cwd
        if input is not None:
            req["input"] = input
        # The agent kills the command at `timeout`; the grace covers a slow TCG guest.
        reply = self._request(req, timeout=timeout + 30, what=f"sh {cmd[:80]!r}")
        result = Result(
            rc=reply["rc"], out=reply["out"], err=reply["err"], secs=reply["secs"],
            timed_out=reply.get("timed_out", False), cmd=cmd,
        )  # fmt: skip
        return result.check() if check else result

    def vfioctl(self, args: str, *, env: dict[str, str] | None = None, **kw: Any) -> Result:
        """Run ``<python> -m vfioctl <args>`` in the guest with PYTHONPATH=<repo>/src."""
        env = {"PYTHONPATH": f"{self.repo}/src", **(env or {})}
        return self.sh(f"{shlex.quote(self.python)} -m vfioctl {args}", env=env, **kw)

    def read(self, path: str) -> str:
        """A guest file's content, stripped; LabError if it cannot be read."""
        reply = self._request({"op": "read", "path": path}, timeout=30, what=f"read {path}")
        if reply["rc"] != 0:
            raise LabError(f"cannot read {path} in the guest: {reply['err']}")
        return reply["out"].strip()

    def exists(self, path: str) -> bool:
        reply = self._request({"op": "stat", "path": path}, timeout=30, what=f"stat {path}")
        return bool(reply["exists"])

    def readlink(self, path: str) -> str | None:
        reply = self._request({"op": "stat", "path": path}, timeout=30, what=f"stat {path}")
        return reply.get("link")

    def driver(self, bdf: str) -> str | None:
        """Name of the driver bound to a PCI function, None if unbound."""
        link = self.readlink(f"/sys/bus/pci/devices/{bdf}/driver")
        return os.path.basename(link) if link else None

    def pci(self, *, brief: bool = False) -> dict[str, dict[str, Any]]:
        """Every PCI function: driver, driver_override (None if empty), sriov_numvfs and,
        unless brief, iommu_group, vendor, device, class (hex without 0x) and physfn."""
        req = {"op": "pci", "brief": brief}
        return self._request(req, timeout=60, what="pci snapshot")["devices"]

    def log_mark(self) -> str:
        """Write a unique marker into the kernel log; :meth:`log_since` reads what follows it.

        Tests never clear the log (``dmesg -C``): later tests and `vfioctl check` read it."""
        self._marks = getattr(self, "_marks", 0) + 1
        mark = f"vfioctl-test-mark-{os.getpid()}-{self._marks}"
        self.sh(f"echo {mark} > /dev/kmsg", check=True)
        return mark

    def log_since(self, mark: str) -> str:
        """Kernel log lines after *mark* (from :meth:`log_mark`)."""
        out = self.sh("dmesg", check=True).out
        at = out.rfind(mark)
        return out[out.find("\n", at) + 1:] if at >= 0 else out

    def modules(self) -> set[str]:
        """Names of the loaded modules (as /proc/modules spells them: vfio_pci)."""
        return {line.split()[0] for line in self.read("/proc/modules").splitlines() if line}

    def ping(self) -> float:
        t0 = time.monotonic()
        self._request({"op": "ping"}, timeout=30, what="ping")
        return time.monotonic() - t0

    # -- keeping tests independent ---------------------------------------------------------------

    def mess(self) -> list[str]:
        """How the guest's devices differ from boot: drivers, overrides, VFs, vfio-pci users."""
        now = self.pci(brief=True)
        problems = []
        for bdf in sorted(set(now) - set(self.boot_pci)):
            problems.append(f"{bdf} appeared (a VF left enabled?), driver {now[bdf]['driver']}")
        for bdf, was in sorted(self.boot_pci.items()):
            cur = now.get(bdf)
            if cur is None:
                problems.append(f"{bdf} vanished (removed and not rescanned?)")
                continue
            if cur["driver"] != was["driver"]:
                problems.append(f"{bdf} driver {cur['driver']}, was {was['driver']}")
            if cur["driver_override"] != was["driver_override"]:
                problems.append(f"{bdf} driver_override {cur['driver_override']!r}, was empty")
            if cur["sriov_numvfs"] != was["sriov_numvfs"]:
                problems.append(f"{bdf} sriov_numvfs {cur['sriov_numvfs']}, was {was['sriov_numvfs']}")
        return problems

    def tidy(self, *, modules_before: set[str] | None = None) -> list[str]:
        """Put devices back as they were at boot; unload vfio modules loaded since.

        Returns what it did.  Processes holding /dev/vfio are killed first: vfio-pci's
        remove() waits for the last user, so an unbind would hang behind them.
        """
        actions = []
        if self.mess():  # the repair runs Python in the guest: seconds under TCG
            boot = {b: {k: d[k] for k in ("driver", "sriov_numvfs")} for b, d in self.boot_pci.items()}
            script = _TIDY.replace("@BOOT@", json.dumps(boot))
            res = self.sh(f"{shlex.quote(self.python)} -", input=script, timeout=120)
            actions += [line for line in res.out.splitlines() if line]
            if res.rc != 0:
                actions.append(f"tidy failed rc={res.rc}: {res.err.strip()}")
        if modules_before is not None:
            extra = sorted(m for m in self.modules() - modules_before if m.startswith("vfio"))
            if extra:
                r = self.sh(f"modprobe -r -a {' '.join(extra)}", timeout=60)
                actions.append(f"modprobe -r {' '.join(extra)}: rc={r.rc} {r.err.strip()}".strip())
        return actions

    # -- shutdown -------------------------------------------------------------------------------

    def close(self) -> None:
        """Power the guest off (kill QEMU if it will not go) and remove the temp dir."""
        if self._closed:
            return
        self._closed = True
        _LIVE.discard(self)
        qemu = self.qemu
        if qemu is not None and qemu.poll() is None and self._sock is not None and not self._broken:
            with contextlib.suppress(LabError, OSError):
                self._request({"op": "poweroff"}, timeout=10, what="poweroff")
            with contextlib.suppress(subprocess.TimeoutExpired):
                qemu.wait(20)
        if qemu is not None and qemu.poll() is None:
            qemu.kill()
            qemu.wait()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if getattr(self, "_qemu_log", None):
            self._qemu_log.close()
        if os.environ.get(ENV_KEEP) == "1":
            with contextlib.suppress(OSError):
                (self.workdir / "owner.pid").unlink()
            _log(f"kept {self.workdir} ({ENV_KEEP}=1)")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Runs in the guest (python -), restores each device to its boot driver.  Kept as text here so
# the agent stays a generic command runner.
_TIDY = r"""
import json, os, signal, time
BOOT = json.loads('''@BOOT@''')
SYS = "/sys/bus/pci/devices"

def w(path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
        return None
    except OSError as err:
        return str(err)

def drv(bdf):
    p = f"{SYS}/{bdf}/driver"
    return os.path.basename(os.readlink(p)) if os.path.islink(p) else None

# 1. processes holding vfio devices (a leftover QEMU) keep vfio-pci's remove() waiting
for pid in os.listdir("/proc"):
    if not pid.isdigit() or int(pid) in (1, os.getpid(), os.getppid()):
        continue
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        held = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
    except OSError:
        continue
    if any(h.startswith("/dev/vfio/") or "vfio-device" in h for h in held):
        os.kill(int(pid), signal.SIGKILL)
        print(f"killed pid {pid} holding vfio devices")
time.sleep(0.2)
# 2. VFs off (unbind them first, the PF's driver then removes them)
for bdf in os.listdir(SYS):
    if os.path.exists(f"{SYS}/{bdf}/physfn") and drv(bdf):
        w(f"{SYS}/{bdf}/driver/unbind", bdf)
for bdf, want in BOOT.items():
    p = f"{SYS}/{bdf}/sriov_numvfs"
    if os.path.exists(p) and open(p).read().strip() != str(want["sriov_numvfs"]):
        print(f"{bdf}: sriov_numvfs -> {want['sriov_numvfs']}: {w(p, str(want['sriov_numvfs'])) or 'ok'}")
# 3. overrides cleared, drivers back
for bdf, want in BOOT.items():
    d = f"{SYS}/{bdf}"
    if not os.path.exists(d):
        print(f"{bdf}: missing, rescanning: {w('/sys/bus/pci/rescan', '1') or 'ok'}")
        continue
    ov = open(f"{d}/driver_override").read().strip()
    if ov and ov != "(null)":
        print(f"{bdf}: clearing driver_override {ov}: {w(d + '/driver_override', chr(10)) or 'ok'}")
    cur = drv(bdf)
    if cur != want["driver"]:
        if cur:
            print(f"{bdf}: unbinding from {cur}: {w(d + '/driver/unbind', bdf) or 'ok'}")
        if want["driver"]:
            os.system(f"modprobe {want['driver']} >/dev/null 2>&1")
            err = w("/sys/bus/pci/drivers_probe", bdf)
            print(f"{bdf}: probing, now {drv(bdf)} (want {want['driver']}){': ' + err if err else ''}")
"""


# ---------------------------------------------------------------------------------------------
# Command line: prepare the machine, measure, debug


def _bench(lab: Lab, n: int = 7) -> dict[str, Any]:
    def median(xs: list[float]) -> float:
        return sorted(xs)[len(xs) // 2]

    sh_rt, sh_in, py_rt = [], [], []
    for _ in range(n):
        t0 = time.monotonic()
        r = lab.sh("true")
        sh_rt.append(time.monotonic() - t0)
        sh_in.append(r.secs)
    for _ in range(n):
        t0 = time.monotonic()
        lab.sh(f"{shlex.quote(lab.python)} -m json.tool </dev/null >/dev/null 2>&1; true")
        py_rt.append(time.monotonic() - t0)
    pyc = lab.sh(f"{shlex.quote(lab.python)} -c pass", check=True)
    return {
        "accel": lab.accel,
        "kernel": lab.kernel.kver,
        "qemu": qemu_version_text(),
        **{k: round(v, 2) for k, v in lab.timings.items()},
        "sh_true_roundtrip_s": round(median(sh_rt), 3),
        "sh_true_in_guest_s": round(median(sh_in), 3),
        "python_m_roundtrip_s": round(median(py_rt), 3),
        "python_c_pass_in_guest_s": round(pyc.secs, 3),
        "ping_s": round(lab.ping(), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="lab.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="install missing Debian packages (root) and fetch the kernels")
    p.add_argument("--kernels", help=f"labels or suites (default: ${ENV_KERNELS}, else all)")
    p.add_argument("--no-packages", action="store_true", help="only fetch the kernels")
    for name, text in (("bench", "boot, time boot/sh/python in the guest, print JSON"),
                       ("layout", "boot and print the PCI devices and their drivers"),
                       ("shell", "boot and run commands typed on stdin in the guest")):
        c = sub.add_parser(name, help=text)
        c.add_argument("--accel", choices=("auto", "kvm", "tcg"))
        c.add_argument("--kernel", help="label or suite (default: the first of $VFIOCTL_LAB_KERNELS)")
    args = ap.parse_args(argv)

    if args.command == "prepare":
        missing = [] if args.no_packages else install_prereqs()
        kernels = [ensure_kernel(k, refresh=True) for k in selected_kernels(args.kernels)]
        print(json.dumps({"installed": missing, "qemu": qemu_version_text(),
                          "kernels": [dataclasses.asdict(k) for k in kernels]}, default=str))
        return 0
    with Lab.boot(accel=args.accel, kernel=args.kernel) as lab:
        if args.command == "bench":
            print(json.dumps(_bench(lab), indent=1))
        elif args.command == "layout":
            for bdf, d in lab.boot_pci.items():
                print(f"{bdf} {d['vendor']}:{d['device']} class={d['class']} "
                      f"group={d['iommu_group']} driver={d['driver']}")
            print("BOOT_LAYOUT matches" if {b: d["driver"] for b, d in lab.boot_pci.items()}
                  == BOOT_LAYOUT else "BOOT_LAYOUT differs")
        else:
            print(f"lab up ({lab.kernel.kver}, {lab.accel}, {lab.timings['boot_to_agent_s']:.1f}s); "
                  "one shell command per line, EOF to power off", file=sys.stderr)
            for line in sys.stdin:
                if line.strip():
                    r = lab.sh(line, timeout=600)
                    sys.stdout.write(r.out)
                    sys.stderr.write(r.err)
                    print(f"[rc={r.rc} {r.secs:.2f}s]", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
