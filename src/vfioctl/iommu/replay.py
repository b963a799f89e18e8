"""Why is my device in that IOMMU group?  Predict, compare and explain the kernel's groups.

The kernel forms IOMMU groups from the PCI topology alone: requester-ID aliasing
(PCIe-to-PCI bridges, conventional PCI, DMA-alias quirks), ACS on the ports between
a device and the root complex, and ACS between the functions of a multifunction
device.  :func:`predict` replays that algorithm from each function's config space,
in the order the kernel probes devices, so that a difference from the kernel's
groups points at something we cannot see (a quirk this module does not know);
:func:`explain` says, for one group, where on each member's path isolation is lost
and what the user can do about it.

Rules (Linux 6.1, the lab's kernel; unchanged in substance up to the newest tree
read, except where noted):

* drivers/iommu/iommu.c ``pci_device_group``, ``get_pci_alias_or_group``,
  ``get_pci_alias_group``, ``get_pci_function_alias_group``; ``REQ_ACS_FLAGS`` =
  SV | RR | CR | UF.
* drivers/pci/search.c ``pci_for_each_dma_alias``: root, upstream and downstream
  ports pass the requester ID through; a PCIe-to-PCI bridge (and any conventional
  PCI bridge) replaces it with its own, so everything behind it aliases to it.
* drivers/pci/pci.c ``pci_acs_enabled``, ``pci_acs_flags_enabled`` and
  ``pci_acs_path_enabled``.
* drivers/pci/quirks.c: the DMA-alias quirks and the ``pci_dev_acs_enabled`` table
  (tables below, each entry citing its quirk).
* drivers/pci/probe.c ``pci_scan_slot`` (functions other than 0 are multifunction),
  ``set_pcie_port_type`` (mislabelled switch ports are corrected);
  drivers/pci/iov.c ``pci_iov_add_virtfn`` (VFs are never multifunction).

Not modelled (the prediction may differ there, and says so in its caveats): DMA
aliases read from a device at run time (Switchtec NTB), declared by firmware (AMD
IVRS, device tree ``iommu-map``) or set by arch code (``pci_real_dma_dev`` for Intel
VMD domains); whether ``pci_quirk_enable_intel_pch_acs`` succeeded (assumed so);
devices probed in another order than the kernel's scan (hot-plug).

Newer kernels: a 2025 series reworks ``pci_device_group`` around per-bus isolation
(``pci_bus_isolated``/``pci_hierarchy_group``) and adds
``PCI_DEV_FLAGS_PCI_BRIDGE_NO_ALIAS`` for the ASPEED AST1150 bridge; on kernels
with those changes the prediction may differ, and the comparison says so.  6.1's
``set_pcie_port_type`` stores a corrected port type without shifting it (fixed in
2025): only an upstream port below an upstream port is affected, and a caveat says so.
"""

from __future__ import annotations

from vfioctl.base.record import frozen
from vfioctl.pci import config as pcicfg
from vfioctl.pci import quirks as Q
from vfioctl.pci.address import PciAddress
from vfioctl.pci.config import (
    PCI_ACS_CR,
    PCI_ACS_DT,
    PCI_ACS_EC,
    PCI_ACS_RR,
    PCI_ACS_SV,
    PCI_ACS_TB,
    PCI_ACS_UF,
    PCI_EXP_TYPE_DOWNSTREAM,
    PCI_EXP_TYPE_ENDPOINT,
    PCI_EXP_TYPE_LEG_END,
    PCI_EXP_TYPE_PCI_BRIDGE,
    PCI_EXP_TYPE_PCIE_BRIDGE,
    PCI_EXP_TYPE_RC_EC,
    PCI_EXP_TYPE_RC_END,
    PCI_EXP_TYPE_ROOT_PORT,
    PCI_EXP_TYPE_UPSTREAM,
    ConfigSpace,
    acs_names,
)
from vfioctl.pci.function import PciFunction
from vfioctl.pci.topology import Topology

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Iterator


