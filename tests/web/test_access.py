"""Who may reach what: every route × every role and signed out, CSRF, throttling, sessions,
security headers, and the JSON API answering exactly as the CLI does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.eoi_files import filled_eoi
from tests.web.conftest import FAST_HASHER, PASSWORD, Seeded, Site, csrf_of, off_thread, sign_in
from workflow.audit_key import AuditKey
from workflow.store import Store
from workflow.users import Role, Users
from workflow.web.app import SECURITY_HEADERS, create_app

ROLES: list[str | None] = [None, *(role.value for role in Role)]
LOGIN = "login"  # signed out, a page: redirected to /login; under /api/: 401


@pytest.fixture(scope="module")
def clients(site: Site) -> Iterator[dict[str | None, httpx.Client]]:
    """One HTTP client per role, signed in (and one signed out)."""
    made = {role: site.client(role) for role in ROLES}
    yield made
    for client in made.values():
        client.close()


def _csrf(client: httpx.Client) -> str:
    page = client.get("/login" if "cf_session" not in client.cookies else "/office")
    return csrf_of(page.text)


def _expect(
    viewer: int, office: int, commission: int, admin: int, signed_out: int | str = LOGIN
) -> dict[str | None, int | str]:
    return {None: signed_out, "viewer": viewer, "office": office, "commission": commission,
            "admin": admin}  # fmt: skip


# (method, route as declared, concrete path, form fields) -> expected answer per role.
# Changes are asked of applications in a state that refuses them (an invalid one): an
# allowed role gets the service's 409, a role without the permission gets 403, so the
# matrix never changes anything and shows the role check came first.
def matrix(
    seeded: Seeded,
) -> list[tuple[str, str, str, dict[str, str], dict[str | None, int | str]]]:
    issued, invalid = seeded.issued, seeded.invalid
    doc = "/office/applications/{ref}/documents/{sha256}"
    return [
        ("GET", "/healthz", "/healthz", {}, _expect(200, 200, 200, 200, 200)),
        ("GET", "/", "/", {}, _expect(303, 303, 303, 303, 303)),
        ("GET", "/login", "/login", {}, _expect(303, 303, 303, 303, 200)),
        ("GET", "/fonts/{name}", "/fonts/DejaVuSans.ttf", {}, _expect(200, 200, 200, 200, 200)),
        ("GET", "/setup/{token}", "/setup/not-a-token", {}, _expect(404, 404, 404, 404, 404)),
        # The online EOI and the applicant's link (SPEC §10): anyone; a POST needs the
        # page's CSRF token (signed out here: none, 403; signed in: an empty form, 422).
        ("GET", "/apply", "/apply", {}, _expect(200, 200, 200, 200, 200)),
        ("POST", "/apply", "/apply", {}, _expect(422, 422, 422, 422, 403)),
        ("GET", "/apply/status/{token}", "/apply/status/not-a-token", {},
         _expect(404, 404, 404, 404, 404)),
        ("GET", "/apply/status/{token}/eoi.pdf", "/apply/status/not-a-token/eoi.pdf", {},
         _expect(404, 404, 404, 404, 404)),
        ("GET", "/office", "/office", {}, _expect(200, 200, 200, 200)),
        ("GET", "/office/applications/{ref}", f"/office/applications/{issued}", {},
         _expect(200, 200, 200, 200)),
        ("GET", "/office/applications/{ref}", "/office/applications/SUP-1999-99999", {},
         _expect(404, 404, 404, 404)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/approve",
         {}, _expect(403, 409, 403, 409)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/reject",
         {"reason": "not eligible"}, _expect(403, 409, 403, 409)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/reject",
         {}, _expect(403, 400, 403, 400)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/suspend",
         {"reason": "x"}, _expect(403, 403, 409, 409)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/suspend",
         {}, _expect(403, 403, 400, 400)),
        ("POST", "/office/applications/{ref}/{action}",
         f"/office/applications/{invalid}/reinstate", {}, _expect(403, 403, 409, 409)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/profile",
         {}, _expect(403, 409, 403, 409)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/publish",
         {}, _expect(403, 409, 403, 409)),
        ("POST", "/office/applications/{ref}/{action}",
         f"/office/applications/{invalid}/send_back", {"reason": "x"},
         _expect(403, 409, 403, 409)),
        ("GET", "/office/feedback", "/office/feedback", {}, _expect(200, 200, 200, 200)),
        ("GET", "/supporters", "/supporters", {}, _expect(200, 200, 200, 200, 200)),
        ("GET", "/supporters.json", "/supporters.json", {}, _expect(200, 200, 200, 200, 200)),
        ("GET", "/supporters.csv", "/supporters.csv?lang=fi", {},
         _expect(200, 200, 200, 200, 200)),
        ("GET", "/supporter/{token}/profile", "/supporter/not-a-token/profile", {},
         _expect(404, 404, 404, 404, 404)),
        ("GET", "/supporter/{token}/feedback", "/supporter/not-a-token/feedback", {},
         _expect(404, 404, 404, 404, 404)),
        ("POST", "/supporter/{token}/profile", "/supporter/not-a-token/profile",
         {"website": "https://x.example"}, _expect(404, 404, 404, 404, 403)),
        ("POST", "/supporter/{token}/feedback", "/supporter/not-a-token/feedback", {},
         _expect(404, 404, 404, 404, 403)),
        ("POST", "/office/applications/{ref}/{action}", f"/office/applications/{invalid}/nosuch",
         {}, _expect(404, 404, 404, 404)),
        ("GET", doc, f"/office/applications/{issued}/documents/{seeded.eoi_sha256}", {},
         _expect(200, 200, 404, 200)),
        ("GET", doc, f"/office/applications/{issued}/documents/{seeded.consent_sha256}", {},
         _expect(200, 200, 200, 200)),
        ("GET", doc, f"/office/applications/{invalid}/documents/{seeded.consent_sha256}", {},
         _expect(404, 404, 404, 404)),
        ("GET", "/office/log", "/office/log", {}, _expect(200, 200, 200, 200)),
        ("GET", "/office/log/stream", "/office/log/stream", {}, _expect(200, 200, 200, 200)),
        ("GET", "/office/failed", "/office/failed", {}, _expect(200, 200, 200, 200)),
        ("POST", "/office/failed/{name}/retry", "/office/failed/no-such.pdf/retry", {},
         _expect(403, 404, 403, 404)),
        ("GET", "/office/attention", "/office/attention", {}, _expect(200, 200, 200, 200)),
        ("GET", "/office/signed", "/office/signed", {}, _expect(403, 200, 200, 200)),
        ("POST", "/office/signed", "/office/signed", {}, _expect(403, 400, 400, 400)),
        ("GET", "/office/stats", "/office/stats", {}, _expect(200, 200, 200, 200)),
        ("GET", "/office/stats/{chart}.svg", "/office/stats/states.svg", {},
         _expect(200, 200, 200, 200)),
        ("GET", "/office/users", "/office/users", {}, _expect(403, 403, 403, 200)),
        ("POST", "/office/users", "/office/users", {"name": "x y", "role": "viewer"},
         _expect(403, 403, 403, 400)),
        ("POST", "/office/users/{name}/disable", "/office/users/nobody/disable", {},
         _expect(403, 403, 403, 400)),
        ("GET", "/api/applications", "/api/applications", {}, _expect(200, 200, 200, 200, 401)),
        ("GET", "/api/applications/{ref}", f"/api/applications/{issued}", {},
         _expect(200, 200, 200, 200, 401)),
        ("GET", "/api/applications/{ref}", "/api/applications/SUP-1999-99999", {},
         _expect(404, 404, 404, 404, 401)),
        ("GET", "/api/log", "/api/log", {}, _expect(200, 200, 200, 200, 401)),
    ]  # fmt: skip


def _ask(client: httpx.Client, method: str, path: str, fields: dict[str, str]) -> httpx.Response:
    if method == "GET" and path.endswith("/stream"):
        with client.stream("GET", path) as response:
            return response  # headers are enough; the stream is endless
    if method == "GET":
        return client.get(path)
    if path == "/office/signed":
        token = _csrf(client) if "cf_session" in client.cookies else ""
        return client.post(path, data={"csrf_token": token}, files={"other": ("a", b"a")})
    data = dict(fields)
    if "cf_session" in client.cookies:
        data["csrf_token"] = _csrf(client)
    return client.post(path, data=data)


def test_every_route_is_in_the_matrix(site: Site, seeded: Seeded) -> None:
    """A new route cannot escape the authorization matrix: each must be listed below."""
    from workflow.web.app import create_app

    app = create_app(site.settings, store=site.store, services=site.engine.applications)
    declared = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    listed = {(method, route) for method, route, _, _, _ in matrix(seeded)}
    listed |= {("POST", "/login"), ("POST", "/logout"), ("POST", "/setup/{token}")}  # below
    assert declared - listed == set()


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role or "signed-out")
def test_authorization_matrix(
    site: Site, seeded: Seeded, clients: dict[str | None, httpx.Client], role: str | None
) -> None:
    """Each route answers each role as SPEC §10 says (403 when the role may not)."""
    client = clients[role]
    wrong = []
    for method, _, path, fields, expected in matrix(seeded):
        answer = _ask(client, method, path, fields)
        want = expected[role]
        if want == LOGIN:
            ok = answer.status_code == 303 and answer.headers["location"].startswith("/login")
        else:
            ok = answer.status_code == want
        if not ok:
            wrong.append((method, path, answer.status_code, want))
    assert wrong == []
    app = site.store.application(seeded.invalid)
    assert app is not None and app.state == "invalid"  # nothing changed


def test_forbidden_document_answers_as_a_missing_one(
    seeded: Seeded, clients: dict[str | None, httpx.Client]
) -> None:
    """The Commission asking for an applicant's EOI gets the very answer of a missing file."""
    client = clients["commission"]
    forbidden = client.get(f"/office/applications/{seeded.issued}/documents/{seeded.eoi_sha256}")
    missing = client.get(f"/office/applications/{seeded.issued}/documents/{'0' * 64}")
    assert forbidden.status_code == missing.status_code == 404
    assert forbidden.text == missing.text
    drop = {"date", "content-length"}
    assert {k: v for k, v in forbidden.headers.items() if k not in drop} == {
        k: v for k, v in missing.headers.items() if k not in drop
    }


