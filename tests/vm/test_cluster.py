"""CDI specs proven with podman on a real kernel (issue 25).

Debian's podman and crun (installed on the host by tests/run-all.sh; the guest runs the host's
userland) run a container from a folder made here (`--rootfs`, no image pull) with
`--device vfioctl.io/pci=NAME`; what the container sees in /dev/vfio is compared with the
kernel's own state (the group's members in /sys/kernel/iommu_groups, the driver link, /dev/vfio).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from vmhelp import writable_etc  # noqa: F401 (a fixture)

pytestmark = pytest.mark.vm

MAIN = "0000:00:02.0"
TWIN = "0000:00:07.0"
MF_A, MF_B = "0000:00:0e.0", "0000:00:0e.1"  # one IOMMU group (a multifunction slot without ACS)
SYS = "/sys/bus/pci/devices"
SPEC = "/var/run/cdi/vfioctl.json"
WORK = "/tmp/vfioctl-podman"
ROOTFS = f"{WORK}/rootfs"
# the flags that work in this guest (shared/vm-lab.md): no cgroup manager, no network, vfs storage
PODMAN = (f"podman --root {WORK}/storage --runroot {WORK}/run --storage-driver vfs --cgroup-manager cgroupfs "
          "--events-backend file --runtime crun")
KIND = "vfioctl.io/pci"

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from cdi_schema import validate_cdi  # noqa: E402


def group_of(lab, bdf: str) -> str:
    return lab.sh(f"basename $(readlink {SYS}/{bdf}/iommu_group)", check=True).out.strip()


def group_members(lab, grp: str) -> list[str]:
    return sorted(lab.sh(f"ls /sys/kernel/iommu_groups/{grp}/devices", check=True).out.split())


def spec(lab) -> dict | None:
    r = lab.sh(f"cat {SPEC}")
    return json.loads(r.out) if r.rc == 0 else None


def names(doc: dict | None) -> set[str]:
    return {d["name"] for d in doc["devices"]} if doc else set()


def run_ls(lab, name: str):
    """`ls /dev/vfio` in a container given the CDI device *name*."""
    return lab.sh(f"{PODMAN} run --rm --network none --device {KIND}={name} --rootfs {ROOTFS} /bin/ls /dev/vfio",
                  timeout=300)


@pytest.fixture(scope="module")
def podman(lab):
    missing = [t for t in ("podman", "crun", "conmon") if lab.sh(f"command -v {t}").rc != 0]
    assert not missing, f"{missing} missing from the tree the guest sees: apt-get install -y podman crun"
    lab.sh(f"mkdir -p {ROOTFS}/bin {WORK}/storage {WORK}/run && cp /bin/busybox {ROOTFS}/bin/ && "
           f"ln -sf busybox {ROOTFS}/bin/ls", check=True)
    try:
        yield
    finally:
        lab.sh(f"rm -rf {WORK} {SPEC}")


def test_cdi_spec_gives_podman_exactly_the_group_node(lab, podman):
    """hide two e1000e, write the spec: podman gives a container exactly the named device's group
    node and the container node; a device of a non-viable group is absent; after restore the spec
    no longer names the device and podman refuses the name."""
    g_main, g_twin = group_of(lab, MAIN), group_of(lab, TWIN)
    assert group_members(lab, g_main) == [MAIN], "the lab's e1000e has a group of its own"
    try:
        for dev in (MAIN, TWIN):
            r = lab.vfioctl(f"hide {dev}")
            assert r.rc == 0, r.err
            assert lab.driver(dev) == "vfio-pci"
        assert lab.sh(f"test -c /dev/vfio/{g_main} && test -c /dev/vfio/{g_twin} && test -c /dev/vfio/vfio").rc == 0
        # Debian's 6.1 kernel lists the vfio device in sysfs (vfio-dev/vfioN) but has no cdev
        # node for it (CONFIG_VFIO_DEVICE_CDEV came with 6.6): only the group interface is offered
        cdev = lab.sh(f"ls {SYS}/{MAIN}/vfio-dev", check=True).out.split()
        assert len(cdev) == 1 and cdev[0].startswith("vfio")
        assert not lab.exists(f"/dev/vfio/devices/{cdev[0]}")

        r = lab.vfioctl(f"cdi --output {SPEC}")
        assert r.rc == 0, r.err
        assert r.out.startswith(f"wrote {SPEC} (cdiVersion 0.5.0)\n  {MAIN}  [8086:10d3]  group {g_main}  "
                                f"/dev/vfio/vfio /dev/vfio/{g_main}  names: {MAIN}, pci-0000-00-02-0\n"), r.out
        doc = spec(lab)
        validate_cdi(doc)
        assert doc["cdiVersion"] == "0.5.0" and doc["kind"] == KIND
        assert lab.sh(f"stat -c %a {SPEC}", check=True).out.strip() == "644"
        assert {MAIN, "pci-0000-00-02-0", TWIN, "pci-0000-00-07-0"} <= names(doc)
        by_name = {d["name"]: d for d in doc["devices"]}
        assert [n["path"] for n in by_name[MAIN]["containerEdits"]["deviceNodes"]] == \
            ["/dev/vfio/vfio", f"/dev/vfio/{g_main}"]  # no /dev/iommu, no cdev: the kernel has none

        r = run_ls(lab, MAIN)
        assert r.rc == 0, r.err
        assert sorted(r.out.split()) == sorted([g_main, "vfio"])  # exactly the group's node and vfio
        assert "warn" not in r.err.lower(), r.err  # the spec loads without a warning

        # a group that is not viable: take the multifunction pair, then give one function back to
        # its host driver by hand, as an admin might
        r = lab.vfioctl(f"hide {MF_A} --group")
        assert r.rc == 0, r.err
        g_mf = group_of(lab, MF_A)
        assert group_members(lab, g_mf) == [MF_A, MF_B]
        lab.sh(f"echo > {SYS}/{MF_B}/driver_override && echo {MF_B} > /sys/bus/pci/drivers/vfio-pci/unbind && "
               f"echo {MF_B} > /sys/bus/pci/drivers/e1000/bind", check=True)
        assert lab.driver(MF_A) == "vfio-pci" and lab.driver(MF_B) == "e1000"
        r = lab.vfioctl(f"cdi --output {SPEC} --json")
        assert r.rc == 0, r.err
        out = json.loads(r.out)
        left = {x["address"]: x["reason"] for x in out["left_out"]}
        assert "not viable" in left[MF_A] and f"{MF_B} is on e1000" in left[MF_A]
        doc = spec(lab)
        validate_cdi(doc)
        assert not names(doc) & {MF_A, MF_B, "pci-0000-00-0e-0", "pci-0000-00-0e-1"}
        r = run_ls(lab, MF_A)
        assert r.rc != 0 and "unresolvable CDI devices" in r.err, (r.rc, r.err)
        # put the pair back the way vfioctl left it, so that restore gives both back
        lab.sh(f"echo vfio-pci > {SYS}/{MF_B}/driver_override && echo {MF_B} > /sys/bus/pci/drivers/e1000/unbind && "
               f"echo {MF_B} > /sys/bus/pci/drivers_probe", check=True)
        assert lab.driver(MF_B) == "vfio-pci"
        assert lab.vfioctl(f"restore {MF_A} {MF_B}").rc == 0

        r = lab.vfioctl(f"restore {MAIN}")
        assert r.rc == 0, r.err
        assert lab.driver(MAIN) == "e1000e"
        r = lab.vfioctl(f"cdi --output {SPEC}")
        assert r.rc == 0, r.err
        doc = spec(lab)
        validate_cdi(doc)
        assert MAIN not in names(doc) and "pci-0000-00-02-0" not in names(doc) and TWIN in names(doc)
        r = run_ls(lab, MAIN)
        assert r.rc != 0 and f"unresolvable CDI devices {KIND}={MAIN}" in r.err, (r.rc, r.err)
        r = run_ls(lab, TWIN)  # the rewritten spec still loads
        assert r.rc == 0, r.err
        assert sorted(r.out.split()) == sorted([g_twin, "vfio"])
    finally:
        lab.vfioctl("restore --all")
        lab.sh(f"rm -f {SPEC}")


def test_spec_kept_current_by_apply_hide_and_restore(lab, podman, writable_etc):
    """[cdi] path in the config: apply, hide and restore rewrite the spec themselves; a name from
    [cdi.names] reaches podman; when nothing is hidden any more the spec is gone."""
    config = (f'[[device]]\naddress = "{TWIN}"\nid = "8086:10d3"\n\n'
              f'[cdi]\npath = "{SPEC}"\n\n[cdi.names]\n"[[device]] #1" = "uplink"\n')
    lab.sh("mkdir -p /etc/vfioctl && cat > /etc/vfioctl/vfioctl.toml", input=config, check=True)
    g_twin = group_of(lab, TWIN)
    try:
        r = lab.vfioctl("apply")
        assert r.rc == 0, r.err
        assert lab.driver(TWIN) == "vfio-pci"
        doc = spec(lab)
        validate_cdi(doc)
        assert {TWIN, "uplink"} <= names(doc) and MAIN not in names(doc)
        r = run_ls(lab, "uplink")
        assert r.rc == 0, r.err
        assert sorted(r.out.split()) == sorted([g_twin, "vfio"])

        assert lab.vfioctl(f"hide {MAIN}").rc == 0
        assert {MAIN, TWIN, "uplink"} <= names(spec(lab))
        assert lab.vfioctl(f"restore {MAIN}").rc == 0
        assert MAIN not in names(spec(lab)) and TWIN in names(spec(lab))

        assert lab.vfioctl(f"restore {TWIN}").rc == 0
        assert lab.driver(TWIN) == "e1000e"
        assert not lab.exists(SPEC), "nothing is published: the spec is removed"
        r = run_ls(lab, "uplink")
        assert r.rc != 0 and "unresolvable CDI devices" in r.err, (r.rc, r.err)
    finally:
        lab.vfioctl("restore --all")
        lab.sh(f"rm -f /etc/vfioctl/vfioctl.toml {SPEC}")
