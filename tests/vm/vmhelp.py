"""Helpers several VM test files share: waiting on the guest, a writable /etc, a libvirtd and its domains."""

from __future__ import annotations

import time

import pytest

LIBVIRT_CONF = """
# vfioctl VM test: a libvirtd in a chroot with no cgroups, namespaces or labels
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
"""


# Every domain the tests define says <acpi/>: without it libvirt 9.0 (Debian 12) starts QEMU with
# -no-acpi, which QEMU 10 (Debian 13, Debian 12's backports) no longer has ("invalid option");
# libvirt 11 (Debian 13) and QEMU 7.2 take the domain with it as well.
DOMAIN_FEATURES = "<features><acpi/></features>"


def wait_until(pred, timeout: float, what: str, step: float = 0.3):
    """*pred*'s first true value, polled every *step* seconds; AssertionError after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


@pytest.fixture
def writable_etc(lab):
    """/etc in the guest as a writable copy (the guest's root is this machine's, read-only)."""
    lab.sh("mkdir -p /tmp/lab-etc && cp -a /etc/. /tmp/lab-etc/ && mount --bind /tmp/lab-etc /etc", check=True)
    try:
        yield
    finally:
        lab.sh("umount /etc && rm -rf /tmp/lab-etc", check=True)


def start_libvirtd(lab) -> None:
    """libvirtd + virtlogd in the guest (see ../shared/vm-lab.md); /etc is a writable copy there."""
    assert lab.sh("test -x /usr/sbin/libvirtd && test -x /usr/bin/virsh").rc == 0, (
        "libvirt is missing from the tree the guest sees: apt-get install -y libvirt-daemon-system libvirt-clients"
    )
    lab.sh(
        "grep -q 'vfioctl VM test' /etc/libvirt/qemu.conf || cat >> /etc/libvirt/qemu.conf; "
        "mkdir -p /run/libvirt /var/lib/libvirt/qemu /var/log/libvirt /var/cache/libvirt",
        input=LIBVIRT_CONF, check=True,
    )
    lab.sh("pgrep -x virtlogd >/dev/null || virtlogd -d", check=True)
    lab.sh("pgrep -x libvirtd >/dev/null || libvirtd -d", check=True)
    wait_until(lambda: lab.sh("virsh -c qemu:///system version >/dev/null 2>&1", timeout=60).rc == 0,
               120, "libvirtd to answer")


def stop_libvirtd(lab) -> None:
    for name in ("libvirtd", "virtlogd"):
        lab.sh(f"for p in $(pgrep -x {name}); do kill $p; done; "
               f"for i in $(seq 100); do pgrep -x {name} >/dev/null || exit 0; sleep 0.1; done; "
               f"pkill -9 -x {name}; true")
