"""The most work one received file may cause (SPEC 7 rule 8)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The most work one received file may cause (SPEC 7 rule 8).

    ``max_bytes``: the largest file verified (the intake's own limit is the same 20 MB).
    ``max_revisions``: revisions (cross-reference sections) in one file; an issued consent
    has one or two, the Commission adds one and validation data a few more.
    ``max_decoded``: bytes decoded from compressed streams, per stream and per document
    (pyHanko's limits), and for the page content joined when two revisions are compared.
    """

    max_bytes: int = 20 * MIB
    max_revisions: int = 32
    max_decoded: int = 64 * MIB


class LimitExceededError(Exception):
    """The file asks for more work than :class:`Limits` allows; the message says which."""
