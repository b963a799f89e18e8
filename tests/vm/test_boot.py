"""Issue 8 on a real kernel: `apply` of a config, and simulated boots with the files of
`boot install` in place.  Every assertion reads the guest's sysfs or kernel log.

The guest's /etc is the read-only 9p root: the tests copy it to a tmpfs and bind-mount the
copy over /etc (vm-lab.md, 2026-11-26), and unmount it afterwards.
"""

from __future__ import annotations

import json
import shlex

import pytest
from vmhelp import writable_etc  # noqa: F401 (a fixture)

pytestmark = pytest.mark.vm

MAIN = "0000:00:02.0"  # stays with the host
TWIN = "0000:00:07.0"  # same vendor:device, declared for vfio-pci
NVME = "0000:00:04.0"
SYS = "/sys/bus/pci/devices"
CONF = "/etc/vfioctl/vfioctl.toml"

TWIN_CONFIG = f"""
[[device]]
address = "{TWIN}"
id = "8086:10d3"
"""


def override(lab, bdf: str) -> str:
    return lab.read(f"{SYS}/{bdf}/driver_override")


def vfs(lab, pf: str) -> list[str]:
    out = lab.sh(f"for l in {SYS}/{pf}/virtfn*; do [ -e \"$l\" ] && basename $(readlink $l); done; true").out
    return out.split()


def probed_by(lab, driver: str, bdf: str, mark: str) -> bool:
    """Did *driver* log a probe of *bdf* since *mark* (lab.log_mark())?"""
    return f"{driver} {bdf}" in lab.log_since(mark)


@pytest.fixture
def clean(lab):
    """Leave the devices as the test found them, whatever it did."""
    before = lab.modules()
    yield
    lab.vfioctl("restore --all", timeout=180)
    for action in lab.tidy(modules_before=before):
        print("tidy:", action)
    assert lab.mess() == []


def write_config(lab, text: str, path: str = CONF) -> None:
    lab.sh(f"mkdir -p $(dirname {path}) && cat > {path}", input=text, check=True)


def apply_json(lab, *args: str) -> dict:
    r = lab.vfioctl(f"apply --config {CONF} --json {' '.join(args)}", timeout=180)
    assert r.rc == 0, r.err
    return json.loads(r.out)


# ---------------------------------------------------------------- 1. apply: one of two twins
def test_apply_takes_one_twin_then_has_nothing_to_do(lab, writable_etc, clean):
    write_config(lab, TWIN_CONFIG)
    assert lab.driver(MAIN) == lab.driver(TWIN) == "e1000e"
    out = apply_json(lab)
    assert [c["address"] for c in out["changes"]] == [TWIN]
    assert lab.driver(TWIN) == "vfio-pci"
    assert lab.driver(MAIN) == "e1000e"
    assert override(lab, MAIN) == "(null)"

    # converged: the second apply plans nothing and writes nothing
    before = lab.pci()
    out = apply_json(lab)
    assert out["changes"] == []
    assert lab.pci() == before

    r = lab.vfioctl("restore --all", timeout=180)
    assert r.rc == 0, r.err
    assert lab.driver(TWIN) == "e1000e"
    assert override(lab, TWIN) == "(null)"


# ---------------------------------------------------------------- 4. a changed device refuses all
def test_apply_refuses_a_config_whose_id_does_not_match(lab, writable_etc, clean):
    write_config(lab, TWIN_CONFIG + f'\n[[device]]\naddress = "{MAIN}"\nid = "8086:1533"\n')
    before = lab.pci()
    journal = lab.sh("cat /var/lib/vfioctl/state.json 2>/dev/null; true").out
    r = lab.vfioctl(f"apply --config {CONF}", timeout=180)
    assert r.rc == 69
    assert f"expected 8086:1533 at {MAIN}, found 8086:10d3" in r.err
    assert lab.pci() == before  # TWIN, which matched, was not touched either
    assert lab.sh("cat /var/lib/vfioctl/state.json 2>/dev/null; true").out == journal


# ---------------------------------------------------------------- 3. SR-IOV
def test_apply_sriov_hide_then_restore(lab, writable_etc, clean):
    write_config(lab, f'[[sriov]]\npf = "{NVME}"\nnumvfs = 2\nhide = true\n')
    autoprobe = lab.read(f"{SYS}/{NVME}/sriov_drivers_autoprobe")
    mark = lab.log_mark()
    apply_json(lab)
    created = vfs(lab, NVME)
    assert lab.read(f"{SYS}/{NVME}/sriov_numvfs") == "2" and len(created) == 2
    for vf in created:
        assert lab.driver(vf) == "vfio-pci"
        assert not probed_by(lab, "nvme", vf, mark), "autoprobe was on while the VFs were created"
    # autoprobe stays off while the hidden VFs exist (the declared state); restore puts it back
    assert lab.read(f"{SYS}/{NVME}/sriov_drivers_autoprobe") == "0"
    assert apply_json(lab)["changes"] == []
    r = lab.vfioctl("restore --all", timeout=180)
    assert r.rc == 0, r.err
    assert lab.read(f"{SYS}/{NVME}/sriov_numvfs") == "0"
    assert vfs(lab, NVME) == []
    assert lab.read(f"{SYS}/{NVME}/sriov_drivers_autoprobe") == autoprobe


