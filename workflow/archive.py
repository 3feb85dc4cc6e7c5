"""Durable, private file operations: the content-addressed archive and atomic writes.

A file is durable only when its bytes and its directory entry have reached the
disk: write to a temporary name, fsync the file, rename, fsync the directory. The
engine commits a database row that names a file only after this returns, so a
crash never leaves a row pointing at a half-written file (intake.md §5 rule 14).

What the service writes holds applicants' data, so it is private by default (SPEC §9):
files 0600 and folders 0700 whatever the umask, or 0640/0750 with one group when an
:class:`Access` names it (``[files] group``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import stat
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Access:
    """Who may read what the service writes in one folder: its user only, or one group too."""

    gid: int | None = None

    @property
    def file_mode(self) -> int:
        """0600, or 0640 with a group."""
        return 0o640 if self.gid is not None else 0o600

    @property
    def dir_mode(self) -> int:
        """0700, or 0750 with a group."""
        return 0o750 if self.gid is not None else 0o700


#: Readable by the service's user only.
PRIVATE = Access()


def make_dir(path: Path, access: Access = PRIVATE) -> None:
    """Create ``path`` and any missing parents with ``access``'s mode; leave existing ones be.

    The mode is set again after ``mkdir``, so that the umask cannot take a group's bits
    away; a folder that exists keeps the mode its owner gave it.
    """
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current):
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=access.dir_mode)
        except FileExistsError:
            continue  # another worker made it first: its mode is the same as ours
        os.chmod(folder, access.dir_mode)
        if access.gid is not None:
            os.chown(folder, -1, access.gid)


def restrict(path: Path, access: Access) -> None:
    """Give a regular file moved into a private folder ``access``'s mode, when we own it.

    A file dropped by another user keeps its owner and mode (only its owner may change
    them); the private folder around it is what keeps others out.
    """
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return
        os.chmod(path, access.file_mode, follow_symlinks=False)
        if access.gid is not None:
            os.chown(path, -1, access.gid, follow_symlinks=False)
    except OSError:
        return  # best effort: the folder's mode is the protection that matters


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename or a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Suffix of the temporary files of `write_atomic` (hidden: the watcher ignores dotfiles).
TEMP_SUFFIX = ".cf-tmp"


def write_atomic(path: Path, data: bytes, access: Access = PRIVATE) -> None:
    """Write ``path`` so that it is either absent, or complete, on disk and private."""
    make_dir(path.parent, access)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, access.file_mode)
    try:
        with open(fd, "wb", closefd=True) as handle:
            os.fchmod(fd, access.file_mode)  # the umask may have narrowed a group's bits
            if access.gid is not None:
                os.fchown(fd, -1, access.gid)
            handle.write(data)
            handle.flush()
            os.fsync(fd)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temp_files(root: Path, *, older_than_s: float) -> int:
    """Delete `write_atomic` temporaries under ``root`` that a killed process left behind.

    Only files older than ``older_than_s`` go: a temporary that young may belong to
    another worker writing right now. Returns how many were removed.
    """
    removed = 0
    cutoff = time.time() - older_than_s
    for tmp in root.rglob(f".*{TEMP_SUFFIX}"):
        try:
            st = os.lstat(tmp)
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # removed by another worker's sweep
    return removed


class Archive:
    """Every received and issued file, stored once under ``<sha256[:2]>/<sha256>``.

    Bytes whose recording may still lose a race (an issued consent: two workers, or a
    worker and the office, may issue for one application at once) go in as *drafts*:
    `draft` writes them under ``.drafts/``, `commit_draft` links them into place once
    the caller has won, `discard` drops them when it lost, and `sweep_drafts` removes
    what a killed process left, so that every file in the archive belongs to a record.
    """

    def __init__(self, root: Path, access: Access = PRIVATE) -> None:
        self.root = root
        self.access = access

    def path(self, sha256: str) -> Path:
        """Where the bytes with this SHA-256 live."""
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, *, sha256: str | None = None) -> str:
        """Store ``data`` durably (idempotent) and return its SHA-256.

        ``sha256``, when the caller has just computed it, saves hashing ``data`` again.
        """
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        if target.is_file() and target.stat().st_size == len(data):
            return sha256
        write_atomic(target, data, self.access)
        return sha256

    def get(self, sha256: str) -> bytes:
        """The archived bytes; raises ``FileNotFoundError`` if absent."""
        return self.path(sha256).read_bytes()

    # -- drafts ---------------------------------------------------------------------

    @property
    def drafts(self) -> Path:
        """The folder of drafts (hidden: never a content-addressed entry)."""
        return self.root / ".drafts"

    def draft(self, data: bytes) -> Draft:
        """Write ``data`` durably as a draft; nothing in the archive proper changes yet."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.drafts / f"{sha256}.{secrets.token_hex(4)}"
        write_atomic(path, data, self.access)
        return Draft(sha256, len(data), path)

    def commit_draft(self, draft: Draft) -> None:
        """Link a draft into its place in the archive, durably; the draft stays until
        `discard` (the caller's record commits in between: see `sweep_drafts`)."""
        target = self.path(draft.sha256)
        make_dir(target.parent, self.access)
        with contextlib.suppress(FileExistsError):
            # Then the same bytes were archived before (entries are only ever written whole).
            os.link(draft.path, target)
        fsync_dir(target.parent)

    def discard(self, draft: Draft) -> None:
        """Remove a draft (committed and recorded, or lost)."""
        draft.path.unlink(missing_ok=True)

    def sweep_drafts(self, *, older_than_s: float, recorded: Callable[[str], bool]) -> int:
        """Finish drafts a killed process left; return how many.

        A draft older than ``older_than_s`` belongs to no live issuer (an issue takes
        seconds; pass far more than any transaction may wait). If ``recorded``
        says a row names its bytes, the record won and only the draft goes; otherwise
        the record never committed, and its archive link (if made) goes too.
        """
        cutoff = time.time() - older_than_s
        swept = 0
        try:
            entries = list(os.scandir(self.drafts))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry.name.startswith("."):
                continue  # a write_atomic temporary: remove_stale_temp_files' business
            sha256, _, _ = entry.name.partition(".")
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
                if not recorded(sha256):
                    linked = self.path(sha256)
                    if linked.is_file() and os.path.samefile(linked, entry.path):
                        linked.unlink()
                        fsync_dir(linked.parent)
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # another worker's sweep
            swept += 1
        if swept:
            fsync_dir(self.drafts)
        return swept


