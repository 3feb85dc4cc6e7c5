"""The supporters' pages over HTTP (SPEC §10, §12): the public list and its formats, the
supporters' links, and the office's lifecycle actions through the dashboard."""

from __future__ import annotations

import csv
import io
from contextlib import closing
from datetime import UTC, datetime, timedelta

import httpx
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from tests.test_supporters import PROFILE_FORM, make_signed
from tests.web.conftest import Site, csrf_of
from workflow.lifecycle.service import Lifecycle
from workflow.store import Notification
from workflow.web.app import create_app
from workflow.web.apply import Rate, RateLimit
from workflow.web.supporters import PUBLIC_FIELDS, safe_cell

CREATED = "profile created; the supporter was sent a link to complete it"
HOSTILE = '<script>alert("x")</script> & "Ωmega"'


def _life(site: Site, clock: datetime | None = None) -> Lifecycle:
    return Lifecycle(site.store, site.settings, clock=(lambda: clock) if clock else None)


def _published(site: Site, name: str, country: str = "FI", **form: str) -> str:
    private = {
        "contact_name": "Secret Person",
        "contact_email": "secret@example.org",
        "contact_phone": "+358401112223",
    }
    ref = make_signed(site.store, name, country, **private)
    life = _life(site)
    link = life.create_profile(ref, actor="office")
    life.submit_profile(link.token, {**PROFILE_FORM, "member_contact": "members@x.example", **form})
    life.publish(ref, actor="office")
    return ref


def mailed_link(site: Site, reference: str, kind: str) -> str:
    """The link in the newest queued message of ``kind`` to the supporter (what its mail says)."""
    app = site.store.application(reference)
    assert app is not None
    with Session(site.store.engine) as session:
        row = session.exec(
            select(Notification)
            .where(Notification.application_id == app.id, Notification.kind == kind)
            .order_by(col(Notification.id).desc())
        ).first()
    assert row is not None, kind
    return str(row.context["link"])


def test_public_list_escapes_and_carries_only_published_fields(site: Site) -> None:
    """HTML escapes every field; JSON has exactly the published keys; CSV cells that a
    spreadsheet would run are made text; nothing private appears in any format."""
    _published(site, HOSTILE, "EE", services_1='=HYPERLINK("http://evil")  services text')
    _published(site, "@Plus Network", "EE", services_1="-2+3 services offered to members")
    private = ("Secret Person", "secret@example.org", "+358401112223", "members@x.example")
    with closing(httpx.Client(base_url=site.url)) as client:
        page = client.get("/supporters", params={"country": "EE"})
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;Ωmega&#34;" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")

        listed = client.get("/supporters.json", params={"country": "EE"}).json()
        assert sorted(row["name"] for row in listed) == sorted([HOSTILE, "@Plus Network"])
        assert all(list(row) == list(PUBLIC_FIELDS) for row in listed)

        answer = client.get("/supporters.csv", params={"country": "ee", "lang": "fi"})
        assert answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
        assert rows[0] == ["Nimi", "Lyhenne", "Maa", "Verkkosivusto", "Kielet", "Palvelut"]
        cells = [cell for row in rows[1:] for cell in row]
        assert "'@Plus Network" in cells
        assert not [cell for cell in cells if cell[:1] in {"=", "+", "-", "@"}]
        services = [row[5] for row in rows[1:]]
        assert any(text.startswith("en: =HYPERLINK") for text in services)  # inside, harmless

        for text in (page.text, answer.text, str(listed)):
            assert not [secret for secret in private if secret in text]

        found = client.get("/supporters.json", params={"q": "plus NETWORK"}).json()
        assert [row["name"] for row in found] == ["@Plus Network"]
        assert client.get("/supporters.json", params={"country": "MT"}).json() == []


def test_safe_cell() -> None:
    """OWASP's advice for CSV injection: a leading apostrophe makes the cell text."""
    assert [safe_cell(v) for v in ("=1+1", "+1", "-1", "@A", "\tx", "ok", "")] == [
        "'=1+1", "'+1", "'-1", "'@A", "'\tx", "ok", ""
    ]  # fmt: skip


def test_supporter_link_get_changes_nothing_and_post_spends_it(site: Site) -> None:
    """Mail scanners open links: GETs change nothing; the form's POST needs its CSRF token
    and works once; a feedback link is not a profile link; an expired link is refused."""
    ref = make_signed(site.store, "Link Network")
    link = _life(site).create_profile(ref, actor="office")
    path = f"/supporter/{link.token}/profile"
    events = len(site.store.events(reference=ref))
    with closing(httpx.Client(base_url=site.url)) as client:
        for _ in range(3):
            page = client.get(path)
            assert page.status_code == 200 and "Link Network" in page.text
        assert len(site.store.events(reference=ref)) == events
        assert client.get(f"/supporter/{link.token}/feedback").status_code == 404
        form = {**PROFILE_FORM, "csrf_token": csrf_of(page.text)}
        assert client.post(path, data={**form, "csrf_token": "x" * 64}).status_code == 403
        bad = client.post(path, data={**form, "website": "ftp://nope"})
        assert bad.status_code == 400 and "website" in bad.text
        done = client.post(path, data=form)
        assert done.status_code == 200 and "profile was sent" in done.text
        assert client.post(path, data=form).status_code == 404  # reused
        assert client.get(path).status_code == 404
    profile = _life(site).profile_of(ref)
    assert profile is not None and profile.status == "submitted"

    old = make_signed(site.store, "Expired Link Network")
    past = datetime.now(UTC) - timedelta(days=site.settings.feedback.link_days + 1)
    expired = _life(site, past).create_profile(old, actor="office")
    assert httpx.get(f"{site.url}/supporter/{expired.token}/profile").status_code == 404


