"""vfioctl.cluster.cdi: CDI specs (issue 25); labels and KubeVirt: test_labels.py, test_kubevirt.py.

The generators are pure and tested from plain data; gather() on fake hosts and the lab
snapshot; the CDI spec against the CDI JSON schema and the KubeVirt fragment against KubeVirt's
CRD schema (both kept in tests/unit/data, sources in its README); writes for atomicity and for
targets that are links or folders.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cdi_schema import validate_cdi
from clusterdata import SNAPSHOT
from fakestate import device_state
from hypothesis import given
from hypothesis import strategies as st

from vfioctl.base.errors import ConfigError, InvalidInput, Refused
from vfioctl.base.names import is_cdi_device_name, is_k8s_name
from vfioctl.cli import Context, main
from vfioctl.cluster import cdi
from vfioctl.cluster.cdi import CdiFacts, Claim
from vfioctl.host.core import Host
from vfioctl.ops import session as engine
from vfioctl.ops.config import CdiConfig, Config, load_config, parse_config


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 0x1F), st.integers(0, 7))
def test_every_address_gives_two_valid_names(domain, bus, slot, fn):
    text = f"{domain:04x}:{bus:02x}:{slot:02x}.{fn:x}"
    a, alias = cdi.address_names(text)
    assert a == text and is_cdi_device_name(a) and is_cdi_device_name(alias)
    assert alias.startswith("pci-") and set(alias) <= set("pci-0123456789abcdef")
    # the alias starts with a letter: valid for every CDI version's grammar, and a Kubernetes name
    assert is_k8s_name(alias)


def test_short_address_forms_name_the_kernel_form():
    assert cdi.address_names("03:00.0") == ("0000:03:00.0", "pci-0000-03-00-0")
    with pytest.raises(InvalidInput):
        cdi.address_names("03:00")


CONFIG_WITH_NAMES = """
[[device]]
address = "0000:00:07.0"
id = "8086:10d3"

[[device]]
match = { id = "10de:2335" }
count = 2

[cdi]
path = "/var/run/cdi/vfioctl.json"
vendor = "example.com"

[cdi.names]
"00:02.0" = "uplink"
"[[device]] #2" = "gpu"
"id:8086:10d3" = "nic"
"""

def test_cdi_table_is_read_and_keys_normalised():
    c = parse_config(CONFIG_WITH_NAMES, "/etc/v.toml")
    assert c.cdi == CdiConfig("/var/run/cdi/vfioctl.json", "example.com", False,
                              (("0000:00:02.0", "uplink"), ("[[device]] #2", "gpu"), ("id:8086:10d3", "nic")))
    assert parse_config("", "/etc/v.toml").cdi == CdiConfig()


@pytest.mark.parametrize("table,words", [
    ('[cdi]\npath = "relative.json"', "plain absolute path"),
    ('[cdi]\npath = "/var/run/cdi/../x.json"', "plain absolute path"),
    ('[cdi]\npath = "/var/run/cdi/vfioctl.yaml"', "ending in .json"),
    ('[cdi]\npath = "/var/run/cdi/.json"', "ending in .json"),
    ('[cdi]\npath = "/var/run/cdi/a\\nb.json"', "plain absolute path"),
    ('[cdi]\npath = 3', "plain absolute path"),
    ('[cdi]\nvendor = "Vfioctl.io"', "DNS name"),
    ('[cdi]\nannotations = "yes"', "true or false"),
    ('[cdi]\nnames = 3', "[cdi.names]"),
    ('[cdi]\nkind = "x/y"', "unknown key 'kind'"),
    ('cdi = 1', "must be a table"),
    ('[cdi.names]\n"02:00.0" = "gpu-1"', "not ending in -N"),
    ('[cdi.names]\n"02:00.0" = "pci-x"', "not starting with 'pci-'"),
    ('[cdi.names]\n"02:00.0" = "03:00.0"', "not an address"),
    ('[cdi.names]\n"02:00.0" = "a:b"', "letters, digits"),
    ('[cdi.names]\n"02:00.0" = ""', "letters, digits"),
    ('[cdi.names]\n"02:00.0" = "' + "a" * 64 + '"', "1 to 63"),
    ('[cdi.names]\n"02:00.0" = 5', "letters, digits"),
    ('[cdi.names]\n"02:00.0" = "a"\n"03:00.0" = "a"', "both give the name"),
    ('[cdi.names]\n"02:00.0" = "a"\n"0000:02:00.0" = "b"', "same device"),
    ('[cdi.names]\n"[[device]] #1" = "a"', "0 [[device]] entries"),
    ('[cdi.names]\n"eth0" = "a"', "neither a PCI address"),
    ('[cdi.names]\n"class:nope" = "a"', "class"),
    ('[cdi.names]\n"id:xyz" = "a"', "vvvv:dddd"),
])
def test_bad_cdi_tables_are_one_line_config_errors(table, words):
    with pytest.raises(ConfigError) as e:
        parse_config(table, "/etc/v.toml")
    assert words in e.value.message and "\n" not in e.value.message and "/etc/v.toml: [cdi]" in e.value.message


# ====================================================================== the spec, from plain data
def fn(address, group, driver="vfio-pci", *, bridge=False, cdev=None, vd=("8086", "10d3")):
    """A function as the state reads it, and its device cdev's name (None: the kernel has none)."""
    return device_state(address, group=group, driver=driver, bridge=bridge, ids=vd), cdev


