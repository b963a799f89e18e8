"""Why is my device in that IOMMU group, and what can I do about it?

:func:`explain` replays the kernel's grouping (:mod:`vfioctl.iommu.replay`) and says,
for one group, each member's path to the root complex with each port's ACS state,
where isolation is lost and of what kind, the slots that would isolate a card, and
the advice that follows (including why ``pcie_acs_override`` is not a fix).
"""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput, NotFound
from vfioctl.base.record import frozen
from vfioctl.iommu.predict import _addrs
from vfioctl.iommu.replay import (
    ACS_DISABLED,
    ACS_QUIRK,
    BRIDGE_ALIASING,
    DMA_ALIAS_QUIRK,
    MULTIFUNCTION,
    PORT_WITHOUT_ACS,
    UNDETERMINED,
    Join,
    _Kernel,
    _kind_of,
    _kind_of_member,
    _Unknown,
)
from vfioctl.pci import config as pcicfg
from vfioctl.pci.address import PciAddress
from vfioctl.pci.config import (
    PCI_EXP_TYPE_DOWNSTREAM,
    PCI_EXP_TYPE_ROOT_PORT,
)
from vfioctl.pci.topology import Topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable, Iterator


ACS_OVERRIDE_NOTE = (
    "pcie_acs_override is not a fix: it exists only in out-of-tree patched kernels (not upstream, "
    "not Debian, Ubuntu, Fedora or RHEL kernels), and where it works it makes the kernel claim an "
    "isolation the hardware does not give (devices in the split groups can still reach each other)"
)


# ============================================================== explain
@frozen
class Hop:
    """One function on a member's way to the root complex, with its ACS state."""

    address: PciAddress
    #: "endpoint", "root port", "PCIe-to-PCI bridge", "PCI bridge", ...
    kind: str
    #: "enabled", "disabled", "absent", "quirk", "not required", "n/a", "unknown"
    acs: str
    capable: tuple[str, ...] | None
    enabled: tuple[str, ...] | None
    missing: tuple[str, ...]
    #: pci_acs_enabled(hop, SV|RR|CR|UF): True, False, or None when unknown
    isolates: bool | None
    note: str

    def to_dict(self) -> dict:
        return {"address": str(self.address), "kind": self.kind, "acs": self.acs,
                "capable": list(self.capable) if self.capable is not None else None,
                "enabled": list(self.enabled) if self.enabled is not None else None,
                "missing": list(self.missing), "isolates": self.isolates, "note": self.note}


@frozen
class MemberPath:
    member: PciAddress
    hops: tuple[Hop, ...]
    root: str
    #: the first bridge/port (or the member itself, for multifunction) where isolation is lost
    lost_at: PciAddress | None
    cause: str | None

    def to_dict(self) -> dict:
        return {"member": str(self.member), "root": self.root, "hops": [h.to_dict() for h in self.hops],
                "lost_at": str(self.lost_at) if self.lost_at else None, "cause": self.cause}


@frozen
class Cause:
    kind: str
    at: PciAddress | None
    members: tuple[PciAddress, ...]
    detail: str
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"kind": self.kind, "at": str(self.at) if self.at else None,
                "members": [str(m) for m in self.members], "detail": self.detail, "missing": list(self.missing)}


@frozen
class IsolatedPort:
    address: PciAddress
    kind: str
    slot: str | None
    occupied_by: tuple[PciAddress, ...]

    def describe(self) -> str:
        slot = f', slot "{self.slot}"' if self.slot else ""
        occ = f", holds {_addrs(self.occupied_by)}" if self.occupied_by else ", empty"
        return f"{self.address} ({self.kind}{slot}{occ})"

    def to_dict(self) -> dict:
        return {"address": str(self.address), "kind": self.kind, "slot": self.slot,
                "occupied_by": [str(a) for a in self.occupied_by]}