def test_downloads_are_recorded_with_the_user(
    site: Site, seeded: Seeded, clients: dict[str | None, httpx.Client]
) -> None:
    """Who downloaded an applicant's document is in the event log, by name."""
    answer = clients["viewer"].get(
        f"/office/applications/{seeded.issued}/documents/{seeded.eoi_sha256}"
    )
    assert answer.status_code == 200
    assert answer.content.startswith(b"%PDF-")
    assert "attachment" in answer.headers["content-disposition"]
    viewed = [e for e in site.store.events(reference=seeded.issued) if e.kind == "document_viewed"]
    assert viewed and viewed[-1].actor == "viewer"
    assert viewed[-1].data["sha256"] == seeded.eoi_sha256


def test_security_headers_on_every_kind_of_answer(
    site: Site, seeded: Seeded, clients: dict[str | None, httpx.Client]
) -> None:
    """CSP 'self' without unsafe-inline, nosniff and frame-ancestors 'none' on pages, errors,
    JSON, files and redirects alike."""
    office = clients["office"]
    answers = [
        office.get("/office"),
        office.get("/office/nowhere"),
        office.get("/api/applications"),
        office.get("/static/app.css"),
        office.get(f"/office/applications/{seeded.issued}/documents/{seeded.consent_sha256}"),
        clients[None].get("/office"),
    ]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert all(name in answers[0].headers for name in SECURITY_HEADERS)


