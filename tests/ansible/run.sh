#!/bin/sh
# ansible-test sanity and units on the vfioctl.vfio collection (ansible/), without containers.
#
#   tests/ansible/run.sh                     build check + sanity (all tests) + units
#   tests/ansible/run.sh units               only units (or: sanity, build; venv: only make the venv)
#   SANITY_ARGS="--test validate-modules" tests/ansible/run.sh sanity
#
# Needs Python 3.11, 3.12 or 3.13 (PYTHON, default: Debian's /usr/bin/python3, else python3 on
# PATH: 3.11 on Debian 12, 3.13 on Debian 13) and PyPI: it makes a venv (VFIOCTL_ANSIBLE_VENV,
# default tests/ansible/.venv, remade when requirements.txt or the interpreter changes) with the
# pinned ansible-core, the unit test tools and vfioctl from this checkout.  ansible-test runs its
# sanity and units for that interpreter's version (--python X.Y).  `ansible-test sanity --venv` makes one
# venv per sanity test under ~/.ansible/test/venv (cached across runs) and installs ansible-test's
# own pins into them.  ansible-test needs the collection at .../ansible_collections/vfioctl/vfio:
# it is copied into a temporary tree of that shape.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
if [ -z "${PYTHON:-}" ]; then
    if [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
PYVER=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV=${VFIOCTL_ANSIBLE_VENV:-$HERE/.venv}
WHAT=${1:-all}

now() { date +%s; }
t0=$(now)

# -- the venv: pinned ansible-core, unit test tools, vfioctl (editable) -----------------------
# the venv's key: the pins and the interpreter that made it (a Debian upgrade changes the latter)
key=$(cat "$HERE/requirements.txt"; echo "python: $(readlink -f "$(command -v "$PYTHON")") $PYVER")
if [ ! -x "$VENV/bin/ansible-test" ] || [ "$key" != "$(cat "$VENV/.vfioctl-key" 2>/dev/null)" ]; then
    echo "run.sh: creating $VENV (Python $PYVER from $PYTHON)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$REPO"
    printf '%s\n' "$key" > "$VENV/.vfioctl-key"
fi
[ "$WHAT" = venv ] && exit 0
PATH="$VENV/bin:$PATH"
export PATH
t_venv=$(($(now) - t0))

# -- the collection where ansible-test wants it -------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vfioctl-ansible-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
COLL="$WORK/ansible_collections/vfioctl/vfio"
mkdir -p "$COLL"
(cd "$REPO/ansible" && tar -cf - --exclude=__pycache__ --exclude=.pytest_cache --exclude=tests/output \
    --exclude='*.tar.gz' .) | (cd "$COLL" && tar -xf -)

# -- sanity's venvs start without pip; ansible-test bootstraps it with a script it downloads from
#    ci-files.testing.ansible.com.  Where that host is unreachable, an equivalent that uses
#    ensurepip + PyPI stands in (used only when no real script is cached).
pipver=$(python -c "import types; from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(types.SimpleNamespace(version='$PYVER'))['pip'])")
getpip="$HOME/.ansible/test/cache/get_pip_$(echo "$pipver" | tr . _).py"
if [ ! -s "$getpip" ]; then
    mkdir -p "$(dirname "$getpip")"
    url="https://ci-files.testing.ansible.com/ansible-test/get-pip-$pipver.py"
    if ! python -c "import sys, urllib.request as u; open(sys.argv[2], 'wb').write(u.urlopen(sys.argv[1], timeout=15).read())" \
            "$url" "$getpip.download" 2>/dev/null; then
        cp "$HERE/get_pip_offline.py" "$getpip.download"
        echo "run.sh: ci-files.testing.ansible.com unreachable: pip bootstrap via ensurepip + PyPI"
    fi
    mv "$getpip.download" "$getpip"
fi

rc=0
cd "$COLL"
if [ "$WHAT" = all ] || [ "$WHAT" = build ]; then
    t=$(now)
    ansible-galaxy collection build --output-path "$WORK/dist" "$COLL" >/dev/null
    ANSIBLE_COLLECTIONS_PATH="$WORK/collections" ansible-galaxy collection install -p "$WORK/collections" "$WORK"/dist/vfioctl-vfio-*.tar.gz >/dev/null
    for m in device sriov facts config; do
        ANSIBLE_COLLECTIONS_PATH="$WORK/collections" ansible-doc "vfioctl.vfio.$m" >/dev/null
    done
    echo "run.sh: collection build + install + ansible-doc ok ($(($(now) - t)) s)"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = sanity ]; then
    t=$(now)
    # shellcheck disable=SC2086
    ansible-test sanity --venv --python "$PYVER" --color no ${SANITY_ARGS:-} || rc=1
    echo "run.sh: sanity rc=$rc ($(($(now) - t)) s)"
fi
if [ "$WHAT" = all ] || [ "$WHAT" = units ]; then
    t=$(now)
    # --local: the units need vfioctl, which only this venv has
    ansible-test units --local --python "$PYVER" --color no || rc=1
    echo "run.sh: units rc=$rc ($(($(now) - t)) s)"
fi
echo "run.sh: done rc=$rc (Python $PYVER, venv $t_venv s, total $(($(now) - t0)) s)"
exit $rc
