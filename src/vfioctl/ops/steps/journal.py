"""Steps that record originals in the journal before a change, mark it done after, and
forget it once given back: the journal is written as part of the plan, so a crash at any
step leaves a record ``restore`` can finish from."""

from __future__ import annotations

from dataclasses import dataclass, field

from vfioctl.ops.journal import DeviceRecord, HandoffRecord, SriovRecord, VfNetRecord
from vfioctl.ops.steps.base import Exec, Step


# ====================================================================== the journal
def _key(rec: DeviceRecord | SriovRecord | HandoffRecord | VfNetRecord) -> str:
    return rec.pf if isinstance(rec, (SriovRecord, VfNetRecord)) else rec.address


@dataclass
class JournalRecord(Step):
    """Save the originals before anything changes (save before you write)."""

    records: list = field(default_factory=list)
    #: what is recorded, for the plan's text ("the console hand-off" for a HandoffRecord)
    what: str = "originals"
    action = "journal"
    writes = False

    def describe(self) -> str:
        return f"journal: record {self.what} of {', '.join(_key(r) for r in self.records)}"

    def do(self, x: Exec) -> None:
        added: list[tuple[str, object]] = []
        for rec in self.records:
            if isinstance(rec, DeviceRecord):
                new = x.journal.record_device(rec)
            elif isinstance(rec, SriovRecord):
                new = x.journal.record_sriov(rec)
            elif isinstance(rec, VfNetRecord):
                fields = x.journal.record_vfnet(rec)
                if fields:
                    added.append(("VfNetRecord", (rec.pf, fields)))
                continue
            else:
                new = x.journal.record_handoff(rec)
            if new:
                added.append((type(rec).__name__, _key(rec)))
        x.memo[id(self)] = added
        x.journal.save()

    def undo(self, x: Exec) -> None:
        if x.rollback_failed:
            return  # keep the originals: `vfioctl restore --all` needs them
        books: dict[str, dict] = {"DeviceRecord": x.journal.devices, "SriovRecord": x.journal.sriov,
                                  "HandoffRecord": x.journal.handoff}
        for kind, key in x.memo.get(id(self), []):
            if kind == "VfNetRecord":
                x.journal.forget_vfnet(*key)
                continue
            books[kind].pop(key, None)
        x.journal.save()


@dataclass
class JournalCommit(Step):
    """Mark records verified: ``hidden`` for devices, ``changed`` for PFs and hand-offs."""

    keys: list[str] = field(default_factory=list)
    what: str = ""
    action = "commit"
    writes = False

    def describe(self) -> str:
        return f"journal: mark {self.what + ' of ' if self.what else ''}{', '.join(self.keys)} done"

    def do(self, x: Exec) -> None:
        for k in self.keys:
            if k in x.journal.devices:
                x.journal.devices[k].state = "hidden"
            if k in x.journal.sriov:
                x.journal.sriov[k].state = "changed"
            if k in x.journal.handoff:
                x.journal.handoff[k].state = "changed"
            if k in x.journal.vfnet:
                x.journal.vfnet[k].state = "changed"
        x.journal.save()


@dataclass
class JournalForget(Step):
    """Drop records once their device is back (undo puts them back)."""

    keys: list[str] = field(default_factory=list)
    action = "forget"
    writes = False

    def describe(self) -> str:
        return f"journal: forget {', '.join(self.keys)}"

    def do(self, x: Exec) -> None:
        gone = []
        for k in self.keys:
            for book in (x.journal.devices, x.journal.sriov, x.journal.handoff, x.journal.vfnet):
                if k in book:
                    gone.append((book, k, book.pop(k)))
        x.memo[id(self)] = gone
        x.journal.save()

    def undo(self, x: Exec) -> None:
        for book, k, rec in x.memo.get(id(self), []):
            book[k] = rec
        x.journal.save()


@dataclass
class JournalForgetVf(Step):
    """Drop some VF settings' originals of a PF once they are back (``apply --prune`` of a
    field no longer in the config); undo puts them back."""

    pf: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    action = "forget"
    writes = False

    def describe(self) -> str:
        return f"journal: forget the original {', '.join(f'VF {v} {f}' for v, f in self.fields)} of {self.pf}"

    def do(self, x: Exec) -> None:
        x.memo[id(self)] = x.journal.forget_vfnet(self.pf, list(self.fields))
        x.journal.save()

    def undo(self, x: Exec) -> None:
        gone = x.memo.get(id(self), [])
        if gone:
            x.journal.record_vfnet(VfNetRecord(self.pf, {}))
            for vf, f, v in gone:
                x.journal.vfnet[self.pf].originals.setdefault(vf, {})[f] = v
            x.journal.save()