def test_session_cookie_is_httponly_lax_and_signed(site: Site) -> None:
    """The session cookie cannot be read by scripts, is SameSite=Lax, and a forged one is
    ignored."""
    with closing(site.client(None)) as client:
        answer = sign_in(client, "office", PASSWORD)
        cookie = answer.headers["set-cookie"]
        assert "cf_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # public_url is not https here
        assert client.get("/office").status_code == 200
        forged = client.cookies["cf_session"][:-4] + "AAAA"
        client.cookies.set("cf_session", forged)
        assert client.get("/office").status_code == 303


def test_csrf_is_required_on_every_post(site: Site, seeded: Seeded) -> None:
    """A POST without the token, or with another session's token, is refused and changes
    nothing."""
    site.drop("csrf.pdf", filled_eoi(org_name="CSRF Network"))
    reference = site.application_of("CSRF Network")
    with closing(site.client("office")) as office, closing(site.client("admin")) as other:
        theirs = _csrf(other)
        for data in ({}, {"csrf_token": ""}, {"csrf_token": theirs}, {"csrf_token": "x" * 64}):
            answer = office.post(f"/office/applications/{reference}/approve", data=data)
            assert answer.status_code == 403, data
            assert "csrf" in answer.text
        app = site.store.application(reference)
        assert app is not None and app.state == "awaiting_review"
        # The sign-in form too: no token, no session, whatever the password.
        with closing(site.client(None)) as stranger:
            answer = stranger.post("/login", data={"name": "office", "password": PASSWORD})
            assert answer.status_code == 403 and "cf_session" not in stranger.cookies
        # And with its own token the office's POST goes through.
        answer = office.post(
            f"/office/applications/{reference}/approve", data={"csrf_token": _csrf(office)}
        )
        assert answer.status_code == 303
        app = site.store.application(reference)
        assert app is not None and app.state == "consent_issued"
        events = site.store.events(reference=reference)
        assert events[-1].actor == "office" and events[-1].to_state == "consent_issued"


