"""The secret that keys the event chain (SPEC §9, "Evidence that holds").

Every event's hash is an HMAC-SHA-256 under this key, and so is the chain head's
count: someone who can write the database but not read this key cannot add, edit,
remove or truncate events unnoticed. The key lives outside the database, in one of:

- the environment variable :data:`KEY_ENV` (``CONSENTFLOW_AUDIT_KEY``, at least 32
  characters; its UTF-8 bytes are the key), which wins when set;
- the file :data:`KEY_FILE` (``audit.key``) in the home folder, 0600, 64 hex digits,
  created at first start when neither exists.

Losing the key does not lose history, but history can no longer be proven intact:
back the file up apart from the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

KEY_ENV = "CONSENTFLOW_AUDIT_KEY"
KEY_FILE = "audit.key"
_MIN_ENV_CHARS = 32


class AuditKeyError(Exception):
    """The audit key cannot be read, or is not the one the chain is keyed with."""


@dataclass(frozen=True)
class AuditKey:
    """An HMAC-SHA-256 key and where it came from (never printed)."""

    secret: bytes = field(repr=False)
    origin: str

    @property
    def key_id(self) -> str:
        """A public name of the key: tells "another key" apart from "edited history"."""
        return hmac.new(self.secret, b"consentflow audit key id", hashlib.sha256).hexdigest()[:16]

    def mac(self, message: bytes) -> str:
        """HMAC-SHA-256 of ``message``, hex."""
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()


def key_from_environment(environ: Mapping[str, str] | None = None) -> AuditKey | None:
    """The key in :data:`KEY_ENV`, or ``None`` when it is not set."""
    value = (os.environ if environ is None else environ).get(KEY_ENV)
    if value is None:
        return None
    if len(value) < _MIN_ENV_CHARS:
        raise AuditKeyError(
            f"{KEY_ENV} is too short ({len(value)} characters): use at least "
            f"{_MIN_ENV_CHARS}, e.g. the output of `openssl rand -hex 32`"
        )
    return AuditKey(value.encode(), KEY_ENV)


def load_key(
    home: Path, *, create: bool = True, environ: Mapping[str, str] | None = None
) -> AuditKey:
    """The audit key: :data:`KEY_ENV` if set, else ``home/audit.key`` (made when missing).

    Raises :class:`AuditKeyError` with a sentence for a key file that is not a private
    regular file of 64 hex digits, or a missing one when ``create`` is false.
    """
    from_env = key_from_environment(environ)
    if from_env is not None:
        return from_env
    path = home / KEY_FILE
    if not os.path.lexists(path):
        if not create:
            raise AuditKeyError(
                f"the audit key {path} is missing: restore it from the backup, or set {KEY_ENV}"
            )
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    """Write a new random key to ``path``, 0600, atomically; a key already there wins."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise AuditKeyError(
            f"the audit key {path} cannot be created ({exc.strerror}): the home folder must "
            f"exist and be writable at first start, or set {KEY_ENV}"
        ) from None
    try:
        with open(fd, "w", closefd=True) as handle:
            os.fchmod(fd, 0o600)
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(fd)
        # link() fails if another process made the key first: theirs stays.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _read(path: Path) -> AuditKey:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise AuditKeyError(
            f"the audit key {path} cannot be read ({exc.strerror}): it must be a regular "
            f"file readable by this user, or set {KEY_ENV}"
        ) from None
    with open(fd, "rb", closefd=True) as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(f"the audit key {path} is not a regular file")
        if info.st_mode & 0o077:
            raise AuditKeyError(
                f"the audit key {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}):"
                f" whoever reads it can rewrite history; run `chmod 600 {path}`"
            )
        text = handle.read(200).decode("ascii", "replace").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise AuditKeyError(f"the audit key {path} is not 64 hexadecimal digits")
    return AuditKey(secret, str(path))
