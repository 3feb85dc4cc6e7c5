"""Dashboard users: roles, Argon2id passwords, API tokens and the first admin's link (SPEC §10).

One service, :class:`Users`, for the CLI (``consentflow user …``) and the dashboard
alike; every change is an event in the chain with the acting person as its actor.
Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second
recommended profile); tokens are random and only their SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from workflow.store import Store, Tx, User


class Role(StrEnum):
    """What a user may do; stored and printed, never renamed."""

    VIEWER = "viewer"
    OFFICE = "office"
    COMMISSION = "commission"
    ADMIN = "admin"


class Permission(StrEnum):
    """One kind of thing a role allows."""

    READ = "read"  # every page, the log, the API: what is there and why
    APPLICANT_DOCUMENTS = "applicant_documents"  # the EOI PDFs applicants sent
    CONSENTS = "consents"  # issued and signed consent PDFs
    DECIDE = "decide"  # approve, reject, reissue, retry failed files, profile, publish
    UPLOAD_SIGNED = "upload_signed"  # put a signed consent through verification
    SUSPEND = "suspend"  # suspend and reinstate a supporter
    USERS = "users"  # add and disable users


#: The roles of SPEC §10. The Commission signs consents and never needs the applicants'
#: own files (contact people, phone numbers); the admin can do everything, so that the
#: first admin of a new office can work before adding anyone.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ, Permission.APPLICANT_DOCUMENTS, Permission.CONSENTS}),
    Role.OFFICE: frozenset(
        {
            Permission.READ,
            Permission.APPLICANT_DOCUMENTS,
            Permission.CONSENTS,
            Permission.DECIDE,
            Permission.UPLOAD_SIGNED,
        }
    ),
    Role.COMMISSION: frozenset(
        {Permission.READ, Permission.CONSENTS, Permission.UPLOAD_SIGNED, Permission.SUSPEND}
    ),
    Role.ADMIN: frozenset(Permission),
}

#: Token purposes (``tokens.purpose``).
API = "api"
SETUP = "setup"

MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # Argon2 takes any length; this bounds the work a stranger can ask for
_NAME = re.compile(r"[\w.@-]{1,64}")


class UserError(Exception):
    """A user cannot be added, changed or signed in as asked; the message says why."""


def allowed(role: str, permission: Permission) -> bool:
    """Whether ``role`` grants ``permission`` (an unknown role grants nothing)."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def token_hash(token: str) -> str:
    """How a token is stored: its SHA-256 (tokens are 256 random bits, so no salt)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_name(name: str) -> str:
    name = unicodedata.normalize("NFC", name.strip())
    if not _NAME.fullmatch(name):
        raise UserError(
            f"{name!r} is not a usable user name: use 1-64 letters, digits, '.', '-', '_' or '@'"
        )
    return name


def _check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is too long: use at most {MAX_PASSWORD} characters")
    return password


class Users:
    """The dashboard's users, over the store."""

    def __init__(
        self,
        store: Store,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.clock = clock or (lambda: datetime.now(UTC))
        # Verified against when the name is unknown, so that a wrong name costs as long
        # as a wrong password and does not reveal which names exist.
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    # -- changes -------------------------------------------------------------------

    def add(self, name: str, role: str, password: str, *, actor: str) -> User:
        """Create a user; raises :class:`UserError` for a taken name, a bad role or password."""
        name = _check_name(name)
        try:
            role = Role(role).value
        except ValueError:
            raise UserError(
                f"unknown role {role!r}: use one of {', '.join(r.value for r in Role)}"
            ) from None
        password_hash = self.hasher.hash(_check_password(password))
        with self.store.tx() as tx:
            if tx.get_user(name) is not None:
                raise UserError(f"a user named {name} already exists")
            user = tx.add_user(name=name, role=role, password_hash=password_hash)
            tx.append_event(
                "user", actor=actor, reason=f"user {name} added as {role}",
                data={"user": name, "role": role},
            )  # fmt: skip
        return user

    def disable(self, name: str, *, actor: str) -> None:
        """Sign a user out everywhere and refuse their password and tokens from now on."""
        with self.store.tx() as tx:
            user = self._locked(tx, name)
            if user.disabled:
                return
            user.disabled = True
            user.session_epoch += 1
            user.updated_at = tx.now()
            tx.save(user)
            tx.revoke_tokens(purpose=API, user_id=user.id)
            tx.append_event(
                "user", actor=actor, reason=f"user {user.name} disabled", data={"user": user.name}
            )

    def set_password(self, name: str, password: str, *, actor: str) -> None:
        """Give a user a new password; their open sessions end."""
        password_hash = self.hasher.hash(_check_password(password))
        with self.store.tx() as tx:
            user = self._locked(tx, name)
            user.password_hash = password_hash
            user.session_epoch += 1
            user.updated_at = tx.now()
            tx.save(user)
            tx.append_event(
                "user",
                actor=actor,
                reason=f"password of {user.name} changed",
                data={"user": user.name},
            )

    def signed_in(self, name: str, *, client: str) -> None:
        """Record that ``name`` signed in from the address ``client``: every web action is
        an event with its user as the actor (SPEC §10), signing in and out too."""
        with self.store.tx() as tx:
            tx.append_event(
                "sign_in", actor=name, reason=f"{name} signed in from {client}",
                data={"user": name, "client": client},
            )  # fmt: skip

    def sign_out(self, name: str, *, client: str) -> None:
        """End every session of this user (signed cookies carry the epoch they were made
        in), recorded as the user's ``sign_out`` event from the address ``client``."""
        with self.store.tx() as tx:
            user = self._locked(tx, name)
            user.session_epoch += 1
            tx.save(user)
            tx.append_event(
                "sign_out", actor=user.name,
                reason=f"{user.name} signed out from {client}: every session ended",
                data={"user": user.name, "client": client},
            )  # fmt: skip

    def new_api_token(self, name: str, *, actor: str) -> str:
        """A new bearer token for the API; the user's earlier tokens stop working."""
        token = "cf_" + secrets.token_urlsafe(32)
        with self.store.tx() as tx:
            user = self._locked(tx, name)
            if user.disabled:
                raise UserError(f"{user.name} is disabled")
            tx.revoke_tokens(purpose=API, user_id=user.id)
            tx.add_token(purpose=API, token_sha256=token_hash(token), user_id=user.id)
            tx.append_event(
                "user",
                actor=actor,
                reason=f"new API token for {user.name}",
                data={"user": user.name},
            )
        return token

    @staticmethod
    def _locked(tx: Tx, name: str) -> User:
        user = tx.get_user(name.strip())
        if user is None:
            raise UserError(f"no user named {name.strip()} (consentflow user list shows them)")
        return user

    # -- the first admin -------------------------------------------------------------

    def setup_token(self, *, ttl: timedelta = timedelta(hours=24)) -> str | None:
        """When there is no user yet, a one-time secret for the link that creates the first
        admin (valid for ``ttl``); ``None`` once a user exists. Earlier links stop working."""
        if self.store.has_users():
            return None
        token = secrets.token_urlsafe(32)
        with self.store.tx() as tx:
            tx.revoke_tokens(purpose=SETUP)
            tx.add_token(purpose=SETUP, token_sha256=token_hash(token), expires_at=tx.now() + ttl)
        return token

    def setup_link_valid(self, token: str) -> bool:
        """Whether ``token`` is a live first-admin link and no user exists yet."""
        live = self.store.live_token(SETUP, token_hash(token), self.clock())
        return live is not None and not self.store.has_users()

    def create_first_admin(self, token: str, name: str, password: str) -> User:
        """Use the one-time link: create the first admin and spend the link."""
        name = _check_name(name)
        password_hash = self.hasher.hash(_check_password(password))
        with self.store.tx() as tx:
            # Under the token row's lock: two browsers with one link make one admin.
            if not tx.revoke_tokens(purpose=SETUP, token_sha256=token_hash(token)):
                raise UserError("this setup link was used already or has expired")
            if self.store.has_users() or tx.get_user(name) is not None:
                raise UserError("an admin exists already; sign in instead")
            user = tx.add_user(name=name, role=Role.ADMIN.value, password_hash=password_hash)
            tx.append_event(
                "user", actor=name, reason=f"first admin {name} created with the one-time link",
                data={"user": name, "role": Role.ADMIN.value},
            )  # fmt: skip
        return user

    # -- signing in ------------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> User | None:
        """The enabled user with this name and password, else ``None`` (same cost either way)."""
        user = self.store.user(unicodedata.normalize("NFC", name.strip()))
        stored = user.password_hash if user is not None else self._dummy
        try:
            self.hasher.verify(stored, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return None
        if user is None or user.disabled:
            return None
        if self.hasher.check_needs_rehash(stored):
            self._rehash(user.name, password)
        return user

    def _rehash(self, name: str, password: str) -> None:
        # Parameters raised since this hash was made: store a new one (no session ends).
        with self.store.tx() as tx:
            user = tx.get_user(name)
            if user is not None:
                user.password_hash = self.hasher.hash(password)
                tx.save(user)

    def by_api_token(self, token: str) -> User | None:
        """The enabled user whose live API token this is."""
        live = self.store.live_token(API, token_hash(token), self.clock())
        if live is None or live.user_id is None:
            return None
        user = self.store.user_by_id(live.user_id)
        return user if user is not None and not user.disabled else None
