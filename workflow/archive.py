"""Durable file operations: the content-addressed archive and atomic writes.

A file is durable only when its bytes and its directory entry have reached the
disk: write to a temporary name, fsync the file, rename, fsync the directory. The
engine commits a database row that names a file only after this returns, so a
crash never leaves a row pointing at a half-written file (intake.md §5 rule 14).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename or a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Suffix of the temporary files of `write_atomic` (hidden: the watcher ignores dotfiles).
TEMP_SUFFIX = ".cf-tmp"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that it is either absent, or complete and on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
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
            if tmp.is_file() and tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # removed by another worker's sweep
    return removed


class Archive:
    """Every received and issued file, stored once under ``<sha256[:2]>/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

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
        write_atomic(target, data)
        return sha256

    def get(self, sha256: str) -> bytes:
        """The archived bytes; raises ``FileNotFoundError`` if absent."""
        return self.path(sha256).read_bytes()


_UNSAFE = re.compile(r"[^\w.\- ]+")


def safe_name(name: str, *, limit: int = 120) -> str:
    """A file name from an untrusted one: no directories, no control characters, bounded.

    Keeps letters of every script (applicants name files in their own language) and
    the ``.pdf`` suffix.
    """
    name = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    name = _UNSAFE.sub("_", name).strip(" .") or "file"
    stem, dot, suffix = name.rpartition(".")
    if dot and len(suffix) <= 10:
        return stem[: limit - len(suffix) - 1] + "." + suffix
    return name[:limit]


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
    while candidate.exists() or (
        candidate.with_name(candidate.name + ".error.json").exists()
        and not (reusable is not None and reusable(candidate))
    ):
        candidate = directory / (f"{stem}-{counter}.{suffix}" if suffix else f"{stem}-{counter}")
        counter += 1
    return candidate
