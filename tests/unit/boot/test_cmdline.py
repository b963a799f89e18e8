"""`vfioctl boot cmdline` on fixture trees of a Debian GRUB, a Fedora BLS/grubby and a systemd-boot host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vfioctl.base.errors import HostNotReady, InvalidInput, Refused
from vfioctl.boot import cmdline
from vfioctl.cli import main
from vfioctl.host.core import Host

DEBIAN_GRUB = """\
# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
"""

FEDORA_GRUB = """\
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_CMDLINE_LINUX="rhgb quiet"
GRUB_ENABLE_BLSCFG=true
"""

BLS = """\
title Fedora Linux (6.5.6-300.fc39.x86_64) 39 (Workstation Edition)
version 6.5.6-300.fc39.x86_64
linux /vmlinuz-6.5.6-300.fc39.x86_64
initrd /initramfs-6.5.6-300.fc39.x86_64.img
options root=UUID=1234 ro rhgb quiet
grub_users $grub_users
"""


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "root"
    for path, text in files.items():
        f = root / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    (root / "proc/sys/kernel").mkdir(parents=True, exist_ok=True)
    (root / "proc/sys/kernel/osrelease").write_text("6.1.0-test-amd64\n")
    return root


@pytest.fixture
def debian(tmp_path):
    return tree(tmp_path, {"/etc/default/grub": DEBIAN_GRUB, "/usr/sbin/update-grub": ""})


@pytest.fixture
def fedora(tmp_path):
    return tree(tmp_path, {"/etc/default/grub": FEDORA_GRUB, "/usr/sbin/grubby": "",
                           "/boot/loader/entries/abc-6.5.6-300.fc39.x86_64.conf": BLS,
                           "/boot/loader/entries/abc-0-rescue.conf": BLS.replace("6.5.6-300", "0-rescue")})


@pytest.fixture
def sdboot(tmp_path):
    return tree(tmp_path, {"/etc/kernel/cmdline": "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet\n",
                           "/etc/default/grub": DEBIAN_GRUB})


# ---------------------------------------------------------------- pure edits
@pytest.mark.parametrize("current, add, remove, expect", [
    ("quiet", ["intel_iommu=on"], [], "quiet intel_iommu=on"),
    ("quiet intel_iommu=on", ["intel_iommu=on"], [], "quiet intel_iommu=on"),  # idempotent
    ("quiet  iommu=soft splash", ["iommu=pt"], [], "quiet iommu=pt splash"),  # replaces another value
    ("iommu=soft quiet iommu=off", ["iommu=pt"], [], "iommu=pt quiet"),
    ("quiet intel_iommu=off x", [], ["intel_iommu"], "quiet x"),  # any value
    ("quiet intel_iommu=off", [], ["intel_iommu=on"], "quiet intel_iommu=off"),  # exact value only
    ("quiet vfio_pci.ids=1:2", [], ["vfio-pci.ids"], "quiet"),  # - and _ are the same in names
    ("quiet", ["pcie_acs_override"], [], "quiet pcie_acs_override"),
    ("", ["a=1", "b"], [], "a=1 b"),
    ("quiet  splash", [], ["nothere"], "quiet  splash"),  # unchanged text kept verbatim
])
def test_edit_args(current, add, remove, expect):
    assert cmdline.edit_args(current, add, remove) == expect


@pytest.mark.parametrize("bad", ["two words", 'x="y"', "a=$(reboot)", "", "=on", "back\\slash",
                                 "quiet\n", "a;reboot", "a|b", "a&b", "a<b", "a>b", "a{b}", "-x"])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(InvalidInput):
        cmdline.edit_args("quiet", [bad], [])


def test_edit_grub_default_keeps_the_rest_and_edits_the_last_assignment():
    text = DEBIAN_GRUB + 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT splash"  # late\n'
    new = cmdline.edit_grub_default(text, "GRUB_CMDLINE_LINUX_DEFAULT", ["intel_iommu=on"], [])
    assert new.splitlines()[5] == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"'
    assert new.splitlines()[-1] == 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT splash intel_iommu=on"  # late'


def test_edit_grub_default_appends_a_missing_variable():
    new = cmdline.edit_grub_default("GRUB_TIMEOUT=5\n", "GRUB_CMDLINE_LINUX_DEFAULT", ["iommu=pt"], [])
    assert new == 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="iommu=pt"\n'


def test_edit_grub_default_single_quotes():
    # the file's own quoting is kept: only the value changes
    new = cmdline.edit_grub_default("GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n", "GRUB_CMDLINE_LINUX_DEFAULT",
                                    ["iommu=pt"], [])
    assert new == "GRUB_CMDLINE_LINUX_DEFAULT='quiet iommu=pt'\n"


def test_edit_grub_default_keeps_a_hash_inside_the_quotes():
    # the old regex made this ""quiet splash iommu=pt" #foo", and sourcing it ran `splash`
    new = cmdline.edit_grub_default('GRUB_CMDLINE_LINUX_DEFAULT="quiet splash #foo"\n',
                                    "GRUB_CMDLINE_LINUX_DEFAULT", ["iommu=pt"], [])
    assert new == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash #foo iommu=pt"\n'


def test_edit_grub_default_refuses_what_it_cannot_follow():
    text = 'if [ -e /x ]; then\n  GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nfi\n'
    with pytest.raises(Refused) as ei:
        cmdline.edit_grub_default(text, "GRUB_CMDLINE_LINUX_DEFAULT", ["iommu=pt"], [])
    assert ei.value.exit_code == 69
    assert str(ei.value).startswith("/etc/default/grub line 1: `if`")


# ---------------------------------------------------------------- Debian GRUB
def test_debian_grub(debian, capsys):
    host = Host(debian)
    (debian / "etc/default/grub").chmod(0o640)
    change = cmdline.plan(host, ["intel_iommu=on", "iommu=pt"], [])
    assert change.setup == "grub"
    assert change.commands == ["update-grub"]
    assert '-GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n+GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"' \
        in change.edits[0].diff
    cmdline.apply(host, change)
    grub = (debian / "etc/default/grub").read_text()
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"\n' in grub
    assert 'GRUB_CMDLINE_LINUX=""\n' in grub
    assert (debian / "etc/default/grub").stat().st_mode & 0o7777 == 0o640  # its mode kept, as 0.1.0 did
    assert (debian / "etc/default/grub.vfioctl.bak").read_text() == DEBIAN_GRUB
    assert change.ran == {}  # not the live host: update-grub is printed, never run
    # idempotent: again, nothing changes and nothing is to run
    again = cmdline.plan(host, ["intel_iommu=on", "iommu=pt"], [])
    assert not again.changed and again.commands == []
    assert "no changes" in again.render()


def test_debian_grub_refuses_an_unfollowable_file(debian):
    grub = DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"', 'GRUB_CMDLINE_LINUX_DEFAULT="$(cat /x) quiet"')
    (debian / "etc/default/grub").write_text(grub)
    with pytest.raises(Refused, match="line 6: GRUB_CMDLINE_LINUX_DEFAULT is set from"):
        cmdline.plan(Host(debian), ["iommu=pt"], [])


def test_debian_grub_d_override_is_noted(debian):
    (debian / "etc/default/grub.d").mkdir()
    (debian / "etc/default/grub.d/50-cloudimg.cfg").write_text('GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"\n')
    change = cmdline.plan(Host(debian), ["iommu=pt"], [])
    assert any("/etc/default/grub.d/50-cloudimg.cfg also sets GRUB_CMDLINE_LINUX_DEFAULT" in n for n in change.notes)


def test_cli_dry_run_shows_diff_and_writes_nothing(debian, capsys):
    assert main(["--root", str(debian), "boot", "cmdline", "--add", "intel_iommu=on", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("boot setup: grub\n--- /etc/default/grub.vfioctl.bak\n+++ /etc/default/grub\n")
    assert '+GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on"' in out
    assert "run: update-grub" in out
    assert (debian / "etc/default/grub").read_text() == DEBIAN_GRUB
    assert not (debian / "etc/default/grub.vfioctl.bak").exists()


def test_cli_json(debian, capsys):
    assert main(["--root", str(debian), "boot", "cmdline", "--remove", "quiet", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["setup"] == "grub" and data["changed"] is True and data["dry_run"] is False
    assert data["files"][0]["backup"] == "/etc/default/grub.vfioctl.bak"
    assert data["commands"] == [{"command": "update-grub", "ran": False, "rc": None}]
    assert 'GRUB_CMDLINE_LINUX_DEFAULT=""' in (debian / "etc/default/grub").read_text()


def test_cli_needs_an_argument(debian, capsys):
    assert main(["--root", str(debian), "boot", "cmdline"]) == 65


# ---------------------------------------------------------------- Fedora BLS + grubby
def test_fedora_grubby(fedora):
    host = Host(fedora)
    change = cmdline.plan(host, ["intel_iommu=on"], ["rhgb"])
    assert change.setup == "grubby"
    assert change.commands == ["grubby --update-kernel=ALL --args=intel_iommu=on --remove-args=rhgb"]
    cmdline.apply(host, change)
    assert 'GRUB_CMDLINE_LINUX="quiet intel_iommu=on"\n' in (fedora / "etc/default/grub").read_text()
    assert (fedora / "etc/default/grub.vfioctl.bak").read_text() == FEDORA_GRUB
    # grubby owns the BLS entries: vfioctl never writes them itself
    assert (fedora / "boot/loader/entries/abc-6.5.6-300.fc39.x86_64.conf").read_text() == BLS


def test_fedora_grubby_quotes_several_args(fedora):
    change = cmdline.plan(Host(fedora), ["intel_iommu=on", "iommu=pt"], [])
    assert change.commands == ["grubby --update-kernel=ALL '--args=intel_iommu=on iommu=pt'"]


def test_fedora_nothing_to_do_when_entries_have_it(fedora):
    for f in (fedora / "boot/loader/entries").iterdir():
        f.write_text(f.read_text().replace("rhgb quiet", "rhgb quiet intel_iommu=on"))
    (fedora / "etc/default/grub").write_text(FEDORA_GRUB.replace("rhgb quiet", "rhgb quiet intel_iommu=on"))
    change = cmdline.plan(Host(fedora), ["intel_iommu=on"], [])
    assert not change.changed and change.commands == []


# ---------------------------------------------------------------- systemd-boot / Proxmox
def test_systemd_boot_kernel_cmdline(sdboot):
    host = Host(sdboot)
    change = cmdline.plan(host, ["intel_iommu=on", "iommu=pt"], ["quiet"])
    assert change.setup == "kernel-cmdline"
    assert change.commands == ["kernel-install add 6.1.0-test-amd64 /boot/vmlinuz-6.1.0-test-amd64"]
    cmdline.apply(host, change)
    assert (sdboot / "etc/kernel/cmdline").read_text() == "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n"
    assert (sdboot / "etc/kernel/cmdline.vfioctl.bak").read_text() == "root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet\n"
    # /etc/default/grub is not this host's boot loader configuration
    assert (sdboot / "etc/default/grub").read_text() == DEBIAN_GRUB
    assert not cmdline.plan(host, ["iommu=pt"], ["quiet"]).changed


def test_proxmox_refresh(sdboot):
    (sdboot / "usr/sbin").mkdir(parents=True)
    (sdboot / "usr/sbin/proxmox-boot-tool").write_text("")
    change = cmdline.plan(Host(sdboot), ["intel_iommu=on"], [])
    assert change.commands == ["proxmox-boot-tool refresh"]


def test_unknown_boot_setup(tmp_path):
    root = tree(tmp_path, {"/etc/hostname": "x\n"})
    with pytest.raises(HostNotReady) as ei:
        cmdline.plan(Host(root), ["iommu=pt"], [])
    assert "cannot tell how this host boots" in str(ei.value)


def test_fix_command():
    assert cmdline.fix_command(["intel_iommu=on"]) == "vfioctl boot cmdline --add intel_iommu=on"



def test_one_boot_setup_vocabulary(tmp_path, monkeypatch):
    """vfioctl.host.system names the set-ups and how each is edited: `boot cmdline` and `check`'s
    fixes speak of nothing else (five set-ups and the unknown one; three ways of editing)."""
    from vfioctl.host import system
    from vfioctl.report import checks

    assert set(system.CMDLINE_EDITOR) == set(system.BOOT_SETUPS) - {system.UNKNOWN_SETUP}
    assert set(system.CMDLINE_EDITOR.values()) == {system.EDIT_GRUB, system.EDIT_GRUBBY, system.EDIT_KERNEL_CMDLINE}
    host = Host(tree(tmp_path, {"/proc/sys/kernel/osrelease": "6.1.0\n"}))
    fixes = set()
    for setup in system.BOOT_SETUPS:
        monkeypatch.setattr(checks, "boot_setup", lambda h, s=setup: s)
        monkeypatch.setattr(system, "boot_setup", lambda h, s=setup: s)
        fixes.add(checks.cmdline_fix(host, add=["iommu=pt"]))
        if setup == system.UNKNOWN_SETUP:
            with pytest.raises(HostNotReady):
                cmdline.detect(host)
        else:
            assert cmdline.detect(host) == system.CMDLINE_EDITOR[setup]
    assert len(fixes) == len(system.BOOT_SETUPS)  # a fix of its own for each, the unknown's generic
