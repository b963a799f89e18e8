"""The change engine's public API: one plan/journal/verify path for every command.

``hide``, ``restore``, ``sriov set``, ``apply``, QMP ``attach``/``detach``, the
libvirt hook and the Ansible modules all come through a :class:`Session`:

    with engine.Session(host) as s:          # the journal lock, held to the end
        plan = s.plan_hide(["03:00.0"])       # host state read once, planned purely
        result = s.execute(plan)              # each step verified, rolled back on failure

A dry run is a session without the lock (``Session(host, dry_run=True)``): it
reads the journal as it is and can only plan.  The module-level helpers
(:func:`hide`, :func:`plan_hide`, ...) wrap one session each.
"""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput, NotFound, VfioctlError
from vfioctl.base.names import is_vfio_driver
from vfioctl.host.core import Host
from vfioctl.ops.config import Config
from vfioctl.ops.configplan import config_needs, config_plan
from vfioctl.ops.executor import Result
from vfioctl.ops.executor import execute as _execute
from vfioctl.ops.journal import Journal, read_journal
from vfioctl.ops.match import Match, choose
from vfioctl.ops.plan.console import take_console as console_hand_off
from vfioctl.ops.plan.console import units_to_read
from vfioctl.ops.plan.hide import hide_plan
from vfioctl.ops.plan.model import DEFAULT_DRIVER, Plan
from vfioctl.ops.plan.reset import reset_plan
from vfioctl.ops.plan.restore import restore_plan
from vfioctl.ops.plan.sriov import sriov_plan
from vfioctl.ops.plan.vfnet import DERIVED, VfWant, vf_net_plan
from vfioctl.ops.selector import classify, resolve
from vfioctl.ops.state import HostState, read_state
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice
from vfioctl.pci.device import devices as all_devices
from vfioctl.pci.reset import BUS_METHODS, reset_reaches
from vfioctl.usage.holders import group_holders

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Sequence, Union

    #: what names a device on the command line or in an API call: an address (``03:00.0``), an
    #: interface (``eth0``), ``group:N``, a selector (``id:8086:10d3``, ``class:nvme``,
    #: ``pf:ADDR/vfs:0-3``), or a PciAddress or PciDevice already in hand
    DeviceSpec = Union[str, PciAddress, PciDevice]

__all__ = [
    "Session", "Plan", "Result", "DEFAULT_DRIVER", "hide", "plan_hide", "restore", "plan_restore", "sriov_set",
    "plan_sriov", "apply", "plan_apply", "status", "find_device", "resolve_targets",
]


def resolve_targets(host: Host, specs: Sequence[DeviceSpec]) -> list[PciDevice]:
    """The devices DEV arguments name (bridges of a group:N left out)."""
    if specs and all(isinstance(s, PciDevice) for s in specs):
        return [s for s in specs if isinstance(s, PciDevice)]
    return resolve(host, [str(s) for s in specs], group_bridges=False)


