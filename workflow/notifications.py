"""Notifications (SPEC §11): an outbox written in the transaction of the event that causes it.

A caller queues a message with :func:`enqueue` in its own transaction, so the message
exists if and only if its cause was committed; the background sender
(:mod:`workflow.mail_sender`) delivers it later, with retries, and records it as
``accepted`` only once the SMTP server said 250. What each message says is a *kind*,
registered with :func:`register_kind`: a subject and a plain text per language (English
and Finnish at least), ``str.format`` templates over the message's context, and an
optional HTML body (derived from the text when not given).

State changes are turned into messages by :func:`on_move`, which the store calls from
:meth:`workflow.store.Tx.move`. :data:`WHO_IS_TOLD` is the table of who is told of what
(the README's copy of it is checked by a test).

Recipients are addresses, or :data:`OFFICE` / :data:`COMMISSION`, which the sender
resolves from ``[mail] office_to`` and ``commission_to`` when it sends.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, insert
from sqlmodel import Session, SQLModel, select

from workflow.states import State
from workflow.store import Application

#: Recipient of messages for the Covenant office (``[mail] office_to``).
OFFICE = "@office"
#: Recipient of messages for the Commission's signer (``[mail] commission_to``).
COMMISSION = "@commission"
#: Languages every kind has; a message in another language falls back to English.
LANGS = ("en", "fi")


@dataclass(frozen=True)
class Kind:
    """What one kind of message says, per language."""

    name: str
    subject: Mapping[str, str]
    text: Mapping[str, str]
    html: Mapping[str, str] | None = None


_KINDS: dict[str, Kind] = {}
_OUTBOX: Table = SQLModel.metadata.tables["notifications"]


def register_kind(
    kind: str,
    subject: Mapping[str, str],
    text: Mapping[str, str],
    html: Mapping[str, str] | None = None,
) -> None:
    """Make a kind of message known: ``str.format`` templates per language (``en`` needed).

    Registering a kind again replaces it (a module reloaded in a test, a text corrected).
    """
    if "en" not in subject or "en" not in text:
        raise ValueError(f"message kind {kind!r} needs at least an English subject and text")
    _KINDS[kind] = Kind(kind, dict(subject), dict(text), dict(html) if html else None)


#: Modules that register kinds of their own at import; the sender loads them all, so that
#: it knows every kind another process (the dashboard, a CLI command) may have queued.
KIND_MODULES = ("workflow.lifecycle.mail", "workflow.mail_intake")


def load_kinds() -> None:
    """Import every module of :data:`KIND_MODULES` that this installation has."""
    import importlib  # noqa: PLC0415

    for name in KIND_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if exc.name != name:
                raise


def kinds() -> dict[str, Kind]:
    """Every registered kind of message, by name."""
    return dict(_KINDS)


def enqueue(
    session: Session,
    *,
    application_id: int | None,
    kind: str,
    to: str,
    lang: str,
    context: Mapping[str, str],
) -> None:
    """Queue one message in the caller's transaction (outbox row); the sender delivers it."""
    if kind not in _KINDS:
        raise ValueError(f"unknown message kind {kind!r}: register it with register_kind")
    # A Core insert on the session's connection, now: no ORM object to track and flush
    # (the row is only ever read back by the sender, in its own transactions).
    session.connection().execute(
        insert(_OUTBOX),
        {
            "application_id": application_id,
            "kind": kind,
            "recipient": to.strip(),
            "lang": lang if lang else "en",
            "context": {key: str(value) for key, value in context.items()},
            "status": "queued",
            "attempts": 0,
            "created_at": datetime.now(UTC),
        },
    )


# -- rendering ---------------------------------------------------------------------------


class _Blank(dict[str, str]):
    """A context in which a missing key reads as empty instead of raising."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class Rendered:
    """A message's subject, plain text and HTML, ready to send."""

    subject: str
    text: str
    html: str


_STATUS_LINE = {
    "en": "You can follow your application here: {url}",
    "fi": "Voitte seurata hakemustanne täällä: {url}",
}
_DOWNLOAD_LINE = {"en": " (or download it: {url})", "fi": " (tai ladatkaa se: {url})"}