@frozen
class GroupWhy:
    """Why a group has the members it has, and what the user can do."""

    group: int | None
    members: tuple[PciAddress, ...]
    isolated: bool
    causes: tuple[Cause, ...]
    paths: tuple[MemberPath, ...]
    isolated_ports: tuple[IsolatedPort, ...]
    #: the non-bridge members that would have to go with the device
    must_go_with: tuple[PciAddress, ...]
    advice: tuple[str, ...]
    warnings: tuple[str, ...]
    #: "matches the kernel", "differs from the kernel: ...", or "cannot predict: ..."
    prediction: str
    device: PciAddress | None = None

    @property
    def cause(self) -> str:
        if self.isolated:
            return "isolated"
        return self.causes[0].kind if self.causes else UNDETERMINED

    def to_dict(self) -> dict:
        return {
            "group": self.group, "device": str(self.device) if self.device else None,
            "members": [str(m) for m in self.members], "isolated": self.isolated, "cause": self.cause,
            "causes": [c.to_dict() for c in self.causes], "paths": [p.to_dict() for p in self.paths],
            "isolated_ports": [p.to_dict() for p in self.isolated_ports],
            "must_go_with": [str(m) for m in self.must_go_with],
            "advice": list(self.advice), "warnings": list(self.warnings), "prediction": self.prediction,
        }


def explain(topology: Topology, group: int | PciAddress) -> GroupWhy:
    """Explain a kernel group (by number) or the group of one device (by address; the
    predicted group when the kernel has none, e.g. with the IOMMU off)."""
    return explain_many(topology, [group])[0]


def explain_many(topology: Topology, groups: Iterable[int | PciAddress]) -> list[GroupWhy]:
    """:func:`explain` for several groups, replaying the kernel once."""
    k = _Kernel(topology)
    on = topology.iommu_enabled
    undecided = k.run(lambda a: (not on) or topology.functions[a].iommu_group is not None)
    return [_explain(k, undecided, topology, g) for g in groups]


def _explain(k: _Kernel, undecided: list[tuple[PciAddress, str]], topology: Topology,
             group: int | PciAddress) -> GroupWhy:
    device: PciAddress | None = None
    if isinstance(group, PciAddress):
        device = group
        f = topology.get(group)
        if f.iommu_group is not None:
            number: int | None = f.iommu_group
            members = tuple(topology.kernel_groups()[f.iommu_group])
        elif group in k.group:
            number = None
            members = tuple(sorted(a for a, g in k.group.items() if g == k.group[group]))
        else:
            hint = topology.root_advice
            raise NotFound(f"{group} has no IOMMU group (the IOMMU is off or does not cover it) and its group "
                           "cannot be predicted from the config space read" + (f"; {hint}" if hint else ""))
    else:
        if not isinstance(group, int) or isinstance(group, bool) or group < 0:
            raise InvalidInput(f"invalid IOMMU group {group!r}: expected a number or a PCI address")
        kg = topology.kernel_groups()
        if group not in kg:
            raise NotFound(f"no IOMMU group {group} on this host (/sys/kernel/iommu_groups/{group} does not exist); "
                           "`vfioctl groups` lists them")
        number, members = group, tuple(kg[group])

    bridges = {m for m in members if topology.functions[m].is_bridge}
    focus = device or next((m for m in members if m not in bridges), members[0])
    paths = tuple(_member_path(k, topology, m) for m in members)
    causes = _causes(k, members, focus)
    isolated = len(members) == 1
    if not isolated and not causes:
        causes = (_structural_cause(topology, members),)

    # the prediction for this group, against the kernel's (a group whose members were all
    # placed can be judged even when other functions could not be)
    keys = {k.group.get(m) for m in members}
    mine = [w for a, w in undecided if a in members]
    if number is None:
        prediction = "predicted (the kernel has no group for it)"
    elif len(keys) == 1 and None not in keys and {a for a, g in k.group.items() if g in keys} == set(members):
        prediction = "matches the kernel"
    elif mine:
        prediction = f"cannot predict: {mine[0]}"
    else:
        prediction = "differs from the kernel: a quirk this replay does not know (ACS or DMA alias) on this platform"

    isolated_ports = tuple(p for p in _isolated_ports(k, topology) if p.address not in members)
    must = tuple(m for m in members if m not in bridges and m != focus)
    advice, warnings = _advice(topology, members, focus, causes, isolated, isolated_ports, must,
                               bridges == set(members))
    warnings = warnings + tuple(k.caveats)
    return GroupWhy(number, members, isolated, causes, paths, isolated_ports, must, advice, warnings,
                    prediction, device)


