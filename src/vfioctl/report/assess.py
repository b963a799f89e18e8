"""Will this device survive being assigned?  One verdict per device.

Pure: :class:`AssessFacts` in (read from the host by the caller), an
:class:`Assessment` out.  The findings have the form of ``vfioctl check``'s
(:class:`vfioctl.report.checks.Finding`: id, title, status, evidence, fix), one per
concern: the host's IOMMU and interrupt remapping (``check``'s own statuses,
passed in), the IOMMU group, host use, the console, holders, resets, the
option ROM, SR-IOV and the NUMA node.

Verdict rule: ``blocked`` when any finding fails, ``caveats`` when any warns,
else ``ready`` (pass and info findings never lower it).  ``blocked`` means
assigning it now would hurt the host or cannot work; ``caveats`` means it can
work if the fixes or conditions named in the warnings are met.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vfioctl.base.errors import InvalidInput
from vfioctl.base.names import is_vfio_driver
from vfioctl.iommu.roles import ROLE_BRIDGE, ROLE_COMPANION, driver_allows_assignment
from vfioctl.pci import reset as _reset
from vfioctl.pci.address import PciAddress
from vfioctl.pci.rom import MACHINE_X64, RomInfo, machine_name, machine_number
from vfioctl.pci.vfnet import VfSettings
from vfioctl.report.checks import FAIL, INFO, PASS, SEVERITY, WARN, Finding
from vfioctl.usage.record import Use, from_text

SCHEMA = "vfioctl.assess/1"

READY, CAVEATS, BLOCKED = "ready", "caveats", "blocked"


AMD_VENDOR = 0x1002

_HEX4 = re.compile(r"[0-9a-f]{4}")


@dataclass(frozen=True)
class GroupMember:
    """One member of the device's IOMMU group (the device itself may be listed too)."""

    address: PciAddress
    #: vfioctl.iommu.groups ROLE_ENDPOINT, ROLE_BRIDGE or ROLE_COMPANION
    role: str
    driver: str | None = None
    #: why the host uses this member (vfioctl.usage.inuse.uses; text is accepted); () when unused
    in_use: tuple[Use, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_use", tuple(from_text(u) for u in self.in_use))


@dataclass(frozen=True)
class SriovRole:
    """``pf`` (with its VF counts) or ``vf`` (with its PF)."""

    role: str
    total_vfs: int | None = None
    num_vfs: int | None = None
    physfn: PciAddress | None = None
    physfn_driver: str | None = None
    #: a VF's network settings on its PF (vfioctl.pci.vfnet), its PF's interface and operstate;
    #: None: the PF has no netdev or reports no VF settings
    vf_settings: VfSettings | None = None
    pf_ifname: str | None = None
    pf_operstate: str | None = None


@dataclass(frozen=True)
class AssessFacts:
    """Everything :func:`assess` looks at, read by the caller."""

    address: PciAddress
    #: 4 hex digits each, as sysfs ``vendor``/``device`` without 0x
    vendor_id: str
    device_id: str
    #: 24-bit class code (sysfs ``class``)
    class_code: int
    #: ``checks`` finding ``iommu`` and ``irq-remap``: status (pass/warn/fail/info) and evidence
    iommu_status: str
    irq_remap_status: str
    iommu_evidence: str = ""
    irq_remap_evidence: str = ""
    class_name: str | None = None
    driver: str | None = None
    iommu_group: int | None = None
    #: every member of the group with its role (bridges are ignored)
    group_members: tuple[GroupMember, ...] = ()
    #: sysfs reset_method split, in the kernel's order; () when the file is empty
    #: (someone wrote "" to it); None when there is no reset_method file (5.15+:
    #: the kernel found no method).  Kernels before 5.15: ("unknown",) when a
    #: ``reset`` file exists (vfioctl.pci.device.PciDevice.reset_method).  A list is
    #: accepted and kept as a tuple.
    reset_methods: tuple[str, ...] | None = None
    #: vfioctl.pci.reset.hot_reset_reach for this device; None when the topology is unknown
    reset_reach: _reset.ResetReach | None = None
    #: vfioctl.usage.inuse.uses(dev): records (text is accepted and made one)
    in_use: tuple[Use, ...] = ()
    #: the firmware's boot VGA device; None when its ``boot_vga`` could not be read (a VGA
    #: function whose capture lacks it): not known, which the console finding says
    boot_vga: bool | None = False
    #: framebuffers on this device ("fb0 (efifb)")
    framebuffers: tuple[str, ...] = ()
    #: virtual consoles bound to a console driver that uses this device ("vtcon1: frame buffer device")
    vtconsoles: tuple[str, ...] = ()
    #: vfioctl.usage.holders.Holder.describe() of the processes holding the group open
    holders: tuple[str, ...] = ()
    #: the parsed ROM; None when the device has no ROM; a string saying why it could not be read
    #: ("not captured: ..." when a snapshot does not hold it)
    rom: RomInfo | str | None = None
    numa_node: int | None = None
    sriov: SriovRole | None = None
    #: the caller plans to hand the host console off this device
    take_console: bool = False
    #: EFI machine type of the guest firmware (OVMF: X64; AAVMF: AARCH64)
    firmware_arch: int | str = MACHINE_X64

    def __post_init__(self) -> None:
        # callers hand in lists (sysfs split, inuse.reasons); keep the frozen object hashable
        object.__setattr__(self, "address", PciAddress.parse(self.address))
        for name in ("group_members", "framebuffers", "vtconsoles", "holders"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "in_use", tuple(from_text(u) for u in self.in_use))
        if self.reset_methods is not None:
            object.__setattr__(self, "reset_methods", tuple(self.reset_methods))
        for name in ("vendor_id", "device_id"):
            value = str(getattr(self, name)).strip().lower().removeprefix("0x")
            if not _HEX4.fullmatch(value):
                raise InvalidInput(f"assess {self.address}: {name} {getattr(self, name)!r} is not 4 hex digits")
            object.__setattr__(self, name, value)
        for name in ("iommu_status", "irq_remap_status"):
            if getattr(self, name) not in SEVERITY:
                raise InvalidInput(f"assess {self.address}: {name} {getattr(self, name)!r} is not one of "
                                   f"{', '.join(SEVERITY)}")
        machine_number(self.firmware_arch)  # an unknown firmware architecture raises InvalidInput here

    @property
    def sysfs(self) -> str:
        return f"/sys/bus/pci/devices/{self.address}"

    @property
    def display(self) -> bool:
        """Base class 03 (VGA, XGA, 3D, other display controller): a GPU."""
        return (self.class_code >> 16) == 0x03

    @property
    def shows_picture(self) -> bool:
        """A GPU with display outputs: VGA (0300), XGA (0301) or another display controller (0380).
        A 3D controller (0302: compute GPUs such as the H100/H200) has none, so no guest firmware
        draws a boot screen through its ROM."""
        return (self.class_code >> 8) in (0x0300, 0x0301, 0x0380)


@dataclass(frozen=True)
class Assessment:
    address: PciAddress
    verdict: str
    findings: tuple[Finding, ...]
    #: "8086:10d3 Ethernet controller"
    label: str = ""

    def get(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "address": str(self.address), "verdict": self.verdict,
                "findings": [f.to_dict() for f in self.findings]}

    def render(self) -> str:
        """Text in the form of ``vfioctl check``: one line per finding, fixes below."""
        width = max([len(f.title) for f in self.findings] + [16]) + 2
        lines = [f"{self.address}  {self.label}".rstrip()]
        for f in self.findings:
            lines.append(f"  {f.status.upper():<5} {f.title:<{width}}{f.evidence}")
            if f.fix and f.status in (WARN, FAIL):
                fix = f.fix.splitlines()
                lines.append(f"        fix: {fix[0]}")
                lines.extend(f"             {more}" for more in fix[1:])
        warns = sum(f.status == WARN for f in self.findings)
        fails = sum(f.status == FAIL for f in self.findings)
        lines.append(f"  verdict: {self.verdict} ({fails} fail, {warns} warn)")
        return "\n".join(lines)


def verdict(findings: tuple[Finding, ...] | list[Finding]) -> str:
    worst = max((SEVERITY[f.status] for f in findings), default=SEVERITY[PASS])
    if worst >= SEVERITY[FAIL]:
        return BLOCKED
    if worst >= SEVERITY[WARN]:
        return CAVEATS
    return READY


def assess(facts: AssessFacts) -> Assessment:
    """One verdict for one device; see the module docstring for the rule."""
    findings: list[Finding] = []
    findings.extend(_host(facts))
    findings.append(_group(facts))
    findings.append(_in_use(facts))
    findings.append(_console(facts))
    if facts.iommu_group is not None:
        findings.append(_holders(facts))
    findings.append(_reset_finding(facts))
    findings.append(_rom(facts))
    if facts.sriov is not None:
        findings.append(_sriov(facts))
        if facts.sriov.vf_settings is not None:
            findings.append(_vf_net(facts))
    findings.append(_numa(facts))
    label = f"{facts.vendor_id}:{facts.device_id}"
    if facts.class_name:
        label += f" {facts.class_name}"
    if facts.driver:
        label += f"  driver {facts.driver}"
    return Assessment(facts.address, verdict(findings), tuple(findings), label)


# ------------------------------------------------------------------ findings

def _host(f: AssessFacts) -> list[Finding]:
    fix = "run `vfioctl check` for the commands that fix it"
    out = [
        Finding("iommu", "IOMMU", f.iommu_status, f.iommu_evidence or f"vfioctl check: iommu {f.iommu_status}",
                fix if f.iommu_status in (WARN, FAIL) else None),
        Finding("irq-remap", "Interrupt remapping", f.irq_remap_status,
                f.irq_remap_evidence or f"vfioctl check: irq-remap {f.irq_remap_status}",
                fix if f.irq_remap_status in (WARN, FAIL) else None),
    ]
    return out


def _member(m: GroupMember) -> str:
    role = m.role
    return f"{m.address} ({role}, driver {m.driver or 'none'})"


def _group(f: AssessFacts) -> Finding:
    title = "IOMMU group"
    if f.iommu_group is None:
        return Finding("iommu-group", title, FAIL,
                       f"{f.sysfs}/iommu_group absent: no IOMMU group, so VFIO cannot take it",
                       "enable the IOMMU (see `vfioctl check`); a device the IOMMU does not cover cannot be assigned")
    others = [m for m in f.group_members if m.address != f.address and m.role != ROLE_BRIDGE]
    bridges = sum(1 for m in f.group_members if m.role == ROLE_BRIDGE)
    plural = "s" if bridges != 1 else ""
    ignored = f" ({bridges} bridge{plural} ignored)" if bridges else ""
    if not others:
        return Finding("iommu-group", title, PASS, f"group {f.iommu_group}: only this device{ignored}")
    ignored = f"; {bridges} bridge{plural} ignored" if bridges else ""
    listed = ", ".join(_member(m) for m in others)
    hide = f"vfioctl hide {f.address} --group"
    used = [m for m in others if m.in_use]
    if used:
        why = "; ".join(f"{m.address}: {m.in_use[0].text}" for m in used)
        return Finding("iommu-group", title, FAIL,
                       f"group {f.iommu_group} also holds {listed}{ignored}; the host uses {why}: "
                       "the whole group goes to one VM or none of it does",
                       "put the card in a slot with an IOMMU group of its own (`vfioctl groups` lists them), "
                       f"or stop using those devices on the host, then: {hide}")
    blocking = [m for m in others if not driver_allows_assignment(m.driver)]
    # a companion is another function of the same card (the audio function of a GPU)
    comp = "; companions are functions of the same card" if any(m.role == ROLE_COMPANION for m in others) else ""
    if blocking:
        return Finding("iommu-group", title, WARN,
                       f"group {f.iommu_group} also holds {listed}{comp}{ignored}: they leave the host with it "
                       "and can only go to the same VM",
                       hide)
    return Finding("iommu-group", title, INFO,
                   f"group {f.iommu_group} also holds {listed}{comp}{ignored}: already free for VFIO; "
                   "they can only go to the same VM")


def _in_use(f: AssessFacts) -> Finding:
    title = "Host use"
    uses = [u for u in f.in_use if not u.console]
    known = [u.text for u in uses if u.known]
    unknown = [u.text for u in uses if not u.known]
    platform = [u for u in uses if u.platform]
    if platform:
        return Finding("in-use", title, FAIL, "part of the platform: " + "; ".join(known + unknown),
                       "the host cannot give this function away; --force does not take it (only "
                       "--force-platform would, and the host would most likely hang)", host_use=tuple(uses))
    if known:
        return Finding("in-use", title, FAIL, "the host uses it: " + "; ".join(known + unknown),
                       "stop using it on the host first (end the processes named, take the interface down, "
                       f"unmount, swapoff), or take it anyway with `vfioctl hide {f.address} --force`",
                       host_use=tuple(uses))
    if unknown:
        return Finding("in-use", title, WARN, "; ".join(unknown),
                       "read it on the live host as root (`sudo vfioctl assess`), or capture the host again "
                       "with this version (`sudo vfioctl snapshot FILE`); hide refuses until it is known "
                       "(or --force)", host_use=tuple(uses))
    return Finding("in-use", title, PASS, "no host use found (processes, mounts, swap, block stacks, "
                   "mount tags, network, platform)", host_use=())


def _console(f: AssessFacts) -> Finding:
    title = "Console"
    evidence = []
    if f.boot_vga:
        evidence.append(f"{f.sysfs}/boot_vga = 1")
    evidence.extend(f"framebuffer {fb} on it" for fb in f.framebuffers)
    if f.framebuffers or f.boot_vga:
        evidence.extend(f"{v} bound" for v in f.vtconsoles)
    # a framebuffer on the device, or a text console (vgacon) on the boot VGA device
    on_console = bool(f.framebuffers) or (f.boot_vga and bool(f.vtconsoles))
    text = "; ".join(evidence)
    if on_console:
        if f.take_console:
            return Finding("console", title, WARN,
                           f"{text}: --take-console is set: the host's console on this GPU is unbound "
                           "and its framebuffer released; the host has no local console here until the "
                           "device is given back",
                           "have a serial console or SSH ready before the hand-off")
        return Finding("console", title, FAIL,
                       f"{text}: the host console is on this GPU; taking it freezes the console "
                       "or the kernel's framebuffer driver keeps it busy",
                       "use a serial console or SSH, then hand the console off with --take-console "
                       f"(e.g. vfioctl hide {f.address} --group --take-console), or make another GPU the "
                       "boot VGA device in the firmware setup")
    if f.boot_vga:
        return Finding("console", title, WARN,
                       f"{text}: the boot VGA device (the firmware initialised it; no console on it now)",
                       "make sure nothing on the host draws on it, and give QEMU a clean ROM file "
                       "(see the option ROM finding)")
    if f.boot_vga is None:
        return Finding("console", title, WARN,
                       f"{f.sysfs}/boot_vga could not be read: whether the firmware made this VGA function the "
                       "boot VGA device is not known" + (f"; {text}" if text else "; no framebuffer on it"),
                       f"read it on the live host as root: cat {f.sysfs}/boot_vga")
    return Finding("console", title, PASS, "not the boot VGA device; no framebuffer on it")


def _holders(f: AssessFacts) -> Finding:
    title = "Holders"
    node = f"/dev/vfio/{f.iommu_group}"
    if f.holders:
        return Finding("holders", title, WARN,
                       f"already assigned: {node} is held by " + "; ".join(f.holders),
                       "shut that VM down before assigning the device elsewhere (one user per group)")
    return Finding("holders", title, PASS, f"no process holds {node}")


def _reset_finding(f: AssessFacts) -> Finding:
    """The kernel's first usable method, else what VFIO's bus hot reset would take.

    QEMU (hw/vfio/pci.c ``vfio_pci_reset``) asks the kernel for a function
    reset when the device has FLR or no PM reset, else tries a bus hot reset
    first and the PM reset last; the kernel tries reset_method in order.
    """
    title = "Reset"
    reach = f.reset_reach
    gpu = f.display
    if f.reset_methods is None:
        listed: tuple[str, ...] = ()
        src = (f"{f.sysfs}/reset_method absent: the kernel found no reset method "
               "(drivers/pci/pci.c pci_dev_reset_method_attr_is_visible)")
    elif not f.reset_methods:
        listed = ()
        src = f"{f.sysfs}/reset_method is empty: every method was switched off"
    else:
        listed = f.reset_methods
        src = f"{f.sysfs}/reset_method = {' '.join(listed)}"
    usable = _reset.effective_methods(listed, reach)
    stale = [m for m in listed if m in _reset.BUS_METHODS and m not in usable]
    if stale and reach is not None:
        why = (f"{len(reach.reached)} other function(s) share its bus" if reach.reached
               else "it is a bridge or on a root bus")
        src += (f" ('{stale[0]}' was probed at enumeration; drivers/pci/pci.c pci_parent_bus_reset "
                f"refuses it now: {why})")
    first = usable[0] if usable else None

    if first in _reset.STRONG_METHODS:
        return Finding("reset", title, PASS, f"{src}: {first} resets this function alone")
    if first in _reset.BUS_METHODS:
        if reach is None:
            return Finding("reset", title, WARN,
                           f"{src}: '{first}' works only while this function is alone on its bus "
                           "(drivers/pci/pci.c pci_parent_bus_reset); the bus topology was not read")
        lo, _ = reach.buses or (f.address.bus, f.address.bus)
        return Finding("reset", title, PASS,
                       f"{src}: '{first}' is a secondary bus reset through {reach.parent_bridge}; this "
                       f"function is alone on bus {lo:02x}, so it resets nothing else")
    if first == "pm":
        if reach is not None and reach.alone:
            return Finding("reset", title, PASS,
                           f"{src}: pm (D3hot -> D0), and a bus reset reaches only this device, "
                           "which QEMU tries before pm")
        if gpu:
            hot = _hot_reset(f, reach)
            text = (f"{src}: only pm (D3hot -> D0); GPUs often keep their state across it, "
                    "so the second VM start may find the card as the first guest left it")
            fix = _gpu_reset_fix(f)
            if hot is not None:
                text += f"; {hot[0]}"
                fix = f"{hot[1]}\n{fix}" if _vendor(f) == AMD_VENDOR else hot[1]
            return Finding("reset", title, WARN, text, fix)
        return Finding("reset", title, PASS,
                       f"{src}: pm (D3hot -> D0) resets this function alone; how thoroughly is up to the device")
    if _reset.UNKNOWN in listed:
        if reach is not None and reach.alone:
            return Finding("reset", title, PASS,
                           f"{f.sysfs}/reset present, no reset_method (kernel before 5.15): "
                           "it is alone on its bus, so whatever method it is resets it alone")
        return Finding("reset", title, WARN,
                       f"{f.sysfs}/reset present, no reset_method (kernel before 5.15): vfioctl cannot tell "
                       "a function reset from a bus reset listed before the other functions on its bus appeared",
                       "check `dmesg` after a VM stop for reset errors; a kernel of 5.15 or later shows the method")

    # no function reset the kernel would run: what is left is VFIO's bus hot reset
    bad = FAIL if gpu else WARN
    consequence = ("the card keeps the state the last guest left it in; the second VM start can hang it "
                   "(the 'AMD reset bug')" if gpu else
                   "the device is not reset between VM runs; a device that needs it fails at the second VM start")
    restore = (f"echo default > {f.sysfs}/reset_method (gives back the kernel's methods)"
               if f.reset_methods is not None and not f.reset_methods else None)
    if reach is None:
        return Finding("reset", title, bad, f"{src}; the bus topology was not read, so the reach of a bus "
                       f"reset is unknown: {consequence}", restore or (_gpu_reset_fix(f) if gpu else None))
    blockers = reach.vfio_hot_reset_blockers()
    if blockers:
        return Finding("reset", title, bad,
                       f"{src}; no bus hot reset either: {'; '.join(blockers)}: {consequence}",
                       restore or (_gpu_reset_fix(f) if gpu else "assign it only if it tolerates not being "
                                   "reset, or move it to a slot of its own (a root or downstream port)"))
    if reach.alone:
        # The kernel would have listed 'bus' for a lone non-bridge function unless a
        # quirk forbids it (PCI_DEV_FLAGS_NO_BUS_RESET, drivers/pci/quirks.c), which
        # also stops VFIO (drivers/pci/pci.c pci_bus_resettable); or someone emptied the list.
        return Finding("reset", title, WARN,
                       f"{src}; it is alone below {reach.parent_bridge}, so a VFIO bus hot reset would reach "
                       "only this device, if the kernel allows one (a PCI_DEV_FLAGS_NO_BUS_RESET quirk "
                       f"forbids both): without it, {consequence}",
                       restore or (_gpu_reset_fix(f) if gpu else None))
    hot = _hot_reset(f, reach)
    assert hot is not None
    fix = hot[1]
    if gpu and _vendor(f) == AMD_VENDOR:
        fix += "\n" + _gpu_reset_fix(f)
    return Finding("reset", title, WARN, f"{src}; {hot[0]}", fix)


def _hot_reset(f: AssessFacts, reach: _reset.ResetReach | None) -> tuple[str, str] | None:
    """(evidence, fix) for a VFIO bus hot reset that reaches other functions; None when there is none."""
    if reach is None or reach.alone or reach.vfio_hot_reset_blockers():
        return None
    needs = reach.vfio_hot_reset_needs()
    others = " ".join(str(r.address) for r in reach.reached)
    text = (f"VFIO can hot-reset the bus instead: {reach.describe()}; it does so only while every function "
            "it reaches is on vfio-pci in the same VM" + (": " + "; ".join(needs) if needs else ""))
    return text, f"vfioctl hide {f.address} {others} --group, and give all of them to the same VM"


def _vendor(f: AssessFacts) -> int | None:
    try:
        return int(f.vendor_id, 16)
    except ValueError:
        return None


def _gpu_reset_fix(f: AssessFacts) -> str:
    if _vendor(f) == AMD_VENDOR:
        return ("AMD GPUs (Polaris, Vega, Navi): load the vendor-reset module (github.com/gnif/vendor-reset), "
                f"then: echo device_specific > {f.sysfs}/reset_method")
    return ("give the GPU a slot of its own (its own root port) and assign all of its functions together, "
            "so VFIO can reset its bus; otherwise reboot the host between VM runs")


def _rom(f: AssessFacts) -> Finding:
    title = "Option ROM"
    gpu = f.shows_picture
    arch = machine_name(machine_number(f.firmware_arch))
    romfile = (f"give QEMU a ROM with an EFI {arch} image: -device vfio-pci,host={f.address},romfile=/path/rom.bin "
               "(libvirt: <rom file='/path/rom.bin'/>), e.g. the vendor's UEFI (GOP) firmware")
    shadow = ""
    if f.boot_vga:
        shadow = ("; as the boot VGA device its rom file may be the shadow copy the system firmware ran "
                  "(arch/x86/pci/fixup.c pci_fixup_video), not the card's own ROM")
    rom = f.rom
    if rom is None:
        if gpu:
            return Finding("option-rom", title, WARN,
                           f"no option ROM ({f.sysfs}/rom absent): an OVMF guest shows nothing on this GPU "
                           "until the guest's own driver loads (black screen at boot)", romfile)
        return Finding("option-rom", title, INFO, "no option ROM: nothing for the guest firmware to run "
                       "(the guest OS driver does not need one)")
    if isinstance(rom, str) and rom.startswith("not captured"):
        return Finding("option-rom", title, INFO, f"option ROM {rom}")
    if isinstance(rom, str):
        if gpu:
            return Finding("option-rom", title, WARN,
                           f"option ROM unreadable: {rom}{shadow}",
                           f"read it while no driver uses the card: echo 1 > {f.sysfs}/rom; "
                           f"cat {f.sysfs}/rom > rom.bin; echo 0 > {f.sysfs}/rom\n{romfile}")
        return Finding("option-rom", title, INFO, f"option ROM unreadable: {rom}")
    if not rom.is_rom:
        problem = rom.problems[0] if rom.problems else "no image"
        return Finding("option-rom", title, WARN if gpu else INFO,
                       f"option ROM ({rom.data_size} bytes) holds no valid image: {problem}{shadow}",
                       romfile if gpu else None)
    notes = [rom.summary()]
    warn = note = False
    fixes: list[str] = []
    if rom.problems:
        notes.append("problems: " + "; ".join(rom.problems))
        if gpu:
            warn = True
            fixes.append(romfile)
        else:
            note = True
    if rom.warnings:
        notes.append("warnings: " + "; ".join(rom.warnings))
        note = True
    mismatched = rom.mismatched(f.vendor_id, f.device_id)
    if mismatched:
        notes.append(f"PCIR names {', '.join(sorted({i.ids for i in mismatched}))} but the device is "
                     f"{f.vendor_id}:{f.device_id}: another card's ROM (cross-flashed, or the wrong file)")
        warn = True
        fixes.append("use the ROM made for this card (romfile=), or check the card's firmware")
    if not rom.has_efi(f.firmware_arch):
        have = ", ".join(rom.efi_machines()) or "none"
        if gpu:
            notes.append(f"no EFI {arch} image (EFI images: {have}): an OVMF guest gets a black screen "
                         "until its OS driver loads; a SeaBIOS guest uses the x86 image")
            warn = True
            fixes.append(romfile)
        else:
            notes.append(f"no EFI {arch} image (EFI images: {have}): OVMF cannot boot through it "
                         "(network boot); the guest OS driver is unaffected")
            note = True
    status = WARN if warn else INFO if note else PASS
    fix = "\n".join(dict.fromkeys(fixes)) if warn else None
    return Finding("option-rom", title, status, "; ".join(notes) + shadow, fix)


def _sriov(f: AssessFacts) -> Finding:
    title = "SR-IOV"
    s = f.sriov
    assert s is not None
    if s.role == "vf":
        pf = str(s.physfn) if s.physfn else "unknown PF"
        text = f"VF of PF {pf} (driver {s.physfn_driver or 'none'}): the PF stays with the host; " \
               "disabling SR-IOV or resetting the PF removes this VF from the VM"
        if is_vfio_driver(s.physfn_driver):
            text += "; the PF is on vfio-pci, so opening this VF needs the PF's VF token"
        return Finding("sriov", title, INFO, text)
    total = f" of {s.total_vfs}" if s.total_vfs is not None else ""
    if s.num_vfs:
        return Finding("sriov", title, WARN,
                       f"SR-IOV PF with {s.num_vfs}{total} VFs enabled: vfio-pci refuses a PF whose VFs exist "
                       "(drivers/vfio/pci/vfio_pci_core.c vfio_pci_core_register_device), so hiding the PF "
                       f"means removing its {s.num_vfs} VFs first, and whatever uses them",
                       "assign VFs instead (`vfioctl sriov`), or free the VFs and remove them: "
                       f"echo 0 > {f.sysfs}/sriov_numvfs")
    return Finding("sriov", title, INFO,
                   f"SR-IOV PF (0{total} VFs): VFs created while it is on vfio-pci need its VF token")


def _vf_net(f: AssessFacts) -> Finding:
    """A VF's network settings, which live on its PF: what a guest gets from them."""
    title = "VF network settings"
    s = f.sriov
    assert s is not None and s.vf_settings is not None
    v = s.vf_settings
    pf = s.pf_ifname or str(s.physfn)
    warns, fixes = [], []
    if v.mac in (None, "00:00:00:00:00:00"):
        warns.append(f"its MAC on {pf} is {'zero' if v.mac else 'not reported'}: the guest's VF driver makes up a "
                     "random one at each boot (DHCP reservations and switch port security break)")
        fixes.append(f"vfioctl sriov set {s.physfn} --vf {v.index} mac=derived (or mac=... in [[sriov.vf]])")
    if s.pf_operstate is not None and s.pf_operstate != "up":
        warns.append(f"its PF {pf} is {s.pf_operstate}: the VF has no link while the PF has none")
        fixes.append(f"ip link set {pf} up, and check the PF's cable or switch port")
    if v.spoofchk is False and v.trust is not True:
        warns.append("spoof checking is off on a VF that is not trusted: the guest can send with any source MAC")
        fixes.append(f"vfioctl sriov set {s.physfn} --vf {v.index} spoofchk=on, or trust=on if the guest must")
    vlan = f", vlan {v.vlan[0]}" if v.vlan and v.vlan[0] else ""
    text = f"VF {v.index} on {pf}: mac {v.mac or 'not reported'}{vlan}"
    if warns:
        return Finding("vf-net", title, WARN, text + "; " + "; ".join(warns), "\n".join(fixes))
    return Finding("vf-net", title, PASS, text)


def _numa(f: AssessFacts) -> Finding:
    title = "NUMA node"
    if f.numa_node is None or f.numa_node < 0:
        return Finding("numa", title, INFO, f"{f.sysfs}/numa_node = -1: one node, or the firmware does not say")
    return Finding("numa", title, INFO,
                   f"{f.sysfs}/numa_node = {f.numa_node}: keep the VM's vCPUs and memory on node {f.numa_node}")
