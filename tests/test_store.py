"""The store on SQLite and PostgreSQL: schema by Alembic, aware timestamps, the event chain."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, text

from workflow.states import State, TransitionError
from workflow.store import SchemaError, Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store at the current schema on a fresh database."""
    store = Store(database_url)
    store.ensure_schema()
    yield store
    store.close()


def _application(store: Store, name: str = "Network") -> str:
    with store.tx() as tx:
        app = tx.new_application(state=State.RECEIVED, eoi_sha256="a" * 64, org_name=name)
        tx.append_event("received", actor="system", reference=app.reference)
        tx.move(app, State.AWAITING_REVIEW, actor="system", reason="valid")
        assert app.reference is not None
        return app.reference


def test_new_database_is_created_at_head(database_url: str) -> None:
    """ensure_schema creates an empty database at the head revision."""
    store = Store(database_url)
    assert store.current_revision() is None
    store.ensure_schema()
    assert store.current_revision() == store.head_revision()
    store.close()


def test_older_revision_is_refused_with_the_command_to_run(store: Store) -> None:
    """A database at an older revision is refused, naming `consentflow db upgrade`."""
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(SchemaError, match="consentflow db upgrade"):
        store.ensure_schema()


def test_foreign_database_is_refused(database_url: str) -> None:
    """A database with tables but no consentflow revision is never migrated blindly."""
    store = Store(database_url)
    with store.engine.begin() as connection:
        connection.execute(text("CREATE TABLE stranger (id INTEGER)"))
    with pytest.raises(SchemaError, match="no consentflow schema revision"):
        store.ensure_schema()
    store.close()


def test_references_and_aware_timestamps(store: Store) -> None:
    """References are SUP-YYYY-NNNNN; timestamps come back timezone-aware UTC."""
    reference = _application(store)
    year = datetime.now(UTC).year
    assert reference == f"SUP-{year}-00001"
    app = store.application(reference)
    assert app is not None
    assert app.received_at.tzinfo is not None
    assert app.received_at.utcoffset() is not None
    assert all(event.at.tzinfo is not None for event in store.events())


def test_naive_datetime_is_refused(database_url: str) -> None:
    """A naive clock is a bug: the store refuses to write its times."""
    store = Store(database_url, clock=datetime.now)
    store.ensure_schema()
    with pytest.raises(Exception, match="naive datetime"), store.tx() as tx:
        tx.new_application(state=State.RECEIVED, eoi_sha256="b" * 64)
    store.close()


def test_transition_table_is_enforced(store: Store) -> None:
    """A move the state table does not allow raises and records nothing."""
    reference = _application(store)
    before = len(store.events())
    with pytest.raises(TransitionError, match="cannot become signed"), store.tx() as tx:
        app = tx.get_application(reference)
        assert app is not None
        tx.move(app, State.SIGNED, actor="system")
    assert len(store.events()) == before
    assert store.application(reference).state == State.AWAITING_REVIEW  # type: ignore[union-attr]


def test_reads_are_not_held_back_by_an_open_write(store: Store) -> None:
    """The office's reads answer while a worker's transaction is open, and see only what
    was committed: on SQLite they read a snapshot instead of queueing for the write lock."""
    reference = _application(store)
    inside, release = threading.Event(), threading.Event()

    def write() -> None:
        with store.tx() as tx:
            tx.append_event("note", actor="system", reference=reference)  # takes the lock
            inside.set()
            release.wait(60)

    writer = threading.Thread(target=write)
    writer.start()
    seen: dict[str, object] = {}

    def read() -> None:
        seen["applications"] = [app.reference for app in store.applications()]
        seen["events"] = [event.kind for event in store.events(reference=reference)]
        seen["known"] = store.known_document("f" * 64)
        seen["chain"] = store.verify_chain().ok

    try:
        assert inside.wait(10)
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "a read waited for the writer's transaction"
    finally:
        release.set()
        writer.join()
    assert seen == {
        "applications": [reference],
        "events": ["received", "state"],
        "known": None,
        "chain": True,
    }
    assert [event.kind for event in store.events(reference=reference)][-1] == "note"


