"""Intake by e-mail (SPEC §11): every PDF attached to a new message in the mailbox enters the
same intake as a dropped file, with the message as its source.

The failure modes of earlier tools are designed out, each with its test:

- a message is read with ``BODY.PEEK`` (its flags untouched) and marked done on the server
  (keyword ``$consentflow``, or a move to ``[mail] processed_folder``) only *after* its
  attachments are recorded — never before (paperless-ngx #2396);
- a message that cannot be taken now (the server or the database away) is left as it is
  and tried again; one whose PDF is unusable is accounted for in ``failed/`` with its
  reason, where the office can retry it — nothing is marked processed without a record
  (#8329);
- the ledger key is (account, folder, UIDVALIDITY, UID): a folder re-created with the same
  UIDs under a new UIDVALIDITY is new to the key, and its messages are recognised by
  Message-ID and content hash, so old mail is not taken twice and new mail with a reused
  UID is not mistaken for old (#8939, #10080);
- the ledger row is claimed (a unique key) before any attachment enters the intake, and
  an attachment resumed after a crash is found by its SHA-256: one message gives one
  record per PDF, never duplicates (#5818).

A message without a PDF is answered once, never when it is automatic (``Auto-Submitted``,
``Precedence: bulk``, a list), from our own address, a reply to one of our messages, or
from a sender answered in the last day: no mail loop.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import imaplib
import json
import logging
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxUnencrypted
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import col, select

from workflow.archive import safe_name
from workflow.config import MailSettings, Settings
from workflow.intake import Intake
from workflow.notifications import applicant_address, enqueue, register_kind, tell_applicant
from workflow.store import MailMessage, Notification, Store, Tx

#: Servers to which ``imap://`` (no TLS) is allowed: this host only.
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


class MailboxError(Exception):
    """``[mail] imap_url`` cannot work as configured; ``str()`` says why."""


@dataclass(frozen=True)
class MailboxTarget:
    """Where ``[mail] imap_url`` points: server, user and folder."""

    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str

    @property
    def account(self) -> str:
        """The account's name in the ledger: ``user@host:port``."""
        return f"{self.user}@{self.host}:{self.port}"

    @classmethod
    def parse(cls, mail: MailSettings, environ: dict[str, str] | None = None) -> MailboxTarget:
        """Read ``imap_url`` and the password from ``imap_password_env``."""
        parts = urlsplit(mail.imap_url)
        secure = parts.scheme.lower() == "imaps"
        if not parts.hostname:
            raise MailboxError("[mail] imap_url names no host")
        if not secure and parts.hostname not in LOCAL_HOSTS:
            raise MailboxError(
                "[mail] imap_url: imap:// (no TLS) only to a server on this host; use imaps://"
            )
        try:
            port = parts.port or (993 if secure else 143)
        except ValueError as exc:
            raise MailboxError(f"[mail] imap_url has a bad port: {exc}") from None
        user = unquote(parts.username or "")
        if not user:
            raise MailboxError("[mail] imap_url names no user (imaps://user@host/INBOX)")
        env = os.environ if environ is None else environ
        password = env.get(mail.imap_password_env)
        if password is None:
            raise MailboxError(f"{mail.imap_password_env} holds no IMAP password")
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(secure, parts.hostname, port, user, password, folder)

    def connect(self, timeout: float) -> BaseMailBox:
        """A logged-in mailbox with the folder selected."""
        box: BaseMailBox
        if self.secure:
            box = MailBox(
                self.host, self.port, timeout=timeout, ssl_context=ssl.create_default_context()
            )
        else:
            box = MailBoxUnencrypted(self.host, self.port, timeout=timeout)
        return box.login(self.user, self.password, initial_folder=self.folder)


def check_mailbox(settings: Settings) -> str:
    """Log in and read the folder's status (``consentflow mail test``); one line."""
    target = MailboxTarget.parse(settings.mail)
    box = target.connect(settings.mail.timeout_s)
    try:
        status = box.folder.status(target.folder, ["MESSAGES", "UIDVALIDITY"])
        idle = "IDLE" in box.client.capabilities
    finally:
        box.logout()
    return (
        f"{target.account} folder {target.folder}: {status.get('MESSAGES', 0)} message(s), "
        f"{'IDLE' if idle else 'no IDLE: polled every [mail] poll_interval_s'}"
    )


