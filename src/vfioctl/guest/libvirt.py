"""libvirt ``<hostdev>`` and ``<interface type='hostdev'>`` XML for hidden devices.  Pure.

The element shapes follow libvirt's domain format
(https://libvirt.org/formatdomain.html#host-device-assignment) and are checked
against its RelaxNG schema (domain.rng) by the unit tests.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from vfioctl.base.errors import InvalidInput
from vfioctl.base.text import parse_int
from vfioctl.guest import Assignment, layout, with_rom
from vfioctl.pci.address import PciAddress

__all__ = ["hostdev_element", "interface_element", "hostdev_xml", "interface_xml", "to_text", "guest_bus_number"]

_ATTR = re.compile(r'(\s[\w:-]+)="([^"\']*)"')
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")


def guest_bus_number(bus: str | None) -> int | None:
    """libvirt addresses guest buses by controller index (``1``, ``0x01``), not by QEMU id."""
    if bus is None:
        return None
    n = parse_int(bus, 0)
    if n is None:
        raise InvalidInput(
            f"--bus {bus!r}: libvirt needs the guest bus number (a pcie-root-port controller's index, e.g. 1 or 0x01)"
        )
    if not 0 <= n <= 0xFF:
        raise InvalidInput(f"--bus {bus!r}: a PCI bus number is 0-255")
    return n


def _source(parent: ET.Element, addr: PciAddress, *, typed: bool) -> None:
    src = ET.SubElement(parent, "source")
    attrs = {"type": "pci"} if typed else {}
    attrs.update(
        domain=f"0x{addr.domain:04x}", bus=f"0x{addr.bus:02x}", slot=f"0x{addr.slot:02x}", function=f"0x{addr.function:x}"
    )
    ET.SubElement(src, "address", attrs)


def _guest_address(parent: ET.Element, a: Assignment) -> None:
    if a.guest_slot is None and a.bus is None:
        return
    bus = guest_bus_number(a.bus) or 0
    attrs = {"type": "pci", "domain": "0x0000", "bus": f"0x{bus:02x}",
             "slot": f"0x{a.guest_slot or 0:02x}", "function": f"0x{a.guest_function or 0:x}"}
    if a.multifunction:
        attrs["multifunction"] = "on"
    ET.SubElement(parent, "address", attrs)


def hostdev_element(a: Assignment, *, managed: bool = False) -> ET.Element:
    """``<hostdev mode='subsystem' type='pci' managed='no'>`` for one function."""
    el = ET.Element("hostdev", {"mode": "subsystem", "type": "pci", "managed": "yes" if managed else "no"})
    ET.SubElement(el, "driver", {"name": "vfio"})
    _source(el, a.host, typed=False)
    _rom(el, a)
    ET.SubElement(el, "alias", {"name": "ua-" + a.id})
    _guest_address(el, a)
    return el


def _rom(parent: ET.Element, a: Assignment) -> None:
    # domain.rng: <rom bar='on|off' file='...'/> sits before <alias>
    if a.rom_file:
        ET.SubElement(parent, "rom", {"file": a.rom_file})
    elif a.rom_bar is False:
        ET.SubElement(parent, "rom", {"bar": "off"})


def interface_element(
    a: Assignment, *, managed: bool = False, mac: str | None = None, vlan: int | None = None
) -> ET.Element:
    """``<interface type='hostdev'>`` for an SR-IOV VF: libvirt sets its MAC and VLAN through the PF."""
    el = ET.Element("interface", {"type": "hostdev", "managed": "yes" if managed else "no"})
    if mac is not None:
        if not _MAC.fullmatch(mac):
            raise InvalidInput(f"--mac {mac!r} is not a MAC address (expected six hex pairs, e.g. 52:54:00:12:34:56)")
        if int(mac[:2], 16) & 1:
            raise InvalidInput(f"--mac {mac}: a multicast address (lowest bit of the first octet set) cannot be a NIC's")
        ET.SubElement(el, "mac", {"address": mac.lower()})
    ET.SubElement(el, "driver", {"name": "vfio"})
    _source(el, a.host, typed=True)
    if vlan is not None:
        if not 0 <= vlan <= 4095:
            raise InvalidInput(f"--vlan {vlan}: a VLAN tag is 0-4095")
        v = ET.SubElement(el, "vlan")
        ET.SubElement(v, "tag", {"id": str(vlan)})
    ET.SubElement(el, "alias", {"name": "ua-" + a.id})
    _guest_address(el, a)
    return el


def to_text(elements: list[ET.Element]) -> str:
    """Pretty-printed elements, one after another, with single quotes as libvirt writes them."""
    parts = []
    for el in elements:
        ET.indent(el, space="  ")
        text = ET.tostring(el, encoding="unicode", short_empty_elements=True).replace(" />", "/>")
        # our attribute values never hold quotes (ET escapes '"' anyway): libvirt's own style
        parts.append(_ATTR.sub(r"\1='\2'", text))
    return "\n".join(parts) + "\n"


def hostdev_xml(
    addresses: list[PciAddress], *, managed: bool = False, bus: str | None = None, slot: int | None = None,
    groups: dict | None = None, rom_file: str | None = None, no_rom: bool = False,
) -> str:
    """``<hostdev>`` elements for *addresses*, companion functions paired in one guest slot."""
    assignments = with_rom(layout(addresses, bus=bus, slot=slot, groups=groups), rom_file, no_rom)
    if bus is not None:
        guest_bus_number(bus)
    return to_text([hostdev_element(a, managed=managed) for a in assignments])


def interface_xml(
    addresses: list[PciAddress],
    *,
    managed: bool = False,
    mac: str | None = None,
    vlan: int | None = None,
    bus: str | None = None,
    slot: int | None = None,
    groups: dict | None = None,
) -> str:
    """``<interface type='hostdev'>`` elements, one per VF (one --mac is for one VF only)."""
    assignments = layout(addresses, bus=bus, slot=slot, groups=groups)
    if mac is not None and len(assignments) > 1:
        raise InvalidInput("--mac names one VF's address; give one device with --mac, or leave the MACs to libvirt")
    return to_text([interface_element(a, managed=managed, mac=mac, vlan=vlan) for a in assignments])