#: Context values that open a page by themselves: an applicant's status link
#: (``status_path``, workflow/status_links.py) and a supporter's profile or feedback link
#: (``link``, workflow/lifecycle). The outbox row needs them until its message is sent,
#: and drops them once the SMTP server accepted it or it was given up (`without_links`):
#: a copy of the database then opens no page through a message already sent.
LINK_KEYS = ("status_path", "link")


def without_links(context: Mapping[str, Any]) -> dict[str, Any]:
    """``context`` less its `LINK_KEYS`, for a message that will not be sent again."""
    return {key: value for key, value in context.items() if key not in LINK_KEYS}


def render(kind: str, lang: str, context: Mapping[str, str], *, public_url: str = "") -> Rendered:
    """The message of ``kind`` in ``lang`` (English when the kind lacks it) for ``context``.

    Links are made from ``public_url`` (``[web] public_url``) when it is set:
    ``status_path`` gives ``status_url`` and ``status_line``; a ``reference`` gives
    ``download_line`` (the dashboard's download of the application's page).
    Raises ``KeyError`` for a kind this process does not know.
    """
    spec = _KINDS[kind]
    lang = lang if lang in spec.text and lang in spec.subject else "en"
    context = dict(context)
    base = public_url.rstrip("/")
    if base and context.get("status_path"):
        context.setdefault("status_url", base + context["status_path"])
        context.setdefault(
            "status_line", _STATUS_LINE[_two(lang)].format(url=context["status_url"])
        )
    if base and context.get("reference"):
        page = f"{base}/office/applications/{context['reference']}"
        context.setdefault("download_line", _DOWNLOAD_LINE[_two(lang)].format(url=page))
    values = _Blank(context)
    subject = " ".join(spec.subject[lang].format_map(values).split())
    text = spec.text[lang].format_map(values).strip() + "\n"
    escaped = _Blank({key: _html_value(value) for key, value in context.items()})
    if spec.html is not None and lang in spec.html:
        body = spec.html[lang].format_map(escaped)
    else:
        paragraphs = spec.text[lang].strip().split("\n\n")
        body = "\n".join(f"<p>{_html_value(part.format_map(values))}</p>" for part in paragraphs)
    page = (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )
    return Rendered(subject, text, page)


def _two(lang: str) -> str:
    return lang if lang in LANGS else "en"


def _html_value(value: str) -> str:
    """Escape text for HTML, keeping its line breaks."""
    return html.escape(value).replace("\n", "<br>\n")


# -- the project's own messages ------------------------------------------------------------

_FOOTER = {
    "en": "Covenant of Mayors office\n(This message was sent automatically.)",
    "fi": "Kaupunginjohtajien yleiskokouksen toimisto\n(Tämä viesti lähetettiin automaattisesti.)",
}


def _builtin(kind: str, subject: dict[str, str], text: dict[str, str]) -> None:
    register_kind(
        kind, subject, {lang: f"{body}\n\n{_FOOTER[lang]}" for lang, body in text.items()}
    )


_builtin(
    "received",
    {
        "en": "{reference}: your expression of interest was received",
        "fi": "{reference}: kiinnostuksenilmaisunne on vastaanotettu",
    },
    {
        "en": "Dear {org_name},\n\n"
        "Thank you: your expression of interest to become a Covenant Supporter was received "
        "and is complete. Its reference is {reference}; please quote it in any message "
        "about it.\n\n"
        "The Covenant office now checks your organisation's eligibility. You will hear from "
        "us when it has decided.\n\n"
        "{status_line}",
        "fi": "Hyvä {org_name},\n\n"
        "Kiitos: kiinnostuksenilmaisunne Kaupunginjohtajien yleiskokouksen tukijaksi on "
        "vastaanotettu, ja se on täydellinen. Sen viite on {reference}; mainitkaa se "
        "kaikissa sitä koskevissa viesteissä.\n\n"
        "Toimisto tarkistaa nyt organisaationne kelpoisuuden. Kuulette meistä, kun päätös "
        "on tehty.\n\n"
        "{status_line}",
    },
)