# ---------------------------------------------------------------- 2. simulated boots
def install_boot_files(lab) -> str:
    """`boot install` for TWIN_CONFIG; returns the unit's ExecStart command."""
    write_config(lab, TWIN_CONFIG)
    cmd = f"{lab.python} -m vfioctl"
    r = lab.vfioctl(f"boot install --config {CONF} --vfioctl {shlex.quote(cmd)} --json", timeout=180)
    assert r.rc == 0, r.err
    paths = [f["path"] for f in json.loads(r.out)["files"]]
    assert "/etc/modprobe.d/vfioctl.conf" in paths
    conf = lab.read("/etc/modprobe.d/vfioctl.conf")
    assert "install e1000e /bin/sh /etc/vfioctl/boot-hook.sh ;" in conf
    assert "options vfio_pci ids" not in conf  # 8086:10d3 is MAIN's ID too
    # udev must not rename the interfaces of the lab's other NICs
    lab.sh("mkdir -p /etc/systemd/network && printf '[Match]\\nOriginalName=*\\n[Link]\\nNamePolicy=\\n'"
           " > /etc/systemd/network/99-default.link", check=True)
    unit = lab.read("/etc/systemd/system/vfioctl-apply.service")
    return next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart="))


def power_off_drivers(lab) -> str:
    """As at boot: no host driver for the twins, no vfio-pci, no overrides."""
    lab.vfioctl("restore --all", timeout=180)
    lab.sh(f"for d in {MAIN} {TWIN}; do echo > {SYS}/$d/driver_override; done", check=True)
    lab.sh("modprobe -r e1000e; modprobe -r vfio_pci; true", timeout=60)
    assert lab.driver(MAIN) is None and lab.driver(TWIN) is None
    assert "vfio_pci" not in lab.modules()
    return lab.log_mark()


def coldplug(lab) -> None:
    env = {"SYSTEMD_IGNORE_CHROOT": "1"}
    lab.sh("/lib/systemd/systemd-udevd --daemon", env=env, check=True)
    try:
        # only the twins: the lab's other devices must keep their boot state
        lab.sh("udevadm trigger --action=add --subsystem-match=pci "
               "--attr-match=vendor=0x8086 --attr-match=device=0x10d3 && udevadm settle --timeout=120",
               env=env, timeout=180, check=True)
    finally:
        lab.sh("udevadm control --exit", env=env, timeout=60)


def assert_booted(lab, mark: str) -> None:
    assert lab.driver(TWIN) == "vfio-pci"
    assert lab.driver(MAIN) == "e1000e"
    assert override(lab, TWIN) == "vfio-pci"
    assert override(lab, MAIN) == "(null)"
    assert not probed_by(lab, "e1000e", TWIN, mark), "e1000e bound the declared device before vfio-pci"
    assert probed_by(lab, "e1000e", MAIN, mark)


def test_boot_twin_driver_loads_first(lab, writable_etc, clean):
    """2a: `modprobe e1000e` (as for the twin) runs the install hook first."""
    install_boot_files(lab)
    try:
        mark = power_off_drivers(lab)
        r = lab.sh("modprobe e1000e", timeout=120)
        assert r.rc == 0, r.err
        assert_booted(lab, mark)
    finally:
        lab.vfioctl("boot uninstall", timeout=120)


def test_boot_udev_coldplug_then_unit(lab, writable_etc, clean):
    """2b: udev coldplug as at boot, then vfioctl-apply.service's ExecStart."""
    execstart = install_boot_files(lab)
    try:
        mark = power_off_drivers(lab)
        coldplug(lab)
        assert_booted(lab, mark)
        r = lab.sh(execstart, env={"PYTHONPATH": f"{lab.repo}/src"}, timeout=180)
        assert r.rc == 0, r.err
        assert_booted(lab, mark)
    finally:
        lab.vfioctl("boot uninstall", timeout=120)


def test_boot_vfio_pci_already_loaded(lab, writable_etc, clean):
    """2c: vfio-pci loaded before any override is written: the hook must probe again."""
    execstart = install_boot_files(lab)
    try:
        mark = power_off_drivers(lab)
        lab.sh("modprobe vfio-pci", check=True)
        assert lab.driver(TWIN) is None  # an override-less vfio-pci binds nothing
        coldplug(lab)
        assert_booted(lab, mark)
        r = lab.sh(execstart, env={"PYTHONPATH": f"{lab.repo}/src"}, timeout=180)
        assert r.rc == 0, r.err
        assert_booted(lab, mark)
    finally:
        lab.vfioctl("boot uninstall", timeout=120)


def test_uninstall_removes_exactly_the_files(lab, writable_etc, clean):
    write_config(lab, TWIN_CONFIG)
    lab.sh("touch /etc/modprobe.d/someone-else.conf", check=True)
    r = lab.vfioctl(f"boot install --config {CONF} --vfioctl {shlex.quote(lab.python + ' -m vfioctl')} --json",
                    timeout=180)
    assert r.rc == 0, r.err
    installed = [f["path"] for f in json.loads(r.out)["files"]]
    for p in installed:
        assert lab.exists(p)
    r = lab.vfioctl("boot uninstall --json", timeout=120)
    assert r.rc == 0, r.err
    assert sorted(json.loads(r.out)["removed"]) == sorted(installed)
    for p in installed:
        assert not lab.exists(p)
    assert lab.exists("/etc/modprobe.d/someone-else.conf")
    assert lab.exists(CONF)