#: drivers/iommu/iommu.c REQ_ACS_FLAGS: what a port must provide for a device below it
#: to be isolated (no spoofed requester IDs, no peer-to-peer redirection, everything
#: forwarded upstream)
REQ_ACS_FLAGS = PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF


# cause kinds, as the brief and the user see them
PORT_WITHOUT_ACS = "port without ACS"


ACS_DISABLED = "ACS present but disabled"


MULTIFUNCTION = "multifunction without ACS"


BRIDGE_ALIASING = "conventional PCI bridge aliasing"


DMA_ALIAS_QUIRK = "DMA alias quirk"


ACS_QUIRK = "ACS quirk"


UNDETERMINED = "undetermined"


# ============================================================== the kernel, replayed
class _Unknown(Exception):
    """A decision needs a fact the config read did not give."""

    def __init__(self, addr: PciAddress, what: str) -> None:
        super().__init__(f"{addr}: {what}")
        self.addr = addr
        self.what = what


@frozen
class AcsVerdict:
    """``pci_acs_enabled(dev, flags)`` for one function, and why."""

    ok: bool
    #: "quirk", "acs", "not required", "no ACS", "disabled", "conventional", "bridge"
    reason: str
    detail: str
    missing: tuple[str, ...] = ()
    quirk: str | None = None


@frozen
class Join:
    """How the replay put one device into its group."""

    device: PciAddress
    #: "own" (a new group), or the cause kind that joined it to another device's group
    kind: str
    #: the device whose group it joined (None for "own")
    joined: PciAddress | None
    #: where isolation was lost (a port, a bridge, the multifunction device itself)
    at: PciAddress | None
    detail: str
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"device": str(self.device), "kind": self.kind,
                "joined": str(self.joined) if self.joined else None,
                "at": str(self.at) if self.at else None, "detail": self.detail, "missing": list(self.missing)}


class _Bus:
    __slots__ = ("self_", "parent", "root")

    def __init__(self, self_: PciAddress | None, parent: tuple[int, int] | None, root: bool) -> None:
        self.self_ = self_
        self.parent = parent
        self.root = root


