"""The annotated PCI tree: text like lspci -tv, JSON, DOT (escaped, parsed by graphviz) and SVG."""

import io
import json
import shutil
import subprocess
from contextlib import redirect_stdout

import pytest
from pcitopo import TopoBuilder

from vfioctl.cli import main
from vfioctl.pci.address import PciAddress
from vfioctl.pci.topology import read_topology
from vfioctl.report import topology as T
from vfioctl.usage.holders import Holder

A = PciAddress.parse
HAS_DOT = shutil.which("dot") is not None


def test_text_looks_like_lspci_tv(tree):
    view = T.build(read_topology(tree.host()))
    text = T.render_text(view)
    lines = text.splitlines()
    assert lines[0].startswith("-[0000:00]-+-00.0  [8086:29c0]")
    assert lines[1].startswith("           +-01.0  [1b36:000c]") and "root port, ACS SV RR CR UF" in lines[1]
    assert lines[2].startswith("           |     \\-[01]-+-00.0  [10de:2204]")
    assert "(group 2, vfio-pci" in lines[2] and 'slot "6"' in lines[2]
    assert lines[3].startswith("           |            \\-00.1  [10de:1aef]")
    assert any(ln.startswith("           \\-1c.0") and "root port, no ACS" in ln for ln in lines)
    vf = next(ln for ln in lines if "[8086:1565]" in ln and "VF of 0000:02:00.0" in ln and "pci-stub" in ln)
    assert "[VFs]" in text and vf
    assert "PCIe-to-PCI bridge, n/a" not in text and "PCIe-to-PCI bridge" in text
    assert lines[-4].startswith("           \\-1c.0  [1b36:000c]")
    assert lines[-3] == ("                 \\-[02]---00.0  [8086:1563] device  (group 3, ixgbe, only with "
                         "0000:02:00.1, 0000:02:00.2)")
    assert lines[-2].startswith("                              \\-[VFs]-+-00.1  [8086:1565]")
    assert len(lines) == 10


def test_json_lists_every_function_once_with_group_parent_children(tree):
    data = T.render_json(T.build(read_topology(tree.host())))
    json.dumps(data)
    assert data["schema"] == "vfioctl.topology/1" and data["iommu_enabled"] is True
    addrs = [f["address"] for f in data["functions"]]
    assert addrs == sorted(set(addrs)) and len(addrs) == 10
    by = {f["address"]: f for f in data["functions"]}
    assert by["0000:01:00.0"]["parent"] == "0000:00:01.0" and by["0000:01:00.0"]["iommu_group"] == 2
    assert by["0000:00:01.0"]["children"] == ["0000:01:00.0", "0000:01:00.1"]
    assert by["0000:02:00.0"]["children"] == ["0000:02:00.1", "0000:02:00.2"]
    assert by["0000:02:00.1"]["parent"] == "0000:02:00.0" and by["0000:02:00.1"]["physfn"] == "0000:02:00.0"
    assert by["0000:00:1c.0"]["acs"]["state"] == "absent" and by["0000:00:1c.0"]["acs"]["isolates"] is False
    assert by["0000:00:01.0"]["acs"]["enabled"] == ["SV", "RR", "CR", "UF"]
    assert by["0000:01:00.0"]["state"] == "vfio" and by["0000:02:00.2"]["state"] == "stub"
    assert by["0000:02:00.1"]["state"] == "unbound" and by["0000:02:00.0"]["state"] == "host-driver"
    assert [r["name"] for r in data["roots"]] == ["pci0000:00"]
    groups = {g["group"]: g for g in data["groups"]}
    assert groups[2]["viable"] is True and groups[3]["viable"] is False
    assert groups[3]["blockers"] == ["0000:02:00.0"]  # the root port is a bridge, the stub and unbound VFs are fine
    # children and parents agree
    for f in data["functions"]:
        for c in f["children"]:
            assert by[c]["parent"] == f["address"]


def test_held_by_a_vm_and_focus(tree):
    topo = read_topology(tree.host())
    view = T.build(topo, holders=[Holder(4242, "qemu-system-x86", "win11", 2)], focus=[A("01:00.1")])
    assert set(view.nodes) == {A("00:01.0"), A("01:00.0"), A("01:00.1")}
    assert view.nodes[A("01:00.0")].state == "held-by-vm"
    assert "held by PID 4242 qemu-system-x86 (VM win11)" in T.render_text(view)
    assert list(view.groups) == [1, 2]  # the root port above is kept, with its group
    dot = T.render_dot(view)
    assert "held by a VM" in dot and "peripheries=2" in dot