_builtin(
    "invalid",
    {
        "en": "{reference}: your expression of interest needs corrections",
        "fi": "{reference}: kiinnostuksenilmaisunne vaatii korjauksia",
    },
    {
        "en": "Dear {org_name},\n\n"
        "We received your expression of interest (reference {reference}), but it cannot be "
        "processed as it is. Please correct the following and send the form again:\n\n"
        "{problems}\n\n"
        "Open the PDF you sent in a PDF reader, correct the fields above, save it and send "
        "the saved file again, or fill in the form online. Nothing else you entered needs "
        "to change.\n\n"
        "{status_line}",
        "fi": "Hyvä {org_name},\n\n"
        "Saimme kiinnostuksenilmaisunne (viite {reference}), mutta sitä ei voida käsitellä "
        "sellaisenaan. Korjatkaa seuraavat kohdat ja lähettäkää lomake uudelleen:\n\n"
        "{problems}\n\n"
        "Avatkaa lähettämänne PDF PDF-lukijassa, korjatkaa yllä mainitut kentät, "
        "tallentakaa ja lähettäkää tallennettu tiedosto uudelleen, tai täyttäkää lomake "
        "verkossa. Muita tietoja ei tarvitse muuttaa.\n\n"
        "{status_line}",
    },
)

_builtin(
    "ineligible",
    {
        "en": "{reference}: your application was not accepted",
        "fi": "{reference}: hakemustanne ei hyväksytty",
    },
    {
        "en": "Dear {org_name},\n\n"
        "The Covenant office examined your expression of interest ({reference}) and found "
        "that your organisation cannot become a Covenant Supporter at this time, for this "
        "reason:\n\n{reason}\n\n"
        "If you think this is a mistake, please answer this message.",
        "fi": "Hyvä {org_name},\n\n"
        "Toimisto tutki kiinnostuksenilmaisunne ({reference}) ja totesi, että "
        "organisaationne ei voi tällä hetkellä tulla tukijaksi, seuraavasta syystä:\n\n"
        "{reason}\n\n"
        "Jos pidätte tätä virheenä, vastatkaa tähän viestiin.",
    },
)

_builtin(
    "consent_issued",
    {
        "en": "{reference}: your consent form was issued for signature",
        "fi": "{reference}: suostumuslomakkeenne on laadittu allekirjoitettavaksi",
    },
    {
        "en": "Dear {org_name},\n\n"
        "Your organisation is eligible. Its consent form ({reference}) was issued and is now "
        "with the European Commission for signature. You will hear from us when it is "
        "signed.",
        "fi": "Hyvä {org_name},\n\n"
        "Organisaationne on kelpoinen. Sen suostumuslomake ({reference}) on laadittu, ja se "
        "on nyt Euroopan komissiolla allekirjoitettavana. Kuulette meistä, kun se on "
        "allekirjoitettu.",
    },
)

_builtin(
    "signed",
    {
        "en": "{reference}: your consent form was signed",
        "fi": "{reference}: suostumuslomakkeenne on allekirjoitettu",
    },
    {
        "en": "Dear {org_name},\n\n"
        "The European Commission signed your consent form ({reference}): welcome as a "
        "Covenant Supporter. The Covenant office will now create your online profile and "
        "send you a link to complete it.",
        "fi": "Hyvä {org_name},\n\n"
        "Euroopan komissio allekirjoitti suostumuslomakkeenne ({reference}): tervetuloa "
        "tukijaksi. Toimisto luo nyt verkkoprofiilinne ja lähettää teille linkin sen "
        "täydentämiseen.",
    },
)

