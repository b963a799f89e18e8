"""An SR-IOV NIC PF's network side: its interface, link speed and state, and each VF's
settings as the PF's driver reports them (IFLA_VFINFO_LIST, read through
:meth:`vfioctl.host.core.Host.vf_info`).

A VF's MAC, VLAN, spoof checking, trust, link state and rates live on the PF, not in the VF:
the guest cannot see or change them, and they are lost with the VFs (a PF reset, a reboot).
"""

from __future__ import annotations

from dataclasses import dataclass

from vfioctl.base.errors import NotFound, VfioctlError
from vfioctl.base.text import parse_int
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES, PciDevice

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: what one VF setting is called, in the order `ip link` prints them; each is written whole
#: (``vlan`` is [vid, qos, proto], ``tx_rate`` is [min, max] Mbit/s)
FIELDS = ("mac", "vlan", "spoofchk", "trust", "link_state", "tx_rate")


@dataclass(frozen=True)
class VfSettings:
    """One VF's settings as the kernel reported them; None: the driver reports no value."""

    index: int
    mac: str | None = None
    vlan: tuple[int, int, str] | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None
    tx_rate: tuple[int, int] | None = None

    def get(self, field: str) -> Any:
        return getattr(self, field)

    def to_dict(self) -> dict:
        vlan, rate = self.vlan, self.tx_rate
        return {"vf": self.index, "mac": self.mac,
                "vlan": vlan[0] if vlan else None, "qos": vlan[1] if vlan else None,
                "proto": vlan[2] if vlan else None, "spoofchk": self.spoofchk, "trust": self.trust,
                "link_state": self.link_state,
                "min_tx_rate": rate[0] if rate else None, "max_tx_rate": rate[1] if rate else None}

    @classmethod
    def from_raw(cls, index: int, raw: object) -> "VfSettings":
        """From :func:`vfioctl.host.netlink.read_vfinfo`'s dict (or a snapshot's): every value
        checked, one that is not of its form read as "not reported"."""
        r = raw if isinstance(raw, dict) else {}
        mac = r.get("mac")
        vlan = r.get("vlan")
        rate = r.get("tx_rate")
        ls = r.get("link_state")

        def num(v: object, top: int) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top

        return cls(
            index=index,
            mac=mac.lower() if isinstance(mac, str) and _is_mac(mac) else None,
            vlan=(vlan[0], vlan[1], vlan[2]) if isinstance(vlan, list) and len(vlan) == 3 and num(vlan[0], 4095)
            and num(vlan[1], 7) and vlan[2] in ("802.1Q", "802.1ad") else None,
            spoofchk=r.get("spoofchk") if isinstance(r.get("spoofchk"), bool) else None,
            trust=r.get("trust") if isinstance(r.get("trust"), bool) else None,
            link_state=ls if ls in ("auto", "enable", "disable") else None,
            tx_rate=(rate[0], rate[1]) if isinstance(rate, list) and len(rate) == 2
            and all(num(x, 1 << 32) for x in rate) else None,
        )


def _is_mac(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)


@dataclass(frozen=True)
class PfNet:
    """A PF's network interface and its VFs' settings at one moment."""

    pf: PciAddress
    #: the PF's interface (None: no netdev, e.g. no driver or not a NIC)
    ifname: str | None
    #: link speed in Mbit/s; None when the kernel says unknown (-1: link down, or a driver
    #: that does not report it), with *speed_text* what it said
    speed: int | None
    speed_text: str
    #: operstate ("up", "down", ...) and carrier ("1", "0", None when unreadable)
    operstate: str | None
    vfs: tuple[VfSettings, ...] = ()
    #: why the VF settings could not be read (None: read)
    error: str | None = None

    def vf(self, index: int) -> VfSettings | None:
        return next((v for v in self.vfs if v.index == index), None)

    @property
    def link_down(self) -> bool:
        return self.operstate is not None and self.operstate != "up"

    def to_dict(self) -> dict:
        return {"pf": str(self.pf), "ifname": self.ifname, "speed_mbps": self.speed, "speed": self.speed_text,
                "operstate": self.operstate, "error": self.error, "vfs": [v.to_dict() for v in self.vfs]}


def pf_netdev(host: Host, pf: PciAddress) -> str | None:
    """The PF's network interface (the first under its sysfs ``net/``), or None."""
    try:
        names = sorted(host.listdir(f"{PCI_DEVICES}/{pf}/net"))
    except NotFound:  # no net/ folder: no netdev (no driver, not a NIC)
        return None
    return names[0] if names else None


def read_pf_net(host: Host, pf: PciAddress) -> PfNet | None:
    """The PF's interface, link and VF settings, or None when it has no network interface."""
    ifname = pf_netdev(host, pf)
    if ifname is None:
        return None
    base = f"/sys/class/net/{ifname}"
    speed_text = host.read(f"{base}/speed", default="").strip() or "unreadable"
    speed = parse_int(speed_text)
    if speed is not None and speed <= 0:
        speed = None
    oper = host.read(f"{base}/operstate", default="").strip() or None
    vfs: tuple[VfSettings, ...] = ()
    error = None
    try:
        raw = host.vf_info(ifname)
    except VfioctlError as err:  # reported with the PF; the planner refuses, a view shows it
        raw = None
        error = err.message
    if raw is not None:
        vfs = tuple(VfSettings.from_raw(i, r) for i, r in enumerate(raw))
    elif error is None and host.snapshot and not isinstance(host.probe("vfinfo", ifname), list):
        error = "not captured"
    return PfNet(pf, ifname, speed, speed_text, oper, vfs, error)


def vf_settings(host: Host, vf: PciAddress) -> tuple[PfNet, VfSettings] | None:
    """The settings of the VF at *vf* on its PF (its index is its place among the PF's
    ``virtfn*`` links), or None when it is no VF or its PF reports none."""
    dev = PciDevice(host, vf)
    pf = dev.physfn
    if pf is None:
        return None
    vfs = PciDevice(host, pf).virtfns
    if vf not in vfs:
        return None
    net = read_pf_net(host, pf)
    got = net.vf(vfs.index(vf)) if net is not None else None
    return (net, got) if net is not None and got is not None else None
