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