_builtin(
    "consent_to_sign",
    {
        "en": "{reference}: a consent form waits for your signature ({org_name})",
        "fi": "{reference}: suostumuslomake odottaa allekirjoitustanne ({org_name})",
    },
    {
        "en": "A consent form waits for the Commission's signature.\n\n"
        "Reference: {reference}\nOrganisation: {org_name} ({country})\n\n"
        "The PDF is in the office's outbox folder as {reference}.pdf{download_line}. Sign it "
        "with your usual tool and put the signed file back (the signed folder, an e-mail or "
        "the dashboard).",
        "fi": "Suostumuslomake odottaa komission allekirjoitusta.\n\n"
        "Viite: {reference}\nOrganisaatio: {org_name} ({country})\n\n"
        "PDF on toimiston lähtevien kansiossa nimellä {reference}.pdf{download_line}. "
        "Allekirjoittakaa se tavalliseen tapaan ja palauttakaa allekirjoitettu tiedosto.",
    },
)

_builtin(
    "signature_reminder",
    {
        "en": "Reminder {count}: {reference} waits for your signature since {issued_on}",
        "fi": "Muistutus {count}: {reference} odottaa allekirjoitusta {issued_on} alkaen",
    },
    {
        "en": "The consent form {reference} ({org_name}, {country}) was issued on {issued_on} "
        "and is not signed yet. This is reminder {count} of at most {max_count}.\n\n"
        "The PDF is in the office's outbox folder as {reference}.pdf{download_line}.",
        "fi": "Suostumuslomake {reference} ({org_name}, {country}) laadittiin {issued_on}, "
        "eikä sitä ole vielä allekirjoitettu. Tämä on muistutus {count}/{max_count}.\n\n"
        "PDF on toimiston lähtevien kansiossa nimellä {reference}.pdf{download_line}.",
    },
)

_builtin(
    "signature_overdue",
    {
        "en": "{reference}: still unsigned after {count} reminders",
        "fi": "{reference}: yhä allekirjoittamatta {count} muistutuksen jälkeen",
    },
    {
        "en": "The consent form {reference} ({org_name}, {country}) was issued on {issued_on}. "
        "The Commission was reminded {count} times and it is still not signed: it needs a "
        "person to follow it up.",
        "fi": "Suostumuslomake {reference} ({org_name}, {country}) laadittiin {issued_on}. "
        "Komissiota on muistutettu {count} kertaa, eikä sitä ole yhä allekirjoitettu: asia "
        "vaatii ihmisen seurantaa.",
    },
)


# -- who is told of what -------------------------------------------------------------------

#: The applicant, by the address in their EOI (``contact_email``).
APPLICANT = "applicant"


@dataclass(frozen=True)
class Rule:
    """One row of the README's table: an event, who is told, and the message kind."""

    event: str
    recipient: str  # APPLICANT, OFFICE or COMMISSION
    kind: str


#: Who is told of each event (the README's table; ``tests/test_notifications.py`` checks it).
WHO_IS_TOLD: tuple[Rule, ...] = (
    Rule("received → awaiting_review", APPLICANT, "received"),
    Rule("received → invalid", APPLICANT, "invalid"),
    Rule("awaiting_review → ineligible", APPLICANT, "ineligible"),
    Rule("awaiting_review → consent_issued", APPLICANT, "consent_issued"),
    Rule("awaiting_review → consent_issued", COMMISSION, "consent_to_sign"),
    Rule("consent_issued → signed", APPLICANT, "signed"),
    Rule("consent reissued", COMMISSION, "consent_to_sign"),
    Rule("signature reminder", COMMISSION, "signature_reminder"),
    Rule("third signature reminder", OFFICE, "signature_overdue"),
)

#: The state changes that tell someone, and the messages they cause.
_ON_MOVE: dict[State, tuple[Rule, ...]] = {}
for _rule in WHO_IS_TOLD:
    _source, _arrow, _target = _rule.event.partition(" → ")
    if _arrow:
        _ON_MOVE[State(_target)] = (*_ON_MOVE.get(State(_target), ()), _rule)


def applicant_address(app: Application) -> str | None:
    """The applicant's e-mail address from their EOI, if it looks like one."""
    value = str(app.fields.get("contact_email") or "").strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c in value for c in " \r\n<>,;"):
        return None
    return value


