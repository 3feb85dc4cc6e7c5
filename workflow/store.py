"""The store: the only module that imports SQLModel (SPEC §5, §9).

Tables: applications, documents (every received and issued file; the bytes live in
``archive/`` by SHA-256), the intake ledger (one row per claimed file), signature
reports, and the append-only event log whose rows each carry the hash of the
previous row. SQLite (WAL) by default, PostgreSQL by URL, same code; the schema is
Alembic's (:mod:`workflow.migrations`).

Work that must be atomic — an application, its document, its events and the ledger
row that says the file is done — happens in one :class:`Tx`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicError
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Engine,
    Index,
    Table,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    text,
    update,
)
from sqlalchemy import select as core_select
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from workflow.audit_key import AuditKey, AuditKeyError, key_from_environment
from workflow.states import State, check_transition

#: Genesis value of the event hash chain.
GENESIS = "0" * 64

#: Kind of the event that carries a plain SHA-256 chain over into the keyed one: the
#: events before it are plain, it and every event after it are HMAC-SHA-256 under the key.
REKEY_KIND = "audit_key"

#: The schema revision from which the chain is keyed: `Store.upgrade` from an older one
#: carries the plain chain over; at this revision or later a head without the key is
#: never carried over (it was reset by someone without the key).
KEYED_SINCE = "0006_i15b"

#: Execution option of the store's read-only connections (see `_make_engine`).
_READ_ONLY = "consentflow_read_only"
#: Execution option of read-only connections that run one statement: on SQLite it runs
#: without BEGIN (a statement alone reads one snapshot), sparing SQLAlchemy's execution
#: of the BEGIN, which was a quarter of such a read's time.
_ONE_STATEMENT = "consentflow_one_statement"
#: Execution option of a write transaction whose commit need not wait for the disk (see
#: `Store.tx`): SQLite's ``synchronous=NORMAL`` for it, PostgreSQL's ``synchronous_commit``
#: off.
_NOT_DURABLE = "consentflow_not_durable"

#: PostgreSQL advisory lock key that serialises schema checks and migrations
#: (the first 8 bytes of SHA-256("consentflow schema"), as a signed 64-bit integer).
_SCHEMA_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"consentflow schema").digest()[:8], "big", signed=True
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return aware UTC datetimes."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_field(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


class Application(SQLModel, table=True):
    """One submission of an EOI and everything that follows from it."""

    __tablename__ = "applications"

    id: int | None = Field(default=None, primary_key=True)
    reference: str | None = Field(default=None, unique=True, index=True)
    state: str = Field(index=True)
    org_name: str = ""
    org_key: str = Field(
        default="", index=True
    )  # casefolded name + country: open-application check
    country: str = ""
    lang: str = "en"
    fields: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    problems: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    findings: list[dict[str, str]] = Field(default_factory=list, sa_type=JSON)
    eoi_sha256: str = Field(index=True)
    issued_sha256: str | None = Field(default=None, index=True)
    issued_length: int | None = None
    signed_sha256: str | None = None
    received_at: datetime = _utc_field()
    updated_at: datetime = _utc_field()


class Document(SQLModel, table=True):
    """A file received or issued; its bytes are ``archive/<sha256[:2]>/<sha256>``."""

    __tablename__ = "documents"

    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(unique=True, index=True)
    kind: str  # eoi | consent | signed
    size: int
    original_name: str = ""
    application_id: int | None = Field(default=None, foreign_key="applications.id", index=True)
    created_at: datetime = _utc_field()
    #: For a consent: SHA-256 of the seal certificate it was issued with; None when issued
    #: unsealed (the event says "sealed") or before this was recorded (migration 0005_i15).
    seal_sha256: str | None = None


class IntakeItem(SQLModel, table=True):
    """The durable intake ledger: one row per file claimed from a watched folder."""

    __tablename__ = "intake_items"
    __table_args__ = (Index("ix_intake_items_status_lease", "status", "lease_until"),)

    id: int | None = Field(default=None, primary_key=True)
    folder: str = Field(index=True)  # inbox | signed
    source: str = Field(default="folder", sa_column_kwargs={"server_default": "folder"})
    original_name: str
    claimed_name: str = Field(unique=True)  # name inside .processing/
    size: int = 0
    sha256: str | None = Field(default=None, index=True)
    status: str = Field(index=True)  # claimed | done | duplicate | failed
    outcome: str | None = None  # reference, duplicate_of reference, or failed/ name
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = _utc_field(default=None)
    owner: str | None = None
    lease_until: datetime | None = _utc_field(default=None)
    claimed_at: datetime = _utc_field()
    finished_at: datetime | None = _utc_field(default=None)
    # times another worker resumed it after its holder died: a file that keeps killing its
    # worker is set aside after a few (see workflow.intake)
    takeovers: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class IntakeNotice(SQLModel, table=True):
    """A file a worker waits for or cannot take from a drop folder, for ``status`` to show.

    One row per (folder, file name, worker); a worker writes only its own rows.
    """

    __tablename__ = "intake_notices"
    __table_args__ = (UniqueConstraint("folder", "name", "owner"),)

    id: int | None = Field(default=None, primary_key=True)
    folder: str  # inbox | signed
    name: str
    owner: str
    kind: str  # waiting | unclaimable
    message: str
    since: datetime = _utc_field()
    until: datetime | None = _utc_field(default=None)  # when the worker stops waiting


class SignatureReportRow(SQLModel, table=True):
    """A verification of a signed consent, accepted or not, with its full report."""

    __tablename__ = "signature_reports"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int | None = Field(default=None, foreign_key="applications.id", index=True)
    sha256: str = Field(index=True)
    accepted: bool
    report: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    etsi_report_xml: str | None = None
    created_at: datetime = _utc_field()


class EventRow(SQLModel, table=True):
    """One append-only entry of the processing log; ``hash`` chains it to the previous one."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc_field(index=True)
    reference: str | None = Field(default=None, index=True)
    actor: str
    kind: str
    from_state: str | None = None
    to_state: str | None = None
    reason: str = ""
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    prev_hash: str
    hash: str = Field(unique=True)


class ChainHead(SQLModel, table=True):
    """The single row that serialises appends to the event chain across workers."""

    __tablename__ = "chain_head"

    id: int = Field(default=1, primary_key=True)
    last_hash: str = GENESIS
    count: int = 0
    # The audit key's public id and an HMAC over (last hash, count, key id): the head
    # cannot be moved back to a shorter chain without the key. NULL: a plain chain from
    # before the key (carried over by the next append, `db upgrade` or `run`).
    key_id: str | None = None
    mac: str | None = None


