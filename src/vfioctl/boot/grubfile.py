r"""Read and edit /etc/default/grub as the shell that sources it does.

grub-mkconfig (and update-grub, its Debian wrapper) is a ``/bin/sh`` script that
runs ``. /etc/default/grub`` and then ``. /etc/default/grub.d/*.cfg``: these
files are shell code, not key=value files.  This module understands the
subset of POSIX sh that such files use (comments, ``VAR=value`` and
``export VAR=value``, several assignments per line and ``;``, unquoted words,
single and double quotes with their escapes, backslash-newline, ``$VAR`` and
``${VAR}``) and follows nothing else: a command, a compound command, a
redirection or an expansion with side effects stops the analysis, and every
value after that point is unknown.  An assignment whose value comes from a
command substitution or an operator expansion (``${X:-y}``) has an unknown
value, but does not stop the analysis (Debian's own file sets
``GRUB_DISTRIBUTOR`` from a command).

:func:`edit` changes the value of the assignment that takes effect, touching
no other byte, then parses its own result and refuses unless the shell would
see exactly the intended value and every other variable unchanged.

Line endings: sh knows only ``\n``.  In a CRLF file ``A="x"\r`` gives A the
value ``x\r``, as here; an added argument goes before such a trailing ``\r``.
A blank CRLF line is a command named ``\r`` that makes grub-mkconfig fail, and
stops the analysis with a hint to convert the file.

Variables the file reads before assigning them are empty, as in an empty
environment, except those the shell, the environment or grub-mkconfig set
before reading the file (``$HOME``, ``$GRUB_DISABLE_OS_PROBER``...): unknown.

Pure: no I/O.  What the shells do was checked against dash 0.5.12 and bash
5.2 in POSIX mode; where they differ (``$'..'``, ``$[..]``, ``export A=$B`` in
older dash, ``export A={x,y}`` in bash) the construct counts as unknown.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from vfioctl.base.errors import InvalidInput, Refused

__all__ = [
    "Assignment", "GrubFile", "Problem", "Unknown",
    "arg_key", "check_arg", "edit", "edit_tokens", "edit_words", "parse", "value",
]

GRUB_DEFAULT = "/etc/default/grub"

# ---------------------------------------------------------------- kernel arguments

#: shell metacharacters (sh: quotes, $, ;, |, &, <, >, (, ), #, globbing, ~, !)
#: and GRUB script ones: grub-core/script/yylex.l (CHAR excludes {}|&$;<> blanks,
#: quotes and backslash; '#' starts a COMMENT)
_ARG_FORBIDDEN = "'\"`\\$;|&<>(){}#*?[]~!"
_ARG_MAX = 256
_ARG_RE = re.compile(r"(?![-=])[!-~]{1,256}")
_ARG_HELP = ("vfioctl accepts name or name=value, at most 256 printable ASCII characters, "
             "not starting with - or =, without whitespace, quotes, backslashes or any of "
             "$;|&<>(){}#*?[]~!")


def check_arg(arg: str) -> str:
    """*arg* if it is a kernel argument vfioctl accepts, else :class:`InvalidInput`.

    ``name`` or ``name=value`` (the value may hold more ``=``), printable ASCII
    without whitespace, quotes, backslashes or characters that sh or GRUB's
    script lexer treat as syntax, so that it means the same as a literal in an
    unquoted, single-quoted or double-quoted shell word and in grub.cfg.
    """
    if not isinstance(arg, str):
        raise InvalidInput(f"kernel argument {arg!r} is not text; {_ARG_HELP}")
    if _ARG_RE.fullmatch(arg) and not any(c in _ARG_FORBIDDEN for c in arg):
        return arg
    shown = _show(arg, 60)
    if not arg:
        what = "is empty"
    elif len(arg) > _ARG_MAX:
        what = f"is {len(arg)} characters long"
    elif arg[0] in "-=":
        what = f"starts with {arg[0]!r}"
    elif any(c.isspace() for c in arg):
        what = "contains whitespace"
    elif (bad := next((c for c in arg if c in _ARG_FORBIDDEN), None)) is not None:
        what = f"contains {bad!r}, which sh or GRUB would read as syntax"
    else:
        bad = next(c for c in arg if not "!" <= c <= "~")
        what = f"contains {ascii(bad)}, which is not printable ASCII"
    raise InvalidInput(f"kernel argument {shown} {what}; {_ARG_HELP}")


def arg_key(arg: str) -> str:
    """The parameter name of *arg*, compared as the kernel does.

    kernel/params.c parameqn (dash2underscore): ``-`` and ``_`` in a parameter
    name are the same character.
    """
    return arg.split("=", 1)[0].replace("-", "_")


class TokenList(Protocol):
    """A command line seen as a list of whitespace-separated tokens that can be edited."""

    def tokens(self) -> list[str]: ...

    def delete(self, i: int) -> None: ...

    def replace(self, i: int, new: str) -> None: ...

    def append(self, new: str) -> None: ...


def edit_tokens(doc: TokenList, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
    """Take *remove* out of *doc* and put *add* in, one argument after another.

    Removing ``name`` removes it whatever its value, removing ``name=value``
    only that exact token.  An added argument already present changes nothing;
    ``name=value`` replaces the first token of the same name in place and
    deletes the others; otherwise it is appended.
    """
    for r in remove:
        check_arg(r)
        while True:
            toks = doc.tokens()
            if "=" in r:
                hit = next((i for i, t in enumerate(toks) if t == r), None)
            else:
                hit = next((i for i, t in enumerate(toks) if arg_key(t) == arg_key(r)), None)
            if hit is None:
                break
            doc.delete(hit)
    for a in add:
        check_arg(a)
        toks = doc.tokens()
        if a in toks:
            continue
        same = [i for i, t in enumerate(toks) if arg_key(t) == arg_key(a)]
        if same:
            for i in reversed(same[1:]):
                doc.delete(i)
            doc.replace(same[0], a)
        else:
            doc.append(a)


# ---------------------------------------------------------------- the model

@dataclass(frozen=True)
class Problem:
    """Something in the file that vfioctl does not follow: from here on nothing is certain."""

    line: int
    why: str


@dataclass(frozen=True)
class Unknown:
    """A value vfioctl cannot know without running the file (and why)."""

    line: int
    why: str


@dataclass(frozen=True)
class _Piece:
    """One source element of a word and what it adds to the word's value.

    kind: "lit" (literal text), "open"/"close" (quote delimiters), "cont"
    (backslash-newline), "var" ($NAME or ${NAME}; v is its value once
    evaluated), "opaque" (an expansion vfioctl does not evaluate).
    """

    src: str
    v: str
    kind: str
    quote: str = ""
    name: str = ""
    side: bool = False  # opaque: may assign variables or end the script


@dataclass(frozen=True)
class Assignment:
    """One ``VAR=value`` word of the file, in file order."""

    var: str
    line: int
    #: the assignment word's span in the text (``VAR=value``, without ``export``)
    start: int
    end: int
    #: where the value starts (just after ``=``)
    value_start: int
    raw: str
    #: "double", "single", "unquoted", "empty" or "mixed"
    form: str
    export: bool
    #: what sh gives the variable here; Unknown when vfioctl cannot tell
    value: str | Unknown
    editable: bool
    #: why it is not editable ("" when it is)
    why: str = ""
    pieces: tuple[_Piece, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class GrubFile:
    """The assignments of a shell file in order, and where vfioctl stopped following it."""

    text: str = field(repr=False)
    assignments: tuple[Assignment, ...]
    #: the first construct vfioctl does not follow; every final value is unknown when set
    stop: Problem | None
    _env: dict[str, str | Unknown] = field(default_factory=dict, repr=False, compare=False)

    def last(self, var: str) -> Assignment | None:
        """The last assignment of *var* (the one that takes effect), if any."""
        for a in reversed(self.assignments):
            if a.var == var:
                return a
        return None

    def lookup(self, var: str) -> str | Unknown | None:
        """What sh gives *var* after sourcing the file: text, None when unset, or Unknown."""
        if self.stop is not None:
            return Unknown(self.stop.line, self.stop.why)
        return self._env.get(var)

    def values(self) -> dict[str, str | Unknown]:
        """Every variable the file assigns, with its final value."""
        return {a.var: v for a in self.assignments if (v := self.lookup(a.var)) is not None}

    def may_set(self, var: str) -> bool:
        """Whether sourcing the file may change *var*: it assigns it, or does something vfioctl does not follow."""
        return self.stop is not None or any(a.var == var for a in self.assignments)


# ---------------------------------------------------------------- lexer

class _Lost(Exception):
    """vfioctl can no longer tell where words and commands begin and end."""

    def __init__(self, pos: int, why: str) -> None:
        super().__init__(why)
        self.pos = pos
        self.why = why


@dataclass
class _Word:
    start: int
    end: int
    pieces: list[_Piece]

    def plain(self) -> str | None:
        """The word's text when it is nothing but unquoted, unescaped characters."""
        if all(p.kind == "lit" and not p.quote and len(p.src) == 1 for p in self.pieces):
            return "".join(p.src for p in self.pieces)
        return None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACE_SIMPLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# ${ [#] name-or-special [:] [op] : an operator that assigns (=) or may end the script (?)
