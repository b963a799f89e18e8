#!/usr/bin/env bash
# The whole test suite: installs what it needs (Debian packages, a venv, the lab's kernels),
# then runs the Ansible collection's tests and every pytest test, the real-kernel VM lab included
# (each VM test on each lab kernel: Debian 12's 6.1 and Debian 13's 6.12).
# Run as root on Debian 12 or 13 from the repository root:  ./tests/run-all.sh
# VFIOCTL_SKIP_VM=1 skips the VM tests (reported as skipped) and the kernel downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

# shellcheck source=/dev/null
. /etc/os-release
updated=0
apt_update() { [ "$updated" = 1 ] || { apt-get update -qq; updated=1; }; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# QEMU 8 or later: the lab's SR-IOV NIC is QEMU's igb (QEMU 8+).  A release whose own QEMU is
# older (Debian 12 has 7.2) gets it from the release's backports suite, added the Debian way: a
# sources entry for <codename>-backports, then `apt-get -t <codename>-backports install`.
QEMU_MIN=8
qemu_new_enough() { dpkg --compare-versions "$1" ge "1:$QEMU_MIN~"; }
qemu_installed() { installed qemu-system-x86 && dpkg-query -W -f='${Version}' qemu-system-x86; }
qemu_from=""
if ! qemu_new_enough "$(qemu_installed || true)"; then
  apt_update
  if ! qemu_new_enough "$(apt-cache policy qemu-system-x86 | awk '$1 == "Candidate:" { print $2 }')"; then
    qemu_from="$VERSION_CODENAME-backports"
    # shellcheck disable=SC2016  # apt's own $(FIELD) syntax, not the shell's
    targets=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)')
    if ! awk -v s="$qemu_from" '$2 == s { found = 1 } END { exit !found }' <<<"$targets"; then
      # the mirror this machine already uses for its release, else Debian's redirector
      mirror=$(awk -v s="$VERSION_CODENAME" '$2 == s { print $1; exit }' <<<"$targets")
      echo "deb ${mirror:-http://deb.debian.org/debian/} $qemu_from main" > "/etc/apt/sources.list.d/$qemu_from.list"
      echo "run-all: added $qemu_from (/etc/apt/sources.list.d/$qemu_from.list): this release's QEMU is older than $QEMU_MIN"
      updated=0
      apt_update
    fi
  fi
fi

# Debian packages: the lab (QEMU, busybox, kmod), tools the tests drive in the guest
# (iproute2, e2fsprogs, udev, systemd), libvirt for the guest tests and its RelaxNG schemas;
# graphviz and librsvg2-bin render the topology pictures, zsh, fish and groff run the
# completion scripts and the man page; podman with crun (and conmon, which
# podman depends on) runs the CDI spec test in the guest; lvm2 builds the LVM volume the
# host-use test mounts on the guest's NVMe.
PKGS=(python3 python3-venv qemu-system-x86 busybox-static cpio kmod pciutils pci.ids iproute2
      e2fsprogs udev systemd libvirt0 libvirt-clients libvirt-daemon-system libxml2-utils shellcheck
      graphviz librsvg2-bin zsh fish groff-base podman crun conmon lvm2)
missing=()
for p in "${PKGS[@]}"; do
  [ "$p" = qemu-system-x86 ] && [ -n "$qemu_from" ] && continue
  installed "$p" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run-all: installing ${missing[*]}"
  apt_update
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -n "$qemu_from" ]; then
  echo "run-all: installing qemu-system-x86 from $qemu_from (installed: $(qemu_installed || echo none))"
  apt-get install -y -qq --no-install-recommends -t "$qemu_from" qemu-system-x86 >/dev/null
  qemu_new_enough "$(qemu_installed)" \
    || { echo "run-all: $qemu_from gave QEMU $(qemu_installed), older than $QEMU_MIN" >&2; exit 1; }
fi

# The project and its test dependencies in a venv built from Debian's own interpreter
# (/usr/bin/python3: 3.11 on Debian 12, 3.13 on Debian 13), which is what the README's set-up
# line gives a user: a newer python3 earlier on PATH must not hide what breaks there.  The lab
# guest runs this same interpreter, and the Ansible tests use it too.
PY=/usr/bin/python3
if [ ! -x .venv/bin/python ] || [ "$(readlink -f .venv/bin/python)" != "$(readlink -f "$PY")" ]; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q -e '.[test,qmp]'

# Types: mypy checks src/ (the package ships py.typed).
.venv/bin/python -m mypy src/vfioctl

# The lab's kernels: each Debian release's current linux-image package, downloaded once and cached.
if [ "${VFIOCTL_SKIP_VM:-}" = 1 ]; then
  echo "run-all: VFIOCTL_SKIP_VM=1: no lab kernels fetched, the VM tests will be skipped"
else
  .venv/bin/python tests/vm/lab.py prepare
fi

# The Ansible collection: ansible-test sanity and units (own venv, pinned ansible-core).
if [ -x tests/ansible/run.sh ]; then
  PYTHON="$PY" tests/ansible/run.sh
fi

# Unit tests, captured-host tests and the VM lab (one boot per kernel shared by all tests/vm files).
exec .venv/bin/python -m pytest -p no:cacheprovider -ra tests "$@"
