"""The supporters' pages (SPEC §10, §12): the public list, the links supporters get, and the
office's side of it (the lifecycle actions, the list of owed feedback reports).

``/supporters`` (``.json``, ``.csv``) shows only what the office published, and only of
active supporters: name, acronym, country, website, languages, services. It is read again
only after a new event (every publication, suspension or reinstatement is one), so a
suspended supporter is gone from the next answer, and the list costs one small query
per request otherwise.

``/supporter/{token}/profile`` and ``/supporter/{token}/feedback``: a GET shows the form and
changes nothing (mail scanners open links); only the form's POST, with its CSRF token,
does, and spends the link.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from workflow.lifecycle.service import (
    EU_LANGUAGES,
    FEEDBACK,
    MAX_SERVICE_LANGUAGES,
    PROFILE,
    Lifecycle,
    ProfileError,
    SupporterView,
)
from workflow.users import Permission
from workflow.web.app import NotFoundError, Web, require, web
from workflow.web.apply import limited
from workflow.web.auth import Visitor
from workflow.web.forms import read_form
from workflow.web.texts import Texts, languages

router = APIRouter()

Ctx = Annotated[Web, Depends(web)]
Anyone = Annotated[Visitor, Depends(require(None))]
Reader = Annotated[Visitor, Depends(require(Permission.READ))]

#: The published fields, in the order of the CSV's columns and the JSON's keys.
PUBLIC_FIELDS = ("name", "acronym", "country", "website", "languages", "services")


def lifecycle(context: Web) -> Lifecycle:
    """The lifecycle service over the dashboard's store, archive and clock."""
    return Lifecycle(
        context.store, context.settings, archive=context.services.archive, clock=context.clock
    )


# -- the office's actions ----------------------------------------------------------------------


def _sent(mailed: bool) -> str:
    # Never the link itself: this message travels in a redirect's address.
    if mailed:
        return "the link is queued for the supporter"
    return "no usable address: `consentflow publish REF --send-back TEXT` prints a link to pass on"


def perform(context: Web, action: str, reference: str, actor: str, reason: str) -> str:
    """One lifecycle action of the application page; what to tell the user."""
    life = lifecycle(context)
    if action == "profile":
        link = life.create_profile(reference, actor=actor)
        return f"{reference}: profile created; {_sent(link.mailed)}"
    if action == "publish":
        life.publish(reference, actor=actor)
        return f"{reference}: published, now in the public list"
    if action == "send_back":
        link = life.send_back(reference, actor=actor, comment=reason)
        return f"{reference}: profile sent back; {_sent(link.mailed)}"
    if action == "suspend":
        life.suspend(reference, actor=actor, reason=reason)
        return f"{reference}: suspended, off the public list"
    if action == "reinstate":
        life.reinstate(reference, actor=actor, reason=reason)
        return f"{reference}: reinstated, listed again"
    raise NotFoundError


@router.get("/office/feedback", response_class=HTMLResponse)
def owed_page(request: Request, context: Ctx, who: Reader) -> Response:
    """Supporters that owe a feedback report, the late ones marked."""
    rows = lifecycle(context).owed()
    return context.render(request, "owed.html", {"rows": rows})


# -- the public list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A made answer, kept to be sent again until the next event."""

    body: bytes
    media_type: str
    headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> Response:
        """A new response with these bytes."""
        return Response(self.body, media_type=self.media_type, headers=dict(self.headers))