_BRACE_OP = re.compile(r"\$\{#?(?:[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(:?)([-=?+]|##?|%%?)?")
_BLANK = " \t"
_WORD_END = " \t\n;&|<>()"
_SPECIAL_PARAMS = "@*#?-$!0123456789"
#: set before the file is read, when the file does not assign them: by the shell (dash
#: 0.5.12 and bash 5.2 started with an empty environment), by the environment, or by
#: grub-mkconfig itself before its `. ${sysconfdir}/default/grub` (util/grub-mkconfig.in;
#: x is the grub.d file being read)
_PRESET = frozenset(
    "_ PWD OLDPWD IFS OPTIND OPTARG PS1 PS2 PS4 HOME PATH SHELL SHLVL HOSTNAME HOSTTYPE MACHTYPE "
    "OSTYPE GROUPS TERM COLUMNS LINES HISTFILE HISTSIZE MAILCHECK FUNCNAME DIRSTACK PIPESTATUS "
    "LANG LANGUAGE USER LOGNAME TMPDIR POSIXLY_CORRECT ENV "
    "prefix exec_prefix datarootdir sbindir bindir sysconfdir datadir pkgdatadir host_os "
    "grub_cfg grub_mkconfig_dir self grub_probe grub_file grub_editenv grub_script_check "
    "grub_mkrelpath root option opt x PACKAGE_NAME PACKAGE_VERSION TEXTDOMAIN TEXTDOMAINDIR "
    "GRUB_DEVICE GRUB_DEVICE_UUID GRUB_DEVICE_PARTUUID GRUB_DEVICE_BOOT GRUB_DEVICE_BOOT_UUID "
    "GRUB_DISABLE_OS_PROBER GRUB_FS GRUB_EARLY_INITRD_LINUX_STOCK".split())
