"""Amplified host trees: N PCI functions that share what a plain tree gives each its own.

A hostile tree (a folder given to --root, or a snapshot made from one) can make a reader
pay far more than its size.  ``amplify(tree)`` turns a plain synthetic host
(bench/synthhost.py) of N functions into one of the same N whose size barely grows:

* every lookup under /sys/bus/pci/devices passes a chain of 30 links (the kernel allows 40
  in one lookup, include/linux/namei.h MAXSYMLINKS);
* every function's ``iommu_group`` link names one group, which lists all N.

``big_files(tree)`` adds files far larger or longer than a kernel writes (a 32 MiB cpuinfo,
60,000-line module indexes, a kernel log repeating one line 30,000 times), each to be read
in linear time.

vfioctl must read it in time and memory within 2x of the plain tree (bench/amplified.py;
tests/unit/test_bench_generator.py keeps a small one to the same bound in operations).

``hostile(out, n)`` writes a smaller kind that vfioctl refuses at once, because no kernel
makes it: every /sys/bus/pci/devices entry a link to one folder that lists a virtfn link
to every entry (with ``big_values``, every attribute a link to one file of 32 MiB).

Usage: python bench/amplify.py OUT_DIR -n 8000 [--big-files] [--hostile [--big-values]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

#: links in the chain in front of /sys/bus/pci/devices
CHAIN = 30
#: the size of the one big file (vfioctl reads at most 32 MiB of any file)
BIG = 32 << 20
#: lines of modules.dep and modules.builtin, and copies of one kernel log line
MODULE_LINES = 60000
LOG_LINES = 30000


def _relink(path: str, target_abs: str) -> None:
    """(Re)make *path* a relative link to *target_abs*, as sysfs makes them."""
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(os.path.relpath(target_abs, os.path.dirname(path)), path)


def amplify(root: str, release: str) -> dict:
    """Amplify the plain tree at *root* in place (see the module docstring); its manifest."""
    root = os.path.abspath(root)
    amp = os.path.join(root, "amplify")
    os.makedirs(amp, exist_ok=True)
    # 1. /sys/bus/pci/devices behind a chain of links, its own links still pointing where they did
    devices = os.path.join(root, "sys/bus/pci/devices")
    moved = os.path.join(amp, "devices")
    os.rename(devices, moved)
    for name in os.listdir(moved):
        link = os.path.join(moved, name)
        target = os.path.normpath(os.path.join(devices, os.readlink(link)))
        _relink(link, target)
    for i in range(CHAIN - 1):
        _relink(os.path.join(amp, f"c{i}"), os.path.join(amp, f"c{i + 1}"))
    _relink(os.path.join(amp, f"c{CHAIN - 1}"), moved)
    _relink(devices, os.path.join(amp, "c0"))
    # 2. one IOMMU group holding every function
    groups = os.path.join(root, "sys/kernel/iommu_groups")
    members = []
    for g in os.listdir(groups):
        gdir = os.path.join(groups, g, "devices")
        for name in os.listdir(gdir):
            members.append((name, os.path.normpath(os.path.join(gdir, os.readlink(os.path.join(gdir, name))))))
        shutil.rmtree(os.path.join(groups, g))
    one = os.path.join(groups, "0")
    os.makedirs(os.path.join(one, "devices"))
    with open(os.path.join(one, "type"), "w") as f:
        f.write("DMA\n")
    for name, real in members:
        _relink(os.path.join(one, "devices", name), real)
        _relink(os.path.join(real, "iommu_group"), one)
    vfio = os.path.join(root, "dev/vfio")
    for name in os.listdir(vfio):
        if name not in ("vfio", "0"):
            os.unlink(os.path.join(vfio, name))
    return {"kind": "amplified", "chain": CHAIN, "group_members": len(members)}


def big_files(root: str, release: str) -> dict:
    """Files far larger or longer than a kernel writes them, at *root* (in place): a 32 MiB
    /proc/cpuinfo (only its first block is read), modules.dep and modules.builtin of 60,000
    lines, a captured kernel log repeating one line 30,000 times and a libvirt version of
    120,000 digits: each is read in linear time, within a few seconds."""
    amp = os.path.join(root, "amplify")
    os.makedirs(amp, exist_ok=True)
    with open(os.path.join(amp, "big"), "wb") as f:
        f.write((b"flags\t\t: " + b"x" * 53 + b"\n") * (BIG // 64))
    _relink(os.path.join(root, "proc/cpuinfo"), os.path.join(amp, "big"))
    mods = os.path.join(root, "lib/modules", release)
    os.makedirs(mods, exist_ok=True)
    with open(os.path.join(mods, "modules.dep"), "w") as f:
        f.writelines(f"kernel/drivers/m{i}/{'a' * 40}{i}.ko: kernel/lib/dep{i}.ko\n" for i in range(MODULE_LINES))
    with open(os.path.join(mods, "modules.builtin"), "w") as f:
        f.writelines(f"kernel/drivers/b/{'b' * 60}{i}.ko\n" for i in range(MODULE_LINES))
    probes = os.path.join(root, ".vfioctl")
    os.makedirs(probes, exist_ok=True)
    line = "[    0.5] DMAR-IR: " * 40 + "Enabled IRQ remapping in x2apic mode"
    with open(os.path.join(probes, "probes.json"), "w") as f:
        json.dump({"dmesg": {"lines": [line] * LOG_LINES}, "libvirt-version": "9" * 120000}, f)
    return {"big": BIG, "module_lines": MODULE_LINES, "log_lines": LOG_LINES}


def generate(out: str, n: int, seed: int = 1, release: str = "6.1.0-synth-amd64", big: bool = False) -> dict:
    """A plain synthetic host of *n* functions at *out*, then amplified (with *big*, also
    :func:`big_files`); its manifest."""
    # lazy: bench/synthhost.py sits beside this file, not in a package
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import synthhost

    manifest = synthhost.generate(out, n, seed=seed, release=release, kmod_index=False)
    manifest.update(amplify(out, release))
    if big:
        manifest.update(big_files(out, release))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def hostile(out: str, n: int, release: str = "6.1.0-synth-amd64", big_values: bool = False) -> dict:
    """A tree no kernel makes, of *n* entries that all lead to one device folder (see the module
    docstring); vfioctl refuses it at once."""
    if os.path.exists(out):
        shutil.rmtree(out)
    root = os.path.abspath(out)

    def p(a: str) -> str:
        return root + a

    def w(a: str, text: str | bytes) -> None:
        os.makedirs(os.path.dirname(p(a)), exist_ok=True)
        with open(p(a), "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)

    def ln(a: str, target: str) -> None:
        os.makedirs(os.path.dirname(p(a)), exist_ok=True)
        _relink(p(a), p(target))

    w("/proc/sys/kernel/osrelease", release + "\n")
    w("/amplify/big", (b"x" * 63 + b"\n") * (BIG // 64))
    dev = "/sys/devices/pci0000:00/0000:00:00.0"
    for name, value in (("vendor", "0x8086"), ("device", "0x10d3"), ("class", "0x020000"),
                        ("sriov_totalvfs", str(n)), ("sriov_numvfs", str(n))):
        w(f"{dev}/{name}", value + "\n")
    if big_values:
        for name in ("uevent", "config", "label", "resource"):
            ln(f"{dev}/{name}", "/amplify/big")
        ln("/proc/cmdline", "/amplify/big")
    ln(f"{dev}/iommu_group", "/sys/kernel/iommu_groups/0")
    for i in range(n):
        a = f"{i >> 16:04x}:{(i >> 8) & 0xFF:02x}:{(i >> 3) & 0x1F:02x}.{i & 7:x}"
        ln(f"/sys/bus/pci/devices/{a}", dev)
        ln(f"/sys/kernel/iommu_groups/0/devices/{a}", dev)
        ln(f"{dev}/virtfn{i}", f"/sys/bus/pci/devices/{a}")
    return {"kind": "hostile", "n": n, "big_values": big_values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("-n", type=int, default=8000)
    ap.add_argument("--hostile", action="store_true", help="the kind no kernel makes (refused at once)")
    ap.add_argument("--big-values", action="store_true", help="with --hostile: attributes link to one 32 MiB file")
    ap.add_argument("--big-files", action="store_true", help="also files larger or longer than a kernel writes")
    a = ap.parse_args()
    got = hostile(a.out, a.n, big_values=a.big_values) if a.hostile else generate(a.out, a.n, big=a.big_files)
    print(json.dumps(got, indent=2))


if __name__ == "__main__":
    main()
