"""Evidence that holds (SPEC §9): the keyed event chain and what `audit verify` checks.

Each tampering of issue 15 is done here as someone with write access to the database
(or to archive/) would, and `consentflow audit verify` must report it; all of them
passed on c1fb782, where the chain was plain SHA-256 with its head in the database.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.eoi_files import filled_eoi
from tests.test_migrations import plain_event
from workflow.audit_key import KEY_ENV, KEY_FILE, AuditKey, load_key
from workflow.cli import app
from workflow.config import load_settings
from workflow.store import REKEY_KIND, Store, event_hash

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    """Run ``consentflow --home HOME ARGS``; return exit code and standard output."""
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout + (result.stderr or "")


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Path:
    """A home folder whose consentflow.toml points at the test database."""
    path = tmp_path / "home"
    path.mkdir()
    (path / "consentflow.toml").write_text(f'[database]\nurl = "{database_url}"\n')
    return path


@pytest.fixture
def keyfile_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose audit key is its own audit.key file (no CONSENTFLOW_AUDIT_KEY)."""
    monkeypatch.delenv(KEY_ENV)
    return home


def _process(home: Path, *names: str) -> None:
    inbox = home / "inbox"
    inbox.mkdir(exist_ok=True)
    for name in names:
        (inbox / f"{name}.pdf").write_bytes(filled_eoi(org_name=f"{name} Network"))
    code, out = cli(home, "run", "--once")
    assert code == 0, out


# -- the key -------------------------------------------------------------------------------


def test_first_start_creates_a_private_key_file_and_keys_every_event(keyfile_home: Path) -> None:
    """The key file is made at first start, 0600; events are HMACs under it, not SHA-256."""
    _process(keyfile_home, "Alpha")
    key_file = keyfile_home / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_key(keyfile_home, create=False)
    store = Store(_url(keyfile_home), audit_key=key)
    events = store.events()
    assert events
    for row in events:
        assert row.hash == event_hash(row, key) != event_hash(row)
    assert cli(keyfile_home, "audit", "verify")[0] == 0

    # Someone who can write the database but not read the key cannot rewrite an event,
    # even recomputing its hash and every link after it as the plain chain allowed.
    _rewrite_plainly(store, events[0].id, actor="mallory")
    code, out = cli(keyfile_home, "audit", "verify")
    assert code == 1
    assert "rewritten without the key" in out
    # Nor can they get the rewrite carried over into a keyed chain by resetting the head
    # to a plain one: writers refuse, and so does `db upgrade` at this schema.
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE chain_head SET key_id = NULL, mac = NULL"))
    assert cli(keyfile_home, "db", "upgrade")[0] == 0
    code, out = cli(keyfile_home, "reject", _references(keyfile_home)[0], "--reason", "no")
    assert code == 78
    assert "without the audit key" in out
    assert cli(keyfile_home, "audit", "verify")[0] == 1
    store.close()