#: always computed by the shell (bash), or read-only there: never known, never assigned safely
_SHELL_OWNED = frozenset(
    "LINENO RANDOM SRANDOM SECONDS EPOCHSECONDS EPOCHREALTIME BASHPID HISTCMD PPID UID EUID "
    "SHELLOPTS BASHOPTS".split())


def _preset(name: str) -> bool:
    return name in _PRESET or name in _SHELL_OWNED or name.startswith(("BASH", "LC_"))
_MAX_NEST = 32


def _show(s: str, limit: int = 40) -> str:
    """*s* quoted and escaped onto one line, shortened to about *limit* characters."""
    out = ascii(s)
    return out if len(out) <= limit else out[: limit - 4] + "...'"


class _Lexer:
    """Words, operators and newlines of the file, as sh splits them."""

    def __init__(self, text: str) -> None:
        self.text = text
        nul = text.find("\0")
        # sh implementations disagree about NUL bytes: nothing past one is followed
        self.end = len(text) if nul < 0 else nul

    def at(self, i: int) -> str:
        return self.text[i] if i < self.end else ""

    def tokens(self) -> Iterator[tuple]:
        text, i = self.text, 0
        while True:
            if i >= self.end:
                if self.end < len(text):
                    raise _Lost(self.end, "a NUL byte, which shells read differently")
                yield ("eof", i)
                return
            c = text[i]
            if c in _BLANK:
                i += 1
            elif c == "\\" and self.at(i + 1) == "\n":
                i += 2
            elif c == "\n":
                yield ("nl", i)
                i += 1
            elif c == "#":
                j = text.find("\n", i, self.end)
                i = j if j >= 0 else self.end
            elif c in ";&|<>()":
                op = c
                two = text[i:i + 2] if i + 2 <= self.end else c
                if two in (";;", "&&", "||", "<<", ">>", "<&", ">&", "<>", ">|"):
                    op = two
                if op == "<<":
                    raise _Lost(i, "a here-document (<<)")
                yield ("op", op, i)
                i += len(op)
            else:
                word, i = self._word(i)
                yield ("word", word)

    def _word(self, i: int) -> tuple[_Word, int]:
        text, start, pieces = self.text, i, []
        while i < self.end:
            c = text[i]
            if c in _WORD_END:
                break
            if c == "\\":
                n = self.at(i + 1)
                if not n:
                    raise _Lost(i, "a backslash at the end of the file")
                pieces.append(_Piece(text[i:i + 2], "", "cont") if n == "\n" else _Piece(text[i:i + 2], n, "lit"))
                i += 2
            elif c == "'":
                j = text.find("'", i + 1, self.end)
                if j < 0:
                    raise _Lost(i, "a single quote that is never closed")
                pieces.append(_Piece("'", "", "open", "'"))
                pieces.extend(_Piece(ch, ch, "lit", "'") for ch in text[i + 1:j])
                pieces.append(_Piece("'", "", "close", "'"))
                i = j + 1
            elif c == '"':
                i = self._dq(i, pieces)
            elif c == "$":
                i = self._dollar(i, pieces, "")
            elif c == "`":
                j = self._skip_backtick(i + 1, 0)
                pieces.append(_Piece(text[i:j], "", "opaque", "", "`...` (a command substitution)"))
                i = j
            else:
                pieces.append(_Piece(c, c, "lit"))
                i += 1
        return _Word(start, i, pieces), i

    def _dq(self, i: int, pieces: list[_Piece]) -> int:
        text, start = self.text, i
        pieces.append(_Piece('"', "", "open", '"'))
        i += 1
        while True:
            if i >= self.end:
                raise _Lost(start, "a double quote that is never closed")
            c = text[i]
            if c == '"':
                pieces.append(_Piece('"', "", "close", '"'))
                return i + 1
            if c == "\\":
                n = self.at(i + 1)
                if not n:
                    raise _Lost(start, "a double quote that is never closed")
                if n == "\n":
                    pieces.append(_Piece(text[i:i + 2], "", "cont", '"'))
                elif n in '"\\$`':
                    pieces.append(_Piece(text[i:i + 2], n, "lit", '"'))
                else:
                    # a backslash before any other character stays: the pair is one piece
                    pieces.append(_Piece(text[i:i + 2], text[i:i + 2], "lit", '"'))
                i += 2
            elif c == "$":
                i = self._dollar(i, pieces, '"')
            elif c == "`":
                j = self._skip_backtick(i + 1, 0)
                pieces.append(_Piece(text[i:j], "", "opaque", '"', "`...` (a command substitution)"))
                i = j
            else:
                pieces.append(_Piece(c, c, "lit", '"'))
                i += 1

    def _dollar(self, i: int, pieces: list[_Piece], quote: str) -> int:
        text, n = self.text, self.at(i + 1)
        if n == "{":
            m = _BRACE_SIMPLE.match(text, i, self.end)
            if m:
                pieces.append(_Piece(m.group(0), "", "var", quote, m.group(1)))
                return m.end()
            j = self._skip_brace(i + 2, quote == '"', 0)
            op = _BRACE_OP.match(text, i, j)
            # ${X=y} ${X:=y} assign X; ${X?msg} ends the script when X is unset; a nested
            # ${..} or $((..)) may do either
            inner = text[i + 2:j]
            side = op is None or (op.group(2) or "") in ("=", "?") or "${" in inner or "$((" in inner
            why = "a ${...} expansion that vfioctl does not evaluate"
            if side:
                why = "a ${...} expansion that can assign a variable or end the script"
            pieces.append(_Piece(text[i:j], "", "opaque", quote, why, side))
            return j
        if n == "(":
            j = self._skip_parens(i + 2, 0)
            if text.startswith("((", i + 1):
                pieces.append(_Piece(text[i:j], "", "opaque", quote,
                                     "an arithmetic expansion $((...)), which can assign variables", True))
            else:
                pieces.append(_Piece(text[i:j], "", "opaque", quote, "$(...) (a command substitution)"))
            return j
        if n and (n.isascii() and (n.isalpha() or n == "_")):
            m = _NAME.match(text, i + 1, self.end)
            assert m is not None
            if text.startswith("\\\n", m.end()) and m.end() + 2 <= self.end:
                raise _Lost(i, "a backslash-newline inside a $NAME")
            pieces.append(_Piece(text[i:m.end()], "", "var", quote, m.group(0)))
            return m.end()
        if n and n in _SPECIAL_PARAMS:
            pieces.append(_Piece(text[i:i + 2], "", "opaque", quote, f"${n} (a special parameter)"))
            return i + 2
        if n == "\\" and self.at(i + 2) == "\n":
            raise _Lost(i, "a backslash-newline right after $")
        if n == "[":
            # bash reads $[...] as arithmetic (to the matching ]), dash as a literal $[
            raise _Lost(i, "$[...], which bash and dash read differently")
        if not quote and n == "'":
            # bash reads $'...' as C-style quoting (with \' inside), dash as $ then '...'
            raise _Lost(i, "$'...' quoting, which bash and dash read differently")
        if not quote and n == '"':
            pieces.append(_Piece("$", "", "opaque", quote, '$"..." (bash translation)'))
            return i + 1
        pieces.append(_Piece("$", "$", "lit", quote))
        return i + 1

    # -- skipping over constructs vfioctl does not evaluate, to find where they end

    def _nest(self, depth: int, i: int) -> int:
        if depth >= _MAX_NEST:
            raise _Lost(i, "expansions nested too deeply")
        return depth + 1

    def _skip_backtick(self, i: int, depth: int) -> int:
        """*i* just after an opening backquote: the index after the closing one."""
        start = i - 1
        while i < self.end:
            c = self.text[i]
            if c == "\\":
                i += 2
            elif c == "`":
                return i + 1
            else:
                i += 1
        raise _Lost(start, "a command substitution `...` that is never closed")

    def _skip_sq(self, i: int) -> int:
        j = self.text.find("'", i + 1, self.end)
        if j < 0:
            raise _Lost(i, "a single quote that is never closed")
        return j + 1

    def _skip_dq(self, i: int, depth: int) -> int:
        """*i* at an opening double quote: the index after the closing one."""
        depth, start = self._nest(depth, i), i
        text, i = self.text, i + 1
        while i < self.end:
            c = text[i]
            if c == "\\":
                i += 2
            elif c == '"':
                return i + 1
            elif c == "`":
                i = self._skip_backtick(i + 1, depth)
            elif c == "$" and self.at(i + 1) == "(":
                i = self._skip_parens(i + 2, depth)
            elif c == "$" and self.at(i + 1) == "{":
                i = self._skip_brace(i + 2, True, depth)
            else:
                i += 1
        raise _Lost(start, "a double quote that is never closed")

    def _skip_brace(self, i: int, in_dq: bool, depth: int) -> int:
        """*i* just after ``${``: the index after the matching ``}``."""
        depth, start = self._nest(depth, i), i - 2
        text = self.text
        while i < self.end:
            c = text[i]
            if c == "}":
                return i + 1
            if c == "\\":
                i += 2
            elif c in "'\"" and in_dq:
                # quotes inside "${...}" nest differently across shells
                raise _Lost(start, "a quote inside \"${...}\"")
            elif c == "'":
                i = self._skip_sq(i)
            elif c == '"':
                i = self._skip_dq(i, depth)
            elif c == "`":
                i = self._skip_backtick(i + 1, depth)
            elif c == "$" and self.at(i + 1) == "(":
                i = self._skip_parens(i + 2, depth)
            elif c == "$" and self.at(i + 1) == "{":
                i = self._skip_brace(i + 2, in_dq, depth)
            else:
                i += 1
        raise _Lost(start, "a ${...} that is never closed")

    def _skip_parens(self, i: int, depth: int) -> int:
        """*i* just after ``$(``: the index after the matching ``)``."""
        depth, start = self._nest(depth, i), i - 2
        text, level, word_start = self.text, 1, True
        while i < self.end:
            c = text[i]
            if c == "(":
                level, word_start, i = level + 1, True, i + 1
            elif c == ")":
                level, word_start, i = level - 1, True, i + 1
                if level == 0:
                    return i
            elif c == "\\":
                word_start, i = False, i + 2
            elif c == "'":
                word_start, i = False, self._skip_sq(i)
            elif c == '"':
                word_start, i = False, self._skip_dq(i, depth)
            elif c == "`":
                word_start, i = False, self._skip_backtick(i + 1, depth)
            elif c == "$" and self.at(i + 1) == "{":
                word_start, i = False, self._skip_brace(i + 2, False, depth)
            elif c == "$" and self.at(i + 1) == "'":
                raise _Lost(i, "$'...' quoting, which bash and dash read differently")
            elif c == "#" and word_start:
                j = text.find("\n", i, self.end)
                i = j if j >= 0 else self.end
            elif c == "<" and self.at(i + 1) == "<":
                raise _Lost(i, "a here-document (<<) inside $(...)")
            elif c in " \t\n;|&<>":
                word_start, i = True, i + 1
            else:
                if word_start:
                    m = _NAME.match(text, i, self.end)
                    if m and m.group(0) in ("case", "esac"):
                        # case patterns end with an unbalanced )
                        raise _Lost(start, "a case statement inside $(...)")
                word_start, i = False, i + 1
        raise _Lost(start, "a command substitution $(...) that is never closed")