class User(SQLModel, table=True):
    """A person who signs in to the dashboard (SPEC §10); never deleted, only disabled."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    role: str  # viewer | office | commission | admin
    password_hash: str  # Argon2id, in its PHC string form
    disabled: bool = False
    # Bumped by a new password or a disable: signed sessions carry the epoch they were
    # made in, so changing either signs the user out everywhere.
    session_epoch: int = 0
    created_at: datetime = _utc_field()
    updated_at: datetime = _utc_field()


class Token(SQLModel, table=True):
    """A bearer secret handed to someone, stored as its SHA-256 only.

    ``purpose``: ``api`` (a user's API token), ``setup`` (the one-time link that creates
    the first admin); the public pages' links to applicants and supporters fit here too.
    """

    __tablename__ = "tokens"

    id: int | None = Field(default=None, primary_key=True)
    purpose: str = Field(index=True)
    token_sha256: str = Field(unique=True, index=True)
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    application_id: int | None = Field(default=None, foreign_key="applications.id", index=True)
    created_at: datetime = _utc_field()
    expires_at: datetime | None = _utc_field(default=None)
    revoked_at: datetime | None = _utc_field(default=None)


class SupporterProfile(SQLModel, table=True):
    """The online profile of a signed supporter (SPEC §12) and its feedback schedule.

    ``draft`` is what the supporter last sent through its link; ``published`` is the copy
    the office published, the only data the public list ever reads. ``status``: ``invited``
    (link sent), ``submitted`` (the supporter completed it), ``sent_back`` (the office asked
    for changes, ``comment`` says which), ``published``.
    """

    __tablename__ = "supporter_profiles"

    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="applications.id", unique=True, index=True)
    status: str = "invited"
    draft: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    published: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    comment: str = ""
    published_at: datetime | None = _utc_field(default=None)
    feedback_due_at: datetime | None = _utc_field(default=None, index=True)
    feedback_sent_at: datetime | None = _utc_field(default=None)  # the due link, this period
    feedback_reminded_at: datetime | None = _utc_field(default=None)
    feedback_reminders: int = 0
    created_at: datetime = _utc_field()
    updated_at: datetime = _utc_field()


class Notification(SQLModel, table=True):
    """The outbox (SPEC §11): one message to send, written in the transaction of its cause.

    ``status``: ``queued`` until the SMTP server accepted it (``accepted``, with its reply),
    or ``failed`` when it refused it or every attempt is spent. ``message_id`` is chosen
    once, before the first attempt, so a resend after a crash carries the same one.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_status_next", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    application_id: int | None = Field(default=None, foreign_key="applications.id", index=True)
    kind: str
    recipient: str  # an address, or @office / @commission (resolved from [mail] when sent)
    lang: str = "en"
    context: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = "queued"  # queued | accepted | failed
    attempts: int = 0
    next_attempt_at: datetime | None = _utc_field(default=None)
    owner: str | None = None
    lease_until: datetime | None = _utc_field(default=None)
    message_id: str | None = Field(default=None, unique=True)
    last_error: str | None = None
    smtp_reply: str | None = None
    created_at: datetime = _utc_field()
    accepted_at: datetime | None = _utc_field(default=None)


class MailMessage(SQLModel, table=True):
    """A message read from the intake mailbox over IMAP, taken exactly once (SPEC §11).

    Keyed by (account, folder, UIDVALIDITY, UID); ``message_id`` and ``content_sha256``
    recognise the same message under a new UIDVALIDITY. ``status``: ``recorded`` once its
    attachments are in the intake, ``done`` once it is marked on the server.
    """

    __tablename__ = "mail_messages"
    __table_args__ = (UniqueConstraint("account", "folder", "uidvalidity", "uid"),)

    id: int | None = Field(default=None, primary_key=True)
    account: str
    folder: str
    uidvalidity: int = Field(sa_type=BigInteger)
    uid: int = Field(sa_type=BigInteger)
    message_id: str = Field(default="", index=True)
    sender: str = ""
    content_sha256: str = Field(index=True)
    status: str = "recorded"  # recorded | done
    pdfs: int = 0
    outcome: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    answered: bool = False
    created_at: datetime = _utc_field()
    done_at: datetime | None = _utc_field(default=None)


#: Event kinds, other than state changes, that queue messages (see
#: :func:`workflow.notifications.on_event`).
_TOLD_OF = frozenset({"reissued"})


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


# The tables written on every document's path, for Core statements: the ORM's unit of
# work costs several times more per row than the statement (bench/HISTORY.md).
_APPLICATIONS = _table("applications")
_DOCUMENTS = _table("documents")
_ITEMS = _table("intake_items")
_EVENTS = _table("events")
_HEAD = _table("chain_head")
_SIGNATURE_REPORTS = _table("signature_reports")

# The queries asked for every document, built once with their values as parameters:
# SQLAlchemy memoizes a statement's cache key on the object, and building the statement
# and its key again costs more than SQLite takes to answer it.
_KNOWN_DOCUMENT = core_select(_DOCUMENTS.c.application_id, _DOCUMENTS.c.kind).where(
    _DOCUMENTS.c.sha256 == bindparam("sha256")
)
_ISSUED_RECORD = (
    core_select(_APPLICATIONS.c.reference, _APPLICATIONS.c.issued_sha256, _DOCUMENTS.c.seal_sha256)
    .join_from(_DOCUMENTS, _APPLICATIONS, _DOCUMENTS.c.application_id == _APPLICATIONS.c.id)
    .where(_DOCUMENTS.c.sha256 == bindparam("sha256"), _DOCUMENTS.c.kind == "consent")
)
_LOCK_HEAD = (
    core_select(_HEAD.c.last_hash, _HEAD.c.count, _HEAD.c.key_id, _HEAD.c.mac)
    .where(_HEAD.c.id == 1)
    .with_for_update()
)
_UPDATE_HEAD = update(_HEAD).where(_HEAD.c.id == 1)
_CLAIMED = (
    core_select(_ITEMS.c.id)
    .where(_ITEMS.c.claimed_name == bindparam("claimed_name"))
    .with_for_update()
)
_ITEM = select(IntakeItem).where(IntakeItem.id == bindparam("item_id"))
_ITEM_STATUS = (
    core_select(_ITEMS.c.status).where(_ITEMS.c.id == bindparam("item_id")).with_for_update()
)
_FINISH_ITEM = update(_ITEMS).where(_ITEMS.c.id == bindparam("item_id"))
_ITEM_LOCKED = _ITEM.with_for_update()
_APPLICATION = select(Application).where(Application.reference == bindparam("reference"))
_APPLICATION_LOCKED = _APPLICATION.with_for_update()


def event_hash(row: EventRow, key: AuditKey | None = None) -> str:
    """HMAC-SHA-256 under ``key`` (plain SHA-256 without one: chains from before the key)
    over the previous hash and every recorded field of ``row``."""
    return _event_digest(
        key,
        prev_hash=row.prev_hash,
        at=row.at,
        reference=row.reference,
        actor=row.actor,
        kind=row.kind,
        from_state=row.from_state,
        to_state=row.to_state,
        reason=row.reason,
        data=row.data,
    )


def _event_digest(
    key: AuditKey | None, *, prev_hash: str, at: datetime, reference: str | None, actor: str,
    kind: str, from_state: str | None, to_state: str | None, reason: str, data: dict[str, Any],
) -> str:  # fmt: skip
    payload = [
        prev_hash,
        at.astimezone(UTC).isoformat(),
        reference,
        actor,
        kind,
        from_state,
        to_state,
        reason,
        data,
    ]
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    if key is None:
        return hashlib.sha256(canonical.encode()).hexdigest()
    return key.mac(canonical.encode())


def head_mac(key: AuditKey, last_hash: str, count: int) -> str:
    """The chain head's HMAC: its count cannot shrink, nor its end move, without the key."""
    return key.mac(f"consentflow chain head|{last_hash}|{count}|{key.key_id}".encode())


def org_key(org_name: str, country: str) -> str:
    """The key under which two applications are for the same organisation."""
    return f"{' '.join(org_name.casefold().split())}|{country.upper()}"


class StoreError(Exception):
    """The database cannot be used as configured; ``str()`` says why and what to do.

    Raised for what waiting cannot mend (a file that is not SQLite, a folder that does not
    exist, a read-only database, a bad URL, a missing driver, an unknown schema revision);
    a server that cannot be reached raises SQLAlchemy's ``OperationalError`` instead, and
    callers wait for it.
    """


class SchemaError(StoreError):
    """The database is not at the schema revision this code needs; says what to run."""


