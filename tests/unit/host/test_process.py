"""Every program vfioctl runs gets `--` before any argument that comes from data: a unit named
`-H.service` reached `systemctl show` as an option (`-H` is `--host`).  The test walks every
call of Host.run, run_local, run_program and subprocess in src/."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "vfioctl"
RUNNERS = {"run_local", "run_program"}


def _is_runner(call: ast.Call) -> bool:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id in RUNNERS or f.id == "run"
    if isinstance(f, ast.Attribute) and f.attr == "run":
        v = f.value
        # host.run, x.host.run, self.host.run, ctx.host.run, subprocess.run
        return (isinstance(v, ast.Name) and v.id in ("host", "subprocess")) or \
            (isinstance(v, ast.Attribute) and v.attr == "host")
    return False


def _argv_ok(arg: ast.expr) -> str | None:
    """None when every element is a literal word or follows a literal "--"; else why not."""
    if not isinstance(arg, ast.List):
        return "argv is not a list literal"
    dashed = False
    for el in arg.elts:
        if isinstance(el, ast.Constant) and isinstance(el.value, str):
            dashed |= el.value == "--"
            continue
        if isinstance(el, ast.IfExp) and all(isinstance(x, ast.Constant) and isinstance(x.value, str)
                                             for x in (el.body, el.orelse)):
            continue  # one of two literal words
        if not dashed:
            return f"{ast.unparse(el)} comes from data before any '--'"
    return None


def test_every_program_argument_from_data_follows_a_double_dash():
    bad, seen = [], 0
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.Call) or not _is_runner(node) or not node.args:
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "run" and path.name != "cmd_topology.py":
                continue  # other functions called run (a parser's, the hook's entry)
            seen += 1
            why = _argv_ok(node.args[0])
            if why is None:
                continue
            # a call whose argv is built elsewhere says where from, on the line above
            above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
            if above.startswith("# argv:"):
                continue
            bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {why}")
    assert seen >= 8, seen  # the walk finds the call sites (modprobe, systemctl x2, dmesg, hook, files, ...)
    assert not bad, "\n".join(bad)


def test_the_data_arguments_are_separated():
    from vfioctl.ops.steps import base, console
    from vfioctl.usage import console as uconsole

    calls = []

    class H:
        def run(self, argv, timeout=60):
            calls.append(argv)
            return 0, ""

    class X:
        host = H()

    base._modprobe(X(), "e1000e")
    console._systemctl(H(), "stop", "-H.service")
    assert calls == [["modprobe", "--", "e1000e"], ["systemctl", "stop", "--", "-H.service"]]
    got = []
    orig = uconsole.run_local
    uconsole.run_local = lambda argv, t: got.append(argv) or (1, "")
    try:
        uconsole.live_unit("--force.service")
    finally:
        uconsole.run_local = orig
    assert got[0][-2:] == ["--", "--force.service"]
