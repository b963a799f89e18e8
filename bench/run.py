"""Benchmark vfioctl against the tools people use today, on the same synthetic host.

For each size N a synthetic host tree is generated (bench/synthhost.py, cached
under bench/.cache) and every tool is run on it inside a private mount
namespace where the tree's sys/ is bind-mounted over /sys and its lib/modules
over /lib/modules, so tools that hard-code /sys (all of the peers) read the
synthetic host.  Each tool is first checked to have read the synthetic tree
(device count, a known synthetic address); a tool that did not is reported as
such and not timed.  Then 1 warm-up + R timed runs, interleaved round-robin
across tools so that drift on a noisy machine hits every tool alike.  Wall time
is perf_counter around spawn + os.wait4; peak RSS is wait4's ru_maxrss (the
largest process of the tool's tree, e.g. dpdk-devbind's lspci children).

Usage (see bench/README.md; bench/run.sh sets up and calls this):
    bench/.venv/bin/python bench/run.py [--sizes 100,1000,10000] [--runs 7] [--budget 300]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

import synthhost  # noqa: E402

CACHE = os.path.join(BENCH, ".cache")
RESULTS = os.path.join(BENCH, "results")
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
ADDR_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\b", re.M)

INSTALL_HINT = """\
missing tools: {missing}
install them with bench/setup.sh, or by hand:
  apt-get install pciutils time dpdk driverctl kmod iproute2 gcc util-linux
  python3 -m venv bench/.venv && bench/.venv/bin/pip install devbind matplotlib pyinstrument -e .
