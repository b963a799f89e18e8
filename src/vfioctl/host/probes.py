"""Probes: facts that are no file (the kernel log, an interface's IPv4 address, a systemd
unit's state, libvirt's version, a device's option ROM).

The module that owns a fact registers how to measure it on the live host
(:func:`register`); :meth:`vfioctl.host.core.Host.probe` asks the registry, or, on a
captured host, answers from the snapshot's probes file.  The registry is how a fact
owned by a higher layer is measured through the host without the host layer
importing upward: a probe is registered when its owner is imported, and only its
owner asks for it.
"""

from __future__ import annotations

from vfioctl.base.errors import InvalidInput
from vfioctl.base.text import escape

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Callable

    from vfioctl.host.core import Host

    Measure = Callable[[Host, str], object]

_LIVE: dict[str, Measure] = {}


def register(name: str, measure: Measure) -> None:
    """Make *measure(host, key)* the live measurement of probe *name* (its owner calls this once)."""
    _LIVE[name] = measure


def measure(host: Host, name: str, key: str) -> object:
    """Measure probe *name* on the live *host*."""
    try:
        fn = _LIVE[name]
    except KeyError:
        raise ValueError(f"internal error: no probe {name!r} is registered") from None
    return fn(host, key)


def names() -> list[str]:
    return sorted(_LIVE)


#: how deep a probe answer nests (the deepest vfioctl writes is 2: {"lines": [...]})
MAX_DEPTH = 8
#: digits of a number in a probe answer (a 64-bit value has 20)
MAX_DIGITS = 24
#: one string in a probe answer: a captured ROM in base64 (16 MiB of ROM, 4/3 of it)
MAX_STRING = 24 << 20


def parse_answers(text: str, source: str) -> dict[str, object]:
    """A snapshot's probes file, validated: a JSON object whose values nest at most
    :data:`MAX_DEPTH` deep, numbers of at most :data:`MAX_DIGITS` digits (Python's
    int-conversion limit never reached; no NaN or Infinity), and every string one line with
    its control and bidirectional characters escaped (text from a snapshot is shown, never
    acted on by a terminal).  Anything else is InvalidInput (65) naming *source*."""
    # lazy: json costs ~2 ms at start-up; only a captured host's probes file needs it
    import json

    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"{source}: its probes file (/.vfioctl/probes.json) {why}")

    def number(kind: str):
        def parse(t: str) -> object:
            if len(t) > MAX_DIGITS:
                raise ValueError(f"a number of {len(t)} characters")
            return int(t) if kind == "int" else float(t)
        return parse

    def constant(name: str) -> object:
        raise ValueError(f"{name} is not a number vfioctl writes")

    try:
        data = json.loads(text, parse_int=number("int"), parse_float=number("float"), parse_constant=constant)
    except RecursionError:
        raise bad(f"nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:
        raise bad(f"is not valid JSON vfioctl writes ({escape(str(err))[:80]})") from None
    if not isinstance(data, dict):
        raise bad("is not a JSON object")
    # iteratively, depth-bounded: no recursion a crafted file could exhaust
    out: dict[str, object] = {}
    todo: list[tuple[list[object] | dict[str, object], int | str, object, int]] = [
        (out, escape(str(k)), v, 1) for k, v in data.items()]
    while todo:
        parent, key, value, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise bad(f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise bad(f"holds a string of {len(value)} characters")
            value = escape(value)
        elif isinstance(value, list):
            items: list[object] = [None] * len(value)
            todo += [(items, i, v, depth + 1) for i, v in enumerate(value)]
            value = items
        elif isinstance(value, dict):
            inner: dict[str, object] = {}
            todo += [(inner, escape(str(k)), v, depth + 1) for k, v in value.items()]
            value = inner
        if isinstance(parent, list) and isinstance(key, int):
            parent[key] = value
        elif isinstance(parent, dict):
            parent[str(key)] = value
    return out
