"""Plan a whole declarative config (vfioctl.ops.config) through the hide/SR-IOV planners,
over one state read in the caller's session (under the journal lock for a real run).

Selector entries (``match``) are resolved here, against that same state, by
:func:`vfioctl.ops.match.choose`: the journal's earlier choice for the entry first, so a
second ``apply`` keeps the devices it took; the choice is recorded in the journal
with the entry that made it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from vfioctl.base.errors import Refused
from vfioctl.ops.config import Config, DeviceEntry
from vfioctl.ops.match import choose
from vfioctl.ops.plan.console import take_console_plan, units_to_read
from vfioctl.ops.plan.hide import hide_plan
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.plan.restore import restore_plan
from vfioctl.ops.plan.sriov import new_vfs_plan, sriov_plan
from vfioctl.ops.plan.vfnet import DERIVED, vf_prune_plan, want_fields
from vfioctl.ops.state import HostState
from vfioctl.pci.address import PciAddress


def _new_vfs(state: HostState, config: Config) -> dict[PciAddress, int]:
    """PF -> the VF count an ``[[sriov]]`` entry gives it, where that creates VFs now."""
    out = {}
    for s in config.sriov:
        pf = state.get(s.pf)
        if pf is not None and pf.sriov is not None and s.numvfs and s.numvfs != pf.sriov.numvfs:
            out[s.pf] = s.numvfs
    return out


def concrete_entries(state: HostState, config: Config, *, boot: bool = False,
                     creating: dict[PciAddress, int] | None = None) -> tuple[list[DeviceEntry], list[str]]:
    """Every ``[[device]]`` with an address: address entries as they are, each selector as one
    entry per device it chooses (IDs filled in from the device).  Pure.  Selectors of VFs that
    this config's ``[[sriov]]`` creates are left to :func:`config_plan` (they do not exist yet)."""
    out: list[DeviceEntry] = []
    notes: list[str] = []
    taken: set[PciAddress] = {e.address for e in config.devices if e.address is not None}
    if creating is None:
        creating = _new_vfs(state, config)
    for e in config.devices:
        if e.match is None:
            out.append(e)
            continue
        if e.match.pf is not None and e.match.pf in creating:
            continue
        got = choose(state, e.match, count=e.count, entry=e.source, taken=taken, target_driver=e.driver,
                     boot=boot, take_bound=e.take_bound)
        notes += got.notes(e.source)
        if not got.chosen:
            notes.append(f"{e.source}: nothing matches {e.match.describe()} on this host")
        for a in got.chosen:
            d = state.devices[a]
            taken.add(a)
            out.append(dataclasses.replace(e, address=a, id=(d.vendor_id or "", d.device_id or "")))
    return out, notes


@dataclass(frozen=True)
class ConfigNeeds:
    """What :func:`config_plan` needs read into the state, the keyword arguments of
    :func:`vfioctl.ops.state.read_state`: every device when a selector must choose, else the
    entries' own; the console facts of the devices a hand-off may take; their units."""

    focus: list[PciAddress] | None
    consoles: list[PciAddress]
    display_consoles: bool
    units: list[str]
    #: PFs whose VF settings the config sets (their netlink VF list is read)
    vf_net: tuple[PciAddress, ...] = ()
    machine_id: bool = False

    def kwargs(self) -> dict:
        return {"consoles": self.consoles, "display_consoles": self.display_consoles, "units": self.units,
                "vf_net": list(self.vf_net), "machine_id": self.machine_id}


def config_needs(config: Config) -> ConfigNeeds:
    selectors = any(e.match is not None for e in config.devices)
    focus = None if selectors else [e.pf for e in config.sriov] + [e.address for e in config.devices
                                                                   if e.address is not None]
    takes = [e for e in config.devices if e.take_console]
    units = [u for e in takes for u in units_to_read(list(e.stop_units) or None)]
    return ConfigNeeds(focus, [e.address for e in takes if e.address is not None],
                       any(e.match is not None for e in takes), units,
                       tuple(e.pf for e in config.sriov if e.vfs),
                       any(w.mac == DERIVED for e in config.sriov for w in e.vfs))


def config_plan(state: HostState, config: Config, *, prune: bool = False, boot: bool = False,
                force_platform: bool = False) -> Plan:
    """SR-IOV entries first (VFs must exist before anything can use them), then devices.
    Pure: *state* is read with :func:`config_needs`.  An entry that names a function of the
    platform itself (host bridge, ISA/LPC bridge, IOMMU, the root filesystem's or console's
    device) is refused, as `hide` refuses it, unless *force_platform* (`apply --force-platform`);
    the plan's notes then say so.

    Every address entry's ``id`` is compared with the hardware at its address before
    anything is planned: a mismatch means the hardware changed, and the whole apply is
    refused.  A selector that cannot find its ``count`` refuses the whole config too.
    """
    mismatches = config.mismatches(state)
    if mismatches:
        raise Refused(
            f"{config.path}: hardware does not match the config, nothing applied: " + "; ".join(mismatches)
        )
    plan = Plan("apply")
    # VFs a selector takes as they are created must not meet a host driver first
    vf_selected = {e.match.pf for e in config.devices if e.match is not None and e.match.pf is not None}
    creating = _new_vfs(state, config)
    for sentry in config.sriov:
        auto = sentry.autoprobe
        if auto is None and sentry.pf in vf_selected and sentry.pf in creating:
            auto = False
        plan.extend(sriov_plan(state, sentry.pf, sentry.numvfs, hide=sentry.hide, autoprobe=auto, origin="apply",
                               settings=list(sentry.vfs)))
    entries, notes = concrete_entries(state, config, boot=boot, creating=creating)
    plan.notes += notes
    for e in config.devices:
        if e.match is not None and e.match.pf is not None and e.match.pf in creating:
            n = creating[e.match.pf]
            plan.extend(new_vfs_plan(state, e.match.pf, n, list(e.match.vfs) if e.match.vfs is not None else None,
                                     driver=e.driver, entry=e.source))
    taken: set[str] = set()
    for e in entries:
        assert e.address is not None
        if str(e.address) in taken:
            continue
        sub = hide_plan(state, [e.address], group=e.group, driver=e.driver, origin="apply",
                        reset_method=list(e.reset_method) if e.reset_method else None,
                        entry=e.source, allow_boot_vga=e.take_console, force_platform=force_platform)
        if e.take_console and sub.steps:
            sub = take_console_plan(state, e.address, list(e.stop_units) or None, sub)
        taken |= {c.address for c in sub.changes} | {str(e.address)}
        plan.extend(sub)
    if prune:
        named = {str(e.address) for e in entries} | taken
        pfs = {str(e.pf) for e in config.sriov}
        stale = []
        for a in sorted(state.journal_devices):
            addr = PciAddress.parse(a)
            dev = state.get(addr)
            if a in named or (dev is not None and dev.physfn is not None and str(dev.physfn) in pfs):
                continue
            if dev is not None:
                stale.append(addr)
        for sentry in config.sriov:
            keep = {k for w in sentry.vfs for k in want_fields(w)}
            plan.extend(vf_prune_plan(state, sentry.pf, keep))
        stale_pfs = [PciAddress.parse(p) for p in sorted(set(state.journal_sriov) | set(state.journal_vfnet))
                     if p not in pfs]
        if stale or stale_pfs:
            plan.extend(restore_plan(state, stale + stale_pfs))
    return plan