def facts(functions, claims, nodes=None, entries=None):
    fs = {str(f.address): f for f, _ in functions}
    groups: dict[int, list[str]] = {}
    for f, _ in functions:
        if f.iommu_group is not None:
            groups.setdefault(f.iommu_group, []).append(str(f.address))
    if nodes is None:
        nodes = {"/dev/vfio/vfio"} | {f"/dev/vfio/{g}" for g in groups}
    return CdiFacts(fs, {g: tuple(sorted(a)) for g, a in groups.items()},
                    {c.address: c for c in claims}, frozenset(nodes), entries or {},
                    {str(f.address): c for f, c in functions if c is not None})


def hidden(address, entry=None, origin="hide", state="hidden"):
    return Claim(address, journal=(state, origin, entry))


def test_one_hidden_function_is_published_with_its_group_nodes():
    r = cdi.build(facts([fn("0000:00:02.0", 2)], [hidden("0000:00:02.0")]))
    assert r.spec == {
        "cdiVersion": "0.5.0", "kind": "vfioctl.io/pci",
        "devices": [{"name": n, "containerEdits": {"deviceNodes": [
            {"path": "/dev/vfio/vfio", "permissions": "rw"}, {"path": "/dev/vfio/2", "permissions": "rw"}]}}
            for n in ("0000:00:02.0", "pci-0000-00-02-0")]}
    validate_cdi(r.spec)
    assert r.left_out == []


def test_non_viable_group_is_left_out_with_the_reason():
    f = facts([fn("0000:00:0e.0", 14), fn("0000:00:0e.1", 14, "e1000"), fn("0000:00:02.0", 2)],
              [hidden("0000:00:0e.0"), hidden("0000:00:0e.1"), hidden("0000:00:02.0")])
    r = cdi.build(f)
    assert [p.address for p in r.devices] == ["0000:00:02.0"]
    why = dict(r.left_out)
    assert why["0000:00:0e.0"] == "is in IOMMU group 14, which is not viable: 0000:00:0e.1 is on e1000"
    assert why["0000:00:0e.1"] == "is on e1000, not on a vfio driver"
    assert not {"0000:00:0e.0", "0000:00:0e.1"} & {d["name"] for d in r.spec["devices"]}


