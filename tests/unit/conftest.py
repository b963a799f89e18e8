import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from fakehost import standard_host  # noqa: E402


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
