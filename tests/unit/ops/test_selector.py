"""What the user typed (DEV) turned into PCI devices: classified without touching the host, then
resolved on the fake host in the order given, once each; hostile text refused before any path."""

from __future__ import annotations

import pytest

from vfioctl.base.errors import InvalidAddress, InvalidInput, NotFound
from vfioctl.ops.selector import classify, device_of_interface, resolve
from vfioctl.pci.address import PciAddress

A = PciAddress.parse


@pytest.mark.parametrize("spec,kind,value", [
    ("03:00.0", "address", A("03:00.0")),
    (" 0000:03:00.0 ", "address", A("03:00.0")),
    ("8086:10d3", "id", ("8086", "10d3")),
    ("group:12", "group", 12),
    ("eth0", "iface", "eth0"),
    ("enp3s0f1", "iface", "enp3s0f1"),
    ("br-lan.10", "iface", "br-lan.10"),
])
def test_classify(spec, kind, value):
    assert classify(spec) == (kind, value)


@pytest.mark.parametrize("spec", ["id:8086:10d3", "class:nvme", "pf:0000:00:04.0/vfs:0-1"])
def test_selectors_are_matches(spec):
    kind, sel = classify(spec)
    assert kind == "match" and sel.describe()


@pytest.mark.parametrize("spec,err", [
    ("", InvalidAddress), ("   ", InvalidAddress), (None, InvalidAddress), (3, InvalidAddress),
    ("group:", InvalidInput), ("group:x", InvalidInput), ("group:1234567", InvalidInput), ("group:-1", InvalidInput),
    ("03:20.0", InvalidAddress), ("../../etc", InvalidAddress), ("a/b", InvalidAddress), ("..", InvalidAddress),
    (".", InvalidAddress), ("x" * 16, InvalidAddress), ("eth\n0", InvalidAddress), ("eth 0", InvalidAddress),
    ("-eth0", InvalidAddress), ("ethé", InvalidAddress),
])
def test_hostile_or_malformed_specs_are_refused_before_any_path(spec, err):
    with pytest.raises(err) as e:
        classify(spec)
    assert "\n" not in str(e.value)


def test_resolve_keeps_the_order_given_and_each_device_once(fake):
    host = fake.host()
    got = [str(d.address) for d in resolve(host, ["00:07.0", "8086:10d3", "eth1", "0000:00:07.0"])]
    assert got == ["0000:00:07.0", "0000:00:02.0"]


def test_resolve_a_group_with_and_without_its_bridges(fake):
    host = fake.host()
    assert [str(d.address) for d in resolve(host, ["group:5"])] == ["0000:00:05.0", "0000:01:01.0", "0000:01:02.0"]
    assert [str(d.address) for d in resolve(host, ["group:5"], group_bridges=False)] == ["0000:01:01.0",
                                                                                        "0000:01:02.0"]


def test_resolve_a_selector_through_the_state(fake):
    got = [str(d.address) for d in resolve(fake.host(), ["class:nvme"])]
    assert got == ["0000:00:04.0"]


@pytest.mark.parametrize("spec,words", [
    ("dead:beef", "no PCI device with ID dead:beef"),
    ("eth9", "no network interface 'eth9'"),
    ("id:dead:beef", "nothing on this host matches"),
    ("group:99", "99"),
])
def test_what_is_not_there_is_not_found(fake, spec, words):
    with pytest.raises(NotFound) as err:
        resolve(fake.host(), [spec])
    assert words in str(err.value)


def test_every_spec_is_validated_before_anything_is_read(fake):
    with pytest.raises(InvalidAddress):
        resolve(fake.host(), ["eth9", "../x"])  # eth9 would be NotFound: the bad text is seen first


def test_an_interface_that_is_no_pci_device(fake):
    r = fake.root
    (r / "sys/devices/virtual/net/lo").mkdir(parents=True)
    (r / "sys/class/net/lo").symlink_to("../../devices/virtual/net/lo")
    with pytest.raises(NotFound) as err:
        device_of_interface(fake.host(), "lo")
    assert "is not a PCI device" in str(err.value)
