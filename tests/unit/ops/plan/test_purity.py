"""Planning is pure end to end: the planners take a HostState and return a Plan, and their
source never reaches the host (no Host, no module that reads one, no PciDevice)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[4] / "src" / "vfioctl"
PLANNERS = sorted((SRC / "ops" / "plan").glob("*.py")) + [SRC / "ops" / "configplan.py", SRC / "ops" / "match.py"]
#: modules whose functions read or change a host: a planner imports none of them
READERS = ("vfioctl.host", "vfioctl.usage", "vfioctl.pci.device", "vfioctl.pci.topology", "vfioctl.iommu.groups",
           "vfioctl.ops.session", "vfioctl.ops.executor", "vfioctl.ops.selector")
#: names a planner may import from modules that also read: data types and constants only
ALLOWED = {("vfioctl.usage.console", "DISPLAY_MANAGER")}


def _imports(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                yield node.module, a.name, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, "", node.lineno


def test_planners_import_nothing_that_reads_the_host() -> None:
    bad = []
    for path in PLANNERS:
        tree = ast.parse(path.read_text())
        for mod, name, line in _imports(tree):
            if (mod, name) in ALLOWED:
                continue
            if mod.startswith(READERS) or (mod == "vfioctl.pci" and name == "device"):
                bad.append(f"{path.relative_to(SRC)}:{line} imports {mod}{'.' + name if name else ''}")
    assert not bad, "planners import host readers:\n  " + "\n  ".join(bad)


def test_planners_take_no_host_and_touch_none() -> None:
    bad = []
    for path in PLANNERS:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in node.args.args + node.args.kwonlyargs:
                    ann = ast.unparse(arg.annotation) if arg.annotation else ""
                    if arg.arg == "host" or "Host" == ann.strip("'\""):
                        bad.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name}() takes a host ({arg.arg})")
            elif isinstance(node, ast.Attribute) and node.attr == "host":
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} uses .host")
            elif isinstance(node, ast.Name) and node.id in ("Host", "PciDevice"):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} names {node.id}")
    assert not bad, "planners that reach the host:\n  " + "\n  ".join(bad)


def test_every_planner_module_is_checked() -> None:
    names = {p.name for p in PLANNERS}
    assert {"hide.py", "restore.py", "sriov.py", "reset.py", "console.py", "model.py", "configplan.py",
            "match.py"} <= names
