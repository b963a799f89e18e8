"""`list`, `groups`, `topology` (text and JSON) print, byte for byte, what they printed before
the speed work of issue 27 (golden outputs written by the code at 9e2f1da, before any of it).

The hosts: synthetic trees made here by bench/synthhost.py (the bench's own generator, at a few
sizes and seeds, named from the lab snapshot's pci.ids so that no name depends on this
machine's copy), and the captured lab host (tests/snapshots/lab-intel-iommu.tar.gz), read
both as the archive and unpacked into a folder.

Regenerate only when an output changes on purpose (say why in the commit):
``.venv/bin/python tests/unit/cli/test_outputs_golden.py``.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vfioctl import cli

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
GOLDEN = HERE.parent / "golden" / "outputs"
SNAPSHOT = REPO / "tests" / "snapshots" / "lab-intel-iommu.tar.gz"
sys.path.insert(0, str(REPO / "bench"))
import synthhost  # noqa: E402

RELEASE = "6.1.0-synth-amd64"

#: (name, functions, seed): a small host, and two with SR-IOV PFs, switches, GPUs and shared groups
SYNTH = [("synth-n16-s3", 16, 3), ("synth-n150-s6", 150, 6), ("synth-n250-s2", 250, 2)]

COMMANDS = [
    ["list"], ["list", "--json"],
    ["groups"], ["groups", "--json"], ["groups", "--why"], ["groups", "--why", "--json"],
    ["topology"], ["topology", "--json"],
]
#: also the lab snapshot's picture and DOT (they carry `assess` verdicts)
SNAPSHOT_COMMANDS = COMMANDS + [["topology", "--format", "dot"], ["topology", "--format", "svg"]]


def _pci_ids() -> bytes:
    with tarfile.open(SNAPSHOT) as tar:
        f = tar.extractfile("root/usr/share/misc/pci.ids")
        assert f is not None
        return f.read()


def make_synth(root: Path, n: int, seed: int) -> Path:
    synthhost.generate(str(root), n, seed=seed, release=RELEASE, kmod_index=False)
    ids = root / "usr/share/misc/pci.ids"
    ids.parent.mkdir(parents=True, exist_ok=True)
    ids.write_bytes(_pci_ids())
    return root


def unpack_snapshot(into: Path) -> Path:
    # as the snapshot's README says to (`tar xzf FILE -C DIR`)
    into.mkdir(parents=True)
    subprocess.run(["tar", "xzf", str(SNAPSHOT), "-C", str(into)], check=True)
    return into


def run(root: Path, argv: list[str], capsys) -> dict:
    capsys.readouterr()
    rc = cli.main(["--root", str(root), *argv])
    out, err = capsys.readouterr()
    return {"rc": rc, "stdout": out.replace(str(root), "ROOT"), "stderr": err.replace(str(root), "ROOT")}


def hosts(tmp: Path) -> dict[str, tuple[Path, list[list[str]]]]:
    out: dict[str, tuple[Path, list[list[str]]]] = {}
    for name, n, seed in SYNTH:
        out[name] = (make_synth(tmp / name, n, seed), COMMANDS)
    out["lab-intel-iommu"] = (SNAPSHOT, SNAPSHOT_COMMANDS)
    out["lab-intel-iommu-unpacked"] = (unpack_snapshot(tmp / "lab-unpacked"), COMMANDS)
    return out


def _golden(name: str) -> dict:
    with gzip.open(GOLDEN / f"{name}.json.gz", "rt") as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    return hosts(tmp_path_factory.mktemp("golden"))


@pytest.fixture(autouse=True)
def as_root(monkeypatch):
    # what a folder's root advice says depends on who reads it: the goldens were written as root
    monkeypatch.setattr(os, "geteuid", lambda: 0)


@pytest.mark.parametrize("name", [n for n, _, _ in SYNTH] + ["lab-intel-iommu", "lab-intel-iommu-unpacked"])
def test_outputs_are_the_golden_ones(name, trees, capsys):
    root, commands = trees[name]
    want = _golden(name)
    assert sorted(want) == sorted(" ".join(c) for c in commands)
    for argv in commands:
        got = run(root, argv, capsys)
        exp = want[" ".join(argv)]
        if got != exp:
            for key in ("rc", "stderr"):
                assert got[key] == exp[key], f"{name}: vfioctl {' '.join(argv)}: {key} differs"
            g, e = got["stdout"].splitlines(), exp["stdout"].splitlines()
            first = next((i for i, (a, b) in enumerate(zip(g, e)) if a != b), min(len(g), len(e)))
            pytest.fail(f"{name}: vfioctl {' '.join(argv)}: stdout differs from line {first + 1}:\n"
                        f"  got:  {g[first] if first < len(g) else '<end>'}\n"
                        f"  want: {e[first] if first < len(e) else '<end>'}")


def main() -> None:  # pragma: no cover - regenerates the goldens
    import tempfile

    class Cap:
        def readouterr(self):
            out, err = sys.stdout.getvalue(), sys.stderr.getvalue()
            sys.stdout.seek(0), sys.stdout.truncate(), sys.stderr.seek(0), sys.stderr.truncate()
            return out, err

    import io

    GOLDEN.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (root, commands) in hosts(Path(tmp)).items():
            real = sys.stdout, sys.stderr
            sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
            try:
                got = {" ".join(c): run(root, c, Cap()) for c in commands}
            finally:
                sys.stdout, sys.stderr = real
            with gzip.GzipFile(GOLDEN / f"{name}.json.gz", "wb", mtime=0) as fh:
                fh.write(json.dumps(got, indent=1, sort_keys=True).encode())
            print(name, {k: len(v["stdout"]) for k, v in got.items()})


if __name__ == "__main__":
    setattr(os, "geteuid", lambda: 0)  # as the test does: the goldens are what root reads
    main()
