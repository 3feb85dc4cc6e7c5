"""Serving the dashboard: uvicorn on ``[web] listen``, alone (``consentflow web``) or in a
thread beside the engine (``consentflow run``), and the first admin's one-time link."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from workflow.audit_key import load_key
from workflow.config import Settings
from workflow.store import Store
from workflow.users import Users
from workflow.web.app import create_app
from workflow.web.live import LiveLog

log = logging.getLogger("consentflow.web")


def base_url(settings: Settings) -> str:
    """Where people reach the dashboard: ``[web] public_url``, else the listen address."""
    if settings.web.public_url:
        return settings.web.public_url
    host = settings.web.host
    shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host  # noqa: S104 - only displayed
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{settings.web.port}"


def first_admin_link(settings: Settings, store: Store) -> str | None:
    """On a home without users, a one-time link that creates the first admin (else None)."""
    token = Users(store).setup_token()
    return None if token is None else f"{base_url(settings)}/setup/{token}"


class _Server(uvicorn.Server):
    """uvicorn's server, ending the live log's streams first when told to stop (a signal,
    or :meth:`WebServer.stop`): streams that end cleanly let browsers reconnect at once,
    where streams cut by the shutdown timeout leave them broken responses."""

    def __init__(self, config: uvicorn.Config, live: LiveLog) -> None:
        super().__init__(config)
        self.live = live

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A stop signal: end the streams, then shut down as uvicorn does."""
        self.live.close()
        super().handle_exit(sig, frame)


class WebServer:
    """uvicorn serving the dashboard, started and stopped from another thread."""

    def __init__(self, settings: Settings, *, store: Store | None = None, **options: Any) -> None:
        """``options`` go to :func:`~workflow.web.app.create_app` (injected services)."""
        self.settings = settings
        self.store = store or Store(settings.database_url, audit_key=load_key(settings.home))
        app = create_app(settings, store=self.store, **options)
        self.live: LiveLog = app.state.web.live
        self.server = _Server(
            uvicorn.Config(
                app,
                host=settings.web.host,
                port=settings.web.port,
                log_level="warning",
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=3,
                lifespan="on",
            ),
            self.live,
        )
        self._thread: threading.Thread | None = None

    def announce(self, echo: Callable[[str], None]) -> None:
        """Print the address, and the first admin's link on a home without users."""
        echo(f"dashboard: {base_url(self.settings)}/office")
        link = first_admin_link(self.settings, self.store)
        if link is not None:
            echo("no users yet: open this one-time link to create the first administrator")
            echo(f"(valid 24 hours, once): {link}")

    def start(self) -> None:
        """Serve in a background thread; return when it listens (raise if it cannot)."""
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise OSError(
                    f"the dashboard cannot listen on {self.settings.web.listen} "
                    "(in use, or not an address of this host): change [web] listen"
                )
            self._thread.join(0.05)

    def serve(self, *, with_parent: bool = False) -> bool:
        """Serve in this thread until interrupted (``consentflow web``); ``False`` when the
        address could not be bound.

        ``with_parent`` (``run``'s child): say ``listening`` on standard output once we
        listen, and stop when standard input closes: it is a pipe only ``run`` holds open,
        so however ``run`` ends (even SIGKILL), we end too.
        """
        if with_parent:
            threading.Thread(target=self._follow_parent, name="parent", daemon=True).start()
        try:
            self.server.run()
        except SystemExit:  # uvicorn's answer to an address it cannot bind
            if self.server.started:
                raise
        return bool(self.server.started)

    def _follow_parent(self) -> None:
        while not self.server.started and not self.server.should_exit:
            time.sleep(0.05)
        if self.server.started:
            sys.stdout.write("listening\n")
            sys.stdout.flush()
        sys.stdin.buffer.read()
        self.server.should_exit = True

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self.live.close()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
