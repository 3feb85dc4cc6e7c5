"""The office's pages (SPEC §10): applications, one application, its documents and actions,
the live log, failed files, needs attention, the signed-consent upload, stats, users.

Reads go to the store; every change goes through the same services as the CLI, with
the signed-in user as the actor. Route handlers that touch the database are plain
functions (FastAPI runs them in its thread pool); those that read a body are
``async`` and hand the work to the pool themselves.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from forms.texts import catalog
from workflow.archive import safe_name
from workflow.records import application_json
from workflow.states import State
from workflow.users import Permission, Role
from workflow.web import attention, stats, supporters
from workflow.web.app import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    Web,
    require,
    web,
)
from workflow.web.auth import Visitor
from workflow.web.forms import read_form, read_upload

router = APIRouter()

PAGE_SIZE = 50
#: Events the processing log's page shows before the live ones (older: `consentflow log`,
#: or /api/log).
LOG_PAGE_EVENTS = 100

Ctx = Annotated[Web, Depends(web)]
Reader = Annotated[Visitor, Depends(require(Permission.READ))]


@dataclass(frozen=True)
class Action:
    """A change the application page offers: who may do it, from which states."""

    permission: Permission
    states: frozenset[State]
    needs_reason: bool = False


#: ``POST /office/applications/{ref}/{action}``: SPEC §10's, and ``send_back`` (the
#: office returns a profile draft with a comment, SPEC §12).
ACTIONS: dict[str, Action] = {
    "approve": Action(Permission.DECIDE, frozenset({State.AWAITING_REVIEW})),
    "reject": Action(Permission.DECIDE, frozenset({State.AWAITING_REVIEW}), needs_reason=True),
    "reissue": Action(Permission.DECIDE, frozenset({State.CONSENT_ISSUED})),
    "profile": Action(Permission.DECIDE, frozenset({State.SIGNED})),
    "publish": Action(Permission.DECIDE, frozenset({State.PROFILE_CREATED})),
    "send_back": Action(Permission.DECIDE, frozenset({State.PROFILE_CREATED}), needs_reason=True),
    "suspend": Action(Permission.SUSPEND, frozenset({State.ACTIVE}), needs_reason=True),
    "reinstate": Action(Permission.SUSPEND, frozenset({State.SUSPENDED})),
}

#: Which permission a document kind needs: applicants' own files are not the Commission's.
DOCUMENT_PERMISSIONS = {
    "eoi": Permission.APPLICANT_DOCUMENTS,
    "consent": Permission.CONSENTS,
    "signed": Permission.CONSENTS,
    "feedback": Permission.READ,  # what a supporter reports for the office and the Commission
}


def _perform(context: Web, action: str, reference: str, actor: str, reason: str) -> str:
    """Run one action through the application services; return what to tell the user."""
    services = context.services
    if action == "approve":
        issued = services.approve(reference, actor=actor)
        return f"{reference}: consent issued ({issued.sha256[:12]}…)"
    if action == "reject":
        services.reject(reference, actor=actor, reason=reason)
        return f"{reference}: ineligible"
    if action == "reissue":
        services.reissue(reference, actor=actor, reason=reason)
        return f"{reference}: consent reissued"
    return supporters.perform(context, action, reference, actor, reason)


def available_actions(context: Web) -> dict[str, Action]:
    """The actions whose services exist in this version (all of ``ACTIONS``)."""
    return dict(ACTIONS)


def _reference(value: str) -> str:
    return value.strip().upper()


def _field_labels(lang: str) -> dict[str, str]:
    try:
        return catalog(lang, "form")
    except LookupError:
        return {}


# -- applications ---------------------------------------------------------------------------


@router.get("/office", response_class=HTMLResponse)
def applications(
    request: Request,
    context: Ctx,
    who: Reader,
    *,
    state: str = "",
    q: str = "",
    page: int = 1,
) -> Response:
    """Counts per state, a state filter, search, newest first, paged."""
    if state and state not in {s.value for s in State}:
        raise BadRequestError(f"unknown state {state!r}")
    page = max(1, page)
    counts = context.state_counts()
    rows, total = context.store.page_applications(
        state=state or None, search=q[:200], offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
        count=bool(q.strip()),
    )  # fmt: skip
    if total is None:
        total = counts.get(state, 0) if state else sum(counts.values())
    return context.render(
        request,
        "applications.html",
        {
            "counts": counts,
            "states": [s.value for s in State],
            "rows": rows,
            "total": total,
            "state": state,
            "q": q,
            "page": page,
            "pages": max(1, math.ceil(total / PAGE_SIZE)),
        },
    )


@router.get("/office/applications/{ref}", response_class=HTMLResponse)
def application(request: Request, ref: str, context: Ctx, who: Reader, done: str = "") -> Response:
    """One application: fields, problems, findings, documents, timeline, signature reports."""
    row = context.store.application(_reference(ref))
    if row is None:
        raise NotFoundError
    detail = application_json(context.store, row)
    derived = next(
        (event["to_state"] for event in reversed(detail["events"]) if event["to_state"]), None
    )
    actions = {
        name: action
        for name, action in available_actions(context).items()
        if who.can(action.permission) and State(derived or row.state) in action.states
    }
    documents = [
        doc
        for doc in detail["documents"]
        if who.can(DOCUMENT_PERMISSIONS.get(doc["kind"], Permission.USERS))
    ]
    return context.render(
        request,
        "application.html",
        {
            "app": detail,
            "state": derived or row.state,
            "stored_state": row.state,
            "actions": actions,
            "documents": documents,
            "labels": _field_labels(request.state.lang),
            "can_upload": who.can(Permission.UPLOAD_SIGNED) and derived == State.CONSENT_ISSUED,
            "profile": supporters.lifecycle(context).profile_of(row.reference or ""),
            "done": done[:300],
            "messages": context.store.notifications(row.id) if row.id is not None else [],
        },
    )


@router.post("/office/applications/{ref}/{action}")
async def act(
    request: Request,
    ref: str,
    action: str,
    context: Ctx,
    who: Annotated[Visitor, Depends(require(Permission.READ))],
) -> Response:
    """Approve, reject (with a reason), reissue: through the services, as the signed-in user."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise NotFoundError
    if not who.can(chosen.permission):
        raise ForbiddenError
    fields = await read_form(request, who)
    if action not in available_actions(context):
        raise NotFoundError
    reference = _reference(ref)
    reason = fields.get("reason", "").strip()
    if chosen.needs_reason and not reason:
        raise BadRequestError("Give a reason: the applicant is told it.")
    assert who.user is not None
    message = await run_in_threadpool(_perform, context, action, reference, who.user.name, reason)
    target = f"/office/applications/{quote(reference)}?done={quote(message)}"
    return RedirectResponse(target, status_code=303)


