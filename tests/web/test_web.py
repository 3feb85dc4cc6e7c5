"""The dashboard's parts over HTTP: uploads, the live stream's back-fill, the first admin's
link, the attention view, stats figures, catalogues, and the CLI that serves it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.web.conftest import PASSWORD, Seeded, Site, csrf_of, free_port, sign_in, wait_for
from workflow.config import load_settings
from workflow.states import State
from workflow.store import Store
from workflow.users import Users
from workflow.web import attention, stats
from workflow.web.auth import Throttle
from workflow.web.texts import catalogue, languages


def _files_outside(root: Path, home: Path) -> set[Path]:
    return {path for path in root.rglob("*") if home not in path.parents and path != home}


@pytest.fixture(scope="module")
def commission(site: Site) -> Iterator[httpx.Client]:
    """A client signed in as the Commission."""
    with closing(site.client("commission")) as client:
        yield client


def _upload(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    token = csrf_of(client.get("/office/signed").text)
    return client.post(
        "/office/signed",
        data={"csrf_token": token},
        files={"file": (name, data, "application/pdf")},
    )


def test_upload_of_a_non_pdf_is_answered_and_kept_in_failed(
    site: Site, commission: httpx.Client
) -> None:
    """A text file gets a clear answer (not a PDF) and lands in failed/ with its report."""
    answer = _upload(commission, "notes.pdf", b"these are my notes, not a PDF\n")
    assert answer.status_code == 422
    assert "not_pdf" in answer.text or "not a PDF" in answer.text
    report = json.loads((site.settings.failed / "notes.pdf.error.json").read_text())
    assert report["folder"] == "signed" and report["report"]["accepted"] is False
    [item] = [i for i in site.store.items() if i.original_name == "notes.pdf"]
    assert item.source == "web" and item.status == "failed"
    upload = [e for e in site.store.events() if e.kind == "upload"][-1]
    assert upload.actor == "commission"


def test_upload_over_the_limit_is_refused_before_it_is_read(
    site: Site, commission: httpx.Client
) -> None:
    """50 MB is refused as too large (by its length, and a stream without one at the limit),
    and nothing of it is written."""
    before = {p.name for p in site.settings.failed.iterdir()}
    token = csrf_of(commission.get("/office/signed").text)
    big = b"%PDF-1.7\n" + b"0" * (50 * 1024 * 1024)
    answer = commission.post(
        "/office/signed", data={"csrf_token": token}, files={"file": ("big.pdf", big)}
    )
    assert answer.status_code == 413
    assert "larger than the 20 MB limit" in answer.text

    def chunks() -> Iterator[bytes]:
        boundary = b"--b\r\n"
        yield boundary + b'Content-Disposition: form-data; name="csrf_token"\r\n\r\n'
        yield token.encode() + b"\r\n" + boundary
        yield b'Content-Disposition: form-data; name="file"; filename="big.pdf"\r\n\r\n'
        for _ in range(50):
            yield b"0" * (1024 * 1024)
        yield b"\r\n--b--\r\n"

    answer = commission.post(
        "/office/signed",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 413
    assert {p.name for p in site.settings.failed.iterdir()} == before
    assert not list((site.home / "signed" / ".processing").iterdir())


def test_upload_name_is_never_a_path(site: Site, commission: httpx.Client) -> None:
    """A file named ../../x.pdf is recorded under a safe name inside the home; nothing is
    written outside it, and the name shows as sent."""
    root = site.home.parent
    before = _files_outside(root, site.home)
    answer = _upload(commission, "../../x.pdf", b"%PDF-1.7\nnot really\n%%EOF\n")
    assert answer.status_code == 422
    assert "../../x.pdf" in answer.text.replace("&#34;", '"')
    assert _files_outside(root, site.home) == before
    assert not (root / "x.pdf").exists() and not (root.parent / "x.pdf").exists()
    assert (site.settings.failed / "x.pdf").is_file()
    report = json.loads((site.settings.failed / "x.pdf.error.json").read_text())
    assert report["file"] == "../../x.pdf"


def test_live_stream_back_fills_from_last_event_id(site: Site, seeded: Seeded) -> None:
    """Reconnecting with Last-Event-ID gives exactly the events after it: no gap, no repeat."""
    with closing(site.client("viewer")) as client:
        start = site.store.newest_event_id()
        with site.store.tx() as tx:
            for number in range(3):
                tx.append_event("note", actor="test", reason=f"stream {number}")
        ids = _read_stream(client, {"Last-Event-ID": str(start)}, count=3)
        assert ids == [start + 1, start + 2, start + 3]
        with site.store.tx() as tx:
            tx.append_event("note", actor="test", reason="stream 3")
        assert _read_stream(client, {"Last-Event-ID": str(ids[-1])}, count=1) == [start + 4]
        # ?after= (the page's own reconnects) gives the same; the header wins over it.
        assert _read_stream(client, {}, count=1, after=start + 3) == [start + 4]
        assert _read_stream(client, {"Last-Event-ID": str(start + 2)}, count=2, after=0) == [
            start + 3,
            start + 4,
        ]


def _read_stream(
    client: httpx.Client, headers: dict[str, str], *, count: int, after: int | None = None
) -> list[int]:
    params = {} if after is None else {"after": str(after)}
    ids: list[int] = []
    with client.stream("GET", "/office/log/stream", headers=headers, params=params) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                assert event["id"] == ids[-1] and set(event) >= {"at", "actor", "kind", "hash"}
            if len(ids) == count:
                break
    return ids


def test_first_admin_link_works_once(tmp_path: Path) -> None:
    """On a home without users `consentflow web` prints a one-time link that creates the first
    admin and signs them in; the link then answers 404."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / "consentflow.toml").write_text(f'[web]\nlisten = "127.0.0.1:{port}"\n')
    process = subprocess.Popen(
        [sys.executable, "-m", "workflow", "--home", str(home), "web"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        link = ""
        for line in process.stderr:
            if "/setup/" in line:
                link = line.split()[-1]
                break
        assert link.startswith(f"http://127.0.0.1:{port}/setup/")
        assert wait_for(lambda: _up(port))
        with httpx.Client(follow_redirects=False) as browser:
            form = browser.get(link)
            assert form.status_code == 200 and "first administrator" in form.text
            fields = {"name": "anna", "password": PASSWORD, "password_again": PASSWORD}
            answer = browser.post(link, data={**fields, "csrf_token": csrf_of(form.text)})
            assert answer.status_code == 303 and answer.headers["location"] == "/office"
            assert browser.get(f"http://127.0.0.1:{port}/office/users").status_code == 200
            assert browser.get(link).status_code == 404
        store = Store(load_settings(home).database_url)
        [admin] = store.users()
        assert (admin.name, admin.role) == ("anna", "admin")
        assert store.events()[-1].actor == "anna"
        assert (home / "web-secret.key").stat().st_mode & 0o777 == 0o600
        store.close()
    finally:
        process.terminate()
        process.wait(20)
    assert process.returncode in {0, -15}


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_run_serves_the_dashboard_beside_the_engine(tmp_path: Path) -> None:
    """`run` prints the address and serves it from a child that ends with it; `--no-web`
    serves nothing; an address already taken stops `run` with 78 and says which."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    (home / "consentflow.toml").write_text(f'[web]\nlisten = "127.0.0.1:{port}"\n')
    command = [sys.executable, "-m", "workflow", "--home", str(home), "run"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if " watching " in line:
                break
        assert any(f"dashboard: http://127.0.0.1:{port}/office" in line for line in lines)
        assert _up(port)
        # Another `run` on the same address: the dashboard cannot listen, nothing starts.
        taken = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert taken.returncode == 78, taken.stderr[-2000:]
        assert "dashboard" in taken.stderr
        quiet = subprocess.Popen([*command, "--no-web"], stderr=subprocess.PIPE, text=True)
        assert quiet.stderr is not None
        assert any(" watching " in line for line in quiet.stderr)  # waits for the start
        quiet.terminate()
        assert quiet.wait(30) == 0
    finally:
        process.terminate()
        process.wait(30)
    assert not wait_for(lambda: _up(port), timeout=1)  # the child went with its parent


def test_user_commands(site: Site) -> None:
    """user add/list/passwd/token/disable, with the password from the environment."""
    os.environ["CF_TEST_PASSWORD"] = "another long password"
    try:
        code, out = site.cli("user", "add", "bea", "--role", "commission",
                             "--password-env", "CF_TEST_PASSWORD", "--by", "anna")  # fmt: skip
        assert code == 0, out
        assert site.cli("user", "add", "bea", "--role", "viewer",
                        "--password-env", "CF_TEST_PASSWORD")[0] == 1  # fmt: skip
        code, out = site.cli("user", "add", "cem", "--role", "boss",
                             "--password-env", "CF_TEST_PASSWORD")  # fmt: skip
        assert code == 1 and "unknown role" in out
        code, out = site.cli("user", "list", "--json")
        assert {"name": "bea", "role": "commission", "disabled": False} in [
            {k: row[k] for k in ("name", "role", "disabled")} for row in json.loads(out)
        ]
        os.environ["CF_TEST_PASSWORD"] = "a third long password"
        assert site.cli("user", "passwd", "bea", "--password-env", "CF_TEST_PASSWORD")[0] == 0
    finally:
        del os.environ["CF_TEST_PASSWORD"]
    with closing(httpx.Client(base_url=site.url)) as client:
        assert sign_in(client, "bea", "a third long password").status_code == 303
    assert site.cli("user", "disable", "bea")[0] == 0
    assert site.cli("user", "token", "bea")[0] == 1
    kinds = [(e.actor, e.reason) for e in site.store.events() if e.kind == "user"]
    assert ("anna", "user bea added as commission") in kinds


def test_cli_import_stays_light() -> None:
    """`import workflow.cli` loads none of the dashboard's libraries (issue 16's rule)."""
    heavy = "('fastapi', 'uvicorn', 'jinja2', 'argon2', 'pygal', 'workflow.web')"
    code = f"import sys, workflow.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- pure parts --------------------------------------------------------------------------------


def test_catalogues_have_the_same_keys() -> None:
    """Every shipped language has every English key (a missing one would fall back silently)."""
    assert set(languages()) >= {"en", "fi"}
    english = set(catalogue("en"))
    for lang in languages():
        assert set(catalogue(lang)) == english, lang


def test_throttle_doubles_and_forgets() -> None:
    """Free attempts, then waits of 1, 2, 4 s…; a success clears the key."""
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    keys = Throttle.keys("10.0.0.1", "Anna")
    waits = []
    for _ in range(8):
        waits.append(throttle.wait(keys))
        throttle.failed(keys)
    assert waits[:6] == [0.0] * 6
    assert throttle.wait(keys) == 4.0
    assert throttle.keys("10.0.0.2", "anna")[1] == keys[1]  # the name counts across addresses
    throttle.succeeded(keys)
    assert throttle.wait(keys) == 0.0


def test_steps_and_states_per_day() -> None:
    """Durations per step and states per day are computed from the state events."""
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    history = [
        (t0, "A", None, State.RECEIVED.value),
        (t0 + timedelta(seconds=2), "A", "received", State.AWAITING_REVIEW.value),
        (t0 + timedelta(hours=5), "A", "awaiting_review", State.CONSENT_ISSUED.value),
        (t0 + timedelta(days=2), "A", "consent_issued", State.SIGNED.value),
        (t0 + timedelta(days=1), "B", None, State.RECEIVED.value),
        (t0 + timedelta(days=1, seconds=1), "B", "received", State.INVALID.value),
    ]
    steps = stats.step_durations(history)
    assert steps["received → review"].median == 2
    assert steps["review → issued"].median == 5 * 3600 - 2
    assert steps["issued → signed"].count == 1
    days, counts = stats.states_per_day(history, date(2026, 11, 3), days=3)
    assert days == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]
    assert counts["consent_issued"] == [1, 1, 0]
    assert counts["signed"] == [0, 0, 1]
    assert counts["invalid"] == [0, 1, 1]
    assert stats.unit_for(steps) == ("days", 86400.0)  # issued → signed took 1.8 days


def test_unsigned_consents_need_attention_after_the_reminder_time(
    tmp_path: Path, database_url: str
) -> None:
    """An issued consent unsigned past [reminders] signature_after_days is listed, with the
    office told to step in after the third reminder."""
    settings = load_settings(
        tmp_path, database={"url": database_url},
        reminders={"signature_after_days": 7, "repeat_days": 7},
    )  # fmt: skip
    issued_at = datetime(2026, 1, 1, tzinfo=UTC)
    store = Store(database_url, clock=lambda: issued_at)
    store.ensure_schema()
    with store.tx() as tx:
        app = tx.new_application(
            state=State.AWAITING_REVIEW, eoi_sha256="a" * 64, org_name="Late Network"
        )
        tx.move(app, State.CONSENT_ISSUED, actor="anna")
    reference = app.reference
    assert attention.attention(settings, store, issued_at + timedelta(days=6)) == []
    [entry] = attention.attention(settings, store, issued_at + timedelta(days=8))
    assert (entry.kind, entry.reference) == ("unsigned", reference)
    assert "reminder 1 is due" in entry.reason
    [late] = attention.attention(settings, store, issued_at + timedelta(days=7 + 21 + 1))
    assert "reminder 4 is due" in late.reason and "contact the Commission" in late.action
    with store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE applications SET state = 'signed'")
    kinds = {e.kind for e in attention.attention(settings, store, issued_at)}
    assert kinds == {"state_mismatch"}
    store.close()


def test_search_pages_and_counts(tmp_path: Path, database_url: str) -> None:
    """Search by reference, organisation (any case, any script) or country; newest first."""
    store = Store(database_url)
    store.ensure_schema()
    names = [("Ελληνικό Δίκτυο", "GR"), ("Suomen Kuntaliitto", "FI"), ("100% Öko_Netz", "DE")]
    with store.tx() as tx:
        for name, country in names * 3:
            from workflow.store import org_key

            tx.new_application(
                state=State.AWAITING_REVIEW, eoi_sha256=os.urandom(8).hex(), org_name=name,
                country=country, org_key=org_key(name, country),
            )  # fmt: skip
    rows, total = store.page_applications(search="ΕΛΛΗΝΙΚΌ", limit=2)
    assert total == 3 and len(rows) == 2
    assert rows[0].reference > rows[1].reference  # newest first
    assert store.page_applications(search="fi")[1] == 3
    assert store.page_applications(search="100%")[1] == 3
    assert store.page_applications(search="ö_n")[1] == 0  # _ is a letter here, not a wildcard
    assert store.page_applications(search="öko_")[1] == 3
    first = rows[0].reference
    assert first is not None
    assert store.page_applications(search=first.lower())[0][0].reference == first
    assert store.state_counts() == {"awaiting_review": 9}
    assert store.page_applications(state="signed")[1] == 0
    store.close()


def test_every_plot_is_svg(site: Site, seeded: Seeded) -> None:
    """Each plot of the stats page is an SVG made here, with no script and nothing fetched."""
    with closing(site.client("viewer")) as client:
        for chart in ("states", "steps", "latency"):
            answer = client.get(f"/office/stats/{chart}.svg")
            assert answer.status_code == 200, chart
            assert answer.headers["content-type"].startswith("image/svg+xml")
            assert b"<svg" in answer.content and b"<script" not in answer.content
            for fetch in (b'href="http', b"href='http", b"url(http", b"@import"):
                assert fetch not in answer.content, (chart, fetch)


def test_readme_has_the_dashboard_walkthrough() -> None:
    """The README walks through starting the dashboard, the first admin and signing in."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The dashboard", 1)[1].split("\n## ", 1)[0]
    for words in ("consentflow run", "/setup/", "user add", "signs in", "--no-web", "user token"):
        assert words in section, words