# ---------------------------------------------------------------- parser

#: reserved words after which a command follows
_RESERVED_THEN_COMMAND = {"if", "then", "else", "elif", "while", "until", "do", "{", "!", "time"}
#: reserved words followed by something other than a command (a name, a word, a separator)
_RESERVED_OTHER = {"for", "case", "select", "function", "in", "fi", "done", "esac", "}", "[[", "]]", "coproc"}
_COMPOUND = {"if", "while", "until", "for", "case", "select", "{", "function", "coproc"}


def _split_assignment(w: _Word) -> tuple[str, int] | None:
    """(name, index of the first value piece) when *w* is an assignment word."""
    for k, p in enumerate(w.pieces):
        if not (p.kind == "lit" and not p.quote and len(p.src) == 1):
            return None
        if p.src == "=":
            name = "".join(q.src for q in w.pieces[:k])
            return (name, k + 1) if _NAME.fullmatch(name) else None
    return None


def _form(pieces: Sequence[_Piece]) -> str:
    if not pieces:
        return "empty"
    opens = [p for p in pieces if p.kind == "open"]
    if not opens:
        return "unquoted"
    if len(opens) == 1 and pieces[0].kind == "open" and pieces[-1].kind == "close":
        return "double" if opens[0].quote == '"' else "single"
    return "mixed"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.newlines = [i for i, c in enumerate(text) if c == "\n"]
        self.env: dict[str, str | Unknown] = {}
        self.assignments: list[Assignment] = []
        self.stop: Problem | None = None

    def line(self, pos: int) -> int:
        return bisect.bisect_left(self.newlines, pos) + 1

    def halt(self, pos: int, why: str) -> None:
        if self.stop is None:
            self.stop = Problem(self.line(pos), why)

    def run(self) -> GrubFile:
        cmd: list[_Word] = []
        try:
            for tok in _Lexer(self.text).tokens():
                kind = tok[0]
                if kind == "word":
                    w = tok[1]
                    rw = w.plain() if not cmd else None
                    if rw in _RESERVED_THEN_COMMAND or rw in _RESERVED_OTHER:
                        if rw in _COMPOUND:
                            self.halt(w.start, f"`{rw}` (a compound command vfioctl does not follow)")
                        else:
                            self.halt(w.start, f"`{rw}` (part of a compound command vfioctl does not follow)")
                        if rw in _RESERVED_OTHER:
                            cmd = [w]
                        continue
                    cmd.append(w)
                elif kind in ("nl", "eof"):
                    self.command(cmd)
                    cmd = []
                else:
                    op, pos = tok[1], tok[2]
                    if op in ("<", ">", ">>", "<&", ">&", "<>", ">|"):
                        # the redirection's target is the next word: keep collecting
                        self.halt(pos, f"a redirection {op}")
                        continue
                    if op == ";" and not cmd:
                        self.halt(pos, "`;` with no command before it (a syntax error)")
                    elif op != ";":
                        what = {"(": "a subshell or function", ")": "a subshell or function",
                                "&": "a background command", "|": "a pipeline",
                                "&&": "a conditional command (&&)", "||": "a conditional command (||)",
                                ";;": "`;;` outside case (a syntax error)"}[op]
                        self.halt(pos, f"`{op}` ({what})")
                    self.command(cmd)
                    cmd = []
        except _Lost as e:
            self.halt(e.pos, e.why)
        env = dict(self.env) if self.stop is None else {}
        return GrubFile(self.text, tuple(self.assignments), self.stop, env)

    def command(self, cmd: list[_Word]) -> None:
        if not cmd:
            return
        if self.stop is not None:
            self.loose(cmd)
            return
        first = cmd[0]
        if _split_assignment(first) is not None:
            words, export = cmd, False
            other = next((w for w in cmd if _split_assignment(w) is None), None)
            if other is not None:
                self.halt(other.start, f"{self.describe(other)} (run with variables set for it)")
        elif first.plain() == "export":
            words, export = cmd[1:], True
            if not words:
                self.halt(first.start, "`export` with no arguments (it prints the environment)")
            for w in words:
                if _split_assignment(w) is None and not _NAME.fullmatch(w.plain() or ""):
                    self.halt(w.start, f"`export {self.src(w)}`, which is not NAME or NAME=value")
                    break
        else:
            self.halt(first.start, self.describe(first))
            words, export = cmd, False
        if self.stop is None:
            side = next((p for w in words for p in w.pieces if p.side), None)
            if side is not None:
                w = next(w for w in words if side in w.pieces)
                self.halt(w.start, side.name)
        if self.stop is not None:
            self.loose(cmd)
            return
        owned = next((w for w in words if (_split_assignment(w) or ("",))[0] in _SHELL_OWNED), None)
        if owned is not None:
            self.halt(owned.start, f"an assignment to {(_split_assignment(owned) or ('?',))[0]}, which the shell manages")
            self.loose(cmd)
            return
        # `A=x B=$A` assigns from left to right; `export A=x B=$A` expands all its arguments
        # first, then assigns (dash 0.5.12, bash 5.2: B is empty)
        env = dict(self.env) if export else None
        for w in words:
            if _split_assignment(w) is not None:
                self.assign(w, export, env)

    def src(self, w: _Word) -> str:
        return _show(self.text[w.start:w.end])[1:-1]

    def describe(self, w: _Word) -> str:
        plain = w.plain()
        if w.start == 0 and self.text.startswith("\ufeff"):
            return ("a byte order mark (BOM) at the start of the file, which sh reads as part of a "
                    "command name: save the file without it")
        if plain == "\r":
            return ("a carriage return that sh runs as a command (the file has Windows CRLF line "
                    "endings: convert it with dos2unix)")
        if plain in (".", "source"):
            return f"`{plain}`, which reads another file"
        return f"the command {_show(self.text[w.start:w.end])}, which vfioctl does not follow"

    def assign(self, w: _Word, export: bool, env: dict[str, str | Unknown] | None = None) -> None:
        split = _split_assignment(w)
        assert split is not None
        name, k = split
        line = self.line(w.start)
        env = self.env if env is None else env
        pieces: list[_Piece] = []
        unknown: Unknown | None = None
        for p in w.pieces[k:]:
            if p.kind == "var":
                if p.name in _SHELL_OWNED or (p.name not in env and _preset(p.name)):
                    unknown = unknown or Unknown(line, f"{name} uses ${p.name}, which the shell, the "
                                                       "environment or grub-mkconfig sets")
                v = env.get(p.name, "")  # an unset variable expands to nothing
                if isinstance(v, Unknown):
                    unknown = unknown or Unknown(line, f"{name} uses ${p.name}, whose value vfioctl "
                                                       f"cannot know (line {v.line})")
                    v = ""
                if export and not p.quote:
                    unknown = unknown or Unknown(line, f"an unquoted ${p.name} in `export`, which older "
                                                       "shells split into words")
                p = replace(p, v=v)
            elif p.kind == "opaque":
                unknown = unknown or Unknown(line, f"{name} is set from {p.name}")
            elif p.kind == "lit" and not p.quote and p.src == "~":
                unknown = unknown or Unknown(line, f"{name} contains an unquoted ~ (tilde expansion)")
            elif export and p.kind == "lit" and not p.quote and p.src in "*?[{":
                # older dash globs export's arguments; bash brace-expands export a={x,y}
                unknown = unknown or Unknown(line, f"an unquoted {p.src} in `export`, which some "
                                                   "shells expand")
            pieces.append(p)
        value: str | Unknown = unknown if unknown is not None else "".join(p.v for p in pieces)
        value_start = w.start + sum(len(p.src) for p in w.pieces[:k])
        self.assignments.append(Assignment(
            var=name, line=line, start=w.start, end=w.end, value_start=value_start,
            raw=self.text[w.start:w.end], form=_form(pieces), export=export, value=value,
            editable=unknown is None, why=unknown.why if unknown else "", pieces=tuple(pieces)))
        self.env[name] = value

    def loose(self, cmd: list[_Word]) -> None:
        """Record the assignments of a command that runs after vfioctl stopped following the file."""
        assert self.stop is not None
        words = cmd[1:] if cmd[0].plain() == "export" else cmd
        for w in words:
            split = _split_assignment(w)
            if split is None:
                if words is cmd:
                    break
                continue
            name, k = split
            line = self.line(w.start)
            why = self.stop.why if line == self.stop.line else f"after line {self.stop.line}: {self.stop.why}"
            value_start = w.start + sum(len(p.src) for p in w.pieces[:k])
            self.assignments.append(Assignment(
                var=name, line=line, start=w.start, end=w.end, value_start=value_start,
                raw=self.text[w.start:w.end], form=_form(w.pieces[k:]), export=words is not cmd,
                value=Unknown(self.stop.line, self.stop.why), editable=False, why=why))


