"""A fake SR-IOV NIC for the VF settings tests (issue 26): a PF on the standard fake host
whose driver's VF table netlink shows is simulated by a Host.netlink_hook (no pyroute2, no
kernel).  The ``nic`` fixture (tests/unit/conftest.py) sets it up."""

from __future__ import annotations

import copy
import errno
import json
import os

from fakehost import FakeDev

from vfioctl.base.errors import from_oserror
from vfioctl.host import faults
from vfioctl.ops.config import parse_config
from vfioctl.ops.journal import Journal
from vfioctl.ops.state import read_state
from vfioctl.pci.address import PciAddress

PF = "0000:00:08.0"
IF = "enp0s8"
A = PciAddress.parse(PF)
DEFAULT = {"mac": "00:00:00:00:00:00", "vlan": [0, 0, "802.1Q"], "spoofchk": True, "trust": False,
           "link_state": "auto", "tx_rate": [0, 0]}


class FakeNic:
    """The PF driver's VF table, as netlink shows it; link_state is a setting it lacks (igb's)."""

    def __init__(self, fake) -> None:
        self.fake = fake
        self.refuse = {"link_state"}

    def vfs(self) -> list[dict]:
        d = self.fake._devdir(PF)
        n = int((d / "sriov_numvfs").read_text())
        store = d / "vfinfo.json"
        table = json.loads(store.read_text()) if store.exists() else []
        table = (table + [copy.deepcopy(DEFAULT) for _ in range(n)])[:n]
        return table

    def read(self, ifname: str):
        assert ifname == IF
        return self.vfs()

    def write(self, ifname: str, vf: int, field: str, value) -> None:
        if field in self.refuse:
            raise from_oserror(OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP)), "set", f"netlink:{ifname}")
        table = self.vfs()
        table[vf][field] = list(value) if isinstance(value, tuple) else value
        (self.fake._devdir(PF) / "vfinfo.json").write_text(json.dumps(table))

    def put(self, table: list[dict]) -> None:
        """Replace the driver's VF table (what the next read shows)."""
        (self.fake._devdir(PF) / "vfinfo.json").write_text(json.dumps(table))


def make_nic(fake, host, monkeypatch) -> FakeNic:
    """An igb PF at 00:08.0 (enp0s8, 1000 Mbit/s, up) with 2 VFs, the fake host's machine-id,
    the host's write log cleared and the fault counter reset."""
    fake.driver("igb")
    fake.add(FakeDev(PF, "8086", "10c9", group=8, driver="igb", net=[IF], totalvfs=7, vf_device="10ca",
                     matches=["igb"]))
    nd = fake._devdir(PF) / "net" / IF
    (nd / "speed").write_text("1000\n")
    (nd / "operstate").write_text("up\n")
    (fake.root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (fake._devdir(PF) / "sriov_drivers_autoprobe").write_text("0\n")
    host.write(f"/sys/bus/pci/devices/{PF}/sriov_numvfs", "2")
    n = FakeNic(fake)
    host.netlink_hook = n
    host.writes.clear()
    monkeypatch.setattr(faults, "_WRITES_TRIED", 0)
    return n


def state(host):
    return read_state(host, Journal(host), [A], vf_net=[A], machine_id=True)


def vf_config(extra: str = ""):
    """A config that sets VF 0's MAC and VLAN and VF 1's trust and spoof check (+ *extra* on VF 1)."""
    return parse_config(f'[[sriov]]\npf = "{PF}"\nnumvfs = 2\n[[sriov.vf]]\nindex = 0\nmac = "02:00:00:26:00:01"\n'
                        f'vlan = 100\n[[sriov.vf]]\nindex = 1\ntrust = true\nspoofchk = false\n{extra}')