class PublicList:
    """The published rows and made answers, kept until the next event."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Held while an answer is made: requests missing together make it once.
        self.making = threading.Lock()
        self.event_id = -1
        self.rows: list[dict[str, Any]] = []
        self.answers: OrderedDict[tuple[str, ...], Answer] = OrderedDict()

    def current(self, context: Web) -> tuple[int, list[dict[str, Any]]]:
        """The rows as of the newest event (read again only when there is a newer one)."""
        newest = context.store.newest_event_id()
        with self.lock:
            if newest == self.event_id:
                return newest, self.rows
        rows = lifecycle(context).public_list()
        with self.lock:
            if newest > self.event_id:
                self.event_id, self.rows = newest, rows
                self.answers.clear()
        return newest, rows

    def cached(self, event_id: int, key: tuple[str, ...]) -> Answer | None:
        """An answer made as of ``event_id``."""
        with self.lock:
            return self.answers.get(key) if event_id == self.event_id else None

    def keep(self, event_id: int, key: tuple[str, ...], answer: Answer) -> None:
        """Keep an answer (the 256 newest) while no event is newer than ``event_id``."""
        with self.lock:
            if event_id == self.event_id:
                self.answers[key] = answer
                while len(self.answers) > 256:
                    self.answers.popitem(last=False)


def _public(request: Request) -> PublicList:
    state = request.app.state
    found: PublicList | None = getattr(state, "supporters_list", None)
    if found is None:
        found = state.supporters_list = PublicList()
    return found


def _matching(rows: list[dict[str, Any]], country: str, q: str) -> list[dict[str, Any]]:
    term = " ".join(q.split()).casefold()
    chosen = []
    for row in rows:
        if country and row["country"] != country:
            continue
        if term:
            text = " ".join(
                [row["name"], row["acronym"], row["website"], *row["services"].values()]
            )
            if term not in text.casefold():
                continue
        chosen.append(row)
    return chosen


def _ordered_services(row: Mapping[str, Any], lang: str) -> list[tuple[str, str]]:
    services: dict[str, str] = row["services"]
    first = [(lang, services[lang])] if lang in services else []
    return first + [(code, text) for code, text in services.items() if code != lang]


def safe_cell(value: str) -> str:
    """A CSV cell a spreadsheet reads as text: one starting with ``=``, ``+``, ``-``, ``@``
    (or a tab or carriage return) gets a leading apostrophe (OWASP's CSV injection advice)."""
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]], texts: Texts) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([texts(f"supporters_{name}") for name in PUBLIC_FIELDS])
    for row in rows:
        services = "\n".join(f"{code}: {text}" for code, text in row["services"].items())
        cells = [row["name"], row["acronym"], row["country"], row["website"],
                 ", ".join(row["languages"]), services]  # fmt: skip
        writer.writerow([safe_cell(str(cell)) for cell in cells])
    return out.getvalue()


def _html(
    request: Request, context: Web, rows: list[dict[str, Any]], *,
    shown: list[dict[str, Any]], country: str, q: str,
) -> bytes:  # fmt: skip
    """The list page, the same for every visitor (no session, no form that posts)."""
    lang: str = request.state.lang
    body = context.templates.get_template("supporters.html").render(
        {
            "request": request,
            "t": Texts(lang),
            "lang": lang,
            "languages": languages(),
            "user": None,
            "can": lambda _permission: False,
            "P": Permission,
            "csrf": None,
            "path": request.url.path,
            "rows": [(row, _ordered_services(row, lang)) for row in shown],
            "total": len(rows),
            "countries": sorted({row["country"] for row in rows}),
            "country": country,
            "q": q,
            "query": f"?country={quote(country)}&q={quote(q)}&lang={lang}",
        }
    )
    return body.encode()


def _answer(request: Request, context: Web, kind: str, country: str, q: str) -> Response:
    if (refused := limited(request, context, "read", page=kind == "html")) is not None:
        return refused
    public = _public(request)
    lang: str = request.state.lang
    country = country.strip().upper()[:2]
    q = " ".join(q.split())[:200]
    key = (kind, lang, country, q.casefold())
    event_id, rows = public.current(context)
    found = public.cached(event_id, key)
    if found is not None:
        return found.response()
    with public.making:
        found = public.cached(event_id, key)
        if found is not None:
            return found.response()
        answer = _make(request, context, kind, rows, country=country, q=q)
        public.keep(event_id, key, answer)
    return answer.response()


def _make(
    request: Request, context: Web, kind: str, rows: list[dict[str, Any]], *, country: str, q: str
) -> Answer:
    lang: str = request.state.lang
    shown = _matching(rows, country, q)
    if kind == "json":
        listed = [{name: row[name] for name in PUBLIC_FIELDS} for row in shown]
        answer = Answer(
            json.dumps(listed, ensure_ascii=False, separators=(",", ":")).encode(),
            "application/json",
        )
    elif kind == "csv":
        answer = Answer(
            ("\ufeff" + _csv(shown, Texts(lang))).encode(),
            "text/csv; charset=utf-8",
            (("Content-Disposition", 'attachment; filename="supporters.csv"'),),
        )
    else:
        answer = Answer(
            _html(request, context, rows, shown=shown, country=country, q=q),
            "text/html; charset=utf-8",
        )
    return answer


@router.get("/supporters", response_class=HTMLResponse)
def supporters(
    request: Request, context: Ctx, who: Anyone, country: str = "", q: str = ""
) -> Response:
    """The public list of active supporters, with a country filter and a search."""
    return _answer(request, context, "html", country, q)


@router.get("/supporters.json")
def supporters_json(
    request: Request, context: Ctx, who: Anyone, country: str = "", q: str = ""
) -> Response:
    """The public list as JSON: exactly the published fields."""
    return _answer(request, context, "json", country, q)