def parse(text: str) -> GrubFile:
    """The assignments of *text* (a shell file sourced by grub-mkconfig), in order.

    Never raises for any text: what it cannot follow is recorded (``stop``,
    non-editable assignments, Unknown values).
    """
    if not isinstance(text, str):
        raise InvalidInput(f"expected the text of a shell file, got {type(text).__name__}")
    return _Parser(text).run()


def value(text: str, var: str, *, path: str = GRUB_DEFAULT) -> str | None:
    """The value sh gives *var* after sourcing *text* (None when unset).

    Raises :class:`Refused` when the value cannot be known without running the file.
    """
    v = parse(text).lookup(var)
    if isinstance(v, Unknown):
        raise Refused(f"{path} line {v.line}: {v.why}, so vfioctl cannot tell the value of {var}",
                      path=path, line=v.line, variable=var)
    return v


# ---------------------------------------------------------------- editing

class _ValueDoc:
    """The value of one assignment as pieces of source, editable token by token."""

    def __init__(self, pieces: Sequence[_Piece]) -> None:
        self.pieces = list(pieces)

    def value(self) -> str:
        return "".join(p.v for p in self.pieces)

    def render(self) -> str:
        return "".join(p.src for p in self.pieces)

    def _spans(self) -> tuple[str, list[int], list[tuple[int, int]]]:
        v, owner = "", []
        for idx, p in enumerate(self.pieces):
            v += p.v
            owner.extend([idx] * len(p.v))
        spans, i = [], 0
        while i < len(v):
            if v[i].isspace():
                i += 1
                continue
            j = i
            while j < len(v) and not v[j].isspace():
                j += 1
            spans.append((i, j))
            i = j
        return v, owner, spans

    def tokens(self) -> list[str]:
        v, _, spans = self._spans()
        return [v[s:e] for s, e in spans]

    def _offset(self, idx: int) -> int:
        return sum(len(p.v) for p in self.pieces[:idx])

    def _literal(self, i: int) -> list[int]:
        """The indices of the pieces holding token *i*, which must be literal text of its own."""
        v, owner, spans = self._spans()
        s, e = spans[i]
        first, last = owner[s], owner[e - 1]
        covered = [k for k in range(first, last + 1) if self.pieces[k].v]
        exp = next((self.pieces[k] for k in covered if self.pieces[k].kind != "lit"), None)
        if exp is not None:
            raise _NotLiteral(v[s:e], f"comes from ${exp.name}")
        if self._offset(first) != s or self._offset(last) + len(self.pieces[last].v) != e:
            raise _NotLiteral(v[s:e], "shares an escape sequence with the text around it")
        return covered

    def _blank_run(self, a: int, b: int) -> list[int]:
        """Literal whitespace pieces lying wholly within value offsets [a, b)."""
        out, off = [], 0
        for k, p in enumerate(self.pieces):
            if p.v and a <= off and off + len(p.v) <= b and p.kind == "lit" and p.v.isspace():
                out.append(k)
            off += len(p.v)
        return out

    def delete(self, i: int) -> None:
        _, _, spans = self._spans()
        drop = self._literal(i)
        blank: list[int] = []
        if i > 0:
            blank = self._blank_run(spans[i - 1][1], spans[i][0])
        if not blank and i + 1 < len(spans):
            blank = self._blank_run(spans[i][1], spans[i + 1][0])
        gone = set(drop) | set(blank)
        self.pieces = [p for k, p in enumerate(self.pieces) if k not in gone]

    def replace(self, i: int, new: str) -> None:
        drop = self._literal(i)
        at, quote = drop[0], self.pieces[drop[0]].quote
        out: list[_Piece] = []
        for k, p in enumerate(self.pieces):
            if k == at:
                out.append(_Piece(new, new, "lit", quote))
            if k not in drop:
                out.append(p)
        self.pieces = out

    def append(self, new: str) -> None:
        # after the last character sh sees as part of the value, but before a trailing
        # unquoted \r (CRLF files) or backslash-newline, so the new text stays on its line
        ins = len(self.pieces)
        while ins > 0 and (self.pieces[ins - 1].kind == "cont" or (
                self.pieces[ins - 1].kind == "lit" and not self.pieces[ins - 1].quote
                and self.pieces[ins - 1].v.isspace())):
            ins -= 1
        before = "".join(p.v for p in self.pieces[:ins])
        sep = " " if before and not before[-1].isspace() else ""
        if ins > 0 and self.pieces[ins - 1].kind == "close":
            # inside the closing quote; "$A" + "x" would read as "$Ax": keep a blank between
            if ins > 1 and self.pieces[ins - 2].kind == "var" and not self.pieces[ins - 2].src.endswith("}"):
                sep = " "
            q = self.pieces[ins - 1].quote
            add = ([_Piece(sep, sep, "lit", q)] if sep else []) + [_Piece(new, new, "lit", q)]
            self.pieces[ins - 1:ins - 1] = add
        else:
            # a new double-quoted segment appended to the word
            add = [_Piece('"', "", "open", '"')] + ([_Piece(sep, sep, "lit", '"')] if sep else []) + [
                _Piece(new, new, "lit", '"'), _Piece('"', "", "close", '"')]
            self.pieces[ins:ins] = add


