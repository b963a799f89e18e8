"""Steps that change files and run the programs that make them take effect: what ``boot
install``, ``boot uninstall`` and ``boot cmdline`` do, run by the same executor as every
device change (verified, undone in reverse on failure).

Each file step records what was there before (content and mode, a link's target, or
nothing) when it is planned, and its undo puts exactly that back.  A program that makes
files take effect (``update-grub``, ``update-initramfs``, ``systemctl daemon-reload``)
cannot be undone by itself; its undo asks the executor to run it once more after every
file is back (:meth:`Exec.after_rollback`), so the generated state follows the files.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from vfioctl.base.errors import InvalidInput, KernelError, VerifyFailed
from vfioctl.host.core import Host
from vfioctl.ops.steps.base import Exec, Step


@dataclass(frozen=True)
class FileState:
    """What is at a path: absent, a regular file (content, mode) or a symbolic link."""

    kind: str  # "absent", "file", "link" (or "dir", "other": never written, only reported)
    content: str = ""
    #: the mode to write; None keeps the mode the file has (0o644 for a new one)
    mode: int | None = 0o644
    link: str = ""

    @staticmethod
    def absent() -> FileState:
        return FileState("absent")

    def describe(self) -> str:
        if self.kind == "file":
            return "a file" if self.mode is None else f"a file (mode {self.mode:04o})"
        if self.kind == "link":
            return f"a link to {self.link}"
        return self.kind if self.kind == "absent" else f"a {self.kind}"


def read_file_state(host: Host, path: str) -> FileState:
    """What is at *path* now, a file's content and mode, to be put back exactly."""
    kind = host.kind(path, follow=False)
    if kind is None:
        return FileState.absent()
    if kind == "link":
        return FileState("link", link=host.readlink(path) or "")
    if kind == "file":
        return FileState("file", content=host.read_text(path, default=""), mode=host.file_mode(path))
    return FileState(kind)


def _now(x: Exec, path: str) -> FileState:
    return read_file_state(x.host, path)


def _put(x: Exec, path: str, want: FileState) -> None:
    """Make *path* be *want* (content compared, not mode: the mode follows the write)."""
    now = _now(x, path)
    if want.kind == "absent":
        if now.kind != "absent":
            x.host.unlink(path)
    elif want.kind == "link":
        if now.kind != "link" or now.link != want.link:
            x.host.write_link(path, want.link)
    elif now.kind != "file" or now.content != want.content:
        x.host.write_file(path, want.content, want.mode, makedirs=True)


def _same(now: FileState, want: FileState) -> bool:
    if now.kind != want.kind:
        return False
    return now.link == want.link if want.kind == "link" else now.content == want.content


@dataclass
class SetFile(Step):
    """Make *path* a file with *content* (or a link to *link*, or nothing: *remove*), from
    what it was when planned (*before*); verified by reading it back, undone by putting
    *before* back."""

    path_: str
    after: FileState
    before: FileState
    #: also keep a copy of the old content at PATH + this suffix (the GRUB file's backup)
    backup_suffix: str = ""
    action = "file"

    @property
    def path(self) -> str:
        return self.path_

    @property
    def value(self) -> str:
        return self.after.describe()

    def describe(self) -> str:
        if self.after.kind == "absent":
            return f"remove {self.path_}"
        if self.after.kind == "link":
            return f"link {self.path_} -> {self.after.link}"
        return f"write {self.path_}" + ("" if self.after.mode is None else f" (mode {self.after.mode:04o})")

    def expectation(self) -> str:
        return f"{self.path_} is {self.after.describe()}" + (" with the new content" if self.after.kind == "file" else "")

    def do(self, x: Exec) -> None:
        now = _now(x, self.path_)
        if now.kind not in ("absent", "file", "link"):
            raise InvalidInput(f"{self.path_} is {now.describe()}, not a regular file; refusing to replace it")
        if self.backup_suffix and self.before.kind == "file":
            backup = self.path_ + self.backup_suffix
            x.memo[id(self)] = _now(x, backup)  # an older backup, put back on undo
            x.host.write_file(backup, self.before.content, 0o600, action="write the backup")
        _put(x, self.path_, self.after)

    def verify(self, x: Exec) -> None:
        now = _now(x, self.path_)
        if not _same(now, self.after):
            raise VerifyFailed(f"wanted {self.expectation()}, but it is {now.describe()}",
                               desired=self.after.describe(), current=now.describe())

    def undo(self, x: Exec) -> None:
        _put(x, self.path_, self.before)
        old_backup = x.memo.get(id(self))
        if isinstance(old_backup, FileState) and old_backup.kind in ("absent", "file", "link"):
            _put(x, self.path_ + self.backup_suffix, old_backup)


@dataclass
class RunProgram(Step):
    """Run a program that makes changed files take effect; a non-zero exit fails the step.

    Undone by running it again once every file step before it was undone (the generated
    state then follows the files put back)."""

    argv: tuple[str, ...]
    timeout: float = 600
    action = "run"

    @property
    def value(self) -> str:
        return shlex.join(self.argv)

    def describe(self) -> str:
        return f"run {self.value}"

    def do(self, x: Exec) -> None:
        # argv: fixed commands (boot/installer.py, boot/cmdline.py: no word from data can start with '-')
        rc, out = x.host.run(list(self.argv), timeout=self.timeout)
        x.memo[id(self)] = (rc, out[-2000:])
        if rc != 0:
            tail = out.strip().splitlines()[-1] if out.strip() else "no output"
            raise KernelError(f"{self.value} failed (exit {rc}): {tail}")

    def undo(self, x: Exec) -> None:
        if id(self) in x.memo:
            # argv: the same fixed command, once more
            x.after_rollback(self.value, lambda: x.host.run(list(self.argv), timeout=self.timeout))