@router.get("/supporters.csv")
def supporters_csv(
    request: Request, context: Ctx, who: Anyone, country: str = "", q: str = ""
) -> Response:
    """The public list as CSV (UTF-8 with BOM; headers in the visitor's language)."""
    return _answer(request, context, "csv", country, q)


# -- the supporters' links ---------------------------------------------------------------------


def _view(context: Web, token: str, purpose: str) -> SupporterView:
    try:
        return lifecycle(context).resolve(token, purpose)
    except LookupError:
        raise NotFoundError from None


def _profile_rows(view: SupporterView, form: Mapping[str, str] | None) -> list[tuple[str, str]]:
    if form is not None:
        return [
            (form.get(f"lang_{n}", ""), form.get(f"services_{n}", ""))
            for n in range(1, MAX_SERVICE_LANGUAGES + 1)
        ]
    services: dict[str, str] = view.profile.draft.get("services", {})
    rows = list(services.items())[:MAX_SERVICE_LANGUAGES]
    return rows + [("", "")] * (MAX_SERVICE_LANGUAGES - len(rows))


def _profile_page(
    request: Request,
    context: Web,
    token: str,
    view: SupporterView,
    *,
    form: Mapping[str, str] | None = None,
    problems: Mapping[str, str] | None = None,
) -> Response:
    draft = view.profile.draft
    return context.render(
        request,
        "supporter_profile.html",
        {
            "token": token,
            "view": view,
            "rows": _profile_rows(view, form),
            "member_contact": (form or draft).get("member_contact", ""),
            "website": (form or draft).get("website", ""),
            "problems": problems or {},
            "eu_languages": EU_LANGUAGES,
        },
        status=400 if problems else 200,
    )


class _Page(Protocol):
    def __call__(
        self,
        request: Request,
        context: Web,
        token: str,
        view: SupporterView,
        *,
        form: Mapping[str, str] | None = None,
        problems: Mapping[str, str] | None = None,
    ) -> Response: ...


async def _send(
    request: Request,
    token: str,
    context: Web,
    who: Visitor,
    *,
    purpose: str,
    submit: Callable[[str, Mapping[str, str]], object],
    page: _Page,
    message: str,
) -> Response:
    """A supporter's form sent through its link: kept by ``submit`` (the link is spent), or
    shown again by ``page`` with its problems and everything typed."""
    if (refused := limited(request, context, "supporter")) is not None:
        return refused
    form = await read_form(request, who)
    view = await run_in_threadpool(_view, context, token, purpose)
    try:
        await run_in_threadpool(submit, token, form)
    except ProfileError as exc:
        return page(request, context, token, view, form=form, problems=exc.problems)
    except LookupError:
        raise NotFoundError from None
    return context.render(request, "supporter_done.html", {"view": view, "message": message})


@router.get("/supporter/{token}/profile", response_class=HTMLResponse)
def profile_form(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """The supporter's profile form (reading it changes nothing)."""
    if (refused := limited(request, context, "read")) is not None:
        return refused
    return _profile_page(request, context, token, _view(context, token, PROFILE))


@router.post("/supporter/{token}/profile", response_class=HTMLResponse)
async def profile_send(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """Keep the completed profile for the office to publish; the link is spent."""
    life = lifecycle(context)
    return await _send(
        request, token, context, who, purpose=PROFILE, submit=life.submit_profile,
        page=_profile_page, message="supporter_profile_sent",
    )  # fmt: skip


def _feedback_page(
    request: Request,
    context: Web,
    token: str,
    view: SupporterView,
    *,
    form: Mapping[str, str] | None = None,
    problems: Mapping[str, str] | None = None,
) -> Response:
    return context.render(
        request,
        "supporter_feedback.html",
        {"token": token, "view": view, "form": form or {}, "problems": problems or {}},
        status=400 if problems else 200,
    )


@router.get("/supporter/{token}/feedback", response_class=HTMLResponse)
def feedback_form(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """The feedback report's form (reading it changes nothing)."""
    if (refused := limited(request, context, "read")) is not None:
        return refused
    return _feedback_page(request, context, token, _view(context, token, FEEDBACK))


@router.post("/supporter/{token}/feedback", response_class=HTMLResponse)
async def feedback_send(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """Keep the report as a PDF document of the application; the link is spent."""
    life = lifecycle(context)
    return await _send(
        request, token, context, who, purpose=FEEDBACK, submit=life.submit_feedback,
        page=_feedback_page, message="supporter_feedback_sent",
    )  # fmt: skip
