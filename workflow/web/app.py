"""The dashboard application: services, security headers, templates and one error handler.

:func:`create_app` builds a FastAPI application over the same services as the CLI (the
store, :class:`~workflow.applications.Applications`, :class:`~workflow.users.Users`, and
an :class:`~workflow.intake.Intake` for uploads): the web adds no second path to the
database. Every route declares the permission it needs through :func:`require`; the
authorization tests walk the routes and fail on one that does not.

Errors are translated once, here: a domain error becomes a page (or, under ``/api/``, a
JSON body) with its message; nothing answers with a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow.applications import Applications
from workflow.archive import Access
from workflow.audit_key import AuditKeyError, load_key
from workflow.config import Settings
from workflow.intake import Intake
from workflow.printable import printable
from workflow.states import DecisionError, TransitionError
from workflow.store import Store
from workflow.users import Permission, UserError, Users
from workflow.web.auth import Sessions, Throttle, Visitor, load_secret
from workflow.web.live import LiveLog
from workflow.web.texts import Texts, languages, pick_language

if TYPE_CHECKING:
    from workflow.web.apply import RateLimit

#: Every response's security headers. The CSP allows the site's own files only: no
#: inline script or style anywhere, so injected markup could not run even unescaped.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
        "object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

LANG_COOKIE = "cf_lang"

log = logging.getLogger("consentflow.web")


class SignInRequiredError(Exception):
    """The route needs a signed-in user and there is none."""


class ForbiddenError(Exception):
    """The signed-in user's role does not allow this."""


class NotFoundError(Exception):
    """Nothing here, or nothing this user may see: both answer the same (no IDOR oracle)."""


class CsrfError(Exception):
    """A form came without this visitor's CSRF token."""