class _NotLiteral(Exception):
    def __init__(self, token: str, why: str) -> None:
        super().__init__(why)
        self.token = token
        self.why = why


def _by_hand(var: str, add: Sequence[str], remove: Sequence[str], regenerate: str) -> str:
    parts = []
    if add:
        parts.append(f"add {' '.join(add)} to")
    if remove:
        parts.append(f"remove {' '.join(remove)} from")
    return f"{' and '.join(parts)} {var} by hand, then run {regenerate}"


def edit(text: str, var: str, add: Sequence[str] = (), remove: Sequence[str] = (), *,
         path: str = GRUB_DEFAULT, regenerate: str = "update-grub") -> str:
    """*text* with *var*'s value edited as :func:`edit_tokens` says; every other byte kept.

    The assignment that takes effect (the last) is edited; when *var* is not
    assigned, ``VAR="..."`` is appended on a new line.  Raises
    :class:`Refused` when the value cannot be known, when a token to remove or
    replace is not literal text of that assignment, or when the edited text
    does not verify (sh would see something else than intended, or another
    variable would change).
    """
    if not isinstance(var, str) or not _NAME.fullmatch(var):
        raise InvalidInput(f"{_show(str(var))} is not a shell variable name")
    add, remove = [check_arg(a) for a in add], [check_arg(r) for r in remove]
    if not add and not remove:
        return text
    hand = _by_hand(var, add, remove, regenerate)
    gf = parse(text)
    current = gf.lookup(var)
    if isinstance(current, Unknown):
        raise Refused(f"{path} line {current.line}: {current.why}, so vfioctl cannot tell the value of {var}; {hand}",
                      path=path, line=current.line, variable=var)
    last = gf.last(var)
    if current is None or last is None:
        new_value = " ".join(edit_words([], add, remove))
        if not new_value:
            return text
        sep = "\n" if text and not text.endswith("\n") else ""
        new_text = f'{text}{sep}{var}="{new_value}"\n'
        line = new_text.count("\n")
    elif not last.editable:
        raise Refused(f"{path} line {last.line}: {last.why}; {hand}", path=path, line=last.line, variable=var)
    else:
        doc = _ValueDoc(last.pieces)
        try:
            edit_tokens(doc, add, remove)
        except _NotLiteral as e:
            raise Refused(f"{path} line {last.line}: {_show(e.token)} in {var} {e.why}, not from the text "
                          f"vfioctl can edit; {hand}", path=path, line=last.line, variable=var) from None
        new_value = doc.value()
        if new_value == current:
            return text
        new_text = text[:last.value_start] + doc.render() + text[last.end:]
        line = last.line
    problem = _verify(gf, new_text, var, current or "", new_value, add, remove,
                      None if last is None else last.start)
    if problem:
        raise Refused(f"{path} line {line}: vfioctl could not verify its edit of {var} ({problem}); {hand}",
                      path=path, line=line, variable=var)
    return new_text


