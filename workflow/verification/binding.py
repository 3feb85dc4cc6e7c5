"""Bind a received file to the consent issued here that it extends (SPEC 7 rule 1)."""

from __future__ import annotations

import hashlib
import re

from workflow.signature_report import (
    IssuedConsent,
    Lookup,
)

_EOF = re.compile(rb"%%EOF")


def bind(data: bytes, lookup: Lookup) -> IssuedConsent | None:
    """Return the issued consent whose exact bytes start ``data`` (SPEC §7 rule 1).

    Every end of a revision (``%%EOF`` with any trailing end-of-line variant) is a
    candidate; the longest prefix that ``lookup`` knows by SHA-256 and that matches
    byte for byte binds the file.
    """
    for end in sorted(_revision_ends(data), reverse=True):
        prefix = data[:end]
        issued = lookup(hashlib.sha256(prefix).hexdigest())
        if issued is not None and issued.data == prefix:
            return issued
    return None


def _revision_ends(data: bytes) -> set[int]:
    ends: set[int] = set()
    for match in _EOF.finditer(data):
        end = match.end()
        ends.add(end)
        for eol in (b"\r\n", b"\r", b"\n"):
            if data.startswith(eol, end):
                ends.add(end + len(eol))
    return ends