class Store:
    """A database of applications; open one per process and share it between threads."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] | None = None,
        audit_key: AuditKey | None = None,
    ) -> None:
        """``audit_key``: the chain's key (:func:`workflow.audit_key.load_key`); without
        one, ``CONSENTFLOW_AUDIT_KEY``'s, and without that the store can read but not
        append events."""
        self.url = url
        self.clock = clock or (lambda: datetime.now(UTC))
        self.audit_key = audit_key or key_from_environment()
        self.engine = _make_engine(url)  # raises StoreError for a bad URL or a missing driver
        # Reads take no write lock: on SQLite a deferred BEGIN, a snapshot that neither
        # waits for a writer nor holds one back (WAL); on PostgreSQL nothing changes.
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        # Single-statement lookups (each file in signed/ makes three).
        self._lookup = self.engine.execution_options(**{_READ_ONLY: True, _ONE_STATEMENT: True})

    @property
    def reader(self) -> Engine:
        """The engine for reads outside a transaction of ours: they take no write lock."""
        return self._reader

    # -- schema -------------------------------------------------------------------

    def alembic_config(self) -> Config:
        """Alembic configuration bound to this store's engine."""
        config = Config()
        config.set_main_option("script_location", str(resources.files("workflow") / "migrations"))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        config.attributes["engine"] = self.engine
        return config

    def head_revision(self) -> str:
        """The schema revision this code is written for."""
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        """The database's schema revision; ``None`` for a database without our tables."""
        with self._opening(), self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def upgrade(self, revision: str = "head") -> bool:
        """Migrate the schema (``consentflow db upgrade``). A database from before the
        audit key (:data:`KEYED_SINCE`) has its plain chain carried over into the keyed
        one, once, with a recorded re-key; returns whether that happened."""
        with self._opening(), self._schema_lock() as connection:
            before = MigrationContext.configure(connection).get_current_revision()
            self._refuse_unknown(before)
            self._migrate(connection, revision)
            after = MigrationContext.configure(connection).get_current_revision()
            if before is None or after is None or self.audit_key is None:
                return False
            if not self._is_before_key(before) or self._is_before_key(after):
                return False
            # In the migration's transaction: a crash leaves the old schema, never a
            # keyed schema with a plain head (which nothing would carry over any more).
            with self._tx_on(connection) as tx:
                carried = tx.lock_chain(carry_over=True)
            return carried

    def _is_before_key(self, revision: str) -> bool:
        """Whether ``revision`` is older than the schema that keys the chain."""
        script = ScriptDirectory.from_config(self.alembic_config())
        return revision != KEYED_SINCE and any(
            rev.revision == revision for rev in script.iterate_revisions(KEYED_SINCE, "base")
        )

    def ensure_schema(self) -> None:
        """Create a new database at the current schema; refuse one at another revision.

        Workers starting together on an empty database take turns: the first creates
        the schema under the schema lock, the others then find it at the head revision.
        Raises :class:`StoreError` when the database cannot be used as configured, and
        SQLAlchemy's ``OperationalError`` while a database server cannot be reached.
        """
        with self._opening(), self._schema_lock() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
            if current is None:
                if inspect(connection).get_table_names():
                    raise SchemaError(
                        f"the database {self._shown_url()} has tables but no consentflow "
                        "schema revision; point [database] url at an empty database or at a "
                        "consentflow database"
                    )
                self._migrate(connection, "head")
                return
        self._refuse_unknown(current)
        head = self.head_revision()
        if current != head:
            raise SchemaError(
                f"the database is at schema revision {current}, this consentflow needs {head}: "
                "run `consentflow db upgrade` (back up the database first)"
            )

    def check_writable(self) -> None:
        """Raise :class:`StoreError` unless this process may write the database.

        A read-only SQLite file with its -wal and -shm beside it opens and reads fine; the
        first write fails, deep in the work. A worker asks this once, at start.
        """
        with self._opening(), self._schema_lock() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))

    def _refuse_unknown(self, current: str | None) -> None:
        """A revision this code has no migration for was made by a newer consentflow."""
        if current is None:
            return
        try:
            known = ScriptDirectory.from_config(self.alembic_config()).get_revision(current)
        except AlembicError:
            known = None
        if known is None:
            raise SchemaError(
                f"the database {self._shown_url()} is at schema revision {current}, which this "
                f"consentflow (schema {self.head_revision()}) does not know: a newer consentflow "
                "made it. Run that newer version, or point [database] url at another database"
            )

    def _shown_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def _opening(self) -> Iterator[None]:
        """Turn errors that waiting cannot mend into a :class:`StoreError` with a sentence.

        A database server that does not answer may be starting (or restarting): its errors
        pass through for the caller to wait. A SQLite file is there or not, readable or not,
        a database or not: only "busy" is worth waiting for.
        """
        try:
            yield
        except DBAPIError as exc:
            problem = _unusable(self.engine.url, exc)
            if problem is None:
                raise
            raise StoreError(problem) from None

    @contextmanager
    def _schema_lock(self) -> Iterator[Connection]:
        """A transaction holding the schema lock: one process reads or migrates at a time.

        On PostgreSQL a transaction-scoped advisory lock; on SQLite the transaction is
        ``BEGIN IMMEDIATE`` (see `_make_engine`), which is the database's write lock.
        """
        with self.engine.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
                )
            yield connection

    def _migrate(self, connection: Connection, revision: str) -> None:
        config = self.alembic_config()
        config.attributes["connection"] = connection  # migrations/env.py runs on it
        command.upgrade(config, revision)

    # -- transactions -------------------------------------------------------------

    @contextmanager
    def tx(self, *, durable: bool = True) -> Iterator[Tx]:
        """One transaction: committed when the block ends, rolled back if it raises.

        The transaction is the connection's; an ORM session joins it only when a step
        asks for one (:attr:`Tx.session`), so a transaction of Core statements alone (a
        claim, a lease) does not pay for a session's set-up, flush and teardown.

        ``durable=False`` is for a transaction that a crash of the machine may undo
        without harm, because what it records is found again from the files (a claim:
        a file in ``.processing/`` without its ledger row is adopted at the next start).
        Its commit does not wait for the disk: it is written, in order, and made durable
        by the next durable commit (SQLite's ``synchronous=NORMAL`` in WAL mode, which
        "might roll back following a power loss or system crash", sqlite.org/pragma.html;
        PostgreSQL's ``synchronous_commit = off``, its manual's "Asynchronous Commit"). A
        consentflow process that dies loses nothing of it; a crash of the machine, or of
        the PostgreSQL server, may.
        """
        with self.engine.connect() as connection:
            if not durable:
                connection.execution_options(**{_NOT_DURABLE: True})
            with connection.begin(), self._tx_on(connection) as tx:
                if not durable and connection.dialect.name == "postgresql":
                    connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield tx

    @contextmanager
    def _tx_on(self, connection: Connection) -> Iterator[Tx]:
        """A :class:`Tx` in ``connection``'s open transaction: the chain head and the
        session's changes are written when the block ends; the caller commits."""
        tx = Tx(connection, self.clock, self.audit_key)
        try:
            yield tx
            tx.write_head()
            tx.flush()
        finally:
            tx.close()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (no write lock): for pages that only look."""
        with Session(self._reader) as session:
            yield session

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # -- reads ---------------------------------------------------------------------

    def known_document(self, sha256: str) -> KnownDocument | None:
        """The recorded document with these bytes, if any (read without a write lock)."""
        with self._lookup.connect() as connection:
            return _known_document(connection, sha256)

    def applications(self, state: State | None = None) -> list[Application]:
        """Every application, oldest first, optionally in one state."""
        with Session(self._reader) as session:
            query = select(Application).where(col(Application.reference).is_not(None))
            if state is not None:
                query = query.where(Application.state == state.value)
            return list(session.exec(query.order_by(col(Application.id))))

    def issued_consents(self) -> list[tuple[str, str]]:
        """``(reference, issued SHA-256)`` of every application in ``consent_issued``.

        Two columns only: the lease sweep asks this of a database that grows without
        bound, and whole rows (fields, findings) would make each sweep's memory grow too.
        """
        with Session(self._reader) as session:
            query = (
                select(Application.reference, Application.issued_sha256)
                .where(Application.state == State.CONSENT_ISSUED.value)
                .order_by(col(Application.id))
            )
            return [(ref, sha) for ref, sha in session.exec(query) if ref and sha]

    def awaiting_without_findings(self) -> list[str]:
        """References of ``awaiting_review`` applications without findings, oldest first.

        Reads two columns: the sweep asks this every few seconds, and the applications
        waiting for the office (those with findings) may be many, with large fields.
        """
        with Session(self._reader) as session:
            query = (
                select(Application.reference, Application.findings)
                .where(Application.state == State.AWAITING_REVIEW.value)
                .order_by(col(Application.id))
            )
            return [ref for ref, findings in session.exec(query) if ref and not findings]

    def application(self, reference: str) -> Application | None:
        """One application by reference."""
        with Session(self._reader) as session:
            return session.exec(
                select(Application).where(Application.reference == reference)
            ).first()

    def documents(self, application_id: int) -> list[Document]:
        """The documents of an application, oldest first."""
        with Session(self._reader) as session:
            query = select(Document).where(Document.application_id == application_id)
            return list(session.exec(query.order_by(col(Document.id))))

    def signature_reports(self, application_id: int) -> list[SignatureReportRow]:
        """The verification attempts for an application, oldest first."""
        with Session(self._reader) as session:
            query = select(SignatureReportRow).where(
                SignatureReportRow.application_id == application_id
            )
            return list(session.exec(query.order_by(col(SignatureReportRow.id))))

    def events(
        self, *, reference: str | None = None, after_id: int = 0, limit: int | None = None
    ) -> list[EventRow]:
        """Events oldest first; with ``limit``, the newest ``limit`` of them."""
        with Session(self._reader) as session:
            query = select(EventRow).where(col(EventRow.id) > after_id)
            if reference is not None:
                query = query.where(EventRow.reference == reference)
            if limit is not None:
                rows = list(session.exec(query.order_by(col(EventRow.id).desc()).limit(limit)))
                return rows[::-1]
            return list(session.exec(query.order_by(col(EventRow.id))))

    def events_after(self, after_id: int, limit: int) -> list[EventRow]:
        """The first ``limit`` events after ``after_id``, oldest first (the live log)."""
        with Session(self._reader) as session:
            query = select(EventRow).where(col(EventRow.id) > after_id)
            return list(session.exec(query.order_by(col(EventRow.id)).limit(limit)))

    def newest_event_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        with self._reader.connect() as connection:
            newest = connection.execute(core_select(func.max(_EVENTS.c.id))).scalar()
            return int(newest or 0)

    def items(self, status: str | None = None) -> list[IntakeItem]:
        """The intake ledger, oldest first."""
        with Session(self._reader) as session:
            query = select(IntakeItem)
            if status is not None:
                query = query.where(IntakeItem.status == status)
            return list(session.exec(query.order_by(col(IntakeItem.id))))

    def notices(self) -> list[IntakeNotice]:
        """Every worker's notices about files in the drop folders, oldest first."""
        with Session(self._reader) as session:
            query = select(IntakeNotice).order_by(col(IntakeNotice.since), col(IntakeNotice.id))
            return list(session.exec(query))

    def item_by_claim(self, claimed_name: str) -> IntakeItem | None:
        """The ledger row of a file in ``.processing/``."""
        with Session(self._reader) as session:
            return session.exec(
                select(IntakeItem).where(IntakeItem.claimed_name == claimed_name)
            ).first()

    def issued_reference(self, sha256: str) -> str | None:
        """The reference of the application whose issued consent has this SHA-256.

        One column: binding a signed file asks this for each of its revisions' prefixes,
        and the whole row (fields, findings) is not needed to answer.
        """
        with Session(self._reader) as session:
            return session.exec(
                select(Application.reference).where(Application.issued_sha256 == sha256)
            ).first()

    def issued_record(self, sha256: str) -> tuple[str, str | None, bool] | None:
        """``(reference, seal SHA-256, superseded)`` of the consent issued with these bytes:
        the current consent of an application, or one a reissue replaced."""
        # A plain connection, not an ORM session: binding asks this for each revision end
        # of every file in signed/, and most answers are "no".
        with self._lookup.connect() as connection:
            row = connection.execute(_ISSUED_RECORD, {"sha256": sha256}).first()
        if row is None or row[0] is None:
            return None
        reference, current, seal = row
        return reference, seal, current != sha256

    # -- the dashboard's reads (SPEC §10) ------------------------------------------

    def page_applications(
        self,
        *,
        state: str | None = None,
        search: str = "",
        offset: int = 0,
        limit: int = 50,
        count: bool = True,
    ) -> tuple[list[Summary], int | None]:
        """One page of applications, newest first, and how many match in all (``None``
        without ``count``: a caller that knows the counts per state needs no search).

        ``search`` matches a reference (``sup-2026-00042``, or a prefix), a country code,
        or a part of the organisation's name, case-insensitively in every script (the
        casefolded name is the stored ``org_key``).
        """
        apps = _APPLICATIONS.c
        # No "reference IS NOT NULL": a row gets its reference in the transaction that
        # inserts it, so no reader sees one without; the condition would make every
        # count read the whole table instead of the state index.
        where: list[ColumnElement[bool]] = []
        if state:
            where.append(apps.state == state)
        term = " ".join(search.split())
        if term:
            folded = term.casefold()
            escaped = folded.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            matches: list[ColumnElement[bool]] = [
                apps.org_key.like(f"%{escaped}%|%", escape="\\"),
                apps.reference.like(f"{escaped.upper()}%", escape="\\"),
            ]
            if len(term) == 2 and term.isalpha():
                matches.append(apps.country == term.upper())
            where.append(or_(*matches))
        with Session(self._reader) as session:
            total = None
            if count:
                total = session.execute(
                    core_select(func.count()).select_from(_APPLICATIONS).where(*where)
                ).scalar_one()
            # The list's columns only: not the fields, findings and problems of each row.
            query = (
                core_select(
                    apps.reference, apps.state, apps.org_name, apps.country,
                    apps.received_at, apps.updated_at,
                )
                .where(*where)
                .order_by(apps.id.desc())
                .offset(offset)
                .limit(limit)
            )  # fmt: skip
            return [Summary(*row) for row in session.execute(query)], total

    def event_lines(self, limit: int) -> list[EventLine]:
        """The newest ``limit`` events, oldest first, without their data and hashes (the
        processing log's page)."""
        events = _EVENTS.c
        query = (
            core_select(
                events.id, events.at, events.reference, events.actor, events.kind,
                events.from_state, events.to_state, events.reason,
            )
            .order_by(events.id.desc())
            .limit(limit)
        )  # fmt: skip
        with self._reader.connect() as connection:
            return [EventLine(*row) for row in connection.execute(query)][::-1]

    def state_counts(self) -> dict[str, int]:
        """How many applications are in each state."""
        apps = _APPLICATIONS.c
        with self._reader.connect() as connection:
            rows = connection.execute(core_select(apps.state, func.count()).group_by(apps.state))
            return {state: int(count) for state, count in rows}

    def unsigned_since(self, cutoff: datetime) -> list[tuple[str, str, datetime]]:
        """``(reference, organisation, issued at)`` of consents issued before ``cutoff`` and
        still unsigned, oldest first (an application's ``updated_at`` is the time it
        entered ``consent_issued``: nothing else changes it in that state)."""
        apps = _APPLICATIONS.c
        with self._reader.connect() as connection:
            rows = connection.execute(
                core_select(apps.reference, apps.org_name, apps.updated_at)
                .where(apps.state == State.CONSENT_ISSUED.value, apps.updated_at < cutoff)
                .order_by(apps.updated_at)
            )
            return [(ref, name, at) for ref, name, at in rows]

    def state_disagreements(self) -> list[tuple[str, str, str | None]]:
        """``(reference, stored state, state its events lead to)`` wherever they differ.

        The dashboard shows states as the events make them; a row that says otherwise
        was changed outside the services and is listed for the office.
        """
        events = _EVENTS.c
        apps = _APPLICATIONS.c
        latest = (
            core_select(func.max(events.id).label("id"))
            .where(events.to_state.is_not(None), events.reference.is_not(None))
            .group_by(events.reference)
            .subquery()
        )
        last_state = (
            core_select(events.reference, events.to_state)
            .join(latest, latest.c.id == events.id)
            .subquery()
        )
        query = (
            core_select(apps.reference, apps.state, last_state.c.to_state)
            .outerjoin(last_state, last_state.c.reference == apps.reference)
            .where(
                apps.reference.is_not(None),
                or_(last_state.c.to_state.is_(None), last_state.c.to_state != apps.state),
            )
            .order_by(apps.id)
        )
        with self._reader.connect() as connection:
            return [(ref, state, derived) for ref, state, derived in connection.execute(query)]

    def state_history(self) -> list[tuple[datetime, str, str | None, str]]:
        """``(at, reference, from, to)`` of every state change, oldest first (for plots)."""
        events = _EVENTS.c
        with self._reader.connect() as connection:
            rows = connection.execute(
                core_select(events.at, events.reference, events.from_state, events.to_state)
                .where(events.to_state.is_not(None), events.reference.is_not(None))
                .order_by(events.id)
            )
            return [(at, ref, old, new) for at, ref, old, new in rows]

    def intake_times(self, *, limit: int = 5000) -> list[tuple[str, datetime, datetime]]:
        """``(folder, claimed at, finished at)`` of the newest finished ledger rows."""
        items = _ITEMS.c
        with self._reader.connect() as connection:
            rows = connection.execute(
                core_select(items.folder, items.claimed_at, items.finished_at)
                .where(items.finished_at.is_not(None))
                .order_by(items.id.desc())
                .limit(limit)
            )
            return [(folder, claimed, finished) for folder, claimed, finished in rows][::-1]

    def item(self, item_id: int) -> IntakeItem | None:
        """One ledger row."""
        with Session(self._reader) as session:
            return session.get(IntakeItem, item_id)

    def unfinished_items(self) -> list[IntakeItem]:
        """Ledger rows still claimed (being processed, waiting for a retry, or abandoned)."""
        with Session(self._reader) as session:
            query = select(IntakeItem).where(IntakeItem.status == "claimed")
            return list(session.exec(query.order_by(col(IntakeItem.id))))

    def signature_report(self, sha256: str) -> SignatureReportRow | None:
        """The newest verification recorded for these exact bytes."""
        with Session(self._reader) as session:
            query = select(SignatureReportRow).where(SignatureReportRow.sha256 == sha256)
            return session.exec(query.order_by(col(SignatureReportRow.id).desc())).first()

    def document(self, application_id: int, sha256: str) -> Document | None:
        """One document of one application (``None`` when it belongs to another)."""
        with Session(self._reader) as session:
            return session.exec(
                select(Document).where(
                    Document.application_id == application_id, Document.sha256 == sha256
                )
            ).first()

    # -- users and tokens ------------------------------------------------------------

    def users(self) -> list[User]:
        """Every dashboard user, in order of creation."""
        with Session(self._reader) as session:
            return list(session.exec(select(User).order_by(col(User.id))))

    def user(self, name: str) -> User | None:
        """The user of that name."""
        with Session(self._reader) as session:
            return session.exec(select(User).where(User.name == name)).first()

    def user_by_id(self, user_id: int) -> User | None:
        """The user with that id."""
        with Session(self._reader) as session:
            return session.get(User, user_id)

    def has_users(self) -> bool:
        """Whether any dashboard user exists."""
        with Session(self._reader) as session:
            return session.exec(select(User.id).limit(1)).first() is not None

    def live_token(self, purpose: str, token_sha256: str, now: datetime) -> Token | None:
        """The unexpired, unrevoked token with that hash and purpose."""
        with Session(self._reader) as session:
            token = session.exec(
                select(Token).where(
                    Token.token_sha256 == token_sha256,
                    Token.purpose == purpose,
                    col(Token.revoked_at).is_(None),
                )
            ).first()
        if token is None or (token.expires_at is not None and token.expires_at <= now):
            return None
        return token

    def notifications(self, application_id: int | None = None) -> list[Notification]:
        """The outbox, oldest first; with ``application_id``, that application's messages."""
        with Session(self._reader) as session:
            query = select(Notification)
            if application_id is not None:
                query = query.where(Notification.application_id == application_id)
            return list(session.exec(query.order_by(col(Notification.id))))

    # -- what `audit verify` compares (streamed: the tables grow without bound) ----------

    def state_events(self) -> Iterator[tuple[str, str, str | None, str | None, dict[str, Any]]]:
        """``(reference, kind, from state, to state, data)`` of every state change and every
        reissue (the consent replaced, the state kept: no to state), oldest first."""
        events = _EVENTS.c
        query = (
            core_select(events.reference, events.kind, events.from_state, events.to_state,
                        events.data)
            .where(or_(events.to_state.is_not(None), events.kind == "reissued"),
                   events.reference.is_not(None))
            .order_by(events.id)
        )  # fmt: skip
        with self._reader.connect() as connection:
            for ref, kind, old, new, data in connection.execution_options(yield_per=2000).execute(
                query
            ):
                yield ref, kind, old, new, data or {}

    def application_hashes(
        self,
    ) -> Iterator[tuple[str, str, str, str | None, str | None]]:
        """``(reference, state, EOI, issued, signed SHA-256)`` of every application."""
        apps = _APPLICATIONS.c
        query = (
            core_select(
                apps.reference, apps.state, apps.eoi_sha256, apps.issued_sha256, apps.signed_sha256
            )
            .where(apps.reference.is_not(None))
            .order_by(apps.id)
        )
        with self._reader.connect() as connection:
            rows = connection.execution_options(yield_per=2000).execute(query)
            yield from rows

    def document_facts(self) -> Iterator[tuple[str, str, int]]:
        """``(SHA-256, kind, size)`` of every recorded document."""
        docs = _DOCUMENTS.c
        query = core_select(docs.sha256, docs.kind, docs.size).order_by(docs.id)
        with self._reader.connect() as connection:
            yield from connection.execution_options(yield_per=2000).execute(query)

    def key_chain(self) -> None:
        """Check the chain head against the key, and on a new database write a keyed head
        at once (``run`` calls it at start). Raises
        :class:`~workflow.audit_key.AuditKeyError` for another key or an altered head."""
        with self.tx() as tx:
            tx.lock_chain()

    def verify_chain(self) -> AuditResult:
        """Recompute the event chain under the audit key; report the first event whose
        hash or link is wrong, and a chain head that does not vouch for the whole chain."""
        key = self.audit_key
        if key is None:
            raise AuditKeyError(
                "no audit key: set CONSENTFLOW_AUDIT_KEY or run in the home folder that holds "
                "audit.key"
            )
        previous = GENESIS
        count = 0
        keyed = False
        with Session(self._reader) as session:
            head = session.get(ChainHead, 1)
            for row in session.exec(select(EventRow).order_by(col(EventRow.id))):
                count += 1
                if row.prev_hash != previous:
                    return AuditResult(
                        False,
                        count,
                        row.id,
                        "does not link to the event before it (one was removed or reordered)",
                    )
                problem, keyed = _event_problem(row, key, keyed=keyed, position=count)
                if problem:
                    return AuditResult(False, count, row.id, problem)
                previous = row.hash
            problem = _head_problem(head, key, previous, count, keyed=keyed)
            if problem:
                return AuditResult(False, count, None, problem)
        return AuditResult(True, count, None, "")


