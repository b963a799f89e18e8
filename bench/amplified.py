"""Amplified trees against plain ones: does reading cost stay proportional to what is there?

For a size N (default 8,000) this builds a plain synthetic host (bench/synthhost.py) and an
amplified one of the same N (bench/amplify.py: a 30-link chain in front of
/sys/bus/pci/devices, one IOMMU group holding all N), snapshots each with `vfioctl snapshot`,
and runs the same reading workload on each as a folder (--root DIR) and as an archive
(--root X.tar.gz): list, groups, check, topology, status, show and assess of the last
function, and a snapshot (every view, every function shown).  Time is the workload's wall
time (median of --runs), memory the largest peak RSS of its commands (GNU time's %M: the
command's own process, not this harness's); the trees' runs are interleaved command by
command, so that a load spike on a shared machine hits both alike.  The goal (issue 22):
amplified within 2x of plain, in time and in memory, folder and archive alike.

It also times the trees vfioctl refuses (every device entry one folder; the same with every
attribute a link to one 32 MiB file) and the big-file cases (a 32 MiB cpuinfo, 60,000-line
module indexes, a kernel log line repeated 30,000 times, a 120,000-digit libvirt version),
each of which must answer within a few seconds.

Usage: python bench/amplified.py [-n 8000] [--runs 3] [--out bench/results/AMPLIFIED.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import amplify  # noqa: E402
import synthhost  # noqa: E402

RELEASE = "6.1.0-synth-amd64"
TIME = shutil.which("time") or "/usr/bin/time"


def vfioctl(root: str, *argv: str, timeout: float = 900) -> tuple[float, float, int, int]:
    """(wall seconds, CPU seconds, peak RSS KiB, exit code) of one vfioctl command on *root*."""
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, "src"))
    env.pop("VFIOCTL_ROOT", None)
    t = time.perf_counter()
    p = subprocess.run([TIME, "-f", "%U %S %M", sys.executable, "-m", "vfioctl", "--root", root, *argv],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t
    user, system, kib = (p.stderr.strip().splitlines() or ["0 0 0"])[-1].split()
    return wall, float(user) + float(system), int(kib), p.returncode


def workload(last: str, scratch: str) -> list[tuple[str, list[str]]]:
    return [("list", ["list"]), ("groups", ["groups"]), ("check", ["check"]), ("topology", ["topology"]),
            ("status", ["status"]), ("show", ["show", last]), ("assess", ["assess", last]),
            ("snapshot", ["snapshot", os.path.join(scratch, "again.tar.gz")])]


def measure(roots: dict[str, str], last: str, scratch: str, runs: int) -> dict[str, dict]:
    """The workload on each of *roots*, interleaved command by command so that a load spike on
    this shared machine hits every tree alike."""
    per: dict[str, dict[str, dict]] = {name: {} for name in roots}
    for _ in range(runs):
        for cmd, argv in workload(last, scratch):
            for name, root in roots.items():
                wall, cpu, kib, rc = vfioctl(root, *argv)
                e = per[name].setdefault(cmd, {"walls": [], "cpus": [], "kib": 0, "rc": rc})
                e["walls"].append(wall)
                e["cpus"].append(cpu)
                e["kib"] = max(e["kib"], kib)
    out = {}
    for name, cmds in per.items():
        c = {k: {"seconds": statistics.median(v["walls"]), "cpu": statistics.median(v["cpus"]), "peak_kib": v["kib"],
                 "rc": v["rc"]} for k, v in cmds.items()}
        out[name] = {"seconds": sum(x["seconds"] for x in c.values()), "cpu": sum(x["cpu"] for x in c.values()),
                     "peak_kib": max(x["peak_kib"] for x in c.values()), "commands": c}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=8000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(BENCH, ".cache", "amplified"))
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "AMPLIFIED.md"))
    a = ap.parse_args()
    n, work = a.n, os.path.join(a.work, str(a.n))
    os.makedirs(work, exist_ok=True)
    plain, amp = os.path.join(work, "plain"), os.path.join(work, "amplified")
    m = synthhost.generate(plain, n, seed=1, release=RELEASE, kmod_index=False)
    amplify.generate(amp, n, seed=1, release=RELEASE)
    last = m["last"]
    results: dict = {"n": n, "runs": a.runs, "last": last}
    for name, root in (("plain", plain), ("amplified", amp)):
        wall, cpu, kib, rc = vfioctl(root, "snapshot", os.path.join(work, f"{name}.tar.gz"))
        results[f"{name} snapshot made"] = {"seconds": wall, "cpu": cpu, "peak_kib": kib, "rc": rc}
    for kind in ("folder", "archive"):
        roots = {name: root if kind == "folder" else os.path.join(work, f"{name}.tar.gz")
                 for name, root in (("plain", plain), ("amplified", amp))}
        for name, got in measure(roots, last, work, a.runs).items():
            results[f"{name} {kind}"] = got
            print(name, kind, round(got["seconds"], 2), round(got["cpu"], 2), got["peak_kib"], flush=True)
    # refused at once, and the big files
    hostile, hostile_big, big = (os.path.join(work, x) for x in ("hostile", "hostile-big", "big-files"))
    amplify.hostile(hostile, n, release=RELEASE)
    amplify.hostile(hostile_big, n, release=RELEASE, big_values=True)
    synthhost.generate(big, min(n, 500), seed=1, release=RELEASE, kmod_index=False)
    amplify.big_files(big, RELEASE)
    extra = {}
    for label, root, argv in (("hostile: list", hostile, ["list"]), ("hostile: snapshot", hostile,
                                                                     ["snapshot", os.path.join(work, "h.tar.gz")]),
                              ("hostile, 32 MiB values: list", hostile_big, ["list"]),
                              ("hostile, 32 MiB values: check", hostile_big, ["check"]),
                              ("big files: check", big, ["check"]),
                              ("big files: libvirt-hook install --dry-run", big,
                               ["libvirt-hook", "install", "--dry-run", "--vfioctl", sys.executable])):
        wall, cpu, kib, rc = vfioctl(root, *argv)
        extra[label] = {"seconds": wall, "cpu": cpu, "peak_kib": kib, "rc": rc}
    results["refused and big"] = extra
    write(a.out, results)
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(results, f, indent=2)


def write(path: str, r: dict) -> None:
    lines = [f"# Amplified trees: N = {r['n']:,} (medians of {r['runs']} interleaved runs)", "",
             "Made by `bench/amplified.py` (method in its docstring and bench/README.md). Time is the sum of",
             "the workload's per-command medians, wall and CPU (user + system, steadier on a shared",
             "machine); memory the largest peak RSS of one command.", "",
             "| tree | root | wall | CPU | peak memory | wall / plain | CPU / plain | memory / plain |",
             "|---|---|---|---|---|---|---|---|"]
    for kind in ("folder", "archive"):
        p = r[f"plain {kind}"]
        for name in ("plain", "amplified"):
            x = r[f"{name} {kind}"]
            lines.append(f"| {name} | {kind} | {x['seconds']:.2f} s | {x['cpu']:.2f} s | {x['peak_kib'] / 1024:.0f} MiB | "
                         f"{x['seconds'] / p['seconds']:.2f}x | {x['cpu'] / p['cpu']:.2f}x | "
                         f"{x['peak_kib'] / p['peak_kib']:.2f}x |")
    lines += ["", "Per command (wall s / CPU s / peak MiB, exit):", "", "| command | " + " | ".join(
        f"{n} {k}" for k in ("folder", "archive") for n in ("plain", "amplified")) + " |",
        "|---|" + "---|" * 4]
    for cmd in r["plain folder"]["commands"]:
        cells = []
        for k in ("folder", "archive"):
            for n in ("plain", "amplified"):
                c = r[f"{n} {k}"]["commands"][cmd]
                cells.append(f"{c['seconds']:.2f} / {c['cpu']:.2f} / {c['peak_kib'] / 1024:.0f} ({c['rc']})")
        lines.append(f"| {cmd} | " + " | ".join(cells) + " |")
    lines += ["", "Snapshots made of the two folders (the archives above):", ""]
    for name in ("plain", "amplified"):
        x = r[f"{name} snapshot made"]
        lines.append(f"- {name}: {x['seconds']:.2f} s wall, {x['cpu']:.2f} s CPU, {x['peak_kib'] / 1024:.0f} MiB "
                     f"(exit {x['rc']})")
    lines += ["", "Refused at once, and files larger or longer than a kernel writes:", "",
              "| case | wall | CPU | peak memory | exit |", "|---|---|---|---|---|"]
    for label, x in r["refused and big"].items():
        lines.append(f"| {label} | {x['seconds']:.2f} s | {x['cpu']:.2f} s | {x['peak_kib'] / 1024:.0f} MiB | {x['rc']} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