def test_hasher_is_argon2id(tmp_path: Path) -> None:
    """Stored passwords are Argon2id PHC strings, never the password."""
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    store.ensure_schema()
    Users(store).add("anna", "office", PASSWORD, actor="test")
    user = store.user("anna")
    assert user is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    store.close()


def test_sessions_expire_and_are_secure_over_https(tmp_path: Path) -> None:
    """A session older than [web] session_hours is refused; over https the cookie is Secure."""
    from freezegun import freeze_time
    from starlette.requests import Request
    from starlette.responses import Response

    from workflow.store import User
    from workflow.web.auth import SESSION_COOKIE, Sessions

    user = User(id=1, name="anna", role="office", password_hash="x", session_epoch=0,
                created_at=datetime.now(UTC), updated_at=datetime.now(UTC))  # fmt: skip
    sessions = Sessions(b"k" * 48, max_age_s=12 * 3600, secure=True)

    def cookie_at(moment: str) -> str:
        with freeze_time(moment):
            response = Response()
            sessions.start(response, user)
        header = response.headers["set-cookie"]
        assert "Secure" in header and "HttpOnly" in header and "samesite=lax" in header.lower()
        return header.split(";")[0].split("=", 1)[1]

    def visitor(value: str) -> str | None:
        scope = {"type": "http", "headers": [(b"cookie", f"{SESSION_COOKIE}={value}".encode())]}
        found = sessions.read(Request(scope), lambda _id: user)
        return found.user.name if found.user else None

    now = datetime.now(UTC)
    assert visitor(cookie_at((now - timedelta(hours=11)).isoformat())) == "anna"
    assert visitor(cookie_at((now - timedelta(hours=13)).isoformat())) is None
    assert load_settings(tmp_path, web={"public_url": "https://x.example"}).web.secure_cookies