def test_group_viable_but_not_wholly_hidden_by_vfioctl_is_left_out():
    # the kernel accepts an unbound member or one someone else put on vfio-pci; vfioctl does not
    # hand out a group it does not wholly own
    f = facts([fn("0000:01:00.0", 5), fn("0000:01:00.1", 5, None), fn("0000:00:05.0", 5, None, bridge=True)],
              [hidden("0000:01:00.0")])
    r = cdi.build(f)
    assert r.spec is None and r.devices == []
    assert dict(r.left_out)["0000:01:00.0"] == ("is in IOMMU group 5, which vfioctl has not wholly hidden: "
                                                "0000:01:00.1 is unbound and not hidden by vfioctl")
    f = facts([fn("0000:01:00.0", 5), fn("0000:01:00.1", 5)], [hidden("0000:01:00.0")])
    assert "0000:01:00.1 is on vfio-pci but not hidden by vfioctl" in dict(cdi.build(f).left_out)["0000:01:00.0"]


def test_whole_group_hidden_with_a_bridge_is_published_with_companions():
    f = facts([fn("0000:00:05.0", 5, None, bridge=True), fn("0000:01:01.0", 5), fn("0000:01:02.0", 5)],
              [hidden("0000:01:01.0"), hidden("0000:01:02.0")])
    r = cdi.build(f, annotations=True)
    assert [p.address for p in r.devices] == ["0000:01:01.0", "0000:01:02.0"]
    assert r.devices[0].companions == ("0000:01:02.0",)
    assert r.cdi_version == "0.6.0"  # annotations
    dev = r.spec["devices"][0]
    assert dev["annotations"] == {"vfioctl.io/address": "0000:01:01.0", "vfioctl.io/id": "8086:10d3",
                                  "vfioctl.io/iommu-group": "5", "vfioctl.io/companions": "0000:01:02.0"}
    validate_cdi(r.spec)


@pytest.mark.parametrize("claim,function,words", [
    (hidden("0000:00:02.0", origin="libvirt:web1"), fn("0000:00:02.0", 2), "libvirt domain 'web1'"),
    (hidden("0000:00:02.0", state="pending"), fn("0000:00:02.0", 2), "did not finish"),
    (hidden("0000:00:02.0"), fn("0000:00:02.0", 2, "pci-stub"), "pci-stub"),
    (hidden("0000:00:02.0"), fn("0000:00:02.0", None), "no IOMMU group"),
    (hidden("0000:00:02.0"), fn("0000:00:02.0", 2, "e1000e"), "is on e1000e, not on a vfio driver"),
    (Claim("0000:00:02.0", config="x: [[device]] #1"), fn("0000:00:02.0", 2, "e1000e"), "`vfioctl apply` hides it"),
    (hidden("0000:00:09.0"), fn("0000:00:02.0", 2), "not on this host"),
])
def test_what_is_not_published_says_why(claim, function, words):
    r = cdi.build(facts([function], [claim]))
    assert r.spec is None and words in dict(r.left_out)[claim.address]


def test_config_entry_counts_as_hidden_once_on_vfio():
    r = cdi.build(facts([fn("0000:00:07.0", 7)], [Claim("0000:00:07.0", config="/etc/v.toml: [[device]] #1")]))
    assert [p.address for p in r.devices] == ["0000:00:07.0"]


def test_no_node_on_the_host_leaves_the_device_out():
    r = cdi.build(facts([fn("0000:00:02.0", 2)], [hidden("0000:00:02.0")], nodes={"/dev/vfio/2"}))
    assert r.spec is None and "no VFIO device node" in dict(r.left_out)["0000:00:02.0"]


def test_cdev_and_iommufd_are_added_where_the_kernel_has_them():
    f = facts([fn("0000:00:02.0", 2, cdev="vfio0")], [hidden("0000:00:02.0")],
              nodes={"/dev/vfio/vfio", "/dev/vfio/2", "/dev/iommu", "/dev/vfio/devices/vfio0"})
    p = cdi.build(f).devices[0]
    assert p.nodes == ("/dev/vfio/vfio", "/dev/vfio/2", "/dev/iommu", "/dev/vfio/devices/vfio0")
    # a kernel without the group interface (CONFIG_VFIO_GROUP=n): the cdev alone
    f = facts([fn("0000:00:02.0", 2, cdev="vfio0")], [hidden("0000:00:02.0")],
              nodes={"/dev/iommu", "/dev/vfio/devices/vfio0"})
    assert cdi.build(f).devices[0].nodes == ("/dev/iommu", "/dev/vfio/devices/vfio0")
    # a cdev without /dev/iommu is no use: the group nodes only
    f = facts([fn("0000:00:02.0", 2, cdev="vfio0")], [hidden("0000:00:02.0")],
              nodes={"/dev/vfio/vfio", "/dev/vfio/2", "/dev/vfio/devices/vfio0"})
    assert cdi.build(f).devices[0].nodes == ("/dev/vfio/vfio", "/dev/vfio/2")


