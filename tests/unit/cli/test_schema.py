"""The documented JSON field sets (docs/json-schema.md) are stable: pin them."""

import io
import json
from contextlib import redirect_stdout

from vfioctl.cli import main

LIST_KEYS = {"address", "class", "class_name", "vendor_id", "vendor_name", "device_id", "device_name",
             "subsystem_vendor_id", "subsystem_device_id", "driver", "iommu_group", "physfn", "reset_methods"}
GROUP_KEYS = {"group", "viable", "blockers", "vfio_node", "members"}
MEMBER_KEYS = {"address", "role", "companion_of", "driver", "class", "vendor_id", "device_id",
               "vendor_name", "device_name", "class_name"}


def run_json(*argv):
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(list(argv))
    return rc, json.loads(buf.getvalue())


def test_list_schema(fake):
    rc, data = run_json("list", "--json", "--root", str(fake.root))
    assert rc == 0 and data["schema"] == "vfioctl.list/1"
    assert len(data["devices"]) == 11
    for d in data["devices"]:
        assert set(d) == LIST_KEYS
    e = next(d for d in data["devices"] if d["address"] == "0000:00:02.0")
    assert (e["vendor_id"], e["device_id"], e["driver"], e["iommu_group"], e["class"]) == ("8086", "10d3", "e1000e", 2, "020000")


def test_groups_schema(fake):
    rc, data = run_json("groups", "--json", "--root", str(fake.root))
    assert rc == 0 and data["schema"] == "vfioctl.groups/1" and data["iommu_enabled"] is True
    for g in data["groups"]:
        assert set(g) == GROUP_KEYS
        for m in g["members"]:
            assert set(m) == MEMBER_KEYS
    g5 = next(g for g in data["groups"] if g["group"] == 5)
    assert [(m["address"], m["role"]) for m in g5["members"]] == [
        ("0000:00:05.0", "bridge"), ("0000:01:01.0", "endpoint"), ("0000:01:02.0", "endpoint")]
    assert g5["viable"] is False and g5["blockers"] == ["0000:01:01.0", "0000:01:02.0"]


def test_filters(fake):
    rc, data = run_json("list", "--json", "--root", str(fake.root), "--class", "02")
    assert {d["address"] for d in data["devices"]} == {"0000:00:02.0", "0000:00:07.0", "0000:01:01.0", "0000:01:02.0"}
    rc, data = run_json("list", "--json", "--root", str(fake.root), "--id", "8086:10d3")
    assert [d["address"] for d in data["devices"]] == ["0000:00:02.0", "0000:00:07.0"]
    rc, data = run_json("list", "--json", "--root", str(fake.root), "--driver", "none")
    assert [d["address"] for d in data["devices"]] == ["0000:00:00.0", "0000:00:05.0"]


def test_error_json_and_exit_code(fake, capsys):
    rc = main(["show", "zz:00.0", "--json", "--root", str(fake.root)])
    out = capsys.readouterr()
    assert rc == 65
    assert json.loads(out.out)["error"] == "InvalidAddress"
    assert out.err.count("\n") == 1 and out.err.startswith("vfioctl: invalid PCI address 'zz:00.0'")


def test_groups_text_prints_addresses_verbatim(fake, capsys):
    """Regression: rich's emoji codes turned 0000:ab:00.0 into an emoji; the tree is plain text now."""
    from fakehost import FakeDev

    fake.add(FakeDev("0000:ab:00.0", "10de", "2204", cls=0x030000, group=20, driver="nouveau"))
    fake.add(FakeDev("0000:ab:00.1", "10de", "1aef", cls=0x040300, group=20, driver="snd_hda_intel"))
    assert main(["groups", "--root", str(fake.root)]) == 0
    out = capsys.readouterr().out
    assert "├── 0000:ab:00.0  [10de:2204]  endpoint" in out
    assert "└── 0000:ab:00.1  [10de:1aef]  companion    driver=snd_hda_intel" in out
    assert out.rstrip().endswith("(companion of 0000:ab:00.0)")
    assert "group 20  not viable (host drivers: 0000:ab:00.0, 0000:ab:00.1)" in out
