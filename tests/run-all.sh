#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian packages, a venv, the lab's kernel),
# then runs the Ansible collection's tests and every pytest test, the real-kernel VM lab included.
# Run as root on Debian 12 from the repository root:  ./tests/run-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

# Debian packages: the lab (QEMU, busybox, kmod), tools the tests drive in the guest
# (iproute2, e2fsprogs, udev, systemd), libvirt for the guest tests and its RelaxNG schemas;
# graphviz and librsvg2-bin render the topology pictures, zsh, fish and groff run the
# completion scripts and the man page; podman with crun (and conmon, which
# podman depends on) runs the CDI spec test in the guest.
PKGS=(python3 python3-venv qemu-system-x86 busybox-static cpio kmod pciutils pci.ids iproute2
      e2fsprogs udev systemd libvirt0 libvirt-clients libvirt-daemon-system libxml2-utils shellcheck
      graphviz librsvg2-bin zsh fish groff-base podman crun conmon)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run-all: installing ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The project and its test dependencies in a venv built from Debian's own interpreter
# (/usr/bin/python3, 3.11.2 on Debian 12), which is what the README's set-up line gives a
# user: a newer python3 earlier on PATH must not hide what breaks there.  The lab guest runs
# this same interpreter.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$PY")" ]; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q -e '.[test,qmp]'

# Types: mypy checks src/ (the package ships py.typed).
.venv/bin/python -m mypy src/vfioctl

# The lab's kernel: Debian's current linux-image package, downloaded once and cached.
.venv/bin/python tests/vm/lab.py prepare

# The Ansible collection: ansible-test sanity and units (own venv, pinned ansible-core).
if [ -x tests/ansible/run.sh ]; then
  tests/ansible/run.sh
fi

# Unit tests, captured-host tests and the VM lab (one boot shared by all tests/vm files).
exec .venv/bin/python -m pytest -p no:cacheprovider -ra tests "$@"
