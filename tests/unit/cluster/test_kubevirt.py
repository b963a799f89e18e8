"""vfioctl.cluster.kubevirt: the KubeVirt permittedHostDevices fragment, against KubeVirt's CRD schema
(kept in tests/unit/data, sources in its README)."""

from __future__ import annotations

import json

import yaml
from cdi_schema import validate_permitted_host_devices
from clusterdata import GOLDEN, SNAPSHOT

from vfioctl.cli import main
from vfioctl.cluster import kubevirt
from vfioctl.ops.config import parse_config


def test_kubevirt_for_the_lab_snapshot_equals_the_golden_file_and_the_crd(capsys):
    assert main(["--root", SNAPSHOT, "kubevirt"]) == 0
    out = capsys.readouterr().out
    assert out == (GOLDEN / "kubevirt.yaml").read_text()
    doc = yaml.safe_load(out)
    assert list(doc) == ["permittedHostDevices"]
    validate_permitted_host_devices(doc["permittedHostDevices"])
    assert main(["--root", SNAPSHOT, "kubevirt", "--json"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["permittedHostDevices"] == doc["permittedHostDevices"]


def kv_config(text, path="/etc/v.toml"):
    return parse_config(text, path)


def test_kubevirt_entries_from_config_kinds(host):
    c = kv_config('''
[[device]]
address = "0000:01:01.0"
id = "8086:100e"
group = true

[[device]]
match = { id = ["10de:2335", "10de:22e8"], class = "gpu" }

[[device]]
match = { class = "nvme" }

[[device]]
address = "0000:00:07.0"
id = "8086:10d3"
driver = "pci-stub"
''')
    sources, notes = kubevirt.gather(host, c)
    frag = kubevirt.build(sources, "example.com", config=c.path, notes=notes)
    assert [d["pciVendorSelector"] for d in frag.devices] == ["10de:22e8", "10de:2335", "1b36:0010", "8086:100e"]
    assert frag.devices[0] == {"pciVendorSelector": "10de:22e8", "resourceName": "example.com/10de_22e8",
                               "externalResourceProvider": False}
    assert any("pci-stub" in n for n in frag.notes) and any("vendor:device only" in n for n in frag.notes)
    validate_permitted_host_devices(yaml.safe_load(kubevirt.render(frag))["permittedHostDevices"])


def test_kubevirt_with_nothing_is_an_empty_list(host):
    sources, notes = kubevirt.gather(host, kv_config('[[device]]\nmatch = { class = "usb" }\n'))
    frag = kubevirt.build(sources, notes=notes)
    doc = yaml.safe_load(kubevirt.render(frag))
    assert doc == {"permittedHostDevices": {"pciHostDevices": []}}
    validate_permitted_host_devices(doc["permittedHostDevices"])
    assert frag.notes == ["/etc/v.toml: [[device]] #1: class 0c03 matches nothing on this host"]


def test_kubevirt_needs_a_config(fake, capsys):
    assert main(["--root", str(fake.root), "kubevirt"]) == 66
    assert "does not exist" in capsys.readouterr().err