def test_names_from_the_config_address_entry_and_selector_labels():
    c = parse_config(CONFIG_WITH_NAMES, "/etc/v.toml")
    gpus = ["0000:41:00.0", "0000:01:00.0", "0000:81:00.0"]
    fs = [fn("0000:00:02.0", 2), fn("0000:00:07.0", 7)] + [fn(a, 10 + i, vd=("10de", "2335"))
                                                           for i, a in enumerate(gpus)]
    claims = [hidden("0000:00:02.0", entry="cli: id:8086:10d3"),
              Claim("0000:00:07.0", config="/etc/v.toml: [[device]] #1")]
    claims += [hidden(a, entry="/etc/v.toml: [[device]] #2") for a in gpus]
    entries = {"[[device]] #1": ("/etc/v.toml: [[device]] #1", "0000:00:07.0"),
               "[[device]] #2": ("/etc/v.toml: [[device]] #2", None)}
    r = cdi.build(facts(fs, claims, entries=entries), vendor=c.cdi.vendor, names=c.cdi.names)
    got = {p.address: p.names for p in r.devices}
    assert got["0000:00:02.0"] == ("0000:00:02.0", "pci-0000-00-02-0", "uplink", "nic-0")
    # a selector's devices get NAME-i in address order
    assert got["0000:01:00.0"][2:] == ("gpu-0",) and got["0000:41:00.0"][2:] == ("gpu-1",)
    assert got["0000:81:00.0"][2:] == ("gpu-2",)
    assert got["0000:00:07.0"] == ("0000:00:07.0", "pci-0000-00-07-0")
    assert r.kind == "example.com/pci"
    validate_cdi(r.spec)
    assert len({d["name"] for d in r.spec["devices"]}) == len(r.spec["devices"])


def test_a_left_out_selector_device_keeps_the_others_indices():
    fs = [fn("0000:01:00.0", 10, "nvidia"), fn("0000:02:00.0", 11)]
    claims = [hidden(a, entry="cli: class:gpu") for a in ("0000:01:00.0", "0000:02:00.0")]
    r = cdi.build(facts(fs, claims), names=(("class:gpu", "gpu"),))
    assert r.devices[0].names[2:] == ("gpu-1",)


@pytest.mark.parametrize("spec,version", [
    ({"kind": "a.b/pci", "devices": [{"name": "x"}]}, "0.3.0"),
    ({"kind": "a.b/pci", "devices": [{"name": "0x"}]}, "0.5.0"),
    ({"kind": "a.b/pci", "devices": [{"name": "x", "containerEdits": {"deviceNodes": [{"path": "/a", "hostPath": "/b"}]}}]},
     "0.5.0"),
    ({"kind": "a.b/pci", "devices": [{"name": "x", "annotations": {"a": "b"}}]}, "0.6.0"),
    ({"kind": "a.b/pci", "annotations": {"a": "b"}, "devices": [{"name": "0"}]}, "0.6.0"),
    ({"kind": "a.b/p.ci", "devices": [{"name": "x"}]}, "0.6.0"),
])
def test_required_version_follows_the_spec_table(spec, version):
    assert cdi.required_version(spec) == version


def test_vendor_is_checked_where_the_kind_is_made():
    with pytest.raises(InvalidInput):
        cdi.build(facts([], []), vendor="Bad_Vendor")


# ====================================================================== gather on a fake host
@pytest.fixture
def vfio_nodes(fake):
    (fake.root / "dev/vfio/vfio").write_text("")
    return fake


