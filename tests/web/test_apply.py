"""The online EOI over HTTP: the PDF's fields and words, the checks of `check`, the same
intake as a dropped file, the status link, and the public routes' defences."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from forms.eoi import FIELDS, Kind, Lang
from forms.reading import read_eoi
from forms.texts import catalog
from forms.validation import validate
from tests.eoi_files import invalid_eoi, valid_values
from tests.web.conftest import Site, csrf_of, off_thread
from workflow import status_links
from workflow.web.app import create_app
from workflow.web.apply import HONEYPOT, Rate, RateLimit

_STATUS = re.compile(r"/apply/status/([A-Za-z0-9_-]+)\?")


def form_data(values: dict[str, str | bool], token: str) -> dict[str, str]:
    """What a browser posts for these values: ticked boxes as ``yes``, unticked absent."""
    data = {"csrf_token": token}
    for name, value in values.items():
        if value is True:
            data[name] = "yes"
        elif isinstance(value, str):
            data[name] = value
    return data


@pytest.fixture
def applicant(site: Site) -> Iterator[httpx.Client]:
    """A signed-out browser-like client."""
    with closing(site.client(None)) as client:
        yield client


def submit(client: httpx.Client, values: dict[str, str | bool], lang: str = "en") -> httpx.Response:
    """Open /apply, then post ``values`` with the page's token."""
    token = csrf_of(client.get(f"/apply?lang={lang}").text)
    return client.post(f"/apply?lang={lang}", data=form_data(values, token))


def _applications_named(site: Site, name: str) -> list[str]:
    return [a.reference or "" for a in site.store.applications() if a.org_name == name]


@pytest.mark.parametrize("lang", list(Lang))
def test_the_form_has_the_pdfs_fields_words_and_choices(
    applicant: httpx.Client, lang: Lang
) -> None:
    """Every field of the EOI, with the PDF's label, and every org_type choice; nothing
    loaded from another site."""
    page = applicant.get(f"/apply?lang={lang.value}")
    assert page.status_code == 200
    words = catalog(lang, "form")
    text = html.unescape(page.text)
    for spec in FIELDS:
        if spec.kind is Kind.HIDDEN:
            continue
        assert f'name="{spec.name}"' in page.text, spec.name
        assert words[spec.name] in text, spec.name
        for option in spec.options:
            assert f'value="{option}"' in page.text and words[f"org_type_{option}"] in text
    assert words["title"] in text and words["commitments_intro"] in text
    for url in re.findall(r'(?:src|href|action)="([^"]+)"', page.text):
        assert url.startswith(("/", "?", "#")), url


def test_mistakes_are_shown_at_their_fields_in_finnish_and_typing_is_kept(
    site: Site, applicant: httpx.Client
) -> None:
    """The messages of `check`, in the form's language, each beside its field; every value
    typed comes back; nothing is recorded."""
    values = valid_values(
        org_name="Virheellinen Verkosto ÄÖ", contact_email="ei osoite", member_count="0",
        commit_media=False, services="Lyhyt",
    )  # fmt: skip
    answer = submit(applicant, values, "fi")
    assert answer.status_code == 422
    expected = validate(values, lang=Lang.FI, today=date.today())
    assert {p.field for p in expected.problems} == {
        "contact_email", "member_count", "commit_media", "services"
    }  # fmt: skip
    for problem in expected.problems:
        block = re.search(rf'id="e-{problem.field}" data-code="([a-z_]+)">([^<]*)<', answer.text)
        assert block, problem.field
        assert block.group(1) == problem.code
        assert html.unescape(block.group(2)) == problem.message
    assert 'value="ei osoite"' in answer.text and "Lyhyt</textarea>" in answer.text
    assert 'name="commit_promote" value="yes" checked' in answer.text
    assert 'name="commit_media" value="yes" aria-required' in answer.text  # not ticked
    assert _applications_named(site, "Virheellinen Verkosto ÄÖ") == []


