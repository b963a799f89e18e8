"""The tests mirror the source: src/vfioctl/<layer>/<module>.py has tests/unit/<layer>/test_<module>.py.

A module without a test module of its own is listed below with the reason it needs none (or
has none yet); the test fails for a module that is neither, and for a listing that no longer
holds (the module is gone, or it has a test module now), so the list stays true.
"""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent
SRC = UNIT.parents[1] / "src" / "vfioctl"


#: module (relative to src/vfioctl) -> why it has no tests/unit/<layer>/test_<module>.py
EXEMPT: dict[str, str] = {
    # trivial: nothing to test on its own
    "__main__.py": "`python -m vfioctl`: one line that calls cli.main",
    "base/version.py": "the version string, nothing else",
    "engine.py": "the public face's re-exports of ops.session: tests/unit/ops/test_session.py drives them",
    # thin CLI commands: parsing and rendering; the logic is in the library and tested there
    "cli/cmd_bind.py": "thin CLI command (hide, restore, status): tests/unit/cluster/test_cdi.py, "
                       "tests/unit/ops/plan/test_console.py and tests/unit/cli/test_fuzz_cli.py drive it",
    "cli/cmd_boot.py": "thin CLI command (boot ...): tests/unit/boot/test_installer.py and test_cmdline.py drive it",
    "cli/cmd_check.py": "thin CLI command: tests/unit/report/test_checks.py drives it",
    "cli/cmd_cluster.py": "thin CLI command (cdi, labels, kubevirt): tests/unit/cluster/ drives it",
    "cli/cmd_config.py": "thin CLI command (apply): tests/unit/ops/test_config.py drives it",
    "cli/cmd_device.py": "thin CLI command (rom, reset, assess): tests/unit/pci/test_rom.py, "
                         "tests/unit/report/test_lab_snapshot.py and tests/unit/cli/test_fuzz_cli.py drive it",
    "cli/cmd_docs.py": "thin CLI command (man, completion): tests/unit/cli/test_help.py and test_shell.py drive it",
    "cli/cmd_guest.py": "thin CLI command (qemu-args, libvirt-xml, attach, detach, libvirt-hook): tests/unit/guest/ "
                        "and tests/unit/cli/test_fuzz_cli.py drive it",
    "cli/cmd_inventory.py": "thin CLI command (list, groups, show): tests/unit/report/test_snapshot.py, "
                            "test_isolation.py and tests/unit/cli/test_schema.py drive it",
    "cli/cmd_snapshot.py": "thin CLI command: tests/unit/report/test_snapshot.py drives it",
    "cli/cmd_topology.py": "thin CLI command: tests/unit/report/test_topology.py drives it",
    "cli/cmd_sriov.py": "thin CLI command (sriov show, create, remove, set): tests/unit/ops/test_session.py, "
                        "tests/unit/ops/plan/test_sriov.py and test_vfnet.py drive it",
    # other engineers are changing these now
}

#: modules with logic that have no test module of their own yet (a debt, not an exemption):
#: module -> where they are exercised now
NOT_YET: dict[str, str] = {
}


def modules() -> set[str]:
    return {str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if p.name != "__init__.py"}


def mirror_of(rel: str) -> Path:
    p = Path(rel)
    return UNIT / p.parent / f"test_{p.stem}.py"


def test_every_module_has_a_test_module_or_a_listed_reason():
    missing = sorted(m for m in modules() if not mirror_of(m).is_file() and m not in EXEMPT and m not in NOT_YET)
    assert missing == [], ("modules without tests/unit/<layer>/test_<module>.py: add one, or list the module in "
                           f"tests/unit/test_mirror.py with the reason it needs none: {missing}")


def test_the_listings_still_hold():
    listed = {**EXEMPT, **NOT_YET}
    gone = sorted(m for m in listed if m not in modules())
    tested = sorted(m for m in listed if mirror_of(m).is_file())
    assert gone == [], f"listed in test_mirror.py but no longer in src/vfioctl: {gone}"
    assert tested == [], f"listed in test_mirror.py but tested in a module of their own now: {tested}"
    assert not set(EXEMPT) & set(NOT_YET)
    assert all(reason.strip() for reason in listed.values())


def test_mirror_of_names_the_test_module():
    assert mirror_of("ops/steps/device.py") == UNIT / "ops" / "steps" / "test_device.py"
    assert mirror_of("engine.py") == UNIT / "test_engine.py"
