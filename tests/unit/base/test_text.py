"""ASCII digits and text shown to a person (vfioctl.base.text), and the class they close:
no ``isdigit()``/``isdecimal()``/``isnumeric()`` and no ``\\d`` on data anywhere in src/."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from clirun import run
from fakehost import FakeDev, standard_host

from vfioctl.base.text import ascii_int, escape, numbered, one_line, parse_int

SRC = Path(__file__).resolve().parents[3] / "src" / "vfioctl"


@pytest.mark.parametrize("text,want", [
    ("0", 0), ("12", 12), ("123456789", 123456789), ("1234567890", None), ("²", None), ("١", None),
    ("1²", None), ("", None), (" 1", None), ("1 ", None), ("+1", None), ("-1", None), ("1_0", None),
    ("0x10", None), ("１", None), (b"12", 12), (b"\xb2", None), (None, None), (12, None),
])
def test_ascii_int_takes_ascii_digits_only(text, want):
    assert ascii_int(text) == want


def test_numbered_names():
    assert numbered("vtcon3", "vtcon") == 3
    assert numbered("vtcon²", "vtcon") is None
    assert numbered("fb", "fb") is None
    assert numbered("card0", "fb") is None
    assert numbered("virtfn" + "9" * 20, "virtfn", 5) is None


@pytest.mark.parametrize("text,base,want", [
    ("0x10d3", 16, 0x10D3), ("10D3\n", 16, 0x10D3), ("-1", 10, -1), ("42", 0, 42), ("0x2a", 0, 42),
    ("٤٢", 10, None), ("1" * 5000, 10, None), ("1e3", 10, None), ("", 10, None), ("0x", 16, None),
])
def test_parse_int(text, base, want):
    assert parse_int(text, base) == want


@pytest.mark.parametrize("raw,shown", [
    ("\x1b[31mred", "\\x1b[31mred"), ("bell\x07", "bell\\x07"), ("csi\x9b2J", "csi\\x9b2J"),
    ("a\rb", "a\\x0db"), ("abc\u202efed", "abc\\u202efed"), ("tab\there", "tab\\x09here"),
    ("line\nbreak", "line\\x0abreak"), ("\u2066iso\u2069", "\\u2066iso\\u2069"), ("del\x7f", "del\\x7f"),
    ("Ünïcödé ok — 中文", "Ünïcödé ok — 中文"),
])
def test_escape_controls_and_bidi(raw, shown):
    assert escape(raw) == shown
    assert "\n" not in one_line(raw)


def test_escape_keeps_the_lines_of_a_block():
    assert escape("one\ntwo\x1b", keep_newlines=True) == "one\ntwo\\x1b"


# ---------------------------------------------------------------- the class, everywhere in src/
def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def test_no_unicode_digit_tests_on_data_in_src():
    """``"²".isdigit()`` is true and ``int("²")`` raises; ``\\d`` matches "١", which int() reads
    as 1.  Every number from data is parsed by vfioctl.base.text (ASCII digits only)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("isdigit", "isdecimal", "isnumeric"):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: .{node.attr}()")
            elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)) and id(node) not in docs:
                text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
                if "\\d" in text:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: \\d in a pattern")
    assert not found, "use vfioctl.base.text (ascii_int, numbered, [0-9]):\n" + "\n".join(found)




def test_superscript_and_arabic_indic_numbers_in_a_tree_are_not_numbers(tmp_path):
    """An iommu_group link named "²" made `list` exit 70 (isdigit() then int()); the same
    pattern stood for /proc PIDs, vtcon, fb, DRM cards, VFs, NVMe controllers and groups."""
    b = standard_host(tmp_path / "root")
    b.add(FakeDev("0000:00:09.0", "8086", "10d3", driver="e1000e", group=9))
    dev = b.root / "sys/bus/pci/devices/0000:00:09.0"
    real = Path(os.path.realpath(dev))
    (real / "iommu_group").unlink()
    (b.root / "sys/kernel/iommu_groups/²/devices").mkdir(parents=True)
    (real / "iommu_group").symlink_to("../../../kernel/iommu_groups/²")
    (real / "virtfn²").symlink_to("../0000:00:02.0")
    for d in ("sys/class/vtconsole/vtcon²", "sys/class/graphics/fb١", "proc/²/fd", "proc/١٢/fd"):
        (b.root / d).mkdir(parents=True, exist_ok=True)
    (b.root / "proc/fb").write_text("١ EFI VGA\n")
    for argv in (["list"], ["groups"], ["show", "0000:00:09.0"], ["status"], ["check"], ["topology"],
                 ["hide", "0000:00:09.0", "--dry-run"]):
        rc, out, err = run(["--root", str(b.root), *argv])
        assert rc in (0, 1, 65, 69), (argv, rc, err)
        assert "internal error" not in err, (argv, err)


@pytest.mark.parametrize("argv", [
    ["hide", "id:8086:10d3", "--count", "١", "--dry-run"], ["sriov", "set", "0000:00:04.0", "٢", "--dry-run"],
    ["qemu-args", "0000:00:02.0", "--slot", "١"], ["libvirt-xml", "0000:00:02.0", "--interface", "--vlan", "١٢"],
    ["libvirt-xml", "0000:00:02.0", "--hook", "--bus", "0b1"], ["libvirt-xml", "0000:00:02.0", "--hook", "--bus", "١"],
    ["attach", "0000:00:02.0", "--qmp", "/nonexistent", "--timeout", "nan"],
    ["detach", "0000:00:02.0", "--qmp", "/nonexistent", "--timeout", "١"],
    ["groups", "--why", "group:١"],
])
def test_options_take_ascii_numbers_only(tmp_path, argv):
    """int() and float() take "١" (and float() "nan"): every number from a command line is ASCII."""
    b = standard_host(tmp_path / "root")
    rc, out, err = run(["--root", str(b.root), *argv])
    assert rc in (2, 65), (rc, err)