"""


# ----------------------------------------------------------------------------- tools
def which(name: str) -> str | None:
    for d in (VENV_BIN, *os.environ.get("PATH", "").split(":"), "/usr/sbin", "/sbin", "/usr/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def tools(tree: str) -> list[dict]:
    vfioctl = which("vfioctl")
    return [
        {"name": "lspci -Dnnk", "argv": [which("lspci"), "-Dnnk"], "check": check_lspci, "baseline": True},
        {"name": "dpdk-devbind.py --status", "argv": [which("dpdk-devbind.py"), "--status"], "check": check_dpdk},
        {"name": "driverctl list-devices", "argv": [which("driverctl"), "list-devices"], "check": check_driverctl},
        {"name": "devbind --list", "argv": [which("devbind"), "--list"], "check": check_devbind},
        {"name": "vfioctl list", "argv": [vfioctl, "list"], "check": check_vfioctl_list, "ours": True},
        {"name": "vfioctl list --json", "argv": [vfioctl, "list", "--json"], "check": check_vfioctl_json, "ours": True},
        {"name": "vfioctl groups", "argv": [vfioctl, "groups"], "check": check_vfioctl_groups, "ours": True},
        {"name": "vfioctl --root TREE list", "argv": [vfioctl, "--root", tree, "list"], "check": check_vfioctl_list,
         "ours": True},
        *([{"name": "vfioctl list (older build)", "argv": [OLD_VFIOCTL, "list"], "check": check_vfioctl_list, "ours": True},
           {"name": "vfioctl groups (older build)", "argv": [OLD_VFIOCTL, "groups"], "check": check_vfioctl_groups,
            "ours": True}] if OLD_VFIOCTL else []),
        # isolation: what users run to see their groups (the loop the Arch wiki and most
        # passthrough guides give: lspci -nns once per group member) and the PCI tree
        {"name": "iommu-groups loop (lspci -nns per member)", "argv": ["/bin/bash", "-c", GROUPS_LOOP],
         "check": check_groups_loop, "max_n": 1000},
        {"name": "vfioctl groups --why", "argv": [vfioctl, "groups", "--why"], "check": check_vfioctl_why, "ours": True},
        {"name": "lspci -tv", "argv": [which("lspci"), "-tv"], "check": check_tree},
        {"name": "vfioctl topology", "argv": [vfioctl, "topology"], "check": check_tree, "ours": True},
        *([{"name": "vfioctl topology (older build)", "argv": [OLD_VFIOCTL, "topology"], "check": check_tree,
            "ours": True}] if OLD_VFIOCTL else []),
        # the host check and the per-function assessment, measured against `list` (issue 27: no
        # target yet); assess runs every check for every function, seconds at N = 1,000
        {"name": "vfioctl check", "argv": [vfioctl, "check"], "check": check_vfioctl_check, "ours": True,
         "max_n": 1000},
        {"name": "vfioctl assess", "argv": [vfioctl, "assess"], "check": check_vfioctl_assess, "ours": True,
         "max_n": 1000},
    ]


# BENCH_OLD_VFIOCTL=/path/to/bin/vfioctl measures an older build beside this one (a
# regression check: e.g. a venv with the previous release installed).
OLD_VFIOCTL = os.environ.get("BENCH_OLD_VFIOCTL") or None

# One lspci per member makes this loop quadratic in N (each lspci scans the whole bus): at
# N = 10,000 one run would take hours, so it is measured up to N = 1,000 only ("max_n").
GROUPS_LOOP = (
    'shopt -s nullglob; for g in $(find /sys/kernel/iommu_groups/ -mindepth 1 -maxdepth 1 -type d | sort -V); do '
    'echo "IOMMU Group ${g##*/}:"; for d in "$g"/devices/*; do echo "  $(lspci -nns "${d##*/}")"; done; done'
)


# each check: (stdout, stderr, manifest) -> (ok, evidence)
def _has(out: str, m: dict, key: str) -> bool:
    return not m.get(key) or m[key] in out


def check_lspci(out, err, m):
    n = len(ADDR_RE.findall(out))
    mods = out.count("Kernel modules:")
    ok = n == m["n"] and _has(out, m, "sample_vf") and (mods > 0 or not m["kmod_index"])
    return ok, f"{n} functions listed (tree has {m['n']}), {mods} 'Kernel modules:' lines, sample VF {m['sample_vf']} {'found' if _has(out, m, 'sample_vf') else 'MISSING'}"


def check_dpdk(out, err, m):
    n = len(ADDR_RE.findall(out))
    ok = n == m["net_class"] and _has(out, m, "sample_vf")
    return ok, f"{n} network functions listed (tree has {m['net_class']} of class 02), sample VF {'found' if _has(out, m, 'sample_vf') else 'MISSING'}"


def check_driverctl(out, err, m):
    n = len(ADDR_RE.findall(out))
    ok = n == m["n"] and _has(out, m, "sample_vf")
    return ok, f"{n} overridable functions listed (tree has {m['n']}), sample VF {'found' if _has(out, m, 'sample_vf') else 'MISSING'}"


def check_devbind(out, err, m):
    n = out.count("props:")
    ok = n == m["nvme"] and _has(out, m, "sample_nvme")
    return ok, f"{n} NVMe functions listed (its default --classcode 0x0108; tree has {m['nvme']}), sample NVMe {'found' if _has(out, m, 'sample_nvme') else 'MISSING'}"


def check_vfioctl_list(out, err, m):
    n = len(ADDR_RE.findall(out))
    vfs = out.count("(VF of ")
    ok = n == m["n"] and vfs == m["vfs"] and _has(out, m, "sample_vf")
    return ok, f"{n} functions listed (tree has {m['n']}), {vfs} VFs (tree has {m['vfs']})"


def check_vfioctl_json(out, err, m):
    try:
        devs = json.loads(out)["devices"]
    except (ValueError, KeyError) as e:
        return False, f"no JSON: {e}"
    addrs = {d["address"] for d in devs}
    ok = len(devs) == m["n"] and (not m["sample_vf"] or m["sample_vf"] in addrs)
    return ok, f"{len(devs)} records (tree has {m['n']})"


def check_vfioctl_groups(out, err, m):
    g = len(re.findall(r"group \d+\s", out))
    # a member line: "<address>  [vvvv:dddd]"; counted loosely, then exactly, so that an
    # address the renderer garbled is reported as such rather than as a missing member
    members = len(re.findall(r"[0-9a-f]{4}\S{1,6}\.[0-7]  \[[0-9a-f]{4}:[0-9a-f]{4}\]", out))
    exact = len(re.findall(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]  \[", out))
    ok = g == m["groups"] and members == m["n"]
    ev = f"{g} groups (tree has {m['groups']}), {members} members (tree has {m['n']})"
    if exact != members:
        ev += (f"; OUTPUT DEFECT: {members - exact} member addresses printed garbled "
               "(rich emoji codes: 0000:ab:00.0 shows as 0000<emoji>00.0)")
    return ok, ev


def check_groups_loop(out, err, m):
    g = len(re.findall(r"^IOMMU Group \d+:", out, re.M))
    members = len(re.findall(r"^  \S", out, re.M))
    ok = g == m["groups"] and members == m["n"]
    return ok, f"{g} groups (tree has {m['groups']}), {members} member lines (tree has {m['n']})"


def check_vfioctl_why(out, err, m):
    g = len(re.findall(r"^group \d+", out, re.M))
    return g > 0, f"{g} shared groups explained"


def check_vfioctl_check(out, err, m):
    n = len(re.findall(r"^(?:PASS|WARN|FAIL|INFO)  ", out, re.M))
    return n > 0, f"{n} findings"


def check_vfioctl_assess(out, err, m):
    # every endpoint (assess judges devices a guest could get, not bridges and ports)
    n = len(re.findall(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]  \[", out, re.M))
    want = m["n"] - m["bridges"]
    return n == want, f"{n} functions assessed (tree has {want} that are no bridge or port)"


#: exit statuses that report the host, not a failure to read it: `check` exits 1 when a finding is
#: FAIL (a synthetic host has no VT-x), `assess` 69 when a device is blocked
OK_EXITS = {check_vfioctl_check: (1,), check_vfioctl_assess: (69,)}


def check_tree(out, err, m):
    # each function once: "SS.F" then spaces (a device) or "-[" (a bridge with its bus), in both trees
    n = len(re.findall(r"[0-9a-f]{2}\.[0-7](?=\s|-\[)", out))
    ok = n == m["n"]
    return ok, f"{n} functions drawn (tree has {m['n']})"


# ----------------------------------------------------------------------------- measuring
def spawn(argv: list[str], capture: bool = False) -> tuple[float, int, int, str, str]:
    """Run argv; return (wall seconds, peak RSS KiB, exit status, stdout, stderr).

    Without *capture* the CPU time (user + sys of the tool's process tree) is left in
    ``spawn.cpu``: on a shared machine it moves less than wall time.
    """
    out = subprocess.PIPE if capture else subprocess.DEVNULL
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)
    so = se = b""
    if capture:
        so, se = p.communicate()  # reaps: use a separate wait-free path below for rusage
        wall = time.perf_counter() - t0
        return wall, 0, p.returncode, so.decode(errors="replace"), se.decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    spawn.cpu = ru.ru_utime + ru.ru_stime
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss, p.returncode, "", ""


def peak_rss_kib(argv: list[str]) -> tuple[int | None, str]:
    """Peak RSS of the tool's largest process, in KiB, from one extra run under GNU time.

    Not from our own wait4(): Linux carries the parent's RSS high-water mark across
    fork + exec (exec_mmap records the old mm's hiwater in signal->maxrss), so every
    child of this ~20-40 MiB Python harness would report at least the harness's size.
    GNU time forks the tool from a ~2 MiB process instead.
    """
    gtime = "/usr/bin/time"
    if not os.access(gtime, os.X_OK):
        return None, "GNU time not installed (apt-get install time): not measured"
    out = os.path.join(CACHE, f"rss-{os.getpid()}.txt")
    subprocess.run([gtime, "-f", "%M", "-o", out, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(out) as fh:
            return int(fh.read().split()[-1]), "GNU time %M"
    except (OSError, ValueError, IndexError):
        return None, "GNU time gave no figure"
    finally:
        if os.path.exists(out):
            os.unlink(out)


def summarize(samples: list[float]) -> dict:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": len(samples)}


def measure(tls: list[dict], manifest: dict, runs: int, budget: float, log) -> list[dict]:
    out = []
    for t in tls:
        rec = {"tool": t["name"], "argv": t["argv"], "ours": t.get("ours", False), "baseline": t.get("baseline", False)}
        if not t["argv"][0]:
            rec.update(verified=False, evidence="not installed")
            out.append(rec)
            continue
        if manifest["n"] > t.get("max_n", manifest["n"]):
            rec.update(verified=False, evidence=f"not run above N = {t['max_n']:,} (quadratic: hours per run)")
            out.append(rec)
            continue
        wall, _, rc, so, se = spawn(t["argv"], capture=True)  # warm-up doubles as the read check
        ok, evidence = t["check"](so, se, manifest)
        if rc != 0 and rc not in OK_EXITS.get(t["check"], ()):
            ok, evidence = False, f"exit {rc}: {se.strip().splitlines()[-1] if se.strip() else ''}; " + evidence
        rec.update(verified=ok, evidence=evidence, warmup_s=wall, wall=[],
                   planned_runs=max(min(runs, int(budget // max(wall, 1e-3))), 3))
        log(f"  {t['name']:<26} {'read the tree' if ok else 'DID NOT READ THE TREE'}: {evidence} (warm-up {wall:.3f}s)")
        out.append(rec)
    for r in range(runs):
        for rec in out:
            if rec.get("verified") and r < rec["planned_runs"]:
                w, _, rc, _, _ = spawn(rec["argv"])
                rec["wall"].append(w)
                rec.setdefault("cpu", []).append(spawn.cpu)
    base = next(r for r in out if r["baseline"])
    for rec in out:
        if rec.get("wall"):
            rec["peak_rss_kib"], rec["rss_method"] = peak_rss_kib(rec["argv"])
            rec["time"] = summarize(rec["wall"])
            rec["cpu_time"] = summarize(rec["cpu"])
            if base.get("wall"):
                rec["ratio_to_lspci"] = rec["time"]["median"] / statistics.median(base["wall"])
    return out


# ----------------------------------------------------------------------------- namespace
def ensure_tree(n: int, seed: int, log) -> tuple[str, dict]:
    release = os.uname().release
    tree = os.path.join(CACHE, f"host-n{n}-s{seed}")
    mf = os.path.join(tree, "manifest.json")
    try:
        with open(mf) as fh:
            m = json.load(fh)
        if m.get("format") == synthhost.FORMAT_VERSION and m.get("release") == release and m["n"] == n:
            return tree, m
    except (OSError, ValueError):
        pass
    log(f"generating a {n}-function host in {tree} ...")
    t0 = time.perf_counter()
    m = synthhost.generate(tree, n, seed, release)
    log(f"  done in {time.perf_counter() - t0:.1f}s")
    return tree, m


def in_namespace(tree: str, args: list[str]) -> dict:
    """Re-run this script inside a private mount namespace with the tree over /sys."""
    if not os.path.isdir("/lib/modules"):
        # the mount point for the tree's /lib/modules; empty, harmless on a box with no modules
        print("note: creating an empty /lib/modules as a mount point", file=sys.stderr)
        os.makedirs("/lib/modules", exist_ok=True)
    out = os.path.join(CACHE, f"inner-{os.getpid()}.json")
    cmd = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        cmd.append("--map-root-user")  # user namespace: bind mounts without root (untested path)
    cmd += [sys.executable, os.path.abspath(__file__), "--inner", tree, "--inner-out", out, *args]
    subprocess.run(cmd, check=True)
    with open(out) as fh:
        data = json.load(fh)
    os.unlink(out)
    return data


def inner(tree: str, out_path: str, a: argparse.Namespace) -> None:
    subprocess.run(["mount", "--bind", os.path.join(tree, "sys"), "/sys"], check=True)
    subprocess.run(["mount", "--bind", os.path.join(tree, "lib/modules"), "/lib/modules"], check=True)
    with open(os.path.join(tree, "manifest.json")) as fh:
        m = json.load(fh)
    seen = len(os.listdir("/sys/bus/pci/devices"))
    if seen != m["n"]:
        raise SystemExit(f"the bind mount did not take: /sys/bus/pci/devices has {seen} entries, the tree {m['n']}")
    log = lambda s: print(s, flush=True)  # noqa: E731
    data: dict = {"manifest": m}
    if a.inner_mode == "cold":
        data["cold"] = cold_start(tree, m, a.runs, log)
    else:
        tls = tools(tree)
        if a.tools:
            words = [w.strip() for w in a.tools.split(",") if w.strip()]
            tls = [t for t in tls if t.get("baseline") or any(w in t["name"] for w in words)]
        if a.skip_tools:
            words = [w.strip() for w in a.skip_tools.split(",") if w.strip()]
            tls = [t for t in tls if t.get("baseline") or not any(w in t["name"] for w in words)]
        data["tools"] = measure(tls, m, a.runs, a.budget, log)
    with open(out_path, "w") as fh:
        json.dump(data, fh)


def cold_start(tree: str, m: dict, runs: int, log) -> dict:
    py = sys.executable
    vf = which("vfioctl")
    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        ("lspci -Dnnk", [which("lspci"), "-Dnnk"]),
        ("vfioctl --version", [vf, "--version"]),
        ("vfioctl --help", [vf, "--help"]),
        ("vfioctl list", [vf, "list"]),
        ("vfioctl list --json", [vf, "list", "--json"]),
        *([("vfioctl --version (older build)", [OLD_VFIOCTL, "--version"]),
           ("vfioctl --help (older build)", [OLD_VFIOCTL, "--help"]),
           ("vfioctl list (older build)", [OLD_VFIOCTL, "list"])] if OLD_VFIOCTL else []),
    ]
    res = {}
    _, _, rc, so, _ = spawn([vf, "list"], capture=True)
    ok, ev = check_vfioctl_list(so, "", m)
    res["verified"] = {"ok": ok and rc == 0, "evidence": ev}
    for name, argv in cases:
        spawn(argv)
    samples: dict[str, list] = {name: [] for name, _ in cases}
    cpu: dict[str, list] = {}
    for _ in range(runs):
        for name, argv in cases:
            w, _, _, _, _ = spawn(argv)
            samples[name].append(w)
            cpu.setdefault(name, []).append(spawn.cpu)
    res["cases"] = [{"tool": n, "time": summarize(samples[n]), "cpu_time": summarize(cpu[n]),
                     "peak_rss_kib": peak_rss_kib(argv)[0]} for n, argv in cases]
    for c in res["cases"]:
        log(f"  {c['tool']:<22} median {c['time']['median'] * 1000:.1f} ms")
    # python -X importtime: last of 3 runs (warm caches)
    for _ in range(3):
        p = subprocess.run([py, "-X", "importtime", "-m", "vfioctl", "list"], capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        mm = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if mm:
            rows.append({"module": mm[4], "self_us": int(mm[1]), "cumulative_us": int(mm[2]), "depth": len(mm[3]) // 2})
    res["importtime"] = {
        "total_self_us": sum(r["self_us"] for r in rows),
        "modules": len(rows),
        "top_self": sorted(rows, key=lambda r: -r["self_us"])[:10],
        "top_cumulative_toplevel": sorted((r for r in rows if r["depth"] == 0), key=lambda r: -r["cumulative_us"])[:10],
    }
    return res


# ----------------------------------------------------------------------------- report
def machine_info() -> dict:
    def run(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), "?")
    except OSError:
        pass
    pkgs = run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n", "pciutils", "dpdk", "driverctl", "kmod"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tools": {
            "lspci": run([which("lspci") or "lspci", "--version"]),
            "debian packages": pkgs.replace("\n", "; "),
            "devbind": run([which("devbind") or "devbind", "--version"]),
            "vfioctl": run([which("vfioctl") or "vfioctl", "--version"]),
        },
        "fs": run(["df", "--output=fstype", CACHE]).splitlines()[-1:],
        "load": "at the start %.2f / %.2f / %.2f" % os.getloadavg(),
    }


def fmt_rss(kib: int | None) -> str:
    return "n/m" if kib is None else f"{kib / 1024:.1f}"


def fmt_ms(s: float) -> str:
    ms = s * 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


#: issue 27's targets at N = 1,000 and 10,000: (tool, the row it is divided by, at most, the target)
ISSUE27_RATIOS = [
    ("vfioctl list", "lspci -Dnnk", 0.8, "`vfioctl list` <= 0.8x `lspci -Dnnk` (live path)"),
    ("vfioctl --root TREE list", "vfioctl list", 1.1, "`vfioctl --root TREE list` within 1.1x of live `list`"),
    ("vfioctl topology", "lspci -tv", 1.0, "`vfioctl topology` <= 1.0x `lspci -tv`"),
    ("vfioctl groups", "vfioctl list", 1.3, "`vfioctl groups` <= 1.3x `vfioctl list`"),
    ("vfioctl groups --why", "vfioctl list", 1.5, "`vfioctl groups --why` <= 1.5x `vfioctl list`"),
]
#: and on the 10-function host (cold start)
ISSUE27_COLD = [
    ("vfioctl list", "lspci -Dnnk", 2.0, "cold `vfioctl list`, 10-function host, <= 2x `lspci -Dnnk`"),
    ("vfioctl --version", "python -c pass", 1.5, "`vfioctl --version` within 1.5x of `python3 -c pass`"),
    ("vfioctl --help", "python -c pass", 1.5, "`vfioctl --help` within 1.5x of `python3 -c pass`"),
]


def targets(res: dict) -> list[tuple[str, str, bool | None]]:
    def get(n, tool):
        for r in res["sizes"].get(str(n), {}).get("tools", []):
            # a row kept from an earlier run (--merge) is no ratio of this run's
            if r["tool"] == tool and r.get("time") and not r.get("earlier_run"):
                return r
        return None

    def ratio(n, tool, to):
        a, b = get(n, tool), get(n, to)
        return a["time"]["median"] / b["time"]["median"] if a and b else None

    out = []
    # issue 27: ratios in one interleaved run, medians: (tool, against, at most, what is promised)
    cold = {c["tool"]: c["time"]["median"] for c in res.get("cold", {}).get("cases", [])}
    for tool, to, most, what in ISSUE27_RATIOS:
        for n in (1000, 10000):
            r = ratio(n, tool, to)
            if r is not None:
                out.append((f"N={n:,}: {what}", f"{r:.2f}x", r <= most))
    for tool, to, most, what in ISSUE27_COLD:
        if tool in cold and to in cold:
            r = cold[tool] / cold[to]
            out.append((what, f"{r:.2f}x ({fmt_ms(cold[tool])} ms)", r <= most))
    for tool in ("vfioctl check", "vfioctl assess"):
        r = ratio(1000, tool, "vfioctl list")
        if r is not None:
            out.append((f"N=1,000: `{tool}` against `vfioctl list` (no target yet)",
                        f"{r:.2f}x ({fmt_ms(get(1000, tool)['time']['median'])} ms)", None))
    # issue 5
    v = get(1000, "vfioctl list")
    if v and "ratio_to_lspci" in v:
        out.append(("N=1,000: `vfioctl list` within 2x of `lspci -Dnnk`", f"{v['ratio_to_lspci']:.2f}x", v["ratio_to_lspci"] <= 2))
    for peer in ("dpdk-devbind.py --status", "driverctl list-devices"):
        p = get(1000, peer)
        if v and p:
            sp = p["time"]["median"] / v["time"]["median"]
            out.append((f"N=1,000: >= 10x faster than `{peer}`", f"{sp:.1f}x faster", sp >= 10))
    ts = {n: get(n, "vfioctl list") for n in (100, 1000, 10000)}
    if all(ts.values()):
        # CPU time when every size has it: wall time on a shared machine swings by 2-3x
        key = "cpu_time" if all(ts[n].get("cpu_time") for n in ts) else "time"
        t = {n: ts[n][key]["median"] for n in ts}
        m1 = (t[1000] - t[100]) / 900 * 1e6
        m2 = (t[10000] - t[1000]) / 9000 * 1e6
        ok = m1 > 0 and m2 <= 1.5 * m1
        out.append((f"linear growth to N=10,000 ({'CPU' if key == 'cpu_time' else 'wall'} time per added function, "
                    "1k-10k within 1.5x of 100-1k)",
                    f"{m1:.0f} us/fn (100-1k), {m2:.0f} us/fn (1k-10k): {m2 / m1:.2f}x; "
                    f"t(10k)/t(1k) = {t[10000] / t[1000]:.1f}", ok))
    if "vfioctl list" in cold:
        out.append(("cold `vfioctl list`, 10-function host, < 150 ms", f"{fmt_ms(cold['vfioctl list'])} ms", cold["vfioctl list"] < 0.150))
    b = res.get("binding")
    if b:
        r = b["ratio_to_shell"]
        out.append(("hide + restore of M devices within 1.2x of a bare sysfs-write loop (VM lab, engine in-process)",
                    f"{r['engine']:.2f}x (M={b['m']}, {b['accel']}; with Python start-up: library {r['library']:.2f}x, cli {r['cli']:.2f}x)",
                    r["engine"] <= 1.2))
    else:
        out.append(("hide + restore of M devices within 1.2x of a bare sysfs-write loop (VM lab)", "not measured: run bench/bind_overhead.py", None))
    return out


def write_report(res: dict) -> str:
    mi = res["machine"]
    L = ["# vfioctl benchmark results", "",
         f"Regenerate: `bench/run.sh` (see [README](../README.md)). Generated {mi['date']}.", "",
         f"Machine: {mi['nproc']} CPUs ({mi['cpu']}), kernel {mi['kernel']}, Python {mi['python']}, "
         f"tree on {' '.join(mi['fs'])}."
         + (f" Load average (1 / 5 / 15 min) {mi['load']}: other jobs share this machine." if mi.get("load") else ""), "",
         "Tools: " + "; ".join(f"{k}: {v}" for k, v in mi["tools"].items()), "",
         "Wall time in ms (median of the timed runs after a warm-up; min-max is the spread), CPU time "
         "(user + system of the tool's process tree, median), peak RSS of the tool's largest process in MiB "
         "(one extra run under GNU time; n/m = not measured), and the ratio of each tool's median to "
         "`lspci -Dnnk`'s measured in the same interleaved run. Ratios are the figures that count: "
         "this machine is noisy.", ""]
    L += ["## Targets", "", "| target | result | met |", "|---|---|---|"]
    for name, val, ok in targets(res):
        L.append(f"| {name} | {val} | {'yes' if ok else 'no' if ok is False else 'n/a'} |")
    L.append("")
    for n, data in res["sizes"].items():
        m = data["manifest"]
        L += [f"## N = {int(n):,}", "",
              f"Tree: {m['n']} functions, {m['groups']} IOMMU groups, {m['pfs']} SR-IOV PFs with {m['vfs']} VFs, "
              f"{m['nvme']} NVMe, {m['gpus']} GPUs, {m['bridges']} bridges/ports, {m['root_buses']} root buses in "
              f"{m['domains']} PCI domain(s); kmod index for lspci -k: {'yes' if m['kmod_index'] else 'no'}.", "",
              "| tool | read the tree | median ms | min-max ms | runs | x lspci | CPU ms (median) | peak RSS MiB |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in data["tools"]:
            if r.get("time"):
                t = r["time"]
                L.append(f"| `{r['tool']}` | yes | {fmt_ms(t['median'])} | {fmt_ms(t['min'])}-{fmt_ms(t['max'])} | "
                         f"{t['runs']}{' (capped)' if t['runs'] < 5 else ''} | {r.get('ratio_to_lspci', 0):.2f}{'*' if r.get('earlier_run') else ''} | "
                         f"{fmt_ms(r['cpu_time']['median']) if r.get('cpu_time') else 'n/m'} | {fmt_rss(r.get('peak_rss_kib'))} |")
            else:
                L.append(f"| `{r['tool']}` | **no**: {r.get('evidence', '')} | - | - | - | - | - | - |")
        L += ["", "Read checks (the warm-up run's output):", ""]
        for r in data["tools"]:
            L.append(f"- `{r['tool']}`: {'ok' if r.get('verified') else 'FAILED'}: {r.get('evidence', '')}")
        L.append("")
    cold = res.get("cold")
    if cold:
        L += ["## Cold start (10-function host)", "",
              f"Read check: {cold['verified']['evidence']}.", "",
              "| command | median ms | min-max ms | CPU ms (median) | peak RSS MiB |", "|---|---:|---:|---:|---:|"]
        for c in cold["cases"]:
            t = c["time"]
            cpu = fmt_ms(c["cpu_time"]["median"]) if c.get("cpu_time") else "n/m"
            L.append(f"| `{c['tool']}` | {fmt_ms(t['median'])} | {fmt_ms(t['min'])}-{fmt_ms(t['max'])} | {cpu} | {fmt_rss(c.get('peak_rss_kib'))} |")
        it = cold["importtime"]
        L += ["", f"`python -X importtime -m vfioctl list`: {it['modules']} modules, {it['total_self_us'] / 1000:.1f} ms "
              "of import time in all. Top 10 by self time:", "",
              "| module | self ms | cumulative ms |", "|---|---:|---:|"]
        for r in it["top_self"]:
            L.append(f"| `{r['module']}` | {r['self_us'] / 1000:.2f} | {r['cumulative_us'] / 1000:.2f} |")
        L += ["", "Top-level imports by cumulative time:", "", "| module | cumulative ms |", "|---|---:|"]
        for r in it["top_cumulative_toplevel"]:
            L.append(f"| `{r['module']}` | {r['cumulative_us'] / 1000:.2f} |")
        L.append("")
    L += ["## Binding overhead (VM lab)", ""]
    b = res.get("binding")
    if not b:
        L += ["Not measured: run `bench/bind_overhead.py` (boots the tests/vm lab), then `bench/run.py --report-only`.", ""]
    else:
        L += [f"Hide then restore of M = {b['m']} devices ({', '.join(b['devices'])}) in the lab guest "
              f"(accel {b['accel']}), {b['runs']} runs after a warm-up, measured on {b['date']}. "
              "`shell` is a bare loop of only the necessary sysfs writes (the kernel's own work); "
              "`engine` is vfioctl's hide + restore timed inside one process; `library` adds one Python "
              "start-up and the imports; `cli` is two `vfioctl` commands as a user runs them. "
              f"Python start-up alone in that guest: {b['python_startup_s']} s (TCG emulation).", "",
              "| variant | median s | min-max s | x shell |", "|---|---:|---:|---:|"]
        for k in ("shell", "engine", "library", "cli"):
            if k in b["seconds"]:
                v = b["seconds"][k]
                L.append(f"| {k} | {b['median_s'][k]:.3f} | {min(v):.3f}-{max(v):.3f} | {b['ratio_to_shell'][k]:.2f} |")
        L.append("")
    if res.get("skipped"):
        L += ["Left out of this run (their rows at that N are absent; no target uses them):", ""]
        L += [f"- {x}" for x in res["skipped"]] + [""]
    if res.get("merged"):
        L += ["Partial re-runs merged into these tables (ratios from each tool's own run):", ""]
        L += [f"- {x}" for x in res["merged"]] + [""]
    if res.get("plot"):
        L += ["## Time against N", "", "![time vs N](time_vs_n.png)", ""]
    return "\n".join(L)


def binding_overhead(res: dict) -> None:
    """The VM-lab measurement (hide + restore M devices vs a bare sysfs loop), written by
    bench/bind_overhead.py into results/bind_overhead.json: fold it into the report."""
    path = os.path.join(RESULTS, "bind_overhead.json")
    if os.path.exists(path):
        with open(path) as fh:
            res["binding"] = json.load(fh)


def plot(res: dict, path: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed in this venv (bench/setup.sh installs it): no plot written"
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    names = [r["tool"] for r in next(iter(res["sizes"].values()))["tools"]]
    for name in names:
        xs, ys, lo, hi = [], [], [], []
        for n, data in res["sizes"].items():
            r = next((r for r in data["tools"] if r["tool"] == name and r.get("time")), None)
            if r:
                t = r["time"]
                xs.append(int(n))
                ys.append(t["median"] * 1000)
                lo.append((t["median"] - t["min"]) * 1000)
                hi.append((t["max"] - t["median"]) * 1000)
        if xs:
            style = "-o" if name.startswith("vfioctl") else "--s"
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt=style, capsize=3, label=name, lw=2 if name == "vfioctl list" else 1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("PCI functions on the host (N)")
    ax.set_ylabel("wall time, ms (median; bars: min-max)")
    ax.set_title(f"Listing a synthetic host ({res['machine']['nproc']} CPUs, {res['machine']['date'][:10]})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return None


# ----------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description="benchmark vfioctl against lspci, dpdk-devbind, driverctl and devbind")
    ap.add_argument("--sizes", default="100,1000,10000", help="comma-separated N (default 100,1000,10000)")
    ap.add_argument("--runs", type=int, default=7, help="timed runs per tool after a warm-up (default 7)")
    ap.add_argument("--budget", type=float, default=300.0,
                    help="seconds per tool per N; slower tools get fewer runs (never under 3, flagged) (default 300)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-start and importtime part")
    ap.add_argument("--tools", help="only the tools whose name contains one of these comma-separated words "
                    "(lspci, the baseline, always runs)")
    ap.add_argument("--skip", action="append", default=[], metavar="N:WORDS",
                    help="at size N, leave out the tools whose name contains one of the comma-separated WORDS "
                    "(e.g. 10000:driverctl,dpdk-devbind when time is short); RESULTS.md says so")
    ap.add_argument("--skip-tools", help=argparse.SUPPRESS)
    ap.add_argument("--merge", action="store_true",
                    help="update bench/results/results.json with this run's sizes/tools instead of replacing it")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite RESULTS.md and the plot from bench/results/results.json, measuring nothing")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--inner-out", help=argparse.SUPPRESS)
    ap.add_argument("--inner-mode", default="tools", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.inner:
        inner(a.inner, a.inner_out, a)
        return 0

    if a.report_only:
        with open(os.path.join(RESULTS, "results.json")) as fh:
            res = json.load(fh)
        binding_overhead(res)
        res["plot"] = plot(res, os.path.join(RESULTS, "time_vs_n.png")) is None
        with open(os.path.join(RESULTS, "RESULTS.md"), "w") as fh:
            fh.write(write_report(res))
        for name, val, ok in targets(res):
            print(f"  target: {name}: {val} ({'met' if ok else 'MISSED' if ok is False else 'n/a'})")
        return 0
    missing = [t for t in ("lspci", "dpdk-devbind.py", "driverctl", "devbind", "vfioctl", "unshare", "mount") if not which(t)]
    if missing:
        print(INSTALL_HINT.format(missing=", ".join(missing)), file=sys.stderr)
        return 2
    os.makedirs(CACHE, exist_ok=True)
    os.makedirs(RESULTS, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    res: dict = {"machine": machine_info(), "sizes": {}, "config": {"runs": a.runs, "budget_s": a.budget, "seed": a.seed}}
    old_path = os.path.join(RESULTS, "results.json")
    if a.merge and os.path.exists(old_path):
        with open(old_path) as fh:
            old = json.load(fh)
        res["sizes"], res["cold"] = old.get("sizes", {}), old.get("cold")
        res.setdefault("merged", old.get("merged", []))
    for n in [int(x) for x in a.sizes.split(",") if x]:
        tree, _ = ensure_tree(n, a.seed, log)
        log(f"N={n}: running tools in a private mount namespace on {tree}")
        extra = ["--tools", a.tools] if a.tools else []
        skip = ",".join(spec.partition(":")[2] for spec in a.skip if spec.partition(":")[0] == str(n))
        if skip:
            extra += ["--skip-tools", skip]
            res.setdefault("skipped", []).append(f"N={n}: tools whose name contains {', '.join(f'`{w}`' for w in skip.split(','))} "
                                                 "not run in this run (--skip: time)")
        new = in_namespace(tree, ["--runs", str(a.runs), "--budget", str(a.budget), *extra])
        prev = res["sizes"].get(str(n))
        if a.merge and prev and a.tools:
            # replace the re-measured tools; each keeps the lspci ratio of its own run
            # (lspci included); rows not re-measured keep the ratio of their earlier run, marked
            fresh = {r["tool"]: r for r in new["tools"]}
            kept = [r["tool"] for r in prev["tools"] if r["tool"] not in fresh]
            for r in prev["tools"]:
                if r["tool"] not in fresh:
                    r["earlier_run"] = True
            prev["tools"] = [fresh.pop(r["tool"], r) for r in prev["tools"]] + list(fresh.values())
            prev["manifest"] = new["manifest"]
            res["merged"] = [x for x in res.get("merged", []) if not x.startswith(f"N={n}:")]
            res["merged"].append(f"N={n}: {', '.join(f'`{k}`' for k in kept)} kept from an earlier run "
                                 "(ratio to that run's lspci, marked *); the other rows re-measured "
                                 f"{res['machine']['date']}")
        else:
            res["sizes"][str(n)] = new
    if not a.no_cold:
        tree, _ = ensure_tree(10, a.seed, log)
        log("cold start on a 10-function host")
        res["cold"] = in_namespace(tree, ["--runs", str(a.runs), "--inner-mode", "cold"])["cold"]
    binding_overhead(res)
    res["machine"]["load"] += ", at the end %.2f / %.2f / %.2f" % os.getloadavg()
    png = os.path.join(RESULTS, "time_vs_n.png")
    why = plot(res, png)
    res["plot"] = why is None
    if why:
        log(why)
    with open(os.path.join(RESULTS, "results.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    with open(os.path.join(RESULTS, "RESULTS.md"), "w") as fh:
        fh.write(write_report(res))
    log(f"wrote {RESULTS}/RESULTS.md, results.json{', time_vs_n.png' if res['plot'] else ''}")
    for name, val, ok in targets(res):
        log(f"  target: {name}: {val} ({'met' if ok else 'MISSED' if ok is False else 'n/a'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