def _event_problem(row: EventRow, key: AuditKey, *, keyed: bool, position: int) -> tuple[str, bool]:
    """What is wrong with one event of the chain (empty when nothing is), and whether the
    chain is keyed from this event on."""
    if hmac.compare_digest(event_hash(row, key), row.hash):
        if keyed or position == 1:
            return "", True
        # The plain part ends only at the re-key event, which names where it ended.
        data = row.data or {}
        if row.kind != REKEY_KIND or data.get("plain_head") != row.prev_hash:
            return "is keyed, but the plain chain before it ends without a recorded re-key", True
        if data.get("plain_events") != position - 1:
            return (
                f"is the re-key after {data.get('plain_events')} plain events, but "
                f"{position - 1} come before it (events were added or removed)"
            ), True
        return "", True
    if not keyed and event_hash(row) == row.hash:
        return "", False  # the plain SHA-256 part, vouched for by the re-key event after it
    return "was changed after it was written (its HMAC does not match its content)", keyed


def _head_problem(  # noqa: PLR0911 - one return per way a head can fail
    head: ChainHead | None, key: AuditKey, last_hash: str, count: int, *, keyed: bool
) -> str:
    """Why the chain head does not vouch for the chain that was read (empty if it does)."""
    if count and not keyed:
        return (
            f"is a plain SHA-256 chain of {count} events, not keyed: `consentflow db upgrade` "
            "carries a database from before the audit key over; at this schema it means "
            "history was rewritten without the key"
        )
    if head is None:
        if count:
            return "has no chain head: the head row was deleted"
        return ""
    if head.key_id is None:
        if count == 0 and head.count == 0 and head.last_hash == GENESIS:
            return ""  # a new database: nothing written yet
        return "has a chain head without the audit key's HMAC: the head row was replaced"
    if head.key_id != key.key_id:
        return (
            f"is keyed with another audit key (id {head.key_id}; this one, from {key.origin}, "
            f"is {key.key_id}): use the key the chain was made with"
        )
    if not hmac.compare_digest(head.mac or "", head_mac(key, head.last_hash, head.count)):
        return "has a chain head changed outside consentflow (its HMAC does not match)"
    if head.last_hash != last_hash or head.count != count:
        return (
            f"ends early: the head vouches for {head.count} events, {count} are there "
            "(events after the last one were removed)"
        )
    return ""


