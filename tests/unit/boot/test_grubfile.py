"""grubfile: /etc/default/grub read and edited as the shell that sources it does.

The reference is the real shell: every edit of the supported forms is sourced by
/bin/sh (dash on Debian; bash --posix too where it exists, as on Fedora, whose
/bin/sh is bash) in an empty environment, with a PATH whose every command
records that it ran.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from vfioctl.base.errors import InvalidInput, Refused, VfioctlError
from vfioctl.boot import cmdline, grubfile
from vfioctl.boot.grubfile import Unknown
from vfioctl.cli import main

V = "GRUB_CMDLINE_LINUX_DEFAULT"
L = "GRUB_CMDLINE_LINUX"
NAMES = [V, L, "GRUB_TIMEOUT", "GRUB_DEFAULT", "OTHER", "A", "B"]
ADD = ["iommu=pt", "intel_iommu=on"]
REMOVE = ["quiet"]
SHELLS = [["/bin/sh"]] + ([["/bin/bash", "--posix"]] if os.path.exists("/bin/bash") else [])

_run_ids = itertools.count()
#: VFIOCTL_FUZZ=N multiplies the examples of the property tests (a long local run)
FUZZ = max(1, int(os.environ.get("VFIOCTL_FUZZ", "1") or 1))


# ---------------------------------------------------------------- the real shell
def source(base: Path, text: str, names=NAMES, shell=("/bin/sh",), trap: bool = True) -> tuple[dict, set]:
    """Source *text* with *shell* in an empty environment: ({name: value or None}, commands that ran).

    Fails the test if sh exits non-zero or writes to stderr.
    """
    d = base / f"sh{next(_run_ids)}"
    (d / "bin").mkdir(parents=True)
    (d / "grub").write_bytes(text.encode("utf-8", "surrogateescape"))
    ran = d / "ran"
    ran.mkdir()
    if trap:
        # an executable for every word-like run of characters in the file: if sh ever runs
        # one, it leaves its name in ran/
        for word in set(re.split(r"[\s'\"`\\$;|&<>(){}#=]+", text)):
            if word and "/" not in word and word not in (".", "..") and "\0" not in word:
                exe = d / "bin" / word
                exe.write_text(f"#!/bin/sh\n: > {shlex.quote(str(ran / word))}\n")
                exe.chmod(0o755)
    script = "set -e; . ./grub; printf '%s\\0' " + " ".join(f'"${{{n}+set}}" "${{{n}-}}"' for n in names)
    p = subprocess.run([*shell, "-c", script], cwd=d, env={"PATH": str(d / "bin")},
                       capture_output=True, timeout=20)
    assert p.returncode == 0 and p.stderr == b"", (text, p.returncode, p.stderr)
    fields = p.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]
    values = {n: (fields[2 * i + 1] if fields[2 * i] else None) for i, n in enumerate(names)}
    return values, {e.name for e in ran.iterdir()}


# ---------------------------------------------------------------- check_arg
@pytest.mark.parametrize("good", ["quiet", "iommu=pt", "intel_iommu=on", "vfio-pci.ids=10de:1b80,10de:10f0",
                                  "root=UUID=12-34", "console=ttyS0,115200n8", "a=", "x" * 256, "pcie_acs_override",
                                  "rd.luks.uuid=luks-1", "mem=4G@0x100000", "a%b^c+d/e:f"])
def test_check_arg_accepts(good):
    assert grubfile.check_arg(good) == good
    assert cmdline.check_arg(good) == good


@pytest.mark.parametrize("bad", ["", "x" * 257, "-quiet", "=on", "two words", "tab\there", "nl\n",
                                 "quiet\n", 'x="y"', "x='y'", "a=`reboot`", "a=$(reboot)", "a=$x", "back\\slash",
                                 "a;b", "a|b", "a&b", "a<b", "a>b", "a(b", "a)b", "a{b", "a}b", "a#b", "a*",
                                 "a?", "a[b", "a]b", "~a", "a!", "caf\u00e9", "nul\0", "\x7f", "bell\x07"])
def test_check_arg_refuses(bad):
    with pytest.raises(InvalidInput) as ei:
        grubfile.check_arg(bad)
    assert ei.value.exit_code == 65
    assert "\n" not in str(ei.value)
    with pytest.raises(InvalidInput):
        cmdline.edit_args("quiet", [bad], [])


def test_check_arg_refuses_non_text():
    with pytest.raises(InvalidInput):
        grubfile.check_arg(None)  # type: ignore[arg-type]


def _spec_ok(s: str) -> bool:
    """The spec written out again, character by character (no regex)."""
    if not 1 <= len(s) <= 256 or s[0] in "-=":
        return False
    return all(33 <= ord(c) <= 126 and c not in "'\"`\\$;|&<>(){}#*?[]~!" for c in s)


@settings(max_examples=300 * FUZZ, deadline=None)
@given(st.one_of(st.text(max_size=300),
                 st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=130), max_size=20),
                 st.from_regex(r"[a-z_-]{1,8}(=[!-~]{0,10})?", fullmatch=True)))
def test_check_arg_property(s):
    try:
        grubfile.check_arg(s)
        ok = True
    except InvalidInput as e:
        assert "\n" not in str(e)
        ok = False
    assert ok == _spec_ok(s)


# ---------------------------------------------------------------- parse
def test_parse_assignments_and_forms():
    text = ("# comment\n"
            "GRUB_DEFAULT=0\n"
            "  export GRUB_TIMEOUT='5'  # five\n"
            'A="x" B=y; OTHER=\n'
            'GRUB_CMDLINE_LINUX_DEFAULT="$A ${B}z"\n'
            "GRUB_CMDLINE_LINUX=a'b'\"c\"\n")
    gf = grubfile.parse(text)
    assert gf.stop is None
    got = [(a.var, a.line, a.raw, a.form, a.export, a.value, a.editable) for a in gf.assignments]
    assert got == [
        ("GRUB_DEFAULT", 2, "GRUB_DEFAULT=0", "unquoted", False, "0", True),
        ("GRUB_TIMEOUT", 3, "GRUB_TIMEOUT='5'", "single", True, "5", True),
        ("A", 4, 'A="x"', "double", False, "x", True),
        ("B", 4, "B=y", "unquoted", False, "y", True),
        ("OTHER", 4, "OTHER=", "empty", False, "", True),
        (V, 5, 'GRUB_CMDLINE_LINUX_DEFAULT="$A ${B}z"', "double", False, "x yz", True),
        (L, 6, "GRUB_CMDLINE_LINUX=a'b'\"c\"", "mixed", False, "abc", True),
    ]
    for a in gf.assignments:
        assert text[a.start:a.end] == a.raw and a.raw[a.value_start - a.start - 1] == "="
    assert grubfile.value(text, V) == "x yz"
    assert grubfile.value(text, "NOPE") is None
    assert gf.values()["GRUB_TIMEOUT"] == "5"


def test_export_expands_all_its_arguments_first():
    gf = grubfile.parse('A=1 B="$A"\nexport C=2 D="$C" A=3 E=$A\n'.replace("E=$A", 'E="$A"'))
    assert (gf.lookup("B"), gf.lookup("D"), gf.lookup("E"), gf.lookup("A")) == ("1", "", "1", "3")


def test_append_after_a_bare_expansion_keeps_the_name_apart():
    assert grubfile.edit(f'{V}="$OTHER"\n', V, ["quiet"], []) == f'{V}="$OTHER quiet"\n'
    assert grubfile.edit(f'{V}="${{OTHER}}"\n', V, ["quiet"], []) == f'{V}="${{OTHER}}quiet"\n'


def test_parse_last_assignment_wins_and_self_reference():
    text = f'{V}="quiet"\n{V}="$GRUB_CMDLINE_LINUX_DEFAULT splash"\n'
    gf = grubfile.parse(text)
    assert gf.last(V).line == 2
    assert gf.lookup(V) == "quiet splash"


def test_command_substitution_makes_only_that_value_unknown():
    text = ("GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n"
            'GRUB_X="$(sed \'s, release .*$,,g\' /etc/system-release)"\n'
            "GRUB_Y=`( . /etc/os-release; echo ${NAME:-Ubuntu} ) 2>/dev/null || echo Ubuntu`\n"
            f'{V}="quiet"\n')
    gf = grubfile.parse(text)
    assert gf.stop is None
    assert isinstance(gf.lookup("GRUB_DISTRIBUTOR"), Unknown)
    assert isinstance(gf.lookup("GRUB_X"), Unknown) and isinstance(gf.lookup("GRUB_Y"), Unknown)
    assert not gf.last("GRUB_X").editable and "command substitution" in gf.last("GRUB_X").why
    assert gf.lookup(V) == "quiet"


@pytest.mark.parametrize("text, line, why", [
    (f'if [ -e /x ]; then\n  {V}="quiet"\nfi\n', 1, "`if`"),
    (f'{V}="quiet"\necho hi\n', 2, "the command 'echo'"),
    (f'. /etc/default/grub.local\n{V}="quiet"\n', 1, "`.`, which reads another file"),
    (f'{V}="quiet" && true\n', 1, "&&"),
    (f'{V}="quiet" > /dev/null\n', 1, "redirection"),
    (f'{V}="quiet\n', 1, "double quote that is never closed"),
    (f"{V}='quiet\n", 1, "single quote that is never closed"),
    (f'{V}="${{X:=y}} quiet"\n', 1, "can assign"),
    (f'{V}="$((X=1))"\n', 1, "arithmetic"),
    (f"{V}=$'quiet'\n", 1, "$'...'"),
    (f'{V}="$[1+1]"\n', 1, "$[...]"),
    (f'{V}="quiet"\r\n\r\nGRUB_TIMEOUT=5\r\n', 2, "dos2unix"),
    (f'f() {{ {V}=x; }}\n{V}="quiet"\n', 1, "subshell or function"),
    (f'{V}="quiet"; ;\n', 1, "syntax error"),
    (f'cat <<EOF\n{V}=x\nEOF\n', 1, "here-document"),
    (f'{V}="quiet"\0\n', 1, "NUL"),
    (f'{V}=$(\ncase x in x) ;; esac)\n', 1, "case"),
    (f'{V}=quiet cmd\n', 1, "run with variables set"),
    (f'export -n {V}\n', 1, "export -n"),
    (f'\ufeff{V}="quiet"\n', 1, "byte order mark"),
])
def test_what_stops_the_analysis(text, line, why):
    gf = grubfile.parse(text)
    assert gf.stop is not None and gf.stop.line == line and why in gf.stop.why, gf.stop
    assert isinstance(gf.lookup(V), Unknown) and gf.may_set("ANYTHING")
    assert all(not a.editable and a.why for a in gf.assignments if a.line > line)


def test_assignments_after_a_stop_are_recorded_as_not_editable():
    gf = grubfile.parse(f'echo x\nA=1 {V}="q"\nif x; then\n  export {L}="y"\nfi\n')
    got = [(a.var, a.line, a.editable, a.export) for a in gf.assignments]
    assert got == [("A", 2, False, False), (V, 2, False, False), (L, 4, False, True)]
    assert gf.last(V).why == "after line 1: the command 'echo', which vfioctl does not follow"


@pytest.mark.parametrize("text, why", [
    (f'{V}=~/x\n', "tilde"),
    (f'{V}="$1"\n', "special parameter"),
    (f'{V}="$HOME/x"\n', "the shell, the environment or grub-mkconfig"),
    (f'{V}="$RANDOM"\n', "the shell, the environment or grub-mkconfig"),
    (f'{V}="$GRUB_DISABLE_OS_PROBER"\n', "grub-mkconfig"),
    (f'B="a b"\nexport {V}=$B\n', "older shells split"),
    (f'export {V}={{a,b}}\n', "some shells expand"),
    (f'X=$(cat x)\n{V}="$X quiet"\n', "uses $X"),
])
def test_unknown_values(text, why):
    gf = grubfile.parse(text)
    assert gf.stop is None
    v = gf.lookup(V)
    assert isinstance(v, Unknown) and why in v.why, v
    with pytest.raises(Refused):
        grubfile.value(text, V)


# ---------------------------------------------------------------- edit, verified by the real shell
FORMS = [
    # (id, text, value of V that sh must see after the edit)
    ("plain", 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\nGRUB_CMDLINE_LINUX=""\n',
     "splash iommu=pt intel_iommu=on"),
    ("trailing comment", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash" # don\'t "quote" #me\n',
     "splash iommu=pt intel_iommu=on"),
    ("hash inside the value", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash #foo"\n',
     "splash #foo iommu=pt intel_iommu=on"),
    ("single quotes", "GRUB_CMDLINE_LINUX_DEFAULT='quiet splash'\n", "splash iommu=pt intel_iommu=on"),
    ("unquoted", "GRUB_CMDLINE_LINUX_DEFAULT=splash\n", "splash iommu=pt intel_iommu=on"),
    ("unquoted, removed", "GRUB_CMDLINE_LINUX_DEFAULT=quiet\n", "iommu=pt intel_iommu=on"),
    ("unquoted empty", "GRUB_CMDLINE_LINUX_DEFAULT= # nothing\n", "iommu=pt intel_iommu=on"),
    ("empty", 'GRUB_CMDLINE_LINUX_DEFAULT=""\n', "iommu=pt intel_iommu=on"),
    ("export", 'export GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n', "splash iommu=pt intel_iommu=on"),
    ("self reference", 'GRUB_CMDLINE_LINUX_DEFAULT="splash"\n'
                       'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT quiet"\n',
     "splash iommu=pt intel_iommu=on"),
    ("other variable", 'OTHER="nomodeset"\nGRUB_CMDLINE_LINUX_DEFAULT="${OTHER} quiet x"\n',
     "nomodeset x iommu=pt intel_iommu=on"),
    ("unquoted expansion", "OTHER=nomodeset\nGRUB_CMDLINE_LINUX_DEFAULT=$OTHER\n",
     "nomodeset iommu=pt intel_iommu=on"),
    ("two on a line", 'A="x" GRUB_CMDLINE_LINUX_DEFAULT="quiet y" B=z  # c\n', "y iommu=pt intel_iommu=on"),
    ("semicolons", 'A=1; GRUB_CMDLINE_LINUX_DEFAULT="quiet"; B="2 3"\n', "iommu=pt intel_iommu=on"),
    ("continuation in quotes", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet \\\n  splash"\n',
     "splash iommu=pt intel_iommu=on"),
    ("continuation outside quotes", "A=1 \\\n  GRUB_CMDLINE_LINUX_DEFAULT=splash\\ \\\nquiet B=2\n",
     "splash iommu=pt intel_iommu=on"),
    ("several assignments", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_TIMEOUT=5\n'
                            'GRUB_CMDLINE_LINUX_DEFAULT="quiet nosplash"\n', "nosplash iommu=pt intel_iommu=on"),
    ("escapes", 'GRUB_CMDLINE_LINUX_DEFAULT="a \\"b\\" quiet \\$x \\\\y \\`z w\\n"\n',
     'a "b" $x \\y `z w\\n iommu=pt intel_iommu=on'),
    ("tabs and indentation", '\t  GRUB_CMDLINE_LINUX_DEFAULT="quiet\tsplash"\t# c\n',
     "splash iommu=pt intel_iommu=on"),
    ("no final newline", 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"',
     "splash iommu=pt intel_iommu=on"),
    ("absent", "GRUB_TIMEOUT=5\n# the end", "iommu=pt intel_iommu=on"),
    ("absent, empty file", "", "iommu=pt intel_iommu=on"),
    ("CRLF", 'GRUB_TIMEOUT=5\r\nGRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\r\n',
     "splash iommu=pt intel_iommu=on\r"),
    ("CRLF unquoted", "GRUB_CMDLINE_LINUX_DEFAULT=splash\r\n", "splash iommu=pt intel_iommu=on\r"),
    ("replaces values", 'GRUB_CMDLINE_LINUX_DEFAULT="iommu=soft quiet intel-iommu=off iommu=off"\n',
     "iommu=pt intel_iommu=on"),
    ("already there", 'GRUB_CMDLINE_LINUX_DEFAULT="iommu=pt  intel_iommu=on"\n', "iommu=pt  intel_iommu=on"),
    ("mixed quoting", "OTHER=a\nGRUB_CMDLINE_LINUX_DEFAULT=$OTHER' quiet'\"  b\"\n", "a  b iommu=pt intel_iommu=on"),
    ("Debian's file", 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\n'
                      'GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n'
                      'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n', "iommu=pt intel_iommu=on"),
]


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
@pytest.mark.parametrize("name, text, expect", FORMS, ids=[f[0] for f in FORMS])
def test_edit_forms_under_the_real_shell(tmp_path, shell, name, text, expect):
    new = grubfile.edit(text, V, ADD, REMOVE)
    before, ran_before = source(tmp_path, text, shell=shell)
    after, ran_after = source(tmp_path, new, shell=shell)
    assert after[V] == expect
    for n in NAMES:
        if n != V:
            assert after[n] == before[n], n
    # nothing runs but what the original ran (Debian's file runs lsb_release)
    assert ran_after == ran_before == ({"lsb_release"} if "lsb_release" in text else set())
    # our own reading agrees with the shell, before and after
    for t, sh in ((text, before), (new, after)):
        gf = grubfile.parse(t)
        for n in NAMES:
            if not isinstance(gf.lookup(n), Unknown):
                assert gf.lookup(n) == sh[n], (n, t)
    # every byte outside the edited value is kept
    last = grubfile.parse(text).last(V)
    if last is None:
        assert new.startswith(text) and new.endswith(f'{V}="{expect}"\n')
    else:
        assert new.startswith(text[:last.value_start]) and new.endswith(text[last.end:])
    # idempotent
    assert grubfile.edit(new, V, ADD, REMOVE) == new


def test_edit_keeps_other_lines_byte_for_byte():
    text = 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_TIMEOUT=5\nexport GRUB_CMDLINE_LINUX_DEFAULT="quiet x" # c\n'
    new = grubfile.edit(text, V, ["iommu=pt"], ["quiet"])
    assert new == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_TIMEOUT=5\nexport GRUB_CMDLINE_LINUX_DEFAULT="x iommu=pt" # c\n'


def test_edit_the_reviewed_injection():
    # the old regex turned this into ""quiet splash iommu=pt" #foo", which runs `splash`
    new = grubfile.edit(f'{V}="quiet splash #foo"\n', V, ["iommu=pt"], [])
    assert new == f'{V}="quiet splash #foo iommu=pt"\n'


def test_edit_appends_a_missing_variable_with_a_final_newline():
    assert grubfile.edit("A=1", V, ["iommu=pt"], []) == f'A=1\n{V}="iommu=pt"\n'
    assert grubfile.edit("A=1\n", V, [], ["quiet"]) == "A=1\n"  # nothing to remove: unchanged


@pytest.mark.parametrize("text, line, why", [
    (f'{V}="$(cat x) quiet"\n', 1, "command substitution"),
    (f"{V}=`cat x`\n", 1, "command substitution"),
    (f'if [ -e /x ]; then\n  {V}="quiet"\nfi\n', 1, "`if`"),
    (f'{V}="${{X:-y}} quiet"\n', 1, "${...}"),
    (f'. ./other\n{V}="quiet"\n', 1, "reads another file"),
    (f'OTHER="quiet"\n{V}="$OTHER splash"\n', 2, "'quiet' in GRUB_CMDLINE_LINUX_DEFAULT comes from $OTHER"),
    (f'{V}="quiet"\n{V}="$GRUB_CMDLINE_LINUX_DEFAULT x"\n', 2, "comes from $GRUB_CMDLINE_LINUX_DEFAULT"),
    (f'{V}="quiet"\n{L}="$GRUB_CMDLINE_LINUX_DEFAULT"\n', 1, "GRUB_CMDLINE_LINUX would change too"),
    (f'{V}="quiet"\r\n\r\n', 2, "dos2unix"),
    (f'X=$(cat x)\n{V}="quiet"\n{L}="$X $GRUB_CMDLINE_LINUX_DEFAULT"\n', 2, "GRUB_CMDLINE_LINUX on line 3 may use"),
    (f'{V}="quiet"\n{L}="${{GRUB_CMDLINE_LINUX_DEFAULT:-x}}"\n', 1, "GRUB_CMDLINE_LINUX on line 2 may use"),
    (f'{V}="quiet', 1, "never closed"),
])
def test_edit_refuses_and_says_what_to_do_by_hand(text, line, why):
    with pytest.raises(Refused) as ei:
        grubfile.edit(text, V, ADD, REMOVE)
    msg = str(ei.value)
    assert ei.value.exit_code == 69 and "\n" not in msg
    assert msg.startswith(f"/etc/default/grub line {line}: ") and why in msg, msg
    assert msg.endswith("add iommu=pt intel_iommu=on to and remove quiet from GRUB_CMDLINE_LINUX_DEFAULT "
                        "by hand, then run update-grub")


def test_edit_keeps_an_escape_pair_whole():
    # in double quotes "\ " is a backslash and a space, one piece: removing quiet leaves it whole
    assert grubfile.edit(f'{V}="a\\ quiet"\n', V, [], ["quiet"]) == f'{V}="a\\ "\n'
    # a token that ends inside such a pair cannot be replaced without breaking it
    with pytest.raises(Refused, match="'iommu=soft\\\\\\\\' in GRUB_CMDLINE_LINUX_DEFAULT shares an escape"):
        grubfile.edit(f'{V}="iommu=soft\\ x"\n', V, ["iommu=pt"], [])


def test_edit_refuses_to_replace_a_value_from_an_expansion():
    with pytest.raises(Refused, match="'iommu=soft' in GRUB_CMDLINE_LINUX_DEFAULT comes from \\$OTHER"):
        grubfile.edit(f'OTHER=iommu=soft\n{V}="$OTHER quiet"\n', V, ["iommu=pt"], [])


def test_edit_checks_arguments_and_the_variable_name():
    with pytest.raises(InvalidInput):
        grubfile.edit("", V, ["a;reboot"], [])
    with pytest.raises(InvalidInput):
        grubfile.edit("", V, [], ["quiet\n"])
    with pytest.raises(InvalidInput):
        grubfile.edit("", "GRUB CMDLINE", ["quiet"], [])


def test_edit_path_and_regenerate_in_the_message():
    with pytest.raises(Refused, match=r"^/etc/default/grub.d/x.cfg line 1: .* then run grub2-mkconfig$"):
        grubfile.edit(f"{V}=$(x)\n", V, ["iommu=pt"], [], path="/etc/default/grub.d/x.cfg",
                      regenerate="grub2-mkconfig")


# ---------------------------------------------------------------- properties
SAFE_ARGS = ["quiet", "splash", "iommu=pt", "iommu=soft", "intel_iommu=on", "intel-iommu=off",
             "nomodeset", "a=b=c", "console=ttyS0,115200", "x_y", "x-y=1"]
safe_arg = st.one_of(st.sampled_from(SAFE_ARGS),
                     st.from_regex(r"[a-z][a-z0-9_.,:%^@+/-]{0,6}(=[a-z0-9=_.,:%^@+/-]{0,6})?", fullmatch=True))

# words a value may hold: they must stay literal inside any of the quotes used below
VALUE_WORDS = ["quiet", "splash", "iommu=soft", "iommu=pt", "intel_iommu=off", "intel-iommu=on",
               "nomodeset", "a=b=c", "#x", "x#y", "*", "[a]", "{a,b}", "~u", "100%", "a:b"]
VARS = [V, L, "OTHER"]
SEPS = [" ", "  ", "\t", " \\\n"]


@st.composite
def dq_value(draw):
    items = draw(st.lists(st.one_of(st.sampled_from(VALUE_WORDS + ['say\\"hi', "c\\\\d", "\\$x", "e\\`f"]),
                                    st.sampled_from(["$OTHER", "${GRUB_CMDLINE_LINUX}", "$GRUB_CMDLINE_LINUX_DEFAULT"])),
                          max_size=4))
    out = ""
    for i, w in enumerate(items):
        out += (draw(st.sampled_from(SEPS)) if i else draw(st.sampled_from(["", " "]))) + w
    return '"' + out + draw(st.sampled_from(["", " "])) + '"'


@st.composite
def sq_value(draw):
    items = draw(st.lists(st.sampled_from(VALUE_WORDS + ['"q"', "$x", "\\"]), max_size=4))
    return "'" + draw(st.sampled_from([" ", "\t"])).join(items) + "'"


@st.composite
def uq_value(draw):
    items = draw(st.lists(st.sampled_from(["quiet", "splash", "iommu=soft", "a=b", "x#y", "*", "$OTHER",
                                           "${GRUB_CMDLINE_LINUX}"]), max_size=3))
    return "\\ ".join(items)


@st.composite
def assignment(draw, var=None):
    name = var or draw(st.sampled_from(VARS))
    segs = draw(st.lists(st.one_of(dq_value(), sq_value(), uq_value()), min_size=0, max_size=2))
    return f"{name}={''.join(segs)}"


@st.composite
def line(draw):
    kind = draw(st.sampled_from(["assign", "assign", "assign", "two", "semi", "comment", "blank"]))
    indent = draw(st.sampled_from(["", "  ", "\t"]))
    comment = draw(st.sampled_from(["", "", "  # c", ' # "x" \'y\' #z']))
    export = draw(st.sampled_from(["", "", "export "]))
    if kind == "comment":
        return indent + "# " + draw(st.sampled_from(["comment", "GRUB_CMDLINE_LINUX_DEFAULT=\"x\"", "it's"]))
    if kind == "blank":
        return indent
    if kind == "two":
        return indent + export + draw(assignment()) + " " + draw(assignment()) + comment
    if kind == "semi":
        return indent + draw(assignment()) + "; " + export + draw(assignment()) + comment
    return indent + export + draw(assignment()) + comment


grub_files = st.builds(lambda lines, nl: "\n".join(lines) + nl,
                       st.lists(line(), max_size=6), st.sampled_from(["\n", ""]))


def _allowed_refusal(msg: str) -> bool:
    # "could not verify its edit ... backslash-newline inside a $NAME": removing the word before a
    # continuation line glued the continuation to an expansion; the edit checks its own result
    # and refuses instead of writing it (found by this property; the file is left as it was)
    return any(s in msg for s in ("comes from $", "tilde", "some shells expand", "older shells split",
                                  "would change too", "may use", "cannot know")) or (
        "could not verify its edit" in msg and "backslash-newline inside a $NAME" in msg)


@settings(max_examples=60 * FUZZ, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(text=grub_files, var=st.sampled_from([V, L]),
       add=st.lists(safe_arg, max_size=3), remove=st.lists(safe_arg, max_size=2))
@example(text=f'{V}="quiet splash #foo"\n', var=V, add=["iommu=pt"], remove=[])
@example(text=f'{L}="quiet $OTHER \\\nquiet"\n', var=L, add=[], remove=["quiet"])
def test_edit_property_under_sh(tmp_path, text, var, add, remove):
    """edit either refuses (for a reason the generator can produce) or sh sees exactly the intended value."""
    try:
        new = grubfile.edit(text, var, add, remove)
    except Refused as e:
        assert _allowed_refusal(str(e)), (text, str(e))
        return
    before, _ = source(tmp_path, text, trap=False)
    after, _ = source(tmp_path, new, trap=False)
    assert (after[var] or "").split() == cmdline.edit_args(before[var] or "", add, remove).split()
    if new == text:
        assert cmdline.edit_args(before[var] or "", add, remove) == (before[var] or "")
    for n in NAMES:
        if n != var:
            assert after[n] == before[n], n
    gf = grubfile.parse(text)
    last = gf.last(var)
    if new != text:
        if last is None:
            assert new.startswith(text)
        else:
            assert new.startswith(text[:last.value_start]) and new.endswith(text[last.end:])
    for n in NAMES:
        if not isinstance(gf.lookup(n), Unknown):
            assert gf.lookup(n) == before[n], (n, text)


@settings(max_examples=300 * FUZZ, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
                 st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")),
                 st.lists(st.sampled_from(["A=", "B=", "export ", '"', "'", "\\", "\\\n", "$A", "${B}", "${A:-x}",
                                           "$(", ")", "`", "{", "}", "(", " ", "\t", "\n", ";", "#", "x", "~",
                                           "$", "\r", "\0", "if ", "fi", "case", "<<", "=", "$((", "$'", '$"',
                                           "&&", "|", "\udc80", "é"]),
                          max_size=40).map("".join)))
def test_parse_and_edit_never_crash(text):
    gf = grubfile.parse(text)
    for a in gf.assignments:
        assert text[a.start:a.end] == a.raw
        assert a.editable == isinstance(a.value, str)
        assert a.editable or a.why
    try:
        new = grubfile.edit(text, "A", ["iommu=pt"], ["quiet"])
    except VfioctlError:
        return
    assert grubfile.parse(new).lookup("A") is not None


# fragments whose combinations are mostly assignment-only files, with every quoting
# trick: sourced by sh whenever parse says it understands the whole file
FRAGMENTS = ["a=", "b=", "ab=", "export ", "export a", '"', "'", "\\", "\\\n", "$a", "${b}", "$ab", "${a:-x}",
             "${a:+y}", "${#a}", " ", "\t", "\n", ";", "#", "x", "y", "~", "$", "\r", "=", "*", "{", "}", "!",
             "[", "]", ":", "-", "$-", "$1", "\\$", '\\"', "\\'", "\\\\", "é", "\udc80", "$[", "$'", '$"']


@settings(max_examples=80 * FUZZ, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=25).map("".join),
       st.lists(safe_arg, max_size=2), st.lists(safe_arg, max_size=2))
def test_parse_agrees_with_sh(tmp_path, text, add, remove):
    """On files built from quoting fragments, what parse claims to know is what dash and bash see;
    and an edit of one of them is what sh then sees."""
    gf = grubfile.parse(text)
    assume(gf.stop is None)
    assume("$$" not in text)  # the shell's PID: two sourcings of one file differ
    names = ["a", "b", "ab"]
    for shell in SHELLS:
        sh, _ = source(tmp_path, text, names, shell, trap=False)
        for n in names:
            if not isinstance(gf.lookup(n), Unknown):
                assert gf.lookup(n) == sh[n], (shell, text, n)
    try:
        new = grubfile.edit(text, "a", add, remove)
    except Refused:
        return
    before, _ = source(tmp_path, text, names, trap=False)
    after, _ = source(tmp_path, new, names, trap=False)
    assert (after["a"] or "").split() == cmdline.edit_args(before["a"] or "", add, remove).split()
    assert (after["b"], after["ab"]) == (before["b"], before["ab"])


# ---------------------------------------------------------------- cmdline wiring
def test_edit_args_keeps_its_token_semantics():
    assert cmdline.edit_args("quiet  iommu=soft splash", ["iommu=pt"], []) == "quiet iommu=pt splash"
    assert cmdline.edit_args("iommu=soft quiet iommu=off", ["iommu=pt"], []) == "iommu=pt quiet"
    assert cmdline.edit_args("quiet vfio_pci.ids=1:2", [], ["vfio-pci.ids"]) == "quiet"
    assert cmdline.edit_args("a  b", [], ["c"]) == "a  b"
    # existing odd tokens are kept; only what the user gives is checked
    assert cmdline.edit_args('x="a b" $y', ["iommu=pt"], []) == 'x="a b" $y iommu=pt'


def _debian(tmp_path: Path, grub: str) -> Path:
    root = tmp_path / "root"
    (root / "etc/default/grub.d").mkdir(parents=True)
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/update-grub").write_text("")
    (root / "etc/default/grub").write_text(grub)
    return root


def test_grub_d_overrides_use_the_parser(tmp_path):
    from vfioctl.host.core import Host
    root = _debian(tmp_path, f'{V}="quiet"\n')
    d = root / "etc/default/grub.d"
    (d / "10-comment.cfg").write_text(f'# {V}="console=ttyS0"\n')
    (d / "20-other.cfg").write_text(f'{L}="x"\n')
    (d / "30-sets.cfg").write_text(f'A=1; export {V}="$GRUB_CMDLINE_LINUX_DEFAULT console=ttyS0"\n')
    (d / "40-runs.cfg").write_text(". /etc/default/more\n")
    (d / "50-not-cfg.txt").write_text(f'{V}="x"\n')
    assert cmdline._grub_d_overrides(Host(root), V) == ["/etc/default/grub.d/30-sets.cfg",
                                                        "/etc/default/grub.d/40-runs.cfg"]


def test_cli_refuses_a_file_it_cannot_edit_and_changes_nothing(tmp_path, capsys):
    grub = f'GRUB_TIMEOUT=5\n{V}="$(cat /etc/cmdline) quiet"\n'
    root = _debian(tmp_path, grub)
    rc = main(["--root", str(root), "boot", "cmdline", "--add", "iommu=pt"])
    assert rc == 69
    err = capsys.readouterr().err
    assert "/etc/default/grub line 2" in err and "add iommu=pt to GRUB_CMDLINE_LINUX_DEFAULT by hand" in err
    assert (root / "etc/default/grub").read_text() == grub
    assert not (root / "etc/default/grub.vfioctl.bak").exists()


def test_cli_refuses_a_bad_argument(tmp_path, capsys):
    root = _debian(tmp_path, f'{V}="quiet"\n')
    assert main(["--root", str(root), "boot", "cmdline", "--add", "iommu=pt;reboot"]) == 65
    assert (root / "etc/default/grub").read_text() == f'{V}="quiet"\n'
