"""After the signature (SPEC §12): the profile, publication, suspension and feedback reports.

One service, :class:`Lifecycle`, for the CLI and the dashboard. Every step is an event
in the keyed chain with its actor and reason, written in the transaction that makes the
change, with the message it causes (the outbox, :mod:`workflow.lifecycle.mail`).

Supporters act through links carrying a random token (``tokens`` table, SHA-256 only,
expiring, one application and one purpose each). Reading a link changes nothing (mail
scanners open links); only the form's POST does, and it spends the token.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from workflow.archive import Archive
from workflow.config import Settings
from workflow.lifecycle import mail
from workflow.states import DecisionError, State, TransitionError
from workflow.store import (
    Application,
    Store,
    SupporterProfile,
    Token,
    Tx,
)

#: ``tokens.purpose`` of the supporters' links.
PROFILE = "supporter_profile"
FEEDBACK = "supporter_feedback"

#: Languages a supporter may offer services in: the EU's 24 (ISO 639-1).
EU_LANGUAGES = (
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "ga", "hr",
    "hu", "it", "lt", "lv", "mt", "nl", "pl", "pt", "ro", "sk", "sl", "sv",
)  # fmt: skip
MAX_SERVICE_LANGUAGES = 6
MIN_SERVICES = 20
MAX_TEXT = 4000
_APPS: Table = Application.__table__  # type: ignore[attr-defined]
_PROFILES: Table = SupporterProfile.__table__  # type: ignore[attr-defined]
_TOKENS: Table = Token.__table__  # type: ignore[attr-defined]
_URL = re.compile(r"https?://[^\s/?#]+\.[^\s/?#]+(/[^\s]*)?")


class ProfileError(DecisionError):
    """What a supporter sent cannot be accepted; ``problems`` maps each field to why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {why}" for field, why in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class Link:
    """A link just given to a supporter (the raw token exists only here)."""

    reference: str
    token: str
    url: str
    expires_at: datetime
    mailed: bool


@dataclass(frozen=True)
class SupporterView:
    """What a supporter's page shows: its application and its profile, read only."""

    reference: str
    org_name: str
    lang: str
    state: str
    profile: SupporterProfile


@dataclass(frozen=True)
class Owed:
    """A supporter with a feedback report due."""

    reference: str
    org_name: str
    due_at: datetime
    late_after: datetime
    reminders: int
    late: bool

    def to_json(self) -> dict[str, Any]:
        """``feedback --json``'s line."""
        return {
            "reference": self.reference,
            "org_name": self.org_name,
            "due_at": self.due_at.isoformat(),
            "late_after": self.late_after.isoformat(),
            "reminders": self.reminders,
            "late": self.late,
        }