@dataclass(frozen=True)
class Draft:
    """Bytes written by `Archive.draft`, not yet part of the archive."""

    sha256: str
    length: int
    path: Path


_UNSAFE = re.compile(r"[^\w.\- ]+")

#: Bytes kept of a name: room for a claim prefix (about 32 bytes), a ``-NN`` counter and
#: ``.error.json`` within the 255 bytes most file systems allow.
NAME_BYTES = 200


def safe_name(name: str, *, limit: int = NAME_BYTES) -> str:
    """A file name from an untrusted one: no directories, no control characters, bounded.

    Keeps letters of every script (applicants name files in their own language) and
    the ``.pdf`` suffix. ``limit`` counts UTF-8 bytes, as file systems do: 120 Greek
    letters are 240 bytes, and a claim prefix or ``.error.json`` must still fit in 255.
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).strip(" .") or "file"
    stem, dot, suffix = name.rpartition(".")
    if dot and len(suffix.encode()) <= 10:
        return _cut(stem, limit - len(suffix.encode()) - 1) + "." + suffix
    return _cut(name, limit)


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode()[:limit].decode(errors="ignore")


def unique_path(
    directory: Path, name: str, *, reusable: Callable[[Path], bool] | None = None
) -> Path:
    """``directory/name``, or ``name-2``, ``name-3``… if taken.

    A name is taken by a file of that name or by its ``.error.json`` report, unless
    ``reusable`` says the report is the caller's own (the file itself still absent).
    """
    candidate = directory / name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    counter = 2
    while os.path.lexists(candidate) or (
        os.path.lexists(candidate.with_name(candidate.name + ".error.json"))
        and not (reusable is not None and reusable(candidate))
    ):
        candidate = directory / (f"{stem}-{counter}.{suffix}" if suffix else f"{stem}-{counter}")
        counter += 1
    return candidate
