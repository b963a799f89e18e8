"""The PCI function users hold: found by address, answering from the host as it is now (a fresh
reading after every change), filtered by class, ID and driver; the owner of a sysfs path."""

from __future__ import annotations

import pytest

from vfioctl.base.errors import DeviceNotFound, DeviceVanished, InvalidAddress
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice, devices, filter_devices, loaded_drivers, owner_of

A = PciAddress.parse


def test_from_address_finds_the_function_or_says_it_is_not_there(fake):
    host = fake.host()
    d = PciDevice.from_address(host, "00:07.0")
    assert d.address == A("00:07.0") and d.sysfs == "/sys/bus/pci/devices/0000:00:07.0" and repr(d) == "PciDevice(0000:00:07.0)"
    assert (d.vendor_device, d.driver, d.iommu_group, d.class_code) == ("8086:10d3", "e1000e", 7, 0x020000)
    with pytest.raises(DeviceNotFound):
        PciDevice.from_address(host, "00:0c.0")
    with pytest.raises(InvalidAddress):
        PciDevice.from_address(host, "../../etc")


def test_answers_follow_the_host_after_a_change(fake, host):
    d = PciDevice(host, A("00:07.0"))
    assert d.driver == "e1000e"
    host.write("/sys/bus/pci/drivers/e1000e/unbind", "0000:00:07.0")  # through the Host: a new reading
    assert d.driver is None


def test_check_raises_once_the_device_is_gone(fake):
    d = PciDevice(fake.host(), A("00:0c.0"))
    assert not d.exists()
    with pytest.raises(DeviceVanished):
        d.check("hiding it")
    PciDevice(fake.host(), A("00:07.0")).check("hiding it")


def test_equality_order_and_hash(fake):
    h = fake.host()
    a, b = PciDevice(h, A("00:07.0")), PciDevice(h, A("00:02.0"))
    assert a == PciDevice(h, A("0000:00:07.0")) and a != PciDevice(fake.host(), A("00:07.0"))  # another host
    assert sorted([a, b]) == [b, a] and len({a, PciDevice(h, A("00:07.0"))}) == 1


def test_every_device_once_in_address_order(fake):
    got = [str(d.address) for d in devices(fake.host())]
    assert got == sorted(got) and len(got) == len(set(got)) and "0000:01:02.0" in got
    assert {"e1000e", "e1000", "nvme"} <= loaded_drivers(fake.host())


def test_filters(fake):
    devs = devices(fake.host())

    def f(**kw):
        return [d.address.short for d in filter_devices(devs, **kw)]

    assert f(class_prefix="0108") == ["00:04.0"]
    assert f(class_prefix="0x0108") == f(class_prefix="01080") == ["00:04.0"]
    assert f(vendor_device="8086:10D3") == ["00:02.0", "00:07.0"]
    assert f(vendor_device="1b36:*") == ["00:04.0", "00:05.0"]
    assert f(vendor_device="*:100e", driver="e1000") == ["01:01.0", "01:02.0"]
    assert f(driver="none") == [d.address.short for d in devs if d.driver is None]
    assert f(class_prefix="zz") == [] and f(vendor_device="[!8]*:*") != []


def test_slot_functions(fake):
    assert PciDevice(fake.host(), A("00:1f.0")).slot_functions() == [A("00:1f.2"), A("00:1f.3")]
    assert PciDevice(fake.host(), A("00:07.0")).slot_functions() == []


@pytest.mark.parametrize("path,owner", [
    ("/sys/devices/pci0000:00/0000:00:02.0/net/eth0", "0000:00:02.0"),
    ("/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio3/net/eth1", "0000:01:00.0"),  # the nearest
    ("/sys/devices/virtual/net/lo", None),
    ("/sys/devices/pci0000:00/00:02.0/net/eth0", None),  # only the kernel's spelling names a function
])
def test_owner_of(path, owner):
    assert owner_of(path) == owner
