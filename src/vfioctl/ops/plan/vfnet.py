"""Planning an SR-IOV NIC's VF settings (MAC, VLAN, spoof check, trust, link state, rates):
what the user asked for, checked against what the kernel reported, as SetVfSetting steps
with the originals journaled field by field.

Pure: everything comes from the :class:`~vfioctl.ops.state.HostState` (its ``pf_net``, read
through netlink before planning) and every check runs before the first write, so a bad value
is one line (exit 65) and nothing changes.  A setting the kernel cannot be asked about before
writing (the driver may lack it) is refused by the kernel at its write: the step names it
(exit 65) and the rollback puts back what was done.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

from vfioctl.base.errors import HostNotReady, InvalidInput
from vfioctl.base.text import ascii_int
from vfioctl.ops.journal import VfNetRecord
from vfioctl.ops.plan.model import Change, Plan
from vfioctl.ops.state import HostState
from vfioctl.ops.steps.base import Step
from vfioctl.ops.steps.journal import JournalCommit, JournalForgetVf, JournalRecord
from vfioctl.ops.steps.sriov import SetVfSetting
from vfioctl.pci.address import PciAddress
from vfioctl.pci.vfnet import FIELDS, PfNet

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Mapping

#: the keys a user writes (`sriov set PF --vf N key=value`, a config's [[sriov.vf]])
KEYS = ("mac", "vlan", "qos", "proto", "spoofchk", "trust", "link_state", "min_tx_rate", "max_tx_rate")
DERIVED = "derived"
_ON = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class VfWant:
    """What one VF's settings must be; None: leave that setting as it is."""

    index: int
    mac: str | None = None  # "aa:bb:..." or "derived"
    vlan: int | None = None
    qos: int | None = None
    proto: str | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _mac(where: str, text: str) -> str:
    t = text.strip().lower()
    if t == DERIVED:
        return DERIVED
    parts = t.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise InvalidInput(f"{where}: mac = {text[:40]!r} is not a MAC address (aa:bb:cc:dd:ee:ff, or \"derived\")")
    if int(parts[0], 16) & 1:
        raise InvalidInput(f"{where}: mac = {t} is a multicast address; a VF needs a unicast one "
                           "(the first octet's lowest bit clear)")
    if t == "00:00:00:00:00:00":
        raise InvalidInput(f"{where}: mac = {t} is zero (the guest would make up a random MAC at each boot)")
    return t


def _int(where: str, key: str, value: object, top: int, what: str) -> int:
    if isinstance(value, str):
        n = ascii_int(value.strip(), 10)
    elif isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        n = None
    if n is None or not 0 <= n <= top:
        raise InvalidInput(f"{where}: {key} = {str(value)[:20]!r} must be a whole number from 0 to {top} ({what})")
    return n


def parse_vf_want(where: str, index: object, values: Mapping[str, object]) -> VfWant:
    """A VF's wanted settings from a config table or the command line's key=value pairs
    (strings or TOML values); InvalidInput (65) naming the key on a bad one."""
    vf = _int(where, "vf", index, 4095, "the VF's index on its PF")
    where = f"{where}: VF {vf}"
    got: dict[str, Any] = {}
    for k, v in values.items():
        if k not in KEYS:
            raise InvalidInput(f"{where}: unknown VF setting {str(k)[:40]!r} (known: {', '.join(KEYS)})")
        if k == "mac":
            if not isinstance(v, str):
                raise InvalidInput(f"{where}: mac must be a string")
            got[k] = _mac(where, v)
        elif k == "vlan":
            got[k] = _int(where, k, v, 4095, "802.1Q VLAN ID; 0 removes the VLAN")
        elif k == "qos":
            got[k] = _int(where, k, v, 7, "the 802.1p priority")
        elif k == "proto":
            p = str(v).strip()
            canon = {"802.1q": "802.1Q", "802.1ad": "802.1ad"}.get(p.lower())
            if canon is None:
                raise InvalidInput(f"{where}: proto = {p[:20]!r} must be 802.1Q or 802.1ad")
            got[k] = canon
        elif k in ("spoofchk", "trust"):
            b = v if isinstance(v, bool) else _ON.get(str(v).strip().lower()) if isinstance(v, str) else None
            if b is None:
                raise InvalidInput(f"{where}: {k} = {str(v)[:20]!r} must be on or off")
            got[k] = b
        elif k == "link_state":
            s = str(v).strip().lower()
            if s not in ("auto", "enable", "disable"):
                raise InvalidInput(f"{where}: link_state = {s[:20]!r} must be auto, enable or disable")
            got[k] = s
        else:  # min_tx_rate, max_tx_rate: Mbit/s, as ip-link(8) takes them
            got[k] = _int(where, k, v, 0xFFFFFFFF, "Mbit/s; 0 is no limit")
    if ("qos" in got or "proto" in got) and "vlan" not in got:
        raise InvalidInput(f"{where}: qos and proto go with vlan (the kernel sets the three together)")
    if got.get("vlan") == 0 and (got.get("qos") or got.get("proto") == "802.1ad"):
        raise InvalidInput(f"{where}: vlan 0 removes the VLAN; a qos or 802.1ad with it means nothing")
    if not got:
        raise InvalidInput(f"{where}: no setting given (known: {', '.join(KEYS)})")
    return VfWant(vf, **got)


