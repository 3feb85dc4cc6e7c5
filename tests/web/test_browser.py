"""The dashboard in a real browser (Debian's Chromium through Playwright): an office day,
the live log's reconnection, hostile text, accessibility, and screenshots to look at."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, expect

from forms.eoi import Lang
from tests.eoi_files import broken_pdf, filled_eoi
from tests.samples import TEXT_VALUES
from tests.web.conftest import PASSWORD, SCREENSHOTS, Seeded, Site, free_port, off_thread, wait_for
from workflow.config import load_settings
from workflow.web.server import WebServer


def sign_in_page(page: Page, site: Site, name: str, *, url: str | None = None) -> None:
    """Sign in through the form, as a person does."""
    url = url or site.url
    page.goto(f"{url}/login")
    page.locator("#name").fill(name)  # by id: the labels follow the browser's language
    page.locator("#password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(f"{url}/office")


@pytest.fixture
def watched(page: Page) -> Iterator[list[str]]:
    """Dialogs opened and console errors logged on ``page``: each is a script that ran or was
    refused (a CSP violation), and none may happen."""
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            seen.append(f"console: {message.text}")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    yield seen


def test_an_office_day(page: Page, site: Site, watched: list[str], tmp_path: Path) -> None:
    """Sign in; an EOI dropped into inbox/ shows in the live log within 1 s without a reload;
    open it, approve, download the consent, upload the copy signed with `consentflow sign`,
    and see the application become signed with its report."""
    sign_in_page(page, site, "office")
    page.get_by_role("link", name="Processing log").click()
    expect(page.locator("#live-status")).to_contain_text("Live")
    page.evaluate("window.__notReloaded = true")

    eoi = filled_eoi(org_name="Office Day Network")
    started = time.monotonic()
    site.drop("office-day.pdf", eoi)
    row = page.locator("#log-table tbody tr", has_text="EOI received as office-day.pdf")
    expect(row).to_be_visible(timeout=1000)
    seen_after = time.monotonic() - started
    assert seen_after < 1.0
    assert page.evaluate("window.__notReloaded") is True

    reference = site.application_of("Office Day Network")
    page.locator("#log-table tbody tr", has_text="valid, no eligibility findings").get_by_role(
        "link", name=reference
    ).click()
    expect(page.locator("h1")).to_contain_text("awaiting review")
    page.get_by_role("button", name="Approve and issue the consent").click()
    expect(page.locator("h1")).to_contain_text("consent issued")
    expect(page.get_by_role("status")).to_contain_text("consent issued")

    with page.expect_download() as download:
        page.get_by_role("link", name="Consent as issued").click()
    consent = tmp_path / "consent.pdf"
    download.value.save_as(consent)
    assert consent.read_bytes() == (site.home / "outbox" / f"{reference}.pdf").read_bytes()

    signed = tmp_path / "signed.pdf"
    code, out = site.cli(
        "sign", str(consent), str(signed), "--p12", str(site.home / "pki" / "commission-signer.p12")
    )
    assert code == 0, out
    page.get_by_label("Signed consent (PDF)").set_input_files(str(signed))
    page.get_by_role("button", name="Upload and verify").click()
    expect(page.get_by_role("status")).to_contain_text(f"{reference} is signed")
    expect(page.locator(".card").first).to_contain_text("TOTAL_PASSED")

    page.get_by_role("link", name=reference).first.click()
    expect(page.locator("h1")).to_contain_text("signed")
    expect(page.get_by_role("heading", name="Signature reports")).to_be_visible()
    expect(page.get_by_text("certification_broken")).to_be_visible()
    app = site.store.application(reference)
    assert app is not None and app.state == "signed"
    actors = [(e.kind, e.actor) for e in site.store.events(reference=reference)]
    assert ("state", "office") in actors and ("upload", "office") in actors
    assert ("document_viewed", "office") in actors
    assert watched == []


def test_live_log_reconnects_and_fills_the_gap(page: Page, site: Site, watched: list[str]) -> None:
    """When the dashboard's server goes away the page shows a banner; when it is back the
    page reconnects by itself and shows every event it missed, each once."""
    port = free_port()
    settings = load_settings(site.home, web={"listen": f"127.0.0.1:{port}"})
    server = off_thread(
        WebServer, settings, store=site.store, users=site.users, live_interval_s=0.05
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        sign_in_page(page, site, "viewer", url=url)
        page.goto(f"{url}/office/log")
        expect(page.locator("#live-status")).to_contain_text("Live")
        banner = page.locator("#live-banner")
        expect(banner).to_be_hidden()
        with site.store.tx() as tx:
            tx.append_event("note", actor="test", reason="seen while connected")
        expect(page.get_by_text("seen while connected")).to_have_count(1)

        server.stop()
        expect(banner).to_be_visible(timeout=10_000)
        with site.store.tx() as tx:
            for number in range(3):
                tx.append_event("note", actor="test", reason=f"missed while away {number}")
        server = off_thread(
            WebServer, settings, store=site.store, users=site.users, live_interval_s=0.05
        )
        server.start()
        expect(banner).to_be_hidden(timeout=15_000)
        for number in range(3):
            expect(page.get_by_text(f"missed while away {number}")).to_have_count(1)
        expect(page.get_by_text("seen while connected")).to_have_count(1)
        ids = page.locator("#log-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.id)"
        )
        assert len(ids) == len(set(ids))  # nothing twice
        assert [int(i) for i in ids] == sorted((int(i) for i in ids), reverse=True)  # no gap
        newest = site.store.events(limit=1)[0].id
        assert int(ids[0]) == newest
    finally:
        server.stop()
    # The browser logs its failed reconnection attempts while the server is away.
    assert [entry for entry in watched if "ERR_CONNECTION_REFUSED" not in entry] == []


def test_every_eu_script_and_local_time(
    browser: Browser, site: Site, seeded: Seeded, watched: list[str]
) -> None:
    """Greek, Cyrillic and Latin with every diacritic show byte-exact; times are in UTC with
    the browser's local time beside them (Helsinki here)."""
    context = browser.new_context(timezone_id="Europe/Helsinki", locale="fi-FI")
    page = context.new_page()
    try:
        sign_in_page(page, site, "viewer")
        page.goto(f"{site.url}/office/applications/{seeded.issued}?lang=fi")
        expect(page.locator("h1")).to_contain_text("suostumus lähetetty")
        for name in ("org_acronym", "address_street", "address_city", "contact_name",
                     "contact_position", "representative_name", "representative_position",
                     "place"):  # fmt: skip
            expect(page.locator("dd", has_text=TEXT_VALUES[name]).first).to_have_text(
                TEXT_VALUES[name]
            )
        services = page.locator("dd", has_text="Ενημέρωση").inner_text()
        assert services == TEXT_VALUES["services"]
        stamp = page.locator("td time").first
        utc = datetime.fromisoformat(str(stamp.get_attribute("datetime")))
        local = utc.astimezone(ZoneInfo("Europe/Helsinki")).strftime("%H.%M.%S")
        expect(stamp).to_contain_text(utc.strftime("%Y-%m-%d %H:%M:%S") + " UTC")
        expect(stamp.locator(".local")).to_contain_text(local)
        assert page.evaluate("document.documentElement.lang") == "fi"
    finally:
        context.close()