def test_dot_escapes_hostile_names(tree):
    class EvilIds:
        def vendor(self, v):
            return 'Evil"; node [label="pwned"]; "x'

        def device(self, v, d):
            return "back\\slash\\N\nnewline\x1b[31m"

        def class_name(self, c):
            return "}}}"

    dot = T.render_dot(T.build(read_topology(tree.host()), ids=EvilIds()))
    assert 'Evil\\"; node [label=\\"pwned\\"]; \\"x' in dot
    assert "back\\\\slash\\\\N" in dot and "\x1b" not in dot and "newline\x1b" not in dot
    assert T.dot_quote('a"b\\c\nd') == '"a\\"b\\\\c?d"'
    text = T.render_text(T.build(read_topology(tree.host()), ids=EvilIds()))
    assert "\x1b" not in text and all(ch.isprintable() for line in text.splitlines() for ch in line)
    if HAS_DOT:
        r = subprocess.run(["dot", "-Tplain"], input=dot.encode(), capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert b"pwned" not in r.stdout.split(b"\n")[0]
        nodes = [ln for ln in r.stdout.decode().splitlines() if ln.startswith("node ")]
        # every function, the root complex and the legend's 5 entries; nothing injected
        assert len(nodes) == 10 + 1 + 5


@pytest.mark.skipif(not HAS_DOT, reason="graphviz is not installed")
def test_dot_parses_and_renders(tree):
    dot = T.render_dot(T.build(read_topology(tree.host())))
    r = subprocess.run(["dot", "-Tcanon"], input=dot.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "cluster_group_3" in r.stdout.decode() and f'color="{T.NO_ISOLATION_COLOUR}", penwidth=2' in dot
    assert "cluster_legend" in dot and "group 3: only with its group" in dot
    r = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, timeout=60)
    assert r.returncode == 0 and b"<svg" in r.stdout


def test_what_can_be_assigned(tree):
    """Colour by what the user can do: the GPU with its audio function goes only with it; the NIC
    and its VFs share a group behind a port without ACS; the e1000 behind the PCIe-to-PCI bridge
    is alone (the bridge stays with the host); bridges stay."""
    view = T.build(read_topology(tree.host()))
    can = {str(a)[5:]: n.assign.can for a, n in view.nodes.items()}
    assert can["01:00.0"] == can["01:00.1"] == T.WITH_GROUP
    assert view.nodes[A("01:00.0")].assign.together == (A("01:00.1"),)
    assert can["02:00.0"] == can["02:00.1"] == T.WITH_GROUP
    assert can["03:01.0"] == T.ALONE
    assert can["00:01.0"] == can["00:1c.0"] == can["00:05.0"] == T.STAYS
    facts = {A("02:00.0"): T.FunctionFacts(host_use=("eth0 has 192.0.2.1/24",), os_names=("eth0",)),
             A("03:01.0"): T.FunctionFacts(num_vfs=2)}
    view = T.build(read_topology(tree.host()), facts=facts)
    n = view.nodes[A("02:00.0")]
    assert n.assign.can == T.BLOCKED and n.assign.why == "the host uses it: eth0 has 192.0.2.1/24"
    vf = view.nodes[A("02:00.1")].assign
    assert vf.can == T.BLOCKED and vf.why.startswith("0000:02:00.0 in its group cannot leave the host")
    assert view.nodes[A("03:01.0")].assign.brief == "PF with 2 VFs"
    off = T.build(read_topology(TopoBuilder(tree.root.parent / "off", iommu=False).host()))
    assert all(x.assign.can in (T.BLOCKED, T.STAYS) for x in off.nodes.values())


def test_facts_and_not_captured(tree):
    """NUMA node, link, OS names and boot VGA from sysfs; on a snapshot that did not capture a
    reading, null and the reason."""
    base = tree.root / "sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"
    for name, value in (("current_link_speed", "8.0 GT/s PCIe"), ("current_link_width", "8"),
                        ("max_link_speed", "16.0 GT/s PCIe"), ("max_link_width", "16"), ("numa_node", "1"),
                        ("boot_vga", "1")):
        (base / name).write_text(value + "\n")
    (base / "drm/card0").mkdir(parents=True)
    (base / "drm/renderD128").mkdir()
    topo = read_topology(tree.host())
    facts = T.read_facts(tree.host(), topo)
    f = facts[A("01:00.0")]
    assert f.link == T.Link("8 GT/s", 8, "16 GT/s", 16) and f.link.describe() == "8 GT/s x8 (of 16 GT/s x16)"
    assert f.numa_node == 1 and f.boot_vga and f.os_names == ("card0",) and f.not_captured == ()
    data = T.render_json(T.build(topo, facts=facts))
    gpu = next(x for x in data["functions"] if x["address"] == "0000:01:00.0")
    assert gpu["link"] == {"speed": "8 GT/s", "width": 8, "max_speed": "16 GT/s", "max_width": 16}
    assert gpu["os_names"] == ["card0"] and gpu["boot_vga"] is True and gpu["not_captured"] == {}


def test_lab_snapshot_says_what_it_did_not_capture():
    from pathlib import Path

    snap = str(Path(__file__).resolve().parents[2] / "snapshots" / "lab-intel-iommu.tar.gz")
    rc, out = _cli("--root", snap, "topology", "--json")
    f = next(x for x in json.loads(out)["functions"] if x["address"] == "0000:00:02.0")
    assert f["link"] is None and "did not capture" in f["not_captured"]["link"]
    assert f["os_names"] == ["eth0"]


def _cli(*argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(list(argv))
    return rc, buf.getvalue()


def test_cli_topology_formats(tree):
    rc, out = _cli("topology", "--root", str(tree.root))
    assert rc == 0 and out.startswith("-[0000:00]-+-00.0")
    rc, out = _cli("topology", "--root", str(tree.root), "--json")
    assert rc == 0 and json.loads(out)["schema"] == "vfioctl.topology/1"
    rc, out = _cli("topology", "--root", str(tree.root), "--format", "dot", "02:00.0")
    assert rc == 0 and out.startswith("digraph pci {") and '"0000:01:00.0"' not in out and '"0000:02:00.1"' in out
    rc, out = _cli("topology", "--root", str(tree.root), "--format", "svg")
    assert rc == 0 and out.startswith("<svg") and "What can I assign?" in out
    rc, out = _cli("topology", "--root", str(tree.root), "--group", "3")
    assert rc == 0 and "02:00.0" in out and "01:00.0" not in out
    assert main(["topology", "--root", str(tree.root), "zz:00.0"]) == 65


def test_cli_topology_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["topology", "--help"])
    out = capsys.readouterr().out
    assert "vfioctl topology --format svg > pci.svg" in out and "--root" in out and "--json" in out


def test_empty_host(tmp_path):
    b = TopoBuilder(tmp_path, iommu=False)
    view = T.build(read_topology(b.host()))
    assert T.render_text(view) == "" and T.render_json(view)["functions"] == []
    assert "digraph pci" in T.render_dot(view)
    rc, out = _cli("topology", "--root", str(b.root))
    assert rc == 0 and "No PCI functions" in out


def test_a_function_whose_bridge_is_missing_is_still_shown(tree):
    # hostile/odd tree: a function nested under a folder named like a bridge sysfs does not list
    d = tree.root / "sys/devices/pci0000:00/0000:00:09.0/0000:09:00.0"
    d.mkdir(parents=True)
    (d / "config").write_bytes(b"\xf4\x1a\x41\x10")
    (tree.root / "sys/bus/pci/devices/0000:09:00.0").symlink_to("../../../devices/pci0000:00/0000:00:09.0/0000:09:00.0")
    text = T.render_text(T.build(read_topology(tree.host())))
    assert "-[unattached]---00.0  [1af4:1041]" in text


def test_a_tree_that_loops_still_shows_every_function_once():
    """Topology built by hand (a hostile snapshot cannot nest a folder in itself, but the model
    must not rely on that): a function that is its own parent, and two that are each other's."""
    from pcitopo import config

    from vfioctl.iommu.predict import predict
    from vfioctl.pci import config as pcicfg
    from vfioctl.pci.function import PciFunction
    from vfioctl.pci.topology import Topology

    def fn(addr, parent):
        c = pcicfg.parse(config(0x1B36, 0x000C, header=1, pcie=4))
        return PciFunction.known(A(addr), parent=A(parent) if parent else None, root_bus=None, config=c,
                                 vendor_id=c.vendor_id, device_id=c.device_id, subsystem_vendor_id=0,
                                 subsystem_device_id=0, class_code=c.class_code, physfn=None, iommu_group=None,
                                 driver=None)

    topo = Topology([fn("00:01.0", None), fn("01:00.0", "01:00.0"), fn("02:00.0", "03:00.0"),
                     fn("03:00.0", "02:00.0")], iommu_enabled=False)
    text = T.render_text(T.build(topo))
    for a in ("01.0", "00.0"):
        assert a in text
    assert len(text.splitlines()) == 4
    assert predict(topo).complete  # bounded walks, no recursion error
