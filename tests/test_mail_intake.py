"""Intake by e-mail against a real Dovecot (tests/dovecot/dovecot.conf): exactly once per
message, BODY.PEEK, marked done only after recording, UIDVALIDITY changes, a server that
goes away, big and hostile attachments, and no mail loops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from tests.eoi_files import filled_eoi
from tests.imapserver import PASSWORD, Dovecot
from tests.processes import wait_for
from workflow.config import Settings, load_settings
from workflow.engine import Engine
from workflow.mail_intake import DONE_KEYWORD, MailIntake, MailReader
from workflow.store import MailMessage, Store

APPLICANT = "anna@kunnat.example.fi"
OURS = "office@localhost"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A running Dovecot with an empty mailbox."""
    server = Dovecot().start()
    yield server
    server.remove()


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENTFLOW_IMAP_PASSWORD", PASSWORD)


def settings_for(home: Path, dovecot: Dovecot, folder: str = "INBOX", **mail: Any) -> Settings:
    """Settings reading ``folder`` of the test server."""
    return load_settings(
        home,
        database={"url": f"sqlite:///{home / 'cf.db'}"},
        intake={"stability_ms": 200},
        mail={
            "imap_url": dovecot.url.replace("/INBOX", f"/{folder}"),
            "from": f"Covenant office <{OURS}>",
            "poll_interval_s": 1,
            **mail,
        },
    )


class Harness:
    """An engine's services and a mail intake over one home, as `run` builds them."""

    def __init__(self, home: Path, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(settings)
        self.engine.start()
        self.store: Store = self.engine.store
        self.mail_reader = MailReader(self.store, settings, self.engine.intake)
        self.mail: MailIntake = self.mail_reader.reader

    def close(self) -> None:
        self.mail.close()
        self.engine.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home folder."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def message(
    *attachments: tuple[str, bytes, str],
    sender: str = APPLICANT,
    subject: str = "Our expression of interest",
    headers: dict[str, str] | None = None,
) -> bytes:
    """A message with a text body and attachments ``(name, data, MIME type)``."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = OURS
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain="kunnat.example.fi")
    for key, value in (headers or {}).items():
        mail[key] = value
    mail.set_content("Please find our forms attached.\n")
    for name, data, kind in attachments:
        main, sub = kind.split("/")
        mail.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return mail.as_bytes()


def flags(dovecot: Dovecot, folder: str = "INBOX") -> list[str]:
    """Each message's flags, in UID order."""
    client = dovecot.client()
    try:
        client.select(folder)
        _typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
        return [item.decode() for item in data if isinstance(item, bytes)]
    finally:
        client.logout()


def test_two_eois_and_a_text_attachment(home: Path, dovecot: Dovecot) -> None:
    """Both PDFs become applications with the message as their source; the text is left;
    the message is read without \\Seen and marked done only afterwards."""
    dovecot.append(
        message(
            ("first.pdf", filled_eoi(org_name="Mail Network One"), "application/pdf"),
            ("notes.txt", b"see attached", "text/plain"),
            ("second.pdf", filled_eoi(org_name="Mail Network Two"), "application/pdf"),
        )
    )
    harness = Harness(home, settings_for(home, dovecot))
    try:
        stats = harness.mail.take_new()
        assert (stats.messages, stats.pdfs) == (1, 2)
        names = sorted(app.org_name for app in harness.store.applications())
        assert names == ["Mail Network One", "Mail Network Two"]
        assert {item.source for item in harness.store.items()} == {"mail"}
        [line] = flags(dovecot)
        assert DONE_KEYWORD in line and "\\Seen" not in line
        assert harness.mail.take_new().messages == 0
        events = [event.kind for event in harness.store.events()]
        assert events.count("mail_received") == 1
    finally:
        harness.close()


