import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from fakehost import standard_host  # noqa: E402
from groupscenarios import SNAP_64  # noqa: E402


@pytest.fixture
def fake(tmp_path):
    """A FakeHostBuilder with the lab-like standard layout."""
    return standard_host(tmp_path / "root")


@pytest.fixture
def host(fake, monkeypatch):
    """The fake host with its simulated PCI core; `modprobe X` registers driver X."""
    monkeypatch.setenv("VFIOCTL_VERIFY_TIMEOUT", "0.2")
    h = fake.host()

    def modprobe(host_, argv):
        if argv[0] != "modprobe":
            return 127, f"{argv[0]}: not simulated"
        fake.driver(argv[-1].replace("_", "-"))
        return 0, ""

    h.run_hook = modprobe
    return h


@pytest.fixture
def lab(tmp_path):
    """The 0.1.0 lab snapshot (64 bytes of config space), unpacked: these tests read a folder root."""
    with tarfile.open(SNAP_64) as tar:
        # Our own committed archive.  The "data" filter (its links stay inside, no device files)
        # where this Python has extraction filters (3.11.4+; Debian 12's 3.11.2 has none): without
        # one, 3.12 and 3.13 warn that 3.14 changes the default.
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path, filter="data")
        else:
            tar.extractall(tmp_path)
    return tmp_path / "root"


@pytest.fixture
def nic(fake, host, monkeypatch):
    """An SR-IOV NIC PF (00:08.0, enp0s8, 2 VFs) whose VF settings a fake netlink hook keeps
    (tests/unit/vfnic.py)."""
    from vfnic import make_nic

    return make_nic(fake, host, monkeypatch)
