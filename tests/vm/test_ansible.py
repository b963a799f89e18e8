"""The vfioctl.vfio Ansible collection on a real kernel (issue 9).

ansible-playbook runs in the lab guest (``-i localhost, -c local``) from the venv that
tests/ansible/run.sh makes on this machine: the guest's chroot is this machine's root, so the
venv (under the repo) and its vfioctl (an editable install of this checkout) are there at the
same paths.  The collection is built and installed here with ansible-galaxy, into a folder
under that venv which the guests read as their collections path (installing it in each guest
took about 40 s of TCG per guest).
One playbook run (ansible-playbook alone takes about a minute to start under TCG, and each
module run tens of seconds): tests/ansible/lab/play.yml, facts, check mode, hide, hide again,
restore, and a hide refused because the interface is in use.  Results come from a JSON stdout
callback (tests/ansible/callback_plugins); the play reads the driver links between steps, and
this test reads sysfs itself before and after.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import lab as vmlab
import pytest

pytestmark = pytest.mark.vm

ANSIBLE_DIR = vmlab.REPO / "tests" / "ansible"
VENV = Path(os.environ.get("VFIOCTL_ANSIBLE_VENV", ANSIBLE_DIR / ".venv"))
GUEST_DIR = "/tmp/vfioctl-ansible"  # a tmpfs in the guest
MAIN, TWIN = vmlab.MAIN_NIC, vmlab.TWIN_NIC
SYS = "/sys/bus/pci/devices"
PLAYBOOK_TIMEOUT = 900  # a loaded 2-core machine under TCG took ~6 min


class Ansible:
    def __init__(self, lab: vmlab.Lab, venv: Path, collections: Path) -> None:
        self.lab = lab
        self.venv = venv
        self.env = {
            "HOME": f"{GUEST_DIR}/home",
            "ANSIBLE_HOME": f"{GUEST_DIR}/home/.ansible",
            "ANSIBLE_REMOTE_TMP": f"{GUEST_DIR}/remote-tmp",
            "ANSIBLE_LOCAL_TEMP": f"{GUEST_DIR}/local-tmp",
            "ANSIBLE_COLLECTIONS_PATH": str(collections),
            "ANSIBLE_CALLBACK_PLUGINS": str(ANSIBLE_DIR / "callback_plugins"),
            "ANSIBLE_STDOUT_CALLBACK": "vfioctl_json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def sh(self, cmd: str, **kw) -> vmlab.Result:
        return self.lab.sh(cmd, env=self.env, **kw)

    def playbook(self, name: str, *args: str) -> tuple[vmlab.Result, dict]:
        """Run tests/ansible/lab/<name> against the guest itself; (result, the JSON document)."""
        py = self.venv / "bin" / "python"
        cmd = [str(self.venv / "bin" / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", f"ansible_python_interpreter={py}", *args, str(ANSIBLE_DIR / "lab" / name)]
        r = self.sh(shlex.join(cmd), timeout=PLAYBOOK_TIMEOUT)
        try:
            doc = json.loads(r.out)
        except ValueError:
            pytest.fail(f"{name}: no JSON from ansible-playbook (rc={r.rc}, {r.secs:.0f}s)\n"
                        f"--- stdout ---\n{r.out[-4000:]}\n--- stderr ---\n{r.err[-4000:]}")
        return r, doc


def task(doc: dict, name: str, host: str = "localhost") -> dict:
    """The result of the task called *name* (the last one if repeated)."""
    found = [t["hosts"][host] for p in doc["plays"] for t in p["tasks"]
             if t["task"]["name"] == name and host in t["hosts"]]
    assert found, f"no result for task {name!r}: {[t['task']['name'] for p in doc['plays'] for t in p['tasks']]}"
    return found[-1]


def ensure_venv() -> None:
    if (VENV / "bin" / "ansible-playbook").exists():
        return
    subprocess.run([str(ANSIBLE_DIR / "run.sh"), "venv"], check=True, timeout=900)


@pytest.fixture(scope="module")
def collections() -> Iterator[Path]:
    """The collection built and installed here, in a new folder under the venv: this machine's
    tree is the guests' root, so they read it at the same path (a new name: the guests' 9p
    cache has never looked it up)."""
    ensure_venv()
    galaxy = str(VENV / "bin" / "ansible-galaxy")
    dest = Path(tempfile.mkdtemp(prefix="lab-collections-", dir=VENV))
    try:
        with tempfile.TemporaryDirectory() as out:
            subprocess.run([galaxy, "collection", "build", "--output-path", out, str(vmlab.REPO / "ansible")],
                           check=True, capture_output=True, timeout=120)
            (tarball,) = Path(out).glob("vfioctl-vfio-*.tar.gz")
            subprocess.run([galaxy, "collection", "install", "-p", str(dest), str(tarball)],
                           check=True, capture_output=True, timeout=300)
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def ansible_for(guest: vmlab.Lab, collections: Path) -> Ansible:
    """An Ansible runner for *guest*: its writable folders made, the collection seen there."""
    a = Ansible(guest, VENV, collections)
    guest.sh(f"mkdir -p {GUEST_DIR}/home {GUEST_DIR}/remote-tmp {GUEST_DIR}/local-tmp", check=True)
    assert guest.exists(f"{collections}/ansible_collections/vfioctl/vfio/plugins/modules/device.py")
    return a


@pytest.fixture(scope="module")
def ansible(lab: vmlab.Lab, collections: Path) -> Ansible:
    """The Ansible venv and the collection, checked in the guest."""
    return ansible_for(lab, collections)


def drv_link(result: dict) -> str:
    return os.path.basename(result["stat"]["lnk_target"])


def iface_of(lab: vmlab.Lab, bdf: str) -> str:
    names = lab.sh(f"ls {SYS}/{bdf}/net", check=True).out.split()
    assert names, f"{bdf} has a network interface"
    return names[0]


def fact(doc: dict, name: str, key: str) -> str:
    return task(doc, name)["ansible_facts"][key]


def test_playbook_check_hide_idempotent_restore_in_use(lab, ansible):
    group = os.path.basename(lab.readlink(f"{SYS}/{MAIN}/iommu_group") or "")
    assert lab.driver(MAIN) == "e1000e" and lab.driver(TWIN) == "e1000e"
    twin_if = iface_of(lab, TWIN)
    was_up = int(lab.read(f"/sys/class/net/{twin_if}/flags"), 16) & 1
    # the twin is in use: the play's last hide must be refused
    lab.sh(f"ip link set {twin_if} up && ip addr add 192.0.2.10/24 dev {twin_if} && "
           f"ip route add 198.51.100.0/24 via 192.0.2.1 dev {twin_if}", check=True)
    try:
        r, doc = ansible.playbook("play.yml")
        assert r.rc == 0, json.dumps(doc, indent=1)[-6000:]
        stats = doc["stats"]["localhost"]
        assert stats["failures"] == 0 and stats["ignored"] == 1
        assert stats["changed"] == 3  # check mode, hide, restore

        facts = task(doc, "Gather vfioctl facts")["ansible_facts"]["vfioctl"]
        assert {d["address"]: d["driver"] for d in facts["devices"]}[MAIN] == "e1000e"
        assert any(m["address"] == MAIN for g in facts["groups"]["groups"] for m in g["members"])
        assert [p["pf"] for p in facts["sriov"]] == [vmlab.NVME_PF]
        assert facts["checks"]["findings"] and isinstance(facts["ready"], bool)

        # check mode: reports the change, writes nothing
        check = task(doc, "Hide the NIC in check mode")
        assert check["changed"] is True
        assert [c["address"] for c in check["plan"]["changes"]] == [MAIN]
        assert "done" not in check
        assert check["diff"]["before"] == f"{MAIN}: e1000e\n"
        assert check["diff"]["after"] == f"{MAIN}: vfio-pci\n"
        assert fact(doc, "Read the driver link after check mode", "after_check") == "e1000e"

        # the real run: on vfio-pci, verified by vfioctl and read back from sysfs
        hide = task(doc, "Hide the NIC")
        assert hide["changed"] is True
        assert hide["diff"]["after"] == f"{MAIN}: vfio-pci\n"
        assert hide["devices"][0]["driver"] == "vfio-pci"
        assert any(s["path"] == "/sys/bus/pci/drivers_probe" for s in hide["done"])
        assert fact(doc, "Read the driver link after the hide", "after_hide") == "vfio-pci"

        # the same task again: nothing written
        again = task(doc, "Hide the NIC again")
        assert again["changed"] is False and again["done"] == []
        assert again["diff"]["before"] == again["diff"]["after"] == f"{MAIN}: vfio-pci\n"

        restore = task(doc, "Restore the NIC")
        assert restore["changed"] is True
        assert restore["diff"] == {"before_header": "PCI drivers (before)", "after_header": "PCI drivers (after)",
                                   "before": f"{MAIN}: vfio-pci\n", "after": f"{MAIN}: e1000e\n"}
        assert fact(doc, "Read the driver link after the restore", "after_restore") == "e1000e"

        # in use: a failure with vfioctl's evidence, nothing changed
        in_use = task(doc, "Hide the twin, whose interface carries an address and a route")
        assert in_use["failed"] is True and in_use["changed"] is False
        assert in_use["exit_code"] == 69 and in_use["error"]["error"] == "InUse"
        msg = in_use["msg"]
        assert msg.startswith("refusing: the host is using")
        assert twin_if in msg and "192.0.2.10/24" in msg and "198.51.100.0/24" in msg
        assert fact(doc, "Read the twin's driver link after the refusal", "twin_after") == "e1000e"

        # what the kernel shows now, read here
        assert lab.driver(MAIN) == "e1000e" and lab.driver(TWIN) == "e1000e"
        assert lab.read(f"{SYS}/{MAIN}/driver_override") == "(null)"
        assert lab.read(f"{SYS}/{TWIN}/driver_override") == "(null)"
        assert not lab.exists(f"/dev/vfio/{group}")
        journal = json.loads(lab.read("/var/lib/vfioctl/state.json"))
        assert journal["devices"] == {}
    finally:
        lab.sh(f"ip route del 198.51.100.0/24 dev {twin_if}; ip addr flush dev {twin_if}"
               + ("" if was_up else f"; ip link set {twin_if} down"))
        if lab.driver(MAIN) != "e1000e":
            lab.vfioctl(f"restore {MAIN}")


# ---------------------------------------------------------------- one playbook, two host shapes
@pytest.fixture(scope="module")
def lab_b(lab):
    """A second guest whose twins sit elsewhere (tests/vm/lab.py layout "b"), with the collection."""
    other = vmlab.Lab.boot(repo=vmlab.REPO, python=lab.python, layout="b", kernel=lab.kernel)
    try:
        assert {b: d["driver"] for b, d in other.boot_pci.items()} == vmlab.BOOT_LAYOUT_B
        yield other
    finally:
        other.close()


def test_one_fleet_playbook_on_two_host_shapes(lab, ansible, lab_b, collections):
    b = ansible_for(lab_b, collections)
    hosts = ((lab, ansible, MAIN), (lab_b, b, "0000:00:09.0"))
    befores = [guest.pci(brief=True) for guest, _, _ in hosts]
    try:
        # Two independent machines: their playbooks run at the same time (minutes each under
        # TCG, mostly ansible-playbook's start-up and Python starting for each module run).
        with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
            runs = list(pool.map(lambda h: h[1].playbook("fleet.yml"), hosts))
        for (guest, _, want), before, (r, doc) in zip(hosts, befores, runs):
            assert r.rc == 0, json.dumps(doc, indent=1)[-6000:]
            check = task(doc, "Take one in check mode")
            assert check["changed"] is True and "done" not in check
            assert [c["address"] for c in check["plan"]["changes"]] == [want]
            assert fact(doc, "Read the driver link after check mode", "after_check") == "e1000e"
            take = task(doc, "Take one")
            assert take["changed"] is True and [c["address"] for c in take["plan"]["changes"]] == [want]
            assert fact(doc, "Read the driver link after taking it", "after_take") == "vfio-pci"
            again = task(doc, "Take one again")
            assert again["changed"] is False and again.get("done") == []
            status = task(doc, "Which entry holds which device")["ansible_facts"]["vfioctl"]["status"]
            held = {d["address"]: d["entry"] for d in status["devices"]}
            assert list(held) == [want] and held[want].startswith("ansible: match")
            back = task(doc, "Give it back")
            assert back["changed"] is True
            assert guest.driver(want) == "e1000e"
            assert guest.pci(brief=True) == before
    finally:
        for guest, _, want in hosts:
            if guest.driver(want) != "e1000e":
                guest.vfioctl(f"restore {want}")