@router.get("/office/applications/{ref}/documents/{sha256}")
def document(request: Request, ref: str, sha256: str, context: Ctx, who: Reader) -> Response:
    """A document of the application, if this user may see its kind; recorded as viewed.

    A document of another kind than the user may see answers exactly as a missing one.
    """
    row = context.store.application(_reference(ref))
    if row is None or row.id is None:
        raise NotFoundError
    doc = context.store.document(row.id, sha256.lower())
    if doc is None or not who.can(DOCUMENT_PERMISSIONS.get(doc.kind, Permission.USERS)):
        raise NotFoundError
    try:
        data = context.services.archive.get(doc.sha256)
    except FileNotFoundError:
        raise NotFoundError from None
    assert who.user is not None
    with context.store.tx() as tx:
        tx.append_event(
            "document_viewed",
            actor=who.user.name,
            reference=row.reference,
            reason=f"{doc.kind} {doc.original_name or doc.sha256[:12]} downloaded",
            data={"sha256": doc.sha256, "kind": doc.kind, "file": doc.original_name},
        )
    name = safe_name(doc.original_name or f"{row.reference}-{doc.kind}.pdf")
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return Response(
        data,
        media_type="application/pdf",
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
            ),
        },
    )


# -- the processing log ----------------------------------------------------------------------


