"""Facts about the machine: the initramfs tool, the virtualisation, os-release."""

from __future__ import annotations

import pytest
from bootsetup import prepare

from vfioctl import boot


@pytest.mark.parametrize("osrelease, tools, expect", [
    ("ID=debian\n", (), "initramfs-tools"),
    ('ID=ubuntu\nID_LIKE="debian"\n', (), "initramfs-tools"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', (), "dracut"),
    ("ID=fedora\n", (), "dracut"),
    ("ID=arch\n", (), "mkinitcpio"),
    ("ID=debian\n", ("dracut",), "dracut"),  # the installed tool wins over the family
    ("ID=nixos\n", (), None),
])
def test_detect_initramfs(fake, osrelease, tools, expect):
    host = prepare(fake, osrelease=osrelease, tools=tools)
    assert boot.detect_initramfs(host) == expect
