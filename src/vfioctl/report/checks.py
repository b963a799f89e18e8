"""Host readiness for device assignment: each check returns Findings.

A check is a small function ``(host) -> Finding | list[Finding]``.  Each
Finding says what was read (``evidence``: the file and the value) and, when
something is wrong, the exact commands that fix it on this distribution
(``fix``).  Every file is read through :class:`~vfioctl.host.core.Host`, so the
same checks run on a live host, a captured folder or a snapshot tarball.

The rules come from the kernel: Documentation/driver-api/vfio.rst (groups,
``/dev/vfio/vfio``), Documentation/admin-guide/kernel-parameters.txt
(``intel_iommu=``, ``amd_iommu=``, ``iommu=``, ``intremap=``) and
drivers/vfio/vfio_iommu_type1.c, which refuses to attach a group whose MSIs
are not isolated (no interrupt remapping) unless ``allow_unsafe_interrupts``
is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from vfioctl.base.errors import VfioctlError
from vfioctl.base.text import parse_int
from vfioctl.boot.cmdline import fix_command
from vfioctl.host.core import Host
from vfioctl.host.kernel import (
    cmdline,
    cmdline_value,
    config_state,
    cpu,
    iommu_group_numbers,
    kernel_config,
    kernel_log,
    kernel_version,
)
from vfioctl.host.modules import VFIO_MODULES, VFIO_PCI_CORE, module_state
from vfioctl.host.system import (
    DEBIAN_GRUB,
    GRUB2,
    GRUBBY,
    PROXMOX,
    SYSTEMD_BOOT,
    boot_setup,
    grub_regenerate_command,
)
from vfioctl.iommu.groups import groups
from vfioctl.iommu.predict import compare, predict
from vfioctl.pci.topology import read_topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable, Iterable


SCHEMA = "vfioctl.check/1"

PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"
#: how bad each status is; ``Report.worst`` takes the maximum
SEVERITY = {INFO: 0, PASS: 1, WARN: 2, FAIL: 3}


_IR_ENABLED = re.compile(
    r"DMAR-IR: Enabled IRQ remapping|IRQ remapping was enabled|AMD-Vi: Interrupt remapping enabled"
)
_IR_DISABLED = re.compile(
    r"Not enabling interrupt remapping|IRQ remapping disabled|Failed to enable irq remapping"
    r"|irq remapping doesn't support",
    re.IGNORECASE,
)
#: a kernel log line is at most ~1 KiB (kernel/printk: PRINTK_MESSAGE_MAX 2048 with its prefix)
_LOG_LINE = 2048


def _ir_disabled(line: str) -> bool:
    """An interrupt-remapping-off message, or ``DMAR-IR: ... disabled`` (one find each: the
    pattern ``DMAR-IR: .*disabled`` backtracked quadratically on a line repeating its prefix)."""
    line = line[:_LOG_LINE]
    if _IR_DISABLED.search(line):
        return True
    low = line.lower()
    at = low.find("dmar-ir: ")
    return at >= 0 and "disabled" in low[at:]


@dataclass(frozen=True)
class Finding:
    id: str
    title: str
    status: str
    #: the file(s) read and the value(s) found
    evidence: str
    #: exact commands for this distribution, None when nothing needs doing
    fix: str | None = None
    #: the host-use finding's records (vfioctl.usage.record.Use); None for the other findings
    host_use: tuple | None = None

    def __post_init__(self) -> None:
        if self.status not in SEVERITY:
            raise ValueError(f"unknown finding status {self.status!r}")

    def to_dict(self) -> dict:
        d: dict = {"id": self.id, "title": self.title, "status": self.status,
             "evidence": self.evidence, "fix": self.fix}
        if self.host_use is not None:
            d["host_use"] = [u.to_dict() for u in self.host_use]
        return d


@dataclass
class Report:
    findings: list[Finding]

    @property
    def worst(self) -> str:
        return max((f.status for f in self.findings), key=SEVERITY.__getitem__, default=PASS)

    def summary(self) -> dict[str, int]:
        out = {PASS: 0, WARN: 0, FAIL: 0}
        for f in self.findings:
            if f.status in out:
                out[f.status] += 1
        return out

    def get(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "summary": self.summary(), "findings": [f.to_dict() for f in self.findings]}


# ====================================================================== facts
# Parsed once, in vfioctl.host.kernel; re-exported here for the checks below and older callers.


def iommu_kind(host: Host) -> str | None:
    """Whose IOMMU this platform has: the firmware's table and the kernel's IOMMU devices
    say it first (a VM's CPU vendor need not match its emulated IOMMU, e.g. QEMU's default
    CPU model reports AuthenticAMD beside an intel-iommu device); the CPU vendor otherwise."""
    if host.exists("/sys/firmware/acpi/tables/DMAR") or any(n.startswith("dmar") for n in host.listdir("/sys/class/iommu")):
        return "intel"
    if host.exists("/sys/firmware/acpi/tables/IVRS") or any(n.startswith("ivhd") for n in host.listdir("/sys/class/iommu")):
        return "amd"
    return cpu(host).kind


def iommu_flavour(host: Host) -> tuple[str, str, str]:
    """(kernel option to turn it on, config symbol, ACPI table) for this CPU vendor."""
    if iommu_kind(host) == "amd":
        return "amd_iommu=on", "CONFIG_AMD_IOMMU", "IVRS"
    return "intel_iommu=on", "CONFIG_INTEL_IOMMU", "DMAR"


def _qemu_iommu(host: Host) -> str:
    dev = "amd-iommu,intremap=on" if iommu_kind(host) == "amd" else "intel-iommu,intremap=on,caching-mode=on"
    return f"-machine q35,kernel-irqchip=split -device {dev}"


# ====================================================================== boot setup

def cmdline_fix(host: Host, add: list[str] = (), remove: list[str] = ()) -> str:  # type: ignore[assignment]
    """The exact steps to change the kernel command line on this host."""
    add, remove = list(add), list(remove)
    what = []
    if add:
        what.append("add " + " ".join(add))
    if remove:
        what.append("remove " + " ".join(remove))
    change = " and ".join(what)
    setup = boot_setup(host)
    rel = host.uname_release() or "$(uname -r)"
    if setup == PROXMOX:
        text = f"edit /etc/kernel/cmdline to {change}, then run `proxmox-boot-tool refresh` and reboot"
    elif setup == GRUBBY:
        args = []
        if add:
            args.append(f"--args='{' '.join(add)}'")
        if remove:
            args.append(f"--remove-args='{' '.join(remove)}'")
        text = f"grubby --update-kernel=ALL {' '.join(args)}, then reboot"
    elif setup == DEBIAN_GRUB:
        text = (f"edit GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub to {change}, "
                "then run `update-grub` and reboot")
    elif setup == SYSTEMD_BOOT:
        text = (f"edit /etc/kernel/cmdline to {change}, then run "
                f"`kernel-install add {rel} /boot/vmlinuz-{rel}` and reboot")
    elif setup == GRUB2:
        mkconfig = grub_regenerate_command(host)
        text = (f"edit GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub to {change}, "
                f"then run `{mkconfig}` and reboot")
    else:
        text = f"{change} on the kernel command line in your boot loader's configuration, then reboot"

    return f"{text}; or: `{fix_command(add, remove)}`"


# ====================================================================== checks

def check_cpu_virtualization(host: Host) -> Finding:
    c = cpu(host)
    vm = " (hypervisor flag set: this host is itself a virtual machine)" if c.in_vm else ""
    vendor = c.vendor or "unknown vendor"
    found = [f for f in ("vmx", "svm") if f in c.flags]
    if found:
        return Finding("cpu-virt", "CPU virtualization", PASS,
                       f"{found[0]} present in /proc/cpuinfo ({vendor}){vm}")
    if not c.flags:
        return Finding("cpu-virt", "CPU virtualization", WARN, "/proc/cpuinfo has no flags line; cannot tell")
    flag = {"intel": "vmx", "amd": "svm"}.get(c.kind or "", "vmx/svm")
    if c.in_vm:
        fix = ("this is a virtual machine: enable nested virtualization on its host "
               "(kvm_intel nested=1 / kvm_amd nested=1) and give it the host CPU model (QEMU: -cpu host)")
    else:
        fix = "enable VT-x/AMD-V in firmware setup (often under CPU or Advanced: 'Intel Virtualization Technology' or 'SVM Mode')"
    return Finding("cpu-virt", "CPU virtualization", FAIL, f"no {flag} flag in /proc/cpuinfo ({vendor}){vm}", fix)


def check_acpi_table(host: Host) -> Finding:
    kind = iommu_kind(host)
    tables = {"intel": ["DMAR"], "amd": ["IVRS"]}.get(kind or "", ["DMAR", "IVRS"])
    present = [t for t in tables if host.exists(f"/sys/firmware/acpi/tables/{t}")]
    title = "ACPI IOMMU table"
    if present:
        return Finding("acpi-table", title, PASS, f"/sys/firmware/acpi/tables/{present[0]} present")
    paths = " or ".join(f"/sys/firmware/acpi/tables/{t}" for t in tables)
    if not host.is_dir("/sys/firmware/acpi/tables"):
        return Finding("acpi-table", title, INFO, "no /sys/firmware/acpi/tables (not an ACPI system); IOMMU described elsewhere")
    if cpu(host).in_vm:
        fix = "this is a virtual machine without an emulated IOMMU: give it one (QEMU: " + _qemu_iommu(host) + ")"
    else:
        fix = {"intel": "enable VT-d ('Intel Virtualization Technology for Directed I/O') in firmware setup",
               "amd": "enable 'IOMMU' (AMD-Vi) in firmware setup"}.get(
                   kind or "", "enable VT-d (Intel) or IOMMU/AMD-Vi (AMD) in firmware setup")
    return Finding("acpi-table", title, FAIL,
                   f"{paths} absent: the firmware describes no IOMMU", fix)


def check_kernel_config(host: Host) -> list[Finding]:
    source, conf = kernel_config(host)
    title = "Kernel config"
    if source is None:
        rel = host.uname_release() or "<release>"
        return [Finding("kernel-config", title, WARN,
                        f"neither /boot/config-{rel} nor /proc/config.gz exists; build options unknown",
                        "install the kernel's config file (package linux-image-* ships /boot/config-*) "
                        "or load `modprobe configs` for /proc/config.gz")]
    _, iommu_sym, _ = iommu_flavour(host)
    kind = iommu_kind(host)
    iommu_syms = [iommu_sym] if kind else ["CONFIG_INTEL_IOMMU", "CONFIG_AMD_IOMMU"]
    required = iommu_syms + ["CONFIG_IRQ_REMAP", "CONFIG_VFIO", "CONFIG_VFIO_PCI",
                             "CONFIG_VFIO_IOMMU_TYPE1", "CONFIG_KVM_VFIO"]
    states = {name: config_state(conf, name) for name in required}
    # iommufd's compatibility container replaces type1 on kernels built that way
    if states["CONFIG_VFIO_IOMMU_TYPE1"] == "missing" and config_state(conf, "CONFIG_IOMMUFD_VFIO_CONTAINER") != "missing":
        states["CONFIG_VFIO_IOMMU_TYPE1"] = "missing (CONFIG_IOMMUFD_VFIO_CONTAINER=y instead)"
    missing = [n for n, s in states.items() if s == "missing"]
    if not kind:
        # either vendor's IOMMU will do on an unknown CPU
        if any(states[s] != "missing" for s in iommu_syms):
            missing = [n for n in missing if n not in iommu_syms]
    evidence = f"{source}: " + " ".join(f"{n}={s}" for n, s in states.items())
    out = []
    if missing:
        out.append(Finding("kernel-config", title, FAIL, evidence,
                           f"this kernel was built without {', '.join(missing)}: boot a kernel that has them "
                           "(distribution kernels build them, as modules)"))
    else:
        out.append(Finding("kernel-config", title, PASS, evidence))
    iov = config_state(conf, "CONFIG_PCI_IOV")
    if iov == "missing":
        out.append(Finding("kernel-sriov", "SR-IOV support", WARN,
                           f"{source}: CONFIG_PCI_IOV=missing: no SR-IOV virtual functions can be created",
                           "boot a kernel built with CONFIG_PCI_IOV=y if you need virtual functions"))
    else:
        out.append(Finding("kernel-sriov", "SR-IOV support", PASS, f"{source}: CONFIG_PCI_IOV={iov}"))
    if kind == "intel" and states[iommu_sym] != "missing":
        on = config_state(conf, "CONFIG_INTEL_IOMMU_DEFAULT_ON") == "y"
        note = ("the Intel IOMMU is on by default; intel_iommu=on is not needed" if on
                else "the Intel IOMMU is off by default; intel_iommu=on is needed on the command line")
        out.append(Finding("intel-iommu-default", "Intel IOMMU default", INFO,
                           f"{source}: CONFIG_INTEL_IOMMU_DEFAULT_ON={config_state(conf, 'CONFIG_INTEL_IOMMU_DEFAULT_ON')}: {note}"))
    return out


def check_cmdline(host: Host) -> list[Finding]:
    params = cmdline(host)
    kind = iommu_kind(host)
    on_opt, _, _ = iommu_flavour(host)
    _, conf = kernel_config(host)
    groups_present = bool(iommu_group_numbers(host))
    title = "Kernel command line"
    iommu = cmdline_value(params, "iommu")
    intel = cmdline_value(params, "intel_iommu")
    amd = cmdline_value(params, "amd_iommu")
    shown = " ".join(p for p in params if p.split("=")[0] in ("iommu", "intel_iommu", "amd_iommu", "intremap")) or "no IOMMU options"
    evidence = f"/proc/cmdline: {shown}"
    out: list[Finding] = []

    off = [f"iommu={v}" for v in iommu if v == "off"]
    off += [f"intel_iommu={v}" for v in intel if v == "off"]
    off += [f"amd_iommu={v}" for v in amd if v == "off"]
    if off:
        add = [on_opt] if kind == "intel" and config_state(conf, "CONFIG_INTEL_IOMMU_DEFAULT_ON") != "y" else []
        out.append(Finding("cmdline-iommu", title, FAIL, f"{evidence}: {' '.join(off)} turns the IOMMU off",
                           cmdline_fix(host, add=add, remove=off)))
    elif kind == "intel" and "on" not in intel and config_state(conf, "CONFIG_INTEL_IOMMU_DEFAULT_ON") != "y":
        if groups_present:
            out.append(Finding("cmdline-iommu", title, PASS,
                               f"{evidence}; no intel_iommu=on but IOMMU groups exist (enabled another way)"))
        else:
            out.append(Finding("cmdline-iommu", title, FAIL,
                               f"{evidence}: intel_iommu=on missing and this kernel does not turn the Intel IOMMU on by default",
                               cmdline_fix(host, add=["intel_iommu=on", "iommu=pt"])))
    else:
        why = {"intel": "the Intel IOMMU is turned on there" if "on" in intel else "Intel IOMMU on by default (CONFIG_INTEL_IOMMU_DEFAULT_ON=y)",
               "amd": "the AMD IOMMU is on by default"}.get(kind or "", "nothing turns the IOMMU off")
        out.append(Finding("cmdline-iommu", title, PASS, f"{evidence}; {why}"))

    if "pt" in iommu:
        out.append(Finding("cmdline-iommu-pt", "IOMMU passthrough", INFO,
                           "/proc/cmdline: iommu=pt: host devices skip DMA translation (recommended)"))
    elif not off:
        out.append(Finding("cmdline-iommu-pt", "IOMMU passthrough", INFO,
                           "/proc/cmdline: no iommu=pt; recommended so host-owned devices skip DMA translation",
                           cmdline_fix(host, add=["iommu=pt"])))
    ids = cmdline_value(params, "vfio-pci.ids") + cmdline_value(params, "vfio_pci.ids")
    if ids:
        out.append(Finding("cmdline-vfio-ids", "vfio-pci.ids", INFO,
                           f"/proc/cmdline: vfio-pci.ids={','.join(ids)}: vfio-pci claims every device with "
                           "these IDs at boot, including twins the host may need"))
    return out


def check_iommu_enabled(host: Host) -> Finding:
    groups = iommu_group_numbers(host)
    units = host.listdir("/sys/class/iommu")
    title = "IOMMU enabled"
    units_txt = f"/sys/class/iommu: {', '.join(units)}" if units else "/sys/class/iommu is empty"
    if groups:
        return Finding("iommu", title, PASS,
                       f"{len(groups)} groups in /sys/kernel/iommu_groups; {units_txt}")
    evidence = f"/sys/kernel/iommu_groups is empty; {units_txt}"
    # why: the first cause found is the one to fix first
    kind = iommu_kind(host)
    on_opt, sym, table = iommu_flavour(host)
    source, conf = kernel_config(host)
    params = cmdline(host)
    causes: list[str] = []
    fixes: list[str] = []
    if source and (config_state(conf, sym) == "missing" if kind else
                   all(config_state(conf, s) == "missing" for s in ("CONFIG_INTEL_IOMMU", "CONFIG_AMD_IOMMU"))):
        causes.append(f"the kernel has no IOMMU driver ({sym} not set in {source})")
        fixes.append(f"boot a kernel built with {sym}=y")
    tables = [table] if kind else ["DMAR", "IVRS"]
    if host.is_dir("/sys/firmware/acpi/tables") and not any(host.exists(f"/sys/firmware/acpi/tables/{t}") for t in tables):
        causes.append(f"the firmware describes no IOMMU (no ACPI {'/'.join(tables)} table)")
        fixes.append(f"give the VM an emulated IOMMU (QEMU: {_qemu_iommu(host)})"
                     if cpu(host).in_vm else check_acpi_table(host).fix or "")
    off = [p for p in params if p in ("iommu=off", "intel_iommu=off", "amd_iommu=off")]
    if off:
        causes.append(f"the command line turns it off ({' '.join(off)})")
        fixes.append(cmdline_fix(host, add=[on_opt] if kind == "intel" else [], remove=off))
    elif kind == "intel" and "on" not in cmdline_value(params, "intel_iommu") and \
            config_state(conf, "CONFIG_INTEL_IOMMU_DEFAULT_ON") != "y":
        causes.append("intel_iommu=on is not on the command line")
        fixes.append(cmdline_fix(host, add=["intel_iommu=on", "iommu=pt"]))
    if not causes:
        causes.append("no cause found in the kernel config, ACPI tables or command line")
        fixes.append("look at `dmesg | grep -i -e DMAR -e IOMMU -e AMD-Vi` for why the IOMMU did not initialise")
    return Finding("iommu", title, FAIL, f"{evidence}: {'; '.join(causes)}", "\n".join(fixes))


def _intel_ir_capable(host: Host) -> bool | None:
    """ECAP bit 3 (IR) of the Intel IOMMUs (VT-d spec 11.4.3); None when none found."""
    seen = None
    for unit in host.listdir("/sys/class/iommu"):
        text = host.read(f"/sys/class/iommu/{unit}/intel-iommu/ecap", default=None)
        if text is None:
            continue
        ecap = parse_int(text, 16)
        if ecap is None:
            continue
        if not ecap & (1 << 3):
            return False
        seen = True
    return seen


def check_interrupt_remapping(host: Host) -> Finding:
    title = "Interrupt remapping"
    param_path = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
    unsafe_raw = host.read(param_path, default=None)
    unsafe = unsafe_raw in ("Y", "1")
    unsafe_txt = f"; {param_path}={unsafe_raw}" if unsafe_raw is not None else ""
    if not host.listdir("/sys/kernel/iommu_groups"):
        return Finding("irq-remap", title, INFO, f"not applicable while the IOMMU is off{unsafe_txt}")
    lines, log_source = kernel_log(host)
    evidence: list[str] = []
    ir: bool | None = None
    if lines is not None:
        on = [ln for ln in lines if _IR_ENABLED.search(ln[:_LOG_LINE])]
        off = [ln for ln in lines if _ir_disabled(ln)]
        if off:
            ir = False
            evidence.append(f"{log_source}: {_strip_ts(off[0])!r}")
        elif on:
            ir = True
            evidence.append(f"{log_source}: {_strip_ts(on[0])!r}")
        else:
            evidence.append(f"{log_source}: no interrupt remapping message")
    else:
        evidence.append(log_source)
    capable = _intel_ir_capable(host)
    if capable is not None:
        evidence.append(f"/sys/class/iommu/*/intel-iommu/ecap IR bit {'set' if capable else 'clear'}")
    params = cmdline(host)
    intremap_off = [p for p in params if p in ("intremap=off", "nointremap")]
    _, conf = kernel_config(host)
    if ir is None:
        if capable is False or intremap_off or config_state(conf, "CONFIG_IRQ_REMAP") == "missing" and conf:
            ir = False
            if intremap_off:
                evidence.append(f"/proc/cmdline: {' '.join(intremap_off)}")
            if conf and config_state(conf, "CONFIG_IRQ_REMAP") == "missing":
                evidence.append("CONFIG_IRQ_REMAP missing")
        elif capable is True or iommu_kind(host) == "amd":
            # hardware supports it, the kernel has it and nothing disables it
            ir = True
            evidence.append("inferred: supported and not disabled")
    evidence.append(f"{param_path}={unsafe_raw}" if unsafe_raw is not None else "vfio_iommu_type1 not loaded")
    ev = "; ".join(evidence)
    if ir is True and not unsafe:
        return Finding("irq-remap", title, PASS, ev)
    if ir is True and unsafe:
        return Finding("irq-remap", title, WARN, ev + ": allow_unsafe_interrupts is on although not needed",
                       "echo N > " + param_path + " and remove allow_unsafe_interrupts=1 from /etc/modprobe.d/*.conf")
    if ir is False and unsafe:
        return Finding("irq-remap", title, WARN,
                       ev + ": no interrupt remapping; vfio accepts devices only because allow_unsafe_interrupts is on "
                       "(an assigned device can inject interrupts into the host)",
                       "enable interrupt remapping (x2APIC / 'Interrupt Remapping' in firmware setup; QEMU: intel-iommu,intremap=on)")
    if ir is False:
        fix = "enable interrupt remapping (x2APIC / 'Interrupt Remapping' in firmware setup; QEMU: -device intel-iommu,intremap=on)"
        if intremap_off:
            fix = cmdline_fix(host, remove=intremap_off)
        fix += ("; last resort, unsafe (an assigned device can inject interrupts into the host): "
                "echo 'options vfio_iommu_type1 allow_unsafe_interrupts=1' > /etc/modprobe.d/vfio-unsafe.conf")
        return Finding("irq-remap", title, FAIL,
                       ev + ": without interrupt remapping vfio_iommu_type1 refuses to attach groups", fix)
    advice = host.root_advice()
    return Finding("irq-remap", title, WARN, ev + ": could not confirm interrupt remapping",
                   f"{advice} so that the kernel log (dmesg) can be read" if advice else
                   "look at `dmesg | grep -i -e DMAR-IR -e AMD-Vi` for the interrupt remapping message")


def _strip_ts(line: str) -> str:
    return re.sub(r"^\[ *[0-9.]{1,20}\] *", "", line).strip()


def check_vfio_modules(host: Host) -> Finding:
    names = list(VFIO_MODULES)
    if kernel_version(host) >= (5, 16):
        names.insert(2, VFIO_PCI_CORE)  # split out of vfio_pci in 5.16
    states = {n: module_state(host, n) for n in names}
    evidence = "; ".join(f"{n}: {s} ({e})" for n, (s, e) in states.items())
    missing = [n for n, (s, _) in states.items() if s == "missing"]
    loadable = [n for n, (s, _) in states.items() if s == "loadable"]
    title = "vfio modules"
    if missing:
        return Finding("vfio-modules", title, FAIL, evidence,
                       f"this kernel has no {', '.join(missing)}: install the distribution's full kernel modules "
                       "package (e.g. linux-modules-extra-$(uname -r) on Ubuntu) or boot a kernel built with CONFIG_VFIO_PCI")
    if loadable:
        return Finding("vfio-modules", title, WARN, evidence + " (vfioctl hide loads them when needed)",
                       "modprobe -a vfio vfio_iommu_type1 vfio-pci; to load them at every boot: "
                       "printf 'vfio\\nvfio_iommu_type1\\nvfio-pci\\n' > /etc/modules-load.d/vfio.conf")
    return Finding("vfio-modules", title, PASS, evidence)


def check_dev_nodes(host: Host) -> list[Finding]:
    out = []
    node = host.is_char_device("/dev/vfio/vfio")
    if node:
        out.append(Finding("dev-vfio", "/dev/vfio/vfio", PASS, "/dev/vfio/vfio exists (vfio container device)"))
    elif node is False:
        out.append(Finding("dev-vfio", "/dev/vfio/vfio", FAIL, "/dev/vfio/vfio exists but is not a character device",
                           "rm /dev/vfio/vfio && modprobe -r vfio_pci vfio_iommu_type1 vfio && modprobe vfio-pci"))
    else:
        state, _ = module_state(host, "vfio")
        if state == "loadable":
            out.append(Finding("dev-vfio", "/dev/vfio/vfio", WARN, "/dev/vfio/vfio absent: the vfio module is not loaded",
                               "modprobe vfio-pci (creates /dev/vfio/vfio)"))
        else:
            out.append(Finding("dev-vfio", "/dev/vfio/vfio", FAIL, f"/dev/vfio/vfio absent (vfio {state})",
                               "boot a kernel with CONFIG_VFIO, then modprobe vfio-pci" if state == "missing"
                               else "check that devtmpfs is mounted on /dev and udev is running"))
    kvm_mods = [m for m in host.listdir("/sys/module") if m == "kvm" or m.startswith("kvm_")]
    mods_txt = f"modules: {', '.join(kvm_mods)}" if kvm_mods else "no kvm module in /sys/module"
    vendor_mod = {"intel": "kvm_intel", "amd": "kvm_amd"}.get(cpu(host).kind or "")
    kvm = host.is_char_device("/dev/kvm")
    if kvm:
        note = ""
        if vendor_mod and vendor_mod not in kvm_mods:
            note = f" ({vendor_mod} not loaded: /dev/kvm comes from another KVM implementation)"
        out.append(Finding("kvm", "KVM", PASS, f"/dev/kvm exists; {mods_txt}{note}"))
    else:
        if not any(f in cpu(host).flags for f in ("vmx", "svm")):
            fix = "enable CPU virtualization first (see CPU virtualization), then modprobe " + (vendor_mod or "kvm")
        else:
            fix = f"modprobe {vendor_mod or 'kvm'}; to load it at boot: echo {vendor_mod or 'kvm'} > /etc/modules-load.d/kvm.conf"
        out.append(Finding("kvm", "KVM", FAIL, f"/dev/kvm absent; {mods_txt}", fix))
    return out


def check_groups_summary(host: Host) -> Finding:
    gs = groups(host)
    if not gs:
        return Finding("groups", "IOMMU groups", INFO, "no IOMMU groups")
    shared = []
    for g in gs:
        members = [m for m in g.members() if m.role != "bridge"]
        if len(members) > 1:
            shared.append(f"{g.number} ({', '.join(str(m.device.address) for m in members)})")
    text = f"{len(gs)} IOMMU groups; {len(shared)} with more than one non-bridge device"
    if shared:
        text += ", assignable only whole: " + "; ".join(shared)
    return Finding("groups", "IOMMU groups", INFO, text)


def check_group_prediction(host: Host) -> Finding:
    """Finding "group-prediction": do the kernel's groups match the rules replayed from config
    space (vfioctl.iommu.replay)?"""
    title = "IOMMU groups from topology"
    topo = read_topology(host)
    if not topo.iommu_enabled:
        return Finding("group-prediction", title, INFO,
                       "the IOMMU is off (no /sys/kernel/iommu_groups): nothing to compare")
    p = predict(topo)
    if not p.complete:
        return Finding("group-prediction", title, INFO, f"cannot predict the groups: {p.why_incomplete()}")
    kernel = topo.kernel_groups()
    diffs = compare(p.groups, kernel)
    if not diffs:
        return Finding("group-prediction", title, PASS,
                       f"the {len(kernel)} kernel groups match the rules replayed from config space "
                       f"(drivers/iommu/iommu.c pci_device_group)")
    ev = "; ".join(d.text for d in diffs)
    if topo.acs_override:
        ev += f"; {' '.join(topo.acs_override)} is on the kernel command line (a patched kernel honours it)"
    return Finding("group-prediction", title, WARN,
                   f"{ev}. A difference means an unknown quirk (ACS or DMA alias) on this platform",
                   "`vfioctl groups --why N` explains a group; report the difference with "
                   "`vfioctl snapshot` taken as root")


CHECKS: tuple[Callable[[Host], Finding | list[Finding]], ...] = (
    check_cpu_virtualization,
    check_acpi_table,
    check_kernel_config,
    check_cmdline,
    check_iommu_enabled,
    check_interrupt_remapping,
    check_vfio_modules,
    check_dev_nodes,
    check_groups_summary,
    check_group_prediction,
)


def run_checks(host: Host, checks: Iterable[Callable[[Host], Finding | list[Finding]]] = CHECKS) -> Report:
    """Run every check; one that cannot read what it needs becomes a warning, not a crash."""
    findings: list[Finding] = []
    for check in checks:
        try:
            res = check(host)
        except VfioctlError as err:
            name = check.__name__.removeprefix("check_").replace("_", "-")
            res = Finding(name, name.replace("-", " ").capitalize(), WARN, f"could not check: {err.message}",
                          host.root_advice() if isinstance(err, PermissionError) else None)
        findings.extend(res if isinstance(res, list) else [res])
    return Report(findings)
