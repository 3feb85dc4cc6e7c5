"""Alembic migrations: from an empty database and from every earlier revision with data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlmodel import SQLModel

from workflow.states import State
from workflow.store import GENESIS, KEYED_SINCE, REKEY_KIND, EventRow, Store, event_hash


def _revisions() -> list[str]:
    store = Store("sqlite://")
    script = ScriptDirectory.from_config(store.alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


EARLIER = _revisions()[:-1]
#: Revisions whose events were chained with plain SHA-256 (before the audit key).
PLAIN = _revisions()[: _revisions().index(KEYED_SINCE)]


def test_there_is_an_earlier_revision_to_test() -> None:
    """The upgrade-with-data tests below are not vacuous."""
    assert EARLIER


def test_empty_database_upgrades_to_a_schema_matching_the_models(database_url: str) -> None:
    """`db upgrade` on an empty database gives exactly the tables the code declares."""
    store = Store(database_url)
    store.upgrade()
    assert store.current_revision() == store.head_revision()
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []
    store.close()


def plain_event(store: Store, reference: str | None, reason: str) -> str:
    """Append an event as consentflow did before the audit key: plain SHA-256, written
    with SQL that every earlier schema accepts. Returns its hash."""
    with store.engine.begin() as connection:
        last_hash, count = connection.execute(
            text("SELECT last_hash, count FROM chain_head WHERE id = 1")
        ).one()
        row = EventRow(
            at=datetime.now(UTC), reference=reference, actor="system", kind="note",
            reason=reason, data={}, prev_hash=last_hash, hash="",
        )  # fmt: skip
        row.hash = event_hash(row)
        values = row.model_dump(exclude={"id"})
        connection.execute(EventRow.__table__.insert(), values)  # type: ignore[attr-defined]
        connection.execute(
            text("UPDATE chain_head SET last_hash = :h, count = :n WHERE id = 1"),
            {"h": row.hash, "n": count + 1},
        )
    return row.hash


def _seed(store: Store) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO applications (reference, state, org_name, org_key, country, lang,"
                " fields, problems, findings, eoi_sha256, received_at, updated_at)"
                " VALUES ('SUP-2026-00001', 'awaiting_review', 'Δίκτυο', 'δίκτυο|GR', 'GR',"
                " 'en', '{\"org_name\": \"Δίκτυο\"}', '[]', '[]', :sha, :now, :now)"
            ),
            {"sha": "a" * 64, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO intake_items (folder, original_name, claimed_name, size, status,"
                " attempts, claimed_at) VALUES ('inbox', 'x.pdf', 'c__x.pdf', 10, 'done', 0, :now)"
            ),
            {"now": now},
        )


@pytest.mark.parametrize("revision", EARLIER)
def test_upgrade_from_earlier_revision_keeps_data(database_url: str, revision: str) -> None:
    """A database at an earlier revision with rows in it upgrades and stays usable."""
    store = Store(database_url)
    store.upgrade(revision)
    _seed(store)
    # An event as the code of that revision wrote it; from KEYED_SINCE on, only a keyed
    # consentflow writes events, so the seeded rows have none.
    plain_head = (
        plain_event(store, "SUP-2026-00001", "before upgrade") if revision in PLAIN else None
    )

    with pytest.raises(Exception, match="consentflow db upgrade"):
        store.ensure_schema()
    store.upgrade()

    store.ensure_schema()
    app = store.application("SUP-2026-00001")
    assert app is not None
    assert app.org_name == "Δίκτυο"
    assert app.fields == {"org_name": "Δίκτυο"}
    assert app.received_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    [item] = store.items()
    assert item.source == "folder"
    with store.tx() as tx:
        moved = tx.get_application("SUP-2026-00001")
        assert moved is not None
        tx.move(moved, State.INELIGIBLE, actor="anna", reason="after upgrade")
    assert store.verify_chain().ok
    if plain_head is not None:
        # The plain chain was carried over by a recorded re-key naming where it ended.
        _, rekey, _ = store.events()
        assert rekey.kind == REKEY_KIND
        assert rekey.data["plain_head"] == plain_head != GENESIS
        assert rekey.data["plain_events"] == 1
    else:
        assert [event.kind for event in store.events()] == ["state"]
    store.close()


def test_downgrade_and_upgrade_again(database_url: str) -> None:
    """Every migration can be reverted to the first revision and re-applied."""
    store = Store(database_url)
    store.upgrade()
    _seed(store)
    first = _revisions()[0]
    from alembic import command

    command.downgrade(store.alembic_config(), first)
    assert store.current_revision() == first
    store.upgrade()
    assert store.current_revision() == store.head_revision()
    assert store.application("SUP-2026-00001") is not None
    store.close()


def test_the_read_only_head_is_alembics_head() -> None:
    """The read-only commands find the schema's head from the migration files without
    Alembic (start-up time); it must be the head Alembic computes, merge migrations included."""
    from workflow import readonly

    assert readonly.head_revision() == Store("sqlite://").head_revision()
