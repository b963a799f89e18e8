#!/bin/sh
# Install the peer tools (Debian packages) and a bench-only venv (bench/.venv) with
# devbind, matplotlib, pyinstrument and an editable vfioctl.  None of these become
# vfioctl dependencies.  Idempotent; run as root (apt-get).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

need=""
for t in lspci:pciutils /usr/bin/time:time dpdk-devbind.py:dpdk driverctl:driverctl depmod:kmod ip:iproute2 gcc:gcc unshare:util-linux; do
    cmd=${t%%:*}; pkg=${t#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need="$need $pkg"
done
if [ -n "$need" ]; then
    echo "installing:$need"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need
fi

if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install -q devbind matplotlib pyinstrument
"$here/.venv/bin/pip" install -q -e "$repo"
echo "bench venv ready: $here/.venv"
