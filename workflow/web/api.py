"""The JSON API (SPEC §10): the very documents of ``status --json``, ``show --json`` and
``log --json``, built by :mod:`workflow.records`, for a session or a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from workflow.records import application_json, event_json, summary_json
from workflow.states import State
from workflow.users import Permission
from workflow.web.app import BadRequestError, NotFoundError, Web, require, web
from workflow.web.auth import Visitor

router = APIRouter(prefix="/api")

Ctx = Annotated[Web, Depends(web)]
Reader = Annotated[Visitor, Depends(require(Permission.READ))]


@router.get("/applications")
def applications(context: Ctx, who: Reader, state: str = "") -> JSONResponse:
    """``status [--state S] --json``: every application, oldest first."""
    try:
        chosen = State(state) if state else None
    except ValueError:
        raise BadRequestError(f"unknown state {state!r}") from None
    return JSONResponse([summary_json(row) for row in context.store.applications(chosen)])


@router.get("/applications/{ref}")
def application(ref: str, context: Ctx, who: Reader) -> JSONResponse:
    """``show REF --json``."""
    row = context.store.application(ref.strip().upper())
    if row is None:
        raise NotFoundError
    return JSONResponse(application_json(context.store, row))


@router.get("/log")
def log(context: Ctx, who: Reader, limit: int = 50, after: int = 0) -> JSONResponse:
    """``log [-n N] --json``: the newest ``limit`` events, oldest first; with ``after``,
    the events after that id (at most ``limit``), for a client that follows."""
    limit = max(1, min(limit, 10_000))
    rows = context.store.events_after(after, limit) if after else context.store.events(limit=limit)
    return JSONResponse([event_json(row) for row in rows])