def test_failed_logins_are_throttled_and_the_right_password_still_works(site: Site) -> None:
    """20 wrong passwords in a row are slowed down; after the wait the right one signs in."""
    site.users.add("throttled", "viewer", PASSWORD, actor="test")
    answers = []
    with closing(site.client(None)) as client:
        for _ in range(20):
            answers.append(sign_in(client, "throttled", "wrong password!").status_code)
        assert answers[:5] == [401] * 5
        assert answers.count(429) >= 10, answers  # refused unchecked while the key is closed
        refused = sign_in(client, "throttled", PASSWORD)
        assert refused.status_code == 429  # the right password waits its turn too
        assert "Try again in" in refused.text
        site.clock.advance(301)
        assert sign_in(client, "throttled", PASSWORD).status_code == 303
        assert client.get("/office").status_code == 200


def test_sign_out_ends_the_session(site: Site) -> None:
    """After sign-out the old cookie no longer opens the dashboard."""
    with closing(site.client("viewer")) as client:
        old = client.cookies["cf_session"]
        assert client.post("/logout", data={"csrf_token": _csrf(client)}).status_code == 303
        client.cookies.set("cf_session", old)
        assert client.get("/office").status_code == 303


def test_signing_in_and_out_are_events_of_the_user(site: Site) -> None:
    """Every web action is an event with the user's name as the actor (SPEC §10): signing in
    and out too, with the address; a wrong password records nothing under that name."""
    site.users.add("audited", "viewer", PASSWORD, actor="test")
    before = site.store.newest_event_id()
    with closing(site.client(None)) as client:
        assert sign_in(client, "audited", "wrong password!").status_code == 401
        assert sign_in(client, "audited", PASSWORD).status_code == 303
        assert client.post("/logout", data={"csrf_token": _csrf(client)}).status_code == 303
    mine = [
        event
        for event in site.store.events(after_id=before)
        if event.kind in {"sign_in", "sign_out"} and event.data.get("user") == "audited"
    ]
    assert [(event.kind, event.actor) for event in mine] == [
        ("sign_in", "audited"),
        ("sign_out", "audited"),
    ]
    assert all(event.data["client"] == "127.0.0.1" for event in mine)
    assert mine[0].reason == "audited signed in from 127.0.0.1"
    code, output = site.cli("log", "--json")
    assert code == 0 and '"kind": "sign_out"' in output


def test_a_sign_in_that_cannot_be_recorded_lets_no_one_in(site: Site) -> None:
    """A dashboard whose audit key does not open the event chain cannot record a sign-in:
    it refuses it with a sentence that says so (503), not a 500, and starts no session."""
    other = Store(site.settings.database_url, audit_key=AuditKey(b"another key " * 4, "test"))
    app = create_app(
        site.settings,
        store=other,
        services=site.engine.applications,
        users=Users(other, hasher=FAST_HASHER),
    )
    try:
        with TestClient(app, follow_redirects=False) as client:
            answer = sign_in(client, "viewer", PASSWORD)
            assert answer.status_code == 503, answer.text
            assert "cannot record sign-ins" in answer.text
            assert "cf_session" not in client.cookies
    finally:
        other.close()