def test_gather_after_a_real_hide_on_the_fake_host(host, vfio_nodes):
    engine.hide(host, ["00:07.0"])
    engine.hide(host, ["01:01.0"], group=True)
    r = cdi.spec_for(host, None)
    assert [p.address for p in r.devices] == ["0000:00:07.0", "0000:01:01.0", "0000:01:02.0"]
    assert r.devices[0].nodes == ("/dev/vfio/vfio", "/dev/vfio/7")
    assert r.devices[1].companions == ("0000:01:02.0",)
    validate_cdi(r.spec)
    engine.restore(host, ["00:07.0"])
    r = cdi.spec_for(host, None)
    assert "0000:00:07.0" not in {p.address for p in r.devices}


def test_gather_reads_the_cdev_from_sysfs(host, vfio_nodes):
    engine.hide(host, ["00:07.0"])
    dev = Path(os.path.realpath(vfio_nodes.root / "sys/bus/pci/devices/0000:00:07.0"))
    (dev / "vfio-dev/vfio3").mkdir(parents=True)
    (vfio_nodes.root / "dev/vfio/devices").mkdir()
    (vfio_nodes.root / "dev/vfio/devices/vfio3").write_text("")
    (vfio_nodes.root / "dev/iommu").write_text("")
    assert cdi.spec_for(host, None).devices[0].nodes == ("/dev/vfio/vfio", "/dev/vfio/7", "/dev/iommu",
                                                         "/dev/vfio/devices/vfio3")
    (dev / "vfio-dev/vfio3").rename(dev / "vfio-dev/evil name")  # never a node path from a hostile name
    assert cdi.spec_for(host, None).devices[0].nodes == ("/dev/vfio/vfio", "/dev/vfio/7")


def test_gather_from_a_config_entry_not_applied_yet(host, vfio_nodes):
    config = parse_config('[[device]]\naddress = "0000:00:07.0"\nid = "8086:10d3"\n', "/etc/vfioctl/vfioctl.toml")
    r = cdi.spec_for(host, config)
    assert r.spec is None and "`vfioctl apply` hides it" in dict(r.left_out)["0000:00:07.0"]


# ====================================================================== writing
def result_with_one_device():
    return cdi.build(facts([fn("0000:00:02.0", 2)], [hidden("0000:00:02.0")]))


def test_output_is_written_atomically_with_mode_0644(tmp_path):
    old = os.umask(0o077)
    try:
        out = cdi.write_output(str(tmp_path / "cdi" / "vfioctl.json"), result_with_one_device())
    finally:
        os.umask(old)
    path = tmp_path / "cdi" / "vfioctl.json"
    assert out.action == "written" and out.path == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads(path.read_text()) == out.spec
    assert sorted(os.listdir(tmp_path / "cdi")) == ["vfioctl.json"]  # no temp file left


def test_a_failed_write_leaves_the_old_spec_whole_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "vfioctl.json"
    cdi.write_output(str(path), result_with_one_device())
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    r = cdi.build(facts([fn("0000:00:07.0", 7)], [hidden("0000:00:07.0")]))
    with pytest.raises(Exception) as e:
        cdi.write_output(str(path), r)
    assert "No space left" in str(e.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["vfioctl.json"]


def test_a_symbolic_link_target_is_refused_and_nothing_written(tmp_path):
    victim = tmp_path / "shadow"
    victim.write_text("root:x:0:0\n")
    link = tmp_path / "vfioctl.json"
    link.symlink_to(victim)
    with pytest.raises(InvalidInput) as e:
        cdi.write_output(str(link), result_with_one_device())
    assert "symbolic link" in e.value.message
    assert link.is_symlink() and victim.read_text() == "root:x:0:0\n"
    assert sorted(os.listdir(tmp_path)) == ["shadow", "vfioctl.json"]
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InvalidInput):
        cdi.write_output(str(dangling), result_with_one_device())
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_target_is_refused_and_nothing_written(tmp_path):
    folder = tmp_path / "cdi"
    folder.mkdir()
    with pytest.raises(InvalidInput) as e:
        cdi.write_output(str(folder), result_with_one_device())
    assert "is a folder" in e.value.message
    assert os.listdir(folder) == []


