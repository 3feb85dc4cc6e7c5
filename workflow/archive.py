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
import unicodedata
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry (a rename or a new file) to disk."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` so that it is either absent, or complete and on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
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


class Archive:
    """Every received and issued file, stored once under ``<sha256[:2]>/<sha256>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the bytes with this SHA-256 live."""
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (idempotent) and return its SHA-256."""
        sha256 = hashlib.sha256(data).hexdigest()
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


def unique_path(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name-2``, ``name-3``… if taken."""
    candidate = directory / name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    counter = 2
    while candidate.exists() or candidate.with_name(candidate.name + ".error.json").exists():
        candidate = directory / (f"{stem}-{counter}.{suffix}" if suffix else f"{stem}-{counter}")
        counter += 1
    return candidate
