"""pytest wiring of the real-kernel lab: one VM per test session, shared by tests/vm/test_*.py.

- ``lab``: session-scoped; boots the guest once (10-40 s under TCG) and powers it off at the end.
- ``clean_lab``: autouse, function-scoped; after each test, every device must be back on the
  driver it had at boot, with no driver_override and no VFs left.  If not, it repairs the guest
  (so later tests start clean) and fails the test that left the mess.  vfio modules the test
  loaded are unloaded quietly: loading vfio-pci is a legitimate side effect of vfioctl.
- Every test here is marked ``vm``.  A missing prerequisite (no QEMU, no busybox-static) FAILS
  the tests; set VFIOCTL_SKIP_VM=1 to skip them on purpose.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lab as vmlab  # noqa: E402  (tests/vm is not a package)

SKIP_ENV = "VFIOCTL_SKIP_VM"
_LAB_KEY = pytest.StashKey["vmlab.Lab"]()


def _skip_requested() -> bool:
    return os.environ.get(SKIP_ENV, "") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"vm: runs against a real kernel in the QEMU lab (tests/vm); {SKIP_ENV}=1 skips"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"{SKIP_ENV}=1: real-kernel VM lab tests skipped on request")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.vm)
            if _skip_requested():
                item.add_marker(skip)


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> "vmlab.Lab":
    """The booted guest (see tests/vm/lab.py's Lab for the API)."""
    if _skip_requested():
        pytest.skip(f"{SKIP_ENV}=1")
    problems = vmlab.check_prereqs()
    if problems:
        pytest.fail(
            "the VM lab cannot run on this machine:\n  " + "\n  ".join(problems)
            + "\nInstall what is missing with `python3 tests/vm/lab.py prepare` (as root),"
            f" or set {SKIP_ENV}=1 to skip the VM tests deliberately.",
            pytrace=False,
        )
    try:
        booted = vmlab.Lab.boot(repo=vmlab.REPO, python=sys.executable)
    except vmlab.LabError as err:
        pytest.fail(f"the VM lab did not boot: {err}", pytrace=False)
    request.config.stash[_LAB_KEY] = booted
    request.addfinalizer(booted.close)
    return booted


@pytest.fixture(autouse=True)
def clean_lab(request: pytest.FixtureRequest, lab: "vmlab.Lab"):
    """Fail a test that leaves devices off their boot drivers; put them back for the next one."""
    modules_before = lab.modules()
    yield lab
    mess = lab.mess()
    actions = lab.tidy(modules_before=modules_before)
    if mess:
        still = lab.mess()
        pytest.fail(
            "the test left the lab's devices changed:\n  " + "\n  ".join(mess)
            + "\nrepaired with:\n  " + "\n  ".join(actions or ["(nothing done)"])
            + ("\nSTILL WRONG (later tests may fail):\n  " + "\n  ".join(still) if still else ""),
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    booted = config.stash.get(_LAB_KEY, None)
    if booted is None:
        return
    t = booted.timings
    terminalreporter.write_line(
        f"vfioctl VM lab: kernel {booted.kernel.kver}, accel={booted.accel}, "
        f"boot to agent {t.get('boot_to_agent_s', 0):.1f}s, "
        f"to settled {t.get('boot_to_settled_s', 0):.1f}s"
    )
