"""Status links: random tokens stored only as their hash, expiring, revocable, read-only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from workflow import status_links
from workflow.states import State
from workflow.status_links import _TOKENS
from workflow.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store at the current schema on a fresh database."""
    store = Store(database_url)
    store.ensure_schema()
    yield store
    store.close()


def _application(store: Store) -> int:
    with store.tx() as tx:
        app = tx.new_application(state=State.RECEIVED, eoi_sha256="b" * 64, org_name="Links")
        assert app.id is not None
        return app.id


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_a_link_opens_its_application_and_only_its_hash_is_stored(store: Store) -> None:
    """issue() returns a random token; the database holds its SHA-256, never the token."""
    app_id = _application(store)
    with store.tx() as tx:
        token = status_links.issue(tx.session, app_id, now=NOW)
        other = status_links.issue(tx.session, app_id, now=NOW)
    assert token != other and len(token) >= 43
    with store.tx() as tx:
        assert status_links.resolve(tx.session, token, now=NOW) == app_id
        rows = tx.session.connection().execute(select(_TOKENS.c.token_sha256)).scalars().all()
    assert hashlib.sha256(token.encode()).hexdigest() in rows
    assert token not in rows


def test_a_link_expires(store: Store) -> None:
    """A link opens its page until LIFETIME has passed, then never again."""
    app_id = _application(store)
    with store.tx() as tx:
        token = status_links.issue(tx.session, app_id, now=NOW)
    late = NOW + status_links.LIFETIME
    with store.tx() as tx:
        assert status_links.resolve(tx.session, token, now=late - timedelta(seconds=1)) == app_id
        assert status_links.resolve(tx.session, token, now=late) is None


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "A" * 5000, "../../etc/passwd"])
def test_unknown_tokens_open_nothing(store: Store, token: str) -> None:
    """Made-up tokens, of any length, resolve to nothing."""
    _application(store)
    with store.tx() as tx:
        assert status_links.resolve(tx.session, token, now=NOW) is None


def test_revoked_links_open_nothing_and_other_purposes_are_not_links(store: Store) -> None:
    """revoke() closes an application's links; a token of another purpose is no status link."""
    app_id = _application(store)
    with store.tx() as tx:
        token = status_links.issue(tx.session, app_id, now=NOW)
        assert status_links.revoke(tx.session, app_id, now=NOW) == 1
        tx.add_token(purpose="api", token_sha256=hashlib.sha256(b"api").hexdigest(),
                     application_id=app_id)  # fmt: skip
    with store.tx() as tx:
        assert status_links.resolve(tx.session, token, now=NOW) is None
        assert status_links.resolve(tx.session, "api", now=NOW) is None


def test_issue_joins_the_callers_transaction(store: Store) -> None:
    """A link issued in a transaction that rolls back does not exist."""
    app_id = _application(store)
    token = ""
    with pytest.raises(RuntimeError), store.tx() as tx:
        token = status_links.issue(tx.session, app_id, now=NOW)
        raise RuntimeError("the event that hands it out failed")
    with store.tx() as tx:
        assert status_links.resolve(tx.session, token, now=NOW) is None
