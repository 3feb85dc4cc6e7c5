"""Intake by e-mail (SPEC §11): every PDF attached to a new message in the mailbox enters the
same intake as a dropped file, with the message as its source.

Taken exactly once, keyed by (account, folder, UIDVALIDITY, UID) in ``mail_messages``.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from imap_tools import BaseMailBox, MailBox, MailBoxUnencrypted

from workflow.config import MailSettings, Settings

#: Servers to which ``imap://`` (no TLS) is allowed: this host only.
LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")


class MailboxError(Exception):
    """``[mail] imap_url`` cannot work as configured; ``str()`` says why."""


@dataclass(frozen=True)
class MailboxTarget:
    """Where ``[mail] imap_url`` points: server, user and folder."""

    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str

    @property
    def account(self) -> str:
        """The account's name in the ledger: ``user@host:port``."""
        return f"{self.user}@{self.host}:{self.port}"

    @classmethod
    def parse(cls, mail: MailSettings, environ: dict[str, str] | None = None) -> MailboxTarget:
        """Read ``imap_url`` and the password from ``imap_password_env``."""
        parts = urlsplit(mail.imap_url)
        secure = parts.scheme.lower() == "imaps"
        if not parts.hostname:
            raise MailboxError("[mail] imap_url names no host")
        if not secure and parts.hostname not in LOCAL_HOSTS:
            raise MailboxError(
                "[mail] imap_url: imap:// (no TLS) only to a server on this host; use imaps://"
            )
        try:
            port = parts.port or (993 if secure else 143)
        except ValueError as exc:
            raise MailboxError(f"[mail] imap_url has a bad port: {exc}") from None
        user = unquote(parts.username or "")
        if not user:
            raise MailboxError("[mail] imap_url names no user (imaps://user@host/INBOX)")
        env = os.environ if environ is None else environ
        password = env.get(mail.imap_password_env)
        if password is None:
            raise MailboxError(f"{mail.imap_password_env} holds no IMAP password")
        folder = unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(secure, parts.hostname, port, user, password, folder)

    def connect(self, timeout: float) -> BaseMailBox:
        """A logged-in mailbox with the folder selected."""
        box: BaseMailBox
        if self.secure:
            box = MailBox(
                self.host, self.port, timeout=timeout, ssl_context=ssl.create_default_context()
            )
        else:
            box = MailBoxUnencrypted(self.host, self.port, timeout=timeout)
        return box.login(self.user, self.password, initial_folder=self.folder)


def check_mailbox(settings: Settings) -> str:
    """Log in and read the folder's status (``consentflow mail test``); one line."""
    target = MailboxTarget.parse(settings.mail)
    box = target.connect(settings.mail.timeout_s)
    try:
        status = box.folder.status(target.folder, ["MESSAGES", "UIDVALIDITY"])
        idle = "IDLE" in box.client.capabilities
    finally:
        box.logout()
    return (
        f"{target.account} folder {target.folder}: {status.get('MESSAGES', 0)} message(s), "
        f"{'IDLE' if idle else 'no IDLE: polled every [mail] poll_interval_s'}"
    )