def _hop(k: _Kernel, topo: Topology, a: PciAddress) -> Hop:
    f = topo.functions.get(a)
    if f is None:
        return Hop(a, "missing", "unknown", None, None, (), None, "not listed under /sys/bus/pci/devices")
    try:
        t = k.pcie_type(a)
        kind = pcicfg.PORT_TYPE_NAMES.get(t, f"PCIe type {t}") if t is not None else (
            "PCI bridge" if f.is_bridge else "conventional PCI device")
    except _Unknown:
        kind = "bridge (type unread)" if f.is_bridge else "function (type unread)"
    acs = f.config.acs
    capable = acs.capable if acs else (() if f.config.acs_known else None)
    enabled = acs.enabled if acs and acs.ctrl is not None else (() if f.config.acs_known else None)
    try:
        v = k.acs_enabled(a)
    except _Unknown as err:
        return Hop(a, kind, "unknown", capable, enabled, (), None, err.what)
    if v.reason == "quirk":
        state = "quirk"
    elif v.reason == "acs":
        state = "enabled"
    elif v.reason == "disabled":
        state = "disabled"
    elif v.reason == "no ACS":
        state = "absent"
    elif v.reason == "not required":
        state = "not required"
    else:
        state = "n/a"
    return Hop(a, kind, state, capable, enabled, v.missing, v.ok, v.detail)


def acs_states(topology: Topology) -> dict[PciAddress, Hop]:
    """The ACS state of every bridge and port, and of every function with an ACS
    capability: what it implements, what is on, and whether it isolates
    (``pci_acs_enabled(dev, SV|RR|CR|UF)``, quirks included)."""
    k = _Kernel(topology)
    out: dict[PciAddress, Hop] = {}
    for a, f in topology.functions.items():
        if f.is_bridge or f.config.acs is not None:
            out[a] = _hop(k, topology, a)
    return out


def _member_path(k: _Kernel, topo: Topology, m: PciAddress) -> MemberPath:
    chain = [m] + topo.upstream(m)
    hops = tuple(_hop(k, topo, a) for a in chain)
    lost_at, cause = None, None
    # the member itself matters only as a function of a multifunction device
    try:
        if k.multifunction(m) and not k.acs_enabled(m).ok:
            lost_at, cause = m, _kind_of_member(k.acs_enabled(m))
    except _Unknown:
        pass
    if lost_at is None:
        for h in hops[1:]:
            try:
                why = k.bridge_alias(h.address)
            except _Unknown:
                why = None
            if why:
                lost_at, cause = h.address, BRIDGE_ALIASING
                break
            if h.isolates is False:
                lost_at, cause = h.address, _kind_of(k.acs_enabled(h.address))
                break
            if h.isolates is None:
                cause = UNDETERMINED
                break
    return MemberPath(m, hops, topo.root_of(m), lost_at, cause)


def _causes(k: _Kernel, members: tuple[PciAddress, ...], focus: PciAddress) -> tuple[Cause, ...]:
    """The joins that merged the members, grouped by (kind, where); the focus device's first."""
    by: dict[tuple[str, PciAddress | None], list[Join]] = {}
    for m in members:
        j = k.joins.get(m)
        if j is None or j.kind == "own":
            continue
        by.setdefault((j.kind, j.at), []).append(j)
    out = []
    for (kind, at), js in by.items():
        missing = tuple(dict.fromkeys(x for j in js for x in j.missing))
        out.append(Cause(kind, at, tuple(j.device for j in js), js[0].detail, missing))
    out.sort(key=lambda c: focus not in c.members)
    return tuple(out)


def _structural_cause(topo: Topology, members: tuple[PciAddress, ...]) -> Cause:
    """Without a replay (short config reads): what the topology alone shows."""
    bridges = [m for m in members if topo.functions[m].is_bridge]
    behind = [m for m in members if any(b in topo.upstream(m) for b in bridges)]
    if bridges and behind:
        return Cause(UNDETERMINED, bridges[0], tuple(behind),
                     f"{_addrs(behind)} sit behind {bridges[0]}, a bridge in the same group: it is either a "
                     "PCIe-to-PCI bridge (aliasing) or a port without ACS; its capabilities need a root read "
                     "of config space to tell")
    slots = {m.slot_key for m in members}
    if len(slots) == 1:
        return Cause(UNDETERMINED, members[0], members,
                     "the members are functions of one multifunction device; whether it has ACS needs a root "
                     "read of config space")
    advice = topo.root_advice
    return Cause(UNDETERMINED, None, members, "config space was not readable enough to replay the kernel"
                 + (f" ({advice})" if advice else ""))


def _isolated_ports(k: _Kernel, topo: Topology) -> list[IsolatedPort]:
    """Root and downstream ports below which a device gets a group of its own (found once)."""
    if k.isolated_ports is None:
        k.isolated_ports = list(_find_isolated_ports(k, topo))
    return k.isolated_ports