def test_retry_is_one_click(page: Page, site: Site, watched: list[str]) -> None:
    """A failed file goes back to its folder with one click, recorded with the user's name."""
    site.drop("cut short.pdf", broken_pdf(filled_eoi(org_name="Retry Network")))
    assert wait_for((site.settings.failed / "cut short.pdf").is_file)
    sign_in_page(page, site, "office")
    page.goto(f"{site.url}/office/failed")
    page.get_by_role("button", name="Retry cut short.pdf").click()
    expect(page.get_by_role("status")).to_contain_text("cut short.pdf: put back for processing")
    retries = [e for e in site.store.events() if e.kind == "retry"]
    assert retries[-1].actor == "office" and "cut short.pdf" in retries[-1].reason
    # Still damaged: the engine takes it again and it fails again, with its report.
    assert wait_for(lambda: len([e for e in site.store.events() if e.kind == "file_failed"
                                 and e.data.get("file") == "cut short.pdf"]) == 2)  # fmt: skip
    assert watched == []


XSS = [
    "<script>alert('org')</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(document.cookie)",
]


@pytest.fixture(scope="module")
def hostile(site: Site) -> dict[str, str]:
    """Applications, file names and a rejection reason full of markup."""
    fields: dict[str, str | bool] = {
        "org_name": XSS[0] + " Hostile Network",
        "org_acronym": XSS[1][:30],
        "address_street": XSS[1],
        "address_city": XSS[0],
        "contact_name": XSS[1],
        "contact_position": XSS[0],
        "representative_name": XSS[1],
        "representative_position": XSS[2],
        "services": XSS[0] + " " + XSS[1] + " " + XSS[2],
        "languages": XSS[1],
        "place": XSS[0],
    }
    site.drop('"><img src=x onerror=alert(2)>.pdf', filled_eoi(Lang.EN, **fields))
    valid = site.application_of(str(fields["org_name"]))
    everything: dict[str, str | bool] = {
        **fields, "website": XSS[2], "contact_email": XSS[1], "country": XSS[0],
        "member_count": XSS[1], "org_name": XSS[1] + " Hostile Invalid", "date": XSS[0],
    }  # fmt: skip
    site.drop('"><svg onload=alert(3)>.pdf', filled_eoi(Lang.EN, **everything))
    invalid = site.application_of(str(everything["org_name"]))
    site.drop("<b>bold<b> broken.pdf", broken_pdf(filled_eoi(org_name="Broken Hostile")))
    assert wait_for(
        lambda: any(p.name.startswith("_b_bold") for p in site.settings.failed.iterdir())
    )
    off_thread(site.engine.applications.reject, valid, actor="office", reason=XSS[1] + " " + XSS[0])
    return {"valid": valid, "invalid": invalid}


