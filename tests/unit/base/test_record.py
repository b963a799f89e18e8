"""vfioctl.base.record.frozen behaves as @dataclass(frozen=True) does for the records that use it."""

from dataclasses import FrozenInstanceError, dataclass, field

import pytest

from vfioctl.base.record import FrozenRecordError, factory, frozen


@frozen
class Rec:
    a: int
    b: str | None
    c: tuple[str, ...] = ()
    d: dict = factory(default_factory=dict)


@dataclass(frozen=True)
class Ref:
    a: int
    b: str | None
    c: tuple[str, ...] = ()
    d: dict = field(default_factory=dict)


def test_as_a_frozen_dataclass():
    r, f = Rec(1, "x"), Ref(1, "x")
    assert repr(r).replace("Rec(", "Ref(") == repr(f)
    assert Rec(1, "x", ("y",), {"k": 1}) == Rec(a=1, b="x", c=("y",), d={"k": 1})
    assert Rec(1, None) != Rec(2, None) and Rec(1, None) != Ref(1, None)
    assert hash(Rec(1, "x", ("y",), None)) == hash(Rec(1, "x", ("y",), None))  # type: ignore[arg-type]
    assert Rec(1, "x").d is not Rec(1, "x").d  # a fresh default each time
    assert "d" not in Rec.__dict__ and Rec.c == ()
    assert Rec.__match_args__ == Ref.__match_args__
    with pytest.raises(FrozenRecordError):
        r.a = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del r.b  # type: ignore[misc]
    with pytest.raises(TypeError):
        Rec(1)  # type: ignore[call-arg]
    assert isinstance(FrozenRecordError(), AttributeError) and issubclass(FrozenInstanceError, AttributeError)


def test_a_field_without_default_after_one_with_is_refused():
    with pytest.raises(TypeError):
        @frozen
        class Bad:
            a: int = 0
            b: int


def test_fields_as_dataclasses_gives_them():
    from vfioctl.base.record import is_record, record_fields

    assert is_record(Rec(1, "x")) and not is_record(Rec) and not is_record(Ref(1, "x"))
    assert record_fields(Rec(1, "x")) == ("a", "b", "c", "d")


def test_a_record_cannot_derive_from_a_record():
    with pytest.raises(TypeError, match="cannot derive"):
        @frozen
        class More(Rec):
            e: int = 0