class _Kernel:
    """drivers/iommu/iommu.c pci_device_group() and the PCI core rules it relies on."""

    def __init__(self, topo: Topology) -> None:
        self.t = topo
        self.f = topo.functions
        self.group: dict[PciAddress, int] = {}
        self.next_id = 0
        self.joins: dict[PciAddress, Join] = {}
        self.caveats: list[str] = []
        #: function -> the fact its config read lacked (for the summary)
        self.missing: dict[PciAddress, str] = {}
        self._acs_memo: dict[tuple[PciAddress, int], AcsVerdict] = {}
        self._type_memo: dict[PciAddress, int | None] = {}
        self._type_busy: set[PciAddress] = set()
        self._alias_memo: dict[PciAddress, frozenset[int]] = {}
        self._aliasing_memo: dict[object, list[PciAddress]] = {}
        #: the ports with an isolated path, once found (explanations of every group use them)
        #: memo of vfioctl.iommu.explain's isolated ports (IsolatedPort records)
        self.isolated_ports: list[Any] | None = None
        self.buses = self._build_buses()
        self.order = self._probe_order()
        #: every function of a bus, in probe order (the kernel's for_each_pci_dev, one bus at a time)
        self.on_bus: dict[tuple[int, int], list[PciAddress]] = {}
        for a in self.order:
            self.on_bus.setdefault(self._bus_key(a), []).append(a)

    # ------------------------------------------------------------ structure
    def _bus_key(self, a: PciAddress) -> tuple[int, int]:
        return (a.domain, a.bus)

    def _build_buses(self) -> dict[tuple[int, int], _Bus]:
        buses: dict[tuple[int, int], _Bus] = {}
        for f in self.f.values():
            if f.is_vf:
                continue
            key = self._bus_key(f.address)
            if f.parent is None:
                buses.setdefault(key, _Bus(None, None, True))
            else:
                p = self.f.get(f.parent)
                buses.setdefault(key, _Bus(f.parent, self._bus_key(p.address) if p else None, False))
        for f in self.f.values():
            if not f.is_vf:
                continue
            key = self._bus_key(f.address)
            if key not in buses:
                # a VF beyond its PF's bus sits on a virtual bus with no bridge (drivers/pci/iov.c
                # virtfn_add_bus); the walk skips it up to the PF's bus
                pf = self.f.get(f.physfn)  # type: ignore[arg-type]
                buses[key] = _Bus(None, self._bus_key(pf.address) if pf else None, False)
        return buses

    def _probe_order(self) -> list[PciAddress]:
        """Registration order: each bus's devices by devfn, then the buses behind its bridges
        (drivers/pci/probe.c pci_scan_child_bus_extend); VFs come later, when created."""
        on_bus: dict[tuple[int, int], list[PciAddress]] = {}
        for f in self.f.values():
            if not f.is_vf:
                on_bus.setdefault(self._bus_key(f.address), []).append(f.address)
        behind: dict[PciAddress, list[tuple[int, int]]] = {}
        for key, b in self.buses.items():
            if b.self_ is not None:
                behind.setdefault(b.self_, []).append(key)
        out: list[PciAddress] = []
        seen: set[tuple[int, int]] = set()

        def visit(key: tuple[int, int]) -> None:
            if key in seen:
                return
            seen.add(key)
            devs = sorted(on_bus.get(key, ()))
            out.extend(devs)
            for d in devs:
                for child in sorted(behind.get(d, ())):
                    visit(child)

        for key in sorted(k for k, b in self.buses.items() if b.root):
            visit(key)
        done = set(out)
        out.extend(a for a in sorted(self.f) if a not in done and not self.f[a].is_vf)
        out.extend(a for a in sorted(self.f, key=lambda a: (self.f[a].physfn or a, a)) if self.f[a].is_vf)
        return out

    def bus(self, a: PciAddress) -> _Bus:
        return self.buses.get(self._bus_key(a)) or _Bus(None, None, True)

    def upstream_bridge(self, a: PciAddress) -> PciAddress | None:
        """pci_upstream_bridge(): the bridge above, through the PF for a VF."""
        f = self.f[a]
        if f.is_vf and f.physfn in self.f:
            return self.bus(f.physfn).self_  # type: ignore[arg-type]
        return self.bus(a).self_

    # ------------------------------------------------------------ facts
    def _need(self, a: PciAddress) -> PciFunction:
        f = self.f.get(a)
        if f is None:
            raise _Unknown(a, "the bridge is not listed under /sys/bus/pci/devices")
        return f

    def pcie_type(self, a: PciAddress) -> int | None:
        """The PCIe port type after set_pcie_port_type()'s correction; None: not PCI Express."""
        if a in self._type_memo:
            return self._type_memo[a]
        f = self._need(a)
        cfg = f.config
        if cfg.is_pcie is None:
            raise _Unknown(a, _short(cfg, "its PCI Express capability", self.t.root_advice))
        t = cfg.port_type
        if a in self._type_busy:  # a bridge chain that loops (a hostile tree): no correction
            return t
        self._type_busy.add(a)
        try:
            t = self._corrected(a, t)
        finally:
            self._type_busy.discard(a)
        self._type_memo[a] = t
        return t

    def _corrected(self, a: PciAddress, t: int | None) -> int | None:
        if t in (PCI_EXP_TYPE_DOWNSTREAM, PCI_EXP_TYPE_UPSTREAM):
            up = self.upstream_bridge(a)
            if up is not None and up in self.f:
                pt = self.pcie_type(up)
                # drivers/pci/probe.c set_pcie_port_type: "Some systems do not identify their
                # upstream/downstream ports correctly so detect impossible configurations"
                if t == PCI_EXP_TYPE_DOWNSTREAM and pt in (PCI_EXP_TYPE_ROOT_PORT, PCI_EXP_TYPE_DOWNSTREAM,
                                                           PCI_EXP_TYPE_PCIE_BRIDGE):
                    t = PCI_EXP_TYPE_UPSTREAM
                elif t == PCI_EXP_TYPE_UPSTREAM and pt == PCI_EXP_TYPE_UPSTREAM:
                    t = PCI_EXP_TYPE_DOWNSTREAM
                    self.caveat(f"{a} claims to be an upstream port below another upstream port; the kernel "
                                "corrects it to a downstream port (6.1 kernels without the 2025 fix store the "
                                "correction wrongly and treat it as an endpoint)")
        return t

    def multifunction(self, a: PciAddress) -> bool:
        f = self._need(a)
        if f.is_vf:
            return False  # drivers/pci/iov.c pci_iov_add_virtfn: virtfn->multifunction = 0
        if a.function or (a.slot and self._ari(a)):
            return True  # drivers/pci/probe.c pci_scan_slot: every function after 0 is multifunction
        if f.config.multifunction is None:
            raise _Unknown(a, _short(f.config, "its header type", self.t.root_advice))
        return f.config.multifunction

    def _ari(self, a: PciAddress) -> bool:
        """Slot > 0 behind a root or downstream port is an ARI function (only device 0 is scanned
        there otherwise: drivers/pci/probe.c only_one_child)."""
        up = self.bus(a).self_
        if up is None or up not in self.f:
            return False
        try:
            return self.pcie_type(up) in (PCI_EXP_TYPE_ROOT_PORT, PCI_EXP_TYPE_DOWNSTREAM)
        except _Unknown:
            return False

    def caveat(self, text: str) -> None:
        if text not in self.caveats:
            self.caveats.append(text)

    # ------------------------------------------------------------ ACS
    def acs_enabled(self, a: PciAddress, flags: int = REQ_ACS_FLAGS) -> AcsVerdict:
        """drivers/pci/pci.c pci_acs_enabled()."""
        key = (a, flags)
        if key not in self._acs_memo:
            self._acs_memo[key] = self._acs_enabled(a, flags)
        return self._acs_memo[key]

    def _acs_enabled(self, a: PciAddress, flags: int) -> AcsVerdict:
        f = self._need(a)
        q = self._acs_quirk(f, flags)
        if q is not None:
            return q
        t = self.pcie_type(a)
        if t is None:
            return AcsVerdict(False, "conventional", "conventional PCI: any device on the bus can reach the others")
        if t in (PCI_EXP_TYPE_PCIE_BRIDGE, PCI_EXP_TYPE_PCI_BRIDGE):
            return AcsVerdict(False, "bridge", f"a {pcicfg.PORT_TYPE_NAMES[t]} never isolates (PCIe 3.0 6.12.1)")
        if t == PCI_EXP_TYPE_RC_EC:
            return AcsVerdict(False, "no ACS", "a root complex event collector never isolates")
        if t in (PCI_EXP_TYPE_DOWNSTREAM, PCI_EXP_TYPE_ROOT_PORT):
            return self._flags_enabled(f, flags)
        if t in (PCI_EXP_TYPE_ENDPOINT, PCI_EXP_TYPE_UPSTREAM, PCI_EXP_TYPE_LEG_END, PCI_EXP_TYPE_RC_END):
            if not self.multifunction(a):
                return AcsVerdict(True, "not required", "a single-function device needs no ACS")
            return self._flags_enabled(f, flags)
        return AcsVerdict(True, "not required", f"PCIe type {t:#x} needs no ACS")

    def _flags_enabled(self, f: PciFunction, flags: int) -> AcsVerdict:
        """drivers/pci/pci.c pci_acs_flags_enabled(): a control the capability does not
        implement counts as hard-wired on (except Egress Control)."""
        acs = f.config.acs
        if acs is None:
            if not f.config.acs_known:
                raise _Unknown(f.address, _short(f.config, "its ACS capability", self.t.root_advice))
            return AcsVerdict(False, "no ACS", "no ACS capability", acs_names(flags))
        if acs.ctrl is None:
            raise _Unknown(f.address, _short(f.config, "its ACS control register", self.t.root_advice))
        missing = acs.missing(flags) or ()
        if missing:
            return AcsVerdict(False, "disabled", f"ACS present but {' '.join(missing)} not enabled", missing)
        return AcsVerdict(True, "acs", "ACS enabled: " + (" ".join(acs.enabled) or "nothing required is implemented"))

    def _acs_quirk(self, f: PciFunction, flags: int) -> AcsVerdict | None:
        """drivers/pci/quirks.c pci_dev_specific_acs_enabled(): the first table entry that answers."""
        v, d = f.vendor_id, f.device_id
        vd = (v, d)

        def ok(name: str, enabled: int, req: int = flags, note: str = "") -> AcsVerdict:
            good = (req & enabled) == req
            miss = acs_names(req & ~enabled)
            return AcsVerdict(good, "quirk", f"{name}" + (f" ({note})" if note else ""), () if good else miss, name)

        if vd in Q.AMD_SB:
            # Targeting multifunction devices on the southbridge, only with an AMD IOMMU (IVRS)
            if self.multifunction(f.address) and self.bus(f.address).root and self.t.ivrs:
                return ok("pci_quirk_amd_sb_acs", PCI_ACS_RR | PCI_ACS_CR,
                          flags & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC | PCI_ACS_DT), "AMD says no peer-to-peer")
        if vd in Q.MF_ENDPOINT:
            return ok("pci_quirk_mf_endpoint_acs", PCI_ACS_SV | PCI_ACS_TB | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF
                      | PCI_ACS_DT, note="the vendor says its functions cannot talk to each other")
        if v == 0x8086:
            t = self.pcie_type(f.address)
            if t == PCI_EXP_TYPE_RC_END:
                return ok("pci_quirk_rciep_acs", REQ_ACS_FLAGS, note="Intel RCiEPs allow peer-to-peer only on "
                          "translated addresses (VT-d 3.16)")
            if t == PCI_EXP_TYPE_ROOT_PORT and d in Q.INTEL_PCH_ACS_IDS:
                self.caveat(f"{f.address} [8086:{d:04x}] is an Intel PCH root port: assumed isolated by "
                            "pci_quirk_intel_pch_acs (the kernel log says 'Intel PCH root port ACS workaround "
                            "enabled'; if it says 'Failed to enable Intel PCH ACS quirk' it is not)")
                return ok("pci_quirk_intel_pch_acs", REQ_ACS_FLAGS, note="chipset registers, no ACS capability")
            if t == PCI_EXP_TYPE_ROOT_PORT and d in Q.INTEL_SPT_IDS and f.config.acs is not None:
                acs = f.config.acs
                if acs.cap_dword is None or acs.ctrl_dword is None:
                    raise _Unknown(f.address, _short(f.config, "its ACS registers", self.t.root_advice))
                return ok("pci_quirk_intel_spt_pch_acs", acs.ctrl_dword, flags & (acs.cap_dword | PCI_ACS_EC),
                          "Sunrise/Union Point keep the ACS controls at offset 8")
        if vd in Q.RP_SV_RR_CR_UF:
            return ok(Q.RP_SV_RR_CR_UF[vd], REQ_ACS_FLAGS, note="isolating root port without an ACS capability")
        if v == 0x177D and self.pcie_type(f.address) == PCI_EXP_TYPE_ROOT_PORT and d is not None and (
                0xA000 <= d <= 0xA7FF or d in (0xAF84, 0xB884)):
            return ok("pci_quirk_cavium_acs", REQ_ACS_FLAGS, note="Cavium ThunderX root port")
        if vd == (0x1C36, 0x0031) and self.pcie_type(f.address) == PCI_EXP_TYPE_ROOT_PORT:
            rest = flags & ~REQ_ACS_FLAGS
            return AcsVerdict(not rest, "quirk", "pci_quirk_al_acs", acs_names(rest), "pci_quirk_al_acs")
        if v == 0x1D17:
            t = self.pcie_type(f.address)
            if t in (PCI_EXP_TYPE_ROOT_PORT, PCI_EXP_TYPE_DOWNSTREAM):
                if d in Q.ZHAOXIN_PORTS:
                    return ok("pci_quirk_zhaoxin_pcie_ports_acs", REQ_ACS_FLAGS)
                return AcsVerdict(False, "quirk", "pci_quirk_zhaoxin_pcie_ports_acs answers 'not isolated' for "
                                  "this Zhaoxin port", acs_names(flags), "pci_quirk_zhaoxin_pcie_ports_acs")
        if v == 0x8088:
            if d in Q.WANGXUN:
                return ok("pci_quirk_wangxun_nic_acs", REQ_ACS_FLAGS, note="functions isolated in hardware")
            return AcsVerdict(False, "quirk", "pci_quirk_wangxun_nic_acs answers 'not isolated' for this "
                              "Wangxun device", acs_names(flags), "pci_quirk_wangxun_nic_acs")
        return None

    def acs_path(self, start: PciAddress) -> tuple[bool, PciAddress | None, AcsVerdict | None]:
        """drivers/pci/pci.c pci_acs_path_enabled(start, NULL, REQ_ACS_FLAGS): every device from
        *start* up to the root bus must isolate.  Returns (ok, first failing device, its verdict)."""
        a: PciAddress | None = start
        for _ in range(256):
            if a is None:
                return True, None, None
            v = self.acs_enabled(a)
            if not v.ok:
                return False, a, v
            b = self.bus(a)
            if b.root:
                return True, None, None
            a = b.self_ if b.self_ is not None else self._bus_self_above(b)
        return False, start, AcsVerdict(False, "no ACS", "the bridge chain loops")

    def _bus_self_above(self, b: _Bus) -> PciAddress | None:
        seen = 0
        while b.self_ is None and b.parent is not None and seen < 256:
            b = self.buses.get(b.parent) or _Bus(None, None, True)
            seen += 1
        return b.self_

    # ------------------------------------------------------------ DMA aliases
    def alias_devfns(self, f: PciFunction) -> frozenset[int]:
        """The dev->dma_alias_mask the header quirks set (same bus)."""
        if f.address not in self._alias_memo:
            self._alias_memo[f.address] = self._alias_devfns(f)
        return self._alias_memo[f.address]

    def _alias_devfns(self, f: PciFunction) -> frozenset[int]:
        vd = (f.vendor_id, f.device_id)
        a = f.address
        if vd in Q.DMA_FUNC0 and a.function != 0:
            return frozenset({Q.devfn(a.slot, 0)})
        if vd in Q.DMA_FUNC1 and a.function != 1:
            return frozenset({Q.devfn(a.slot, 1)})
        key = (f.vendor_id, f.device_id, f.subsystem_vendor_id, f.subsystem_device_id)
        if key in Q.DMA_FIXED:
            return frozenset({Q.DMA_FIXED[key]})  # type: ignore[index]
        if vd in Q.DMA_MIC_X200:
            return frozenset({Q.devfn(0x10, 0), Q.devfn(0x11, 0), Q.devfn(0x12, 3)})
        if vd in Q.DMA_VCA:
            return frozenset(Q.devfn(s, 0) + i for s in range(32) for i in range(5))
        if vd in Q.DMA_PLX_NTB:
            return frozenset(range(256))
        return frozenset()

    def alias_quirk_name(self, f: PciFunction) -> str | None:
        vd = (f.vendor_id, f.device_id)
        for table, name in ((Q.DMA_FUNC0, "quirk_dma_func0_alias"), (Q.DMA_FUNC1, "quirk_dma_func1_alias"),
                            (Q.DMA_MIC_X200, "quirk_mic_x200_dma_alias"), (Q.DMA_VCA, "quirk_pex_vca_alias"),
                            (Q.DMA_PLX_NTB, "quirk_plx_ntb_dma_alias")):
            if vd in table:
                return name
        if (f.vendor_id, f.device_id, f.subsystem_vendor_id, f.subsystem_device_id) in Q.DMA_FIXED:
            return "quirk_fixed_dma_alias"
        return None

    def are_dma_aliases(self, x: PciAddress, y: PciAddress) -> bool:
        """drivers/pci/pci.c pci_devs_are_dma_aliases()."""
        return (Q.devfn(y.slot, y.function) in self.alias_devfns(self.f[x])
                or Q.devfn(x.slot, x.function) in self.alias_devfns(self.f[y]))

    def bridge_alias(self, bridge: PciAddress) -> str | None:
        """Whether the alias walk calls back at *bridge* (drivers/pci/search.c), and why."""
        f = self._need(bridge)
        t = self.pcie_type(bridge)
        if t is not None:
            if t == PCI_EXP_TYPE_PCI_BRIDGE:
                return "a PCIe-to-PCI bridge: the devices behind it reach the IOMMU with its requester ID"
            if t == PCI_EXP_TYPE_PCIE_BRIDGE:
                return "a PCI-to-PCIe bridge on conventional PCI: devices behind it alias to it"
            return None
        # the callback happens either way; the quirk only changes which requester ID is used
        up = self.bus(bridge).self_
        if (f.vendor_id, f.device_id) in Q.PCIE_BRIDGE_ALIAS and up in self.f:
            try:
                ut = self.pcie_type(up)  # type: ignore[arg-type]
            except _Unknown:
                ut = None
            if ut is not None and ut != PCI_EXP_TYPE_PCI_BRIDGE:
                return "a PCIe-to-PCI bridge without a PCIe capability (quirk_use_pcie_bridge_dma_alias)"
        return "a conventional PCI bridge: the devices behind it alias to it"

    def alias_walk(self, a: PciAddress) -> Iterator[tuple[PciAddress, str | None]]:
        """drivers/pci/search.c pci_for_each_dma_alias(): the devices whose IDs the device's DMA
        may carry, from itself up (the DMA-alias devfns call back with the device itself)."""
        yield a, None
        b = self.bus(a)
        for _ in range(256):
            if b.root:
                return
            if b.self_ is None:  # a virtual bus
                b = self.buses.get(b.parent) if b.parent else None  # type: ignore[assignment]
                if b is None:
                    return
                continue
            tmp = b.self_
            ft = self._need(tmp)
            if (ft.vendor_id, ft.device_id) in Q.XLATE_ROOT:
                return  # PCI_DEV_FLAGS_BRIDGE_XLATE_ROOT: translation happens at this bridge
            why = self.bridge_alias(tmp)
            if why is not None:
                yield tmp, why
            b = self.bus(tmp)

    # ------------------------------------------------------------ grouping
    def alias_group(self, p: PciAddress, visited: set[int]) -> tuple[int, PciAddress] | None:
        """drivers/iommu/iommu.c get_pci_alias_group()."""
        here = Q.devfn(p.slot, p.function)
        if here in visited:
            return None
        visited.add(here)
        if p in self.group:
            return self.group[p], p
        key = self._bus_key(p)
        # two functions are DMA aliases only when one of them has an alias quirk: a function
        # without one need only look at those that have one (same order as the kernel's walk)
        cands = self.on_bus.get(key, ()) if self.alias_devfns(self.f[p]) else self._aliasing(key)
        for tmp in cands:
            if tmp == p:
                continue
            if self.are_dma_aliases(p, tmp):
                g = self.alias_group(tmp, visited) or self.function_alias_group(tmp, visited)
                if g:
                    return g
        return None

    def _aliasing(self, key: object) -> list[PciAddress]:
        """The functions on bus *key* that have DMA-alias devfns (quirks), in bus order."""
        if key not in self._aliasing_memo:
            self._aliasing_memo[key] = [t for t in self.on_bus.get(key, ()) if self.alias_devfns(self.f[t])]  # type: ignore[call-overload]
        return self._aliasing_memo[key]

    def function_alias_group(self, p: PciAddress, visited: set[int]) -> tuple[int, PciAddress] | None:
        """drivers/iommu/iommu.c get_pci_function_alias_group()."""
        if not self.multifunction(p) or self.acs_enabled(p).ok:
            return None
        for tmp in self.on_bus.get(self._bus_key(p), ()):
            if tmp == p or tmp.slot != p.slot:
                continue
            if self.acs_enabled(tmp).ok:
                continue
            g = self.alias_group(tmp, visited)
            if g:
                return g
        return None

    def device_group(self, a: PciAddress) -> Join:
        """drivers/iommu/iommu.c pci_device_group() for device *a*; records and returns the join."""
        pdev = a
        for dev, why in self.alias_walk(a):
            pdev = dev
            if dev in self.group:
                return self._join(a, BRIDGE_ALIASING, dev, dev, f"{dev} is {why}")
        # Continue upstream to where devices are protected from peer-to-peer DMA by ACS
        b = self.bus(pdev)
        for _ in range(256):
            if b.root:
                break
            if b.self_ is None:
                b = self.buses.get(b.parent) if b.parent else None  # type: ignore[assignment]
                if b is None:
                    break
                continue
            ok, at, verdict = self.acs_path(b.self_)
            if ok:
                break
            pdev = b.self_
            if pdev in self.group:
                return self._join(a, _kind_of(verdict), pdev, at, _lost(at, verdict),
                                  verdict.missing if verdict else ())
            b = self.bus(pdev)
        visited: set[int] = set()
        g = self.alias_group(pdev, visited)
        if g:
            return self._join(a, DMA_ALIAS_QUIRK, g[1], pdev, self._alias_detail(pdev, g[1]))
        g = self.function_alias_group(pdev, visited)
        if g:
            v = self.acs_enabled(pdev)
            # functions with ACS that is off (or a quirk saying no) are named for that, the
            # actionable part; without ACS at all the multifunction device is the cause
            return self._join(a, _kind_of_member(v), g[1], pdev,
                              f"{pdev} is a function of a multifunction device without ACS isolation ({v.detail})",
                              v.missing)
        gid = self.next_id
        self.next_id += 1
        return self._join(a, "own", None, None, "a group of its own", group=gid)

    def _alias_detail(self, p: PciAddress, other: PciAddress) -> str:
        names = [n for n in (self.alias_quirk_name(self.f[p]), self.alias_quirk_name(self.f[other])) if n]
        return f"{p} and {other} are DMA aliases ({', '.join(names) or 'DMA alias'})"

    def _join(self, a: PciAddress, kind: str, joined: PciAddress | None, at: PciAddress | None, detail: str,
              missing: tuple[str, ...] = (), group: int | None = None) -> Join:
        gid = group if group is not None else self.group[joined]  # type: ignore[index]
        self.group[a] = gid
        j = Join(a, kind, joined, at, detail, tuple(missing))
        self.joins[a] = j
        return j

    def run(self, probed: Callable[[PciAddress], bool]) -> list[tuple[PciAddress, str]]:
        undecided: list[tuple[PciAddress, str]] = []
        for a in self.order:
            f = self.f[a]
            if not probed(a):
                continue
            for (v, d, c), why in Q.NOT_MODELLED.items():
                if f.vendor_id == v and (d is None or f.device_id == d) and (
                        c is None or (f.class_code or 0) >> 8 == c):
                    self.caveat(f"{a} [{f.ids}]: {why}; not modelled")
            try:
                self.device_group(a)
            except _Unknown as err:
                undecided.append((a, str(err)))
                self.missing.setdefault(err.addr, err.what)
        return undecided


def _short(cfg: ConfigSpace, what: str, advice: str | None) -> str:
    if cfg.length < 256:
        return (f"{what} is beyond the {cfg.length} bytes of config space this read gave "
                f"(non-root reads get 64{'; ' + advice if advice else ''})")
    return f"{what} is unreadable ({'; '.join(cfg.unreadable) or 'short config read'})"


def _kind_of(v: AcsVerdict | None) -> str:
    if v is None:
        return PORT_WITHOUT_ACS
    return {"quirk": ACS_QUIRK, "disabled": ACS_DISABLED, "conventional": BRIDGE_ALIASING,
            "bridge": BRIDGE_ALIASING}.get(v.reason, PORT_WITHOUT_ACS)


def _lost(at: PciAddress | None, v: AcsVerdict | None) -> str:
    return f"isolation is lost at {at}: {v.detail if v else 'not isolated'}"


def _kind_of_member(v: AcsVerdict) -> str:
    return {"disabled": ACS_DISABLED, "quirk": ACS_QUIRK}.get(v.reason, MULTIFUNCTION)