class Session:
    """One command's view of the host: the journal (locked unless *dry_run*) and the state
    read from it.  Plans made in a session are executed in the same session.

    A session resolves the request (which devices, which selectors), reads everything the
    planner needs into one :class:`~vfioctl.ops.state.HostState` (under the lock), and
    hands that to a pure planner (:mod:`vfioctl.ops.plan`); nothing reads the host while a
    plan is made."""

    def __init__(self, host: Host, *, dry_run: bool = False, lock_timeout: float | None = None) -> None:
        self.host = host
        self.dry_run = dry_run
        self.journal: Journal = read_journal(host) if dry_run else Journal(host, lock_timeout)

    def __enter__(self) -> "Session":
        if not self.dry_run:
            self.journal.lock()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.dry_run:
            self.journal.unlock()

    # ------------------------------------------------------------- reading
    def state(self, focus: list[PciAddress] | None, *, in_use: bool = True, consoles: Sequence[PciAddress] = (),
              display_consoles: bool = False, units: Sequence[str] = (),
              reset_reach: Sequence[PciAddress] = (), vf_net: Sequence[PciAddress] = (),
              machine_id: bool = False) -> HostState:
        return read_state(self.host, self.journal, focus, in_use=in_use, holders=True, consoles=consoles,
                          display_consoles=display_consoles, units=units, reset_reach=reset_reach,
                          vf_net=vf_net, machine_id=machine_id)

    def devices(self, specs: Sequence[DeviceSpec]) -> list[PciAddress]:
        return [d.address for d in resolve_targets(self.host, specs)]

    # ------------------------------------------------------------- planning
    def plan_hide(self, specs: Sequence[DeviceSpec], *, group: bool = False, force: bool = False,
                  driver: str = DEFAULT_DRIVER, origin: str = "hide", reset_method: list[str] | None = None,
                  take_console: bool = False, stop_units: list[str] | None = None,
                  count: int | None = None, selectors: Sequence[tuple[str, Match]] | None = None,
                  force_platform: bool = False) -> Plan:
        """Plan hiding the devices *specs* name; CLI selector specs (``id:``, ``class:``, ``pf:``)
        and *selectors* (entry label, :class:`vfioctl.ops.match.Match`) choose with *count*, the
        journal's earlier choice for the same label first.  With *take_console*, the hand-off of
        the console on the one display device among them (*stop_units*: the units to stop)."""
        sels: list[tuple[str, Match]] = []
        plain: list[DeviceSpec] = []
        for spec in specs:
            kind, value = ("device", None) if isinstance(spec, PciDevice) else classify(str(spec))
            if kind == "match":
                sels.append((f"cli: {spec}", value))  # type: ignore[arg-type]  # classify's match value
            else:
                plain.append(spec)
        sels += list(selectors or [])
        if count is not None and not sels:
            raise InvalidInput("--count goes with a selector (id:VVVV:DDDD, class:NAME, pf:ADDR/vfs:RANGE)")
        units = units_to_read(stop_units) if take_console else []
        addrs = [d.address for d in resolve_targets(self.host, plain)] if plain or not sels else []
        extras: dict = {"consoles": list(addrs), "display_consoles": bool(sels), "units": units} if take_console else {}
        st = self.state(None if sels else addrs, **extras)
        entries: dict[PciAddress, str] = {}
        notes: list[str] = []
        for label, m in sels:
            got = choose(st, m, count=count, entry=label, taken=set(addrs), target_driver=driver)
            notes += got.notes(label)
            for a in got.chosen:
                entries[a] = label
                addrs.append(a)
        if not addrs:
            cli = [label[len("cli: "):] for label, _ in sels if label.startswith("cli: ")]
            if cli:
                hint = ("; a VF exists only once its PF has VFs (`vfioctl sriov set PF N` creates them)"
                        if any(c.startswith("pf:") for c in cli) else "; `vfioctl list` shows what is there")
                raise NotFound(f"nothing on this host matches {', '.join(cli)}{hint}")
            if sels:
                plan = Plan("hide")
                plan.notes += notes or [f"nothing matches {', '.join(label for label, _ in sels)}"]
                return plan
            raise InvalidInput("name at least one device to hide")
        if reset_method and BUS_METHODS.intersection(reset_method):
            self._read_reach(st, addrs)  # a bus method must still be one the kernel accepts
        plan = hide_plan(st, addrs, group=group, force=force, driver=driver, origin=origin,
                         reset_method=reset_method, allow_boot_vga=take_console, entries=entries,
                         force_platform=force_platform)
        plan.notes += notes
        if take_console:
            plan = console_hand_off(st, addrs, plan, stop_units=stop_units)
        return plan

    def plan_restore(self, specs: Sequence[DeviceSpec] | None = None, *, all: bool = False,
                     force: bool = False) -> Plan:
        if not specs and not all:
            raise InvalidInput("name the devices to restore, or pass --all")
        # giving back needs no host-use evidence, except where a VF count goes back (its VFs')
        evidence = bool(self.journal.sriov)
        # an original reset-method list with a bus method: is it still one the kernel accepts?
        reach = [PciAddress.parse(a) for a, r in self.journal.devices.items()
                 if r.original_reset_method and BUS_METHODS.intersection(r.original_reset_method)]
        if all:
            return restore_plan(self.state([], in_use=evidence, reset_reach=reach), None, force=force)
        addrs = self.devices(list(specs or []))
        return restore_plan(self.state(addrs, in_use=evidence, reset_reach=reach), addrs, force=force)

    def plan_sriov(self, pf_spec: DeviceSpec, numvfs: int, *, hide: bool = False, autoprobe: bool | None = None,
                   force: bool = False, driver: str = DEFAULT_DRIVER, settings: Sequence[VfWant] = ()) -> Plan:
        pfs = self.devices([pf_spec])
        if len(pfs) != 1:
            raise InvalidInput(f"{str(pf_spec)!r} names {len(pfs)} devices; give the PF's PCI address")
        st = self.state(pfs, vf_net=pfs if settings else (), machine_id=any(w.mac == DERIVED for w in settings))
        return sriov_plan(st, pfs[0], numvfs, hide=hide, autoprobe=autoprobe, force=force,
                          driver=driver, settings=list(settings))

    def plan_vf_settings(self, pf_spec: DeviceSpec, wants: Sequence[VfWant]) -> Plan:
        """Plan VF network settings (MAC, VLAN, ...) on the PF *pf_spec* names."""
        pfs = self.devices([pf_spec])
        if len(pfs) != 1:
            raise InvalidInput(f"{str(pf_spec)!r} names {len(pfs)} devices; give the PF's PCI address")
        st = self.state(pfs, in_use=False, vf_net=pfs, machine_id=any(w.mac == DERIVED for w in wants))
        return vf_net_plan(st, pfs[0], list(wants))

    def plan_reset(self, specs: Sequence[DeviceSpec]) -> Plan:
        addrs = self.devices(specs)
        if not addrs:
            raise InvalidInput("name at least one device to reset")
        return reset_plan(self.state(addrs, reset_reach=addrs), addrs)

    def plan_apply(self, config: Config, *, prune: bool = False, boot: bool = False,
                   force_platform: bool = False) -> Plan:
        """The plan `apply` carries out; *force_platform* lets it take functions of the platform
        itself (see :func:`vfioctl.ops.plan.hide.hide_plan`)."""
        needs = config_needs(config)
        st = self.state(needs.focus, **needs.kwargs())
        bus = [e for e in config.devices if e.reset_method and BUS_METHODS.intersection(e.reset_method)]
        if bus:
            self._read_reach(st, [a for e in bus for a in (
                [e.address] if e.address is not None else
                [d.address for d in st.devices.values() if e.match is not None and e.match.matches(st, d)])])
        return config_plan(st, config, prune=prune, boot=boot, force_platform=force_platform)

    def _read_reach(self, st: HostState, addrs: Sequence[PciAddress]) -> None:
        """Add to *st* what a bus reset of each of *addrs* reaches (what a bus reset method
        needs to be judged), for those not read yet."""
        missing = [a for a in dict.fromkeys(addrs) if a in st.devices and a not in st.reset_reach]
        if missing:
            st.reset_reach.update(reset_reaches(self.host, missing))

    # ------------------------------------------------------------- doing
    def execute(self, plan: Plan, *, qmp: object | None = None) -> Result:
        """Carry *plan* out (:func:`vfioctl.ops.executor.execute`); *qmp* is the QEMU monitor
        the QMP steps of an attach or detach talk to."""
        if self.dry_run:
            raise VfioctlError("internal error: a dry-run session cannot execute a plan")
        return _execute(self.host, plan, self.journal, qmp=qmp)