def test_a_file_that_is_not_our_spec_is_not_replaced(tmp_path):
    other = tmp_path / "nvidia.json"
    other.write_text('{"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": []}')
    with pytest.raises(Refused) as e:
        cdi.write_output(str(other), result_with_one_device())
    assert "nvidia.com/gpu" in e.value.message
    assert "nvidia.com/gpu" in other.read_text()
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\xff\x00")
    with pytest.raises(Refused):
        cdi.write_output(str(junk), result_with_one_device())


def test_nothing_published_removes_our_spec(tmp_path):
    path = tmp_path / "vfioctl.json"
    cdi.write_output(str(path), result_with_one_device())
    empty = cdi.build(facts([], []))
    assert cdi.write_output(str(path), empty).action == "removed"
    assert not path.exists()
    assert cdi.write_output(str(path), cdi.build(facts([], []))).action == "absent"


def test_refresh_writes_the_config_path_under_the_root(host, vfio_nodes):
    engine.hide(host, ["00:07.0"])
    assert cdi.refresh(host, Config()) is None  # no [cdi] path: nothing kept
    config = Config(cdi=CdiConfig(path="/run/cdi/vfioctl.json"))
    r = cdi.refresh(host, config)
    written = vfio_nodes.root / "run/cdi/vfioctl.json"
    assert r is not None and r.action == "written" and written.exists()
    assert {d["name"] for d in json.loads(written.read_text())["devices"]} == {"0000:00:07.0", "pci-0000-00-07-0"}
    engine.restore(host, ["00:07.0"])
    assert cdi.refresh(host, config).action == "removed" and not written.exists()


def test_refresh_refuses_a_snapshot():
    with pytest.raises(Refused):
        cdi.refresh(Host(SNAPSHOT), Config(cdi=CdiConfig(path="/run/cdi/vfioctl.json")))


# ====================================================================== the refresh after a change
def _config(fake, text):
    (fake.root / "etc/vfioctl").mkdir(parents=True, exist_ok=True)
    (fake.root / "etc/vfioctl/vfioctl.toml").write_text(text)


@pytest.fixture
def cli_host(host, monkeypatch):
    """main() on the fake host with its simulated kernel."""
    monkeypatch.setattr(Context, "host", property(lambda self: host))
    return host


def test_hide_and_restore_keep_the_spec_current(fake, vfio_nodes, cli_host, capsys):
    _config(fake, '[cdi]\npath = "/var/run/cdi/vfioctl.json"\n')
    root = str(fake.root)
    spec = fake.root / "var/run/cdi/vfioctl.json"
    assert main(["--root", root, "hide", "00:07.0"]) == 0
    assert "0000:00:07.0" in {d["name"] for d in json.loads(spec.read_text())["devices"]}
    assert main(["--root", root, "hide", "00:02.0", "--dry-run"]) == 0
    assert "0000:00:02.0" not in spec.read_text()  # a dry run refreshes nothing
    assert main(["--root", root, "restore", "00:07.0"]) == 0
    assert not spec.exists()


def test_a_refresh_failure_keeps_the_change_and_exits_73(fake, vfio_nodes, cli_host, capsys):
    _config(fake, '[cdi]\npath = "/var/run/cdi/vfioctl.json"\n')
    (fake.root / "var/run/cdi/vfioctl.json").mkdir(parents=True)  # a folder where the spec goes
    rc = main(["--root", str(fake.root), "hide", "00:07.0"])
    err = capsys.readouterr().err
    assert rc == 73
    assert fake.current_driver("0000:00:07.0") == "vfio-pci"  # the change stands
    assert err.count("\n") == 1 and "the change was made, but the CDI spec was not refreshed" in err
    assert "is a folder" in err and "vfioctl cdi --refresh" in err


