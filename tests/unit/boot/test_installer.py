"""Installing and uninstalling the boot files: the manifest, foreign and changed files, hostile paths."""

from __future__ import annotations

import json
import os
import stat

import pytest
from bootsetup import CONFIG, VFIOCTL, P, prepare

from vfioctl import boot
from vfioctl.base.errors import HostNotReady, Refused
from vfioctl.cli import main


# ---------------------------------------------------------------- install / uninstall
def test_install_dry_run_shows_everything_and_writes_nothing(fake):
    host = prepare(fake)
    before = sorted(str(p) for p in fake.root.rglob("*"))
    r = boot.install(host, P, dry_run=True, vfioctl=VFIOCTL)
    assert sorted(str(p) for p in fake.root.rglob("*")) == before
    assert [f.path for f in r.files] == [
        boot.HOOK_PATH, boot.TARGETS_PATH, boot.MODPROBE_PATH, boot.UDEV_PATH, boot.UNIT_PATH, boot.WANTS_LINK,
        boot.INITRAMFS_TOOLS_HOOK]
    text = r.render()
    assert "would write /etc/modprobe.d/vfioctl.conf (mode 0644)" in text
    assert "    install e1000e /bin/sh /etc/vfioctl/boot-hook.sh" in text
    assert f"would write {boot.WANTS_LINK} -> ../vfioctl-apply.service" in text
    assert "run: update-initramfs -u -k all" in text


def test_install_then_uninstall_removes_exactly_those_files(fake):
    host = prepare(fake)
    (fake.root / "etc/modprobe.d").mkdir(parents=True)
    (fake.root / "etc/modprobe.d/other.conf").write_text("blacklist nouveau\n")
    r = boot.install(host, P, vfioctl=VFIOCTL)
    for f in r.files:
        real = fake.root / f.path.lstrip("/")
        if f.link:
            assert os.readlink(real) == "../vfioctl-apply.service"
        else:
            assert real.read_text() == f.content
            assert stat.S_IMODE(real.stat().st_mode) == f.mode
    assert (fake.root / "etc/systemd/system/multi-user.target.wants/vfioctl-apply.service").resolve() == \
        (fake.root / "etc/systemd/system/vfioctl-apply.service").resolve()
    m = json.loads((fake.root / "var/lib/vfioctl/boot-manifest.json").read_text())
    assert m["config"] == P and m["vfioctl"] == [VFIOCTL]
    assert [e["path"] for e in m["files"]] == [f.path for f in r.files]
    assert [c.ran for c in r.commands] == [False] * len(r.commands)  # not the live host
    assert not [w for w in host.writes if w[0].startswith("/sys/")]  # no sysfs write at install time

    u = boot.uninstall(host)
    assert u.removed == [f.path for f in r.files]
    for f in r.files:
        assert not os.path.lexists(fake.root / f.path.lstrip("/"))
    assert not (fake.root / "var/lib/vfioctl/boot-manifest.json").exists()
    assert (fake.root / "etc/modprobe.d/other.conf").read_text() == "blacklist nouveau\n"
    assert "the initramfs still holds the boot hook until it is rebuilt" in u.notes
    assert boot.uninstall(host).notes[0].startswith("no boot files installed")


def test_install_twice_is_stable_and_removes_stale_files(fake):
    host = prepare(fake)
    boot.install(host, P, vfioctl=VFIOCTL)
    (fake.root / "usr/sbin/update-initramfs").unlink()
    (fake.root / "usr/sbin/dracut").write_text("")
    r = boot.install(host, P, vfioctl=VFIOCTL)
    assert r.removed == [boot.INITRAMFS_TOOLS_HOOK]
    assert not (fake.root / boot.INITRAMFS_TOOLS_HOOK.lstrip("/")).exists()
    assert (fake.root / boot.DRACUT_CONF.lstrip("/")).read_text().count('force_drivers+=" vfio vfio_iommu_type1 vfio_pci "') == 1
    assert "run: dracut -f --regenerate-all" in r.render()


def test_uninstall_keeps_a_file_changed_since(fake):
    host = prepare(fake)
    boot.install(host, P, vfioctl=VFIOCTL)
    udev = fake.root / boot.UDEV_PATH.lstrip("/")
    udev.write_text(udev.read_text() + "# my edit\n")
    u = boot.uninstall(host)
    assert udev.exists()
    assert boot.UDEV_PATH not in u.removed
    assert f"{boot.UDEV_PATH} was changed since vfioctl wrote it: left in place" in u.notes


