"""Steps that change an SR-IOV PF: its VF count (through 0, bounded), VF autoprobe, and its
VFs' network settings (netlink)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from vfioctl.base.errors import (
    Busy,
    InvalidInput,
    KernelError,
)
from vfioctl.host.core import Host
from vfioctl.host.env import sriov_timeout
from vfioctl.ops.steps.base import (
    DeviceWrite,
    Exec,
    Step,
    SysfsWrite,
    _present,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES
from vfioctl.pci.vfnet import VfSettings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# ====================================================================== SR-IOV
def _numvfs_now(x: Exec, pf: PciAddress) -> tuple[int | None, list[PciAddress], bool]:
    dev = x.dev(pf)
    vfs = dev.virtfns
    return dev.sriov_numvfs, vfs, all(x.dev(v).physfn == pf for v in vfs)


def _bounded_write(host: Host, path: str, value: str, timeout: float) -> None:
    """sriov_numvfs writes can block for a long time on real NICs: bound the wait."""
    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            host.write(path, value)
        except BaseException as err:  # handed to the caller's thread
            box["err"] = err

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise Busy(
            f"writing {value} to {path} has not returned after {timeout:g} s; the kernel may still finish it: "
            "check `vfioctl sriov show` (VFIOCTL_SRIOV_TIMEOUT raises the limit)"
        )
    if "err" in box:
        raise box["err"]


@dataclass
class SetNumVfs(SysfsWrite):
    """``sriov_numvfs``: create or remove VFs; *expect_vfs* are the addresses planned for them."""

    address: PciAddress
    numvfs: int
    previous: int
    expect_vfs: tuple[PciAddress, ...] = ()

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/sriov_numvfs"

    @property
    def value(self) -> str:
        return str(self.numvfs)


    def expectation(self) -> str:
        text = f"{self.address} has {self.numvfs} VFs"
        if self.expect_vfs:
            text += f" at {', '.join(str(v) for v in self.expect_vfs)}"
        return text

    def _set(self, x: Exec, n: int) -> None:
        _present(x, self.address, f"writing {self.path}")
        _bounded_write(x.host, self.path, str(n), sriov_timeout())

    def do(self, x: Exec) -> None:
        self._set(x, self.numvfs)

    def verify(self, x: Exec) -> None:
        def ok() -> bool:
            n, vfs, links = _numvfs_now(x, self.address)
            if n != self.numvfs or len(vfs) != self.numvfs or not links:
                return False
            return not self.expect_vfs or tuple(vfs) == self.expect_vfs

        def show() -> str:
            n, vfs, links = _numvfs_now(x, self.address)
            return (f"sriov_numvfs={n} with {len(vfs)} virtfn links ({', '.join(str(v) for v in vfs) or 'none'})"
                    + ("" if links else ", physfn links wrong"))

        x.wait(self.expectation(), ok, show)

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if not dev.exists():
            return
        cur = dev.sriov_numvfs or 0
        if cur == self.previous:
            return
        if cur and self.previous:
            self._set(x, 0)
        self._set(x, self.previous)


@dataclass
class SetAutoprobe(DeviceWrite):
    """``sriov_drivers_autoprobe``: whether host drivers probe new VFs."""

    address: PciAddress
    on: bool
    previous: bool | None

    @property
    def path(self) -> str:
        return f"{PCI_DEVICES}/{self.address}/sriov_drivers_autoprobe"

    @property
    def value(self) -> str:
        return "1" if self.on else "0"


    def expectation(self) -> str:
        return f"{self.address} sriov_drivers_autoprobe is {self.on}"

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: x.dev(self.address).sriov_autoprobe == self.on,
               lambda: f"sriov_drivers_autoprobe {x.dev(self.address).sriov_autoprobe}")

    def undo(self, x: Exec) -> None:
        dev = x.dev(self.address)
        if self.previous is not None and dev.exists() and dev.sriov_autoprobe != self.previous:
            x.host.write(self.path, "1" if self.previous else "0")


# ====================================================================== VF settings (netlink)
#: errnos with which a PF's driver refuses a VF setting it does not have or a value it does not
#: take (net/core/rtnetlink.c do_setvfinfo: EOPNOTSUPP without the ndo; the driver's own checks)
_REFUSALS = ("EOPNOTSUPP", "ENOTSUP", "EPROTONOSUPPORT", "EINVAL", "ERANGE")


def show_vf_value(field: str, value: object) -> str:
    """A VF setting's value as `ip link` would be told it."""
    if value is None:
        return "(not reported)"
    if field == "vlan" and isinstance(value, (list, tuple)):
        return f"vlan {value[0]} qos {value[1]} proto {value[2]}"
    if field == "tx_rate" and isinstance(value, (list, tuple)):
        return f"min_tx_rate {value[0]} max_tx_rate {value[1]}"
    if isinstance(value, bool):
        return f"{field} {'on' if value else 'off'}"
    return f"{field} {value}"


def vf_value_now(host: Host, ifname: str, vf: int, field: str) -> Any:
    """VF *vf*'s *field* as the kernel reports it now (None: not reported, or no such VF)."""
    raw = host.vf_info(ifname) or []
    if vf >= len(raw):
        return None
    return VfSettings.from_raw(vf, raw[vf]).get(field)


def _norm(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


@dataclass
class SetVfSetting(Step):
    """One VF setting on its PF (RTM_SETLINK, IFLA_VFINFO_LIST): MAC, VLAN, spoof check,
    trust, link state or rates; verified by reading IFLA_VFINFO_LIST back.  *previous*
    None: the value is read just before the write (VFs this plan creates)."""

    address: PciAddress
    ifname: str
    vf: int
    field: str
    want: Any
    previous: Any = None
    action = "netlink"

    @property
    def path(self) -> str:
        return f"netlink:{self.ifname}/vf{self.vf}/{self.field}"

    @property
    def value(self) -> str:
        return show_vf_value(self.field, self.want)

    def describe(self) -> str:
        return f"ip link set {self.ifname} vf {self.vf} {self.value}"

    def expectation(self) -> str:
        return f"{self.ifname} vf {self.vf} {self.value}"

    def _now(self, x: Exec) -> Any:
        return vf_value_now(x.host, self.ifname, self.vf, self.field)

    def _set(self, x: Exec, value: Any) -> None:
        try:
            x.host.set_vf(self.ifname, self.vf, self.field, value)
        except KernelError as err:
            code = err.fields.get("errno")
            if code in _REFUSALS:
                # ENOTSUP and EOPNOTSUPP are one number on Linux; the kernel's own word is EOPNOTSUPP
                why = ("EOPNOTSUPP: the driver has no such setting" if code in ("ENOTSUP", "EOPNOTSUPP")
                       else f"{code}: the driver does not take this value")
                raise InvalidInput(f"{self.address} ({self.ifname}): the PF's driver refuses VF {self.vf}'s "
                                   f"{self.field} ({show_vf_value(self.field, value)}): {why}",
                                   setting=self.field, errno=code) from err
            raise

    def do(self, x: Exec) -> None:
        _present(x, self.address, f"setting {self.path}")
        if self.previous is None:
            x.memo[id(self)] = self._now(x)
        self._set(x, self.want)

    def verify(self, x: Exec) -> None:
        x.wait(self.expectation(), lambda: _norm(self._now(x)) == _norm(self.want),
               lambda: show_vf_value(self.field, self._now(x)))

    def undo(self, x: Exec) -> None:
        prev = self.previous if self.previous is not None else x.memo.get(id(self))
        if prev is None or not x.dev(self.address).exists():
            return
        if _norm(self._now(x)) != _norm(prev):
            self._set(x, prev)
