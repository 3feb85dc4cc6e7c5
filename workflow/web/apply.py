"""The online EOI (SPEC §10): ``/apply`` and the applicant's status link.

``GET /apply`` shows the EOI's own fields, labels and choices (from :mod:`forms.eoi`
and the form's text catalogue, the very words of the PDF) in the visitor's language.
``POST /apply`` checks the answers with :func:`forms.validation.validate`, the code and
messages of ``consentflow check``: every problem is shown next to its field, in the
form's language, with everything typed kept. A form without problems becomes a filled
EOI PDF (:func:`forms.filled.render_filled_eoi`) that enters the intake exactly like a
dropped file (:meth:`~workflow.intake.Intake.submit`, source ``web``): the same record,
checks, archive and events. The applicant is sent (303) to their status link, which
shows the reference, the state and the next step, and the filled PDF to download.

A GET never changes anything (mail scanners open every link). Public routes are
rate-limited per client address; a honeypot field catches simple bots; the form
carries a CSRF token (a pre-session, as on the sign-in page).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from forms.eoi import COMMITMENTS, FIELDS, FIELDS_BY_NAME, Kind, Lang
from forms.filled import render_filled_eoi
from forms.texts import catalog
from forms.validation import Problem, validate
from workflow import status_links
from workflow.states import State
from workflow.store import Application
from workflow.web.app import NotFoundError, Web, require, web
from workflow.web.auth import CSRF_FIELD, Visitor, client_address, csrf_ok
from workflow.web.forms import FORM_LIMIT, TooLargeError, read_fields
from workflow.web.texts import Texts, languages

router = APIRouter()
log = logging.getLogger("consentflow.web")

Ctx = Annotated[Web, Depends(web)]
Anyone = Annotated[Visitor, Depends(require(None))]

#: The honeypot: a text field people never see (hidden by the stylesheet, out of the tab
#: order, named like something a form-filling bot cannot resist). Filled in: not a person.
HONEYPOT = "company_homepage"

#: The form's sections and rows, in the order of the PDF (forms/blank.py): field names
#: only; every word shown comes from the form's catalogue.
SECTIONS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("section_organisation", (
        ("org_name",), ("org_acronym", "org_type"), ("address_street",),
        ("address_postcode", "address_city", "country"), ("website", "member_count"),
    )),
    ("section_contact", (("contact_name", "contact_position"),
                         ("contact_email", "contact_phone"))),
    ("section_representative", (("representative_name", "representative_position"),)),
    ("section_services", (("services",), ("languages",))),
    ("section_commitments", (*((name,) for name in COMMITMENTS),
                             ("accept_suspension",), ("consent_privacy",))),
    ("section_signature", (("date", "place"),)),
)  # fmt: skip

#: The browser's autofill hints for fields whose meaning it knows.
AUTOCOMPLETE = {
    "org_name": "organization", "address_street": "street-address",
    "address_postcode": "postal-code", "address_city": "address-level2",
    "country": "country", "website": "url", "contact_name": "name",
    "contact_position": "organization-title", "contact_email": "email",
    "contact_phone": "tel",
}  # fmt: skip

# -- rate limiting ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """A token bucket: ``burst`` requests at once, then one per ``every_s`` seconds."""

    burst: int
    every_s: float


class RateLimit:
    """Per-client token buckets for the public routes (bounded memory, thread-safe)."""

    #: Defaults: a person fills the form a few times (with corrections), reads a few pages;
    #: a supporter sends its profile or feedback form a few times (with corrections).
    DEFAULTS: Mapping[str, Rate] = {
        "apply": Rate(10, 60.0),
        "read": Rate(60, 1.0),
        "supporter": Rate(10, 60.0),
    }

    def __init__(
        self,
        rates: Mapping[str, Rate] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 50_000,
    ) -> None:
        self.rates = {**self.DEFAULTS, **(rates or {})}
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, kind: str, client: str) -> float:
        """Spend one request of ``kind`` for ``client``: 0 if allowed, else seconds to wait."""
        rate = self.rates[kind]
        now = self.clock()
        key = (kind, client)
        with self._lock:
            tokens, then = self._buckets.pop(key, (float(rate.burst), now))
            tokens = min(float(rate.burst), tokens + (now - then) / rate.every_s)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) * rate.every_s
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


def limited(request: Request, context: Web, kind: str, *, page: bool = True) -> Response | None:
    """The 429 answer when this client has spent its budget of ``kind``, else ``None``: a
    page, or with ``page=False`` (a data route) ``{"error": {"code", "message"}}``."""
    wait = context.limiter.take(kind, client_address(request))
    if wait <= 0:
        return None
    seconds = int(wait) + 1
    message = Texts(request.state.lang)("apply_rate_limited", seconds=seconds)
    response: Response
    if page:
        response = context.render(
            request,
            "error.html",
            {"status": 429, "code": "rate_limited", "message": message},
            status=429,
        )
    else:
        error = {"code": "rate_limited", "message": message}
        response = JSONResponse({"error": error}, status_code=429)
    response.headers["Retry-After"] = str(seconds)
    return response


# -- the form --------------------------------------------------------------------------------


def _lang(request: Request) -> Lang:
    lang: str = request.state.lang
    return Lang(lang) if lang in {member.value for member in Lang} else Lang.EN


@dataclass(frozen=True)
class FormField:
    """One field as the template draws it."""

    name: str
    kind: str
    label: str
    required: bool
    value: str | bool
    problem: Problem | None
    options: tuple[tuple[str, str], ...] = ()
    autocomplete: str = "on"


def _form(lang: Lang, values: Mapping[str, str | bool], problems: Mapping[str, Problem]) -> Any:
    words = catalog(lang, "form")
    sections = []
    for heading, rows in SECTIONS:
        drawn = []
        for row in rows:
            cells = []
            for name in row:
                spec = FIELDS_BY_NAME[name]
                options = tuple((value, words[f"{name}_{value}"]) for value in spec.options)
                cells.append(
                    FormField(
                        name=name,
                        kind=spec.kind.value,
                        label=words[name],
                        required=spec.required,
                        value=values.get(name, False if spec.kind is Kind.CHECKBOX else ""),
                        problem=problems.get(name),
                        options=options,
                        autocomplete=AUTOCOMPLETE.get(name, "off"),
                    )
                )
            drawn.append(cells)
        sections.append((heading, words.get(heading, ""), drawn))
    return {"sections": sections, "words": words}


def _typed(fields: Mapping[str, str]) -> dict[str, str | bool]:
    """The form's values as posted: text as typed, ticks as ``bool``."""
    values: dict[str, str | bool] = {}
    for spec in FIELDS:
        if spec.kind is Kind.HIDDEN:
            continue
        if spec.kind is Kind.CHECKBOX:
            values[spec.name] = fields.get(spec.name) == "yes"
        else:
            # Never cut: what is typed is what is checked and filled in (the body as a
            # whole is bounded by read_fields). Browsers send line breaks as CRLF.
            values[spec.name] = fields.get(spec.name, "").replace("\r\n", "\n")
    return values


