"""The netlink door for VF settings (host/netlink.py), without a kernel: the request each
setting becomes, the IFLA_VFINFO_LIST reply read into plain values (every odd value "not
reported"), and each error -- the kernel's, the socket's, anything else pyroute2 raises --
one of our errors with its errno and a message, never a traceback.  pyroute2's IPRoute is
replaced by a fake that answers with what the kernel would send."""

from __future__ import annotations

import errno

import pyroute2
import pytest
from pyroute2.netlink.exceptions import NetlinkError

from vfioctl.base.errors import Busy, KernelError, NotFound, VfioctlError, VfioctlPermissionError
from vfioctl.host import netlink
from vfioctl.host.netlink import read_vfinfo, set_vf, vf_request


def test_vf_request_shapes():
    assert vf_request(1, "vlan", (100, 2, "802.1Q")) == {"vf": 1, "vlan": {"vlan": 100, "qos": 2}}
    assert vf_request(1, "vlan", (100, 0, "802.1ad")) == {"vf": 1, "vlan": [{"vlan": 100, "qos": 0, "proto": 0x88A8}]}
    assert vf_request(0, "tx_rate", (0, 300)) == {"vf": 0, "rate": {"min_tx_rate": 0, "max_tx_rate": 300}}
    assert vf_request(0, "link_state", "disable") == {"vf": 0, "link_state": 2}


@pytest.mark.parametrize("field, value, sent", [
    ("mac", "02:00:00:00:00:01", {"vf": 3, "mac": "02:00:00:00:00:01"}),
    ("spoofchk", False, {"vf": 3, "spoofchk": 0}),
    ("trust", True, {"vf": 3, "trust": 1}),
    ("link_state", "auto", {"vf": 3, "link_state": 0}),
    ("link_state", "enable", {"vf": 3, "link_state": 1}),
    ("vlan", (0, 0, "802.1Q"), {"vf": 3, "vlan": {"vlan": 0, "qos": 0}}),
])
def test_vf_request_other_fields(field, value, sent):
    assert vf_request(3, field, value) == sent


def test_vf_request_of_no_field_is_an_internal_error():
    with pytest.raises(ValueError, match="internal error: no VF field 'colour'"):
        vf_request(0, "colour", "red")


# ------------------------------------------------------------------ a fake pyroute2
class Nla(dict):
    """A netlink attribute: its fields by key, its nested attributes by name (a list each)."""

    def __init__(self, nested: dict | None = None, **fields) -> None:
        super().__init__(fields)
        self.nested = nested or {}

    def get_attr(self, name: str):
        got = self.nested.get(name)
        return got[0] if isinstance(got, list) else got

    def get_attrs(self, name: str) -> list:
        got = self.nested.get(name)
        return got if isinstance(got, list) else [] if got is None else [got]


def vf_info(vf: int, *, mac="02:00:00:00:00:01", vlan=(0, 0), protos=None, rate=(0, 0), link=0, spoof=1,
            trust=0) -> Nla:
    a: dict = {}
    if mac is not None:
        a["IFLA_VF_MAC"] = Nla(vf=vf, mac=mac)
    if vlan is not None:
        a["IFLA_VF_VLAN"] = Nla(vf=vf, vlan=vlan[0], qos=vlan[1])
    if protos is not None:
        a["IFLA_VF_VLAN_LIST"] = Nla({"IFLA_VF_VLAN_INFO": [Nla(vf=vf, vlan=vlan[0], qos=vlan[1], proto=p)
                                                            for p in protos]})
    if rate is not None:
        a["IFLA_VF_RATE"] = Nla(vf=vf, min_tx_rate=rate[0], max_tx_rate=rate[1])
    if link is not None:
        a["IFLA_VF_LINK_STATE"] = Nla(vf=vf, link_state=link)
    if spoof is not None:
        a["IFLA_VF_SPOOFCHK"] = Nla(vf=vf, spoofchk=spoof)
    if trust is not None:
        a["IFLA_VF_TRUST"] = Nla(vf=vf, trust=trust)
    return Nla(a)


class FakeIPRoute:
    """IPRoute as read_vfinfo and set_vf use it: link_lookup, link("get"/"set"), a context."""

    reply: list = []
    index: list = [7]
    fail: BaseException | None = None
    calls: list = []

    def __enter__(self):
        if isinstance(self.fail, OSError):
            raise self.fail  # the socket itself (no netlink in a sandbox)
        return self

    def __exit__(self, *exc) -> None:
        return None

    def link_lookup(self, ifname: str) -> list:
        return list(self.index)

    def link(self, command: str, **kw):
        type(self).calls.append((command, kw))
        if self.fail is not None:
            raise self.fail
        return self.reply


@pytest.fixture
def ipr(monkeypatch):
    class Ipr(FakeIPRoute):
        reply: list = []
        index: list = [7]
        fail = None
        calls: list = []

    monkeypatch.setattr(pyroute2, "IPRoute", Ipr)
    return Ipr


def reply(*infos: Nla) -> list:
    return [Nla({"IFLA_VFINFO_LIST": Nla({"IFLA_VF_INFO": list(infos)})})]


