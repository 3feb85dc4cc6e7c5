"""Applicants' status links (SPEC §10): ``{[web] public_url}/apply/status/{token}``.

A link carries a random token (256 bits, URL-safe), never a guessable reference. Only
its SHA-256 is stored, in the ``tokens`` table with purpose ``status`` (the table was
made for the public pages' links too): a copy of the database opens no application's
page. The message that hands a link out holds it in the outbox until the SMTP server
accepts it (or it is given up), and no longer (``notifications.LINK_KEYS``). A link
expires :data:`LIFETIME` after it was made and can be revoked. A plain hash suffices
where a password needs Argon2: the token has 256 random bits, there is nothing to guess.

Both functions work inside the caller's transaction (a :class:`sqlmodel.Session`, e.g.
``Tx.session``), so a link is made in the same commit as the event or message that
hands it out (issue 18's "received" notification). Neither function commits.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Table, select, update

from workflow.store import Token

if TYPE_CHECKING:
    from sqlmodel import Session

#: The ``tokens.purpose`` of a status link.
PURPOSE = "status"
#: How long a status link opens its page: an application's whole course (review,
#: the Commission's signature, the profile) fits in well under a year.
LIFETIME = timedelta(days=365)
#: Random bytes per token (43 URL-safe characters).
TOKEN_BYTES = 32
#: The longest token :func:`resolve` hashes; anything longer is no token of ours.
MAX_TOKEN_CHARS = 128


#: The ``tokens`` table, for Core statements (typed columns, no ORM unit of work).
_TOKENS: Table = Token.metadata.tables["tokens"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now(now: datetime | None) -> datetime:
    moment = now or datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def issue(session: Session, application_id: int, *, now: datetime | None = None) -> str:
    """Create a random token (stored hashed, with expiry); return the raw token."""
    moment = _now(now)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        Token(
            purpose=PURPOSE,
            token_sha256=_digest(token),
            application_id=application_id,
            created_at=moment,
            expires_at=moment + LIFETIME,
        )
    )
    session.flush()
    return token


def resolve(session: Session, token: str, *, now: datetime | None = None) -> int | None:
    """The application a live (unexpired, unrevoked) status link opens, else ``None``.

    Reads only: opening a link (or a mail scanner opening it) changes nothing.
    """
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    # Core statements on the session's own connection: they see and join its transaction.
    row = (
        session.connection()
        .execute(
            select(_TOKENS.c.application_id, _TOKENS.c.expires_at, _TOKENS.c.revoked_at).where(
                _TOKENS.c.token_sha256 == _digest(token), _TOKENS.c.purpose == PURPOSE
            )
        )
        .first()
    )
    if row is None or row.application_id is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= _now(now):
        return None
    application_id: int = row.application_id
    return application_id


def revoke(session: Session, application_id: int, *, now: datetime | None = None) -> int:
    """Revoke every live status link of an application; return how many."""
    result = session.connection().execute(
        update(_TOKENS)
        .where(
            _TOKENS.c.purpose == PURPOSE,
            _TOKENS.c.application_id == application_id,
            _TOKENS.c.revoked_at.is_(None),
        )
        .values(revoked_at=_now(now))
    )
    return int(result.rowcount or 0)
