"""attach/detach over QMP against a real QEMU (TCG, paused, no guest OS) and a fake host tree.

vfio-pci cannot open a device on this machine (no IOMMU here), so these tests prove the QMP
side against QEMU itself: port selection from QOM, the peer PID, device_add's error path and
the rollback of the hide it triggered, DEVICE_DELETED waiting (with an emulated NIC standing in
for the vfio-pci device), and the refusals.  The success path runs in the VM lab
(tests/vm/test_guests.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from vfioctl import engine
from vfioctl.base.errors import Busy, HostNotReady, InvalidInput, NotFound, Refused
from vfioctl.guest import qmp as gq

QEMU = shutil.which("qemu-system-x86_64")
NATIVE_HOTPLUG = ["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off"]




@pytest.fixture
def qemu():
    """Factory: a paused q35 QEMU with the given extra args; returns (Popen, qmp socket path)."""
    assert QEMU, "qemu-system-x86_64 is missing: apt-get install qemu-system-x86"
    procs = []
    tmp = tempfile.mkdtemp(prefix="vfioctl-qmp-", dir="/tmp")  # unix socket paths are short

    def start(*extra: str, name: str = "q"):
        sock = os.path.join(tmp, f"{name}.sock")
        p = subprocess.Popen(
            [QEMU, "-S", "-machine", "q35", "-accel", "tcg", "-nodefaults", "-display", "none", "-m", "64",
             "-name", "guest=unit-vm", *extra, "-qmp", f"unix:{sock},server=on,wait=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        procs.append(p)
        deadline = time.monotonic() + 30
        while True:  # the path exists a moment before QEMU listens on it
            if p.poll() is not None:
                pytest.fail(f"QEMU exited: {p.stderr.read().decode()}")
            assert time.monotonic() < deadline, "QEMU did not open its QMP socket"
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(sock)
                break
            except OSError:
                time.sleep(0.02)
            finally:
                probe.close()
        return p, sock

    yield start
    for p in procs:
        p.kill()
        p.wait()
    shutil.rmtree(tmp, ignore_errors=True)


def qmp_cmd(sock: str, cmd: str, **args):
    """One command on a fresh session (our own client, as a test would use QEMU)."""
    from qemu.qmp import QMPClient

    async def go():
        c = QMPClient("test")
        await c.connect(sock)
        try:
            return await c.execute(cmd, args or None)
        finally:
            await c.disconnect()

    return asyncio.run(go())


def ports(n: int) -> list[str]:
    out = []
    for i in range(1, n + 1):
        out += ["-device", f"pcie-root-port,id=rp{i},chassis={i},slot={i}"]
    return out


def state(fake, addr="0000:00:07.0"):
    return fake.current_driver(addr)


# ---------------------------------------------------------------- ports and the peer
def test_free_ports_skip_occupied_ones(qemu):
    _, sock = qemu(*ports(3), "-device", "e1000e,id=busy,bus=rp1", "-device", "e1000e,bus=rp3")
    assert gq.free_ports(sock) == ["rp2"]


def test_monitor_knows_qemus_pid(qemu):
    p, sock = qemu(*ports(1))

    async def go():
        async with gq._Monitor(sock, 5) as mon:
            return mon.pid

    assert asyncio.run(go()) == p.pid


# ---------------------------------------------------------------- attach: refusals, nothing changes
def test_no_free_port_refuses_before_hiding(qemu, fake, host):
    _, sock = qemu(*ports(1), "-device", "e1000e,id=busy,bus=rp1")
    with pytest.raises(Refused, match=r"no free hot-plug port.*rp1 are all taken"):
        gq.attach(host, "00:07.0", sock)
    assert state(fake) == "e1000e" and host.writes == []
    _, sock2 = qemu(name="noports")
    with pytest.raises(Refused, match="no pcie-root-port"):
        gq.attach(host, "00:07.0", sock2)
    assert host.writes == []


def test_unknown_bus_and_taken_id(qemu, fake, host):
    _, sock = qemu(*ports(1), "-device", "e1000e,id=hostdev-0000-00-07-0,bus=rp1")
    with pytest.raises(NotFound, match="no device with id 'nosuch'"):
        gq.attach(host, "00:07.0", sock, bus="nosuch", dev_id="other")
    with pytest.raises(Refused, match="already has a device with id hostdev-0000-00-07-0"):
        gq.attach(host, "00:07.0", sock, bus="rp1")
    assert host.writes == []


def test_group_with_a_member_on_a_host_driver_is_refused_before_hiding(qemu, fake, host):
    _, sock = qemu(*ports(1))
    with pytest.raises(Refused, match=r"0000:01:02.0 \(e1000\).*vfioctl hide 01:01.0 --group"):
        gq.attach(host, "01:01.0", sock)
    assert host.writes == []


def test_group_held_by_another_vm_is_refused(qemu, fake, host):
    _, sock = qemu(*ports(1))
    proc = fake.root / "proc/4242"
    (proc / "fd").mkdir(parents=True)
    (proc / "fd/5").symlink_to("/dev/vfio/7")
    (proc / "cmdline").write_bytes(b"qemu-system-x86_64\0-name\0guest=web1,debug-threads=on\0")
    (proc / "comm").write_text("qemu-system-x86\n")
    with pytest.raises(Refused, match=r"held by PID 4242 qemu-system-x86 \(VM web1\)"):
        gq.attach(host, "00:07.0", sock)
    assert host.writes == []


def test_device_add_failure_rolls_back_the_hide(qemu, fake, host):
    """QEMU refuses (it cannot open the device here): the hide attach did is undone."""
    _, sock = qemu(*ports(2), "-device", "e1000e,id=busy,bus=rp1", *NATIVE_HOTPLUG)
    with pytest.raises(gq.QemuRefused) as exc:
        gq.attach(host, "00:07.0", sock, timeout=5)
    msg = str(exc.value)
    assert "QEMU refused device_add" in msg and "on bus rp2" in msg  # the free port was chosen
    assert "vfio" in msg  # QEMU's own reason
    assert "attach failed at step" in msg and "the host is as it was" in msg  # one executor, one rollback
    assert state(fake) == "e1000e"
    assert json.loads((fake.root / "var/lib/vfioctl/state.json").read_text())["devices"] == {}
    # QEMU has nothing new
    names = {p["name"] for p in qmp_cmd(sock, "qom-list", path="/machine/peripheral")}
    assert "hostdev-0000-00-07-0" not in names


def test_device_add_failure_of_an_already_hidden_device_keeps_it_hidden(qemu, fake, host):
    engine.hide(host, ["00:07.0"])
    _, sock = qemu(*ports(1))
    with pytest.raises(gq.QemuRefused, match="on bus rp1"):
        gq.attach(host, "00:07.0", sock, timeout=5)
    assert state(fake) == "vfio-pci"  # attach did not hide it, so it does not restore it


# ---------------------------------------------------------------- detach
def stand_in(sock: str, bus: str = "rp1", dev_id: str = "hostdev-0000-00-07-0") -> None:
    """An emulated NIC with the id attach would give 00:07.0 (vfio-pci cannot work here)."""
    qmp_cmd(sock, "device_add", driver="e1000e", id=dev_id, bus=bus)


def test_detach_waits_for_device_deleted_and_restores(qemu, fake, host):
    engine.hide(host, ["00:07.0"])
    _, sock = qemu(*ports(1), *NATIVE_HOTPLUG)
    stand_in(sock)
    res = gq.detach(host, "00:07.0", sock, dev_id="hostdev-0000-00-07-0", restore=True, timeout=5)
    assert res.seconds < 5 and res.restored is not None
    assert state(fake) == "e1000e"
    names = {p["name"] for p in qmp_cmd(sock, "qom-list", path="/machine/peripheral")}
    assert "hostdev-0000-00-07-0" not in names


def test_detach_timeout_changes_nothing(qemu, fake, host):
    """ACPI hot-plug with no guest OS: the unplug request is never answered."""
    engine.hide(host, ["00:07.0"])
    writes = len(host.writes)
    _, sock = qemu(*ports(1))
    stand_in(sock)
    t0 = time.monotonic()
    with pytest.raises(Busy, match="the guest did not release 0000:00:07.0 within 1s.*nothing was changed on the host"):
        gq.detach(host, "00:07.0", sock, dev_id="hostdev-0000-00-07-0", restore=True, timeout=1)
    assert 1 <= time.monotonic() - t0 < 10
    assert state(fake) == "vfio-pci" and len(host.writes) == writes


def test_detach_of_a_device_qemu_does_not_have(qemu, fake, host):
    _, sock = qemu(*ports(1))
    with pytest.raises(NotFound, match="no vfio-pci device for host 0000:00:07.0"):
        gq.detach(host, "00:07.0", sock)
    with pytest.raises(gq.QemuRefused, match="device_del"):
        gq.detach(host, "00:07.0", sock, dev_id="nosuch")


# ---------------------------------------------------------------- the socket and the library
def test_socket_problems(fake, host, tmp_path):
    with pytest.raises(NotFound, match="no QMP socket"):
        gq.attach(host, "00:07.0", str(tmp_path / "none.sock"))
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInput, match="not a unix socket"):
        gq.detach(host, "00:07.0", str(tmp_path / "file"))
    s = socket

    dead = tempfile.mktemp(prefix="vfioctl-dead-", dir="/tmp")
    srv = s.socket(s.AF_UNIX, s.SOCK_STREAM)
    srv.bind(dead)
    srv.close()  # the path stays, nobody listens
    try:
        with pytest.raises(HostNotReady, match="nothing listens"):
            gq.attach(host, "00:07.0", dead)
    finally:
        os.unlink(dead)
    assert host.writes == []


def test_busy_monitor_times_out(qemu, fake, host):
    """QEMU serves one client per -qmp socket: a second one gets no greeting."""
    from qemu.qmp import QMPClient

    _, sock = qemu(*ports(1))

    async def go():
        first = QMPClient("first")
        await first.connect(sock)
        try:
            await asyncio.to_thread(gq.free_ports, sock, timeout=1)
        finally:
            await first.disconnect()

    with pytest.raises(Busy, match="no QMP greeting"):
        asyncio.run(go())


def test_missing_qemu_qmp_names_the_extra(fake, host, monkeypatch):
    monkeypatch.setitem(sys.modules, "qemu.qmp", None)
    with pytest.raises(HostNotReady, match=r"pip install 'vfioctl\[qmp\]'"):
        gq.attach(host, "00:07.0", "/nonexistent.sock")


def test_cli_detach_timeout_exit_code(qemu, fake, host, capsys, monkeypatch):
    from vfioctl.cli import main

    monkeypatch.setattr("vfioctl.cli.Context.host", property(lambda self: host))
    engine.hide(host, ["00:07.0"])
    _, sock = qemu(*ports(1))
    stand_in(sock)
    rc = main(["detach", "00:07.0", "--qmp", sock, "--id", "hostdev-0000-00-07-0", "--timeout", "0.5"])
    out, err = capsys.readouterr()
    assert rc == 75 and "did not release" in err and err.count("\n") == 1


# ---------------------------------------------------------------- a peer that answers wrongly typed
def fake_qmp(tmp_path, answers: dict):
    """A QMP peer on a unix socket: the greeting, qmp_capabilities, then *answers* per command
    (anything JSON can carry, right or wrong), echoing each request's id."""
    import threading

    path = str(tmp_path / "fake.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)

    def serve():
        dec = json.JSONDecoder()
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.sendall(b'{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, '
                         b'"capabilities": []}}\r\n')
            buf = ""
            while chunk := conn.recv(65536):
                buf += chunk.decode()
                while buf.strip():  # the client sends one JSON object after another, no newline
                    try:
                        req, end = dec.raw_decode(buf.lstrip())
                    except ValueError:
                        break
                    buf = buf.lstrip()[end:]
                    ret = {} if req["execute"] == "qmp_capabilities" else answers.get(req["execute"], {})
                    conn.sendall(json.dumps({"return": ret, "id": req.get("id")}).encode() + b"\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return path, srv


def _nested(depth: int):
    d: dict = {"bus": 0, "slot": 0, "function": 0, "id": {"vendor": 1, "device": 2}}
    for _ in range(depth):
        d = {"bus": 0, "pci_bridge": {"devices": [d]}}
    return [{"bus": 0, "devices": [d]}]


@pytest.mark.parametrize("answers", [
    {"qom-list": "x"}, {"qom-list": [1, 2]}, {"qom-list": [{"name": 5, "type": "child<x>"}]},
    {"qom-list": [{"name": "rp1", "type": ["child<pcie-root-port>"]}]}, {"qom-list": {"a": 1}},
])
def test_wrongly_typed_qom_answers_are_one_line(tmp_path, answers):
    """Wrongly typed QMP replies from the peer gave exit 70."""
    path, srv = fake_qmp(tmp_path, answers)
    try:
        with pytest.raises(gq.BadReply, match="not the .* QEMU sends"):
            gq.free_ports(path, timeout=5)
    finally:
        srv.close()


@pytest.mark.parametrize("reply", [5, [5], [{"devices": "x"}], [{"devices": [{"pci_bridge": 3}]}], _nested(300),
                                   [{"devices": [{"qdev_id": "hostdev-0000-00-07-0", "id": {"vendor": "x"}}]}]])
def test_wrongly_typed_query_pci_answers_are_one_line(tmp_path, reply):
    path, srv = fake_qmp(tmp_path, {"query-pci": reply, "qom-list": []})

    async def go():
        async with gq._Monitor(path, 5) as mon:
            return await gq._listed(mon, "hostdev-0000-00-07-0")

    try:
        with pytest.raises(gq.BadReply):
            asyncio.run(go())
    finally:
        srv.close()


def test_attach_and_detach_against_a_wrong_peer_exit_65(tmp_path, fake, host, monkeypatch, capsys):
    from vfioctl.cli import main

    path, srv = fake_qmp(tmp_path, {"qom-list": [{"name": 7}]})
    try:
        for argv in (["attach", "00:07.0", "--qmp", path, "--timeout", "5"],
                     ["detach", "00:07.0", "--qmp", path, "--timeout", "5"]):
            rc = main(["--root", str(fake.root), *argv])
            err = capsys.readouterr().err
            assert rc == 65 and err.count("\n") == 1 and "QMP socket" in err, (argv, rc, err)
    finally:
        srv.close()
    assert state(fake) == "e1000e"
