"""Host: folders it creates get their own modes whatever the umask, and a root that only
resolves to / ("", "//", /tmp/.., a link to /, /proc/self/root) is never changed through."""

from __future__ import annotations

import os
import stat
import tempfile

import pytest
from clirun import run

from vfioctl.base.errors import InvalidInput, Refused
from vfioctl.boot import installer as boot
from vfioctl.guest import hook
from vfioctl.host.core import Host

CONFIG = '[[device]]\naddress = "0000:00:07.0"\nid = "8086:10d3"\n'




def mode(p) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


@pytest.fixture
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _prepare(fake):
    r = fake.root
    (r / "etc/vfioctl").mkdir(parents=True, exist_ok=True)
    (r / "etc/vfioctl/vfioctl.toml").write_text(CONFIG)
    (r / "usr/bin").mkdir(parents=True, exist_ok=True)
    (r / "usr/bin/vfioctl").write_text("#!/bin/sh\n")
    fake.driver("vfio-pci")
    return fake.host()


@pytest.mark.parametrize("umask", [0o000, 0o002, 0o077], indirect=True)
def test_hook_and_boot_folders_have_their_modes_whatever_the_umask(fake, umask):
    """Under umask 000 qemu.d, /etc/modprobe.d ... were created 0777; under 002 the state
    folder was 0775 and every later restore refused (69)."""
    host = _prepare(fake)
    hook.install(host, vfioctl="/usr/bin/vfioctl")
    for d in ("etc/libvirt", "etc/libvirt/hooks", "etc/libvirt/hooks/qemu.d"):
        assert mode(fake.root / d) == 0o755, d
    assert mode(fake.root / "etc/libvirt/hooks/qemu.d/vfioctl") == 0o755
    boot.install(host, "/etc/vfioctl/vfioctl.toml", vfioctl="/usr/bin/vfioctl")
    for d in ("etc/modprobe.d", "etc/udev/rules.d", "etc/systemd/system", "etc/systemd/system/multi-user.target.wants"):
        assert mode(fake.root / d) == 0o755, d
    assert mode(fake.root / "var/lib/vfioctl") == 0o700
    assert mode(fake.root / "var/lib") == 0o755
    rc, out, err = run(["--root", str(fake.root), "restore", "--all"])
    assert rc == 0, err


def test_make_dirs_nests_and_keeps_existing(fake):
    host = fake.host()
    os.umask(0o022)
    host.make_dirs("/etc/a/b/c")
    assert mode(fake.root / "etc/a/b/c") == 0o755
    (fake.root / "etc/x").mkdir(mode=0o750)
    host.make_dirs("/etc/x/y")
    assert mode(fake.root / "etc/x") == 0o750 and mode(fake.root / "etc/x/y") == 0o755


@pytest.mark.parametrize("alias", ["//", "/tmp/..", "/proc/self/root", "///", "/./", "LINK"])
def test_a_root_that_resolves_to_slash_is_never_changed_through(tmp_path, alias, monkeypatch):
    if alias == "LINK":
        (tmp_path / "to-root").symlink_to("/")
        alias = str(tmp_path / "to-root")
    if os.path.realpath(alias) != "/":
        pytest.skip(f"{alias} does not resolve to / here")
    # were the refusal missing, nothing may reach this machine's files
    monkeypatch.setattr(tempfile, "mkstemp", _never)
    monkeypatch.setattr(os, "mkdir", _never)
    h = Host(alias)
    assert h.is_live and h.alias_of_live
    for change in (lambda: h.write("/sys/bus/pci/drivers_probe", "x"), lambda: h.run(["true"]),
                   lambda: h.write_file("/etc/x", "x"), lambda: h.unlink("/etc/x"), lambda: h.make_dirs("/etc/x"),
                   lambda: h.lock("/var/lib/vfioctl/state.lock", 1), lambda: h.write_link("/etc/x", "y")):
        with pytest.raises(Refused, match="resolves to /"):
            change()
    for argv in (["hide", "0000:00:02.0"], ["restore", "--all"], ["libvirt-hook", "install", "--vfioctl", "/bin/sh"],
                 ["libvirt-hook", "uninstall"], ["boot", "install", "--vfioctl", "/bin/sh"], ["apply"],
                 ["boot", "cmdline", "--add", "iommu=pt"], ["reset", "0000:00:02.0"]):
        rc, out, err = run(["--root", alias, *argv])
        assert rc in (65, 66, 69), (argv, rc, err)
        assert "internal error" not in err


def _never(*a, **k):
    raise AssertionError("a change reached this machine")


@pytest.mark.parametrize("argv", [["--root", ""], ["--root="]])
def test_an_empty_root_is_bad_input(argv, monkeypatch):
    monkeypatch.setattr(os, "mkdir", _never)
    for cmd in (["list"], ["hide", "0000:00:02.0"], ["libvirt-hook", "install"]):
        rc, out, err = run([*argv, *cmd])
        assert rc == 65 and "empty" in err and err.count("\n") == 1, (cmd, rc, err)


def test_host_refuses_an_empty_root():
    with pytest.raises(InvalidInput, match="empty"):
        Host("")


def test_a_real_folder_root_reads_and_the_literal_slash_is_the_live_host(fake):
    assert not Host(fake.root).alias_of_live
    assert not Host("/").alias_of_live and Host("/").is_live
    Host("/").require_changeable()