# -- the intake ------------------------------------------------------------------------------

log = logging.getLogger("consentflow.mail")

#: The keyword that marks a message done when no ``processed_folder`` is set.
DONE_KEYWORD = "$consentflow"
#: An IDLE is renewed this often (RFC 2177: at least every 29 minutes).
IDLE_RENEW_S = 20 * 60.0
#: A message claimed by a worker that has not finished it after this long is resumed.
RESUME_AFTER_S = 300.0
#: The longest wait between two attempts to reach the server.
MAX_BACKOFF_S = 60.0
#: A sender is answered automatically at most once in this period.
ANSWER_ONCE_PER = timedelta(days=1)

#: ``submit(name, data)``: enter one PDF into the intake; return its ledger row's id.
Submit = Callable[[str, bytes], int]
#: ``outcome(item_id)``: how that ledger row ended (status, outcome).
Outcome = Callable[[int], tuple[str, str | None]]

register_kind(
    "mail_no_pdf",
    subject={
        "en": "Re: {subject} — no PDF form found / PDF-lomaketta ei löytynyt",
        "fi": "Re: {subject} — PDF-lomaketta ei löytynyt",
    },
    text={
        "en": "Hello,\n\n"
        'We received your message "{subject}", but it has no PDF attached, so nothing was '
        "recorded. To apply as a Covenant Supporter, fill in the expression of interest "
        "(the PDF form) in a PDF reader, save it, and send the saved file as an attachment "
        "to this address — or fill it in online.\n\n"
        'Hei,\n\nSaimme viestinne "{subject}", mutta siinä ei ollut PDF-liitettä, joten '
        "mitään ei kirjattu. Täyttäkää kiinnostuksenilmaisu (PDF-lomake) PDF-lukijassa, "
        "tallentakaa se ja lähettäkää tallennettu tiedosto liitteenä tähän osoitteeseen — tai "
        "täyttäkää lomake verkossa.\n\n"
        "Covenant of Mayors office\n(This message was sent automatically; it is sent once.)",
        "fi": 'Hei,\n\nSaimme viestinne "{subject}", mutta siinä ei ollut PDF-liitettä, '
        "joten mitään ei kirjattu. Täyttäkää kiinnostuksenilmaisu (PDF-lomake) "
        "PDF-lukijassa, tallentakaa se ja lähettäkää tallennettu tiedosto liitteenä tähän "
        "osoitteeseen — tai täyttäkää lomake verkossa.\n\n"
        "(Tämä viesti lähetettiin automaattisesti, vain kerran.)",
    },
)


register_kind(
    "mail_file_failed",
    subject={
        "en": "Re: {subject} — your file {file} could not be read",
        "fi": "Re: {subject} — tiedostoa {file} ei voitu lukea",
    },
    text={
        "en": "Hello,\n\n"
        'We received your message "{subject}", but its attachment {file} could not be '
        "processed:\n\n{reason}\n\n"
        "Please send the filled PDF form again, as it was saved by your PDF reader.\n\n"
        "Covenant of Mayors office\n(This message was sent automatically.)",
        "fi": 'Hei,\n\nSaimme viestinne "{subject}", mutta sen liitettä {file} ei '
        "voitu käsitellä:\n\n{reason}\n\n"
        "Lähettäkää täytetty PDF-lomake uudelleen sellaisena kuin PDF-lukija sen "
        "tallensi.\n\n(Tämä viesti lähetettiin automaattisesti.)",
    },
)


@dataclass
class PassStats:
    """What one pass over the folder did."""

    messages: int = 0
    pdfs: int = 0
    recognised: int = 0
    answered: int = 0
    items: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Parsed:
    message_id: str
    sender: str
    subject: str
    pdfs: list[tuple[str, bytes]]
    automatic: bool
    references: list[str]