def application_context(app: Application) -> dict[str, str]:
    """The values every message about ``app`` may use."""
    return {
        "reference": app.reference or "",
        "org_name": app.org_name or str(app.fields.get("org_name") or ""),
        "country": app.country,
    }


def _status_line(session: Session, app: Application) -> dict[str, str]:
    """A new status link for the applicant, when the status pages exist (``status_path``,
    made a URL with ``[web] public_url`` when sent)."""
    try:
        from workflow import status_links  # type: ignore[attr-defined,unused-ignore]  # noqa: PLC0415
    except ImportError:
        return {}
    assert app.id is not None
    session.flush()
    token = status_links.issue(session, app.id)
    return {"status_path": f"/apply/status/{token}"}


def on_move(
    session: Session,
    app: Application,
    current: State,
    target: State,
    *,
    actor: str,
    reason: str,
    data: Mapping[str, Any] | None,
) -> None:
    """Queue the messages a state change causes (called by the store, in its transaction)."""
    rules = [
        rule for rule in _ON_MOVE.get(target, ()) if rule.event.startswith(f"{current.value} ")
    ]
    if not rules:
        return
    context = application_context(app)
    context["reason"] = reason
    if target is State.INVALID:
        problems = (data or {}).get("problems") or app.problems
        context["problems"] = "\n".join(
            f"- {problem.get('message') or problem.get('code')}" for problem in problems
        )
    if target in (State.AWAITING_REVIEW, State.INVALID):
        context.update(_status_line(session, app))
    for rule in rules:
        if rule.recipient == APPLICANT:
            to = applicant_address(app)
            if to is None:
                continue  # no usable address: the dashboard shows the application anyway
        else:
            to = rule.recipient
        extra: dict[str, str] = {}
        if rule.kind == "consent_to_sign" and (data or {}).get("sha256"):
            # The Commission gets the PDF to sign with the message.
            extra = {
                "attach_sha256": str((data or {})["sha256"]),
                "attach_name": f"{app.reference}.pdf",
            }
        enqueue(
            session,
            application_id=app.id,
            kind=rule.kind,
            to=to,
            lang="en" if rule.recipient != APPLICANT else app.lang,
            context={**context, **extra},
        )


def tell_applicant(session: Session, app: Application, *, to: str) -> str | None:
    """Queue the message the applicant gets for ``app``'s state now, to ``to`` (the sender
    of the mail that brought an EOI without a usable address of its own); return its kind."""
    state = State(app.state)
    if state is State.INVALID:
        kind = "invalid"
    elif state in (State.AWAITING_REVIEW, State.CONSENT_ISSUED):
        kind = "received"  # (auto-approved at once: the reference is what they need first)
    else:
        return None
    context = application_context(app)
    if state is State.INVALID:
        context["problems"] = "\n".join(
            f"- {problem.get('message') or problem.get('code')}" for problem in app.problems
        )
    context.update(_status_line(session, app))
    enqueue(session, application_id=app.id, kind=kind, to=to, lang=app.lang, context=context)
    return kind


#: Events other than state changes that tell someone (the store calls :func:`on_event`
#: for these kinds only), by event kind → the README's event name.
_ON_EVENT = {"reissued": "consent reissued"}


def on_event(
    session: Session, kind: str, *, reference: str | None, data: Mapping[str, Any]
) -> None:
    """Queue the messages an event that is not a state change causes (in its transaction):
    a re-issued consent goes to the Commission to sign, with the new PDF."""
    event = _ON_EVENT.get(kind)
    if event is None or reference is None:
        return
    app = session.exec(select(Application).where(Application.reference == reference)).first()
    if app is None:
        return
    context = application_context(app)
    if data.get("sha256"):
        context |= {"attach_sha256": str(data["sha256"]), "attach_name": f"{reference}.pdf"}
    for rule in WHO_IS_TOLD:
        if rule.event == event:
            enqueue(session, application_id=app.id, kind=rule.kind, to=rule.recipient,
                    lang="en", context=context)  # fmt: skip
