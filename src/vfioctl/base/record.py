"""Frozen records: what ``@dataclass(frozen=True)`` gives the classes that use it here (an
``__init__`` taking the annotated fields in order, with their defaults; ``==`` and ``hash`` on
the fields; a repr; no assignment after ``__init__``), without importing dataclasses, which
imports inspect: ~6 ms of every start-up of ``vfioctl groups --why`` (issue 27).

A field whose default is made afresh for every record is written ``x: dict = factory(default_factory=dict)``
(dataclasses' ``field(default_factory=dict)``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_options):
        """typing's marker for type checkers; nothing at run time (typing is not imported)."""
        return lambda f: f


class FrozenRecordError(AttributeError):
    """A field of a frozen record assigned or deleted (dataclasses' FrozenInstanceError)."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], object]) -> None:
        self.make = make


def factory(default_factory: Callable[[], object]) -> Any:
    """A field's default made by calling *default_factory* for every record."""
    return _Factory(default_factory)


def _setattr(self, name, value):  # noqa: ARG001
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _delattr(self, name):  # noqa: ARG001
    raise FrozenRecordError(f"cannot delete field {name!r}")


@dataclass_transform(frozen_default=True, field_specifiers=(factory,))
def frozen(cls: type[T]) -> type[T]:
    """The class decorator: *cls*'s own annotated names are its fields, in order.  A record
    does not inherit fields (dataclasses would): a base that is a record is refused, so that
    no field is silently left out."""
    if any("__record_fields__" in base.__dict__ for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: a frozen record cannot derive from another record")
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults: dict[str, Any] = {}
    params = []
    for name in names:
        if name in cls.__dict__:
            value = cls.__dict__[name]
            if isinstance(value, _Factory):
                delattr(cls, name)  # as dataclasses removes a default_factory field's class attribute
            defaults[f"_d_{name}"] = value
            params.append(f"{name}=_d_{name}")
        elif defaults:
            raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one with a default")
        else:
            params.append(name)
    lines = [f"def __init__(self{''.join(', ' + p for p in params)}):"]
    for name in names:
        value = defaults.get(f"_d_{name}")
        if isinstance(value, _Factory):
            lines.append(f"    if {name} is _d_{name}: {name} = _d_{name}.make()")
        lines.append(f"    _set(self, {name!r}, {name})")
    if not names:
        lines.append("    pass")
    fields = "(" + "".join(f"self.{n}, " for n in names) + ")"
    others = "(" + "".join(f"other.{n}, " for n in names) + ")"
    lines += [
        "def __eq__(self, other):",
        "    if other.__class__ is not self.__class__:",
        "        return NotImplemented",
        f"    return {fields} == {others}",
        "def __hash__(self):",
        f"    return hash({fields})",
        "def __repr__(self):",
        "    return (self.__class__.__qualname__ + '(' + "
        + (" + ', ' + ".join(f"{n!r} + '=' + repr(self.{n})" for n in names) or "''") + " + ')')",
    ]
    namespace: dict[str, Any] = {"_set": object.__setattr__, **defaults}
    exec("\n".join(lines), namespace)  # the source is built above from the class's own names
    for method in ("__init__", "__eq__", "__hash__", "__repr__"):
        fn = namespace[method]
        fn.__qualname__ = f"{cls.__qualname__}.{method}"
        setattr(cls, method, fn)
    setattr(cls, "__setattr__", _setattr)
    setattr(cls, "__delattr__", _delattr)
    setattr(cls, "__match_args__", names)
    setattr(cls, "__record_fields__", names)
    return cls


def is_record(value: object) -> bool:
    """Whether *value* is an instance of a :func:`frozen` class (``dataclasses.is_dataclass``'s place)."""
    return not isinstance(value, type) and "__record_fields__" in type(value).__dict__


def record_fields(value: object) -> tuple[str, ...]:
    """The field names of a :func:`frozen` record, in order (``dataclasses.fields``' place)."""
    return type(value).__dict__["__record_fields__"]
