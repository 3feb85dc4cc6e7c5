"""A real SMTP server for the tests (aiosmtpd), keeping every message it accepts."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.pgserver import free_port


class _Keeper:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(  # noqa: N802
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address in self.server.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.server.lock:
            self.server.received.append((list(envelope.rcpt_tos), message))
        if self.server.on_data is not None:
            self.server.on_data(message)
        reply = self.server.reply
        return reply


class SmtpServer:
    """``start()``/``stop()`` on one port, so a test can take the server away and back."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()
        self.reply = "250 OK queued"
        self.on_data: Callable[[EmailMessage], None] | None = None
        self.refuse: set[str] = set()  # recipients answered 550
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """``[mail] smtp_url`` for this server."""
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpServer:
        """Listen (again) on the port."""
        self._controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[EmailMessage]:
        """What arrived so far."""
        with self.lock:
            return [message for _rcpt, message in self.received]

    def message_ids(self) -> list[str]:
        """The Message-IDs of what arrived, in order."""
        return [str(message["Message-ID"]) for message in self.messages()]