def test_a_broken_config_after_a_change_is_73_too(fake, vfio_nodes, cli_host, capsys):
    _config(fake, '[cdi]\npath = "nope"\n')
    assert main(["--root", str(fake.root), "hide", "00:07.0"]) == 73
    assert "plain absolute path" in capsys.readouterr().err
    assert fake.current_driver("0000:00:07.0") == "vfio-pci"


def test_the_libvirt_hook_refreshes_and_never_fails_the_start_for_it(fake, vfio_nodes, host):
    from vfioctl.guest import hook

    _config(fake, '[cdi]\npath = "/var/run/cdi/vfioctl.json"\n')
    xml = ("<domain><devices><hostdev mode='subsystem' type='pci' managed='no'><source>"
           "<address domain='0' bus='0' slot='7' function='0'/></source></hostdev></devices></domain>")
    said = hook.run(host, ["web1", "prepare", "begin", "-"], xml)
    assert "hid 0000:00:07.0" in said and "not refreshed" not in said
    # hidden for a domain: not offered to containers (the domain holds it)
    assert not (fake.root / "var/run/cdi/vfioctl.json").exists()
    (fake.root / "var/run/cdi/vfioctl.json").mkdir(parents=True)
    said = hook.run(host, ["web1", "release", "end", "-"], xml)
    assert "gave back 0000:00:07.0" in said and "the CDI spec was not refreshed" in said
    assert fake.current_driver("0000:00:07.0") == "e1000e"