def _render_form(
    request: Request,
    context: Web,
    values: Mapping[str, str | bool],
    problems: tuple[Problem, ...] = (),
    *,
    notice: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    lang = _lang(request)
    by_field = {problem.field: problem for problem in problems}
    return context.render(
        request,
        "apply.html",
        {
            **_form(lang, values, by_field),
            "problems": problems,
            "notice": notice,
            "honeypot": HONEYPOT,
        },
        status=status,
    )


@router.get("/apply", response_class=HTMLResponse)
def apply_form(request: Request, context: Ctx, who: Anyone) -> Response:
    """The online EOI, empty but for today's date."""
    if (refused := limited(request, context, "read")) is not None:
        return refused
    return _render_form(request, context, {"date": context.clock().date().isoformat()})


@router.post("/apply", response_class=HTMLResponse)
async def apply(request: Request, context: Ctx, who: Anyone) -> Response:
    """Check the answers; send the form back with its problems, or take it in."""
    if (refused := limited(request, context, "apply")) is not None:
        return refused
    texts = Texts(request.state.lang)
    try:
        fields = await read_fields(request)
    except TooLargeError:
        notice = texts("apply_too_long", kb=FORM_LIMIT // 1024)
        return _render_form(request, context, {}, notice=notice, status=413)
    values = _typed(fields)
    if not csrf_ok(who.csrf, fields.get(CSRF_FIELD)):
        # Nothing is taken in; the applicant's typing is not lost to an expired page.
        return _render_form(request, context, values, notice=texts("apply_expired"), status=403)
    if fields.get(HONEYPOT):
        return _render_form(request, context, values, notice=texts("apply_refused"), status=400)
    lang = _lang(request)
    checked = validate(values, lang=lang, today=context.clock().date())
    if checked.problems:
        return _render_form(request, context, values, checked.problems, status=422)
    return await _send(request, context, values, lang)


async def _send(
    request: Request, context: Web, values: Mapping[str, str | bool], lang: Lang
) -> Response:
    """Take a checked form in; the applicant goes on to their status link."""
    texts = Texts(request.state.lang)
    try:
        token = await run_in_threadpool(_take_in, context, values, lang)
    except NotTakenError as exc:
        log.error("an online form was set aside by the intake as %s", exc)
        return _render_form(request, context, values, notice=texts("apply_failed"), status=500)
    if token is None:
        return _render_form(request, context, values, notice=texts("apply_postponed"), status=503)
    return RedirectResponse(f"/apply/status/{token}?lang={lang.value}&sent=1", status_code=303)


#: One form through the intake at a time per process: a double click sends the same bytes
#: twice, and two claims of one file racing to record it would leave the loser to a retry
#: (which only the engine's loop runs). One after the other, the second is a duplicate.
_TAKING_IN = threading.Lock()


class NotTakenError(Exception):
    """The intake set the form aside (``failed/``); the office has its report."""


def _take_in(context: Web, values: Mapping[str, str | bool], lang: Lang) -> str | None:
    """Make the filled EOI, put it through the intake, and give out a status link for the
    application it became (or the one these exact bytes already were); ``None`` when the
    intake postponed it (a passing error)."""
    data = render_filled_eoi(values, lang)
    stamp = context.clock().strftime("%Y%m%d-%H%M%S")
    name = f"web-{stamp}-{secrets.token_hex(3)}.pdf"
    with _TAKING_IN:
        item_id = context.intake.submit("inbox", name, data, source="web")
    item = context.store.item(item_id)
    if item is not None and item.status == "failed":
        raise NotTakenError(item.outcome or name)
    if item is None or item.status not in {"done", "duplicate"} or not item.outcome:
        return None
    with context.store.tx() as tx:
        app = tx.get_application(item.outcome, lock=False)
        if app is None or app.id is None:
            return None
        return status_links.issue(tx.session, app.id, now=context.clock())


# -- the status link -------------------------------------------------------------------------


def _application(context: Web, token: str) -> Application | None:
    with context.store.reading() as session:
        app_id = status_links.resolve(session, token, now=context.clock())
        return None if app_id is None else session.get(Application, app_id)


def _rejection(context: Web, reference: str) -> str | None:
    for event in reversed(context.store.events(reference=reference)):
        if event.to_state == State.INELIGIBLE:
            return event.reason or None
    return None


def _day(app: Application, lang: str) -> str:
    """The day of the last change, as the applicant writes dates."""
    day = app.updated_at.date()
    return f"{day.day}.{day.month}.{day.year}" if lang == "fi" else day.isoformat()


def _base(request: Request, context: Web) -> str:
    """Where links point: ``[web] public_url``, else the address this request came to."""
    return context.settings.web.public_url or str(request.base_url).rstrip("/")


@router.get("/apply/status/{token}", response_class=HTMLResponse)
def status_page(
    request: Request, token: str, context: Ctx, who: Anyone, sent: str = ""
) -> Response:
    """The application's state and next step, in the applicant's language; changes nothing."""
    if (refused := limited(request, context, "read")) is not None:
        return refused
    app = _application(context, token)
    if app is None:
        response = context.render(request, "apply_status.html", {"app": None}, status=404)
    else:
        response = _status(request, context, app, token, sent=bool(sent))
    response.headers["X-Robots-Tag"] = "noindex, nofollow"  # a private page, however found
    return response


def _status(
    request: Request, context: Web, app: Application, token: str, *, sent: bool
) -> HTMLResponse:
    """The status page of ``app``, in its applicant's language unless ``?lang=`` asks."""
    if request.query_params.get("lang") not in languages():
        request.state.lang = app.lang if app.lang in languages() else request.state.lang
    reason = _rejection(context, app.reference or "") if app.state == State.INELIGIBLE else None
    return context.render(
        request,
        "apply_status.html",
        {
            "app": app,
            "sent": sent,
            "token": token,
            "reason": reason,
            "since": _day(app, request.state.lang),
            "status_url": _base(request, context) + f"/apply/status/{token}",
        },
    )


@router.get("/apply/status/{token}/eoi.pdf")
def status_eoi(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """The applicant's own filled EOI, as received."""
    if (refused := limited(request, context, "read")) is not None:
        return refused
    app = _application(context, token)
    if app is None:
        raise NotFoundError
    data = context.services.archive.get(app.eoi_sha256)
    return Response(
        data,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{app.reference}-eoi.pdf"'},
    )
