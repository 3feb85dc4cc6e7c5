"""The database as the read-only commands see it: opened read-only, never created or migrated.

``status``, ``show``, ``log`` and ``audit verify`` must answer at once, must not take the
write lock (a writer's long transaction would make them wait) and must work on a
database this user may only read. On SQLite this module opens the file itself with
``sqlite3`` in ``mode=ro`` (no SQLAlchemy, no Alembic to import: the command starts in a
fraction of the time); on another database it opens the :class:`~workflow.store.Store`
and checks, without changing anything, that the schema is this version's.

The rows it returns have the attributes of the store's rows that
:mod:`workflow.records` reads, so the JSON documents come from the same builders.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

#: What to do when the folder is not a consentflow home (every message ends with it).
HOW_TO_FIX = (
    "pass --home DIR (or set CONSENTFLOW_HOME) naming the folder where `consentflow run` "
    "runs, or start a new home there with `consentflow --home DIR run`"
)


class NotAHomeError(Exception):
    """The folder is not a consentflow home, or its database cannot be read (exit 78)."""


def head_revision() -> str:
    """This version's schema revision, read from the migration files (no Alembic import)."""
    folder = Path(__file__).parent / "migrations" / "versions"
    revisions: set[str] = set()
    downs: set[str] = set()
    for path in folder.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r"^revision[^=]*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        # one revision, or a tuple of them for a merge migration
        down = re.search(r"^down_revision[^=]*=(.*)$", text, re.MULTILINE)
        if revision:
            revisions.add(revision.group(1))
            downs.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)) if down else ())
    heads = [revision for revision in revisions if revision not in downs]
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {heads}")
    return heads[0]


def home_folder(home: Path) -> None:
    """Raise :class:`NotAHomeError` when ``home`` is not an existing folder."""
    if not home.exists():
        raise NotAHomeError(f"the home folder {home} does not exist: {HOW_TO_FIX}")
    if not home.is_dir():
        raise NotAHomeError(f"the home {home} is not a folder: {HOW_TO_FIX}")


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or ``None`` for any other database."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        return None
    rest = url[len(prefix) :].partition("?")[0]
    return Path(rest) if rest and rest != ":memory:" else None


def open_reader(url: str, home: Path, **options: Any) -> Any:
    """A read-only view of the database at ``url``: :class:`SqliteReader` or the Store.

    Raises :class:`NotAHomeError` when there is no consentflow database there, and the
    store's own ``StoreError`` for a server database that cannot be used. ``options`` go
    to the Store of a server database.
    """
    home_folder(home)
    path = sqlite_path(url)
    if path is not None:
        return SqliteReader(path, home)
    if url.startswith("sqlite"):
        raise NotAHomeError(f"[database] url {url} names no database file: {HOW_TO_FIX}")
    from workflow.store import SchemaError, Store  # noqa: PLC0415 - a server database

    store = Store(url, **options)
    current = store.current_revision()
    if current is None:
        raise NotAHomeError(
            f"the database {store._shown_url()} has no consentflow schema: {HOW_TO_FIX}"
        )
    head = store.head_revision()
    if current != head:
        store._refuse_unknown(current)
        raise SchemaError(
            f"the database is at schema revision {current}, this consentflow needs {head}: "
            "run `consentflow db upgrade` (back up the database first)"
        )
    return store


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