# ====================================================================== the CLI
def test_cdi_command_on_the_lab_snapshot(capsys):
    assert main(["--root", SNAPSHOT, "cdi", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "vfioctl.cdi/1" and out["spec"] is None
    assert out["left_out"] == [{"address": "0000:00:07.0",
                                "reason": "is on e1000e, not on a vfio driver (`vfioctl apply` hides it)"}]


def test_cdi_output_from_a_snapshot_goes_to_this_machine(tmp_path, fake, vfio_nodes, capsys):
    assert main(["--root", str(fake.root), "cdi", "--output", str(tmp_path / "x.json")]) == 0
    assert "nothing to publish" in capsys.readouterr().out


def test_cdi_print_and_output(fake, vfio_nodes, host, tmp_path, capsys):
    engine.hide(host, ["00:07.0"])
    assert main(["--root", str(fake.root), "cdi"]) == 0
    printed = capsys.readouterr()
    validate_cdi(json.loads(printed.out))
    assert "0000:00:07.0" in printed.err
    assert main(["--root", str(fake.root), "cdi", "--output", str(tmp_path / "v.json"), "--vendor", "example.com"]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["kind"] == "example.com/pci"
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'v.json'} (cdiVersion 0.5.0)")


@pytest.mark.parametrize("argv,code,words", [
    (["cdi", "--vendor", "Bad_Vendor"], 65, "DNS name"),
    (["cdi", "--refresh"], 69, "snapshot"),
    (["cdi", "--config", "/etc/nope.toml"], 66, "does not exist"),
    (["kubevirt", "--resource-prefix", "kubernetes.io"], 65, "outside kubernetes.io"),
    (["kubevirt", "--resource-prefix", "Bad"], 65, "DNS name"),
    (["kubevirt", "--config", "/etc/nope.toml"], 66, "does not exist"),
    (["labels", "--nfd-dir", "/dev/null"], 65, "already there"),
])
def test_bad_input_is_one_line_and_a_documented_code(argv, code, words, capsys):
    rc = main(["--root", SNAPSHOT] + argv)
    err = capsys.readouterr().err
    assert rc == code, err
    assert err.count("\n") == 1 and err.startswith("vfioctl: ") and "Traceback" not in err
    if words:
        assert words in err


def test_output_under_a_file_is_refused():
    with pytest.raises(InvalidInput) as e:
        cdi.write_output("/dev/null/x.json", result_with_one_device())
    assert "already there" in e.value.message


def test_output_to_a_link_through_the_cli_is_65(tmp_path, capsys):
    (tmp_path / "l.json").symlink_to(tmp_path / "t")
    assert main(["--root", SNAPSHOT, "cdi", "--output", str(tmp_path / "l.json")]) == 65
    assert not (tmp_path / "t").exists()


def test_refresh_without_a_cdi_path_says_so(fake, capsys):
    _config(fake, "")
    assert main(["--root", str(fake.root), "cdi", "--refresh"]) == 65
    assert "has no [cdi] path" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["cdi", "labels", "kubevirt"])
def test_help_has_a_description_and_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and f"vfioctl {command}" in out and "--json" in out and "--root" in out


def test_load_config_reads_the_cdi_table_from_the_host(fake):
    _config(fake, CONFIG_WITH_NAMES)
    assert load_config(fake.host(), "/etc/vfioctl/vfioctl.toml").cdi.vendor == "example.com"


# ====================================================================== pinned JSON (docs/json-schema.md)
def test_json_field_sets_are_pinned(fake, vfio_nodes, host, capsys):
    engine.hide(host, ["00:07.0"])
    assert main(["--root", str(fake.root), "cdi", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"schema", "kind", "cdiVersion", "path", "action", "devices", "left_out", "notes", "spec"}
    assert set(out["devices"][0]) == {"address", "id", "iommu_group", "names", "nodes", "companions"}
    assert main(["--root", SNAPSHOT, "cdi", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["left_out"][0]) == {"address", "reason"}
    assert main(["--root", SNAPSHOT, "labels", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"schema", "path", "labels", "failing", "hidden", "notes"}
    assert set(out["failing"][0]) == {"id", "title", "evidence"}
    assert main(["--root", SNAPSHOT, "kubevirt", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"schema", "config", "permittedHostDevices", "sources", "notes"}
    assert set(out["sources"][0]) == {"entry", "ids", "driver", "how"}


# ====================================================================== hostile input, layering
_values = st.one_of(st.text(max_size=40), st.integers(), st.booleans(), st.lists(st.text(max_size=5), max_size=3),
                    st.dictionaries(st.text(max_size=20), st.one_of(st.text(max_size=70), st.integers()), max_size=4))


@given(st.dictionaries(st.sampled_from(["path", "vendor", "annotations", "names", "other"]), _values, max_size=5))
def test_any_cdi_table_is_read_or_refused_in_one_line(table):
    from vfioctl.ops.config import _cdi

    try:
        c = _cdi("/etc/v.toml", table, [])
    except ConfigError as err:
        assert "\n" not in err.message
        return
    assert c.path is None or c.path.endswith(".json")
    for _key, name in c.names:
        assert is_cdi_device_name(name) and ":" not in name


def test_cluster_imports_nothing_above_it():
    """cluster/ may use the engine's layers, never guest/ or cli/ (imports inside functions too)."""
    import ast

    for path in (Path(__file__).parents[3] / "src" / "vfioctl" / "cluster").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for n in names:
                assert not n.startswith(("vfioctl.cli", "vfioctl.guest", "vfioctl.engine")), f"{path.name}: {n}"


def test_sriov_set_and_apply_keep_the_spec_current(fake, vfio_nodes, cli_host, capsys):
    root = str(fake.root)
    spec = fake.root / "var/run/cdi/vfioctl.json"
    _config(fake, '[[device]]\naddress = "0000:00:07.0"\nid = "8086:10d3"\n\n'
                  '[cdi]\npath = "/var/run/cdi/vfioctl.json"\n[cdi.names]\n"[[device]] #1" = "uplink"\n')
    assert main(["--root", root, "sriov", "set", "00:04.0", "2", "--hide"]) == 0
    got = {d["name"] for d in json.loads(spec.read_text())["devices"]}
    assert {"0000:00:04.1", "0000:00:04.2"} <= got and "0000:00:07.0" not in got
    assert main(["--root", root, "apply"]) == 0
    got = {d["name"] for d in json.loads(spec.read_text())["devices"]}
    assert {"0000:00:04.1", "0000:00:07.0", "uplink"} <= got
    assert main(["--root", root, "apply", "--dry-run"]) == 0  # a dry run writes nothing
    assert main(["--root", root, "restore", "--all"]) == 0
    assert not spec.exists()
