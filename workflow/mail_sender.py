"""The background sender of the outbox (SPEC §11), and the Commission's reminders.

Each queued message is *claimed* (a lease on its row, and its Message-ID chosen once, in a
committed transaction), then handed to the SMTP server, then recorded ``accepted`` with the
server's 250 reply and an event — in that order. A crash between the SMTP server's 250 and
that commit leaves the row queued under a lease whose holder is gone: the next sender sends
it once more, with the same Message-ID, so the receiver can recognise the copy. A message
the server refuses for now (4xx, the server down) is retried with doubling delays
(``[mail] retry_backoff_s``); one it refuses for good (5xx), or that has used up
``[mail] retry_max_attempts``, is marked ``failed``, also with an event.

:class:`MailService` runs the sender and the reminders in a thread beside the engine; it
stops when the engine's stop signal is set (a signal handler only sets that flag).
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses, make_msgid, parseaddr
from typing import Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import or_
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from workflow.archive import Archive
from workflow.config import MailSettings, Settings
from workflow.leases import owner_alive, worker_id
from workflow.notifications import (
    COMMISSION,
    OFFICE,
    application_context,
    enqueue,
    load_kinds,
    render,
    without_links,
)
from workflow.states import Actor, State
from workflow.store import EventRow, Notification, Store

log = logging.getLogger("consentflow.mail")

#: How long a sender holds a claimed message before another may send it.
LEASE_S = 120.0
#: Messages claimed at once.
BATCH = 20
#: The office is told after this many reminders to the Commission.
OFFICE_AFTER_REMINDERS = 3
#: Reminders are looked for this often.
REMINDER_SCAN_S = 60.0
#: Event kind of a reminder to the Commission.
REMINDER_EVENT = "signature_reminder"


class StopSignal(Protocol):
    """What the loop asks of its stop signal (see :class:`workflow.engine.StopSignal`)."""

    def is_set(self) -> bool:
        """Whether to stop."""
        ...


class MailError(Exception):
    """The mail settings cannot work; ``str()`` says which key and why."""


# -- the SMTP server -----------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    """Where ``[mail] smtp_url`` points."""

    scheme: str  # smtp | smtps | smtp+starttls
    host: str
    port: int
    user: str
    password: str | None

    @classmethod
    def parse(cls, mail: MailSettings, environ: dict[str, str] | None = None) -> SmtpTarget:
        """Read ``smtp_url`` and the password from ``smtp_password_env``."""
        if not mail.smtp_url:
            raise MailError("[mail] smtp_url is empty: no SMTP server is configured")
        parts = urlsplit(mail.smtp_url)
        scheme = parts.scheme.lower()
        default = {"smtp": 25, "smtps": 465, "smtp+starttls": 587}[scheme]
        try:
            port = parts.port or default
        except ValueError as exc:
            raise MailError(f"[mail] smtp_url has a bad port: {exc}") from None
        if not parts.hostname:
            raise MailError("[mail] smtp_url names no host")
        user = unquote(parts.username or "")
        env = os.environ if environ is None else environ
        password = env.get(mail.smtp_password_env) if user else None
        if user and password is None:
            raise MailError(
                f"[mail] smtp_url names the user {user!r} but {mail.smtp_password_env} "
                "holds no password"
            )
        return cls(scheme, parts.hostname, port, user, password)

    def connect(self, timeout: float) -> smtplib.SMTP:
        """An open, authenticated connection; raises ``OSError`` / ``SMTPException``."""
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
        try:
            smtp.ehlo()
            if self.scheme == "smtp+starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.user:
                smtp.login(self.user, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def sender_address(mail: MailSettings) -> str:
    """The bare address of ``[mail] from``."""
    return parseaddr(mail.from_)[1]


def resolve_recipient(recipient: str, mail: MailSettings) -> str:
    """An outbox recipient as an address: ``@office`` and ``@commission`` from ``[mail]``."""
    if recipient == OFFICE:
        return mail.office_to.strip()
    if recipient == COMMISSION:
        return mail.commission_to.strip()
    return recipient


class _RefusedError(Exception):
    """The SMTP server answered with an error code."""

    def __init__(self, code: int, reply: str) -> None:
        super().__init__(f"{code} {reply}")
        self.code = code
        self.reply = reply

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def _decode(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())[:300]


def recipients(to: str) -> list[str]:
    """The addresses in a ``To`` value (``[mail] office_to`` may name several)."""
    return [address for _name, address in getaddresses([to]) if "@" in address]


def deliver(smtp: smtplib.SMTP, sender: str, to: str, message: bytes) -> str:
    """Hand one message to the server; return its reply to DATA (a 250). Raises
    :class:`_RefusedError` for an error code, ``OSError``/``SMTPException`` for a lost link."""
    smtp.ehlo_or_helo_if_needed()
    code, reply = smtp.mail(sender)
    if code != 250:
        smtp.rset()
        raise _RefusedError(code, _decode(reply))
    for address in recipients(to):  # all or none: a refused one sends nothing, for now
        code, reply = smtp.rcpt(address)
        if code not in (250, 251):
            smtp.rset()
            raise _RefusedError(code, _decode(reply))
    code, reply = smtp.data(message)
    if code != 250:
        raise _RefusedError(code, _decode(reply))
    return f"{code} {_decode(reply)}"


# -- the sender ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claimed:
    id: int
    application_id: int | None
    reference: str | None
    kind: str
    recipient: str
    lang: str
    context: dict[str, str]
    attempts: int
    message_id: str


class Sender:
    """Delivers the outbox's due messages; one per worker process, any number at once."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.mail = settings.mail
        self.clock = clock or (lambda: datetime.now(UTC))
        self.owner = owner or worker_id()
        self.archive = Archive(settings.archive)
        self._smtp: smtplib.SMTP | None = None
        load_kinds()  # every kind another process may have queued

    # -- claiming ---------------------------------------------------------------------

    def claim(self, limit: int = BATCH) -> list[_Claimed]:
        """Lease up to ``limit`` due messages to this sender (Message-IDs chosen once)."""
        now = self.clock()
        domain = sender_address(self.mail).rpartition("@")[2] or "consentflow.invalid"
        claimed: list[_Claimed] = []
        with self.store.tx() as tx:
            rows = tx.session.exec(
                select(Notification)
                .where(
                    Notification.status == "queued",
                    or_(
                        col(Notification.next_attempt_at).is_(None),
                        col(Notification.next_attempt_at) <= now,
                    ),
                )
                .order_by(col(Notification.id))
                .limit(limit * 4)
                .with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                held = row.owner is not None and row.lease_until is not None
                if (
                    held
                    and row.owner != self.owner
                    and row.lease_until is not None
                    and row.lease_until > now
                    and owner_alive(row.owner or "")
                ):
                    continue  # another sender has it in hand
                assert row.id is not None
                if row.message_id is None:
                    row.message_id = make_msgid(idstring=f"n{row.id}", domain=domain)
                row.owner = self.owner
                row.lease_until = now + timedelta(seconds=LEASE_S)
                row.attempts += 1
                tx.session.add(row)
                reference = None
                if row.application_id is not None:
                    app = tx.application_by_id(row.application_id)
                    reference = app.reference if app else None
                claimed.append(
                    _Claimed(
                        row.id,
                        row.application_id,
                        reference,
                        row.kind,
                        row.recipient,
                        row.lang,
                        dict(row.context),
                        row.attempts,
                        row.message_id,
                    )
                )
                if len(claimed) >= limit:
                    break
        return claimed

    # -- composing --------------------------------------------------------------------

    def compose(self, item: _Claimed, to: str) -> EmailMessage:
        """The message as it goes out: text with an HTML alternative, our headers."""
        rendered = render(
            item.kind, item.lang, item.context, public_url=self.settings.web.public_url
        )
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = self.mail.from_
        message["To"] = to
        message["Date"] = format_datetime(self.clock())
        message["Message-ID"] = item.message_id
        # Never answered by a well-behaved autoresponder (RFC 3834), nor by Exchange's.
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        if item.reference:
            message["X-Consentflow-Reference"] = item.reference
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        message["Content-Language"] = item.lang
        attach = item.context.get("attach_sha256")
        if attach:
            data = self.archive.get(attach)
            name = item.context.get("attach_name") or f"{attach[:12]}.pdf"
            message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
        return message

    # -- sending ----------------------------------------------------------------------

    def send_due(self) -> int:
        """Claim and send what is due; return how many the server accepted."""
        items = self.claim()
        accepted = 0
        for item in items:
            if self._send(item):
                accepted += 1
        if not items:
            self.close()  # no connection held open between quiet spells
        return accepted

    def _send(self, item: _Claimed) -> bool:
        to = resolve_recipient(item.recipient, self.mail)
        if not recipients(to):
            key = {OFFICE: "office_to", COMMISSION: "commission_to"}.get(item.recipient, "")
            why = f"[mail] {key} is empty" if key else f"{item.recipient!r} is not an address"
            self._retry(item, f"no recipient: {why}", permanent=False)
            return False
        try:
            message = self.compose(item, to)
        except KeyError:
            self._retry(item, f"this sender does not know the kind {item.kind!r}", permanent=False)
            return False
        except OSError as exc:
            self._retry(item, f"attachment unreadable: {exc}", permanent=False)
            return False
        data = message.as_bytes(policy=SMTP_POLICY)  # CRLF line ends, as SMTP wants
        try:
            smtp = self._connection()
            reply = deliver(smtp, sender_address(self.mail), to, data)
        except _RefusedError as exc:
            self._retry(item, f"refused: {exc}", permanent=exc.permanent)
            if not exc.permanent:
                self.close()
            return False
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            self._retry(item, f"SMTP server unavailable: {exc}", permanent=False)
            return False
        self._accepted(item, to, reply)
        return True

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (OSError, smtplib.SMTPException):
                pass
            self.close()
        self._smtp = SmtpTarget.parse(self.mail).connect(self.mail.timeout_s)
        return self._smtp

    def close(self) -> None:
        """Close the SMTP connection, if one is open."""
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    def _accepted(self, item: _Claimed, to: str, reply: str) -> None:
        with self.store.tx() as tx:
            row = tx.session.get(Notification, item.id, with_for_update=True)
            assert row is not None
            row.status = "accepted"
            row.context = without_links(row.context)  # the link went out; it is not kept
            row.accepted_at = tx.now()
            row.smtp_reply = reply
            row.last_error = None
            row.owner = None
            row.lease_until = None
            tx.session.add(row)
            tx.append_event(
                "mail_accepted",
                actor=Actor.SYSTEM,
                reference=item.reference,
                reason=f"{item.kind} to {to} accepted by the SMTP server",
                data={"notification": item.id, "message_id": item.message_id, "reply": reply},
            )
        log.info("%s: %s to %s accepted (%s)", item.reference or "-", item.kind, to, reply)

    def _retry(self, item: _Claimed, error: str, *, permanent: bool) -> None:
        give_up = permanent or item.attempts >= self.mail.retry_max_attempts
        delay = min(self.mail.retry_backoff_s * 2 ** max(item.attempts - 1, 0), 3600.0)
        with self.store.tx() as tx:
            row = tx.session.get(Notification, item.id, with_for_update=True)
            assert row is not None
            row.last_error = error[:500]
            row.owner = None
            row.lease_until = None
            if give_up:
                row.status = "failed"
                row.context = without_links(row.context)  # never sent again
                tx.append_event(
                    "mail_failed",
                    actor=Actor.SYSTEM,
                    reference=item.reference,
                    reason=f"{item.kind} to {item.recipient} not delivered: {error}"[:500],
                    data={"notification": item.id, "message_id": item.message_id},
                )
            else:
                row.next_attempt_at = tx.now() + timedelta(seconds=delay)
            tx.session.add(row)
        if give_up:
            log.error("%s: %s not delivered, given up: %s", item.reference or "-", item.kind, error)
        else:
            log.warning(
                "%s: %s not delivered (attempt %d), again in %.0f s: %s",
                item.reference or "-", item.kind, item.attempts, delay, error,
            )  # fmt: skip


# -- reminders ------------------------------------------------------------------------------


def send_reminders(store: Store, settings: Settings, now: datetime | None = None) -> int:
    """Queue the reminders that are due for unsigned consents; return how many.

    A consent issued ``signature_after_days`` ago and still unsigned gets a reminder to the
    Commission, then one every ``repeat_days``, at most ``max_reminders``; after the third
    the office is told too. Each reminder is an event. They stop when the application
    leaves ``consent_issued`` and start again from a re-issue (counted from the newest
    event that made the current consent).
    """
    rules = settings.reminders
    now = now or store.clock()
    after = timedelta(days=rules.signature_after_days)
    repeat = timedelta(days=rules.repeat_days)
    queued = 0
    for reference, _name, _issued in store.unsigned_since(now - after):
        with store.tx() as tx:
            app = tx.get_application(reference)
            if app is None or app.state != State.CONSENT_ISSUED:
                continue
            issued_at, sent = _reminder_history(tx.session, reference)
            issued_at = issued_at or app.updated_at
            if sent >= rules.max_reminders:
                continue
            due = issued_at + after + sent * repeat
            if now < due:
                continue
            count = sent + 1
            tx.append_event(
                REMINDER_EVENT,
                actor=Actor.SYSTEM,
                reference=reference,
                reason=f"reminder {count} of at most {rules.max_reminders} sent to the Commission",
                data={"count": count, "issued_at": issued_at.isoformat()},
            )
            context = application_context(app)
            context.update(
                count=str(count),
                max_count=str(rules.max_reminders),
                issued_on=issued_at.date().isoformat(),
            )
            enqueue(
                tx.session, application_id=app.id, kind="signature_reminder", to=COMMISSION,
                lang="en", context=context,
            )  # fmt: skip
            if count == OFFICE_AFTER_REMINDERS:
                enqueue(
                    tx.session, application_id=app.id, kind="signature_overdue", to=OFFICE,
                    lang="en", context=context,
                )  # fmt: skip
            queued += 1
    return queued


def _reminder_history(session: Session, reference: str) -> tuple[datetime | None, int]:
    """When the current consent was issued (its newest event), and the reminders since."""
    rows = session.exec(
        select(EventRow.at, EventRow.kind, EventRow.to_state)
        .where(EventRow.reference == reference)
        .order_by(col(EventRow.id))
    ).all()
    issued_at: datetime | None = None
    sent = 0
    for at, kind, to_state in rows:
        if to_state == State.CONSENT_ISSUED.value or kind == "reissued":
            issued_at, sent = at, 0
        elif kind == REMINDER_EVENT:
            sent += 1
    return issued_at, sent


# -- the service beside the engine --------------------------------------------------------


class MailService:
    """The sender and the reminders in a thread of their own, until the stop flag is set."""

    def __init__(self, store: Store, settings: Settings, *, poll_s: float = 0.5) -> None:
        self.store = store
        self.settings = settings
        self.poll_s = poll_s
        self.sender = Sender(store, settings)
        self._thread: threading.Thread | None = None

    def start(self, stop: StopSignal) -> None:
        """Start the thread."""
        self._thread = threading.Thread(
            target=self.run, args=(stop,), name="consentflow-mail", daemon=True
        )
        self._thread.start()

    def run(self, stop: StopSignal) -> None:
        """Send and remind until ``stop`` is set."""
        log.info("sending notifications via %s", _shown(self.settings.mail.smtp_url))
        last_scan = 0.0
        try:
            while not stop.is_set():
                busy = False
                try:
                    if time.monotonic() - last_scan >= REMINDER_SCAN_S:
                        last_scan = time.monotonic()
                        send_reminders(self.store, self.settings)
                    busy = self.sender.send_due() > 0
                except DBAPIError as exc:
                    log.warning("notifications wait for the database: %s", str(exc)[:200])
                except Exception:
                    log.exception("error in the notification sender; it goes on")
                if not busy:
                    _sleep(stop, self.poll_s)
        finally:
            self.sender.close()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the thread to end (after the stop flag was set)."""
        if self._thread is not None:
            self._thread.join(timeout)


def _sleep(stop: StopSignal, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))


def _shown(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def test_message(settings: Settings, to: str) -> tuple[str, str]:
    """Send one message now (``consentflow mail test``); return its Message-ID and reply."""
    mail = settings.mail
    target = SmtpTarget.parse(mail)
    domain = sender_address(mail).rpartition("@")[2] or "consentflow.invalid"
    message = EmailMessage()
    message["Subject"] = "consentflow: test message"
    message["From"] = mail.from_
    message["To"] = to
    message["Date"] = format_datetime(datetime.now(UTC))
    message_id = make_msgid(idstring="test", domain=domain)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("This is a test message from consentflow: the [mail] SMTP settings work.\n")
    smtp = target.connect(mail.timeout_s)
    try:
        reply = deliver(smtp, sender_address(mail), to, message.as_bytes(policy=SMTP_POLICY))
    except _RefusedError as exc:
        raise MailError(f"the SMTP server refused the test message: {exc}") from None
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
    return message_id, reply


__all__ = [
    "MailError",
    "MailService",
    "Sender",
    "SmtpTarget",
    "deliver",
    "send_reminders",
    "test_message",
]