class SqliteReader:
    """A SQLite consentflow database opened read-only (``mode=ro``): no write lock, ever."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        if not path.exists():
            folder = "" if path.parent.is_dir() else f" (and its folder {path.parent} is missing)"
            raise NotAHomeError(
                f"{home} is not a consentflow home: there is no database {path}{folder}; "
                + HOW_TO_FIX
            )
        self.connection = self._connect()
        self._check_schema()

    def _connect(self) -> sqlite3.Connection:
        uri = self.uri = f"file:{quote(str(self.path))}?mode=ro"
        try:
            connection = sqlite3.connect(uri, uri=True, timeout=5)
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise NotAHomeError(
                    f"{self.path} is not a SQLite database ({exc}): set [database] url to a "
                    f"consentflow database, or {HOW_TO_FIX}"
                ) from None
            # A WAL database in a folder this user cannot write, closed cleanly (no -wal
            # or -shm left): SQLite cannot make its shared-memory file, but nobody can be
            # writing it either, so it is read as an immutable file.
            if os.path.exists(f"{self.path}-wal"):
                raise NotAHomeError(
                    f"the SQLite database {self.path} cannot be read: {exc}"
                ) from None
            self.uri = f"{uri}&immutable=1"
            try:
                connection = sqlite3.connect(self.uri, uri=True, timeout=5)
                connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            except sqlite3.DatabaseError as again:
                raise NotAHomeError(
                    f"the SQLite database {self.path} cannot be read: {again}"
                ) from None
        connection.row_factory = sqlite3.Row
        return connection

    def _check_schema(self) -> None:
        try:
            row = self.connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None:
            raise NotAHomeError(
                f"{self.path} is not a consentflow database (no schema revision): " + HOW_TO_FIX
            )
        current, head = row[0], head_revision()
        if current != head:
            folder = Path(__file__).parent / "migrations" / "versions"
            if not any(folder.glob(f"{current}_*.py")) and current not in {"0001", "0002"}:
                raise NotAHomeError(
                    f"the database {self.path} is at schema revision {current}, which this "
                    f"consentflow (schema {head}) does not know: a newer consentflow made it"
                )
            raise NotAHomeError(
                f"the database is at schema revision {current}, this consentflow needs {head}: "
                "run `consentflow db upgrade` (back up the database first)"
            )

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    def store(self, **options: Any) -> Any:
        """The full :class:`~workflow.store.Store` on the same read-only connection URI
        (``verify`` and ``audit verify`` need its queries; it never writes through it);
        ``options`` are the Store's own keyword arguments."""
        from workflow.store import Store  # noqa: PLC0415

        self.close()
        return Store(f"sqlite:///{self.uri}&uri=true", **options)

    def _rows(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.connection.execute(sql, args).fetchall()

    # -- the reads the commands need (the same names as the Store's) ---------------------

    def applications(self, state: str | None = None) -> list[SimpleNamespace]:
        """Every application, oldest first, optionally in one state."""
        sql = "SELECT * FROM applications WHERE reference IS NOT NULL"
        args: tuple[Any, ...] = ()
        if state is not None:
            sql += " AND state = ?"
            args = (str(state),)
        return [_application(row) for row in self._rows(sql + " ORDER BY id", *args)]

    def summaries(self, state: str | None = None) -> list[dict[str, Any]]:
        """``status --json``'s objects, reading only the columns they need."""
        sql = (
            "SELECT reference, state, org_name, country, received_at, updated_at "
            "FROM applications WHERE reference IS NOT NULL"
        )
        args: tuple[Any, ...] = ()
        if state is not None:
            sql += " AND state = ?"
            args = (str(state),)
        return [
            {
                "reference": row[0],
                "state": row[1],
                "org_name": row[2],
                "country": row[3],
                "received_at": _iso(row[4]),
                "updated_at": _iso(row[5]),
            }
            for row in self.connection.execute(sql + " ORDER BY id", args)
        ]

    def application(self, reference: str) -> SimpleNamespace | None:
        """One application by reference."""
        rows = self._rows("SELECT * FROM applications WHERE reference = ?", reference)
        return _application(rows[0]) if rows else None

    def documents(self, application_id: int) -> list[SimpleNamespace]:
        """The documents of an application, oldest first."""
        rows = self._rows(
            "SELECT * FROM documents WHERE application_id = ? ORDER BY id", application_id
        )
        return [
            SimpleNamespace(**dict(row) | {"created_at": _time(row["created_at"])}) for row in rows
        ]

    def signature_reports(self, application_id: int) -> list[SimpleNamespace]:
        """The verification attempts for an application, oldest first."""
        rows = self._rows(
            "SELECT * FROM signature_reports WHERE application_id = ? ORDER BY id", application_id
        )
        return [
            SimpleNamespace(
                **dict(row)
                | {
                    "accepted": bool(row["accepted"]),
                    "report": _json(row["report"]) or {},
                    "created_at": _time(row["created_at"]),
                }
            )
            for row in rows
        ]

    def events(
        self, *, reference: str | None = None, after_id: int = 0, limit: int | None = None
    ) -> list[SimpleNamespace]:
        """Events oldest first; with ``limit``, the newest ``limit`` of them."""
        sql = "SELECT * FROM events WHERE id > ?"
        args: list[Any] = [after_id]
        if reference is not None:
            sql += " AND reference = ?"
            args.append(reference)
        if limit is not None:
            rows = self._rows(sql + " ORDER BY id DESC LIMIT ?", *args, limit)[::-1]
        else:
            rows = self._rows(sql + " ORDER BY id", *args)
        return [_event(row) for row in rows]

    def notices(self, folders: dict[str, Path]) -> list[SimpleNamespace]:
        """The notices ``status`` shows (as :func:`workflow.notices.shown` selects them)."""
        seen: set[tuple[str, str]] = set()
        shown = []
        for row in self._rows("SELECT * FROM intake_notices ORDER BY since, id"):
            folder = folders.get(row["folder"])
            key = (row["folder"], row["name"])
            if folder is None or key in seen or not os.path.lexists(folder / row["name"]):
                continue
            if row["kind"] == "waiting" and not _owner_alive(row["owner"]):
                continue
            seen.add(key)
            shown.append(
                SimpleNamespace(
                    **dict(row) | {"since": _time(row["since"]), "until": _time(row["until"])}
                )
            )
        return shown


def _iso(value: str) -> str:
    """``datetime.isoformat()`` of a stored time, by text when it has the form SQLAlchemy
    stores in SQLite (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``): ``status`` formats 20,000
    of them for 10,000 applications."""
    if len(value) == 26 and value[10] == " " and value[19] == "." and value[20:].isdigit():
        if value.endswith(".000000"):  # isoformat() leaves out zero microseconds
            return f"{value[:10]}T{value[11:19]}+00:00"
        return f"{value[:10]}T{value[11:]}+00:00"
    moment = _time(value)
    assert moment is not None
    return moment.isoformat()


def _application(row: sqlite3.Row) -> SimpleNamespace:
    values = dict(row)
    for name in ("fields", "problems", "findings"):
        values[name] = _json(values.get(name))
    for name in ("received_at", "updated_at"):
        values[name] = _time(values.get(name))
    return SimpleNamespace(**values)


def _event(row: sqlite3.Row) -> SimpleNamespace:
    return SimpleNamespace(**dict(row) | {"at": _time(row["at"]), "data": _json(row["data"])})


def _owner_alive(owner: str) -> bool:
    """:func:`workflow.leases.owner_alive` without importing the store."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    if int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
