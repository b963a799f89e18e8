"""The one record of a PCI function (vfioctl.pci.function): one reader, one parser per fact, and
every view (the live PciDevice, the planners' DeviceState, the topology the grouping replay walks,
the reset nodes, the topology picture, assess's facts, list/groups/show) built from it."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pcitopo import PCI_BRIDGE, TopoBuilder, config, endpoint, host_bridge, root_port
from pciviews import GOLDEN, hosts, views

from vfioctl.base.errors import InvalidInput, VfioctlError
from vfioctl.base.names import group_number, is_reset_method_name
from vfioctl.host.core import Host
from vfioctl.host.kernel import iommu_group_numbers
from vfioctl.iommu.groups import IommuGroup, groups_read_once
from vfioctl.ops.state import read_state
from vfioctl.pci import function as F
from vfioctl.pci.address import PciAddress, kernel_name
from vfioctl.pci.device import PciDevice, devices
from vfioctl.pci.function import PciFunction, read_functions
from vfioctl.pci.reset import reset_nodes
from vfioctl.pci.topology import read_topology
from vfioctl.report import devassess, inventory
from vfioctl.report import topology as picture

A = PciAddress.parse
SRC = Path(__file__).resolve().parents[3] / "src" / "vfioctl"


# ------------------------------------------------------------------ the views equal the old readers'
#: where the old readers disagreed, and the one answer now (each checked against the planners' view):
#: the topology took IDs and class from config space (the fake trees' config has no class bytes; a
#: bridge's subsystem IDs come from its SSVID capability, which the uevent gives), and assess said
#: "not the boot VGA device" for a VGA function whose boot_vga file is missing
def _expected(name: str, golden: dict) -> dict:
    state = golden["device_state"]
    for a, f in golden["topology_functions"].items():
        ds = state[a]
        f["class_code"] = ds["class_code"]
        f["subsystem_vendor_id"], f["subsystem_device_id"] = (int(x, 16) for x in ds["subsystem"])
    for n in golden["topology_picture"]["functions"]:
        n["class"] = f"{state[n['address']]['class_code']:06x}"
    if name == "pcitopo":  # the GPU at 01:00.0 has no boot_vga file in that tree: not known
        golden["assess_facts"]["0000:01:00.0"]["boot_vga"] = None
    return golden


@pytest.mark.parametrize("name", ["lab-intel-iommu", "lab-0.1.0", "ci-noiommu", "fakehost", "pcitopo"])
def test_every_view_equals_what_the_old_readers_returned(tmp_path, monkeypatch, name):
    """Golden files written by tests/unit/pciviews.py against the readers before the record
    (commit 5a4d5c7).  The captured hosts give every view exactly as before; the fake trees differ
    only where the old readers gave two answers (see :func:`_expected`)."""
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-golden-none")
    host = hosts(tmp_path)[name]
    got = json.loads(json.dumps(views(host)).replace(str(tmp_path), "TMP"))
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    want = golden if name.startswith(("lab", "ci")) else _expected(name, golden)
    _since(name, got, want)
    for view in want:
        assert got[view] == want[view], view


_NAMES = ("vendor_name", "device_name", "class_name", "subsystem_vendor_name", "subsystem_device_name")


def _since(name: str, got: dict, want: dict) -> None:
    """What changed on purpose after the golden files were written, each said: the topology
    picture gained fields (what can be assigned, NUMA, link, OS names, ...: only the old ones are
    compared); a snapshot says a ROM it did not capture is "not captured" (it said nothing); the
    advice to a non-root snapshot reader is to capture again as root; a folder root without
    pci.ids takes names from the reader's machine (whose pci.ids is not the tests' to pin); `show`
    gained a VF's ``vf_settings`` and `sriov show` a PF's ``net`` and each VF's ``settings``
    (issue 26: None on these hosts, none of which has an SR-IOV NIC)."""
    for rec in got["show"].values() if isinstance(got.get("show"), dict) else ():
        if isinstance(rec, dict):
            assert rec.pop("vf_settings", None) is None
    _drop_sriov_net(got)
    for facts in got["assess_facts"].values():
        role = facts.get("sriov") if isinstance(facts, dict) else None
        if isinstance(role, dict):
            for k in ("vf_settings", "pf_ifname", "pf_operstate"):
                assert role.pop(k, None) is None
    pic = got["topology_picture"]
    pic.pop("assessed", None)
    for g, w in zip(pic["functions"], want["topology_picture"]["functions"]):
        for k in set(g) - set(w):
            del g[k]
        if w.get("acs") and "run as root" in (w["acs"].get("note") or ""):
            w["acs"]["note"] = w["acs"]["note"].replace(
                "run as root", "capture the host again as root (`sudo vfioctl snapshot FILE`)")
    for a, facts in want["assess_facts"].items():
        if facts.get("rom") is None and name.startswith(("lab", "ci")):
            facts["rom"] = got["assess_facts"][a]["rom"]
            assert str(facts["rom"]).startswith("not captured"), (a, facts["rom"])
    _host_use_since(got, want)
    if not name.startswith(("lab", "ci")):
        for view in ("list", "show", "assess_facts", "groups"):
            _drop(got[view], _NAMES)
            _drop(want[view], _NAMES)


#: the kinds of host use issue 21 added: the platform itself, and readings that were not made
#: (a snapshot of an older vfioctl did not capture open device nodes; a flags file missing)
_NEW_USES = ("platform", "not-known")


def _host_use_since(got: dict, want: dict) -> None:
    """Host use became records (issue 21): each old reason is still there, word for word, and
    every new one is of a new kind (the platform, or "not known"); the rest is compared as text."""
    def texts(uses: list, where: str, old: list) -> list:
        out = []
        for u in uses:
            text = u["text"] if isinstance(u, dict) else u
            kind = u["kind"] if isinstance(u, dict) else None
            if text in old:
                out.append(text)
            else:  # new: the platform, not known, or an address on an interface whose flags are missing
                assert kind in _NEW_USES or "not known" in text, (where, text)
        return out

    for a, d in got["device_state"].items():
        d["in_use"] = texts(d["in_use"], a, want["device_state"][a]["in_use"])
    for a, f in got["assess_facts"].items():
        if isinstance(f, dict) and isinstance(want["assess_facts"].get(a), dict):
            f["in_use"] = texts(f["in_use"], a, want["assess_facts"][a]["in_use"])
            for m, wm in zip(f["group_members"], want["assess_facts"][a]["group_members"]):
                m["in_use"] = texts(m["in_use"], a, wm["in_use"])
    for a, s in got["show"].items():
        if isinstance(s, dict) and isinstance(want["show"].get(a), dict):
            records = s.pop("host_use")
            assert [u["text"] for u in records] == s["in_use"]
            s["in_use"] = texts(records, a, want["show"][a]["in_use"])


def _drop_sriov_net(got: dict) -> None:
    for view, value in got.items():
        if "sriov" not in view:
            continue
        for pf in value if isinstance(value, list) else value.values() if isinstance(value, dict) else ():
            if isinstance(pf, dict) and "vfs" in pf and "totalvfs" in pf:
                assert pf.pop("net", None) is None
                for v in pf["vfs"]:
                    if isinstance(v, dict):
                        assert v.pop("settings", None) is None


def _drop(obj: object, keys: tuple[str, ...]) -> None:
    if isinstance(obj, dict):
        for k in keys:
            obj.pop(k, None)
        for v in obj.values():
            _drop(v, keys)
    elif isinstance(obj, list):
        for v in obj:
            _drop(v, keys)


def test_the_lab_snapshot_disagreed_nowhere():
    """On the real kernel's capture, every old view already agreed with the planners' state: the
    golden file's topology functions hold the uevent's IDs, class and subsystem."""
    g = json.loads((GOLDEN / "lab-intel-iommu.json").read_text())
    for a, f in g["topology_functions"].items():
        ds = g["device_state"][a]
        assert (f"{f['vendor_id']:04x}", f"{f['device_id']:04x}", f["class_code"], f["is_bridge"], f["driver"],
                f["iommu_group"]) == (ds["vendor_id"], ds["device_id"], ds["class_code"], ds["is_bridge"],
                                      ds["driver"], ds["iommu_group"])


# ------------------------------------------------------------------ one answer for a malformed device
def _malformed(tmp_path: Path) -> TopoBuilder:
    """A root port; behind it functions whose class and header type disagree, one whose config
    space reads FFFF for its IDs (as a VF's does), and one with no config space at all."""
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    root_port(b, "0000:00:01.0", 1, group=1)
    # class "PCI bridge", normal header: the kernel would reset the class; vfio takes it as an endpoint
    b.add("0000:01:00.0", 0x1234, 0x0001, parent="0000:00:01.0", cls=0x060400, header=0, pcie=0, group=2,
          driver="vfio-pci")
    # class "Ethernet", bridge header: a bridge to the kernel (pci_is_bridge) and to vfio
    b.add("0000:01:01.0", 0x1234, 0x0002, parent="0000:00:01.0", cls=0x020000, header=1, pcie=PCI_BRIDGE,
          secondary=2, subordinate=2, group=2)
    # class "CardBus bridge", normal header
    b.add("0000:01:02.0", 0x1234, 0x0003, parent="0000:00:01.0", cls=0x060700, header=0, pcie=0, group=2)
    # config space says ffff:ffff (a VF's ID registers read FFFFh), the kernel says 8086:154c
    b.add("0000:01:03.0", 0x8086, 0x154C, parent="0000:00:01.0", cls=0x020000, group=3, driver="iavf",
          cfg=config(0xFFFF, 0xFFFF, cls=0x020000, pcie=0))
    # no config space readable: the header type comes from the class
    b.add("0000:01:04.0", 0x1234, 0x0005, parent="0000:00:01.0", cls=0x060400, group=4, cfg=b"")
    return b


BRIDGES = {"0000:00:01.0": True, "0000:01:00.0": False, "0000:01:01.0": True, "0000:01:02.0": False,
           "0000:01:03.0": False, "0000:01:04.0": True, "0000:00:00.0": False}


def test_class_and_header_type_disagree_one_answer_everywhere(tmp_path, monkeypatch):
    """The header type decides (drivers/vfio/group.c vfio_dev_driver_allowed, drivers/pci/probe.c
    pci_setup_device); the class only where config space cannot be read.  Before the record,
    PciDevice answered from the class first and the topology from the header type."""
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    host = _malformed(tmp_path).host()
    state = read_state(host, None, None, in_use=False)
    topo = read_topology(host)
    nodes = reset_nodes(read_topology(host, extended=False))
    pic = picture.build(topo)
    roles = {m.device.address: m.role for g in groups_read_once(host) for m in g.members()}
    listed = {m["address"]: m["role"] for g in inventory.list_groups(host)["groups"] for m in g["members"]}
    assessed = {a.address for a in devassess.assess_devices(host, [])}
    for text, bridge in BRIDGES.items():
        a = A(text)
        answers = {
            "record": read_functions(host)[a].is_bridge, "PciDevice": PciDevice(host, a).is_bridge,
            "DeviceState": state.devices[a].is_bridge, "topology": topo.functions[a].is_bridge,
            "reset node": nodes[a].is_bridge, "picture": pic.nodes[a].is_bridge,
            "show": inventory.show_device(host, text)["is_bridge"],
        }
        assert set(answers.values()) == {bridge}, (text, answers)
        assert (roles[a] == "bridge") == bridge == (listed[text] == "bridge")
        assert (a not in assessed) == bridge  # assess takes every endpoint, no bridge
    assert read_functions(host)[A("01:04.0")].why_unknown("header_type").startswith(
        "/sys/bus/pci/devices/0000:01:04.0/config is too short")


def test_ids_come_from_the_kernel_not_config_space(tmp_path, monkeypatch):
    """A VF's config space reads FFFF for its vendor and device (PCIe SR-IOV: the VF's ID registers);
    the kernel's uevent has the IDs every view shows."""
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    host = _malformed(tmp_path).host()
    a = A("01:03.0")
    assert read_topology(host).functions[a].config.vendor_id == 0xFFFF
    assert read_topology(host).functions[a].ids == "8086:154c"
    assert picture.build(read_topology(host)).nodes[a].vendor_id == "8086"
    assert read_state(host, None, None, in_use=False).devices[a].vendor_device == "8086:154c"
    assert PciDevice(host, a).vendor_device == "8086:154c"
    assert next(r for r in inventory.list_devices(host) if r["address"] == str(a))["device_id"] == "154c"


# ------------------------------------------------------------------ one reading, each file once
def _count_touches(host: Host) -> Counter:
    touched: Counter = Counter()
    tree = host._tree
    for op in ("read_bytes", "readlink", "listdir", "kind", "lstat_kind", "realpath"):
        real = getattr(tree, op)

        def wrapped(path, *args, _op=op, _real=real):
            touched[(_op, path)] += 1
            return _real(path, *args)
        setattr(tree, op, wrapped)
    return touched


@pytest.mark.parametrize("name", ["lab-intel-iommu", "fakehost"])
def test_one_reading_reads_each_file_once(tmp_path, name):
    """Every fact of every function and the grouping topology from one reading: each sysfs file
    and link of a function is read once (config space too: its depth is decided before the read)."""
    host = hosts(tmp_path)[name]
    touched = _count_touches(host)
    table = read_functions(host)
    read_topology(host, functions=table)
    for f in table.values():
        for fact in F._READERS:
            getattr(f, fact)
    per_function = {k: n for k, n in touched.items() if "/sys/bus/pci/devices/0000:" in k[1] and n > 1}
    assert per_function == {}


def test_a_record_refuses_to_mix_two_states(fake):
    host = fake.host()
    rec = read_functions(host)[A("00:02.0")]
    assert rec.driver == "e1000e"
    host.invalidate()  # what every write through the Host does
    assert rec.driver == "e1000e"  # what it read stays: one state
    with pytest.raises(VfioctlError, match="read before the host changed"):
        _ = rec.iommu_group
    dev = PciDevice(host, A("00:02.0"), facts=rec)
    assert dev.iommu_group == 2 and dev.facts is not rec  # the live handle takes a new reading


def test_the_live_handle_reads_again_after_a_change(fake):
    host = fake.host()
    dev = PciDevice(host, A("00:02.0"))
    assert dev.driver == "e1000e"
    host.write("/sys/bus/pci/drivers/e1000e/unbind", "0000:00:02.0")
    assert dev.driver is None


def test_known_facts_read_nothing():
    rec = PciFunction.known(A("00:01.0"), parent=None, root_bus="pci0000:00", vendor_id=0x1B36, device_id=0x000C,
                            class_code=0x060400, iommu_group=3, driver="pcieport")
    assert (rec.ids, rec.iommu_group, rec.is_vf, rec.physfn, rec.virtfns, rec.sriov) == (
        "1b36:000c", 3, False, None, (), None)
    assert rec.is_bridge and rec.header_type == 1  # no config space given: from the class
    with pytest.raises(TypeError, match="no fact named colour"):
        PciFunction.known(A("00:01.0"), colour="red")
    assert rec.read_grouping_config() is rec.config  # nothing more to read
    with pytest.raises(VfioctlError, match="made from known facts"):
        _ = PciFunction(None, A("00:01.0")).driver


# ------------------------------------------------------------------ unknown is not absent
def test_what_could_not_be_read_is_unknown_with_why(tmp_path):
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    endpoint(b, "0000:00:02.0", parent=None, group=2, cls=0x030000)  # VGA, no boot_vga file
    endpoint(b, "0000:00:03.0", parent=None, group=3)  # a NIC: the kernel makes no boot_vga for it
    d = b.root / "sys/devices/pci0000:00/0000:00:04.0"
    d.mkdir()
    (b.root / "sys/bus/pci/devices/0000:00:04.0").symlink_to("../../../devices/pci0000:00/0000:00:04.0")
    host = b.host()
    t = read_functions(host)
    gpu, nic, bare = t[A("00:02.0")], t[A("00:03.0")], t[A("00:04.0")]
    assert gpu.boot_vga is None and "boot_vga could not be read" in gpu.why_unknown("boot_vga")
    assert nic.boot_vga is False and nic.why_unknown("boot_vga") is None
    assert (bare.vendor_id, bare.class_code, bare.numa_node, bare.iommu_group) == (None, None, None, None)
    assert "neither /sys/bus/pci/devices/0000:00:04.0/uevent PCI_ID" in bare.why_unknown("vendor_id")
    assert "numa_node could not be read" in bare.why_unknown("numa_node")
    assert bare.why_unknown("iommu_group") is None  # no link: no group, which is the kernel's word
    assert bare.reset_methods is None and not bare.has_reset_method
    (d / "reset").write_text("")
    assert read_functions(host)[A("00:04.0")].reset_methods == ("unknown",)  # a kernel before 5.15
    (d / "reset_method").write_text("\n")
    assert read_functions(host)[A("00:04.0")].reset_methods == ()  # emptied: no method now


def test_assess_says_a_boot_vga_it_could_not_read_is_not_known(tmp_path, monkeypatch):
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    b = TopoBuilder(tmp_path)
    host_bridge(b)
    endpoint(b, "0000:00:02.0", parent=None, group=2, cls=0x030000, driver="vfio-pci")
    res = devassess.assess_devices(b.host(), ["00:02.0"])[0]
    f = res.get("console")
    assert f.status == "warn" and "boot_vga could not be read" in f.evidence


# ------------------------------------------------------------------ hostile values: one parser each
@pytest.mark.parametrize("what", ["uevent PCI_CLASS=zz", "uevent PCI_ID without a colon", "uevent binary junk",
                                  "group link to a file", "group link named abc", "class file of junk",
                                  "reset_method of junk", "config of 3 bytes", "driver_override with a trailing "
                                  "newline"])
def test_hostile_values_get_one_answer_in_every_view(tmp_path, monkeypatch, what):
    """The fuzz test's hostile sysfs values (tests/unit/hostile.py): the record reads them,
    and the live handle, the planners' state and the topology agree on what it read."""
    from fakehost import standard_host
    from hostile import HOSTILE_SYSFS

    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    b = standard_host(tmp_path / "root")
    HOSTILE_SYSFS[what](b._devdir("0000:00:02.0"))
    host = b.host(kernel=False)
    a = A("00:02.0")
    rec = read_functions(host)[a]
    dev, ds, tf = PciDevice(host, a), read_state(host, None, [a], in_use=False).devices[a], read_topology(host).functions[a]
    assert (dev.class_code, ds.class_code, tf.class_code or 0) == (rec.class_code or 0,) * 3
    assert dev.vendor_id == ds.vendor_id == F.hex4(tf.vendor_id) == F.hex4(rec.vendor_id)
    assert dev.iommu_group == ds.iommu_group == tf.iommu_group == rec.iommu_group
    assert dev.is_bridge is ds.is_bridge is tf.is_bridge is rec.is_bridge
    assert tuple(dev.reset_methods) == ds.reset_methods == tuple(rec.reset_methods or ())
    assert all(is_reset_method_name(m) for m in rec.reset_methods or ())


def test_a_driver_link_the_kernel_never_makes_is_refused_by_every_reader(fake):
    os.unlink(fake._devdir("0000:00:02.0") / "driver")
    os.symlink("../../../bus/pci/drivers/vfio-pci\n", fake._devdir("0000:00:02.0") / "driver")
    host = fake.host()
    for read in (lambda: read_functions(host)[A("00:02.0")].driver, lambda: PciDevice(host, A("00:02.0")).driver,
                 lambda: read_state(host, None, [A("00:02.0")], in_use=False)):
        with pytest.raises(InvalidInput, match="a name the kernel never gives"):
            read()


@pytest.mark.parametrize("name", ["²", "1²", "٣", "+3", "3_0", "1" * 10, "", "abc"])
def test_group_numbers_are_ascii_digits_only(fake, name):
    """str.isdigit() before int() took "²" (and int() then raised): one helper for the link, the
    /sys/kernel/iommu_groups listing and /dev/vfio names."""
    assert group_number(name) is None and group_number(f" {name}") is None and group_number("12") == 12
    if name:
        (fake.root / "sys/kernel/iommu_groups" / name).mkdir()
    d = fake._devdir("0000:00:02.0")
    os.unlink(d / "iommu_group")
    os.symlink(f"../../../kernel/iommu_groups/{name or 'x'}", d / "iommu_group")
    host = fake.host()
    assert read_functions(host)[A("00:02.0")].iommu_group is None
    assert PciDevice(host, A("00:02.0")).iommu_group is None
    assert iommu_group_numbers(host) == [0, 1, 2, 4, 5, 7, 9]
    assert [g.number for g in groups_read_once(host)] == [0, 1, 2, 4, 5, 7, 9]


def test_no_isdigit_or_isalnum_parses_a_kernel_name():
    """The pattern fixed above stays fixed where PCI and IOMMU facts are parsed (STYLE 20)."""
    found = []
    for folder in ("pci", "iommu"):
        for p in sorted((SRC / folder).glob("*.py")):
            for i, line in enumerate(p.read_text().splitlines(), 1):
                if re.search(r"\.is(digit|alnum|numeric|decimal)\(", line):
                    found.append(f"{p.relative_to(SRC)}:{i}")
    assert found == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parsers_never_raise_and_stay_in_range(text):
    ue = F.parse_uevent(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in ue.items())
    for v in F.parse_id_pair(text) + (F.parse_hex_id(text),):
        assert v is None or 0 <= v <= 0xFFFF
    c = F.parse_class(text)
    assert c is None or 0 <= c <= 0xFFFFFF
    n = F.parse_small_int(text)
    assert n is None or 0 <= n < 1 << 16
    assert F.parse_numa_node(text) is None or F.parse_numa_node(text) >= 0
    r = F.parse_revision(text)
    assert r is None or re.fullmatch(r"[0-9a-f]{2}", r)
    assert all(re.fullmatch(r"[A-Za-z0-9_]{1,31}", m) for m in F.parse_reset_methods(text))
    g = group_number(text)
    assert g is None or (re.fullmatch(r"[0-9]{1,9}", text) and g == int(text))
    a = kernel_name(text)
    assert a is None or str(a) == text


@pytest.mark.parametrize("text,want", [("8086:10D3", (0x8086, 0x10D3)), ("8086:10d3", (0x8086, 0x10D3)),
                                       ("0x8086:0x10d3", (0x8086, 0x10D3)), ("zz", (None, None)),
                                       ("8086", (0x8086, None)), ("+806:1", (None, 1)), ("1_00:2", (None, 2))])
def test_id_pairs(text, want):
    assert F.parse_id_pair(text) == want


def test_the_listing_takes_only_the_kernels_spelling(fake):
    for odd in ("0000:00:1F.0", "00:1f.0", "0000:00:20.0", "0000:00:1f.8", "junk"):
        (fake.root / "sys/bus/pci/devices" / odd).symlink_to("../../../devices/pci0000:00/0000:00:1f.0")
    host = fake.host()
    assert [str(a) for a in read_functions(host)] == [str(d.address) for d in devices(host)] == [
        "0000:00:00.0", "0000:00:01.0", "0000:00:02.0", "0000:00:04.0", "0000:00:05.0", "0000:00:07.0",
        "0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3", "0000:01:01.0", "0000:01:02.0"]
    assert [str(a) for a in IommuGroup(host, 9).addresses()] == ["0000:00:1f.0", "0000:00:1f.2", "0000:00:1f.3"]