@dataclass(frozen=True)
class Summary:
    """An application's line in a list: what ``status`` prints."""

    reference: str
    state: str
    org_name: str
    country: str
    received_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class EventLine:
    """An event's line in the processing log."""

    id: int
    at: datetime
    reference: str | None
    actor: str
    kind: str
    from_state: str | None
    to_state: str | None
    reason: str


@dataclass(frozen=True)
class KnownDocument:
    """A recorded document: its SHA-256 and the application it belongs to."""

    sha256: str
    application_id: int | None
    kind: str | None = None  # eoi | consent | signed


def _known_document(connection: Connection, sha256: str) -> KnownDocument | None:
    row = connection.execute(_KNOWN_DOCUMENT, {"sha256": sha256}).first()
    return KnownDocument(sha256, row[0], row[1]) if row else None


@dataclass(frozen=True)
class AuditResult:
    """Outcome of :meth:`Store.verify_chain`."""

    ok: bool
    events: int
    bad_event_id: int | None
    problem: str


class Tx:
    """Operations inside one transaction (see :meth:`Store.tx`)."""

    def __init__(
        self, connection: Connection, clock: Callable[[], datetime], key: AuditKey | None = None
    ) -> None:
        self.connection = connection
        self._session: Session | None = None
        self.clock = clock
        self.key = key
        # The chain head as this transaction's events moved it, locked by the first of
        # them and written back once before the commit: (last hash, count, whether the
        # row exists); None while no event was appended.
        self._head: tuple[str, int, bool] | None = None

    def now(self) -> datetime:
        """The injected clock's current UTC time."""
        return self.clock()

    @property
    def session(self) -> Session:
        """An ORM session in this transaction, made at the first use: what it changes is
        flushed before the commit, and its objects stay loaded (detached) after it."""
        if self._session is None:
            # Joined to the connection's transaction, which Store.tx commits or rolls back.
            self._session = Session(bind=self.connection, expire_on_commit=False)
        return self._session

    def flush(self) -> None:
        """Write the session's pending changes (:meth:`Store.tx` calls it before commit)."""
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        """End the session, if one was made; its objects stay as loaded."""
        if self._session is not None:
            self._session.close()

    def _connection(self) -> Connection:
        # The transaction's connection: Core statements here commit or roll back with the
        # ORM's changes.
        return self.connection

    # -- events --------------------------------------------------------------------

    def append_event(
        self,
        kind: str,
        *,
        actor: str,
        reference: str | None = None,
        from_state: State | None = None,
        to_state: State | None = None,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append one event to the chain (the chain head row is locked until commit).

        Raises :class:`~workflow.audit_key.AuditKeyError` without the chain's key, or when
        the chain head was changed outside consentflow: extending it would vouch for it.
        """
        self.lock_chain()
        self._append(
            kind, actor=actor, reference=reference, reason=reason, data=data,
            from_state=from_state.value if from_state else None,
            to_state=to_state.value if to_state else None,
        )  # fmt: skip

    def lock_chain(self, *, carry_over: bool = False) -> bool:
        """Lock the chain head and check it against the key. With ``carry_over`` (only
        `Store.upgrade` from before :data:`KEYED_SINCE`), carry a plain SHA-256 chain over
        into the keyed one with a recorded re-key; returns whether it did so."""
        if self._head is not None:
            return False
        key = self.key
        if key is None:
            raise AuditKeyError(
                "no audit key: the event chain cannot be extended (set CONSENTFLOW_AUDIT_KEY "
                "or give the store the home folder's key)"
            )
        connection = self._connection()
        row = connection.execute(_LOCK_HEAD).first()
        if row is None:
            if connection.execute(core_select(_EVENTS.c.id).limit(1)).first() is not None:
                raise AuditKeyError(
                    "the chain head is missing while events exist: history was edited outside "
                    "consentflow; run `consentflow audit verify`"
                )
            self._head = (GENESIS, 0, False)
            return False
        last_hash, count, key_id, mac = row
        self._head = (last_hash, count, True)
        if key_id is None and count == 0:
            return False  # a new database's empty head: keyed when written back
        if key_id is None and not carry_over:
            raise AuditKeyError(
                f"the event chain ({count} events) has a head without the audit key: it was "
                "reset outside consentflow; run `consentflow audit verify` and restore the "
                "database from a backup"
            )
        if key_id is None:
            self._append(
                REKEY_KIND,
                actor="system",
                reason=(
                    "the event chain is keyed with the audit key from here on "
                    f"(HMAC-SHA-256); the plain SHA-256 chain before ends at {last_hash} "
                    f"after {count} events"
                ),
                data={"plain_head": last_hash, "plain_events": count, "key_id": key.key_id},
            )
            return True
        if key_id != key.key_id:
            raise AuditKeyError(
                f"the event chain is keyed with another audit key (id {key_id}; this one, "
                f"from {key.origin}, is {key.key_id}): restore the home folder's audit.key "
                "from the backup, or set CONSENTFLOW_AUDIT_KEY to the key in use"
            )
        if not hmac.compare_digest(mac or "", head_mac(key, last_hash, count)):
            raise AuditKeyError(
                "the chain head was changed outside consentflow (its HMAC does not match): "
                "run `consentflow audit verify` and restore the database from a backup"
            )
        return False

    def _append(
        self,
        kind: str,
        *,
        actor: str,
        reference: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        assert self._head is not None and self.key is not None
        connection = self._connection()
        last_hash, count, exists = self._head
        values: dict[str, Any] = {
            "at": self.now(),
            "reference": reference,
            "actor": actor,
            "kind": kind,
            "from_state": from_state,
            "to_state": to_state,
            "reason": reason,
            "data": data or {},
            "prev_hash": last_hash,
        }
        values["hash"] = _event_digest(self.key, **values)
        connection.execute(insert(_EVENTS), values)
        self._head = (values["hash"], count + 1, exists)
        if kind in _TOLD_OF:  # an event that is not a state change but tells someone
            from workflow.notifications import on_event  # noqa: PLC0415 - it imports the store

            on_event(self.session, kind, reference=reference, data=data or {})

    def write_head(self) -> None:
        """Write the chain head this transaction moved (:meth:`Store.tx` calls it last)."""
        if self._head is None:
            return
        last_hash, count, exists = self._head
        assert self.key is not None
        values = {
            "last_hash": last_hash,
            "count": count,
            "key_id": self.key.key_id,
            "mac": head_mac(self.key, last_hash, count),
        }
        connection = self._connection()
        if exists:
            connection.execute(_UPDATE_HEAD, values)
        else:
            connection.execute(insert(_HEAD).values(id=1, **values))
        self._head = None  # written; a later event reads it again (still locked by us)

    # -- applications --------------------------------------------------------------

    def new_application(self, *, state: State, eoi_sha256: str, **values: Any) -> Application:
        """Insert an application and give it its reference ``SUP-YYYY-NNNNN``."""
        now = self.now()
        app = Application(
            state=state.value, eoi_sha256=eoi_sha256, received_at=now, updated_at=now, **values
        )
        self.session.add(app)
        self.session.flush()  # assigns the id the reference is made from
        assert app.id is not None
        app.reference = f"SUP-{now.year}-{app.id:05d}"  # written with the next flush
        return app

    def get_application(self, reference: str, *, lock: bool = True) -> Application | None:
        """One application, row-locked until commit (PostgreSQL) so decisions do not race."""
        query = _APPLICATION_LOCKED if lock else _APPLICATION
        return self.session.exec(query, params={"reference": reference}).first()

    def move(
        self,
        app: Application,
        target: State,
        *,
        actor: str,
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        """Change an application's state after checking the transition table; record it."""
        assert app.reference is not None
        current = State(app.state)
        check_transition(app.reference, current, target)
        app.state = target.value
        app.updated_at = self.now()
        self.session.add(app)
        self.append_event(
            "state",
            actor=actor,
            reference=app.reference,
            from_state=current,
            to_state=target,
            reason=reason,
            data=data,
        )
        # Who is told, in this same transaction (the outbox, SPEC §11); imported here
        # because the notifications import the store.
        from workflow.notifications import on_move  # noqa: PLC0415

        on_move(self.session, app, current, target, actor=actor, reason=reason, data=data)

    def open_application(self, key: str, *, exclude_id: int | None = None) -> str | None:
        """Reference of another open application for the same organisation, if any."""
        apps = _APPLICATIONS.c
        query = core_select(apps.reference).where(
            apps.org_key == key,
            apps.state.in_([State.AWAITING_REVIEW.value, State.CONSENT_ISSUED.value]),
        )
        if exclude_id is not None:
            query = query.where(apps.id != exclude_id)
        found: str | None = self._connection().execute(query.order_by(apps.id).limit(1)).scalar()
        return found

    # -- documents -----------------------------------------------------------------

    def find_document(self, sha256: str) -> KnownDocument | None:
        """The document with these bytes, if already recorded."""
        return _known_document(self._connection(), sha256)

    def add_document(
        self,
        *,
        sha256: str,
        kind: str,
        size: int,
        original_name: str,
        application_id: int | None,
        seal_sha256: str | None = None,
    ) -> None:
        """Record an archived file (a consent with the seal it was issued with)."""
        self._connection().execute(
            insert(_DOCUMENTS),
            {
                "sha256": sha256,
                "kind": kind,
                "size": size,
                "original_name": original_name,
                "application_id": application_id,
                "created_at": self.now(),
                "seal_sha256": seal_sha256,
            },
        )

    def application_by_id(self, application_id: int) -> Application | None:
        """One application by primary key."""
        return self.session.get(Application, application_id)

    def has_signature_report(self, sha256: str) -> bool:
        """Whether a verification of these exact bytes was already recorded."""
        query = select(SignatureReportRow.id).where(SignatureReportRow.sha256 == sha256)
        return self.session.exec(query).first() is not None

    def add_signature_report(
        self,
        *,
        application_id: int | None,
        sha256: str,
        accepted: bool,
        report: dict[str, Any],
        etsi_report_xml: str | None,
    ) -> None:
        """Record one verification attempt."""
        self._connection().execute(
            insert(_SIGNATURE_REPORTS),
            {
                "application_id": application_id,
                "sha256": sha256,
                "accepted": accepted,
                "report": report,
                "etsi_report_xml": etsi_report_xml,
                "created_at": self.now(),
            },
        )

    # -- users and tokens ------------------------------------------------------------

    def get_user(self, name: str) -> User | None:
        """The user of that name, row-locked until commit."""
        return self.session.exec(select(User).where(User.name == name).with_for_update()).first()

    def add_user(self, *, name: str, role: str, password_hash: str) -> User:
        """Insert a user."""
        now = self.now()
        user = User(
            name=name, role=role, password_hash=password_hash, created_at=now, updated_at=now
        )
        self.session.add(user)
        self.session.flush()
        return user

    def add_token(
        self,
        *,
        purpose: str,
        token_sha256: str,
        user_id: int | None = None,
        application_id: int | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        """Record a token by its hash."""
        self.session.add(
            Token(
                purpose=purpose,
                token_sha256=token_sha256,
                user_id=user_id,
                application_id=application_id,
                created_at=self.now(),
                expires_at=expires_at,
            )
        )
        self.session.flush()

    def revoke_tokens(
        self,
        *,
        purpose: str,
        user_id: int | None = None,
        token_sha256: str | None = None,
        application_id: int | None = None,
    ) -> int:
        """Revoke the live tokens of a purpose (of one user, one application, or one token);
        return how many."""
        query = select(Token).where(Token.purpose == purpose, col(Token.revoked_at).is_(None))
        if user_id is not None:
            query = query.where(Token.user_id == user_id)
        if application_id is not None:
            query = query.where(Token.application_id == application_id)
        if token_sha256 is not None:
            query = query.where(Token.token_sha256 == token_sha256)
        tokens = self.session.exec(query.with_for_update()).all()
        for token in tokens:
            token.revoked_at = self.now()
            self.session.add(token)
        self.session.flush()
        return len(tokens)

    # -- intake ledger -------------------------------------------------------------

    def claim_item(
        self,
        *,
        folder: str,
        original_name: str,
        claimed_name: str,
        size: int,
        owner: str,
        lease_until: datetime,
        source: str = "folder",
    ) -> int:
        """Record a file just renamed (or, from ``source`` ``web``, written) into
        ``.processing/``; return its ledger row's id (the existing row's, if this claim
        was recorded before)."""
        connection = self._connection()
        existing: int | None = connection.execute(_CLAIMED, {"claimed_name": claimed_name}).scalar()
        if existing is not None:
            return existing
        result = connection.execute(
            insert(_ITEMS),
            {
                "folder": folder,
                "source": source,
                "original_name": original_name,
                "claimed_name": claimed_name,
                "size": size,
                "status": "claimed",
                "attempts": 0,
                "owner": owner,
                "lease_until": lease_until,
                "claimed_at": self.now(),
            },
        )
        key = result.inserted_primary_key
        assert key is not None
        item_id: int = key[0]
        return item_id

    def take_over(
        self, *, owner: str, lease_until: datetime, expired: Callable[[IntakeItem], bool]
    ) -> list[IntakeItem]:
        """Lease every unfinished ledger row for which ``expired`` holds to ``owner``.

        Rows another worker holds locked right now are skipped (``SKIP LOCKED`` on
        PostgreSQL; SQLite's single writer lock serialises this transaction instead).
        """
        rows = self.session.exec(
            select(IntakeItem)
            .where(IntakeItem.status == "claimed")
            .order_by(col(IntakeItem.id))
            .with_for_update(skip_locked=True)
        ).all()
        taken = []
        for item in rows:
            if item.owner == owner or expired(item):
                if item.owner != owner:
                    item.takeovers += 1
                item.owner = owner
                item.lease_until = lease_until
                self.session.add(item)
                taken.append(item)
        self.session.flush()
        return taken

    def renew(self, item_ids: Sequence[int], *, owner: str, lease_until: datetime) -> None:
        """Extend the leases ``owner`` holds on these ledger rows."""
        if not item_ids:
            return
        rows = self.session.exec(
            select(IntakeItem).where(
                col(IntakeItem.id).in_(list(item_ids)),
                IntakeItem.owner == owner,
                IntakeItem.status == "claimed",
            )
        ).all()
        for item in rows:
            item.lease_until = lease_until
            self.session.add(item)

    def get_item(self, item_id: int, *, lock: bool = True) -> IntakeItem | None:
        """A ledger row, row-locked until commit."""
        query = _ITEM_LOCKED if lock else _ITEM
        return self.session.exec(query, params={"item_id": item_id}).first()

    def item_status(self, item_id: int) -> str | None:
        """A ledger row's status (``None`` if it is gone), the row locked until commit.

        With :meth:`finish`, the two Core statements a processor needs instead of loading
        the row through the ORM: 0.32 against 0.54 to 0.68 ms a transaction on SQLite (a
        throwaway script, 300 transactions, 2026-11-30)."""
        status: str | None = self._connection().execute(_ITEM_STATUS, {"item_id": item_id}).scalar()
        return status

    def finish(self, item_id: int, *, status: str, outcome: str | None, sha256: str | None) -> None:
        """Mark the ledger row ``item_id`` final, like :meth:`finish_item`."""
        self._connection().execute(
            _FINISH_ITEM,
            {
                "item_id": item_id,
                "status": status,
                "outcome": outcome,
                "sha256": sha256,
                "finished_at": self.now(),
                "lease_until": None,
            },
        )

    def finish_item(
        self, item: IntakeItem, *, status: str, outcome: str | None, sha256: str | None
    ) -> None:
        """Mark a ledger row final (done, duplicate or failed)."""
        item.status = status
        item.outcome = outcome
        item.sha256 = sha256
        item.finished_at = self.now()
        item.lease_until = None
        self.session.add(item)

    def save(self, *rows: SQLModel) -> None:
        """Persist changes to rows loaded in this transaction."""
        for row in rows:
            self.session.add(row)
        self.session.flush()

    # -- notices -------------------------------------------------------------------

    def put_notice(
        self,
        *,
        owner: str,
        folder: str,
        name: str,
        kind: str,
        message: str,
        since: datetime,
        until: datetime | None,
    ) -> None:
        """Record (or replace) ``owner``'s notice about one file."""
        self.drop_notices(owner, [(folder, name)])
        self.session.add(
            IntakeNotice(
                folder=folder,
                name=name,
                owner=owner,
                kind=kind,
                message=message,
                since=since,
                until=until,
            )
        )
        self.session.flush()

    def drop_notices(self, owner: str, keys: Sequence[tuple[str, str]]) -> None:
        """Remove ``owner``'s notices about these (folder, name) files."""
        table = _table("intake_notices")
        for folder, name in keys:
            self._connection().execute(
                delete(table).where(
                    table.c.owner == owner, table.c.folder == folder, table.c.name == name
                )
            )

    def drop_notices_of(self, gone: Callable[[str], bool]) -> None:
        """Remove the notices of every owner for which ``gone`` holds (a dead worker's)."""
        table = _table("intake_notices")
        owners = self._connection().execute(core_select(table.c.owner).distinct()).scalars()
        for owner in [owner for owner in owners if gone(owner)]:
            self._connection().execute(delete(table).where(table.c.owner == owner))


def wait_for_database(store: Store, should_stop: Callable[[], bool]) -> bool:
    """Wait while the database server cannot be reached, saying so, with backoff to 30 s.

    Returns False when ``should_stop()`` turned true first. A database that cannot be used
    as configured (a file that cannot be opened, a newer schema) raises `StoreError`: only
    a server may come back by itself.
    """
    delay = 1.0
    while True:
        try:
            store.ensure_schema()
            store.check_writable()
            return True
        except DBAPIError as exc:
            logging.getLogger("consentflow").warning(
                "database unavailable (%s); retrying in %.0f s",
                str(exc).splitlines()[0][:200],
                delay,
            )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            if should_stop():
                return False
            time.sleep(0.1)
        delay = min(delay * 2, 30.0)


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed)
        return create_engine(parsed, pool_pre_ping=True)
    except NoSuchModuleError:
        raise StoreError(
            f"[database] url names a database kind SQLAlchemy does not know ({_scheme(url)}): "
            "use sqlite:///consentflow.db or postgresql+psycopg://user@host/database"
        ) from None
    except ArgumentError:
        raise StoreError(
            "[database] url is not a database URL: use sqlite:///consentflow.db or "
            "postgresql+psycopg://user@host/database"
        ) from None
    except ImportError as exc:
        raise StoreError(
            f"the database driver for {_scheme(url)} is not installed ({exc}): for "
            "postgresql+psycopg install consentflow[postgresql], or change [database] url"
        ) from None


def _scheme(url: str) -> str:
    return url.partition(":")[0][:40]


def _sqlite_engine(url: URL) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
    path = url.database

    @event.listens_for(engine, "do_connect")
    def _private_file(*_args: Any) -> None:
        # SQLite creates a missing database with the umask's mode (0644 as a rule) and its
        # -wal and -shm files with the database's: create it empty and 0600 first.
        if path and path != ":memory:" and not path.startswith("file:"):
            with contextlib.suppress(OSError):  # it exists, or SQLite's own error says why not
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Python's sqlite3 opens transactions lazily and upgrades read locks to write
        # locks mid-transaction, which fails with "database is locked" under
        # concurrency; BEGIN IMMEDIATE takes the write lock up front instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        options = connection.get_execution_options()
        if options.get(_ONE_STATEMENT, False):
            return  # autocommit: the statement is its own read transaction
        if options.get(_READ_ONLY, False):
            connection.exec_driver_sql("BEGIN")
            return
        # Set per connection before each write transaction, when it changes (a claim's
        # transaction is followed by its file's durable one).
        synchronous = "NORMAL" if options.get(_NOT_DURABLE, False) else "FULL"
        info = connection.connection.info
        if info.get(_NOT_DURABLE, "FULL") != synchronous:
            connection.exec_driver_sql(f"PRAGMA synchronous={synchronous}")
            info[_NOT_DURABLE] = synchronous
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


#: SQLite results worth waiting for: another process holds the lock.
_SQLITE_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def _unusable(url: URL, exc: DBAPIError) -> str | None:
    """Why ``url``'s database cannot be used, or ``None`` when waiting may mend ``exc``."""
    detail = str(exc.orig).splitlines()[0][:200] if exc.orig is not None else str(exc)[:200]
    if url.get_backend_name() != "sqlite":
        if isinstance(exc, OperationalError | InterfaceError):
            return None  # the server is down, restarting or unreachable: wait for it
        return f"the database {url.render_as_string(hide_password=True)} refused: {detail}"
    name = getattr(exc.orig, "sqlite_errorname", "")
    if name.startswith(_SQLITE_BUSY):
        return None
    path = Path(url.database or "")
    if not path.parent.is_dir():
        why = (
            f"the folder {path.parent} of the SQLite database does not exist: create it, "
            "or set [database] url to a path in an existing folder"
        )
    elif name.startswith("SQLITE_NOTADB"):
        why = (
            f"{path} is not a SQLite database ({detail}): move it away, or set [database] url "
            "to a consentflow database"
        )
    elif name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
        why = (
            f"the SQLite database {path} cannot be opened for reading and writing by this user "
            f"(uid {os.geteuid()}): {detail}; the database file and its folder must be "
            "writable (SQLite writes -wal and -shm files beside it)"
        )
    else:
        why = f"the SQLite database {path} cannot be used: {detail}"
    return why


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, streamed in 64 KiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(65536):
            digest.update(chunk)
    return digest.hexdigest()
