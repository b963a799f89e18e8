"""The docs match the program (issue 23).

* Every ```console block of README.md and docs/*.md is output docs/demo.py recorded in the VM lab
  (docs/demo-output.md), whole or as an excerpt whose lines come in that order; the steps whose
  lab state is the committed snapshot's give that same output on the snapshot now
  (`docs/demo.py --check`: run `--snapshot` and `--refresh` to fix what it names).
* Every field of every JSON document the commands print on the lab snapshot is named in the
  section of docs/json-schema.md for its schema.
"""

from __future__ import annotations

import io
import json
import re
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from labsnap import with_host_use

from vfioctl.cli import main

REPO = Path(__file__).resolve().parents[2]
SNAP = str(REPO / "tests" / "snapshots" / "lab-intel-iommu.tar.gz")
PAGES = [str(REPO / "README.md")] + sorted(str(p) for p in (REPO / "docs").glob("*.md")
                                           if p.name != "demo-output.md")


def demo():
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import demo as module
    finally:
        sys.path.pop(0)
    return module


def test_every_console_block_is_what_the_program_printed():
    problems = demo().drift(PAGES)
    assert problems == [], "\n".join(problems)


def test_drift_is_caught(tmp_path):
    """The check fails on a changed line, on an excerpt out of order, and on a block nothing made."""
    d = demo()
    page = tmp_path / "page.md"
    page.write_text("```console\n# vfioctl groups --predict\nPredicted IOMMU groups (from config space)\n...\n"
                    "not a line it prints\n```\n"
                    "```console\n# vfioctl frobnicate\nout\n```\n")
    problems = d.drift([str(page)])
    assert any("not a line it prints" in p for p in problems)
    assert any("vfioctl frobnicate" in p and "add it to STEPS" in p for p in problems)


# ------------------------------------------------------------------ JSON against docs/json-schema.md
def sections() -> dict[str, str]:
    """schema id ("vfioctl.rom/1") -> the text of its section in docs/json-schema.md."""
    text = (REPO / "docs" / "json-schema.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    out: dict[str, str] = {}
    for part in parts:
        head = part.splitlines()[0]
        for sid in re.findall(r"vfioctl\.[a-z-]+/\d+", head):
            out[sid] = out.get(sid, "") + part
    return out


def documented(schema: str, secs: dict[str, str]) -> set[str]:
    """Every name the section of *schema* gives (with the sections it refers to)."""
    text = secs[schema]
    for other in re.findall(r"vfioctl\.[a-z-]+/\d+", text):
        if other != schema and other in secs:
            text += secs[other]
    # every document carries "schema" (the page's introduction says so)
    return set(re.findall(r"[a-z_][a-z0-9_]*", text)) | {"schema"}


def keys(value, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if isinstance(value, dict):
        for k, v in value.items():
            # not_captured maps field names to reasons: its keys are the fields themselves
            out.add(k)
            keys(v, out)
    elif isinstance(value, list):
        for v in value:
            keys(v, out)
    return out


COMMANDS = [
    ["list"], ["groups"], ["groups", "--predict"], ["groups", "--why", "0000:02:00.0"], ["show", "0000:00:04.0"],
    ["check"], ["topology", "--assess"], ["assess", "0000:00:07.0", "0000:00:01.0"], ["rom", "0000:00:07.0"],
    ["sriov", "show"], ["status"], ["hide", "0000:01:01.0", "--group", "--dry-run"], ["apply", "--dry-run"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_json_fields_are_documented(argv, monkeypatch, tmp_path):
    monkeypatch.setenv("VFIOCTL_STATE_DIR", "/var/lib/vfioctl-test-none")
    # the snapshot predates the host-use readings: planning on it is refused ("not known"), so
    # the planners' documents come from a copy that says it captured them (labsnap)
    root = str(with_host_use(tmp_path)) if argv[0] in ("hide", "apply") else SNAP
    buf = io.StringIO()
    with redirect_stdout(buf):
        main(["--root", root, *argv, "--json"])
    data = json.loads(buf.getvalue())
    secs = sections()
    schema = data.get("schema") or ""
    if argv[:2] == ["groups", "--why"]:
        schema = "vfioctl.groups-why/1"
    assert schema in secs, f"{schema!r} has no section in docs/json-schema.md"
    undocumented = keys(data) - documented(schema, secs)
    # keys of not_captured are field names, documented where the field is
    assert undocumented == set(), f"{schema}: fields not in docs/json-schema.md: {sorted(undocumented)}"