def test_changes_that_cannot_be_recorded_answer_with_a_sentence(site: Site, seeded: Seeded) -> None:
    """With an audit key that does not open the chain, a change (here a download, which
    is recorded) is refused with a 503 that says nothing was changed, and a sign-out ends
    this browser's session and says that the others go on: both were 500s on ca057fc."""
    with httpx.Client(base_url=site.url, follow_redirects=False) as browser:
        assert sign_in(browser, "admin", PASSWORD).status_code == 303
        cookies = dict(browser.cookies)
        other = Store(site.settings.database_url, audit_key=AuditKey(b"another key " * 4, "t"))
        app = create_app(site.settings, store=other, users=Users(other, hasher=FAST_HASHER))
        before = len(site.store.events())
        try:
            with TestClient(app, follow_redirects=False, cookies=cookies) as client:
                path = f"/office/applications/{seeded.issued}/documents/{seeded.consent_sha256}"
                answer = client.get(path)
                assert answer.status_code == 503, answer.text
                assert "cannot record changes now" in answer.text
                assert "audit_key" in answer.text
                page = client.get(f"/office/applications/{seeded.issued}")
                answer = client.post("/logout", data={"csrf_token": csrf_of(page.text)})
                assert answer.status_code == 503, answer.text
                assert "signed out in this browser" in answer.text
                assert "Sign out" not in answer.text  # the page shows no one signed in
                gone = [c for c in answer.headers.get_list("set-cookie") if "cf_session=" in c]
                assert gone and "Max-Age=0" in gone[0]  # this browser's session cookie ends
        finally:
            other.close()
        assert len(site.store.events()) == before  # nothing was recorded, nothing changed
        # As the page said: the session in the other browser has not ended.
        assert browser.get("/office").status_code == 200


def test_api_answers_exactly_as_the_cli(site: Site, seeded: Seeded) -> None:
    """/api/applications, /api/applications/{ref} and /api/log are status/show/log --json."""
    code, token = site.cli("user", "token", "viewer")
    assert code == 0
    headers = {"Authorization": f"Bearer {token.strip()}"}
    with httpx.Client(base_url=site.url, headers=headers) as api:
        # Compare a snapshot: the engine is idle, and the log is read with the same limit.
        pairs = [
            ("/api/applications", ["status", "--json"]),
            (f"/api/applications/{seeded.issued.lower()}", ["show", seeded.issued, "--json"]),
            ("/api/log?limit=20", ["log", "-n", "20", "--json"]),
        ]
        for path, command in pairs:
            answer = api.get(path)
            assert answer.status_code == 200, path
            code, out = site.cli(*command)
            assert code == 0
            assert answer.json() == json.loads(out), path
    with httpx.Client(base_url=site.url, headers={"Authorization": "Bearer cf_nope"}) as bad:
        answer = bad.get("/api/applications")
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"


def test_disabled_user_loses_sessions_and_token(site: Site) -> None:
    """Disabling a user ends their session and their API token at once."""
    site.users.add("leaver", "office", PASSWORD, actor="test")
    code, token = site.cli("user", "token", "leaver")
    assert code == 0
    with closing(site.client("leaver")) as client:
        assert client.get("/office").status_code == 200
        assert site.cli("user", "disable", "leaver")[0] == 0
        assert client.get("/office").status_code == 303
    answer = httpx.get(f"{site.url}/api/log", headers={"Authorization": f"Bearer {token.strip()}"})
    assert answer.status_code == 401


def test_reissue_goes_through_the_service(site: Site) -> None:
    """The office reissues a consent from the application page, as itself (SPEC §7's
    `Applications.reissue`)."""
    site.drop("reissue.pdf", filled_eoi(org_name="Reissue Network"))
    reference = site.application_of("Reissue Network")
    off_thread(site.engine.applications.approve, reference, actor="office")
    with closing(site.client("office")) as office:
        page = office.get(f"/office/applications/{reference}")
        answer = office.post(
            f"/office/applications/{reference}/reissue",
            data={"csrf_token": csrf_of(page.text), "reason": "the seal changed"},
        )
        assert "/reissue" in page.text
        assert answer.status_code == 303, answer.text
    last = site.store.events(reference=reference)[-1]
    assert (last.kind, last.actor, last.reason) == ("reissued", "office", "the seal changed")


@pytest.mark.parametrize(
    "target", ["//evil.example/office", "https://evil.example/", "/\\evil.example", "office"]
)
def test_sign_in_never_redirects_off_site(site: Site, target: str) -> None:
    """`next` is followed only to a path of this site (no open redirect)."""
    with closing(httpx.Client(base_url=site.url)) as client:
        token = csrf_of(client.get("/login").text)
        answer = client.post("/login", data={"name": "viewer", "password": PASSWORD,
                                             "csrf_token": token, "next": target})  # fmt: skip
        assert answer.status_code == 303 and answer.headers["location"] == "/office"