def test_supporter_links_are_rate_limited_per_client(site: Site) -> None:
    """Public routes are rate-limited per client address (SPEC §10): past its budget a client
    gets 429 on a supporter's link, before the link is read or spent; another address does
    not."""
    ref = make_signed(site.store, "Limited Link Network")
    path = f"/supporter/{_life(site).create_profile(ref, actor='office').token}/profile"
    limiter = RateLimit({"read": Rate(3, 3600), "supporter": Rate(2, 3600)})
    app = create_app(
        site.settings, store=site.store, services=site.engine.applications, limiter=limiter
    )
    with TestClient(app, client=("192.0.2.7", 5000)) as one:
        form = {**PROFILE_FORM, "csrf_token": csrf_of(one.get(path).text)}
        bad = {**form, "website": "ftp://nope"}
        sent = [one.post(path, data=bad).status_code for _ in range(2)]
        refused = one.post(path, data=form)  # a valid form, over the budget
        assert [*sent, refused.status_code] == [400, 400, 429]
        assert int(refused.headers["retry-after"]) > 0
        reads = [one.get(path).status_code for _ in range(3)]
        assert reads == [200, 200, 429]
        assert one.get(path.replace("/profile", "/feedback")).status_code == 429
    profile = _life(site).profile_of(ref)
    assert profile is not None and profile.status != "submitted"
    with TestClient(app, client=("192.0.2.8", 5000)) as two:
        form = {**PROFILE_FORM, "csrf_token": csrf_of(two.get(path).text)}
        assert two.post(path, data=form).status_code == 200
    profile = _life(site).profile_of(ref)
    assert profile is not None and profile.status == "submitted"


def test_the_public_list_is_rate_limited_per_client_as_configured(site: Site) -> None:
    """``[web] read_burst`` and ``read_every_s`` bound /supporters in every format; a data
    format's refusal is JSON that says why, with ``Retry-After``."""
    settings = site.settings.model_copy(
        update={"web": site.settings.web.model_copy(update={"read_burst": 2, "read_every_s": 3600})}
    )
    app = create_app(settings, store=site.store, services=site.engine.applications)
    with TestClient(app, client=("192.0.2.9", 5000)) as one:
        assert one.get("/supporters.csv").status_code == 200
        assert one.get("/supporters").status_code == 200
        refused = one.get("/supporters.json")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"] == "rate_limited"
        assert one.get("/supporters").status_code == 429
    with TestClient(app, client=("192.0.2.10", 5000)) as two:
        assert two.get("/supporters.json").status_code == 200


def test_office_and_commission_act_from_the_application_page(site: Site) -> None:
    """profile → publish (office), suspend → reinstate (Commission), each as the signed-in
    user; the public list follows at once."""
    ref = make_signed(site.store, "Dashboard Life Network", "LV")
    with closing(site.client("office")) as office, closing(site.client("commission")) as eu:

        def act(client: httpx.Client, action: str, **data: str) -> httpx.Response:
            page = client.get(f"/office/applications/{ref}")
            return client.post(
                f"/office/applications/{ref}/{action}",
                data={"csrf_token": csrf_of(page.text), **data},
            )

        page = office.get(f"/office/applications/{ref}")
        assert f"/office/applications/{ref}/profile" in page.text
        answer = act(office, "profile")
        assert answer.status_code == 303
        assert "queued for the supporter" in httpx.URL(answer.headers["location"]).params["done"]
        assert "/supporter/" not in answer.headers["location"]
        assert act(office, "publish").status_code == 409  # not completed yet
        token = mailed_link(site, ref, "profile_invitation").rsplit("/", 2)[1]
        _life(site).submit_profile(token, PROFILE_FORM)
        assert act(eu, "publish").status_code == 403
        assert act(office, "publish").status_code == 303

        def listed() -> list[str]:
            rows = httpx.get(f"{site.url}/supporters.json?country=LV").json()
            return [row["name"] for row in rows]

        assert listed() == ["Dashboard Life Network"]
        assert act(office, "suspend", reason="x").status_code == 403
        assert act(eu, "suspend").status_code == 400
        assert act(eu, "suspend", reason="No activity reported").status_code == 303
        assert listed() == []
        assert act(eu, "reinstate").status_code == 303
        assert listed() == ["Dashboard Life Network"]
        assert office.get("/office/feedback").status_code == 200
    steps = [
        (e.actor, e.to_state, e.reason) for e in site.store.events(reference=ref) if e.to_state
    ]
    assert steps[-4:] == [
        ("office", "profile_created", CREATED),
        ("office", "active", "profile published"),
        ("commission", "suspended", "No activity reported"),
        ("commission", "active", "reinstated"),
    ]  # fmt: skip
    assert site.store.verify_chain().ok