# ---------------------------------------------------------------- one-session helpers
def plan_hide(host: Host, specs: Sequence[DeviceSpec], *, group: bool = False, force: bool = False,
              driver: str = DEFAULT_DRIVER, origin: str = "hide", reset_method: list[str] | None = None,
              take_console: bool = False, stop_units: list[str] | None = None, count: int | None = None,
              selectors: Sequence[tuple[str, Match]] | None = None, force_platform: bool = False) -> Plan:
    """The plan `hide` would carry out (reads only; no lock)."""
    with Session(host, dry_run=True) as s:
        return s.plan_hide(specs, group=group, force=force, driver=driver, origin=origin, reset_method=reset_method,
                           take_console=take_console, stop_units=stop_units, count=count, selectors=selectors,
                           force_platform=force_platform)


def hide(host: Host, specs: Sequence[DeviceSpec], *, group: bool = False, force: bool = False,
         driver: str = DEFAULT_DRIVER, origin: str = "hide", reset_method: list[str] | None = None,
         take_console: bool = False, stop_units: list[str] | None = None, count: int | None = None,
         selectors: Sequence[tuple[str, Match]] | None = None, force_platform: bool = False) -> Result:
    """Bind the devices *specs* name to vfio-pci (or *driver*), verified, journaled."""
    with Session(host) as s:
        return s.execute(s.plan_hide(specs, group=group, force=force, driver=driver, origin=origin,
                                     reset_method=reset_method, take_console=take_console, stop_units=stop_units,
                                     count=count, selectors=selectors, force_platform=force_platform))


def plan_restore(host: Host, specs: Sequence[DeviceSpec] | None = None, *, all: bool = False,
                 force: bool = False) -> Plan:
    with Session(host, dry_run=True) as s:
        return s.plan_restore(specs, all=all, force=force)