def test_audit_verify_passes_on_untouched_history(store: Store) -> None:
    """An untouched chain verifies and counts every event."""
    _application(store, "One")
    _application(store, "Two")
    result = store.verify_chain()
    assert result.ok
    assert result.events == 4


def test_audit_verify_names_the_edited_event(store: Store) -> None:
    """Editing one row's reason in the database is reported at exactly that event."""
    _application(store, "One")
    _application(store, "Two")
    victim = store.events()[2]
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE events SET reason = 'nothing to see' WHERE id = :id"), {"id": victim.id}
        )
    result = store.verify_chain()
    assert not result.ok
    assert result.bad_event_id == victim.id
    assert "changed" in result.problem


def test_audit_verify_detects_a_removed_event(store: Store) -> None:
    """Deleting a row breaks the link of the next one."""
    _application(store, "One")
    _application(store, "Two")
    events = store.events()
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM events WHERE id = :id"), {"id": events[1].id})
    result = store.verify_chain()
    assert not result.ok
    assert result.bad_event_id == events[2].id


def test_audit_verify_detects_a_removed_last_event(store: Store) -> None:
    """Deleting the newest row is caught by the chain head."""
    _application(store, "One")
    last = store.events()[-1]
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM events WHERE id = :id"), {"id": last.id})
    assert not store.verify_chain().ok


def test_a_ledger_row_is_finished_by_its_status_alone(store: Store) -> None:
    """`item_status` and `finish`, the processors' Core statements, read and write the
    same row that `get_item` loads."""
    with store.tx() as tx:
        item_id = tx.claim_item(
            folder="signed", original_name="a.pdf", claimed_name="a.pdf", size=3,
            owner="w1", lease_until=datetime(2026, 11, 30, 12, tzinfo=UTC),
        )  # fmt: skip
        assert tx.item_status(item_id) == "claimed"
        assert tx.item_status(item_id + 1) is None
    with store.tx() as tx:
        tx.finish(item_id, status="done", outcome="SUP-2026-00001", sha256="b" * 64)
    with store.tx() as tx:
        assert tx.item_status(item_id) == "done"
        item = tx.get_item(item_id, lock=False)
        assert item is not None
        assert (item.status, item.outcome, item.sha256) == ("done", "SUP-2026-00001", "b" * 64)
        assert item.lease_until is None
        assert item.finished_at is not None and item.finished_at.tzinfo is not None


def test_only_a_not_durable_transaction_commits_without_waiting_for_the_disk(
    store: Store,
) -> None:
    """A claim's transaction (``durable=False``) commits without a flush to disk (SQLite
    ``synchronous`` NORMAL = 1, PostgreSQL ``synchronous_commit`` off); every other one,
    on the same pooled connection before and after it, waits for the disk (FULL = 2, on)."""
    sqlite = store.engine.dialect.name == "sqlite"
    ask = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
    flushed, unflushed = (2, 1) if sqlite else ("on", "off")

    def setting(*, durable: bool = True) -> Any:
        with store.tx(durable=durable) as tx:
            return tx.connection.exec_driver_sql(ask).scalar()

    assert [setting(), setting(durable=False), setting(), setting(durable=False)] == [
        flushed,
        unflushed,
        flushed,
        unflushed,
    ]


def test_a_files_lookups_are_one_statement_each(store: Store) -> None:
    """The lookups made for every file in signed/ (a known document, an issued consent) send
    the database their SELECT alone on SQLite: no BEGIN before it, which SQLAlchemy
    executed as a statement of its own; on PostgreSQL nothing changes."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement.split(maxsplit=1)[0].upper())

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert store.known_document("f" * 64) is None
        assert store.issued_record("f" * 64) is None
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    if store.engine.dialect.name == "sqlite":
        assert sent == ["SELECT", "SELECT"]
    else:
        assert sent.count("SELECT") == 2