# ------------------------------------------------------------------ reading
def test_the_vf_list_read_into_plain_values(ipr):
    ipr.reply = reply(
        vf_info(0, vlan=(100, 3), protos=[0x88A8], rate=(10, 500), link=2, spoof=0, trust=1),
        vf_info(1, mac="00:00:00:00:00:00"),
    )
    assert read_vfinfo("enp1s0") == [
        {"vf": 0, "mac": "02:00:00:00:00:01", "vlan": [100, 3, "802.1ad"], "spoofchk": False, "trust": True,
         "link_state": "disable", "tx_rate": [10, 500]},
        {"vf": 1, "mac": "00:00:00:00:00:00", "vlan": [0, 0, "802.1Q"], "spoofchk": True, "trust": False,
         "link_state": "auto", "tx_rate": [0, 0]},
    ]
    ((command, kw),) = ipr.calls
    assert command == "get" and kw == {"index": 7, "ext_mask": 1}  # RTEXT_FILTER_VF


def test_what_the_driver_does_not_report_is_none(ipr):
    # the kernel sends -1 (as the u32 it is) for a setting the driver lacks (rtnl_fill_vfinfo)
    ipr.reply = reply(
        vf_info(0, mac=None, vlan=None, rate=None, link=None, spoof=0xFFFFFFFF, trust=0xFFFFFFFF),
        vf_info(1, link=7, protos=[0x9100], spoof=None, trust=None),
    )
    first, second = read_vfinfo("enp1s0")
    assert first == {"vf": 0, "mac": None, "vlan": None, "spoofchk": None, "trust": None, "link_state": None,
                     "tx_rate": None}
    # an unknown link state is not reported; an unknown VLAN protocol is shown by its number
    assert second["link_state"] is None and second["vlan"] == [0, 0, "0x9100"]
    assert second["spoofchk"] is None and second["trust"] is None


@pytest.mark.parametrize("answer", [[], [Nla()]])
def test_no_vf_list_is_none(ipr, answer):
    ipr.reply = answer
    assert read_vfinfo("enp1s0") is None


def test_an_empty_vf_list_is_an_empty_list(ipr):
    ipr.reply = reply()
    assert read_vfinfo("enp1s0") == []


@pytest.mark.parametrize("value, flag", [(0, False), (1, True), (2, None), (0xFFFFFFFF, None), (None, None),
                                         ("1", None)])
def test_a_flag_is_0_or_1_or_not_reported(value, flag):
    assert netlink._flag(value) is flag


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("fail, kind, words", [
    # Python names errno 95 ENOTSUP (errno.errorcode): SetVfSetting takes both names
    (NetlinkError(errno.EOPNOTSUPP), KernelError, f"({errno.errorcode[errno.EOPNOTSUPP]})"),
    (NetlinkError(errno.EPERM, "Operation not permitted"), VfioctlPermissionError, "(EPERM)"),
    (NetlinkError(errno.EBUSY), Busy, "(EBUSY)"),
    (NetlinkError(0, "no code"), KernelError, "NetlinkError: (0, 'no code')"),
    (OSError(errno.EACCES, "Permission denied"), VfioctlPermissionError, "(EACCES)"),
    (OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol"), KernelError, "(EAFNOSUPPORT)"),
])
def test_each_error_of_a_read_is_ours_with_its_errno(ipr, fail, kind, words):
    ipr.fail = fail
    with pytest.raises(kind) as e:
        read_vfinfo("enp1s0")
    m = e.value.message
    assert words in m and "read the VF settings of netlink:enp1s0" in m and "\n" not in m
    assert isinstance(e.value.__cause__, type(fail))


def test_an_interface_that_is_gone_is_enodev(ipr):
    ipr.index = []
    with pytest.raises(KernelError, match=r"cannot find interface enp9s0: No such device \(ENODEV\)"):
        read_vfinfo("enp9s0")
    with pytest.raises(KernelError, match="ENODEV"):
        set_vf("enp9s0", 0, "trust", True)
    assert ipr.calls == []


def test_set_sends_one_vf_request(ipr):
    set_vf("enp1s0", 2, "vlan", (10, 1, "802.1ad"))
    assert ipr.calls == [("set", {"index": 7, "vf": {"vf": 2, "vlan": [{"vlan": 10, "qos": 1, "proto": 0x88A8}]}})]


@pytest.mark.parametrize("fail, words", [
    (NetlinkError(errno.EINVAL, "Invalid argument"), "(EINVAL)"),
    (NetlinkError(errno.EOPNOTSUPP), f"({errno.errorcode[errno.EOPNOTSUPP]})"),
    (OSError(errno.ENOBUFS, "No buffer space available"), "(ENOBUFS)"),
])
def test_the_kernels_refusal_of_a_write_keeps_its_errno(ipr, fail, words):
    ipr.fail = fail
    with pytest.raises(VfioctlError) as e:
        set_vf("enp1s0", 1, "trust", True)
    assert words in e.value.message and "cannot set netlink:enp1s0 vf 1 trust" in e.value.message
    assert e.value.fields.get("errno") == words.strip("()")


def test_oserror_mapping_of_what_is_not_an_oserror():
    err = netlink._oserror(RuntimeError("socket closed"), "set", "netlink:x")
    assert isinstance(err, KernelError) and err.message == "cannot set netlink:x: RuntimeError: socket closed"
    assert netlink._oserror(RuntimeError("a\n b"), "set", "x").message == "cannot set x: RuntimeError: a b"
    assert netlink._oserror(RuntimeError(), "set", "x").message == "cannot set x: RuntimeError: no message"
    gone = netlink._oserror(OSError(errno.ENOENT, "No such file or directory"), "read", "netlink:x")
    assert isinstance(gone, NotFound)


def test_what_is_not_an_oserror_keeps_its_name_and_text_in_the_message():
    err = netlink._oserror(RuntimeError("socket closed"), "set", "netlink:x")
    assert "RuntimeError: socket closed" in err.message