def test_a_valid_form_enters_the_same_intake_as_a_dropped_file(
    site: Site, applicant: httpx.Client
) -> None:
    """Recorded with source web, the same fields as `check` gives, archived, with its
    events; the applicant lands on the status link with the reference and the PDF."""
    values = valid_values(org_name="Verkko-Online Network")
    answer = submit(applicant, values)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    token = _STATUS.search(location)
    assert token
    [reference] = _applications_named(site, "Verkko-Online Network")
    app = site.store.application(reference)
    assert app is not None and app.state == "awaiting_review" and app.lang == "en"
    expected = validate(values, lang=Lang.EN, today=date.today())
    assert expected.eoi is not None
    assert app.fields == {**dict(expected.fields), **expected.eoi.to_fields()}
    [item] = [i for i in site.store.items() if i.outcome == reference]
    assert (item.source, item.folder, item.status) == ("web", "inbox", "done")
    events = site.store.events(reference=reference)
    assert events[0].kind == "received" and events[0].data["file"] == item.original_name
    assert [e.to_state for e in events][:2] == ["received", "awaiting_review"]
    page = applicant.get(location)
    assert page.status_code == 200 and page.headers["x-robots-tag"] == "noindex, nofollow"
    assert reference in page.text and 'data-state="awaiting_review"' in page.text
    pdf = applicant.get(f"/apply/status/{token.group(1)}/eoi.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert "attachment" in pdf.headers["content-disposition"]
    assert site.engine.applications.archive.get(app.eoi_sha256) == pdf.content
    raw = read_eoi(pdf.content)
    assert {k: raw.values.get(k) for k in values} == values


def test_the_status_link_follows_the_state_and_a_get_changes_nothing(
    site: Site, applicant: httpx.Client
) -> None:
    """awaiting review, then consent issued after `consentflow approve`, in the applicant's
    language (Finnish here); opening the link writes nothing."""
    answer = submit(applicant, valid_values(org_name="Tilalinkki Oy"), "fi")
    assert answer.status_code == 303
    link = answer.headers["location"].split("?")[0]
    [reference] = _applications_named(site, "Tilalinkki Oy")
    before = (len(site.store.events()), site.store.newest_event_id())
    with closing(site.client(None)) as stranger:  # another browser, no cookie, no ?lang
        page = stranger.get(link)
        assert page.status_code == 200 and 'lang="fi"' in page.text
        assert "Sopimuksen toimisto käsittelee" in page.text
        assert (len(site.store.events()), site.store.newest_event_id()) == before
        code, out = site.cli("approve", reference, "--by", "office")
        assert code == 0, out
        page = stranger.get(link)
        assert 'data-state="consent_issued"' in page.text
        assert "Odottaa Euroopan komission allekirjoitusta" in page.text
        english = stranger.get(link + "?lang=en")
        assert "Waiting for the European Commission" in english.text


def test_unknown_and_expired_links_open_nothing(site: Site, applicant: httpx.Client) -> None:
    """A made-up token and an expired one answer 404 (and their PDF too)."""
    submit(applicant, valid_values(org_name="Expiring Network"))
    [reference] = _applications_named(site, "Expiring Network")
    app = site.store.application(reference)
    assert app is not None and app.id is not None
    long_ago = datetime.now(UTC) - status_links.LIFETIME - status_links.LIFETIME / 365
    with site.store.tx() as tx:
        expired = status_links.issue(tx.session, app.id, now=long_ago)
    for token in (expired, "A" * 43, "not-a-token"):
        page = applicant.get(f"/apply/status/{token}")
        assert page.status_code == 404 and reference not in page.text
        assert "unknown or has expired" in page.text
        assert applicant.get(f"/apply/status/{token}/eoi.pdf").status_code == 404


def test_the_honeypot_catches_a_bot(site: Site, applicant: httpx.Client) -> None:
    """A form with the hidden field filled is refused and recorded nowhere."""
    token = csrf_of(applicant.get("/apply").text)
    data = form_data(valid_values(org_name="Bot Network"), token)
    data[HONEYPOT] = "http://spam.example"
    answer = applicant.post("/apply", data=data)
    assert answer.status_code == 400
    assert _applications_named(site, "Bot Network") == []


def test_csrf_is_required(site: Site, applicant: httpx.Client) -> None:
    """Without the page's token (or with another visitor's), nothing is recorded; the
    applicant's typing comes back with a fresh token."""
    values = valid_values(org_name="Forged Network")
    with closing(site.client(None)) as other:
        theirs = csrf_of(other.get("/apply").text)
    applicant.get("/apply")
    for token in ("", theirs, "x" * 64):
        answer = applicant.post("/apply", data=form_data(values, token))
        assert answer.status_code == 403
        assert 'value="Forged Network"' in answer.text
    assert _applications_named(site, "Forged Network") == []
    # The page it answered with carries a usable token.
    answer = applicant.post("/apply", data=form_data(values, csrf_of(answer.text)))
    assert answer.status_code == 303


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_applicant_text_is_always_escaped(site: Site, applicant: httpx.Client) -> None:
    """Markup typed into the form shows as text: on the form sent back, and on the status
    page of the application it becomes."""
    values = valid_values(org_name=f"XSS {XSS}", contact_email=XSS, languages=XSS)
    answer = submit(applicant, values)
    assert answer.status_code == 422
    assert "<script>" not in answer.text and "<img src=x" not in answer.text
    assert str(escape(XSS)) in answer.text
    values["contact_email"] = "xss@example.org"
    answer = submit(applicant, values)
    assert answer.status_code == 303
    page = applicant.get(answer.headers["location"])
    assert "<script>" not in page.text and "<img src=x" not in page.text
    assert str(escape(f"XSS {XSS}")) in page.text


def test_public_routes_are_rate_limited_per_client(site: Site) -> None:
    """A client over its budget gets 429 (and nothing recorded); another client does not."""
    limiter = RateLimit({"apply": Rate(2, 3600), "read": Rate(4, 3600)})
    app = create_app(
        site.settings, store=site.store, services=site.engine.applications, limiter=limiter
    )
    with TestClient(app, client=("192.0.2.1", 5000)) as one:
        token = csrf_of(one.get("/apply").text)
        codes = [one.post("/apply", data={"csrf_token": token}).status_code for _ in range(3)]
        assert codes == [422, 422, 429]
        refusal = one.post("/apply", data={"csrf_token": token})
        assert int(refusal.headers["retry-after"]) > 0 and 'href="/apply' in refusal.text
        reads = [one.get("/apply/status/nothing").status_code for _ in range(4)]
        assert reads == [404, 404, 404, 429]
        refused = one.post("/apply", data=form_data(valid_values(org_name="Flood"), token))
        assert refused.status_code == 429
    assert _applications_named(site, "Flood") == []
    with TestClient(app, client=("192.0.2.2", 5000)) as two:
        assert two.get("/apply").status_code == 200


def test_a_resent_form_is_the_same_application(site: Site, applicant: httpx.Client) -> None:
    """The same answers sent twice make the same file: the intake's duplicate, and the
    applicant still gets a status link to their one application."""
    values = valid_values(org_name="Twice Network")
    first = submit(applicant, values)
    second = off_thread(submit, applicant, values)
    assert first.status_code == second.status_code == 303
    assert len(_applications_named(site, "Twice Network")) == 1
    page = applicant.get(second.headers["location"])
    assert _applications_named(site, "Twice Network")[0] in page.text
    # A double click: the same form twice at the same moment.
    values = valid_values(org_name="Double Click Network")
    token = csrf_of(applicant.get("/apply").text)
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: applicant.post("/apply", data=form_data(values, token)),
                                range(2)))  # fmt: skip
    assert [answer.status_code for answer in answers] == [303, 303]
    [reference] = _applications_named(site, "Double Click Network")
    statuses = sorted(i.status for i in site.store.items() if i.outcome == reference)
    assert statuses == ["done", "duplicate"]