def derive_mac(machine_id: str, pf: PciAddress, index: int) -> str:
    """A stable, locally administered unicast MAC for VF *index* of *pf* on the host whose
    /etc/machine-id is *machine_id*: the same on every boot, different on every host of a fleet."""
    h = hashlib.sha256(f"vfioctl VF MAC\0{machine_id}\0{pf}\0{index}".encode()).digest()
    octets = bytes([(h[0] & 0xFC) | 0x02]) + h[1:6]
    return ":".join(f"{b:02x}" for b in octets)


def desired(state: HostState, pf: PciAddress, want: VfWant, current: Mapping[str, Any]) -> dict[str, Any]:
    """Field -> the value *want* gives it (the kernel's units: vlan [vid, qos, proto], tx_rate
    [min, max]); what *want* leaves out keeps *current*'s value."""
    out: dict[str, Any] = {}
    if want.mac is not None:
        if want.mac == DERIVED:
            if state.machine_id is None:
                raise HostNotReady(f"{pf}: VF {want.index}: mac = \"derived\" needs /etc/machine-id "
                                   "(systemd-machine-id-setup makes it); give a fixed MAC or create it")
            out["mac"] = derive_mac(state.machine_id, pf, want.index)
        else:
            out["mac"] = want.mac
    if want.vlan is not None:
        out["vlan"] = (want.vlan, want.qos or 0, want.proto or "802.1Q")
    for f in ("spoofchk", "trust", "link_state"):
        v = getattr(want, f)
        if v is not None:
            out[f] = v
    if want.min_tx_rate is not None or want.max_tx_rate is not None:
        cur = current.get("tx_rate") or (0, 0)
        out["tx_rate"] = (cur[0] if want.min_tx_rate is None else want.min_tx_rate,
                          cur[1] if want.max_tx_rate is None else want.max_tx_rate)
    return out


def _check_rates(where: str, net: PfNet, rate: tuple[int, int]) -> None:
    lo, hi = rate
    if hi and lo > hi:
        raise InvalidInput(f"{where}: min_tx_rate {lo} is above max_tx_rate {hi}")
    top = max(lo, hi)
    if not top:
        return
    if net.speed is None:
        raise InvalidInput(f"{where}: the link speed of {net.ifname} is unknown (/sys/class/net/{net.ifname}/speed "
                           f"says {net.speed_text!r}: link down, or a driver that does not say), and an unknown "
                           f"speed is not an unlimited one: a rate of {top} Mbit/s cannot be checked; bring the "
                           "link up first")
    if top > net.speed:
        raise InvalidInput(f"{where}: a rate of {top} Mbit/s is above {net.ifname}'s link speed, {net.speed} Mbit/s")


