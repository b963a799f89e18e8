"""File steps (boot install, uninstall, cmdline): each write verified, everything put back on a
failure, and the program that regenerates from the files run again after the files are back."""

from __future__ import annotations

import pytest

from vfioctl.base.errors import InvalidInput, KernelError
from vfioctl.ops.plan.model import Plan
from vfioctl.ops.session import Session
from vfioctl.ops.steps.files import FileState, RunProgram, SetFile, read_file_state


def _plan(*steps) -> Plan:
    p = Plan("boot test")
    p.steps = list(steps)
    return p


def test_a_new_file_is_written_verified_and_removed_again_when_a_later_program_fails(fake):
    host = fake.host()
    ran = []

    def run(_h, argv):
        ran.append(argv)
        return (1, "update-grub: broken\n") if len(ran) == 1 else (0, "")

    host.run_hook = run
    (fake.root / "etc/default").mkdir(parents=True, exist_ok=True)
    (fake.root / "etc/default/grub").write_text("GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n")
    plan = _plan(
        SetFile("/etc/vfioctl/new.conf", FileState("file", content="new\n", mode=0o644), FileState.absent()),
        SetFile("/etc/default/grub", FileState("file", content="GRUB_CMDLINE_LINUX_DEFAULT=\"quiet iommu=pt\"\n",
                                               mode=None),
                read_file_state(host, "/etc/default/grub"), backup_suffix=".vfioctl.bak"),
        RunProgram(("update-grub",)),
    )
    with pytest.raises(KernelError) as err, Session(host) as s:
        s.execute(plan)
    assert "update-grub failed (exit 1): update-grub: broken" in err.value.message
    assert "rolled back 3 step(s)" in err.value.message
    # every file as it was, the backup gone again, the program run once more on the old files
    assert not (fake.root / "etc/vfioctl/new.conf").exists()
    assert (fake.root / "etc/default/grub").read_text() == "GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\n"
    assert not (fake.root / "etc/default/grub.vfioctl.bak").exists()
    assert ran == [["update-grub"], ["update-grub"]]


def test_a_rerun_that_fails_after_the_rollback_is_reported_without_the_journal_hint(fake):
    host = fake.host()
    host.run_hook = lambda _h, argv: (2, "no space left")
    plan = _plan(SetFile("/etc/x.conf", FileState("file", content="x\n"), FileState.absent()),
                 RunProgram(("update-initramfs", "-u")))
    with pytest.raises(KernelError) as err, Session(host) as s:
        s.execute(plan)
    msg = err.value.message
    assert "rollback INCOMPLETE: update-initramfs -u after the rollback exited 2" in msg
    assert "restore --all" not in msg and "check what is named above by hand" in msg
    assert not (fake.root / "etc/x.conf").exists()


def test_an_existing_file_gets_its_content_and_mode_back(fake):
    host = fake.host()
    f = fake.root / "etc/modprobe.d/vfioctl.conf"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text("old\n")
    f.chmod(0o640)
    host.run_hook = lambda _h, argv: (1, "")
    plan = _plan(SetFile("/etc/modprobe.d/vfioctl.conf", FileState("file", content="new\n", mode=0o644),
                         read_file_state(host, "/etc/modprobe.d/vfioctl.conf")),
                 RunProgram(("false",)))
    with pytest.raises(KernelError), Session(host) as s:
        s.execute(plan)
    assert f.read_text() == "old\n" and (f.stat().st_mode & 0o777) == 0o640


def test_a_link_is_made_and_taken_back(fake):
    host = fake.host()
    host.run_hook = lambda _h, argv: (1, "")
    plan = _plan(SetFile("/etc/systemd/system/multi-user.target.wants/x.service",
                         FileState("link", link="../x.service"), FileState.absent()),
                 RunProgram(("systemctl", "daemon-reload")))
    with pytest.raises(KernelError), Session(host) as s:
        s.execute(plan)
    assert not (fake.root / "etc/systemd/system/multi-user.target.wants/x.service").is_symlink()


def test_a_folder_where_a_file_goes_is_refused_and_left(fake):
    host = fake.host()
    (fake.root / "etc/x.conf").mkdir(parents=True)
    plan = _plan(SetFile("/etc/x.conf", FileState("file", content="x\n"), read_file_state(host, "/etc/x.conf")))
    with pytest.raises(InvalidInput, match="is a dir, not a regular file; refusing to replace it"), \
            Session(host) as s:
        s.execute(plan)
    assert (fake.root / "etc/x.conf").is_dir()


def test_a_successful_plan_leaves_the_new_files_and_describes_each_step(fake):
    host = fake.host()
    host.run_hook = lambda _h, argv: (0, "ok")
    write = SetFile("/etc/x.conf", FileState("file", content="x\n", mode=0o600), FileState.absent())
    run = RunProgram(("udevadm", "control", "--reload"))
    with Session(host) as s:
        result = s.execute(_plan(write, run))
    assert (fake.root / "etc/x.conf").read_text() == "x\n"
    assert (fake.root / "etc/x.conf").stat().st_mode & 0o777 == 0o600
    assert result.seen(run) == (0, "ok")
    assert write.line() == "write /etc/x.conf (mode 0600)   [verify: /etc/x.conf is a file (mode 0600) with the new content]"
    assert run.line() == "run udevadm control --reload"
