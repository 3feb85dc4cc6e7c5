"""Shared fixtures: where the shared corpus lives and which real tools the tests may run."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.skips import pytest_terminal_summary  # noqa: F401 - tests/run's last line

if TYPE_CHECKING:
    from tests.pki import TestPki

REPO = Path(__file__).resolve().parent.parent


def _find_shared() -> Path:
    # The shared corpus sits beside the checkout (../shared); a clone elsewhere (CI's
    # fresh clone in a temporary folder) finds it through CONSENTFLOW_SHARED_DIR or
    # at /work/shared, where these machines keep it.
    candidates = [
        os.environ.get("CONSENTFLOW_SHARED_DIR", ""),
        str(REPO.parent / "shared"),
        "/work/shared",
    ]
    for candidate in filter(None, candidates):
        if Path(candidate, "corpus").is_dir():
            return Path(candidate)
    return REPO.parent / "shared"


SHARED = _find_shared()

#: In CI every tool and the shared corpus must be there: a missing one fails the run
#: instead of silently skipping the tests that need it.
STRICT = os.environ.get("CONSENTFLOW_REQUIRE_TOOLS") == "1"


def need_tool(name: str) -> str:
    """Return the path of command-line tool ``name``; skip (fail under CI) when it is absent."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (Debian: see .ci/run for the package list)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


def _shared_dir(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.is_dir():
        message = f"{path} is absent (the shared corpus lives beside the checkout)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def corpus_forms() -> Path:
    """The folder of real-world form PDFs in ../shared/corpus/forms."""
    return _shared_dir("corpus", "forms")


@pytest.fixture
def corpus_signatures() -> Path:
    """The folder of EU DSS signature-attack PDFs in ../shared/corpus/signatures."""
    return _shared_dir("corpus", "signatures")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestPki]:
    """The certomancer test PKI of tests/pki.py, its OCSP, CRL and TSA served on 127.0.0.1
    for the module that asks (a module may define its own ``pki``)."""
    from tests.pki import build_pki  # certomancer only for the modules that sign

    with build_pki(tmp_path_factory.mktemp("pki")) as built:
        yield built


#: PostgreSQL for the store tests, from .ci/run (or the developer's shell).
POSTGRES_URL = os.environ.get("CONSENTFLOW_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this test session's own on the test server, dropped at the end.

    Each session makes its own, so two test runs (or a benchmark) sharing the server
    never empty each other's tables.
    """
    if not POSTGRES_URL:
        message = "CONSENTFLOW_TEST_DATABASE_URL is not set (.ci/run sets it)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)

    name = f"consentflow_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_postgres(url: str) -> None:

    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)],
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or this session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'consentflow.db'}"
    url: str = request.getfixturevalue("postgres_database")
    _reset_postgres(url)
    return url


#: The audit key every test's stores, engines and CLI runs share unless a test removes it
#: (the key file in the home folder is what `tests/test_audit.py` exercises).
TEST_AUDIT_KEY = "consentflow-tests-audit-key-0123456789abcdef"


@pytest.fixture(scope="session", autouse=True)
def _audit_key() -> Iterator[None]:
    """Key the event chain in every test: a `Store(url)` takes CONSENTFLOW_AUDIT_KEY, and
    so do the CLI processes and engines the tests start. Session-wide and autouse, so it
    is set before the session fixtures (the web tests' site) build their stores."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONSENTFLOW_AUDIT_KEY", TEST_AUDIT_KEY)
        yield