def test_hostile_text_shows_as_typed_and_never_runs(
    page: Page, site: Site, hostile: dict[str, str], watched: list[str]
) -> None:
    """Markup in every text field, in file names and in a rejection reason is shown as the
    text it is on every page, and no script runs (no dialog, no CSP violation)."""
    sign_in_page(page, site, "office")
    for path in [
        "/office",
        f"/office/applications/{hostile['valid']}",
        f"/office/applications/{hostile['invalid']}",
        "/office/log",
        "/office/failed",
        "/office/attention",
        f"/office?q={XSS[1]}",
    ]:
        page.goto(site.url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("img[src=x], svg[onload], script:not([src])").count() == 0, path
        assert page.locator("a[href^='javascript:']").count() == 0, path
    page.goto(f"{site.url}/office/applications/{hostile['valid']}")
    expect(page.locator("h1 + p")).to_have_text(XSS[0] + " Hostile Network (GR)")
    expect(page.get_by_text(XSS[1] + " " + XSS[0], exact=True).first).to_be_visible()
    expect(page.get_by_text('EOI received as "><img src=x onerror=alert(2)>.pdf')).to_be_visible()
    page.goto(f"{site.url}/office/applications/{hostile['invalid']}")
    expect(page.get_by_text(XSS[2], exact=True).first).to_be_visible()
    page.goto(f"{site.url}/office/failed")
    expect(page.get_by_text("<b>bold<b> broken.pdf")).to_be_visible()
    page.goto(f"{site.url}/office/log")
    expect(page.get_by_text('EOI received as "><svg onload=alert(3)>.pdf')).to_be_visible()
    # The same text arriving live, through the page's script rather than the template.
    expect(page.locator("#live-status")).to_contain_text("Live")
    with site.store.tx() as tx:
        tx.append_event("note", actor=XSS[1], reference=XSS[0], reason=XSS[0] + XSS[1])
    live = page.locator("#log-table tbody tr").first
    expect(live).to_contain_text(XSS[0] + XSS[1])
    expect(live.locator("td").nth(2)).to_have_text(XSS[1])
    assert page.locator("img[src=x], script:not([src])").count() == 0
    assert watched == []


MAIN_PAGES = [
    ("login", "/login", None),
    ("applications", "/office", "office"),
    ("application", "/office/applications/{issued}", "office"),
    ("log", "/office/log", "office"),
    ("failed", "/office/failed", "office"),
    ("attention", "/office/attention", "office"),
    ("signed", "/office/signed", "commission"),
    ("stats", "/office/stats", "viewer"),
    ("users", "/office/users", "admin"),
    ("supporters", "/supporters", None),
    ("feedback", "/office/feedback", "office"),
]


@pytest.mark.parametrize(("name", "path", "role"), MAIN_PAGES, ids=[p[0] for p in MAIN_PAGES])
def test_main_pages_are_accessible_and_photographed(  # noqa: PLR0917 - fixtures
    page: Page,
    site: Site,
    seeded: Seeded,
    screenshots: Path,
    watched: list[str],
    name: str,
    path: str,
    role: str | None,
) -> None:
    """axe-core finds no serious or critical violation; each page leaves a screenshot."""
    from axe_playwright_python.sync_playwright import Axe

    if role is not None:
        sign_in_page(page, site, role)
    page.goto(site.url + path.format(issued=seeded.issued))
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
    results = Axe().run(page)
    serious = [
        (violation["id"], violation["impact"], len(violation["nodes"]))
        for violation in results.response["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]
    assert serious == []
    assert (SCREENSHOTS / f"{name}.png").stat().st_size > 5000
    assert watched == []
