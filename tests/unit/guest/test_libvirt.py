"""libvirt XML: golden output, and every generated form validated against libvirt's own RelaxNG schema.

The schema comes from Debian's libvirt0 (/usr/share/libvirt/schemas/domain.rng); xmllint from
libxml2-utils; virt-xml-validate from libvirt-clients.  These tests FAIL when the tools are
missing: the schema check is the point of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vfioctl import engine
from vfioctl.base.errors import InvalidInput
from vfioctl.cli import main
from vfioctl.guest.libvirt import hostdev_xml, interface_xml
from vfioctl.pci.address import PciAddress

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "guest"
SCHEMA = "/usr/share/libvirt/schemas/domain.rng"
APT = "apt-get install -y libvirt0 libvirt-clients libxml2-utils"


def A(*texts):
    return [PciAddress.parse(t) for t in texts]


# Every form the generator has; each is checked against golden text AND the schema.
FORMS = {
    "hostdev-single": lambda: hostdev_xml(A("0000:00:07.0")),
    "hostdev-managed": lambda: hostdev_xml(A("0000:00:07.0"), managed=True),
    "hostdev-gpu-audio": lambda: hostdev_xml(A("0000:03:00.0", "0000:03:00.1")),
    "hostdev-gpu-audio-bus": lambda: hostdev_xml(A("03:00.0", "03:00.1", "05:00.0"), bus="0x01", managed=True),
    "hostdev-single-bus": lambda: hostdev_xml(A("0000:00:07.0"), bus="2"),
    "hostdev-rom-file": lambda: hostdev_xml(A("0000:03:00.0", "0000:03:00.1"), rom_file="/var/lib/vfioctl/gpu, 1.rom"),
    "hostdev-no-rom": lambda: hostdev_xml(A("0000:00:07.0"), no_rom=True),
    "interface-vf": lambda: interface_xml(A("0000:00:04.1")),
    "interface-vf-mac-vlan": lambda: interface_xml(A("0000:00:04.1"), managed=True, mac="52:54:00:AB:cd:01", vlan=42),
    "interface-vfs-vlan-slot": lambda: interface_xml(A("0000:00:04.1", "0000:00:04.2"), vlan=7, bus="1"),
}


def in_domain(fragment: str) -> str:
    """The smallest domain libvirt's schema accepts, with *fragment* as its devices."""
    return (
        "<domain type='qemu'>\n  <name>vfioctl-schema-check</name>\n  <memory unit='MiB'>64</memory>\n"
        "  <os><type arch='x86_64' machine='q35'>hvm</type></os>\n  <devices>\n"
        f"{fragment}  </devices>\n</domain>\n"
    )


def schema_tools() -> tuple[str, str]:
    xmllint = shutil.which("xmllint")
    validate = shutil.which("virt-xml-validate")
    missing = [p for p, ok in (("xmllint (libxml2-utils)", xmllint), ("virt-xml-validate (libvirt-clients)", validate),
                                (f"{SCHEMA} (libvirt0)", os.path.exists(SCHEMA))) if not ok]
    if missing:
        pytest.fail(f"libvirt schema tools missing: {', '.join(missing)}; install them: {APT}")
    return xmllint, validate  # type: ignore[return-value]


@pytest.mark.parametrize("name", sorted(FORMS))
def test_golden(name):
    text = FORMS[name]()
    path = GOLDEN / f"{name}.xml"
    assert path.exists(), f"missing golden file {path}"
    assert text == path.read_text()


