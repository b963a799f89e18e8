"""Turn what the user typed (DEV) into PCI devices.

DEV may be a PCI address (``03:00.0`` or ``0000:03:00.0``), ``vendor:device``
(``8086:10d3``, every matching function), a network interface name (``eth0``)
or ``group:N``.  Input is validated before any path is built from it.
"""

from __future__ import annotations

import re

from vfioctl.base.errors import InvalidAddress, InvalidInput, NotFound
from vfioctl.base.names import parse_id
from vfioctl.host.core import Host
from vfioctl.iommu.groups import IommuGroup
from vfioctl.pci.address import PciAddress
from vfioctl.pci.device import PciDevice, devices, owner_of

_GROUP = re.compile(r"group:([0-9]{1,6})")
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}")


def classify(spec: str) -> tuple[str, object]:
    """Pure: ('address', PciAddress) | ('id', (v, d)) | ('group', n) | ('iface', name) |
    ('match', Match) for ``id:``, ``class:`` and ``pf:ADDR/vfs:RANGE`` selectors."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidAddress(spec if isinstance(spec, str) else "", "empty device name")
    s = spec.strip()
    m = _GROUP.fullmatch(s)
    if m:
        return "group", int(m[1])
    if s.startswith("group:"):
        raise InvalidInput(f"invalid group {spec[:40]!r}: expected group:N with N a number, e.g. group:12")
    # lazy: listing parses selectors without the config-match machinery (start-up)
    from vfioctl.ops.match import from_spec

    sel = from_spec(s)
    if sel is not None:
        return "match", sel
    pair = parse_id(s)
    if pair is not None:
        return "id", pair
    if "." in s and ":" in s and "/" not in s:
        return "address", PciAddress.parse(s)  # raises InvalidAddress with the reason
    if ":" in s or "/" in s or not _IFNAME.fullmatch(s) or s in (".", ".."):
        raise InvalidAddress(s, "not a PCI address, vendor:device ID, interface name or group:N")
    return "iface", s


def resolve(host: Host, specs: list[str], *, group_bridges: bool = True) -> list[PciDevice]:
    """Every device the specs name, without duplicates, in the order given.

    ``group_bridges=False`` leaves a ``group:N``'s bridges out (they are never assigned)."""
    out: list[PciDevice] = []
    seen: set = set()

    def add(dev: PciDevice) -> None:
        if dev.address not in seen:
            seen.add(dev.address)
            out.append(dev)

    classified = [(spec, classify(spec)) for spec in specs]  # validate all first
    for spec, (kind, value) in classified:
        if kind == "address":
            add(PciDevice.from_address(host, value))
        elif kind == "id":
            vid, did = value if isinstance(value, tuple) else ("", "")
            found = [x for x in devices(host) if x.vendor_id == vid and x.device_id == did]
            if not found:
                raise NotFound(f"no PCI device with ID {vid}:{did} on this host; `vfioctl list` shows the IDs present")
            for x in found:
                add(x)
        elif kind == "group":
            for x in IommuGroup.from_number(host, value).devices():
                if group_bridges or not x.is_bridge:
                    add(x)
        elif kind == "match":
            # lazy: ops.state pulls in host-use and journal readers (~10 ms at start-up) that listing never needs
            from vfioctl.ops.state import read_state

            st = read_state(host, None, None, in_use=False)
            matched = [st.devices[a] for a in sorted(st.devices) if value.matches(st, st.devices[a])]  # type: ignore[attr-defined]
            if not matched:
                raise NotFound(f"nothing on this host matches {spec!r} ({value.describe()}); `vfioctl list` shows "  # type: ignore[attr-defined]
                               "what is there")
            for ds in matched:
                add(PciDevice(host, ds.address))
        else:
            add(device_of_interface(host, value))  # type: ignore[arg-type]
    return out


def device_of_interface(host: Host, name: str) -> PciDevice:
    base = f"/sys/class/net/{name}"
    if not host.exists(base):
        raise NotFound(f"no network interface {name!r} on this host (and it is not a PCI address; try 0000:BB:SS.F)")
    # the nearest PCI function above the netdev owns it (virtio NICs sit under virtioN)
    real = host.realpath(base)
    owner = owner_of(real)
    if owner is None:
        raise NotFound(f"network interface {name!r} is not a PCI device (it lives at {real})")
    return PciDevice.from_address(host, owner)
