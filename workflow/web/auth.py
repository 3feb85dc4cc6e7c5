"""Who is asking: signed session cookies, API bearer tokens, CSRF tokens and login throttling.

A session is a cookie signed with the home folder's web secret (itsdangerous), holding
the user's id, their ``session_epoch`` and a random session id; it expires after
``[web] session_hours``. The user row is read on every request, so a disabled user,
a new password or a sign-out (each bumps the epoch) ends every session at once.

CSRF: every form carries ``HMAC(secret, session id)``. A visitor who is not signed in
(the sign-in and first-admin forms) gets a signed pre-session cookie for the same
purpose, so even the sign-in form cannot be posted from another site.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from workflow.store import User
from workflow.users import Permission, allowed

SESSION_COOKIE = "cf_session"
PRE_SESSION_COOKIE = "cf_pre"
CSRF_FIELD = "csrf_token"
SECRET_FILE = "web-secret.key"  # noqa: S105 - a file name
SECRET_ENV = "CONSENTFLOW_WEB_SECRET"  # noqa: S105 - a variable name


def load_secret(home: Path) -> bytes:
    """The key that signs sessions: ``$CONSENTFLOW_WEB_SECRET``, else ``home/web-secret.key``.

    The file is created on first use, 0600, and shared by every process on the home
    folder (several hosts mount the same home), so a session made by one web process
    is valid on the others.
    """
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode()
    path = home / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        secret = path.read_bytes().strip()
        if len(secret) < 32:
            raise ValueError(
                f"{path} holds no usable secret; delete it to make a new one"
            ) from None
        return secret
    secret = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    return secret


@dataclass(frozen=True)
class Visitor:
    """Who made a request: a user (by session or token), or nobody, and the CSRF token
    their forms must carry (``None`` for bearer-token requests, which post nothing)."""

    user: User | None
    csrf: str | None
    by_token: bool = False

    def can(self, permission: Permission) -> bool:
        """Whether this visitor's role grants ``permission``."""
        return self.user is not None and allowed(self.user.role, permission)


class Sessions:
    """Makes and reads the signed cookies."""

    def __init__(self, secret: bytes, *, max_age_s: float, secure: bool) -> None:
        self._secret = secret
        self._signer = URLSafeTimedSerializer(secret, salt="consentflow.session")
        self._pre_signer = URLSafeTimedSerializer(secret, salt="consentflow.pre-session")
        self.max_age_s = int(max_age_s)
        self.secure = secure

    def csrf_for(self, session_id: str) -> str:
        """The CSRF token of a session."""
        return hmac.new(self._secret, b"csrf:" + session_id.encode(), hashlib.sha256).hexdigest()

    def read(self, request: Request, lookup: Callable[[int], User | None]) -> Visitor:
        """The visitor a request's cookies name (a signed-out one if none is valid)."""
        raw = request.cookies.get(SESSION_COOKIE)
        if raw:
            try:
                data = self._signer.loads(raw, max_age=self.max_age_s)
                user = lookup(int(data["u"]))
                if user is not None and not user.disabled and user.session_epoch == data["e"]:
                    return Visitor(user, self.csrf_for(str(data["s"])))
            except (BadSignature, KeyError, TypeError, ValueError):
                pass
        raw = request.cookies.get(PRE_SESSION_COOKIE)
        if raw:
            try:
                data = self._pre_signer.loads(raw, max_age=self.max_age_s)
                return Visitor(None, self.csrf_for(str(data["s"])))
            except (BadSignature, KeyError, TypeError):
                pass
        return Visitor(None, None)

    def start(self, response: Response, user: User) -> None:
        """Sign ``user`` in on ``response`` (a new session id: no fixation)."""
        value = self._signer.dumps(
            {"u": user.id, "e": user.session_epoch, "s": secrets.token_urlsafe(16)}
        )
        self._set(response, SESSION_COOKIE, value)
        response.delete_cookie(PRE_SESSION_COOKIE, path="/")

    def pre_session(self, response: Response) -> str:
        """Give a signed-out visitor a pre-session; return its CSRF token."""
        session_id = secrets.token_urlsafe(16)
        self._set(response, PRE_SESSION_COOKIE, self._pre_signer.dumps({"s": session_id}))
        return self.csrf_for(session_id)

    def end(self, response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure, httponly=True)

    def _set(self, response: Response, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=int(self.max_age_s),
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )


def client_address(request: Request) -> str:
    """The address a request came from, by which sign-ins are throttled and public routes
    rate-limited ("?" when the server does not know it)."""
    return request.client.host if request.client else "?"


def csrf_ok(expected: str | None, given: str | None) -> bool:
    """Whether a posted CSRF token is the visitor's own."""
    return bool(expected and given) and hmac.compare_digest(str(expected), str(given))


class Throttle:
    """Slows down repeated failed sign-ins, per (client address, name) and per name.

    The first ``free`` failures of a key cost nothing; after that each failure closes
    the key for twice as long as the one before (1 s, 2 s, 4 s … up to ``max_wait_s``).
    While a key is closed every attempt is refused unchecked, the right password too,
    so guessing runs at the throttle's rate whatever the attacker's. A success, or an
    hour without failures, clears the key. Memory is bounded (the oldest keys go).
    """

    def __init__(
        self,
        *,
        free: int = 5,
        max_wait_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.free = free
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.max_keys = max_keys
        # key -> (failures, open again at, last failure)
        self._keys: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()  # sign-ins run in the server's thread pool

    @staticmethod
    def keys(client: str, name: str) -> tuple[str, str]:
        """The keys one attempt counts against."""
        folded = name.strip().casefold()
        return f"{client}|{folded}", f"*|{folded}"

    def wait(self, keys: tuple[str, ...]) -> float:
        """Seconds before these keys may try again (0: now)."""
        now = self.clock()
        with self._lock:
            entries = [self._keys.get(key) for key in keys]
        return max([0.0] + [entry[1] - now for entry in entries if entry is not None])

    def failed(self, keys: tuple[str, ...]) -> None:
        """Count a failed attempt."""
        now = self.clock()
        with self._lock:
            # The name alone gets more free attempts than one address with that name:
            # slow enough for guessing from many addresses, not a lock-out by one.
            for key, free in zip(keys, (self.free, self.free * 4), strict=False):
                fails, _, last = self._keys.pop(key, (0, 0.0, now))
                fails = 1 if now - last > 3600 else fails + 1
                excess = fails - free
                wait = min(self.max_wait_s, 2.0 ** (excess - 1)) if excess > 0 else 0.0
                self._keys[key] = (fails, now + wait, now)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)

    def succeeded(self, keys: tuple[str, ...]) -> None:
        """Clear the keys of a successful sign-in."""
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)