def edit_words(words: Sequence[str], add: Sequence[str] = (), remove: Sequence[str] = ()) -> list[str]:
    """A list of command-line tokens edited as :func:`edit_tokens` says."""
    doc = _Words(list(words))
    edit_tokens(doc, add, remove)
    return doc.items


class _Words:
    """A list of tokens as a :class:`TokenList`."""

    def __init__(self, items: list[str]) -> None:
        self.items = items

    def tokens(self) -> list[str]:
        return list(self.items)

    def delete(self, i: int) -> None:
        del self.items[i]

    def replace(self, i: int, new: str) -> None:
        self.items[i] = new

    def append(self, new: str) -> None:
        self.items.append(new)


def _verify(old: GrubFile, new_text: str, var: str, old_value: str, new_value: str,
            add: Sequence[str], remove: Sequence[str], edited: int | None) -> str:
    """"" when *new_text* gives *var* exactly *new_value* and every other variable its old value."""
    if new_value.split() != edit_words(old_value.split(), add, remove):
        return "the edited value does not hold the intended arguments"
    new = parse(new_text)
    if new.stop is not None:
        return f"line {new.stop.line}: {new.stop.why}"
    got = new.lookup(var)
    if got != new_value:
        return f"sh would read {_show(got if isinstance(got, str) else '?')} instead of {_show(new_value)}"
    names = {a.var for a in old.assignments} | {a.var for a in new.assignments}
    for name in sorted(names - {var}):
        if old.lookup(name) != new.lookup(name):
            return f"{name} would change too"
    # an unknown value compares equal to itself: one set after the edit from text that
    # names *var* ($VAR, ${VAR:-x}, $(echo $VAR)) may change with it
    for a in new.assignments:
        if edited is not None and a.start > edited and isinstance(a.value, Unknown) and var in a.raw:
            return f"{a.var} on line {a.line} may use {var}"
    return ""
