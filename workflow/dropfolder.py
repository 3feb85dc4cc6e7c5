"""Entries of a drop folder: what may be taken, and reading it without following a link.

People and scripts put anything in ``inbox/`` and ``signed/``. Only regular files are ever
read: an entry is looked at with ``lstat`` (a link is a link, not what it points to), opened
with ``O_NOFOLLOW | O_NONBLOCK`` (a link swapped in later fails, a FIFO swapped in never
blocks) and checked again on the open descriptor, so the bytes read are the bytes of the
very file that was claimed. A link, FIFO, device or socket is moved as itself; what it
points to is never opened.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workflow.archive import safe_name
from workflow.leases import HOST_TAG

#: Opens a file for reading and returns its descriptor (a boundary tests may replace).
Opener = Callable[[Path], int]

_HEAD_BYTES = 1024
_TAIL_BYTES = 2048


def open_no_follow(path: Path) -> int:
    """Open ``path`` read-only without following a link and without blocking on a FIFO."""
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)


def kind_of(mode: int) -> str:
    """What an entry is, in words for a log line or an error report."""
    kinds = (
        (stat.S_ISREG, "regular file"),
        (stat.S_ISLNK, "symbolic link"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    )
    return next((name for test, name in kinds if test(mode)), "special file")


class NotAFileError(Exception):
    """The entry is not a regular file (``kind`` says what it is); it is never opened."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        super().__init__(f"{path.name} is a {kind}, not a regular file")


class TooLargeError(Exception):
    """The file is larger than the limit; it was not read."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"{size} bytes")


@dataclass(frozen=True)
class Contents:
    """The bytes of a regular file and their SHA-256."""

    data: bytes
    sha256: str


def read_regular(path: Path, *, limit: int, opener: Opener = open_no_follow) -> Contents:
    """Read a regular file of at most ``limit`` bytes, never following a link.

    Raises `NotAFileError` (not opened at all), `TooLargeError`, or the ``OSError`` of the open or
    the read (``PermissionError`` for a file this user may not read).
    """
    before = os.lstat(path)
    if not stat.S_ISREG(before.st_mode):
        raise NotAFileError(path, kind_of(before.st_mode))
    if before.st_size > limit:
        raise TooLargeError(before.st_size)
    try:
        fd = opener(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # replaced by a link since the lstat
            raise NotAFileError(path, "symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            raise NotAFileError(path, kind_of(st.st_mode) + " put in place of the file")
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise TooLargeError(total)  # it grew after the lstat
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return Contents(data, hashlib.sha256(data).hexdigest())


def sha256_of(path: Path, *, opener: Opener = open_no_follow) -> str | None:
    """SHA-256 of a regular file, streamed; ``None`` when it is not one or cannot be read."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = opener(path)
    except OSError:
        return None
    digest = hashlib.sha256()
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        while chunk := os.read(fd, 65536):
            digest.update(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return digest.hexdigest()


def looks_whole(path: Path, size: int, *, opener: Opener = open_no_follow) -> bool:
    """False for a file that may still be being written: empty, or a PDF header without
    a ``%%EOF`` trailer yet.

    A file that does not start like a PDF is whole as far as anyone can tell (it will fail
    as not_pdf): a writer writes the header first. So is a file that cannot be opened: it
    will fail as unreadable, and waiting would not make it readable.
    """
    if size == 0:
        return False
    try:
        fd = opener(path)
    except OSError:
        return True
    try:
        head = os.pread(fd, _HEAD_BYTES, 0)
        if b"%PDF-" not in head:
            return True
        return b"%%EOF" in os.pread(fd, _TAIL_BYTES, max(0, size - _TAIL_BYTES))
    except OSError:
        return True
    finally:
        os.close(fd)


def claim_name(original: str) -> str:
    """The name a claimed file gets in ``.processing/``: ``<time ns hex>.<pid>.<host>__<name>``.

    At most about 232 bytes: the name part is cut in bytes (`safe_name`), so a long name
    in any script still fits the 255 bytes a file system allows.
    """
    return f"{time.time_ns():x}.{os.getpid()}.{HOST_TAG}__{safe_name(original)}"


def claimant(name: str) -> tuple[int, int, str] | None:
    """``(claim time ns, pid, host tag)`` of a `claim_name`; ``None`` if it is not one."""
    stamp, _, _ = name.partition("__")
    parts = stamp.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    try:
        return int(parts[0], 16), int(parts[1]), parts[2]
    except ValueError:
        return None