class BadRequestError(Exception):
    """The request cannot be served as sent; the message says why."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass
class Web:
    """What every route needs, built once per application."""

    settings: Settings
    store: Store
    services: Applications
    users: Users
    intake: Intake
    sessions: Sessions
    throttle: Throttle
    live: LiveLog
    templates: jinja2.Environment
    clock: Callable[[], datetime]
    limiter: RateLimit
    _counts: tuple[int, dict[str, int]] = field(default_factory=lambda: (0, {}))

    def state_counts(self) -> dict[str, int]:
        """Applications per state, read again only when the live log has seen a new event:
        every change of state is an event, and the list page asks on every view."""
        newest = self.live.newest
        if not newest or newest != self._counts[0]:
            self._counts = (newest, self.store.state_counts())
        return self._counts[1]

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any] | None = None,
        *,
        status: int = 200,
    ) -> HTMLResponse:
        """A page: the template with the visitor, their language and CSRF token."""
        visitor: Visitor = request.state.visitor
        lang: str = request.state.lang
        csrf = visitor.csrf
        response = HTMLResponse(status_code=status)
        if csrf is None and visitor.user is None and not visitor.by_token:
            csrf = self.sessions.pre_session(response)
        body = self.templates.get_template(template).render(
            {
                "request": request,
                "t": Texts(lang),
                "lang": lang,
                "languages": languages(),
                "user": visitor.user,
                "can": visitor.can,
                "P": Permission,
                "csrf": csrf,
                "path": request.url.path,
                **(context or {}),
            }
        )
        response.body = response.render(body)
        response.headers["content-length"] = str(len(response.body))
        if request.query_params.get("lang") in languages():
            response.set_cookie(
                LANG_COOKIE, request.state.lang, max_age=365 * 86400, samesite="lax",
                httponly=True, secure=self.sessions.secure,
            )  # fmt: skip
        return response


async def web(request: Request) -> Web:
    """The application's :class:`Web` (a FastAPI dependency; ``async`` because it does no
    I/O: FastAPI would run a plain function in its thread pool, a hop per request)."""
    context: Web = request.app.state.web
    return context


def visitor(request: Request) -> Visitor:
    """The visitor of this request (read by the middleware below)."""
    found: Visitor = request.state.visitor
    return found


def require(permission: Permission | None) -> Callable[[Request], Awaitable[Visitor]]:
    """A dependency: the visitor, who must hold ``permission`` (``None``: anyone)."""

    async def check(request: Request) -> Visitor:
        who = visitor(request)
        if permission is None:
            return who
        if who.user is None:
            raise SignInRequiredError
        if not who.can(permission):
            raise ForbiddenError
        return who

    check.permission = permission  # type: ignore[attr-defined]  # read by the route audit
    return check


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` (and ``no-store`` outside ``/static``) to responses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: pass through, adding headers to ``http.response.start``."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                if not static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error(request: Request, status: int, code: str, message: str) -> Response:
    if _is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            {"error": {"code": code, "message": message}}, status_code=status, headers=headers
        )
    context: Web = request.app.state.web
    return context.render(
        request, "error.html", {"status": status, "code": code, "message": message}, status=status
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def sign_in(request: Request, _exc: Exception) -> Response:
        if _is_api(request):
            return _error(request, 401, "unauthorized", "Sign in, or send a bearer token.")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    async def forbidden(request: Request, _exc: Exception) -> Response:
        texts = Texts(request.state.lang)
        return _error(request, 403, "forbidden", texts("error_forbidden"))

    async def not_found(request: Request, _exc: Exception) -> Response:
        return _error(request, 404, "not_found", Texts(request.state.lang)("error_not_found"))

    async def csrf(request: Request, _exc: Exception) -> Response:
        return _error(request, 403, "csrf", Texts(request.state.lang)("error_csrf"))

    async def bad_request(request: Request, exc: Exception) -> Response:
        if isinstance(exc, BadRequestError):
            return _error(request, exc.status, exc.code, str(exc))
        return _error(request, 400, "bad_request", str(exc))

    async def decision(request: Request, exc: Exception) -> Response:
        return _error(request, 409, "not_possible", str(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            return await not_found(request, exc)
        return _error(request, exc.status_code, "http", str(exc.detail))

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:5])
        return _error(request, 400, "invalid_request", f"missing or invalid: {where}")

    async def unrecorded(request: Request, exc: Exception) -> Response:
        # The change's transaction rolled back with its event: nothing was changed.
        log.error("%s %s cannot be recorded: %s", request.method, request.url.path, exc)
        return _error(request, 503, "audit_key", Texts(request.state.lang)("error_audit_key"))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(request, 500, "internal_error", Texts(request.state.lang)("error_internal"))

    app.add_exception_handler(Exception, unexpected)
    app.add_exception_handler(AuditKeyError, unrecorded)
    app.add_exception_handler(SignInRequiredError, sign_in)
    app.add_exception_handler(ForbiddenError, forbidden)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(CsrfError, csrf)
    app.add_exception_handler(BadRequestError, bad_request)
    app.add_exception_handler(UserError, bad_request)
    app.add_exception_handler(DecisionError, decision)
    app.add_exception_handler(TransitionError, decision)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


def _templates() -> jinja2.Environment:
    folder = resources.files("workflow.web") / "templates"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # applicant data is always text, never markup
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["printable"] = printable  # text from outside in a pre-wrap cell: one line
    return env


def when(moment: datetime | str | None) -> Markup:
    """A time in UTC, in a ``<time>`` element the page's script adds the local time to."""
    if moment is None or moment == "":
        return Markup("–")
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    moment = moment.astimezone(UTC)
    # Both parts are made here from a datetime (digits, '-', ':', '+', 'T'): nothing to
    # escape, and this filter runs twice per row of every list.
    iso = moment.isoformat()
    return Markup(f'<time datetime="{iso}">{iso[:10]} {iso[11:19]} UTC</time>')  # noqa: S704


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    services: Applications | None = None,
    users: Users | None = None,
    throttle: Throttle | None = None,
    clock: Callable[[], datetime] | None = None,
    live_interval_s: float = 0.1,
    limiter: RateLimit | None = None,
) -> FastAPI:
    """The dashboard over ``settings``' home and database (services may be injected)."""
    from workflow.engine import build_applications  # noqa: PLC0415 - pyHanko, only here
    from workflow.web import (  # noqa: PLC0415 - they import this module
        api,
        apply,
        pages,
        public,
        supporters,
    )

    store = store or Store(settings.database_url, audit_key=load_key(settings.home))
    services = services or build_applications(store, settings)
    clock = clock or (lambda: datetime.now(UTC))
    intake = Intake(
        store,
        folders={"inbox": settings.inbox, "signed": settings.signed},
        failed_dir=settings.failed,
        processors={"inbox": services.receive_eoi, "signed": services.receive_signed},
        settings=settings.intake,
        # uploads that fail land in failed/ with the same access as the engine's
        failed_access=Access(settings.files.gid_for("failed")),
    )
    context = Web(
        settings=settings,
        store=store,
        services=services,
        users=users or Users(store),
        intake=intake,
        sessions=Sessions(
            load_secret(settings.home),
            max_age_s=settings.web.session_hours * 3600,
            secure=settings.web.secure_cookies,
        ),
        throttle=throttle or Throttle(),
        live=LiveLog(store, interval_s=live_interval_s),
        templates=_templates(),
        clock=clock,
        limiter=limiter
        or apply.RateLimit(
            {
                "apply": apply.Rate(settings.apply.burst, settings.apply.every_s),
                "read": apply.Rate(settings.web.read_burst, settings.web.read_every_s),
            }
        ),
    )
    app = FastAPI(
        title="consentflow", docs_url=None, redoc_url=None, openapi_url=None,
        lifespan=context.live.lifespan,
    )  # fmt: skip
    app.state.web = context

    app.add_middleware(Identify, context=context)
    app.add_middleware(SecurityHeaders)
    _install_error_handlers(app)
    app.mount(
        "/static",
        StaticFiles(directory=str(resources.files("workflow.web") / "static")),
        name="static",
    )
    app.include_router(public.router)
    app.include_router(apply.router)
    app.include_router(supporters.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    return app


class Identify:
    """Reads the visitor (session cookie or bearer token) and their language, once per
    request, into ``request.state`` (a plain ASGI middleware: the live log streams)."""

    def __init__(self, app: ASGIApp, context: Web) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry."""
        if scope["type"] == "http":
            request = Request(scope)
            request.state.lang = pick_language(
                request.query_params.get("lang"),
                request.cookies.get(LANG_COOKIE),
                request.headers.get("accept-language"),
            )
            if str(scope.get("path", "")).startswith("/static/"):
                request.state.visitor = Visitor(None, None)  # files, no database
            else:
                request.state.visitor = await run_in_threadpool(self._visitor, request)
        await self.app(scope, receive, send)

    def _visitor(self, request: Request) -> Visitor:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return Visitor(self.context.users.by_api_token(token.strip()), None, by_token=True)
        if not request.cookies:
            return Visitor(None, None)
        return self.context.sessions.read(request, self.context.store.user_by_id)