@pytest.mark.parametrize("name", sorted(FORMS))
def test_valid_against_libvirt_schema(name, tmp_path):
    xmllint, validate = schema_tools()
    doc = tmp_path / f"{name}.xml"
    doc.write_text(in_domain(FORMS[name]()))
    r = subprocess.run([xmllint, "--noout", "--relaxng", SCHEMA, str(doc)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([validate, str(doc), "domain"], capture_output=True, text=True)
    assert r.returncode == 0 and "validates" in r.stdout + r.stderr, r.stdout + r.stderr


def test_the_schema_check_rejects_a_broken_hostdev(tmp_path):
    """Guard: the validation above really is strict (a wrong attribute must fail)."""
    xmllint, _ = schema_tools()
    bad = hostdev_xml(A("0000:00:07.0")).replace("managed='no'", "managed='maybe'")
    doc = tmp_path / "bad.xml"
    doc.write_text(in_domain(bad))
    r = subprocess.run([xmllint, "--noout", "--relaxng", SCHEMA, str(doc)], capture_output=True, text=True)
    assert r.returncode != 0


def test_pairing_and_sources():
    root = ET.fromstring(f"<devices>{hostdev_xml(A('03:00.1', '03:00.0'))}</devices>")
    hds = root.findall("hostdev")
    assert [h.get("managed") for h in hds] == ["no", "no"]
    assert [h.find("driver").get("name") for h in hds] == ["vfio", "vfio"]
    src = [h.find("source/address").attrib for h in hds]
    assert src == [
        {"domain": "0x0000", "bus": "0x03", "slot": "0x00", "function": "0x0"},
        {"domain": "0x0000", "bus": "0x03", "slot": "0x00", "function": "0x1"},
    ]
    guest = [h.find("address").attrib for h in hds]
    assert guest[0]["slot"] == guest[1]["slot"] == "0x10"
    assert guest[0]["multifunction"] == "on" and "multifunction" not in guest[1]
    assert [g["function"] for g in guest] == ["0x0", "0x1"]


def test_bad_values_are_refused():
    with pytest.raises(InvalidInput, match="MAC"):
        interface_xml(A("00:04.1"), mac="52:54:00:zz:00:01")
    with pytest.raises(InvalidInput, match="multicast"):
        interface_xml(A("00:04.1"), mac="01:00:5e:00:00:01")
    with pytest.raises(InvalidInput, match="VLAN"):
        interface_xml(A("00:04.1"), vlan=4096)
    with pytest.raises(InvalidInput, match="one VF"):
        interface_xml(A("00:04.1", "00:04.2"), mac="52:54:00:00:00:01")
    with pytest.raises(InvalidInput, match="bus number"):
        hostdev_xml(A("00:07.0"), bus="rp1")


# ---------------------------------------------------------------- CLI on a fake host
@pytest.fixture
def host(host, monkeypatch):
    """conftest's fake host, also as the CLI's host."""
    monkeypatch.setattr("vfioctl.cli.Context.host", property(lambda self: host))
    return host


def cli(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_refuses_unhidden_unless_managed(fake, host, capsys):
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0")
    assert rc == 69 and "`vfioctl hide 00:07.0`" in err
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0", "--managed")
    assert rc == 0 and "managed='yes'" in out
    # managed: libvirt detaches the named devices, but not the rest of their group
    rc, out, err = cli(capsys, "libvirt-xml", "01:01.0", "--managed")
    assert rc == 69 and "0000:01:02.0 (e1000)" in err


def test_cli_hook_prints_managed_no_for_a_device_not_hidden_yet(fake, host, capsys):
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0", "--hook")
    assert rc == 0 and out == (GOLDEN / "hostdev-single.xml").read_text()
    assert "hook is not installed" in err and err.count("\n") == 1
    from vfioctl.guest import hook

    (fake.root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (fake.root / "usr/bin/vfioctl").write_text("")
    hook.install(fake.host(kernel=False), vfioctl="/usr/bin/vfioctl")
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0", "--hook")
    assert rc == 0 and err == ""
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0", "--hook", "--managed")
    assert rc == 65 and "give one" in err


def test_cli_hidden_device(fake, host, capsys, tmp_path):
    engine.hide(host, ["00:07.0"])
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0")
    assert rc == 0, err
    assert out == (GOLDEN / "hostdev-single.xml").read_text()


def test_cli_interface_only_for_vfs(fake, host, capsys):
    engine.hide(host, ["00:07.0"])
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0", "--interface")
    assert rc == 65 and "SR-IOV VF" in err
    rc, out, err = cli(capsys, "libvirt-xml", "00:07.0", "--mac", "52:54:00:00:00:01")
    assert rc == 65 and "--interface" in err


def test_cli_interface_for_a_hidden_vf(fake, host, capsys):
    engine.sriov_set(host, "00:04.0", 2, hide=True)
    rc, out, err = cli(capsys, "libvirt-xml", "00:04.1", "--interface", "--mac", "52:54:00:00:00:01", "--vlan", "5")
    assert rc == 0, err
    el = ET.fromstring(out)
    assert el.tag == "interface" and el.get("type") == "hostdev"
    assert el.find("mac").get("address") == "52:54:00:00:00:01"
    assert el.find("vlan/tag").get("id") == "5"
    assert el.find("source/address").get("slot") == "0x04" and el.find("source/address").get("function") == "0x1"
