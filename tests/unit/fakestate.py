"""Reading the fake host back in tests: a function's driver and attributes, the whole tree (what
'the host as before' means); a boot GPU with its console."""

import json
import os

from vfioctl.ops.state import DeviceState
from vfioctl.pci.address import PciAddress


def drv(fake, addr):
    return fake.current_driver(addr)


def attr(fake, addr, name):
    return (fake.root / "sys/bus/pci/devices" / addr / name).read_text().strip()


def tree(root):
    """Every path with its content or link target: what 'the host as before' means here."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            # the journal, the snapshot's probes, and vfio-pci once loaded (a loaded module stays)
            if rel.startswith(("var/lib/vfioctl", ".vfioctl", "sys/bus/pci/drivers/vfio-pci")):
                continue
            if os.path.islink(p):
                out[rel] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                out[rel] = open(p, "rb").read()
    return out


def console_host(fake, *, dm_active=True):
    """00:01.0 (bochs-drm, boot VGA) with fb0, vtcon0 bound to the frame buffer console, and a
    display manager that systemctl (simulated) stops and starts."""
    r = fake.root
    dev = fake._devdir("0000:00:01.0")
    (dev / "graphics/fb0").mkdir(parents=True)
    (dev / "drm/card0").mkdir(parents=True)
    (r / "sys/class/graphics").mkdir(parents=True)
    (r / "sys/class/graphics/fb0").symlink_to(os.path.relpath(dev / "graphics/fb0", r / "sys/class/graphics"))
    (dev / "graphics/fb0/device").symlink_to("../..")
    (r / "proc/fb").write_text("0 bochs-drmdrmfb\n")
    for n, name, bound in ((0, "(M) frame buffer device", "1"), (1, "(S) dummy device", "0")):
        v = r / f"sys/class/vtconsole/vtcon{n}"
        v.mkdir(parents=True)
        (v / "name").write_text(name + "\n")
        (v / "bind").write_text(bound + "\n")
    (r / ".vfioctl").mkdir(exist_ok=True)
    units = {"display-manager.service": {"id": "gdm.service", "active": "active" if dm_active else "inactive"},
             "gdm.service": {"id": "gdm.service", "active": "active" if dm_active else "inactive"}}

    def write_probes():
        (r / ".vfioctl/probes.json").write_text(json.dumps({f"unit:{k}": v for k, v in units.items()}))

    write_probes()
    h = fake.host()
    calls = []

    def run(host_, argv):
        calls.append(argv)
        if argv[0] == "modprobe":
            fake.driver(argv[-1].replace("_", "-"))
            return 0, ""
        if argv[0] == "systemctl":
            state = "inactive" if argv[1] == "stop" else "active"
            for u in units.values():
                u["active"] = state
            write_probes()
            host_._probes = None  # the fake's "systemd" changed
            return 0, ""
        return 127, "not simulated"

    h.run_hook = run
    return h, calls


def device_state(address, *, driver="vfio-pci", override=None, group=12, bridge=False, ids=("8086", "10d3"),
                 reset=("flr",)):
    """A function as ops.state reads it (plain data, for planners and generators under test)."""
    return DeviceState(address=PciAddress.parse(str(address)), vendor_id=ids[0], device_id=ids[1],
                       subsystem=(None, None), class_code=0x060400 if bridge else 0x020000, driver=driver,
                       driver_module=driver and driver.replace("-", "_"), driver_override=override,
                       has_override=True, iommu_group=group, is_bridge=bridge, boot_vga=False, physfn=None,
                       sriov=None, reset_methods=reset, has_reset_method=True, numa_node=None)
