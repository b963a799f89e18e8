"""Every view of a PCI function vfioctl derives, as plain JSON data, on the trees the tests use.

:func:`views` reads one host through the public readers (the planners' state, the topology the
grouping replay sees, the reset nodes, the topology picture, assess's facts, and the list, groups
and show records) and returns them as JSON-ready data.  The golden files under
``golden/pci_views/`` were written by this module running against the readers that existed before
the one record (``python tests/unit/pciviews.py OUT``, commit 5a4d5c7); the record's tests compare
what the readers return now with them.  Only APIs both versions have are used here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tarfile
from pathlib import Path

from vfioctl.base.record import is_record, record_fields
from vfioctl.host.core import Host
from vfioctl.pci.address import PciAddress

HERE = Path(__file__).resolve().parent
SNAPS = HERE.parent / "snapshots"
GOLDEN = HERE / "golden" / "pci_views"


def _plain(value: object) -> object:
    """JSON-ready: dataclasses and frozen records (vfioctl.base.record) as dicts, addresses as
    text, tuples as lists, sorted dict keys."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if is_record(value):
        return {name: _plain(getattr(value, name)) for name in record_fields(value)}
    if isinstance(value, PciAddress):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    return value


def _topology_function(f) -> dict:
    """What the grouping replay, the explanations and the topology picture read of a function."""
    return {
        "address": str(f.address), "parent": str(f.parent) if f.parent else None, "root_bus": f.root_bus,
        "config": f.config.to_dict(), "vendor_id": f.vendor_id, "device_id": f.device_id,
        "subsystem_vendor_id": f.subsystem_vendor_id, "subsystem_device_id": f.subsystem_device_id,
        "class_code": f.class_code, "physfn": str(f.physfn) if f.physfn else None,
        "iommu_group": f.iommu_group, "driver": f.driver, "header_type": f.header_type,
        "is_bridge": f.is_bridge, "is_vf": f.is_vf, "ids": f.ids,
    }


def _quiet(fn):
    from vfioctl.base.errors import VfioctlError

    try:
        return fn()
    except VfioctlError as err:
        return {"error": type(err).__name__, "message": err.message}


def views(host: Host) -> dict:
    """Every derived view of every function of *host*, keyed by view."""
    from vfioctl.ops.state import read_state
    from vfioctl.pci.device import devices
    from vfioctl.pci.reset import reset_nodes
    from vfioctl.pci.topology import read_topology
    from vfioctl.report import devassess, inventory
    from vfioctl.report import topology as picture

    out: dict = {}
    state = read_state(host, None, None)
    out["device_state"] = {str(a): _plain(d) for a, d in sorted(state.devices.items())}
    out["groups_in_state"] = {str(g): [str(a) for a in m] for g, m in sorted(state.groups.items())}
    topo = read_topology(host)
    out["topology_functions"] = {str(a): _topology_function(f) for a, f in topo.functions.items()}
    out["topology_kernel_groups"] = {str(g): [str(a) for a in m] for g, m in topo.kernel_groups().items()}
    out["iommu_enabled"] = topo.iommu_enabled
    out["reset_nodes"] = {str(a): _plain(n) for a, n in reset_nodes(read_topology(host, extended=False)).items()}
    out["topology_picture"] = picture.render_json(picture.build(topo))
    nodes = reset_nodes(read_topology(host, extended=False))
    statuses = devassess._statuses(host)
    facts = {}
    for d in devices(host):
        reach = devassess.hot_reset_reach(d.address, nodes) if d.address in nodes else None
        facts[str(d.address)] = _quiet(lambda d=d, reach=reach: _plain(
            devassess.gather(host, d, reach=reach, statuses=statuses, read_roms=False)))
    out["assess_facts"] = facts
    out["list"] = inventory.list_devices(host)
    out["groups"] = _quiet(lambda: inventory.list_groups(host))
    out["show"] = {str(d.address): _quiet(lambda d=d: inventory.show_device(host, str(d.address)))
                   for d in devices(host)}
    return json.loads(json.dumps(out, default=str))


# ------------------------------------------------------------------ the trees
def topo_tree(root: Path):
    """The annotated tree of test_topology: a GPU with audio behind an isolating root port, a NIC
    with two VFs behind a port without ACS, a conventional NIC behind a PCIe-to-PCI bridge."""
    from pcitopo import PCI_BRIDGE, TopoBuilder, endpoint, host_bridge, root_port

    b = TopoBuilder(root)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    endpoint(b, "0000:01:00.0", parent="0000:00:01.0", group=2, vendor=0x10DE, device=0x2204, cls=0x030000,
             multifunction=True, driver="vfio-pci")
    endpoint(b, "0000:01:00.1", parent="0000:00:01.0", group=2, vendor=0x10DE, device=0x1AEF, cls=0x040300,
             driver="vfio-pci")
    root_port(b, "0000:00:1c.0", 2, group=3, acs=None)
    endpoint(b, "0000:02:00.0", parent="0000:00:1c.0", group=3, vendor=0x8086, device=0x1563, driver="ixgbe")
    endpoint(b, "0000:02:00.1", parent=None, physfn="0000:02:00.0", group=3, vendor=0x8086, device=0x1565,
             driver=None)
    endpoint(b, "0000:02:00.2", parent=None, physfn="0000:02:00.0", group=3, vendor=0x8086, device=0x1565,
             driver="pci-stub")
    b.add("0000:00:05.0", 0x1B36, 0x000E, cls=0x060400, header=1, pcie=PCI_BRIDGE, secondary=3, subordinate=3,
          group=4)
    endpoint(b, "0000:03:01.0", parent="0000:00:05.0", group=4, vendor=0x8086, device=0x100E, pcie=None,
             driver="e1000")
    b.slot("6", "0000:01:00")
    return b


def hosts(tmp: Path) -> dict[str, Host]:
    """The trees the record is compared on: the three captured hosts and the two fake builders."""
    from fakehost import standard_host

    old = tmp / "lab-0.1.0"
    with tarfile.open(SNAPS / "lab-0.1.0.tar.gz") as tar:
        # our own committed archive; Debian 12's Python 3.11.2 has no filter= (3.11.4 added it)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(old, filter="data")
        else:
            tar.extractall(old)
    return {
        "lab-intel-iommu": Host(SNAPS / "lab-intel-iommu.tar.gz"),
        "lab-0.1.0": Host(old / "root"),
        "ci-noiommu": Host(SNAPS / "ci-noiommu.tar.gz"),
        "fakehost": standard_host(tmp / "fake").host(kernel=False),
        "pcitopo": topo_tree(tmp / "topo").host(),
    }


if __name__ == "__main__":  # write the golden files: python tests/unit/pciviews.py OUT_DIR
    import os
    import tempfile

    sys.path.insert(0, str(HERE))
    os.environ.setdefault("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-golden-none")
    dest = Path(sys.argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        for name, h in hosts(Path(t)).items():
            text = json.dumps(views(h), sort_keys=True, separators=(",", ":")).replace(t, "TMP")
            (dest / f"{name}.json").write_text(text + "\n")
