#!/bin/sh
# Regenerate bench/results/{RESULTS.md,results.json,time_vs_n.png}.
# Sets up the tools and the bench venv when missing, then runs the harness.
# Extra arguments go to bench/run.py (e.g. --sizes 100,1000 --runs 5).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -x "$here/.venv/bin/devbind" ] || ! command -v lspci >/dev/null || ! command -v dpdk-devbind.py >/dev/null \
   || { ! command -v driverctl >/dev/null && [ ! -x /usr/sbin/driverctl ]; }; then
    "$here/setup.sh"
fi
# what users run has its bytecode compiled (pip does it at install); an editable checkout run
# with PYTHONDONTWRITEBYTECODE would recompile every edited module at every start instead
unset PYTHONDONTWRITEBYTECODE
"$here/.venv/bin/python" -m compileall -q "$here/../src" >/dev/null
# binding overhead in the VM lab (needs QEMU; skip with VFIOCTL_BENCH_NO_LAB=1)
if [ -z "${VFIOCTL_BENCH_NO_LAB:-}" ] && command -v qemu-system-x86_64 >/dev/null; then
    "$here/../.venv/bin/python" "$here/bind_overhead.py"
fi
exec "$here/.venv/bin/python" "$here/run.py" "$@"