def test_another_key_is_named_as_such(keyfile_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a different key, verify says so (not "edited") and writers refuse to go on."""
    _process(keyfile_home, "Alpha")
    monkeypatch.setenv(KEY_ENV, "x" * 40)
    code, out = cli(keyfile_home, "audit", "verify")
    assert code == 1
    code, out = cli(keyfile_home, "reject", _references(keyfile_home)[0], "--reason", "no")
    assert code == 78
    assert "another audit key" in out
    # The dashboard alone stops at start too, before it listens: on a taken port the old
    # code got as far as listening, and would otherwise have served pages that 500 at the
    # first change.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with (keyfile_home / "consentflow.toml").open("a") as toml:
            toml.write(f'[web]\nlisten = "127.0.0.1:{taken.getsockname()[1]}"\n')
        code, out = cli(keyfile_home, "web")
    assert code == 78
    assert "another audit key" in out


def test_the_environment_variable_wins_and_no_file_is_made(home: Path) -> None:
    """CONSENTFLOW_AUDIT_KEY (set by conftest) keys the chain; no audit.key appears."""
    _process(home, "Alpha")
    assert not (home / KEY_FILE).exists()
    key = AuditKey(os.environ[KEY_ENV].encode(), KEY_ENV)
    row = Store(_url(home), audit_key=key).events()[0]
    assert row.hash == event_hash(row, key)


def test_a_key_file_others_can_read_is_refused(keyfile_home: Path) -> None:
    """A key anyone can read is no secret: the command stops and says what to run."""
    _process(keyfile_home, "Alpha")
    (keyfile_home / KEY_FILE).chmod(0o644)
    for command in (["audit", "verify"], ["reject", _references(keyfile_home)[0], "--reason", "x"]):
        code, out = cli(keyfile_home, *command)
        assert code == 78, command
        assert "chmod 600" in out


def test_db_upgrade_carries_a_plain_chain_over_with_a_recorded_rekey(
    keyfile_home: Path,
) -> None:
    """A database from before the key (0004_i13, plain SHA-256 events) is carried over
    by `db upgrade`: a re-key event names the plain head, and the plain part stays
    protected — editing it afterwards is reported."""
    store = Store(_url(keyfile_home))
    store.upgrade("0004_i13")
    first = plain_event(store, None, "one")
    last = plain_event(store, None, "two")
    code, out = cli(keyfile_home, "db", "upgrade")
    assert code == 0, out
    assert "carried over" in out
    rekey = store.events()[-1]
    assert rekey.kind == REKEY_KIND
    assert rekey.data["plain_head"] == last
    assert rekey.data["plain_events"] == 2
    assert cli(keyfile_home, "audit", "verify")[0] == 0
    assert cli(keyfile_home, "db", "upgrade")[0] == 0  # a second time: no second re-key
    assert [row.kind for row in store.events()].count(REKEY_KIND) == 1

    with store.engine.begin() as connection:
        connection.execute(text("UPDATE events SET reason = 'three' WHERE hash = :h"), {"h": first})
    code, out = cli(keyfile_home, "audit", "verify")
    assert code == 1
    store.close()


# -- helpers -------------------------------------------------------------------------------


def _url(home: Path) -> str:
    return load_settings(home).database_url


def _references(home: Path) -> list[str]:
    code, out = cli(home, "status", "--json")
    assert code == 0
    return [row["reference"] for row in json.loads(out)]


def _rewrite_plainly(store: Store, event_id: int | None, **changes: str) -> None:
    """Edit one event and recompute every plain SHA-256 hash and link from it on, and the
    head: the rewrite that passed `audit verify` before the chain was keyed."""
    rows = store.events()
    previous = None
    with store.engine.begin() as connection:
        for row in rows:
            if row.id == event_id:
                for name, value in changes.items():
                    setattr(row, name, value)
            if previous is not None:
                row.prev_hash = previous
            if row.id is not None and event_id is not None and row.id >= event_id:
                row.hash = event_hash(row)
                connection.execute(
                    text(
                        "UPDATE events SET actor = :actor, prev_hash = :p, hash = :h WHERE id = :id"
                    ),
                    {"actor": row.actor, "p": row.prev_hash, "h": row.hash, "id": row.id},
                )
            previous = row.hash
        connection.execute(text("UPDATE chain_head SET last_hash = :h"), {"h": previous})


# -- what `audit verify` checks: each tampering of issue 15 ------------------------------------


@pytest.fixture
def office(home: Path) -> Path:
    """A home with three applications: one issued a consent, two awaiting review."""
    _process(home, "Alpha", "Beta", "Gamma")
    first = _references(home)[0]
    code, out = cli(home, "approve", first, "--by", "anna")
    assert code == 0, out
    return home


def _verify(home: Path) -> tuple[int, dict[str, object]]:
    code, out = cli(home, "audit", "verify", "--json")
    return code, json.loads(out)


def _codes(report: dict[str, object]) -> set[str]:
    problems = report["problems"]
    assert isinstance(problems, list)
    return {problem["code"] for problem in problems}


def _sql(home: Path, *statements: str) -> None:
    store = Store(_url(home))
    with store.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    store.close()


def test_untouched_office_passes(office: Path) -> None:
    """Nothing edited: exit 0, with what was compared."""
    code, report = _verify(office)
    assert code == 0, report
    assert report["ok"] is True
    assert report["applications"] == 3
    assert report["documents"] == 4  # three EOIs and one consent
    code, out = cli(office, "audit", "verify")
    assert "3 applications and 4 documents agree" in out


def test_a_reissued_consent_agrees_and_its_record_is_checked(office: Path) -> None:
    """A reissue (an event that names the new consent, the state kept) passes; the old
    consent's hash put back into the record does not."""
    reference = _references(office)[0]
    old = json.loads(cli(office, "show", reference, "--json")[1])["issued_sha256"]
    code, out = cli(office, "reissue", reference, "--reason", "the seal changed", "--by", "anna")
    assert code == 0, out
    code, report = _verify(office)
    assert code == 0, report
    assert report["documents"] == 5
    _sql(office, f"UPDATE applications SET issued_sha256 = '{old}' WHERE reference = '{reference}'")
    code, report = _verify(office)
    assert code == 1
    assert _codes(report) == {"issued_mismatch"}


def test_deleting_the_newest_events_and_moving_the_head_back_is_detected(
    office: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Truncation with a consistent head (last hash and count) was "intact" on c1fb782.

    The newest event here is a user's: no record disagrees with its removal, so only the
    keyed count of the head can tell."""
    monkeypatch.setenv("PW", "a long enough password 123")
    assert cli(office, "user", "add", "olga", "--role", "office", "--password-env", "PW")[0] == 0
    assert _verify(office)[0] == 0
    store = Store(_url(office))
    *kept, newest = store.events()
    store.close()
    assert newest.kind == "user"
    _sql(
        office,
        f"DELETE FROM events WHERE id = {newest.id}",
        f"UPDATE chain_head SET last_hash = '{kept[-1].hash}', count = {len(kept)}",
    )
    code, report = _verify(office)
    assert code == 1
    assert report["chain_ok"] is False
    assert "HMAC" in str(report["problem"])
    assert _codes(report) == set()  # the records themselves agree: only the head tells


def test_deleting_the_newest_state_events_and_the_head_is_detected(office: Path) -> None:
    """The issue's case: the newest events (the approval) removed, head rewritten."""
    store = Store(_url(office))
    events = store.events()
    store.close()
    cut = next(i for i, row in enumerate(events) if row.to_state == "consent_issued")
    _sql(
        office,
        f"DELETE FROM events WHERE id >= {events[cut].id}",
        f"UPDATE chain_head SET last_hash = '{events[cut - 1].hash}', count = {cut}",
    )
    code, report = _verify(office)
    assert code == 1
    assert report["chain_ok"] is False
    assert "state_mismatch" in _codes(report)


def test_deleting_every_event_and_the_head_with_applications_present_is_detected(
    office: Path,
) -> None:
    """`delete from events; delete from chain_head` gave "intact: 0 events" on c1fb782."""
    _sql(office, "DELETE FROM events", "DELETE FROM chain_head")
    code, report = _verify(office)
    assert code == 1
    assert report["events"] == 0
    problems = report["problems"]
    assert isinstance(problems, list)
    assert [p["code"] for p in problems if p["code"] == "events_missing"] == ["events_missing"] * 3
    code, out = cli(office, "audit", "verify")
    assert code == 1
    assert "has no events: its history was deleted" in out


def test_a_state_set_in_the_database_is_detected(office: Path) -> None:
    """`update applications set state='signed'` passed on c1fb782."""
    _sql(office, "UPDATE applications SET state = 'signed'")
    code, report = _verify(office)
    assert code == 1
    assert report["chain_ok"] is True
    assert "state_mismatch" in _codes(report)
    problems = report["problems"]
    assert isinstance(problems, list)
    assert sum(p["code"] == "state_mismatch" for p in problems) == 3


def test_an_issued_hash_set_in_the_database_is_detected(office: Path) -> None:
    """The issued consent's hash is the one the issuing event names."""
    forged = "f" * 64
    _sql(office, f"UPDATE applications SET issued_sha256 = '{forged}' WHERE issued_sha256 <> ''")
    code, report = _verify(office)
    assert code == 1
    assert {"issued_mismatch", "document_unrecorded"} <= _codes(report)


def test_a_document_removed_from_the_archive_is_detected(office: Path) -> None:
    """Every recorded document must be in archive/ under its SHA-256."""
    files = sorted(path for path in (office / "archive").rglob("*") if path.is_file()
                   and len(path.name) == 64)  # fmt: skip
    assert len(files) == 4
    files[0].unlink()
    code, report = _verify(office)
    assert code == 1
    assert _codes(report) == {"document_missing"}


def test_a_document_altered_in_the_archive_is_detected(office: Path) -> None:
    """… and with the bytes that hash to it."""
    files = sorted(path for path in (office / "archive").rglob("*") if path.is_file()
                   and len(path.name) == 64)  # fmt: skip
    target = files[-1]
    target.chmod(0o600)
    target.write_bytes(target.read_bytes() + b"%% appended\n")
    code, report = _verify(office)
    assert code == 1
    assert _codes(report) == {"document_altered"}