def test_same_message_after_a_restart_is_not_taken_again(home: Path, dovecot: Dovecot) -> None:
    """A new process that finds the message unmarked (its keyword lost) recognises it by
    its key in the ledger: no second application, no duplicate."""
    dovecot.append(message(("eoi.pdf", filled_eoi(org_name="Restart Network"), "application/pdf")))
    first = Harness(home, settings_for(home, dovecot))
    first.mail.take_new()
    first.close()
    client = dovecot.client()
    client.select("INBOX")
    client.uid("STORE", "1", "-FLAGS", f"({DONE_KEYWORD})")
    client.logout()
    second = Harness(home, settings_for(home, dovecot))
    try:
        assert second.mail.take_new().messages == 0
        assert len(second.store.applications()) == 1
        assert [item.status for item in second.store.items()] == ["done"]
        assert DONE_KEYWORD in flags(dovecot)[0]  # marked again
    finally:
        second.close()


def test_folder_recreated_new_uidvalidity(home: Path, dovecot: Dovecot) -> None:
    """The folder is deleted and re-created: UIDs start again under a new UIDVALIDITY. The
    old message (same Message-ID and content) is recognised; a new message that got the
    old one's UID is taken as new (paperless-ngx #8939, #10080)."""
    client = dovecot.client()
    client.create("Applications")
    client.logout()
    old = message(("old.pdf", filled_eoi(org_name="Old Network"), "application/pdf"))
    dovecot.append(old, "Applications")
    harness = Harness(home, settings_for(home, dovecot, "Applications"))
    try:
        harness.mail.take_new()
        client = dovecot.client()
        client.delete("Applications")
        client.create("Applications")
        client.logout()
        new = message(("new.pdf", filled_eoi(org_name="New Network"), "application/pdf"))
        dovecot.append(new, "Applications")  # UID 1 again: the old message's UID
        dovecot.append(old, "Applications")
        stats = harness.mail.take_new()
        assert (stats.messages, stats.pdfs, stats.recognised) == (2, 1, 1)
        assert sorted(app.org_name for app in harness.store.applications()) == [
            "New Network",
            "Old Network",
        ]
        assert len(harness.store.items()) == 2  # no duplicate for the old one
        assert all(DONE_KEYWORD in line for line in flags(dovecot, "Applications"))
    finally:
        harness.close()


def test_dovecot_stopped_during_a_fetch(home: Path, dovecot: Dovecot) -> None:
    """The server goes away while a big message is being fetched and comes back: the
    reader waits, reconnects, and every message is recorded exactly once."""
    big = filled_eoi(org_name="Big Network") + b"%" + b"x" * (8 * 1024 * 1024) + b"\n"
    dovecot.append(message(("small.pdf", filled_eoi(org_name="Small Network"), "application/pdf")))
    dovecot.append(message(("big.pdf", big, "application/pdf")))
    dovecot.append(message(("last.pdf", filled_eoi(org_name="Last Network"), "application/pdf")))
    harness = Harness(home, settings_for(home, dovecot))
    stop = threading.Event()
    thread = threading.Thread(target=harness.mail.run, args=(stop.is_set,), daemon=True)
    try:
        thread.start()
        assert wait_for(lambda: len(harness.store.applications()) >= 1, timeout=60)
        dovecot.stop()  # the big one is on its way
        time.sleep(2)
        dovecot.start()
        assert wait_for(lambda: len(harness.store.applications()) == 3, timeout=90)
        time.sleep(2)
    finally:
        stop.set()
        thread.join(30)
        harness.close()
    store = Store(f"sqlite:///{home / 'cf.db'}")
    assert sorted(app.org_name for app in store.applications()) == [
        "Big Network", "Last Network", "Small Network",
    ]  # fmt: skip
    assert [item.status for item in store.items()] == ["done"] * 3
    assert all(DONE_KEYWORD in line for line in flags(dovecot))


def test_25_mb_attachment_is_accounted_for(home: Path, dovecot: Dovecot) -> None:
    """A 25 MB PDF over [intake] max_file_mb goes to failed/ as too_large, with the message
    as its source, and the message is done (nothing is lost, nothing is retried for ever)."""
    big = b"%PDF-1.7\n" + b"0" * (25 * 1024 * 1024) + b"\n%%EOF\n"
    dovecot.append(message(("huge.pdf", big, "application/pdf")))
    harness = Harness(home, settings_for(home, dovecot))
    try:
        stats = harness.mail.take_new()
        assert stats.pdfs == 1
        [item] = harness.store.items()
        assert item.status == "failed" and item.source == "mail"
        assert (home / "failed" / f"{item.outcome}.error.json").is_file() or any(
            (home / "failed").glob("*huge*.error.json")
        )
        assert DONE_KEYWORD in flags(dovecot)[0]
    finally:
        harness.close()