def test_install_refuses_to_overwrite_a_foreign_file(fake):
    host = prepare(fake)
    f = fake.root / "etc/modprobe.d/vfioctl.conf"
    f.parent.mkdir(parents=True)
    f.write_text("# someone else's\n")
    with pytest.raises(Refused) as ei:
        boot.install(host, P, vfioctl=VFIOCTL)
    assert "/etc/modprobe.d/vfioctl.conf exists and was not written by vfioctl" in str(ei.value)
    assert f.read_text() == "# someone else's\n"
    assert not (fake.root / boot.HOOK_PATH.lstrip("/")).exists()


def test_install_refuses_a_missing_vfioctl(fake):
    host = prepare(fake)
    with pytest.raises(HostNotReady) as ei:
        boot.install(host, P, vfioctl="/opt/nowhere/vfioctl")
    assert "/opt/nowhere/vfioctl does not exist on the captured host" in str(ei.value)


def test_resolve_vfioctl_default_is_this_installation():
    from vfioctl.host.core import Host

    argv = boot.resolve_vfioctl(Host("/"))
    assert argv[0].startswith("/") and os.path.exists(argv[0])


def test_manifest_stale_after_config_edit(fake):
    host = prepare(fake)
    boot.install(host, P, vfioctl=VFIOCTL)
    assert boot.manifest_stale(host, P) is None
    (fake.root / "etc/vfioctl/vfioctl.toml").write_text(CONFIG + "\n# edited\n")
    assert "changed since `vfioctl boot install`" in boot.manifest_stale(host, P)


def test_cli_boot_install_json_and_uninstall(fake, capsys):
    prepare(fake)
    root = str(fake.root)
    assert main(["--root", root, "boot", "install", "--dry-run", "--json", "--vfioctl", VFIOCTL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True
    assert data["files"][2]["path"] == boot.MODPROBE_PATH and "install e1000e" in data["files"][2]["content"]
    assert data["commands"][-1] == {"command": "update-initramfs -u -k all", "ran": False, "rc": None, "output": ""}
    assert main(["--root", root, "boot", "install", "--vfioctl", VFIOCTL]) == 0
    out = capsys.readouterr().out
    assert "wrote /etc/udev/rules.d/61-vfioctl.rules (mode 0644)" in out
    assert "    ACTION" not in out  # content only with --dry-run
    assert main(["--root", root, "boot", "uninstall", "--json"]) == 0
    assert boot.UNIT_PATH in json.loads(capsys.readouterr().out)["removed"]


@pytest.mark.parametrize("path", ["/etc/vfioctl/x.toml\nExecStartPre=/bin/sh -c id", "/etc/a\rb.toml",
                                  "/etc/a\tb.toml", "relative.toml"])
def test_config_paths_with_control_characters_are_refused(fake, path):
    from vfioctl.base.errors import ConfigError

    host = prepare(fake)
    with pytest.raises(ConfigError):
        boot.install(host, path, vfioctl=VFIOCTL, dry_run=True)
    assert not (fake.root / "etc/systemd").exists()


def test_vfioctl_path_with_a_newline_is_refused(fake):
    from vfioctl.base.errors import InvalidInput

    host = prepare(fake)
    with pytest.raises(InvalidInput):
        boot.install(host, P, vfioctl="/usr/bin/vfioctl\nExecStartPre=/bin/id", dry_run=True)


def test_cli_config_path_injection_exits_65_and_writes_nothing(fake, capsys):
    prepare(fake)
    before = sorted(str(p) for p in fake.root.rglob("*"))
    rc = main(["--root", str(fake.root), "boot", "install", "--config", "/etc/x\n/bin/sh", "--vfioctl", VFIOCTL])
    err = capsys.readouterr().err
    assert rc == 65 and err.count("\n") == 1 and "control characters" in err
    assert sorted(str(p) for p in fake.root.rglob("*")) == before


@pytest.mark.parametrize("evil", ["/etc/../../../tmp/victim", "/tmp/victim", "../victim", "/etc/vfioctl/../x"])
def test_manifest_naming_other_files_is_refused_and_nothing_removed(fake, tmp_path, evil):
    host = prepare(fake)
    victim = fake.root / "tmp/victim"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("precious")
    outside = tmp_path / "victim"
    outside.write_text("precious")
    m = fake.root / "var/lib/vfioctl"
    m.mkdir(parents=True, exist_ok=True)
    m.chmod(0o700)
    (m / "boot-manifest.json").write_text(json.dumps({"files": [{"path": evil, "sha256": "0" * 64}]}))
    with pytest.raises(Refused, match="not a file `vfioctl boot install` writes"):
        boot.uninstall(host)
    with pytest.raises(Refused):
        boot.install(host, P, vfioctl=VFIOCTL)
    assert victim.read_text() == "precious" and outside.read_text() == "precious"
