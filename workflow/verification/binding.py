"""Bind a received file to the consent issued here that it extends (SPEC 7 rule 1), with
the work per file bounded (SPEC 7 rule 8).

The candidate ends of the issued consent are the ends of the file's revisions, found from
its cross-reference sections (the ``%%EOF`` that follows each one), not every ``%%EOF`` in
the file: a file of 10,000 ``%%EOF`` lines has one revision or none. The candidates are
hashed in one pass (each digest a copy of the running hash), so the bytes hashed never
exceed the file's size, and ``lookup`` is asked at most three times per revision.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from workflow.signature_report import IssuedConsent, Lookup
from workflow.verification.limits import LimitExceededError, Limits
from workflow.verification.pdf import open_reader, xref_section_ends

_EOF = b"%%EOF"
_EOLS = (b"\r\n", b"\r", b"\n")


def precheck(data: bytes, limits: Limits) -> None:
    """Raise :class:`LimitExceededError` for a file too large or with too many revisions,
    before anything parses it (a ``startxref`` keyword ends every revision)."""
    if len(data) > limits.max_bytes:
        raise LimitExceededError(f"it has {len(data)} bytes; the limit is {limits.max_bytes}")
    marks = data.count(b"startxref")
    if marks > limits.max_revisions:
        raise LimitExceededError(
            f"it has {marks} revision markers; the limit is {limits.max_revisions} revisions"
        )


def revision_ends(data: bytes, xref_ends: Iterable[int]) -> list[int]:
    """Where each revision ends: the ``%%EOF`` after its cross-reference data
    (``xref_ends``), with any trailing end-of-line variant."""
    ends: set[int] = set()
    for start in xref_ends:
        at = data.find(_EOF, start)
        if at < 0:
            continue
        end = at + len(_EOF)
        ends.add(end)
        for eol in _EOLS:
            if data.startswith(eol, end):
                ends.add(end + len(eol))
    return sorted(ends)


def scanned_ends(data: bytes, limits: Limits) -> list[int]:
    """For a file pyHanko cannot read: every ``%%EOF`` end, or none if there are more than
    the limit allows (such a file is rejected as unusable anyway)."""
    positions: list[int] = []
    at = data.find(_EOF)
    while at >= 0:
        if len(positions) >= limits.max_revisions:
            return []
        positions.append(at)
        at = data.find(_EOF, at + len(_EOF))
    return revision_ends(data, positions)


def bind_ends(data: bytes, ends: list[int], lookup: Lookup) -> IssuedConsent | None:
    """The issued consent whose exact bytes are ``data[:end]`` for one of ``ends``, the
    longest one if several match. Hashes ``data`` once, whatever the number of ends."""
    digests: list[tuple[int, str]] = []
    running = hashlib.sha256()
    done = 0
    for end in sorted(ends):
        running.update(memoryview(data)[done:end])
        done = end
        digests.append((end, running.copy().hexdigest()))
    for end, digest in reversed(digests):
        issued = lookup(digest)
        if issued is not None and issued.data == data[:end]:
            return issued
    return None


def bind(data: bytes, lookup: Lookup, limits: Limits | None = None) -> IssuedConsent | None:
    """Return the issued consent whose exact bytes start ``data`` (SPEC §7 rule 1).

    Every end of a revision (``%%EOF`` with any trailing end-of-line variant) is a
    candidate; the longest prefix that ``lookup`` knows by SHA-256 and that matches
    byte for byte binds the file. Raises :class:`LimitExceededError` past ``limits``.
    """
    limits = limits or Limits()
    precheck(data, limits)
    try:
        reader: Any = open_reader(data, strict=False, limits=limits)
    except Exception:
        return bind_ends(data, scanned_ends(data, limits), lookup)
    return bind_ends(data, file_revision_ends(data, reader, limits), lookup)


def file_revision_ends(data: bytes, reader: Any, limits: Limits) -> list[int]:
    """Where each revision of the file ``reader`` read ends (from its xref sections)."""
    total = reader.xrefs.total_revisions
    if total > limits.max_revisions:
        raise LimitExceededError(f"it has {total} revisions; the limit is {limits.max_revisions}")
    return revision_ends(data, xref_section_ends(reader))