def _link_for(site: Site, reference: str) -> str:
    app = site.store.application(reference)
    assert app is not None and app.id is not None
    with site.store.tx() as tx:
        return "/apply/status/" + status_links.issue(tx.session, app.id)


def test_the_status_page_of_an_invalid_and_of_an_ineligible_application(
    site: Site, applicant: httpx.Client
) -> None:
    """A status link to a dropped form with problems lists them (with the way back to the
    form); one to a rejected application gives the office's reason."""
    site.drop("status-invalid.pdf", invalid_eoi(org_name="Status Invalid Network"))
    invalid = site.application_of("Status Invalid Network")
    page = applicant.get(_link_for(site, invalid))
    assert page.status_code == 200 and 'data-state="invalid"' in page.text
    app = site.store.application(invalid)
    assert app is not None and app.problems
    for problem in app.problems:
        assert str(escape(problem["message"])) in page.text
    assert 'href="/apply?lang=en"' in page.text

    answer = submit(applicant, valid_values(org_name="Status Rejected Network"))
    assert answer.status_code == 303
    [rejected] = _applications_named(site, "Status Rejected Network")
    code, out = site.cli(
        "reject", rejected, "--reason", "Not a network <of cities>", "--by", "office"
    )
    assert code == 0, out
    page = applicant.get(answer.headers["location"])
    assert 'data-state="ineligible"' in page.text
    assert "Not a network &lt;of cities&gt;" in page.text


def test_long_text_is_kept_whole(site: Site, applicant: httpx.Client) -> None:
    """A long description of services reaches the application whole, line breaks and all."""
    services = "\n".join(f"Palvelu {n}: koulutusta ja neuvontaa jäsenille." for n in range(150))
    answer = submit(applicant, valid_values(org_name="Long Text Network", services=services))
    assert answer.status_code == 303, answer.text[:500]
    [reference] = _applications_named(site, "Long Text Network")
    app = site.store.application(reference)
    assert app is not None and app.fields["services"] == services

    # Past the form's bound the body is not read at all, and the applicant is told why.
    token = csrf_of(applicant.get("/apply").text)
    data = form_data(valid_values(org_name="Too Long Network", services="x" * 70_000), token)
    answer = applicant.post("/apply", data=data)
    assert answer.status_code == 413 and "too long" in answer.text
    assert _applications_named(site, "Too Long Network") == []