def restore(host: Host, specs: Sequence[DeviceSpec] | None = None, *, all: bool = False,
            force: bool = False) -> Result:
    """Give devices (or SR-IOV PFs) back exactly as the journal recorded them."""
    with Session(host) as s:
        return s.execute(s.plan_restore(specs, all=all, force=force))


def plan_sriov(host: Host, pf_spec: DeviceSpec, numvfs: int, *, hide: bool = False, autoprobe: bool | None = None,
               force: bool = False, driver: str = DEFAULT_DRIVER) -> Plan:
    with Session(host, dry_run=True) as s:
        return s.plan_sriov(pf_spec, numvfs, hide=hide, autoprobe=autoprobe, force=force, driver=driver)


def sriov_set(host: Host, pf_spec: DeviceSpec, numvfs: int, *, hide: bool = False, autoprobe: bool | None = None,
              force: bool = False, driver: str = DEFAULT_DRIVER) -> Result:
    """Set a PF's VF count (through 0); with *hide*, bind the VFs to *driver*."""
    with Session(host) as s:
        return s.execute(s.plan_sriov(pf_spec, numvfs, hide=hide, autoprobe=autoprobe, force=force, driver=driver))


def plan_apply(host: Host, config: Config, *, prune: bool = False, boot: bool = False,
               force_platform: bool = False) -> Plan:
    with Session(host, dry_run=True) as s:
        return s.plan_apply(config, prune=prune, boot=boot, force_platform=force_platform)


def apply(host: Host, config: Config, *, prune: bool = False, boot: bool = False,
          force_platform: bool = False) -> Result:
    """Converge the host to a declarative config (vfioctl.ops.config), under one lock."""
    with Session(host) as s:
        return s.execute(s.plan_apply(config, prune=prune, boot=boot, force_platform=force_platform))


def status(host: Host) -> dict:
    """What vfioctl has hidden, who holds it, and what is inconsistent (schema vfioctl.status/1)."""
    journal = read_journal(host)
    holders = group_holders(host)
    by_group: dict[int, list] = {}
    for h in holders:
        by_group.setdefault(h.group, []).append(h.to_dict())
    entries = []
    problems = []
    for a, rec in sorted(journal.devices.items()):
        dev = PciDevice(host, PciAddress.parse(a))
        present = dev.exists()
        cur = dev.driver if present else None
        grp = dev.iommu_group if present else None
        ok = present and cur == rec.target_driver and rec.state == "hidden"
        entries.append({
            "address": a, "id": rec.vendor_device, "driver": cur, "target_driver": rec.target_driver,
            "original_driver": rec.original_driver, "origin": rec.origin, "state": rec.state,
            "iommu_group": grp, "held_by": by_group.get(grp, []) if grp is not None else [],
            "consistent": ok, "entry": rec.entry,
        })
        if not present:
            problems.append(f"{a}: in the journal but gone from the bus")
        elif rec.state != "hidden":
            problems.append(f"{a}: a change was interrupted (journal state {rec.state}); "
                            f"`vfioctl restore {a}` or `vfioctl restore --all` recovers")
        elif cur != rec.target_driver:
            problems.append(f"{a}: journal says hidden on {rec.target_driver}, but the kernel shows driver {cur or 'none'}")
    orphans = []
    for dev in all_devices(host):
        drv = dev.driver
        a = str(dev.address)
        if is_vfio_driver(drv) and a not in journal.devices:
            g = dev.iommu_group
            orphans.append({"address": a, "driver": drv, "iommu_group": g,
                            "held_by": by_group.get(g, []) if g is not None else []})
            problems.append(f"{a}: on {drv} but not hidden by vfioctl (no journal entry)")
    sriov = []
    for p, srec in sorted(journal.sriov.items()):
        pf = PciDevice(host, PciAddress.parse(p))
        sriov.append({"pf": p, "numvfs": pf.sriov_numvfs if pf.exists() else None,
                      "original_numvfs": srec.original_numvfs, "original_autoprobe": srec.original_autoprobe,
                      "state": srec.state})
    handoffs = [{"address": a, "units_stopped": h.units_stopped, "vtcons_unbound": h.vtcons_unbound,
                 "platform_fbs": h.platform_fbs, "state": h.state} for a, h in sorted(journal.handoff.items())]
    return {"schema": "vfioctl.status/1", "devices": entries, "unjournaled": orphans, "sriov": sriov,
            "handoff": handoffs, "problems": problems}


def find_device(host: Host, spec: str) -> PciDevice:
    devs = resolve_targets(host, [spec])
    if len(devs) != 1:
        raise NotFound(f"{spec!r} names {len(devs)} devices; give one PCI address")
    return devs[0]