@dataclass(frozen=True)
class Sweep:
    """What one due-and-reminder sweep did."""

    due: list[str]
    reminded: list[str]
    #: reference -> the link just made (for the office when no outbox sends mail)
    links: dict[str, str]


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months (the 31st becomes the month's last day)."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _clean(value: object, limit: int = MAX_TEXT) -> str:
    return " ".join(str(value or "").replace("\r\n", "\n").split(" ")).strip()[: limit + 1]


def check_profile(form: Mapping[str, str]) -> dict[str, Any]:
    """The profile a supporter's form describes, or :class:`ProfileError` with every problem.

    ``lang_N`` / ``services_N`` pairs (N = 1…6) give the services per language; then
    ``member_contact`` and ``website``.
    """
    problems: dict[str, str] = {}
    services: dict[str, str] = {}
    for n in range(1, MAX_SERVICE_LANGUAGES + 1):
        code = _clean(form.get(f"lang_{n}"), 10).lower()
        text = _clean(form.get(f"services_{n}"))
        if not code and not text:
            continue
        if code not in EU_LANGUAGES:
            problems[f"lang_{n}"] = "choose one of the EU languages (two letters, e.g. en, fi)"
        elif code in services:
            problems[f"lang_{n}"] = f"{code} is given twice"
        elif len(text) < MIN_SERVICES:
            problems[f"services_{n}"] = (
                f"describe the services in at least {MIN_SERVICES} characters"
            )
        elif len(text) > MAX_TEXT:
            problems[f"services_{n}"] = f"use at most {MAX_TEXT} characters"
        else:
            services[code] = text
    if not services and not problems:
        problems["services_1"] = "describe the services you offer in at least one language"
    contact = _clean(form.get("member_contact"), 300)
    if not contact:
        problems["member_contact"] = "give a contact for members (an address, a page or a phone)"
    elif len(contact) > 300:
        problems["member_contact"] = "use at most 300 characters"
    website = _clean(form.get("website"), 300)
    if not _URL.fullmatch(website) or len(website) > 300:
        problems["website"] = "give the website as an http(s) address, e.g. https://example.org"
    if problems:
        raise ProfileError(problems)
    return {
        "services": services,
        "languages": list(services),
        "member_contact": contact,
        "website": website,
    }


def check_feedback(form: Mapping[str, str]) -> dict[str, str]:
    """A feedback report's answers, or :class:`ProfileError` with every problem."""
    problems: dict[str, str] = {}
    answers: dict[str, str] = {}
    for name in ("members_actions", "services_offered"):
        text = _clean(form.get(name))
        if len(text) < MIN_SERVICES:
            problems[name] = f"answer in at least {MIN_SERVICES} characters"
        elif len(text) > MAX_TEXT:
            problems[name] = f"use at most {MAX_TEXT} characters"
        answers[name] = text
    if problems:
        raise ProfileError(problems)
    return answers


class Lifecycle:
    """The services of SPEC §12 over the store (and the archive, for feedback reports)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        archive: Archive | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.archive = archive or Archive(settings.archive)
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- links ------------------------------------------------------------------------------

    def _url(self, token: str, page: str) -> str:
        base = self.settings.web.public_url or f"http://{self.settings.web.listen}"
        return f"{base}/supporter/{token}/{page}"

    def _new_link(self, tx: Tx, app: Application, purpose: str, now: datetime) -> Link:
        assert app.id is not None and app.reference is not None
        tx.revoke_tokens(purpose=purpose, application_id=app.id)
        token = secrets.token_urlsafe(32)
        expires = now + timedelta(days=self.settings.feedback.link_days)
        tx.add_token(
            purpose=purpose, token_sha256=_hash(token), application_id=app.id, expires_at=expires
        )
        page = "profile" if purpose == PROFILE else "feedback"
        return Link(app.reference, token, self._url(token, page), expires, mailed=False)

    def _mail(
        self, tx: Tx, app: Application | mail.Addressee, kind: str, **context: object
    ) -> bool:
        base = self.settings.web.public_url or f"http://{self.settings.web.listen}"
        return mail.send(
            tx.session,
            app=app,
            kind=kind,
            context={
                "reference": app.reference,
                "org_name": app.org_name,
                "list_url": f"{base}/supporters",
                **context,
            },
        )

    def resolve(self, token: str, purpose: str, *, now: datetime | None = None) -> SupporterView:
        """The supporter a live link belongs to (reading it changes nothing); a token that
        is unknown, expired, spent, of another purpose or of an application no longer at that
        step raises :class:`LookupError`, all alike."""
        now = now or self.clock()
        if not token or len(token) > 200:
            raise LookupError("no such link")
        found = self.store.live_token(purpose, _hash(token), now)
        if found is None or found.application_id is None:
            raise LookupError("no such link")
        with Session(self.store.reader) as session:
            app = session.get(Application, found.application_id)
            profile = session.exec(
                select(SupporterProfile).where(
                    SupporterProfile.application_id == found.application_id
                )
            ).first()
        if app is None or app.reference is None or profile is None:
            raise LookupError("no such link")
        wanted = State.PROFILE_CREATED if purpose == PROFILE else State.ACTIVE
        if app.state != wanted:
            raise LookupError("no such link")
        if purpose == PROFILE and profile.status not in {"invited", "sent_back"}:
            raise LookupError("no such link")
        return SupporterView(app.reference, app.org_name, app.lang, app.state, profile)

    def _spend(self, tx: Tx, token: str, purpose: str, now: datetime) -> Application:
        """Revoke the token in this transaction (a second use finds it spent)."""
        row = tx.session.exec(
            select(Token)
            .where(
                Token.token_sha256 == _hash(token),
                Token.purpose == purpose,
                col(Token.revoked_at).is_(None),
            )
            .with_for_update()
        ).first()
        if row is None or row.application_id is None:
            raise LookupError("no such link")
        if row.expires_at is not None and row.expires_at <= now:
            raise LookupError("no such link")
        row.revoked_at = now
        tx.session.add(row)
        app = tx.application_by_id(row.application_id)
        if app is None or app.reference is None:
            raise LookupError("no such link")
        locked = tx.get_application(app.reference)
        assert locked is not None
        return locked

    @staticmethod
    def _profile(tx: Tx, app: Application) -> SupporterProfile:
        assert app.id is not None
        profile = tx.session.exec(
            select(SupporterProfile)
            .where(SupporterProfile.application_id == app.id)
            .with_for_update()
        ).first()
        if profile is None:
            raise DecisionError(f"{app.reference} has no profile yet (consentflow profile REF)")
        return profile

    @staticmethod
    def _locked(tx: Tx, reference: str) -> Application:
        app = tx.get_application(reference.strip().upper())
        if app is None:
            raise DecisionError(f"no application {reference}")
        return app

    # -- the profile ------------------------------------------------------------------------

    def create_profile(self, reference: str, *, actor: str) -> Link:
        """``signed`` → ``profile_created``: a draft from the EOI, and a link to complete it."""
        now = self.clock()
        with self.store.tx() as tx:
            app = self._locked(tx, reference)
            assert app.id is not None
            if app.state != State.SIGNED:
                raise TransitionError(str(app.reference), State(app.state), State.PROFILE_CREATED)
            fields = app.fields
            services = str(fields.get("services") or "")
            draft = {
                "services": {app.lang: services} if services else {},
                "languages": [app.lang] if services else [],
                "member_contact": "",
                "website": str(fields.get("website") or ""),
                "languages_text": str(fields.get("languages") or ""),
            }
            tx.session.add(
                SupporterProfile(
                    application_id=app.id, status="invited", draft=draft,
                    created_at=now, updated_at=now,
                )
            )  # fmt: skip
            link = self._new_link(tx, app, PROFILE, now)
            mailed = self._mail(
                tx, app, "profile_invitation", link=link.url, expires=link.expires_at.date()
            )
            tx.move(
                app,
                State.PROFILE_CREATED,
                actor=actor,
                reason="profile created; the supporter was sent a link to complete it",
                data={"link_expires_at": link.expires_at.isoformat(), "mailed": mailed},
            )
        return Link(link.reference, link.token, link.url, link.expires_at, mailed)

    def submit_profile(self, token: str, form: Mapping[str, str]) -> str:
        """The supporter's POST: check, keep as the draft, spend the link; its reference."""
        profile_data = check_profile(form)
        now = self.clock()
        with self.store.tx() as tx:
            app = self._spend(tx, token, PROFILE, now)
            profile = self._profile(tx, app)
            if app.state != State.PROFILE_CREATED or profile.status not in {"invited", "sent_back"}:
                raise LookupError("no such link")
            profile.draft = profile_data
            profile.status = "submitted"
            profile.updated_at = now
            tx.session.add(profile)
            tx.append_event(
                "profile_submitted",
                actor="supporter",
                reference=app.reference,
                reason="the supporter completed its profile",
                data={"languages": profile_data["languages"], "website": profile_data["website"]},
            )
        assert app.reference is not None
        return app.reference

    def publish(self, reference: str, *, actor: str) -> None:
        """``profile_created`` → ``active``: the completed draft becomes the public copy."""
        now = self.clock()
        with self.store.tx() as tx:
            app = self._locked(tx, reference)
            if app.state != State.PROFILE_CREATED:
                raise TransitionError(str(app.reference), State(app.state), State.ACTIVE)
            profile = self._profile(tx, app)
            if profile.status != "submitted":
                raise DecisionError(
                    f"{app.reference}: the supporter has not completed its profile yet "
                    f"(profile is {profile.status})"
                )
            fields = app.fields
            profile.published = {
                "name": app.org_name,
                "acronym": str(fields.get("org_acronym") or ""),
                "country": app.country,
                "website": profile.draft["website"],
                "languages": list(profile.draft["languages"]),
                "services": dict(profile.draft["services"]),
            }
            profile.status = "published"
            profile.comment = ""
            profile.published_at = now
            if profile.feedback_due_at is None:
                profile.feedback_due_at = add_months(now, self.settings.feedback.period_months)
            profile.updated_at = now
            tx.session.add(profile)
            mailed = self._mail(tx, app, "profile_published")
            tx.move(
                app,
                State.ACTIVE,
                actor=actor,
                reason="profile published",
                data={
                    "feedback_due_at": profile.feedback_due_at.isoformat(),
                    "mailed": mailed,
                },
            )

    def send_back(self, reference: str, *, actor: str, comment: str) -> Link:
        """The office returns the draft with a comment and a new link; the state stays."""
        comment = comment.strip()
        if not comment:
            raise DecisionError("sending a profile back needs a comment: the supporter reads it")
        now = self.clock()
        with self.store.tx() as tx:
            app = self._locked(tx, reference)
            if app.state != State.PROFILE_CREATED:
                raise DecisionError(
                    f"{app.reference} is {app.state}: no profile draft to send back"
                )
            profile = self._profile(tx, app)
            profile.status = "sent_back"
            profile.comment = comment[:MAX_TEXT]
            profile.updated_at = now
            tx.session.add(profile)
            link = self._new_link(tx, app, PROFILE, now)
            mailed = self._mail(
                tx, app, "profile_sent_back", comment=comment, link=link.url,
                expires=link.expires_at.date(),
            )  # fmt: skip
            tx.append_event(
                "profile_sent_back",
                actor=actor,
                reference=app.reference,
                reason=comment,
                data={"link_expires_at": link.expires_at.isoformat(), "mailed": mailed},
            )
        return Link(link.reference, link.token, link.url, link.expires_at, mailed)

    # -- suspension ---------------------------------------------------------------------------

    def suspend(self, reference: str, *, actor: str, reason: str) -> None:
        """``active`` → ``suspended``: off the public list at once; the supporter told why."""
        reason = reason.strip()
        if not reason:
            raise DecisionError(
                "a suspension needs a reason (--reason TEXT): the supporter is told it"
            )
        with self.store.tx() as tx:
            app = self._locked(tx, reference)
            mailed = (
                self._mail(tx, app, "supporter_suspended", reason=reason)
                if (app.state == State.ACTIVE)
                else False
            )
            tx.move(app, State.SUSPENDED, actor=actor, reason=reason, data={"mailed": mailed})

    def reinstate(self, reference: str, *, actor: str, reason: str = "") -> None:
        """``suspended`` → ``active``: listed again with its published profile."""
        with self.store.tx() as tx:
            app = self._locked(tx, reference)
            mailed = (
                self._mail(tx, app, "supporter_reinstated")
                if (app.state == State.SUSPENDED)
                else False
            )
            tx.move(
                app, State.ACTIVE, actor=actor, reason=reason.strip() or "reinstated",
                data={"mailed": mailed},
            )  # fmt: skip

    # -- feedback -----------------------------------------------------------------------------

    def _owed_rows(self, now: datetime) -> list[tuple[str, str, datetime, int]]:
        apps, profiles = _APPS.c, _PROFILES.c
        query = (
            core_select(
                apps.reference, apps.org_name, profiles.feedback_due_at,
                profiles.feedback_reminders,
            )
            .join(_PROFILES, profiles.application_id == apps.id)
            .where(apps.state == State.ACTIVE.value, profiles.feedback_due_at <= now)
            .order_by(profiles.feedback_due_at)
        )  # fmt: skip
        with self.store.reader.connect() as connection:
            return [(r, n, d, k) for r, n, d, k in connection.execute(query)]

    def owed(self, *, now: datetime | None = None, late_only: bool = False) -> list[Owed]:
        """Active supporters whose report fell due and has not arrived (``late_only``: and
        whose ``[feedback] answer_days`` have passed too), the longest owed first."""
        now = now or self.clock()
        grace = timedelta(days=self.settings.feedback.answer_days)
        rows = []
        for reference, name, stored, reminders in self._owed_rows(now):
            due = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
            late = due + grace <= now
            if late or not late_only:
                rows.append(Owed(reference, name, due, due + grace, reminders, late))
        return rows

    def _to_send(self, now: datetime, every: timedelta) -> list[str]:
        """References whose link or next reminder is due: one indexed query, so a day with
        nothing to send costs one round trip."""
        apps, profiles = _APPS.c, _PROFILES.c
        query = (
            core_select(apps.reference)
            .join(_PROFILES, profiles.application_id == apps.id)
            .where(
                apps.state == State.ACTIVE.value,
                profiles.feedback_due_at <= now,
                or_(
                    profiles.feedback_sent_at.is_(None),
                    profiles.feedback_reminded_at.is_(None),
                    profiles.feedback_reminded_at <= now - every,
                ),
            )
            .order_by(profiles.feedback_due_at)
        )
        with self.store.reader.connect() as connection:
            return [ref for (ref,) in connection.execute(query)]

    def sweep(self, *, now: datetime | None = None, batch: int = 200) -> Sweep:
        """Send the link of every report that fell due, and reminders every ``[feedback]
        reminder_days`` after; each is an event. Run daily (and safe to run any time, by
        several workers at once: each is decided again under the application's lock).
        ``batch`` supporters share a transaction: one commit, not one per message."""
        now = now or self.clock()
        every = timedelta(days=self.settings.feedback.reminder_days)
        result = Sweep([], [], {})
        pending = self._to_send(now, every)
        for start in range(0, len(pending), batch):
            with self.store.tx() as tx:
                self._send_batch(tx, pending[start : start + batch], now, every, result)
        return result

    def _send_batch(
        self, tx: Tx, references: list[str], now: datetime, every: timedelta, result: Sweep
    ) -> None:
        """Links and reminders for ``references``, decided again under their rows' locks.

        Core statements: the sweep's cost is per message, and the ORM's unit of work
        (a flush per token) cost several times more (bench/supporters.py)."""
        apps, profiles, tokens = _APPS.c, _PROFILES.c, _TOKENS.c
        connection = tx.session.connection()
        rows = connection.execute(
            core_select(
                apps.id, apps.reference, apps.org_name, apps.lang, apps.fields,
                profiles.id, profiles.feedback_due_at, profiles.feedback_sent_at,
                profiles.feedback_reminded_at, profiles.feedback_reminders,
            )
            .join(_PROFILES, profiles.application_id == apps.id)
            .where(
                apps.reference.in_(references),
                apps.state == State.ACTIVE.value,
                profiles.feedback_due_at <= now,
            )
            .order_by(profiles.feedback_due_at)
            .with_for_update()
        ).all()  # fmt: skip
        answer_days = timedelta(days=self.settings.feedback.answer_days)
        expires = now + timedelta(days=self.settings.feedback.link_days)
        chosen = [
            row for row in rows if row[7] is None or row[8] is None or now - row[8] >= every
        ]  # the others: another worker's sweep sent theirs meanwhile
        reminded = [row[0] for row in chosen if row[7] is not None]
        if reminded:  # a reminder's link replaces the one before
            connection.execute(
                update(_TOKENS)
                .where(
                    tokens.purpose == FEEDBACK,
                    tokens.application_id.in_(reminded),
                    tokens.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
        new_tokens: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for row in chosen:
            app_id, reference, name, lang, fields, profile_id, due_at, sent, _last, count = row
            token = secrets.token_urlsafe(32)
            new_tokens.append(
                {"purpose": FEEDBACK, "token_sha256": _hash(token), "application_id": app_id,
                 "user_id": None, "created_at": now, "expires_at": expires,
                 "revoked_at": None}
            )  # fmt: skip
            url = self._url(token, "feedback")
            app = mail.Addressee(app_id, reference, name, lang, fields)
            kind = "feedback_due" if sent is None else "feedback_reminder"
            mailed = self._mail(
                tx, app, kind, link=url, due=due_at.date(), late_after=(due_at + answer_days).date()
            )
            if sent is None:
                result.due.append(reference)
                reason = f"feedback report due on {due_at.date()}: link sent"
            else:
                count += 1
                result.reminded.append(reference)
                reason = f"feedback report due on {due_at.date()}: reminder {count}"
            changes.append({"pid": profile_id, "sent": sent or now, "count": count, "now": now})
            result.links[reference] = url
            tx.append_event(
                kind,
                actor="system",
                reference=reference,
                reason=reason,
                data={"due_at": due_at.isoformat(), "mailed": mailed},
            )
        if new_tokens:
            connection.execute(insert(_TOKENS), new_tokens)
            connection.execute(
                update(_PROFILES)
                .where(profiles.id == bindparam("pid"))
                .values(
                    feedback_sent_at=bindparam("sent"),
                    feedback_reminders=bindparam("count"),
                    feedback_reminded_at=bindparam("now"),
                    updated_at=bindparam("now"),
                ),
                changes,
            )

    def submit_feedback(self, token: str, form: Mapping[str, str]) -> str:
        """The supporter's report: a PDF of its answers, archived as a document of the
        application; the next report falls due one period after this one did."""
        from workflow.lifecycle.report import render_feedback  # noqa: PLC0415 - reportlab

        answers = check_feedback(form)
        now = self.clock()
        view = self.resolve(token, FEEDBACK, now=now)
        due = view.profile.feedback_due_at
        assert due is not None
        data = render_feedback(
            reference=view.reference, org_name=view.org_name, due_at=due, sent_at=now,
            answers=answers, lang=view.lang,
        )  # fmt: skip
        sha256 = self.archive.put(data)
        with self.store.tx() as tx:
            app = self._spend(tx, token, FEEDBACK, now)
            assert app.id is not None and app.reference is not None
            profile = self._profile(tx, app)
            if app.state != State.ACTIVE or profile.feedback_due_at != due:
                raise LookupError("no such link")
            if tx.find_document(sha256) is None:
                tx.add_document(
                    sha256=sha256, kind="feedback", size=len(data),
                    original_name=f"{app.reference}-feedback-{due.date()}.pdf",
                    application_id=app.id,
                )  # fmt: skip
            profile.feedback_due_at = add_months(due, self.settings.feedback.period_months)
            profile.feedback_sent_at = None
            profile.feedback_reminded_at = None
            profile.feedback_reminders = 0
            profile.updated_at = now
            tx.session.add(profile)
            tx.revoke_tokens(purpose=FEEDBACK, application_id=app.id)
            tx.append_event(
                "feedback_received",
                actor="supporter",
                reference=app.reference,
                reason=f"feedback report for {due.date()} received",
                data={
                    "sha256": sha256,
                    "size": len(data),
                    "next_due_at": profile.feedback_due_at.isoformat(),
                },
            )
        return view.reference

    # -- reads --------------------------------------------------------------------------------

    def profile_of(self, reference: str) -> SupporterProfile | None:
        """The profile of an application (the office's view of the draft)."""
        with Session(self.store.reader) as session:
            query = (
                select(SupporterProfile)
                .join(Application, col(Application.id) == SupporterProfile.application_id)
                .where(Application.reference == reference.strip().upper())
            )
            return session.exec(query).first()

    def public_list(self) -> list[dict[str, Any]]:
        """The published profiles of active supporters, by country then name."""
        apps, profiles = _APPS.c, _PROFILES.c
        query = (
            core_select(profiles.published)
            .join(_APPS, apps.id == profiles.application_id)
            .where(apps.state == State.ACTIVE.value, profiles.published.is_not(None))
        )
        with self.store.reader.connect() as connection:
            rows = [dict(row[0]) for row in connection.execute(query) if row[0]]
        rows.sort(key=lambda row: (row["country"], str(row["name"]).casefold()))
        return rows