def test_attachment_named_to_climb_out(home: Path, dovecot: Dovecot, tmp_path: Path) -> None:
    """``../../x.pdf`` is a name, never a path: recorded as x.pdf, nothing written outside."""
    dovecot.append(
        message(("../../x.pdf", filled_eoi(org_name="Climbing Network"), "application/pdf"))
    )
    harness = Harness(home, settings_for(home, dovecot))
    try:
        harness.mail.take_new()
        [item] = harness.store.items()
        assert item.original_name == "x.pdf" and item.status == "done"
        assert not list(tmp_path.glob("**/x.pdf"))
        assert not (home.parent / "x.pdf").exists() and not (home.parent.parent / "x.pdf").exists()
    finally:
        harness.close()


def test_no_pdf_is_answered_once_and_never_in_a_loop(home: Path, dovecot: Dovecot) -> None:
    """A person's message without PDF is answered once. Not answered: the same person again
    the same day, an auto-reply to our answer, automatic mail, mail from our own address."""
    dovecot.append(message(sender=APPLICANT, subject="Question"))
    harness = Harness(home, settings_for(home, dovecot))
    try:
        assert harness.mail.take_new().answered == 1
        [answer] = harness.store.notifications()
        assert (answer.kind, answer.recipient) == ("mail_no_pdf", APPLICANT)
        with harness.store.tx() as tx:  # as the sender does before sending it
            row = tx.session.get(type(answer), answer.id)
            assert row is not None
            row.message_id = "<n1.answer@localhost>"
            tx.session.add(row)
        dovecot.append(message(sender=APPLICANT, subject="Another question"))
        dovecot.append(
            message(
                sender="robot@kunnat.example.fi",
                subject="Automatic reply: Re: Question",
                headers={"Auto-Submitted": "auto-replied"},
            )
        )
        dovecot.append(
            message(
                sender="person@other.example.org",
                subject="Re: Question",
                headers={"In-Reply-To": "<n1.answer@localhost>"},
            )
        )
        dovecot.append(message(sender=OURS, subject="Our own message"))
        dovecot.append(message(sender="news@list.example.org", headers={"Precedence": "bulk"}))
        stats = harness.mail.take_new()
        assert (stats.messages, stats.answered) == (5, 0)
        assert len(harness.store.notifications()) == 1
        assert all(DONE_KEYWORD in line for line in flags(dovecot))
    finally:
        harness.close()


