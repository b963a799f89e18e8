"""The package's folders are its layers: each imports only from the layers below it.

Every import is walked, those inside functions too (not those under ``if TYPE_CHECKING:``,
which never run).  A module-level import from a lower layer to a higher one fails, and so
does one inside a function; so does any import cycle between modules; and a function-level
import needs a ``# lazy:`` comment on its line or the line above saying why it is not at
the top (an optional dependency, or a measured start-up cost).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vfioctl"

#: lowest first; the modules at the package root (vfioctl/__init__.py, engine.py) are the public
#: face, which re-exports from every layer and is what the CLI (the one layer above it) and
#: outside callers (the Ansible collection) use; ``python -m vfioctl`` (__main__) is on top
LAYERS = ("base", "host", "pci", "iommu", "usage", "ops", "boot", "report", "cluster", "guest")
FACE = len(LAYERS)
CLI = FACE + 1
MAIN = FACE + 2


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(mod: str) -> int:
    parts = mod.split(".")
    if len(parts) >= 2 and parts[1] in LAYERS and (SRC / parts[1]).is_dir():
        return LAYERS.index(parts[1])
    if len(parts) >= 2 and parts[1] == "cli":
        return CLI
    if mod == "vfioctl.__main__":
        return MAIN
    return FACE


class Imports(ast.NodeVisitor):
    """(imported module, line, inside a function, lazy comment) for every vfioctl import."""

    def __init__(self, mod: str, is_pkg: bool, lines: list[str], known: set[str]) -> None:
        self.mod, self.is_pkg, self.lines, self.known = mod, is_pkg, lines, known
        self.depth = 0
        self.found: list[tuple[str, int, bool, bool]] = []

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for n in node.orelse:
                self.visit(n)
            return
        self.generic_visit(node)

    def _func(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _func

    def _lazy(self, line: int) -> bool:
        """A ``# lazy:`` comment on the import's line, or above the block of imports it is in."""
        if "# lazy:" in self.lines[line - 1]:
            return True
        i = line - 2
        while i >= 0:
            text = self.lines[i].strip()
            if text.startswith("# lazy:"):
                return True
            if not (text.startswith(("import ", "from ", ")")) or text.endswith(",") or text.startswith("#")):
                return False
            i -= 1
        return False

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append((target, node.lineno, self.depth > 0, self._lazy(node.lineno)))

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name == "vfioctl" or a.name.startswith("vfioctl."):
                self._add(a.name, node)
            elif self.depth:
                self._add("<other>", node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.mod.split(".")
            if not self.is_pkg:
                base = base[:-1]
            base = base[: len(base) - node.level + 1]
            modname = ".".join(base + ([node.module] if node.module else []))
        else:
            modname = node.module or ""
        if modname == "__future__":
            return
        if not (modname == "vfioctl" or modname.startswith("vfioctl.")):
            if self.depth:
                self._add("<other>", node)
            return
        for a in node.names:
            sub = f"{modname}.{a.name}"
            self._add(sub if sub in self.known else modname, node)


def graph() -> dict[str, list[tuple[str, int, bool, bool]]]:
    paths = sorted(SRC.rglob("*.py"))
    known = {module_name(p) for p in paths}
    out = {}
    for p in paths:
        mod = module_name(p)
        text = p.read_text()
        v = Imports(mod, p.name == "__init__.py", text.splitlines(), known)
        v.visit(ast.parse(text))
        out[mod] = v.found
    return out


def test_no_import_reaches_up_a_layer() -> None:
    bad = []
    for mod, found in graph().items():
        for target, line, _infunc, _lazy in found:
            if target == "<other>":
                continue
            if layer_of(target) > layer_of(mod):
                bad.append(f"{mod}:{line} imports {target}")
    assert not bad, "imports from a lower layer to a higher one:\n  " + "\n  ".join(bad)


def test_no_import_cycles() -> None:
    g = graph()
    edges = {m: sorted({t for t, *_ in found if t in g and t != m and not m.startswith(t + ".")})
             for m, found in g.items()}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            strong(v)
    assert not sccs, "import cycles:\n  " + "\n  ".join(" <-> ".join(c) for c in sccs)


def test_function_level_imports_say_why() -> None:
    bad = []
    for mod, found in graph().items():
        for target, line, infunc, lazy in found:
            if infunc and not lazy:
                bad.append(f"{mod}:{line} ({target})")
    assert not bad, ("imports inside functions without a '# lazy: <why>' comment (an optional dependency "
                     "or a measured start-up cost):\n  " + "\n  ".join(bad))


def test_the_layer_folders_exist() -> None:
    for name in (*LAYERS, "cli"):
        if name == "cluster" and not (SRC / name).is_dir():
            continue
        assert (SRC / name / "__init__.py").is_file(), name
