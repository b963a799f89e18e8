"""pytest wiring of the real-kernel lab: one VM per kernel per test session, shared by tests/vm/test_*.py.

- ``lab``: session-scoped, parametrized by kernel (KERNELS: each of lab.KERNEL_SOURCES that
  VFIOCTL_LAB_KERNELS selects, all by default); boots each kernel once (10-40 s under TCG) and
  powers it off before the next boots.  Test ids end in the kernel: test_x[6.12].
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

# The kernels every VM test runs on, one boot each (a session-scoped parametrized fixture:
# pytest runs every test of one kernel before the next kernel boots).
try:
    KERNELS = [k.label for k in vmlab.selected_kernels()]
    _KERNELS_ERROR: Exception | None = None
except vmlab.LabSetupError as _err:
    KERNELS, _KERNELS_ERROR = [vmlab.KERNEL_SOURCES[0].label], _err


def _skip_requested() -> bool:
    return os.environ.get(SKIP_ENV, "") == "1"


def pytest_configure(config: pytest.Config) -> None:
    if _KERNELS_ERROR is not None:
        raise pytest.UsageError(str(_KERNELS_ERROR))
    config.addinivalue_line(
        "markers", f"vm: runs against a real kernel in the QEMU lab (tests/vm); {SKIP_ENV}=1 skips"
    )
    _RUNS.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason=f"{SKIP_ENV}=1: real-kernel VM lab tests skipped on request")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.vm)
            if _skip_requested():
                item.add_marker(skip)


@pytest.fixture(scope="session", params=KERNELS)
def lab(request: pytest.FixtureRequest) -> "vmlab.Lab":
    """The booted guest on one kernel (see tests/vm/lab.py's Lab for the API)."""
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
    label = request.param
    run = _run_of(label)
    try:
        booted = vmlab.Lab.boot(repo=vmlab.REPO, python=sys.executable, kernel=label)
    except vmlab.LabError as err:
        run["boot_error"] = str(err).splitlines()[0]
        pytest.fail(f"the VM lab did not boot kernel {label}: {err}", pytrace=False)
    k = booted.kernel
    run.update(kver=k.kver, package=k.package, version=k.version, suite=k.suite, accel=booted.accel,
               timings=dict(booted.timings), boot_retried=booted.boot_retried)
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


# ---------------------------------------------------------------- which kernel each test ran on
_RUNS: dict[str, dict] = {}  # kernel label -> what its lab showed, outcomes per file, seconds


def _run_of(label: str) -> dict:
    return _RUNS.setdefault(label, {"counts": {}, "files": {}, "secs": 0.0})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "lab" in callspec.params:
        report = outcome.get_result()
        report.vfioctl_kernel = callspec.params["lab"]
        report.vfioctl_file = Path(item.path).name


def _outcome(report) -> str | None:
    """The word the terminal summary counts for this report, None if it counts none."""
    xfail = hasattr(report, "wasxfail")
    if report.when == "call":
        return ("xfailed" if report.skipped else "xpassed") if xfail else report.outcome
    if report.failed:
        return "error"
    if report.when == "setup" and report.skipped:
        return "xfailed" if xfail else "skipped"
    return None


def pytest_runtest_logreport(report) -> None:
    label = getattr(report, "vfioctl_kernel", None)
    if label is None:
        return
    run = _run_of(label)
    run["secs"] += report.duration
    word = _outcome(report)
    if word:
        for bucket in (run["counts"], run["files"].setdefault(report.vfioctl_file, {})):
            bucket[word] = bucket.get(word, 0) + 1


def _counts(c: dict[str, int]) -> str:
    order = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
    return ", ".join(f"{c[k]} {k}" for k in order if c.get(k)) or "nothing run"


def pytest_terminal_summary(terminalreporter, exitstatus, config: pytest.Config) -> None:
    """One line per kernel (what booted, outcomes, time), then each VM test file per kernel."""
    if not any(r["counts"] for r in _RUNS.values()):
        return
    w = terminalreporter.write_line
    w(f"vfioctl VM lab under {vmlab.qemu_version_text() or 'QEMU (version unknown)'}:")
    for source in vmlab.KERNEL_SOURCES:
        r = _RUNS.get(source.label)
        if r is None:
            if source.label not in KERNELS:
                w(f"  kernel {source.label} ({source.release}): not run "
                  f"({vmlab.ENV_KERNELS}={os.environ.get(vmlab.ENV_KERNELS, '')})")
            continue
        t = r.get("timings", {})
        if "kver" in r:
            booted = (f"{r['package']} {r['version']} ({r['suite']}), uname {r['kver']}, accel={r['accel']}, "
                      f"boot to agent {t.get('boot_to_agent_s', 0):.1f}s, settled {t.get('boot_to_settled_s', 0):.1f}s")
        elif _skip_requested():
            booted = f"not booted ({SKIP_ENV}=1)"
        else:
            booted = f"did not boot: {r.get('boot_error', 'see the errors above')}"
        w(f"  kernel {source.label} ({source.release}): {booted}; {_counts(r['counts'])} in {r['secs']:.0f}s")
        if r.get("boot_retried"):
            w(f"    booted at the second try: the emulator failed the first boot ({r['boot_retried'].strip()[:160]})")
    files = sorted({f for r in _RUNS.values() for f in r["files"]})
    width = max(len(f) for f in files)
    for f in files:
        cells = [f"{label}: {_counts(_RUNS[label]['files'].get(f, {}))}" for label in KERNELS if label in _RUNS]
        w(f"    {f:<{width}}  " + " | ".join(cells))
