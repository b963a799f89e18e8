#!/usr/bin/env python3
"""Binding overhead, measured on a real kernel in the VM lab.

Hide then restore M devices with vfioctl, against a bare shell loop that does
only the sysfs writes the kernel needs (driver_override, unbind,
drivers_probe; then unbind, clear override, bind the original driver).  The
shell loop is the floor: the kernel's own work.  Both run in the same booted
guest, alternating, after a warm-up; vfio-pci is loaded before either runs.

Three vfioctl variants separate the costs:
  cli      `vfioctl hide DEVS` + `vfioctl restore DEVS` (two processes, as a user runs it)
  library  one Python process calling vfioctl.ops.session.hide/restore (no CLI start-up)
  engine   the same, timed inside that process around the two calls only: vfioctl's
           planning, journal and verification on top of the kernel's work, without the
           interpreter's start-up and imports (which dominate under TCG emulation)
  shell    the bare loop

Usage:  .venv/bin/python bench/bind_overhead.py [--runs 5] [--json out.json]
Writes bench/results/bind_overhead.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "vm"))

from lab import BENCH_NICS, MAIN_NIC, TWIN_NIC, Lab  # noqa: E402

DEVICES = [MAIN_NIC, TWIN_NIC, *BENCH_NICS]
SYS = "/sys/bus/pci/devices"


def shell_loop(devs: list[str], drivers: dict[str, str]) -> str:
    hide = "".join(
        f"echo vfio-pci > {SYS}/{d}/driver_override; echo {d} > /sys/bus/pci/drivers/{drivers[d]}/unbind; "
        f"echo {d} > /sys/bus/pci/drivers_probe; "
        for d in devs
    )
    restore = "".join(
        f"echo {d} > /sys/bus/pci/drivers/vfio-pci/unbind; echo > {SYS}/{d}/driver_override; "
        f"echo {d} > /sys/bus/pci/drivers/{drivers[d]}/bind; "
        for d in devs
    )
    return hide + restore


def timed(lab: Lab, script: str, env: dict | None = None) -> float:
    """Wall time of *script* inside the guest, measured there (ns clock), in seconds."""
    r = lab.sh(f"s=$(date +%s%N); {script} >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo $rc $s $e",
               timeout=600, env=env)
    rc, s, e = r.out.split()[-3:]
    if rc != "0":
        raise SystemExit(f"benchmark step failed (rc {rc}): {script[:200]}\n{r.err}")
    return (int(e) - int(s)) / 1e9


def check_all_back(lab: Lab, drivers: dict[str, str]) -> None:
    for d, drv in drivers.items():
        cur = lab.driver(d)
        if cur != drv:
            raise SystemExit(f"{d} is on {cur}, expected {drv}: the benchmark left a mess")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", default=str(REPO / "bench" / "results" / "bind_overhead.json"))
    args = ap.parse_args()

    t0 = time.monotonic()
    lab = Lab.boot(repo=REPO, python=sys.executable)
    try:
        boot_s = time.monotonic() - t0
        lab.sh("modprobe vfio-pci", check=True)
        drivers = {d: lab.driver(d) for d in DEVICES}
        py = shlex.quote(lab.python)
        env = {"PYTHONPATH": f"{lab.repo}/src"}
        devs = " ".join(DEVICES)
        variants = {
            "cli": f"{py} -m vfioctl hide {devs} && {py} -m vfioctl restore {devs}",
            "library": (
                f"{py} -c " + shlex.quote(
                    "from vfioctl.host.core import Host; from vfioctl import engine; h=Host('/'); "
                    f"d={DEVICES!r}; engine.hide(h, d); engine.restore(h, d)"
                )
            ),
            "shell": shell_loop(DEVICES, drivers),
        }
        engine_script = f"{py} -c " + shlex.quote(
            "import time; from vfioctl.host.core import Host; from vfioctl import engine; h=Host('/'); "
            f"d={DEVICES!r}; t=time.perf_counter(); engine.hide(h, d); engine.restore(h, d); "
            "print(time.perf_counter()-t)"
        )
        times: dict[str, list[float]] = {k: [] for k in variants}
        times["engine"] = []
        for k, script in variants.items():  # warm-up: caches, page cache of the 9p root
            timed(lab, script, env)
            check_all_back(lab, drivers)
        for _ in range(args.runs):
            for k, script in variants.items():
                times[k].append(timed(lab, script, env))
                check_all_back(lab, drivers)
            r = lab.sh(engine_script, env=env, timeout=600, check=True)
            times["engine"].append(float(r.out.split()[-1]))
            check_all_back(lab, drivers)
        py_start = [timed(lab, f"{py} -c pass") for _ in range(3)]
        accel = lab.accel if hasattr(lab, "accel") else "?"
    finally:
        lab.close()

    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "devices": DEVICES,
        "m": len(DEVICES),
        "runs": args.runs,
        "accel": accel,
        "boot_s": round(boot_s, 2),
        "python_startup_s": round(statistics.median(py_start), 3),
        "seconds": {k: [round(x, 4) for x in v] for k, v in times.items()},
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "ratio_to_shell": {k: round(v / med["shell"], 3) for k, v in med.items()},
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"hide + restore of {len(DEVICES)} devices, {args.runs} runs, guest accel {accel}:")
    print(f"{'variant':<10} {'median s':>9} {'min':>7} {'max':>7} {'x shell':>8}")
    for k, v in times.items():
        print(f"{k:<10} {med[k]:>9.3f} {min(v):>7.3f} {max(v):>7.3f} {med[k] / med['shell']:>8.2f}")
    print(f"(python start-up in the guest: {out['python_startup_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