def _find_isolated_ports(k: _Kernel, topo: Topology) -> Iterator[IsolatedPort]:
    for a, f in topo.functions.items():
        if f.is_vf:
            continue
        try:
            t = k.pcie_type(a)
            if t not in (PCI_EXP_TYPE_ROOT_PORT, PCI_EXP_TYPE_DOWNSTREAM):
                continue
            ok, _, _ = k.acs_path(a)
        except _Unknown:
            continue
        if ok:
            yield IsolatedPort(a, pcicfg.PORT_TYPE_NAMES[t], topo.port_slot_name(a), tuple(topo.children(a)))


def _advice(topo: Topology, members: tuple[PciAddress, ...], focus: PciAddress, causes: tuple[Cause, ...],
            isolated: bool, ports: tuple[IsolatedPort, ...],
            must: tuple[PciAddress, ...], bridges_only: bool = False) -> tuple[tuple[str, ...], tuple[str, ...]]:
    advice: list[str] = []
    warnings: list[str] = []
    if bridges_only:
        # vfio-pci binds only to endpoints (drivers/vfio/pci/vfio_pci.c vfio_pci_probe refuses a
        # header type other than normal); a group of bridges has nothing to assign, nothing to fix
        advice.append(f"{_addrs(members)}: {'a bridge or port stays' if len(members) == 1 else 'bridges and ports stay'} "
                      "with the host (vfio-pci takes only endpoints); nothing here to assign")
    elif isolated or not must:
        ignored = [m for m in members if m != focus]
        why = (f" (the {'bridge' if len(ignored) == 1 else 'bridges'} {_addrs(ignored)} in it "
               f"{'stays' if len(ignored) == 1 else 'stay'} with the host)") if ignored else ""
        advice.append(f"{focus} is the only endpoint in its group{why}: `vfioctl hide {focus}` assigns it without "
                      "taking anything else")
    else:
        if must:
            who = ", ".join(f"{m} ({topo.functions[m].driver or 'no driver'})" for m in must)
            advice.append(f"assign the whole group: `vfioctl hide {focus} --group` also takes {who}")
        kinds = {c.kind for c in causes}
        if ports:
            advice.append("move the card to a slot whose path to the root complex isolates: "
                          + "; ".join(p.describe() for p in ports))
        elif kinds & {PORT_WITHOUT_ACS, ACS_DISABLED, ACS_QUIRK, UNDETERMINED}:
            advice.append("no root or downstream port on this host is known to isolate (all lack ACS, or their "
                          "config space was unreadable)")
        if ACS_DISABLED in kinds:
            params = [p for p in topo.cmdline if p.split("=", 1)[0] in ("pci", "disable_acs_redir", "config_acs")
                      and ("acs" in p)]
            extra = f" ({' '.join(params)} is on the kernel command line)" if params else ""
            advice.append("the port implements ACS but the controls are off: the kernel turns them on at boot when an "
                          "IOMMU is enabled (drivers/pci/pci.c pci_enable_acs); disable_acs_redir= or config_acs= "
                          f"turn them off{extra}")
        mf = [c for c in causes if c.kind == MULTIFUNCTION]
        if any(c.at is not None and topo.functions[c.at].is_bridge for c in mf):
            slots = {c.at.slot_key for c in mf if c.at is not None and topo.functions[c.at].is_bridge}
            mf_ports = [a for a in topo.functions if a.slot_key in slots and not topo.functions[a].is_vf]
            advice.append(f"{_addrs(mf_ports)} are functions of one multifunction device without ACS between them: "
                          "everything below any of them shares one group")
        elif mf:
            advice.append("the functions of a multifunction card without ACS can reach each other: they go to a "
                          "VM together (a GPU with its audio function is the usual case)")
        if BRIDGE_ALIASING in kinds:
            advice.append("devices behind a PCIe-to-PCI (or conventional PCI) bridge share its requester ID: the IOMMU "
                          "cannot tell them apart, so only a card in a PCIe slot can be isolated")
        if DMA_ALIAS_QUIRK in kinds:
            advice.append("the device uses another function's requester ID for DMA (a DMA-alias quirk): the two are "
                          "inseparable")
        advice.append(ACS_OVERRIDE_NOTE)
    if topo.acs_override:
        warnings.append(f"{' '.join(topo.acs_override)} is on /proc/cmdline: upstream kernels do not have that "
                        "parameter (it does nothing there); a patched kernel that honours it reports groups the "
                        "hardware does not isolate")
    return tuple(advice), tuple(warnings)
