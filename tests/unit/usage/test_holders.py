"""Who holds a VFIO group (usage/holders.py): the processes with /dev/vfio/N open, read from
/proc/PID/fd on a fake host, each named by its command and QEMU's -name; what a process
writes about itself (comm, argv) is one escaped line; what cannot be read is skipped."""

from __future__ import annotations

import pytest

from vfioctl.usage.holders import (
    Holder,
    _split_qemu_opts,
    describe_process,
    group_holders,
    open_files,
    vm_name_from_args,
)


def proc(fake, pid, fds: dict[str, str] | None = None, *, comm: str | None = None, argv: list[str] | None = None):
    """/proc/PID with its fd links (fd -> target), comm and cmdline."""
    d = fake.root / "proc" / str(pid)
    (d / "fd").mkdir(parents=True, exist_ok=True)
    for fd, target in (fds or {}).items():
        (d / "fd" / fd).symlink_to(target)
    if comm is not None:
        (d / "comm").write_text(comm + "\n")
    if argv is not None:
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return d


QEMU = ["/usr/bin/qemu-system-x86_64", "-name", "guest=web1,debug-threads=on", "-m", "4096"]


def test_holder_record_and_words():
    h = Holder(4242, "qemu-system-x86", "web1", 7)
    assert h.to_dict() == {"pid": 4242, "command": "qemu-system-x86", "vm_name": "web1", "group": 7}
    assert h.describe() == "PID 4242 qemu-system-x86 (VM web1)"
    assert Holder(9, "cloud-hypervisor", None, 3).describe() == "PID 9 cloud-hypervisor"


def test_group_holders_one_per_process_and_group_in_order(fake, host):
    proc(fake, 300, {"3": "/dev/vfio/12", "4": "/dev/vfio/7", "5": "/dev/vfio/12", "6": "/dev/null"},
         comm="qemu-system-x86", argv=QEMU)
    proc(fake, 42, {"9": "/dev/vfio/7"}, comm="crosvm")
    proc(fake, 77, {"1": "/dev/vfio/vfio", "2": "/dev/vfio/devices/vfio0", "3": "/dev/vfio/007",
                    "4": "/dev/vfio/7x", "5": "/dev/vfio/"}, comm="cdev-user")
    got = group_holders(host)
    assert [(h.group, h.pid, h.command, h.vm_name) for h in got] == [
        (7, 42, "crosvm", None), (7, 300, "qemu-system-x86", "web1"), (12, 300, "qemu-system-x86", "web1")]
    assert [(h.group, h.pid) for h in group_holders(host, {12})] == [(12, 300)]
    assert group_holders(host, {5}) == []
    assert group_holders(host, set()) == []


def test_open_files_skips_what_it_cannot_read(fake, host):
    proc(fake, 10, {"0": "/dev/vfio/3", "1": "/dev/vfio/3"})
    (fake.root / "proc/11").mkdir()  # no fd/ (another user's process, or gone)
    d = proc(fake, 12)
    (d / "fd" / "0").write_text("not a link")  # readlink fails: skipped
    (fake.root / "proc/self").mkdir()
    (fake.root / "proc/1x").mkdir()
    assert open_files(host, lambda p: p.startswith("/dev/vfio/")) == [(10, ["/dev/vfio/3"])]
    assert open_files(host, lambda p: False) == []


def test_a_process_whose_files_cannot_be_read_is_skipped(fake, host, monkeypatch):
    """Another user's process, or one gone between the listing and the reading: the host's
    reader raises our error (EACCES, ENOENT), and that process is passed over."""
    from vfioctl.base.errors import VfioctlPermissionError

    proc(fake, 40, {"0": "/dev/vfio/3"})
    proc(fake, 41, {"0": "/dev/vfio/4", "1": "/dev/vfio/5"})
    proc(fake, 42, {"0": "/dev/vfio/6"})
    listdir, readlink = host.listdir, host.readlink

    def no_list(path):
        if path == "/proc/40/fd":
            raise VfioctlPermissionError("cannot list /proc/40/fd: Permission denied (EACCES)")
        return listdir(path)

    def no_link(path):
        if path == "/proc/41/fd/0":
            raise VfioctlPermissionError("cannot read /proc/41/fd/0: Permission denied (EACCES)")
        return readlink(path)

    monkeypatch.setattr(host, "listdir", no_list)
    monkeypatch.setattr(host, "readlink", no_link)
    assert [(h.pid, h.group) for h in group_holders(host)] == [(41, 5), (42, 6)]


def test_a_process_is_named_by_comm_or_else_its_argv(fake, host):
    proc(fake, 20, comm="qemu-kvm", argv=QEMU)
    proc(fake, 21, argv=["/opt/bin/cloud-hypervisor", "--name", "db"])
    proc(fake, 22)
    assert describe_process(host, 20) == ("qemu-kvm", "web1")
    assert describe_process(host, 21) == ("cloud-hypervisor", "db")
    assert describe_process(host, 22) == ("?", None)
    assert describe_process(host, 99999) == ("?", None)  # gone: nothing to read


def test_what_a_process_says_about_itself_is_one_escaped_line(fake, host):
    proc(fake, 30, comm="evil\x1b[2Jname", argv=["qemu", "-name", "guest=" + "x\n" * 300])
    comm, vm = describe_process(host, 30)
    assert "\x1b" not in comm and "\n" not in comm
    assert vm is not None and "\n" not in vm and len(vm) <= 203
    proc(fake, 31, comm="qemu")
    (fake.root / "proc/31/cmdline").write_bytes(b"qemu\0-name\0\xff\xfeweb\0")  # not UTF-8
    assert describe_process(host, 31) == ("qemu", "\ufffd\ufffdweb")  # replaced, never raised


@pytest.mark.parametrize("args, name", [
    (QEMU, "web1"),
    (["qemu", "-name", "web2"], "web2"),
    (["qemu", "--name", "web3,process=qemu:web3"], "web3"),
    (["qemu", "-name", "debug-threads=on,guest=web4"], "web4"),
    (["qemu", "-name", "a,,b"], "a,b"),
    (["qemu", "-name", "guest=a,,b,debug-threads=on"], "a,b"),
    (["qemu", "-name", "debug-threads=on"], None),
    (["qemu", "-name"], None),
    (["qemu", "-m", "1024"], None),
    ([], None),
    (["qemu", "-name", ""], ""),
])
def test_vm_name_from_qemu_args(args, name):
    assert vm_name_from_args(args) == name


@pytest.mark.parametrize("text, parts", [
    ("a,b", ["a", "b"]), ("a,,b", ["a,b"]), ("a,,,b", ["a,", "b"]), (",", ["", ""]), ("", [""]),
    ("a,", ["a", ""]), ("a,,", ["a,"]),
])
def test_qemu_option_splitting(text, parts):
    assert _split_qemu_opts(text) == parts