def test_stale_and_retrying_claims_need_attention(tmp_path: Path, database_url: str) -> None:
    """A claim whose lease ran out, and one retried for a passing error, are listed."""
    settings = load_settings(tmp_path, database={"url": database_url})
    store = Store(database_url)
    store.ensure_schema()
    now = datetime.now(UTC)
    with store.tx() as tx:
        tx.claim_item(folder="inbox", original_name="stale.pdf", claimed_name="a__stale.pdf",
                      size=1, owner="gone:1:x", lease_until=now - timedelta(minutes=5))  # fmt: skip
        retried = tx.claim_item(folder="inbox", original_name="disk.pdf",
                                claimed_name="b__disk.pdf", size=1, owner="here:2:y",
                                lease_until=now + timedelta(minutes=5))  # fmt: skip
        item = tx.get_item(retried)
        assert item is not None
        item.attempts, item.last_error = 2, "OSError(28, 'No space left on device')"
        tx.save(item)
    entries = {(e.kind, e.subject) for e in attention.attention(settings, store, now)}
    assert entries == {("stale_claim", "stale.pdf"), ("retrying", "disk.pdf")}
    store.close()


def test_pages_follow_the_language(site: Site) -> None:
    """?lang=fi gives the Finnish pages and remembers the choice; English stays the default."""
    with closing(httpx.Client(base_url=site.url)) as client:
        assert "Sign in" in client.get("/login").text
        finnish = client.get("/login?lang=fi")
        assert '<html lang="fi">' in finnish.text and "Kirjaudu" in finnish.text
        assert "Kirjaudu" in client.get("/login").text  # the cookie remembers