@router.get("/office/log", response_class=HTMLResponse)
def log_page(request: Request, context: Ctx, who: Reader) -> Response:
    """The newest events, then live; waiting and failed files beside them."""
    events = context.store.event_lines(LOG_PAGE_EVENTS)
    failed, failed_total = attention.failed_files(context.settings.failed, limit=20)
    waiting = attention.waiting_files(
        {"inbox": context.settings.inbox, "signed": context.settings.signed}, context.clock()
    )
    return context.render(
        request,
        "log.html",
        {
            "events": events,
            "last_id": events[-1].id if events else 0,
            "failed": failed,
            "failed_total": failed_total,
            "waiting": waiting,
        },
    )


@router.get("/office/log/stream")
def log_stream(request: Request, context: Ctx, who: Reader, after: int = 0) -> Response:
    """Server-sent events: every event after ``Last-Event-ID`` (or ``?after=``), then live."""
    header = request.headers.get("last-event-id", "").strip()
    start = int(header) if header.isdigit() else max(0, after)
    return StreamingResponse(
        context.live.stream(start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# -- failed files and what needs attention ---------------------------------------------------


@router.get("/office/failed", response_class=HTMLResponse)
def failed_page(request: Request, context: Ctx, who: Reader, done: str = "") -> Response:
    """Failed files with their reasons (retry is one click), and files still waiting."""
    failed, total = attention.failed_files(context.settings.failed)
    waiting = attention.waiting_files(
        {"inbox": context.settings.inbox, "signed": context.settings.signed}, context.clock()
    )
    return context.render(
        request,
        "failed.html",
        {"failed": failed, "failed_total": total, "waiting": waiting, "done": done[:300]},
    )


@router.post("/office/failed/{name}/retry")
async def retry(
    request: Request,
    name: str,
    context: Ctx,
    who: Annotated[Visitor, Depends(require(Permission.DECIDE))],
) -> Response:
    """Put one failed file back where it came from, as the signed-in user."""
    await read_form(request, who)
    if name != safe_name(name) or name.endswith(".error.json"):
        raise NotFoundError
    assert who.user is not None
    try:
        moved = await run_in_threadpool(context.services.retry, [name], actor=who.user.name)
    except FileNotFoundError:
        raise NotFoundError from None
    message = f"{name}: put back for processing as {', '.join(moved)}"
    return RedirectResponse(f"/office/failed?done={quote(message)}", status_code=303)


@router.get("/office/attention", response_class=HTMLResponse)
def attention_page(request: Request, context: Ctx, who: Reader) -> Response:
    """Everything that needs a person, each with its reason and the action that fixes it."""
    entries = attention.attention(context.settings, context.store, context.clock())
    return context.render(request, "attention.html", {"entries": entries})


# -- signed consents -------------------------------------------------------------------------


@router.get("/office/signed", response_class=HTMLResponse)
def signed_form(
    request: Request,
    context: Ctx,
    who: Annotated[Visitor, Depends(require(Permission.UPLOAD_SIGNED))],
) -> Response:
    """The upload form for a signed consent."""
    return context.render(request, "signed.html", {"outcome": None})


@dataclass(frozen=True)
class UploadOutcome:
    """What became of an upload: the ledger's verdict and, if verified, the report."""

    name: str
    status: str  # done | duplicate | failed | claimed (postponed by a passing error)
    outcome: str | None
    report: dict[str, Any] | None
    error: dict[str, Any] | None


def _upload_signed(context: Web, name: str, data: bytes) -> UploadOutcome:
    item_id = context.intake.submit("signed", name, data, source="web")
    item = context.store.item(item_id)
    assert item is not None
    sha256 = hashlib.sha256(data).hexdigest()
    row = context.store.signature_report(sha256)
    report = None if row is None else {"accepted": row.accepted, **row.report}
    error = None
    if item.status == "failed" and item.outcome:
        error = attention.read_report(context.settings.failed / (item.outcome + ".error.json"))
    return UploadOutcome(name, item.status, item.outcome, report, error)


#: How an upload's ledger status reads in the log.
_VERDICTS = {
    "done": "accepted",
    "failed": "rejected",
    "duplicate": "received before",
    "claimed": "postponed (a passing error; the engine retries it)",
}


@router.post("/office/signed", response_class=HTMLResponse)
async def upload_signed(
    request: Request,
    context: Ctx,
    who: Annotated[Visitor, Depends(require(Permission.UPLOAD_SIGNED))],
) -> Response:
    """Verify an uploaded signed consent exactly as one dropped in ``signed/``; show the report."""
    limit = int(context.settings.intake.max_file_mb * 1024 * 1024)
    upload = await read_upload(request, who, field="file", limit=limit)
    assert who.user is not None
    outcome = await run_in_threadpool(_upload_signed, context, upload.name, upload.data)
    with context.store.tx() as tx:
        tx.append_event(
            "upload",
            actor=who.user.name,
            reference=outcome.outcome if outcome.status == "done" else None,
            reason=f"signed consent {upload.name} uploaded: {_VERDICTS[outcome.status]}",
            data={"file": upload.name, "size": len(upload.data), "status": outcome.status},
        )
    status = 200 if outcome.status in {"done", "duplicate"} else 422
    return context.render(request, "signed.html", {"outcome": outcome}, status=status)


# -- stats -----------------------------------------------------------------------------------


def _figures(context: Web) -> dict[str, Any]:
    history = context.store.state_history()
    dates, per_state = stats.states_per_day(history, context.clock().date())
    return {
        "dates": dates,
        "per_state": per_state,
        "steps": stats.step_durations(history),
        "latency": stats.intake_latency(context.store.intake_times()),
    }


@router.get("/office/stats", response_class=HTMLResponse)
def stats_page(request: Request, context: Ctx, who: Reader) -> Response:
    """Plots with their figures in tables beside them."""
    figures = _figures(context)
    return context.render(
        request,
        "stats.html",
        {
            "steps": figures["steps"],
            "steps_unit": stats.unit_for(figures["steps"]),
            "latency": figures["latency"],
            "latency_unit": stats.unit_for(figures["latency"]),
            "today": {state: row[-1] for state, row in figures["per_state"].items()},
        },
    )


@router.get("/office/stats/{chart}.svg")
def stats_chart(chart: str, context: Ctx, who: Reader) -> Response:
    """One plot, as SVG made on the server."""
    figures = _figures(context)
    if chart == "states":
        body = stats.states_chart(figures["dates"], figures["per_state"])
    elif chart == "steps":
        body = stats.spread_chart("Time spent in each step", figures["steps"])
    elif chart == "latency":
        body = stats.spread_chart("Intake latency (claim to final place)", figures["latency"])
    else:
        raise NotFoundError
    return Response(body, media_type="image/svg+xml")


# -- users -----------------------------------------------------------------------------------

Admin = Annotated[Visitor, Depends(require(Permission.USERS))]


@router.get("/office/users", response_class=HTMLResponse)
def users_page(request: Request, context: Ctx, who: Admin, done: str = "") -> Response:
    """Every user, a form to add one, and a button to disable one."""
    return context.render(
        request,
        "users.html",
        {"users": context.store.users(), "roles": [r.value for r in Role], "done": done[:300]},
    )


@router.post("/office/users")
async def add_user(request: Request, context: Ctx, who: Admin) -> Response:
    """Add a user (name, role, password) as the signed-in admin."""
    fields = await read_form(request, who)
    assert who.user is not None
    user = await run_in_threadpool(
        context.users.add,
        fields.get("name", ""),
        fields.get("role", ""),
        fields.get("password", ""),
        actor=who.user.name,
    )
    message = f"{user.name} added as {user.role}"
    return RedirectResponse(f"/office/users?done={quote(message)}", status_code=303)


@router.post("/office/users/{name}/disable")
async def disable_user(request: Request, name: str, context: Ctx, who: Admin) -> Response:
    """Disable a user: their sessions and tokens stop working at once."""
    await read_form(request, who)
    assert who.user is not None
    await run_in_threadpool(context.users.disable, name, actor=who.user.name)
    return RedirectResponse(f"/office/users?done={quote(name + ' disabled')}", status_code=303)
