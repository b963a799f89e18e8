"""Steps that change an SR-IOV PF: its VF count (through 0, bounded) and VF autoprobe."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from vfioctl.base.errors import (
    Busy,
)
from vfioctl.host.core import Host
from vfioctl.host.env import sriov_timeout
from vfioctl.ops.steps.base import (
    DeviceWrite,
    Exec,
    SysfsWrite,
    _present,
)
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PCI_DEVICES


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
    note: str = ""

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
    note: str = ""

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