def vf_net_plan(state: HostState, pf_addr: PciAddress, wants: list[VfWant], *, numvfs: int | None = None,
                origin: str = "sriov") -> Plan:
    """Plan *wants* on *pf_addr*'s VFs.  *numvfs*: the VF count the plan leaves (VFs this
    plan creates are set right after the count changes, their values read at the write);
    None: the count as it is.  Every check runs here, before any write."""
    a = str(pf_addr)
    pf = state.device(pf_addr)
    plan = Plan("sriov")
    if not wants:
        return plan
    if pf.sriov is None:
        raise InvalidInput(f"{a} is not SR-IOV capable (no {pf.sysfs}/sriov_totalvfs)")
    net = state.pf_net.get(pf_addr)
    if net is None or net.ifname is None:
        raise HostNotReady(f"{a} has no network interface (driver {pf.driver or 'none'}): VF settings live in the "
                           "PF's network driver; bind it first")
    cur_n = pf.sriov.numvfs
    creating = numvfs is not None and numvfs != cur_n
    n = cur_n if numvfs is None else numvfs
    if not creating and net.error:
        raise HostNotReady(f"{a}: cannot read the VF settings of {net.ifname}: {net.error}")
    seen: set[int] = set()
    originals: dict[str, dict[str, Any]] = {}
    steps: list[Step] = []
    for w in wants:
        where = f"{a} ({net.ifname}) VF {w.index}"
        if w.index in seen:
            raise InvalidInput(f"{where} is given twice")
        seen.add(w.index)
        if w.index >= n:
            raise InvalidInput(f"{where}: VF index {w.index} is past the PF's VF count (sriov_numvfs {n}; "
                               f"VFs are numbered 0 to {n - 1})" if n else
                               f"{where}: the PF has no VFs (sriov_numvfs 0); create them first")
        cur = None if creating else net.vf(w.index)
        if not creating and cur is None:
            raise HostNotReady(f"{where}: the kernel lists no settings for this VF (IFLA_VFINFO_LIST has "
                               f"{len(net.vfs)} entries)")
        now = {f: cur.get(f) for f in FIELDS} if cur is not None else {}
        want = desired(state, pf_addr, w, now)
        if "tx_rate" in want:
            _check_rates(where, net, want["tx_rate"])
        for f, v in want.items():
            if cur is not None and f in ("spoofchk", "trust") and now[f] is None:
                raise InvalidInput(f"{where}: {pf.driver or 'the PF driver'} does not report {f} for its VFs "
                                   "(the kernel sends -1: the driver has no such setting)", setting=f)
            if cur is not None and now[f] == v:
                continue
            steps.append(SetVfSetting(pf_addr, net.ifname, w.index, f, v, None if creating else now[f],
                                      note="VF created by this plan" if creating else ""))
            if not creating:
                originals.setdefault(str(w.index), {})[f] = now[f]
    if not steps:
        return plan
    plan.changes.append(Change(a, pf.vendor_device, pf.iommu_group, "PF", "VF settings",
                               "; ".join(f"vf {s.vf} {s.value}" for s in steps if isinstance(s, SetVfSetting))))
    if originals:
        plan.steps.append(JournalRecord([VfNetRecord(a, originals, origin)], what="VF settings"))
    plan.steps += steps
    if originals:
        plan.steps.append(JournalCommit([a], what="VF settings"))
    return plan


def vf_restore_steps(state: HostState, pf_addr: PciAddress, only: set[tuple[str, str]] | None = None) -> list[Step]:
    """Put the journal's original VF settings of *pf_addr* back (those in *only*, or all), each
    where the kernel shows another value now."""
    rec = state.journal_vfnet.get(str(pf_addr))
    net = state.pf_net.get(pf_addr)
    if rec is None or net is None or net.ifname is None:
        return []
    steps: list[Step] = []
    for vf, vals in sorted(rec.originals.items(), key=lambda kv: int(kv[0])):
        cur = net.vf(int(vf))
        if cur is None:
            continue  # the VF is gone (its count changed): nothing left to give back
        for f, orig in vals.items():
            if orig is None or (only is not None and (vf, f) not in only):
                continue
            want = tuple(orig) if isinstance(orig, list) else orig
            if cur.get(f) != want:
                steps.append(SetVfSetting(pf_addr, net.ifname, int(vf), f, want, cur.get(f)))
    return steps


def vf_prune_plan(state: HostState, pf_addr: PciAddress, keep: set[tuple[str, str]]) -> Plan:
    """Give back the journaled VF settings of *pf_addr* that the config no longer sets (*keep*:
    the (vf, field) pairs it still sets), and forget them."""
    plan = Plan("apply")
    rec = state.journal_vfnet.get(str(pf_addr))
    if rec is None:
        return plan
    stale = {(vf, f) for vf, vals in rec.originals.items() for f in vals} - keep
    if not stale:
        return plan
    plan.steps += vf_restore_steps(state, pf_addr, stale)
    plan.steps.append(JournalForgetVf(str(pf_addr), sorted(stale)))
    return plan


def want_fields(w: VfWant) -> set[tuple[str, str]]:
    """The (vf, field) pairs *w* sets, as the journal keys them."""
    out = {f for f in ("mac", "vlan", "spoofchk", "trust", "link_state") if getattr(w, f) is not None}
    if w.min_tx_rate is not None or w.max_tx_rate is not None:
        out.add("tx_rate")
    return {(str(w.index), f) for f in out}
