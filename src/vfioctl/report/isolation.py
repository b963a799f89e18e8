"""What ``groups --why`` and ``groups --predict`` show: explanations as text, predicted
groups in the ``vfioctl.groups/1`` shape."""

from __future__ import annotations

from vfioctl.iommu.explain import GroupWhy, Hop
from vfioctl.iommu.predict import _addrs
from vfioctl.iommu.roles import blocks_viability, roles
from vfioctl.pci.address import PciAddress
from vfioctl.pci.topology import Topology


def render_why(why: GroupWhy) -> str:
    """The text form of a :class:`GroupWhy` (pure)."""
    name = f"group {why.group}" if why.group is not None else "predicted group"
    lines = [f"{name}: {_addrs(why.members)}"]
    if why.isolated:
        lines.append("  isolated: a group of its own")
    else:
        lines.append(f"  why: {why.cause}")
        for c in why.causes:
            at = f" at {c.at}" if c.at else ""
            miss = f" (missing: {' '.join(c.missing)})" if c.missing else ""
            lines.append(f"    - {c.kind}{at}{miss}: {c.detail} [{_addrs(c.members)}]")
    for p in why.paths:
        hops = " -> ".join(_hop_text(h) for h in p.hops)
        lines.append(f"  path of {p.member}: {hops} -> {p.root}")
        if p.lost_at:
            lines.append(f"    isolation lost at {p.lost_at} ({p.cause})")
    lines.append(f"  prediction from config space: {why.prediction}")
    if why.advice:
        lines.append("  what you can do:")
        lines.extend(f"    - {a}" for a in why.advice)
    for w in why.warnings:
        lines.append(f"  warning: {w}")
    return "\n".join(lines)


def _hop_text(h: Hop) -> str:
    if h.acs == "enabled":
        acs = "ACS " + " ".join(h.enabled or ())
    elif h.acs == "disabled":
        acs = "ACS off: " + " ".join(h.missing)
    elif h.acs == "absent":
        acs = "no ACS"
    elif h.acs == "quirk":
        acs = "ACS by quirk" if h.isolates else "not isolated (quirk)"
    elif h.acs == "unknown":
        acs = "ACS unknown"
    else:
        acs = ""
    return f"{h.address} ({h.kind}{', ' + acs if acs else ''})"


def group_records(topology: Topology, groups: dict[int, list[PciAddress]] | dict[int, tuple[PciAddress, ...]],
                  ids: object = None) -> list[dict]:
    """Groups in the ``vfioctl.groups/1`` GROUP shape (docs/json-schema.md), for predicted
    groups: roles as ``vfioctl.iommu.groups.IommuGroup.members`` gives them (bridges; per slot the
    lowest other function is the endpoint, the rest its companions), viability by the
    kernel's rule, ``vfio_node`` null (a prediction has no device node)."""
    out = []
    for g, members in sorted(groups.items()):
        fs = [topology.functions[a] for a in sorted(members) if a in topology.functions]
        role_of = roles([(f.address, f.is_bridge) for f in fs])
        recs = []
        blockers = []
        for f in fs:
            role, comp = role_of[f.address]
            if blocks_viability(f.is_bridge, f.driver):
                blockers.append(str(f.address))
            v, d = f.ids.split(":")
            recs.append({
                "address": str(f.address), "role": role, "companion_of": str(comp) if comp else None,
                "driver": f.driver, "class": f"{f.class_code:06x}" if f.class_code is not None else None,
                "vendor_id": v, "device_id": d,
                "vendor_name": ids.vendor(v) if ids else None,  # type: ignore[attr-defined]
                "device_name": ids.device(v, d) if ids else None,  # type: ignore[attr-defined]
            })
        out.append({"group": g, "viable": not blockers, "blockers": blockers, "vfio_node": None, "members": recs})
    return out
