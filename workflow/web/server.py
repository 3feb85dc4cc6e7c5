"""Serving the dashboard: uvicorn on ``[web] listen``, alone (``consentflow web``) or in a
thread beside the engine (``consentflow run``), and the first admin's one-time link."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from workflow.config import Settings
from workflow.store import Store
from workflow.users import Users
from workflow.web.app import create_app

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


class WebServer:
    """uvicorn serving the dashboard, started and stopped from another thread."""

    def __init__(self, settings: Settings, *, store: Store | None = None, **options: Any) -> None:
        """``options`` go to :func:`~workflow.web.app.create_app` (injected services)."""
        self.settings = settings
        self.store = store or Store(settings.database_url)
        app = create_app(settings, store=self.store, **options)
        self.live = app.state.web.live
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.web.host,
                port=settings.web.port,
                log_level="warning",
                access_log=False,
                server_header=False,
                timeout_graceful_shutdown=3,
                lifespan="on",
            )
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

    def serve(self) -> None:
        """Serve in this thread until interrupted (``consentflow web``)."""
        self.server.run()

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self.live.close()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
