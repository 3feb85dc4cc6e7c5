"""One real dashboard for the web tests: a home with the demo PKI, the engine running on it,
uvicorn serving the application on 127.0.0.1, a user per role, and Debian's Chromium.

Everything is session-scoped (one server, one browser) to keep the suite's added time
small; tests that change state make their own applications.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from tests.conftest import REPO, STRICT
from tests.eoi_files import filled_eoi, invalid_eoi
from workflow.cli import app as cli_app
from workflow.config import Settings, load_settings
from workflow.engine import Engine
from workflow.store import Store
from workflow.users import Role, Users
from workflow.web.apply import Rate, RateLimit
from workflow.web.auth import Throttle
from workflow.web.server import WebServer

PASSWORD = "correct horse battery staple"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = REPO / "build" / "screenshots"

#: Argon2id with small parameters: the tests sign in often; production keeps the defaults.
T = TypeVar("T")

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class ManualClock:
    """A monotonic clock the throttle test moves forward by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        """Move forward."""
        self.offset += seconds


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll until ``predicate`` holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def off_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``function`` in another thread and return its result.

    Playwright's sync API keeps an event loop running in the test's thread, and our
    signing and sealing call ``asyncio.run``, which refuses to run inside one.
    """
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args, **kwargs).result()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Site:
    """The running dashboard and what the tests need to drive it."""

    home: Path
    settings: Settings
    store: Store
    url: str
    clock: ManualClock
    engine: Engine
    users: Users

    def drop(self, name: str, data: bytes) -> Path:
        """Place a file into ``inbox/`` the way a careful script does (hidden name, rename)."""
        hidden = self.home / "inbox" / f".{time.time_ns()}.part"
        hidden.write_bytes(data)
        target = self.home / "inbox" / name
        hidden.rename(target)
        return target

    def application_of(self, org_name: str, timeout: float = 20.0) -> str:
        """The reference of the application of ``org_name``, once it is recorded."""
        found: list[str] = []

        def recorded() -> bool:
            found[:] = [
                app.reference
                for app in self.store.applications()
                if app.org_name == org_name and app.reference and app.state != "received"
            ]
            return bool(found)

        assert wait_for(recorded, timeout), f"no application for {org_name!r}"
        return found[0]

    def client(self, role: str | None) -> httpx.Client:
        """An HTTP client signed in with the user of ``role`` (``None``: signed out)."""
        client = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)
        if role is not None:
            sign_in(client, role, PASSWORD)
        return client

    def cli(self, *args: str) -> tuple[int, str]:
        """``consentflow --home HOME ARGS``: exit code and output."""
        result = off_thread(CliRunner().invoke, cli_app, ["--home", str(self.home), *args])
        return result.exit_code, result.stdout + result.stderr


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client: httpx.Client, name: str, password: str) -> httpx.Response:
    """Sign in through the form, as a browser does; return the answer to the POST."""
    page = client.get("/login")
    token = csrf_of(page.text)
    return client.post(
        "/login", data={"name": name, "password": password, "csrf_token": token, "next": "/office"}
    )


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The dashboard over a home with the demo PKI, with the engine processing its folders."""
    root = tmp_path_factory.mktemp("web")
    home = root / "home"
    home.mkdir()
    result = off_thread(
        CliRunner().invoke, cli_app, ["--home", str(home), "demo-pki", str(home / "pki")]
    )
    assert result.exit_code == 0, result.stdout
    config = result.stdout.split("add these lines to consentflow.toml:", 1)[1]
    port = free_port()
    (home / "consentflow.toml").write_text(
        f'[intake]\nstability_ms = 200\n[web]\nlisten = "127.0.0.1:{port}"\n{config}'
    )
    settings = load_settings(home)
    store = Store(settings.database_url)
    store.ensure_schema()
    users = Users(store, hasher=FAST_HASHER)
    for role in Role:
        users.add(role.value, role.value, PASSWORD, actor="test")
    clock = ManualClock()
    # Built off the test's thread: loading the seal and the signer calls asyncio.run.
    engine = off_thread(Engine, settings)
    stop = threading.Event()
    engine_thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    engine_thread.start()
    assert wait_for((home / "signed" / ".processing").is_dir)
    server = off_thread(
        WebServer,
        settings,
        store=store,
        users=users,
        throttle=Throttle(clock=clock),
        live_interval_s=0.05,
        # Every test client is 127.0.0.1: far more room than one applicant gets
        # (test_apply and test_supporters_web check the real limits on apps of their own).
        limiter=RateLimit({kind: Rate(10_000, 0.001) for kind in ("apply", "read", "supporter")}),
    )
    server.start()
    yield Site(home, settings, store, f"http://127.0.0.1:{port}", clock, engine, users)
    server.stop()
    stop.set()
    engine_thread.join(10)
    engine.close()


@dataclass(frozen=True)
class Seeded:
    """Applications the read-only tests share: one issued (with EOI and consent), one invalid."""

    issued: str
    invalid: str
    eoi_sha256: str
    consent_sha256: str


@pytest.fixture(scope="session")
def seeded(site: Site) -> Seeded:
    """An application with its consent issued, and an invalid one."""
    site.drop("seed-valid.pdf", filled_eoi(org_name="Seed Network Issued"))
    site.drop("seed-invalid.pdf", invalid_eoi(org_name="Seed Network Invalid"))
    issued = site.application_of("Seed Network Issued")
    invalid = site.application_of("Seed Network Invalid")
    off_thread(site.engine.applications.approve, issued, actor="office")
    app = site.store.application(issued)
    assert app is not None and app.id is not None and app.issued_sha256
    return Seeded(issued, invalid, app.eoi_sha256, app.issued_sha256)


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright launches Debian's Chromium (``playwright install`` cannot download)."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is not installed (Debian package chromium; see .ci/run)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the browser tests leave screenshots of the main pages, for people to look at."""
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS
