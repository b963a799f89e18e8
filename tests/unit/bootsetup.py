"""The boot tests' host (tests/unit/boot, tests/unit/host/test_system.py): a config, modules.alias,
os-release, the initramfs tools and vfioctl itself on the fake host."""

from __future__ import annotations

from vfioctl import boot
from vfioctl.ops.config import parse_config

P = "/etc/vfioctl/vfioctl.toml"
VFIOCTL = "/usr/bin/vfioctl"

CONFIG = """
[[device]]
address = "0000:00:07.0"   # one of two e1000e twins
id = "8086:10d3"

[[device]]
address = "0000:01:01.0"   # an e1000 behind the bridge: its group holds 01:02.0 too
id = "8086:100e"
group = true

[[sriov]]
pf = "0000:00:04.0"
numvfs = 2
hide = true
"""

ALIASES = """\
alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e
alias pci:v00008086d0000100Esv*sd*bc*sc*i* e1000
alias pci:v00001B36d00000010sv*sd*bc01sc08i02* nvme
alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci
"""

def prepare(fake, config=CONFIG, osrelease="ID=debian\n", tools=("update-initramfs",)):
    r = fake.root
    (r / "lib/modules/6.1.0-test-amd64/modules.alias").write_text(ALIASES)
    (r / "etc/vfioctl").mkdir(parents=True, exist_ok=True)
    (r / "etc/vfioctl/vfioctl.toml").write_text(config)
    (r / "etc/os-release").write_text(osrelease)
    (r / "usr/bin").mkdir(parents=True, exist_ok=True)
    (r / "usr/sbin").mkdir(parents=True, exist_ok=True)
    (r / "usr/bin/vfioctl").write_text("#!/bin/sh\n")
    for t in tools:
        (r / "usr/sbin" / t).write_text("")
    fake.driver("vfio-pci")
    return fake.host()


def facts_for(host, config_text=CONFIG):
    config = parse_config(config_text, P)
    return config, boot.gather_facts(host, config, VFIOCTL)
