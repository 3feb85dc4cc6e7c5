"""Routes anyone may reach: health, signing in and out, and the first admin's one-time link.

The applicants' and supporters' public pages (``/apply``, ``/supporters``,
``/supporter/…``, SPEC §10) are routers of their own beside this one, built on the
same base template (``public.html``) and catalogues.
"""

from __future__ import annotations

import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool

from workflow.audit_key import AuditKeyError
from workflow.web.app import NotFoundError, Web, require, web
from workflow.web.auth import Throttle, Visitor, client_address
from workflow.web.forms import read_form
from workflow.web.texts import Texts

router = APIRouter()
log = logging.getLogger("consentflow.web")

Ctx = Annotated[Web, Depends(web)]
Anyone = Annotated[Visitor, Depends(require(None))]


@router.get("/healthz")
def healthz(context: Ctx, who: Anyone) -> Response:
    """``{"ok": true}`` while the database answers, 503 otherwise."""
    try:
        context.store.newest_event_id()
    except (OperationalError, DBAPIError):
        return JSONResponse({"ok": False}, status_code=503)
    return JSONResponse({"ok": True})


@router.get("/")
def home(who: Anyone) -> Response:
    """The dashboard for a signed-in user, the sign-in page otherwise."""
    return RedirectResponse("/office" if who.user else "/login", status_code=303)


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``): no open redirect."""
    if not target:
        return "/office"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/office"
    if "\\" in target:
        return "/office"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, context: Ctx, who: Anyone, next: str = "") -> Response:
    """The sign-in form."""
    if who.user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return context.render(request, "login.html", {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, context: Ctx, who: Anyone) -> Response:
    """Check the password (throttled per address and name); start a session."""
    fields = await read_form(request, who)
    name = fields.get("name", "")[:200]
    target = _safe_next(fields.get("next"))
    client = client_address(request)
    keys = Throttle.keys(client, name)
    texts = Texts(request.state.lang)
    wait = context.throttle.wait(keys)
    if wait > 0:
        return context.render(
            request,
            "login.html",
            {"next": target, "error": texts("login_throttled", seconds=int(wait) + 1)},
            status=429,
        )
    user = await run_in_threadpool(context.users.authenticate, name, fields.get("password", ""))
    if user is None:
        context.throttle.failed(keys)
        return context.render(
            request, "login.html", {"next": target, "error": texts("login_failed")}, status=401
        )
    context.throttle.succeeded(keys)
    try:
        await run_in_threadpool(context.users.signed_in, user.name, client=client)
    except AuditKeyError as exc:
        # A sign-in that cannot be recorded is refused: the operator's log says why.
        log.error("cannot record the sign-in of %s: %s", user.name, exc)
        return context.render(
            request, "login.html", {"next": target, "error": texts("login_unrecorded")}, status=503
        )
    response = RedirectResponse(target, status_code=303)
    context.sessions.start(response, user)
    return response


@router.post("/logout")
async def logout(request: Request, context: Ctx, who: Anyone) -> Response:
    """End the session here and in every other browser of this user."""
    await read_form(request, who)
    response: Response = RedirectResponse("/login", status_code=303)
    if who.user is not None:
        try:
            await run_in_threadpool(
                context.users.sign_out, who.user.name, client=client_address(request)
            )
        except AuditKeyError as exc:
            # This browser is signed out all the same; the others are not, and it says so.
            log.error("cannot record the sign-out of %s: %s", who.user.name, exc)
            texts = Texts(request.state.lang)
            request.state.visitor = Visitor(None, who.csrf)  # the page shows no one in
            response = context.render(
                request,
                "error.html",
                {"status": 503, "code": "audit_key", "message": texts("logout_unrecorded")},
                status=503,
            )
    context.sessions.end(response)
    return response


@router.get("/setup/{token}", response_class=HTMLResponse)
def setup_form(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """The one-time link printed at first start: a form that creates the first admin."""
    if not context.users.setup_link_valid(token):
        raise NotFoundError
    return context.render(request, "setup.html", {"token": token, "error": None})


@router.post("/setup/{token}", response_class=HTMLResponse)
async def setup(request: Request, token: str, context: Ctx, who: Anyone) -> Response:
    """Create the first admin, spend the link, and sign them in."""
    fields = await read_form(request, who)
    if fields.get("password", "") != fields.get("password_again", ""):
        return context.render(
            request,
            "setup.html",
            {"token": token, "error": Texts(request.state.lang)("setup_mismatch")},
            status=400,
        )
    user = await run_in_threadpool(
        context.users.create_first_admin, token, fields.get("name", ""), fields.get("password", "")
    )
    response = RedirectResponse("/office", status_code=303)
    context.sessions.start(response, user)
    return response


#: The consent's own Unicode fonts, offered to browsers that lack a font for a script.
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")


@router.get("/fonts/{name}")
def font(name: str, who: Anyone) -> Response:
    """A font from ``forms/fonts`` (the two DejaVu files only)."""
    from importlib import resources  # noqa: PLC0415

    if name not in _FONTS:
        raise NotFoundError
    data = (resources.files("forms") / "fonts" / name).read_bytes()
    return Response(data, media_type="font/ttf", headers={"Cache-Control": "public, max-age=86400"})
