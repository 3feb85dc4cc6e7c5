"""Databases that cannot be used as configured: a sentence and exit 78, never a traceback,
never a wait; a database server that does not answer is waited for, and a stop still stops.

Every case runs the real ``consentflow`` command in a process of its own.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.eoi_files import filled_eoi
from tests.processes import consentflow, without_override


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with one EOI waiting in its inbox."""
    path = tmp_path / "home"
    (path / "inbox").mkdir(parents=True)
    (path / "inbox" / "eoi.pdf").write_bytes(filled_eoi())
    return path


def _refused(result: subprocess.CompletedProcess[str], *sentence: str) -> None:
    assert result.returncode == 78, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for part in sentence:
        assert part in result.stderr, result.stderr[-3000:]
    assert "database unavailable" not in result.stderr


def test_a_file_that_is_not_sqlite(home: Path) -> None:
    """``consentflow.db`` holding something else: refused, named, left as it was."""
    database = home / "consentflow.db"
    database.write_bytes(b"these are the minutes of the 2025 meeting, not a database\n" * 40)
    before = database.read_bytes()
    result = consentflow(home, "run", "--once", database_url="sqlite:///consentflow.db")
    _refused(result, f"{database} is not a SQLite database")
    assert database.read_bytes() == before
    assert (home / "inbox" / "eoi.pdf").is_file()


@pytest.mark.parametrize(
    ("url", "sentence"),
    [
        ("a database, please", "[database] url is not a database URL"),
        ("nosuchdb://host/db", "names a database kind SQLAlchemy does not know (nosuchdb)"),
        (
            "postgresql+psycopg2://consentflow@127.0.0.1/consentflow",
            "the database driver for postgresql+psycopg2 is not installed",
        ),
    ],
    ids=["malformed", "unknown-kind", "missing-driver"],
)
def test_a_url_that_cannot_work(home: Path, url: str, sentence: str) -> None:
    """A malformed URL, an unknown database kind, a driver that is not installed."""
    _refused(consentflow(home, "run", "--once", database_url=url), sentence)


def test_a_sqlite_path_in_a_missing_folder(home: Path) -> None:
    """The folder of the SQLite file does not exist: refused at once, not retried for ever."""
    missing = home / "no" / "such" / "folder"
    result = consentflow(home, "run", "--once", database_url=f"sqlite:///{missing / 'cf.db'}")
    _refused(result, f"the folder {missing} of the SQLite database does not exist")
    assert not missing.exists()


def test_a_read_only_database(home: Path) -> None:
    """A database (and folder) this user may not write: refused at once, with what to fix."""
    prefix = without_override()
    data = home / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'cf.db'}"
    first = consentflow(home, "run", "--once", database_url=url)
    assert first.returncode == 0, first.stderr[-3000:]
    (home / "inbox" / "later.pdf").write_bytes(filled_eoi(org_name="Later Network"))
    for path in (*data.iterdir(), data):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        result = consentflow(home, "run", "--once", database_url=url, prefix=prefix, timeout=60)
    finally:
        data.chmod(0o755)
    _refused(
        result, f"the SQLite database {data / 'cf.db'} cannot be opened for reading and writing"
    )
    assert (home / "inbox" / "later.pdf").is_file()


def test_a_database_from_a_newer_consentflow(home: Path) -> None:
    """A schema revision this consentflow does not know: ``run`` and ``db upgrade`` both
    refuse it with the same sentence (upgrading cannot go backwards)."""
    database = home / "cf.db"
    assert consentflow(home, "db", "upgrade").returncode == 0
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    sentence = "is at schema revision 0099_from_the_future, which this consentflow"
    _refused(consentflow(home, "run", "--once"), sentence, "a newer consentflow made it")
    _refused(consentflow(home, "db", "upgrade"), sentence)


@pytest.mark.parametrize("web", [False, True], ids=["engine", "with-dashboard"])
def test_a_server_that_does_not_answer_is_waited_for_and_a_stop_still_stops(
    home: Path, tmp_path: Path, web: bool
) -> None:
    """A PostgreSQL address nobody listens on may be a server still starting: ``run`` waits
    for it, saying so, and SIGTERM ends the wait at once. With the dashboard on (the
    default), the wait comes before the dashboard starts, not a traceback."""
    log = tmp_path / "run.log"
    options = [] if web else ["--no-web"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "workflow", "--home", str(home), "run", *options],
            env={
                **os.environ,
                "CONSENTFLOW_DATABASE__URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "database unavailable" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        assert "database unavailable" in log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        process.kill()
        process.wait()
    assert "Traceback" not in log.read_text()