def test_idle_brings_new_mail_within_seconds(home: Path, dovecot: Dovecot) -> None:
    """With IDLE, a message appended to the mailbox is recorded within 3 s."""
    harness = Harness(home, settings_for(home, dovecot, poll_interval_s=3600))
    stop = threading.Event()
    thread = threading.Thread(target=harness.mail.run, args=(stop.is_set,), daemon=True)
    try:
        thread.start()
        assert wait_for(lambda: harness.mail.box is not None and harness.mail.idle, timeout=20)
        time.sleep(1)
        data = message(("eoi.pdf", filled_eoi(org_name="Idle Network"), "application/pdf"))
        started = time.monotonic()
        dovecot.append(data)
        assert wait_for(lambda: len(harness.store.applications()) == 1, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join(30)
        harness.close()
    assert elapsed <= 3.0, f"mail to application took {elapsed:.2f} s"


def test_unreachable_server_is_waited_for(home: Path, dovecot: Dovecot) -> None:
    """The reader of a server that is down logs, waits and keeps trying; it takes the mail
    once the server is up."""
    dovecot.stop()
    harness = Harness(home, settings_for(home, dovecot))
    stop = threading.Event()
    thread = threading.Thread(target=harness.mail.run, args=(stop.is_set,), daemon=True)
    try:
        thread.start()
        time.sleep(2)
        dovecot.start()
        dovecot.append(message(("eoi.pdf", filled_eoi(org_name="Late Network"), "application/pdf")))
        assert wait_for(lambda: len(harness.store.applications()) == 1, timeout=60)
    finally:
        stop.set()
        thread.join(30)
        harness.close()


def test_imap_is_refused_to_a_remote_host_without_tls(home: Path) -> None:
    """imap:// sends the password in clear: only to a server on this host."""
    from workflow.mail_intake import MailboxError, MailboxTarget

    settings = load_settings(home, mail={"imap_url": "imap://me@mail.example.org/INBOX"})
    with pytest.raises(MailboxError, match="imaps://"):
        MailboxTarget.parse(settings.mail, {"CONSENTFLOW_IMAP_PASSWORD": "x"})


def test_a_key_given_to_another_message_is_left_for_a_person(
    home: Path, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    """Should a server give a recorded (UIDVALIDITY, UID) to another message, that message
    is neither taken as the old one nor marked done: it stays, and the log says why."""
    dovecot.append(message(("eoi.pdf", filled_eoi(org_name="Keyed Network"), "application/pdf")))
    harness = Harness(home, settings_for(home, dovecot))
    try:
        harness.mail.take_new()
        with harness.store.tx() as tx:  # the ledger's row now names another message
            [row] = tx.session.exec(select(MailMessage)).all()
            row.message_id = "<someone-else@example.org>"
            tx.session.add(row)
        client = dovecot.client()
        client.select("INBOX")
        client.uid("STORE", "1", "-FLAGS", f"({DONE_KEYWORD})")
        client.logout()
        assert harness.mail.take_new().messages == 0
        assert DONE_KEYWORD not in flags(dovecot)[0]
        assert "left in the mailbox, unmarked" in caplog.text
        assert len(harness.store.applications()) == 1
    finally:
        harness.close()


def test_mail_test_logs_in_to_the_mailbox(home: Path, dovecot: Dovecot) -> None:
    """`consentflow mail test` checks the IMAP settings: login, folder, IDLE; a wrong
    password is a sentence and exit 1."""
    from tests.processes import consentflow

    env = {"CONSENTFLOW_MAIL__IMAP_URL": dovecot.url, "CONSENTFLOW_IMAP_PASSWORD": PASSWORD}
    done = consentflow(home, "mail", "test", env=env)
    assert done.returncode == 0, done.stderr
    assert "IMAP: office@localhost@127.0.0.1" in done.stdout and "IDLE" in done.stdout
    wrong = consentflow(home, "mail", "test", env={**env, "CONSENTFLOW_IMAP_PASSWORD": "nope"})
    assert wrong.returncode == 1 and "IMAP:" in wrong.stderr and "Traceback" not in wrong.stderr


def test_sender_hears_of_what_no_one_else_would(home: Path, dovecot: Dovecot) -> None:
    """An EOI without a usable address of its own, and a file that cannot be read: the
    mail's sender gets the "invalid" message (every problem) and the file's reason."""
    from tests.eoi_files import broken_pdf, invalid_eoi
    from workflow.notifications import render

    dovecot.append(
        message(
            ("ours.pdf", invalid_eoi(org_name="Addressless Network"), "application/pdf"),
            ("broken.pdf", broken_pdf(filled_eoi(org_name="Broken Network")), "application/pdf"),
        )
    )
    harness = Harness(home, settings_for(home, dovecot))
    try:
        harness.mail.take_new()
        rows = {row.kind: row for row in harness.store.notifications()}
        assert set(rows) == {"invalid", "mail_file_failed"}
        assert {row.recipient for row in rows.values()} == {APPLICANT}
        invalid = render("invalid", "en", rows["invalid"].context).text
        assert "not an address" in invalid
        failed = render("mail_file_failed", "en", rows["mail_file_failed"].context).text
        reason = rows["mail_file_failed"].context["reason"]
        assert "broken.pdf" in failed and reason in failed
        assert reason != "the file could not be processed"  # the intake's own reason
    finally:
        harness.close()


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_dovecot_restarted_while_idle(home: Path, dovecot: Dovecot, how: str) -> None:
    """The server goes away while the reader waits in IDLE, politely (BYE) or killed (the
    connection just drops): the reader notices, reconnects once the server is back, and
    takes what arrived meanwhile."""
    harness = Harness(home, settings_for(home, dovecot, poll_interval_s=3600))
    stop = threading.Event()
    thread = threading.Thread(target=harness.mail.run, args=(stop.is_set,), daemon=True)
    try:
        thread.start()
        assert wait_for(lambda: harness.mail.box is not None and harness.mail.idle, timeout=20)
        time.sleep(1)
        dovecot.stop()
        time.sleep(3)
        dovecot.start()
        dovecot.append(
            message(("eoi.pdf", filled_eoi(org_name="After Network"), "application/pdf"))
        )
        assert wait_for(lambda: len(harness.store.applications()) == 1, timeout=60)
    finally:
        stop.set()
        thread.join(30)
        harness.close()
    assert not thread.is_alive()


def test_message_is_marked_only_after_its_attachments_are_recorded(
    home: Path, dovecot: Dovecot
) -> None:
    """Paperless-ngx #2396 (mail acted on before its consumption succeeded), with real
    parts: the intake records the attachments through a read-only connection to the real
    database, so recording fails after the message was claimed. The message stays unmarked,
    unanswered and in its folder, and nothing is recorded; once the database can be written,
    the next reader records each PDF exactly once, and only then marks the message."""
    from sqlalchemy.exc import DBAPIError

    from workflow.intake import Intake

    dovecot.append(
        message(
            ("first.pdf", filled_eoi(org_name="Fault Network One"), "application/pdf"),
            ("second.pdf", filled_eoi(org_name="Fault Network Two"), "application/pdf"),
        )
    )
    settings = settings_for(home, dovecot)
    harness = Harness(home, settings)
    engine = harness.engine
    read_only = Store(f"sqlite:///file:{home / 'cf.db'}?mode=ro&uri=true")
    faulty = Intake(
        read_only,
        folders=dict(engine.intake.folders),
        failed_dir=settings.failed,
        processors=dict(engine.intake.processors),
        settings=settings.intake,
    )
    broken = MailReader(harness.store, settings, faulty).reader
    try:
        with pytest.raises(DBAPIError, match="readonly"):
            broken.take_new()
        broken.close()
        [line] = flags(dovecot)  # still in INBOX, neither marked nor answered
        assert DONE_KEYWORD not in line and "\\Answered" not in line
        [row] = _ledger(harness.store)
        assert row.status == "taking" and row.pdfs == 0 and not row.answered  # claimed only
        assert row.done_at is None
        assert harness.store.items() == [] and harness.store.applications() == []
        assert harness.store.notifications() == []

        # The fault is gone: a reader whose intake can write takes the message again.
        fixed = MailReader(harness.store, settings, engine.intake).reader
        try:
            stats = fixed.take_new()
        finally:
            fixed.close()
        assert (stats.messages, stats.pdfs) == (1, 2)
        assert sorted(app.org_name for app in harness.store.applications()) == [
            "Fault Network One",
            "Fault Network Two",
        ]
        items = harness.store.items()
        assert sorted(item.status for item in items) == ["done", "done"]
        assert {item.source for item in items} == {"mail"}
        [row] = _ledger(harness.store)
        assert row.status == "done" and row.pdfs == 2 and row.done_at is not None
        assert all(entry["status"] == "done" for entry in row.outcome)
        [line] = flags(dovecot)
        assert DONE_KEYWORD in line and "\\Seen" not in line
        assert harness.mail.take_new().messages == 0  # done: never taken a third time
        assert len(harness.store.applications()) == 2
    finally:
        harness.close()


def _ledger(store: Store) -> list[MailMessage]:
    """The mail ledger's rows."""
    with store.tx() as tx:
        return list(tx.session.exec(select(MailMessage)).all())
