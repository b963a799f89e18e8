"""The kernel's netlink door for an SR-IOV PF's VF settings (RTM_GETLINK/RTM_SETLINK with
IFLA_VFINFO_LIST), through pyroute2.

Only :class:`vfioctl.host.core.Host` calls this module (``Host.vf_info``, ``Host.set_vf``),
and only when VF settings are read or written: pyroute2 is imported here, lazily, so
that `vfioctl list` and every command that does not touch VF settings never pay for it.

The values handed up are plain JSON-able ones (a snapshot carries them as a probe):
``mac`` "aa:bb:cc:dd:ee:ff"; ``vlan`` [vid, qos, "802.1Q" | "802.1ad"]; ``spoofchk`` and
``trust`` true/false, or None where the driver does not report them (the kernel sends -1:
net/core/rtnetlink.c rtnl_fill_vfinfo); ``link_state`` "auto" | "enable" | "disable";
``tx_rate`` [min, max] in Mbit/s (0: no limit).
"""

from __future__ import annotations

import errno
import os
import socket

from vfioctl.base.errors import KernelError, from_oserror

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: include/uapi/linux/if_link.h IFLA_VF_LINK_STATE_*
LINK_STATES = ("auto", "enable", "disable")
#: 802.1Q and 802.1ad, the two VLAN protocols the kernel accepts for a VF (ETH_P_8021Q, ETH_P_8021AD)
PROTOS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
#: RTEXT_FILTER_VF: ask RTM_GETLINK for IFLA_VFINFO_LIST
_RTEXT_FILTER_VF = 1


def _flag(v: object) -> bool | None:
    return None if not isinstance(v, int) or v > 1 else bool(v)


def _oserror(err: BaseException, action: str, where: str) -> Exception:
    code = getattr(err, "code", None)
    if isinstance(code, int) and code > 0:
        return from_oserror(OSError(code, os.strerror(code)), action, where)
    if isinstance(err, OSError):
        return from_oserror(err, action, where)
    # not an errno (pyroute2's own failures): what it said is the only evidence there is
    text = " ".join(str(err).split()) or "no message"
    return KernelError(f"cannot {action} {where}: {type(err).__name__}: {text}", path=where)


def _index(ipr: Any, ifname: str) -> int:
    idx = ipr.link_lookup(ifname=ifname)
    if not idx:
        raise from_oserror(OSError(errno.ENODEV, os.strerror(errno.ENODEV)), "find interface", ifname)
    return int(idx[0])


def read_vfinfo(ifname: str) -> list[dict] | None:
    """Every VF's settings as the PF's driver reports them, in VF order; None when the PF
    reports no VF list (no VFs, or a driver without ndo_get_vf_config)."""
    # lazy: pyroute2 costs tens of ms at start-up; only VF settings need it
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    where = f"netlink:{ifname}"
    try:
        with IPRoute() as ipr:
            msgs = ipr.link("get", index=_index(ipr, ifname), ext_mask=_RTEXT_FILTER_VF)
    except (NetlinkError, OSError, socket.error) as err:
        raise _oserror(err, "read the VF settings of", where) from err
    vfl = msgs[0].get_attr("IFLA_VFINFO_LIST") if msgs else None
    if vfl is None:
        return None
    out: list[dict] = []
    for info in vfl.get_attrs("IFLA_VF_INFO"):
        mac = info.get_attr("IFLA_VF_MAC")
        vlan = info.get_attr("IFLA_VF_VLAN")
        proto = "802.1Q"
        vlist = info.get_attr("IFLA_VF_VLAN_LIST")
        if vlist is not None:
            for ivvi in vlist.get_attrs("IFLA_VF_VLAN_INFO"):
                proto = next((k for k, v in PROTOS.items() if v == ivvi["proto"]), f"{ivvi['proto']:#06x}")
                break
        rate = info.get_attr("IFLA_VF_RATE")
        link = info.get_attr("IFLA_VF_LINK_STATE")
        spoof = info.get_attr("IFLA_VF_SPOOFCHK")
        trust = info.get_attr("IFLA_VF_TRUST")
        ls = link["link_state"] if link is not None else None
        out.append({
            "vf": int(mac["vf"]) if mac is not None else len(out),
            "mac": mac["mac"] if mac is not None else None,
            "vlan": [int(vlan["vlan"]), int(vlan["qos"]), proto] if vlan is not None else None,
            "spoofchk": _flag(spoof["spoofchk"]) if spoof is not None else None,
            "trust": _flag(trust["trust"]) if trust is not None else None,
            "link_state": LINK_STATES[ls] if isinstance(ls, int) and 0 <= ls < len(LINK_STATES) else None,
            "tx_rate": [int(rate["min_tx_rate"]), int(rate["max_tx_rate"])] if rate is not None else None,
        })
    return out


def vf_request(vf: int, field: str, value: Any) -> dict:
    """The pyroute2 ``vf=`` argument that sets one field of VF *vf* (pure; the unit tests check it)."""
    if field == "mac":
        return {"vf": vf, "mac": value}
    if field == "vlan":
        vid, qos, proto = value
        if proto == "802.1Q":
            return {"vf": vf, "vlan": {"vlan": vid, "qos": qos}}
        # only IFLA_VF_VLAN_LIST carries a protocol (net/core/rtnetlink.c do_setvfinfo)
        return {"vf": vf, "vlan": [{"vlan": vid, "qos": qos, "proto": PROTOS[proto]}]}
    if field in ("spoofchk", "trust"):
        return {"vf": vf, field: 1 if value else 0}
    if field == "link_state":
        return {"vf": vf, "link_state": LINK_STATES.index(value)}
    if field == "tx_rate":
        return {"vf": vf, "rate": {"min_tx_rate": value[0], "max_tx_rate": value[1]}}
    raise ValueError(f"internal error: no VF field {field!r}")


def set_vf(ifname: str, vf: int, field: str, value: Any) -> None:
    """RTM_SETLINK on *ifname* with one IFLA_VF_INFO: VF *vf*'s *field* to *value*.  The
    kernel's refusal comes back as our error with its errno (EOPNOTSUPP: the driver has no
    such setting)."""
    # lazy: pyroute2 costs tens of ms at start-up; only VF settings need it
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    where = f"netlink:{ifname} vf {vf} {field}"
    try:
        with IPRoute() as ipr:
            ipr.link("set", index=_index(ipr, ifname), vf=vf_request(vf, field, value))
    except (NetlinkError, OSError, socket.error) as err:
        raise _oserror(err, "set", where) from err