def parse_message(raw: bytes) -> _Parsed:
    """The parts of a message the intake needs: its PDFs (by type, name or content)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    pdfs: list[tuple[str, bytes]] = []
    for number, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        name = part.get_filename() or ""
        kind = part.get_content_type()
        is_attachment = part.get_content_disposition() == "attachment" or bool(name)
        if kind == "message/rfc822" or not (is_attachment or kind == "application/pdf"):
            continue
        try:
            data = part.get_payload(decode=True)
        except Exception:  # a malformed part is skipped like a text one
            log.debug("part %d of a message cannot be decoded", number, exc_info=True)
            continue
        if not isinstance(data, bytes):
            continue
        if kind == "application/pdf" or name.lower().endswith(".pdf") or data[:5] == b"%PDF-":
            pdfs.append((safe_name(name or f"attachment-{number}.pdf"), data))
    headers = {key.lower(): str(value) for key, value in message.items()}
    auto = headers.get("auto-submitted", "no").strip().lower()
    automatic = (
        auto not in ("", "no")
        or headers.get("precedence", "").strip().lower() in ("bulk", "junk", "list", "auto_reply")
        or any(
            key in headers
            for key in ("list-id", "list-unsubscribe", "x-autoreply", "x-autorespond")
        )
        or headers.get("return-path", "").strip() == "<>"
        or "auto-replied" in headers.get("x-auto-response-suppress", "").lower()
    )
    references = re.findall(
        r"<[^<>\s]+>", headers.get("in-reply-to", "") + headers.get("references", "")
    )
    sender = parseaddr(headers.get("reply-to") or headers.get("from", ""))[1]
    from_ = parseaddr(headers.get("from", ""))[1]
    return _Parsed(
        message_id=" ".join(headers.get("message-id", "").split())[:500],
        sender=(from_ or sender).strip()[:320],
        subject=" ".join(headers.get("subject", "").split())[:200],
        pdfs=pdfs,
        automatic=automatic,
        references=references,
    )


class MailIntake:
    """Takes new messages from one mailbox folder into the intake, exactly once each."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        submit: Submit,
        outcome: Outcome,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.mail = settings.mail
        self.target = MailboxTarget.parse(settings.mail)
        self.submit = submit
        self.outcome = outcome
        self.clock = clock or (lambda: datetime.now(UTC))
        self.started = self.clock()
        self.box: BaseMailBox | None = None
        self.idle = False
        self._reused: set[int] = set()
        own = parseaddr(self.mail.from_)[1].lower()
        self.own_addresses = {own} | {
            parseaddr(value)[1].lower() for value in (self.mail.office_to, self.mail.commission_to)
        } - {""}

    # -- the connection ---------------------------------------------------------------

    def connect(self) -> BaseMailBox:
        """Log in (again) and select the folder."""
        self.close()
        box = self.target.connect(self.mail.timeout_s)
        self.box = box
        self.idle = "IDLE" in box.client.capabilities
        if self.mail.processed_folder and not box.folder.exists(self.mail.processed_folder):
            box.folder.create(self.mail.processed_folder)
        return box

    def close(self) -> None:
        """Drop the connection (politely when it still answers)."""
        box, self.box = self.box, None
        if box is None:
            return
        try:
            box.logout()
        except Exception:  # a dead connection is closed all the same
            with contextlib.suppress(Exception):
                box.client.shutdown()

    # -- one pass -----------------------------------------------------------------------

    def take_new(self) -> PassStats:
        """Take every message not yet done; raise the server's or database's errors."""
        box = self.box or self.connect()
        folder = self.target.folder
        uidvalidity = self._select(box, folder)
        criteria = "ALL" if self.mail.processed_folder else f"UNKEYWORD {DONE_KEYWORD}"
        uids = sorted(int(uid) for uid in box.uids(criteria))
        stats = PassStats()
        if not uids:
            return stats
        known = self._known(uidvalidity, uids)
        for uid in uids:
            row = known.get(uid)
            if (
                row is not None
                and row.status in ("done", "recorded")
                and not self._same(box, uid, row)
            ):
                continue  # never taken for another message, never marked: left for a person
            if row is not None and row.status == "done":
                self._mark_done(box, uid)  # recorded, but its mark was lost: mark again
                continue
            if row is not None and row.status == "recorded":
                self._finish(box, row.id, uid)
                continue
            if row is not None and not self._resumable(row):
                continue  # another worker has it in hand
            self._take(box, uidvalidity, uid, resume=row, stats=stats)
        return stats

    @staticmethod
    def _select(box: BaseMailBox, folder: str) -> int:
        """Select the folder afresh and return its UIDVALIDITY from the SELECT itself.

        STATUS is not enough: a session whose selected folder was deleted and re-created
        by another one may be told the old folder's UIDVALIDITY (Dovecot does).
        """
        box.client.response("UIDVALIDITY")  # forget any earlier answer
        box.folder.set(folder)
        _typ, values = box.client.response("UIDVALIDITY")
        found = [value for value in values if value]
        if not found:
            raise imaplib.IMAP4.error(f"the server gave no UIDVALIDITY for {folder}")
        value = found[-1]
        return int(value.decode() if isinstance(value, bytes) else value)

    def _known(self, uidvalidity: int, uids: list[int]) -> dict[int, MailMessage]:
        with self.store.tx() as tx:
            rows = tx.session.exec(
                select(MailMessage).where(
                    MailMessage.account == self.target.account,
                    MailMessage.folder == self.target.folder,
                    MailMessage.uidvalidity == uidvalidity,
                    col(MailMessage.uid).in_(uids),
                )
            ).all()
            return {row.uid: row for row in rows}

    def _same(self, box: BaseMailBox, uid: int, row: MailMessage) -> bool:
        """Whether the message at a known key is the one recorded there (its Message-ID).

        Only a server that breaks the UIDVALIDITY rule gives one key to two messages; the
        second is then neither taken as old (paperless-ngx #10080) nor marked, but logged.
        """
        typ, data = box.client.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        header = b"".join(
            item[1] for item in data if isinstance(item, tuple) and isinstance(item[1], bytes)
        )
        found = email.message_from_bytes(header, policy=email.policy.default).get("message-id")
        if typ != "OK" or " ".join(str(found or "").split()) == row.message_id:
            return True
        if uid not in self._reused:
            self._reused.add(uid)
            log.error(
                "the server gave UID %s of %s under UIDVALIDITY %s to two messages (%s, then "
                "%s): the second is left in the mailbox, unmarked, for a person",
                uid, self.target.folder, row.uidvalidity, row.message_id, found,
            )  # fmt: skip
        return False

    def _resumable(self, row: MailMessage) -> bool:
        """A claimed row left by a crash: ours from before this start, or stale."""
        return row.created_at < self.started or (
            row.created_at < self.clock() - timedelta(seconds=RESUME_AFTER_S)
        )

    def _fetch(self, box: BaseMailBox, uid: int) -> bytes:
        """The whole message, read with BODY.PEEK (its \\Seen flag is left alone)."""
        typ, data = box.client.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"FETCH {uid} failed: {data!r}")
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        raise LookupError(f"message {uid} is gone")

    def _take(
        self,
        box: BaseMailBox,
        uidvalidity: int,
        uid: int,
        *,
        resume: MailMessage | None,
        stats: PassStats,
    ) -> None:
        try:
            raw = self._fetch(box, uid)
        except LookupError:
            return  # expunged meanwhile by someone else
        digest = hashlib.sha256(raw).hexdigest()
        parsed = parse_message(raw)
        stats.messages += 1
        row_id = resume.id if resume is not None else None
        if row_id is None:
            earlier = self._seen_before(parsed.message_id, digest)
            try:
                row_id = self._claim(uidvalidity, uid, parsed, digest, earlier)
            except IntegrityError:
                return  # another worker claimed it first
            if earlier is not None:
                stats.recognised += 1
                log.info(
                    "mail %s/%s: seen before as UIDVALIDITY %s UID %s; not taken again",
                    uidvalidity, uid, earlier.uidvalidity, earlier.uid,
                )  # fmt: skip
                self._finish(box, row_id, uid)
                return
        assert row_id is not None
        outcome: list[dict[str, Any]] = []
        for name, data in parsed.pdfs:
            sha = hashlib.sha256(data).hexdigest()
            if resume is not None and self.store.known_document(sha) is not None:
                outcome.append({"file": name, "sha256": sha, "status": "recorded before"})
                continue
            item_id = self.submit(name, data)
            status, result = self.outcome(item_id)
            if status == "claimed":
                # Not finished (the database away): leave the message for the next pass,
                # the claimed file is retried by the intake and recognised by its hash.
                raise _NotYetError(f"{name} is still being processed")
            stats.items.append(item_id)
            stats.pdfs += 1
            outcome.append(
                {"file": name, "sha256": sha, "item": item_id, "status": status, "outcome": result}
            )
        answered = self._record(row_id, parsed, outcome)
        stats.answered += answered
        log.info(
            "mail %s/%s from %s: %d PDF(s) recorded%s",
            uidvalidity, uid, parsed.sender or "?", len(outcome), ", answered" if answered else "",
        )  # fmt: skip
        self._finish(box, row_id, uid)

    def _seen_before(self, message_id: str, digest: str) -> MailMessage | None:
        """The same message (Message-ID and content hash) taken under another key."""
        with self.store.tx() as tx:
            query = select(MailMessage).where(
                MailMessage.account == self.target.account,
                MailMessage.content_sha256 == digest,
                MailMessage.message_id == message_id,
                col(MailMessage.status).in_(["recorded", "done"]),
            )
            return tx.session.exec(query.order_by(col(MailMessage.id))).first()

    def _claim(
        self,
        uidvalidity: int,
        uid: int,
        parsed: _Parsed,
        digest: str,
        earlier: MailMessage | None,
    ) -> int:
        with self.store.tx() as tx:
            row = MailMessage(
                account=self.target.account,
                folder=self.target.folder,
                uidvalidity=uidvalidity,
                uid=uid,
                message_id=parsed.message_id,
                sender=parsed.sender,
                content_sha256=digest,
                status="recorded" if earlier is not None else "taking",
                pdfs=earlier.pdfs if earlier is not None else 0,
                outcome=(
                    [{"seen_as": {"uidvalidity": earlier.uidvalidity, "uid": earlier.uid}}]
                    if earlier is not None
                    else []
                ),
                created_at=tx.now(),
            )
            tx.session.add(row)
            tx.session.flush()
            assert row.id is not None
            if earlier is None:
                tx.append_event(
                    "mail_received",
                    actor="system",
                    reason=f"message from {parsed.sender or 'an unknown sender'}: "
                    f"{len(parsed.pdfs)} PDF(s)",
                    data={
                        "account": self.target.account,
                        "folder": self.target.folder,
                        "uidvalidity": uidvalidity,
                        "uid": uid,
                        "message_id": parsed.message_id,
                        "sender": parsed.sender,
                        "sha256": digest,
                    },
                )
            return row.id

    def _record(self, row_id: int, parsed: _Parsed, outcome: list[dict[str, Any]]) -> bool:
        """The message's attachments are in: say so, and answer a message without PDF."""
        with self.store.tx() as tx:
            row = tx.session.get(MailMessage, row_id, with_for_update=True)
            assert row is not None
            row.status = "recorded"
            row.pdfs = len(outcome)
            row.outcome = outcome
            if outcome and self._is_person(parsed):
                self._tell_sender(tx, parsed, outcome)
            answer = not outcome and not row.answered and self._may_answer(tx.session, parsed)
            if answer:
                row.answered = True
                enqueue(
                    tx.session,
                    application_id=None,
                    kind="mail_no_pdf",
                    to=parsed.sender,
                    lang="en",
                    context={"subject": parsed.subject or "(no subject)"},
                )
            tx.session.add(row)
        return answer

    def _is_person(self, parsed: _Parsed) -> bool:
        """Whether the sender may be written to at all: not automatic mail, not ourselves."""
        sender = parsed.sender.lower()
        local = sender.partition("@")[0]
        if parsed.automatic or not sender or "@" not in sender:
            return False
        return sender not in self.own_addresses and local not in (
            "mailer-daemon", "postmaster", "noreply", "no-reply",
        )  # fmt: skip

    def _tell_sender(self, tx: Tx, parsed: _Parsed, outcome: list[dict[str, Any]]) -> None:
        """Answers that would otherwise reach no one: a file that failed (the EOI's own
        address is unknown), and an application whose EOI has no usable address (its
        "received" or "invalid" message goes to the sender instead)."""
        for entry in outcome:
            if entry.get("status") == "failed":
                enqueue(
                    tx.session,
                    application_id=None,
                    kind="mail_file_failed",
                    to=parsed.sender,
                    lang="en",
                    context={
                        "subject": parsed.subject or "(no subject)",
                        "file": str(entry.get("file") or ""),
                        "reason": self._failure(str(entry.get("outcome") or "")),
                    },
                )
            elif entry.get("status") == "done" and entry.get("outcome"):
                app = tx.get_application(str(entry["outcome"]), lock=False)
                if app is not None and applicant_address(app) is None:
                    entry["told"] = tell_applicant(tx.session, app, to=parsed.sender) or ""

    def _failure(self, failed_name: str) -> str:
        """The reason recorded beside a file in ``failed/``."""
        report = self.settings.failed / f"{failed_name}.error.json"
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "the file could not be processed"
        return str(data.get("message") or "the file could not be processed")

    def _may_answer(self, session: Any, parsed: _Parsed) -> bool:
        if not self._is_person(parsed):
            return False
        if parsed.references:
            ours = session.exec(
                select(Notification.id).where(col(Notification.message_id).in_(parsed.references))
            ).first()
            if ours is not None:
                return False  # a reply to one of our messages, by a person or a machine
        recent = session.exec(
            select(Notification.id).where(
                Notification.kind == "mail_no_pdf",
                Notification.recipient == parsed.sender,
                Notification.created_at > self.clock() - ANSWER_ONCE_PER,
            )
        ).first()
        return recent is None

    def _finish(self, box: BaseMailBox, row_id: int | None, uid: int) -> None:
        """Mark the message done on the server, then in the ledger."""
        self._mark_done(box, uid)
        with self.store.tx() as tx:
            row = tx.session.get(MailMessage, row_id, with_for_update=True)
            if row is not None and row.status != "done":
                row.status = "done"
                row.done_at = tx.now()
                tx.session.add(row)

    def _mark_done(self, box: BaseMailBox, uid: int) -> None:
        if self.mail.processed_folder:
            box.move(str(uid), self.mail.processed_folder)
        else:
            box.flag(str(uid), DONE_KEYWORD, True)

    # -- the loop -----------------------------------------------------------------------

    def wait(self, stop: Callable[[], bool]) -> None:
        """Until something arrives (IDLE) or the poll interval passes, or ``stop``."""
        box = self.box
        if box is None:
            return
        if not self.idle:
            _sleep(stop, self.mail.poll_interval_s)
            return
        box.idle.start()  # type: ignore[no-untyped-call]
        try:
            deadline = time.monotonic() + IDLE_RENEW_S
            while not stop() and time.monotonic() < deadline:
                began = time.monotonic()
                if box.idle.poll(timeout=0.5):
                    break
                if time.monotonic() - began < 0.25:
                    # Readable at once yet nothing to read: the server closed the connection.
                    raise ConnectionError("the IMAP server closed the connection")
        finally:
            box.idle.stop()  # type: ignore[no-untyped-call]

    def run(self, stop: Callable[[], bool]) -> None:
        """Take mail until ``stop``; a server or database away is waited for."""
        delay = 1.0
        log.info("reading mail from %s folder %s", self.target.account, self.target.folder)
        while not stop():
            try:
                if self.box is None:
                    self.connect()
                self.take_new()
                delay = 1.0
                self.wait(stop)
            except (TimeoutError, OSError, imaplib.IMAP4.error, DBAPIError, _NotYetError) as exc:
                log.warning("mail intake waits %.0f s: %s", delay, str(exc)[:300])
                self.close()
                _sleep(stop, delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
            except Exception as exc:  # login refused, a protocol surprise
                log.error("mail intake error, trying again in %.0f s: %s", delay, str(exc)[:300])
                self.close()
                _sleep(stop, delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
        self.close()


class MailReader:
    """A :class:`MailIntake` in a thread of its own beside the engine, with its own
    :class:`~workflow.intake.Intake` (the engine's is not shared between threads)."""

    def __init__(self, store: Store, settings: Settings, intake: Intake) -> None:
        self.intake = intake

        def submit(name: str, data: bytes) -> int:
            return intake.submit("inbox", name, data, source="mail")

        def outcome(item_id: int) -> tuple[str, str | None]:
            item = store.item(item_id)
            return (item.status, item.outcome) if item is not None else ("gone", None)

        self.reader = MailIntake(store, settings, submit=submit, outcome=outcome)
        self._thread: threading.Thread | None = None

    def start(self, stop: _Stop) -> None:
        """Start reading mail until ``stop`` is set."""
        self._thread = threading.Thread(
            target=self.reader.run, args=(stop.is_set,), name="consentflow-imap", daemon=True
        )
        self._thread.start()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end (after the stop flag was set)."""
        if self._thread is not None:
            self._thread.join(timeout)
        self.intake.close()


class _Stop(Protocol):
    def is_set(self) -> bool: ...


class _NotYetError(Exception):
    """An attachment is not finished yet: the message is taken again later."""


def _sleep(stop: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop() and time.monotonic() < deadline:
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


__all__ = ["MailIntake", "MailReader", "MailboxError", "MailboxTarget", "check_mailbox"]
