"""The outbox's sender against a real SMTP server (aiosmtpd): retries, Message-IDs, crashes,
reminders, and the README's table of who is told of what."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.processes import wait_for
from tests.smtpserver import SmtpServer
from workflow.config import Settings, load_settings
from workflow.lifecycle.mail import KINDS as SUPPORTER_KINDS
from workflow.mail_sender import MailService, Sender, send_reminders
from workflow.notifications import APPLICANT, COMMISSION, OFFICE, WHO_IS_TOLD
from workflow.states import State
from workflow.store import Store

COMMISSION_TO = "signer@commission.example.eu"
OFFICE_TO = "office-staff@example.org"
OFFICE_TEAM = f"Office staff <{OFFICE_TO}>, deputy@example.org"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running SMTP server that keeps what it receives."""
    server = SmtpServer().start()
    yield server
    server.stop()


def settings_for(home: Path, url: str, smtp: SmtpServer, **mail: Any) -> Settings:
    """Settings that send through ``smtp`` quickly."""
    return load_settings(
        home,
        database={"url": url},
        mail={
            "smtp_url": smtp.url,
            "from": "Covenant office <office@cf.example.org>",
            "commission_to": COMMISSION_TO,
            "office_to": OFFICE_TEAM,
            "retry_backoff_s": 1,
            **mail,
        },
        web={"public_url": "https://cf.example.org"},
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store at the current schema."""
    store = Store(f"sqlite:///{tmp_path / 'cf.db'}")
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def any_store(database_url: str) -> Iterator[Store]:
    """A store on SQLite and on PostgreSQL (CONSENTFLOW_TEST_DATABASE_URL)."""
    store = Store(database_url)
    store.ensure_schema()
    yield store
    store.close()


def new_application(store: Store, *, lang: str = "en", email: str = "anna@example.fi") -> str:
    """A received application (no message yet)."""
    with store.tx() as tx:
        app = tx.new_application(
            state=State.RECEIVED,
            eoi_sha256=os.urandom(32).hex(),
            org_name="Kuntaverkosto",
            country="FI",
            lang=lang,
            fields={"org_name": "Kuntaverkosto", "contact_email": email},
        )
        tx.append_event("received", actor="system", reference=app.reference)
        assert app.reference is not None
        return app.reference


def move(store: Store, reference: str, target: State, **kwargs: Any) -> None:
    """One state change, through the store (which queues its messages)."""
    with store.tx() as tx:
        app = tx.get_application(reference)
        assert app is not None
        tx.move(app, target, actor="system", **kwargs)


def test_accepted_only_after_250_with_its_message_id(
    tmp_path: Path, any_store: Store, smtp: SmtpServer
) -> None:
    """A message goes out as text + HTML with our headers; its row says accepted, with the
    server's reply and the Message-ID the server saw, and an event records it."""
    settings = settings_for(tmp_path, any_store.url, smtp)
    reference = new_application(any_store, lang="fi")
    move(any_store, reference, State.AWAITING_REVIEW)
    sender = Sender(any_store, settings)
    assert sender.send_due() == 1
    sender.close()
    [message] = smtp.messages()
    [row] = any_store.notifications()
    assert row.status == "accepted" and row.smtp_reply is not None
    assert row.smtp_reply.startswith("250")
    assert message["Message-ID"] == row.message_id
    assert message["To"] == "anna@example.fi"
    assert message["Auto-Submitted"] == "auto-generated"
    assert reference in str(message["Subject"]) and "vastaanotettu" in str(message["Subject"])
    kinds = [part.get_content_type() for part in message.walk()]
    assert kinds == ["multipart/alternative", "text/plain", "text/html"]
    [event] = [
        event for event in any_store.events(reference=reference) if event.kind == "mail_accepted"
    ]
    assert event.data["message_id"] == row.message_id
    assert Sender(any_store, settings).send_due() == 0  # nothing twice


def test_permanent_refusal_is_failed_not_sent(
    tmp_path: Path, store: Store, smtp: SmtpServer
) -> None:
    """A 5xx answer marks the message failed at once (never "sent"), with an event."""
    settings = settings_for(tmp_path, store.url, smtp)
    smtp.reply = "554 5.7.1 rejected for policy reasons"
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    [queued] = store.notifications()
    assert "status_path" in queued.context  # the link, until the message is sent or given up
    Sender(store, settings).send_due()
    [row] = store.notifications()
    assert row.status == "failed" and row.last_error is not None and "554" in row.last_error
    assert any(event.kind == "mail_failed" for event in store.events(reference=reference))
    assert "status_path" not in row.context and row.context["reference"] == reference


def test_smtp_down_for_30_s_then_each_message_once(
    tmp_path: Path, store: Store, smtp: SmtpServer
) -> None:
    """With the server away for 30 s the messages stay queued; once it is back, each is
    delivered exactly once."""
    settings = settings_for(tmp_path, store.url, smtp)
    smtp.stop()
    references = [new_application(store) for _ in range(3)]
    for reference in references:
        move(store, reference, State.AWAITING_REVIEW)
    stop = threading.Event()
    service = MailService(store, settings, poll_s=0.2)
    service.start(stop)
    try:
        time.sleep(30)
        rows = store.notifications()
        assert [row.status for row in rows] == ["queued"] * 3
        assert all(row.attempts >= 2 and row.last_error for row in rows)
        smtp.start()
        assert wait_for(
            lambda: all(row.status == "accepted" for row in store.notifications()), timeout=40
        )
    finally:
        stop.set()
        service.join()
    ids = smtp.message_ids()
    assert len(ids) == 3 and len(set(ids)) == 3
    assert set(ids) == {row.message_id for row in store.notifications()}


SENDER_SCRIPT = """
import sys, time
from pathlib import Path
from workflow.config import load_settings
from workflow.mail_sender import Sender
from workflow.store import Store
settings = load_settings(Path(sys.argv[1]), database={"url": sys.argv[2]},
                         mail={"smtp_url": sys.argv[3]})
store = Store(settings.database_url)
Sender(store, settings).send_due()
"""


def test_sigkill_between_accept_and_commit_resends_once_with_the_same_id(
    tmp_path: Path, store: Store, smtp: SmtpServer
) -> None:
    """The SMTP server accepted, the sender died before recording it: the next sender sends
    it once more with the same Message-ID, and then never again."""
    settings = settings_for(tmp_path, store.url, smtp)
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    database = str(tmp_path / "cf.db")
    blocker = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    held = threading.Event()

    def hold_database(_message: EmailMessage) -> None:
        # Before the server answers 250, take the database's write lock: the sender
        # then hangs in the commit that would record the acceptance.
        blocker.execute("BEGIN IMMEDIATE")
        held.set()

    smtp.on_data = hold_database
    child = subprocess.Popen(
        [sys.executable, "-c", SENDER_SCRIPT, str(tmp_path), store.url, smtp.url],
        cwd=REPO,
    )
    try:
        assert held.wait(60), "the sender never reached the SMTP server"
        time.sleep(1.0)  # it has the 250 and waits for the lock
        assert child.poll() is None
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        smtp.on_data = None
        blocker.execute("ROLLBACK")
        blocker.close()
    [row] = store.notifications()
    assert row.status == "queued"  # the acceptance was never recorded
    first_id = row.message_id
    assert smtp.message_ids() == [first_id]
    sender = Sender(store, settings)
    assert sender.send_due() == 1  # at once: the holder of the lease is gone
    assert sender.send_due() == 0
    sender.close()
    assert smtp.message_ids() == [first_id, first_id]
    [row] = store.notifications()
    assert row.status == "accepted" and row.message_id == first_id


def test_reminders_capped_each_an_event_office_after_the_third(
    tmp_path: Path, store: Store, smtp: SmtpServer
) -> None:
    """Reminders after signature_after_days then every repeat_days, at most max_reminders;
    the third one tells the office; a signature stops them."""
    settings = settings_for(tmp_path, store.url, smtp)
    settings = settings.model_copy(
        update={
            "reminders": settings.reminders.model_copy(
                update={"signature_after_days": 7, "repeat_days": 3, "max_reminders": 4}
            )
        }
    )
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    move(store, reference, State.CONSENT_ISSUED)
    app = store.application(reference)
    assert app is not None
    issued = app.updated_at

    def after(days: int) -> datetime:
        return issued + timedelta(days=days, minutes=1)

    assert send_reminders(store, settings, after(6)) == 0
    assert send_reminders(store, settings, after(7)) == 1
    assert send_reminders(store, settings, after(8)) == 0
    assert send_reminders(store, settings, after(10)) == 1
    assert send_reminders(store, settings, after(13)) == 1
    for days in (16, 40, 400):
        send_reminders(store, settings, after(days))
    events = [event for event in store.events(reference=reference)]
    reminders = [event for event in events if event.kind == "signature_reminder"]
    assert [event.data["count"] for event in reminders] == [1, 2, 3, 4]
    rows = store.notifications()
    assert [row.recipient for row in rows if row.kind == "signature_reminder"] == [COMMISSION] * 4
    assert [row.kind for row in rows if row.recipient == OFFICE] == ["signature_overdue"]


def test_reminders_stop_when_signed(tmp_path: Path, store: Store, smtp: SmtpServer) -> None:
    """A signed consent is never reminded of."""
    settings = settings_for(tmp_path, store.url, smtp)
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    move(store, reference, State.CONSENT_ISSUED)
    app = store.application(reference)
    assert app is not None
    assert send_reminders(store, settings, app.updated_at + timedelta(days=7, minutes=1)) == 1
    move(store, reference, State.SIGNED)
    assert send_reminders(store, settings, app.updated_at + timedelta(days=60)) == 0


def test_reminders_restart_from_a_reissue(tmp_path: Path, store: Store, smtp: SmtpServer) -> None:
    """A re-issued consent (its ``reissued`` event) counts its reminders afresh from then."""
    settings = settings_for(tmp_path, store.url, smtp)
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    move(store, reference, State.CONSENT_ISSUED)
    app = store.application(reference)
    assert app is not None
    start = datetime.now(UTC)
    assert send_reminders(store, settings, start + timedelta(days=7)) == 1
    reissue_store = Store(store.url, clock=lambda: start + timedelta(days=8))
    with reissue_store.tx() as tx:
        tx.append_event("reissued", actor="office", reference=reference)
    reissue_store.close()
    assert send_reminders(store, settings, start + timedelta(days=14)) == 0
    assert send_reminders(store, settings, start + timedelta(days=15, hours=1)) == 1
    reminders = [e for e in store.events(reference=reference) if e.kind == "signature_reminder"]
    assert [event.data["count"] for event in reminders] == [1, 1]


# -- the README's table ---------------------------------------------------------------------


def _readme_rows() -> list[tuple[str, str, str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Who is told of what", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("event", "") and not cells[0].startswith("-"):
            rows.append((cells[0], cells[1], cells[2].split("`")[0].split(":")[0].strip()))
    return rows


READERS = {"the applicant": APPLICANT, "the Commission": COMMISSION, "the office": OFFICE}
ADDRESSES = {
    APPLICANT: ["anna@example.fi"],
    COMMISSION: [COMMISSION_TO],
    OFFICE: [OFFICE_TO, "deputy@example.org"],
}


def test_readme_table_is_the_code_table() -> None:
    """The README's table of who is told of what has one row per rule, and no other."""
    rows = _readme_rows()
    assert rows, "README has no table under 'Who is told of what'"
    assert {(event, READERS[who], kind) for event, who, kind in rows} == {
        (rule.event, rule.recipient, rule.kind) for rule in WHO_IS_TOLD
    }


def test_readme_supporter_table_is_the_lifecycle_kinds() -> None:
    """The README's table of what the supporter is told names each message kind of
    `workflow.lifecycle.mail` once, and no other."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### What the supporter is told", 1)[1].split("\n#", 1)[0]
    kinds = re.findall(r"^\|[^|]*\| `([a-z_]+)`", section, flags=re.MULTILINE)
    assert sorted(kinds) == sorted(SUPPORTER_KINDS)


@pytest.mark.parametrize("row", _readme_rows(), ids=lambda row: f"{row[0]}:{row[2]}")
def test_readme_row_is_what_happens(
    tmp_path: Path, store: Store, smtp: SmtpServer, row: tuple[str, str, str]
) -> None:
    """Each row, acted out: the event happens, and that reader receives that message."""
    event, who, kind = row
    settings = settings_for(tmp_path, store.url, smtp)
    reference = new_application(store)
    path = {
        "awaiting_review": [State.AWAITING_REVIEW],
        "invalid": [State.INVALID],
        "ineligible": [State.AWAITING_REVIEW, State.INELIGIBLE],
        "consent_issued": [State.AWAITING_REVIEW, State.CONSENT_ISSUED],
        "signed": [State.AWAITING_REVIEW, State.CONSENT_ISSUED, State.SIGNED],
    }
    target = event.partition(" → ")[2]
    if event == "consent reissued":  # as Applications.reissue records it (issue 15)
        for state in path["consent_issued"]:
            move(store, reference, state)
        with store.tx() as tx:
            tx.append_event("reissued", actor="office", reference=reference, data={})
    elif target:
        for state in path[target]:
            move(store, reference, state, reason="why")
    else:  # reminders
        for state in path["consent_issued"]:
            move(store, reference, state)
        now = datetime.now(UTC)
        for days in (7, 14, 21):
            send_reminders(store, settings, now + timedelta(days=days, minutes=1))
    sender = Sender(store, settings)
    while sender.send_due():
        pass
    sender.close()
    address = ADDRESSES[READERS[who]]
    got = [
        message for rcpts, message in smtp.received
        if rcpts == address and message["X-Consentflow-Reference"] == reference
    ]  # fmt: skip
    subjects = [str(message["Subject"]) for message in got]
    expected = {
        "received": "was received",
        "invalid": "needs corrections",
        "ineligible": "was not accepted",
        "consent_issued": "issued for signature",
        "consent_to_sign": "waits for your signature",
        "signed": "was signed",
        "signature_reminder": "Reminder",
        "signature_overdue": "still unsigned after 3 reminders",
    }[kind]
    assert any(expected in subject for subject in subjects), subjects


def test_consent_to_sign_carries_the_pdf(tmp_path: Path, store: Store, smtp: SmtpServer) -> None:
    """The Commission's message attaches the issued consent from the archive."""
    from workflow.archive import Archive

    settings = settings_for(tmp_path, store.url, smtp)
    data = b"%PDF-1.7\n% a consent\n%%EOF\n"
    sha = Archive(settings.archive).put(data)
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    move(store, reference, State.CONSENT_ISSUED, data={"sha256": sha})
    Sender(store, settings).send_due()
    [message] = [m for rcpts, m in smtp.received if rcpts == [COMMISSION_TO]]
    [pdf] = [part for part in message.walk() if part.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == f"{reference}.pdf"
    assert pdf.get_payload(decode=True) == data
    assert re.search(r"https://cf\.example\.org/office/applications/SUP-", message.as_string())


def test_mail_test_command_sends_one_message(tmp_path: Path, smtp: SmtpServer) -> None:
    """`consentflow mail test` sends one message and says the server accepted it; with the
    server away it fails with a sentence, not a traceback."""
    from tests.processes import consentflow

    env = {"CONSENTFLOW_MAIL__SMTP_URL": smtp.url, "CONSENTFLOW_MAIL__OFFICE_TO": OFFICE_TO}
    done = consentflow(tmp_path, "mail", "test", env=env)
    assert done.returncode == 0, done.stderr
    assert "accepted (250" in done.stdout
    [(rcpts, message)] = smtp.received
    assert rcpts == [OFFICE_TO] and str(message["Message-ID"]) in done.stdout
    smtp.stop()
    down = consentflow(tmp_path, "mail", "test", "--to", "x@example.org", env=env)
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert "cannot send" in down.stderr
    unset = consentflow(tmp_path, "mail", "test")
    assert unset.returncode == 78 and "smtp_url" in unset.stderr


def test_run_sends_the_received_message_for_a_dropped_eoi(tmp_path: Path, smtp: SmtpServer) -> None:
    """The engine's loop runs the sender: a valid EOI dropped in inbox/ brings the applicant
    their "received" message with the reference, and the loop stops on its flag."""
    from tests.eoi_files import filled_eoi
    from workflow.engine import Engine

    home = tmp_path / "home"
    home.mkdir()
    settings = load_settings(
        home,
        database={"url": f"sqlite:///{home / 'cf.db'}"},
        intake={"stability_ms": 200, "rescan_interval_s": 2},
        mail={"smtp_url": smtp.url, "commission_to": COMMISSION_TO},
    )
    engine = Engine(settings)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_for((home / "inbox" / ".processing").is_dir)
        (home / "inbox" / "eoi.pdf").write_bytes(filled_eoi(contact_email="anna@example.fi"))
        assert wait_for(lambda: len(smtp.received) == 1, timeout=30)
    finally:
        stop.set()
        thread.join(15)
        engine.close()
    assert not thread.is_alive()
    [(rcpts, message)] = smtp.received
    [app] = Store(settings.database_url).applications()
    assert rcpts == ["anna@example.fi"] and str(app.reference) in str(message["Subject"])


def test_received_message_carries_a_working_status_link(
    tmp_path: Path, store: Store, smtp: SmtpServer
) -> None:
    """With the status pages (workflow.status_links), "received" links to the application's
    status page with a fresh token that opens that application."""
    status_links = pytest.importorskip("workflow.status_links")
    from sqlmodel import Session

    settings = settings_for(tmp_path, store.url, smtp)
    reference = new_application(store)
    move(store, reference, State.AWAITING_REVIEW)
    Sender(store, settings).send_due()
    [message] = smtp.messages()
    body = message.get_body(("plain",))
    assert body is not None
    found = re.search(r"https://cf\.example\.org/apply/status/([A-Za-z0-9_-]+)", body.get_content())
    assert found, body.get_content()
    app = store.application(reference)
    assert app is not None
    with Session(store.engine) as session:
        assert status_links.resolve(session, found.group(1)) == app.id
    # Once sent, the link is in the applicant's mailbox only: the outbox row dropped it, and
    # nothing in the database holds the token (the tokens table has its SHA-256).
    with sqlite3.connect(tmp_path / "cf.db") as connection:
        dump = "\n".join(connection.iterdump())
    assert found.group(1) not in dump
    assert reference in dump


def test_a_sent_supporter_link_is_kept_in_the_mailbox_only(
    tmp_path: Path, store: Store, smtp: SmtpServer
) -> None:
    """The profile invitation carries the supporter's link; once the server accepted it,
    the database holds the link's SHA-256 only, as for an applicant's status link."""
    from tests.test_supporters import make_signed
    from workflow.lifecycle.service import Lifecycle

    settings = settings_for(tmp_path, store.url, smtp)
    reference = make_signed(store, "Linked Network")
    link = Lifecycle(store, settings).create_profile(reference, actor="anna")
    with sqlite3.connect(tmp_path / "cf.db") as connection:
        assert link.token in "\n".join(connection.iterdump())  # queued: the row needs it
    Sender(store, settings).send_due()
    bodies = [message.get_body(("plain",)) for message in smtp.messages()]
    assert [body for body in bodies if body and link.token in body.get_content()]
    with sqlite3.connect(tmp_path / "cf.db") as connection:
        assert link.token not in "\n".join(connection.iterdump())


def test_a_new_sender_knows_every_kind_other_processes_queue(tmp_path: Path) -> None:
    """A sender in a fresh process knows the kinds the dashboard or the mail intake queue
    (they register them at import, in their own modules)."""
    script = (
        "import sys; from pathlib import Path\n"
        "from workflow.config import load_settings\n"
        "from workflow.mail_sender import Sender\n"
        "from workflow.notifications import kinds\n"
        "from workflow.store import Store\n"
        "settings = load_settings(Path(sys.argv[1]))\n"
        "Sender(Store('sqlite://'), settings)\n"
        "print(' '.join(sorted(kinds())))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    known = set(done.stdout.split())
    assert {"mail_no_pdf", "mail_file_failed", "received", "invalid"} <= known
    assert "profile_invitation" in known  # issue 19's, from workflow.lifecycle.mail


def test_real_reissue_sends_the_new_consent_to_sign(tmp_path: Path, smtp: SmtpServer) -> None:
    """Applications.reissue (issue 15): the Commission gets the new PDF to sign, and the
    reminders count from the re-issue."""
    from tests.eoi_files import filled_eoi
    from workflow.engine import Engine

    home = tmp_path / "home"
    home.mkdir()
    settings = settings_for(home, f"sqlite:///{home / 'cf.db'}", smtp)
    engine = Engine(settings)
    try:
        engine.start()
        engine.intake.submit(
            "inbox", "eoi.pdf", filled_eoi(org_name="Reissued Network"), source="web"
        )
        [app] = engine.store.applications()
        assert app.reference is not None
        engine.applications.approve(app.reference, actor="anna")
        engine.applications.reissue(app.reference, actor="anna", reason="the seal was renewed")
        rows = [row for row in engine.store.notifications() if row.kind == "consent_to_sign"]
        assert (
            len(rows) == 2 and rows[0].context["attach_sha256"] != rows[1].context["attach_sha256"]
        )
        current = engine.store.application(app.reference)
        assert current is not None and rows[1].context["attach_sha256"] == current.issued_sha256
    finally:
        engine.close()
