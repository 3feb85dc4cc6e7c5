"""One supporter's whole life in a real browser (Chromium through Playwright): signed →
profile → publish → listed → suspended (gone) → reinstated (back) → feedback due and sent.

The dashboard here runs on a clock the test moves (a year on, for the report to fall
due); nothing sleeps. Screenshots go to build/screenshots/supporter-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.eoi_files import filled_eoi
from tests.web.conftest import Site, free_port, off_thread, wait_for
from tests.web.test_browser import sign_in_page
from tests.web.test_supporters_web import mailed_link
from workflow.config import load_settings
from workflow.lifecycle.service import Lifecycle
from workflow.web.server import WebServer


class Shifted:
    """The real time plus an offset the test sets."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def shifted_site(site: Site) -> Iterator[tuple[str, Shifted]]:
    """A second dashboard over the same home and database, on a clock the test moves."""
    clock = Shifted()
    port = free_port()
    settings = load_settings(site.home, web={"listen": f"127.0.0.1:{port}"})
    server = off_thread(
        WebServer, settings, store=site.store, users=site.users, clock=clock,
        live_interval_s=0.05,
    )  # fmt: skip
    server.start()
    yield f"http://127.0.0.1:{port}", clock
    server.stop()


def _signed(site: Site, tmp_path: Path) -> str:
    """An application taken through intake, approval and the Commission's real signature."""
    site.drop("life.pdf", filled_eoi(org_name="Lifelong Network", country="Suomi"))
    reference = site.application_of("Lifelong Network")
    off_thread(site.engine.applications.approve, reference, actor="office")
    signed = tmp_path / "signed.pdf"
    code, out = site.cli(
        "sign", str(site.home / "outbox" / f"{reference}.pdf"), str(signed),
        "--p12", str(site.home / "pki" / "commission-signer.p12"),
    )  # fmt: skip
    assert code == 0, out
    (site.home / "signed" / f"{reference}.pdf").write_bytes(signed.read_bytes())

    def is_signed() -> bool:
        app = site.store.application(reference)
        return app is not None and app.state == "signed"

    assert wait_for(is_signed, 30)
    return reference


def test_a_supporters_whole_life(  # noqa: PLR0917 - fixtures
    page: Page,
    browser: Browser,
    site: Site,
    shifted_site: tuple[str, Shifted],
    screenshots: Path,
    tmp_path: Path,
) -> None:
    url, clock = shifted_site
    reference = _signed(site, tmp_path)

    def shot(target: Page, name: str) -> None:
        target.screenshot(path=str(screenshots / f"supporter-{name}.png"), full_page=True)

    # The office creates the profile; the supporter's mail carries the link.
    sign_in_page(page, site, "office", url=url)
    page.goto(f"{url}/office/applications/{reference}")
    page.get_by_role("button", name="Create the profile and send the link").click()
    expect(page.get_by_role("status")).to_contain_text("queued for the supporter")
    expect(page.locator("h1")).to_contain_text("profile")
    link = mailed_link(site, reference, "profile_invitation")
    link = url + link[link.index("/supporter/") :]

    supporter = browser.new_page()
    supporter.goto(link)
    expect(supporter.locator("h1")).to_contain_text("Covenant Supporter profile")
    supporter.locator("#lang_1").select_option("en")
    supporter.locator("#services_1").fill("Peer learning on climate plans for member cities.")
    supporter.locator("#lang_2").select_option("fi")
    supporter.locator("#services_2").fill("Vertaisoppimista ilmastosuunnitelmista jäsenkunnille.")
    supporter.locator("#member_contact").fill("covenant@lifelong.example.org")
    supporter.locator("#website").fill("https://lifelong.example.org")
    shot(supporter, "profile-form")
    supporter.get_by_role("button", name="Send the profile").click()
    expect(supporter.locator("h1")).to_contain_text("your profile was sent")
    supporter.goto(link)  # spent
    expect(supporter.locator("h1")).to_contain_text("404")

    # The office reads the draft and publishes it: listed.
    page.goto(f"{url}/office/applications/{reference}")
    expect(page.get_by_text("completed, ready to publish")).to_be_visible()
    page.get_by_role("button", name="Publish the profile").click()
    expect(page.locator("h1")).to_contain_text("active")
    visitor = browser.new_page()
    visitor.goto(f"{url}/supporters?country=FI")
    row = visitor.locator("#supporters tbody tr", has_text="Lifelong Network")
    expect(row).to_contain_text("https://lifelong.example.org")
    expect(row).to_contain_text("Peer learning on climate plans")
    expect(visitor.locator("#supporters")).not_to_contain_text("covenant@lifelong")
    shot(visitor, "listed")

    # The Commission suspends (gone at once) and reinstates (back).
    commission = browser.new_page()
    sign_in_page(commission, site, "commission", url=url)
    commission.goto(f"{url}/office/applications/{reference}")
    commission.locator("#suspend-reason").fill("No activity reported for two years.")
    commission.get_by_role("button", name="Suspend the supporter").click()
    expect(commission.locator("h1")).to_contain_text("suspended")
    visitor.reload()
    expect(visitor.locator("#supporters")).not_to_contain_text("Lifelong Network")
    shot(visitor, "suspended")
    commission.get_by_role("button", name="Reinstate the supporter").click()
    expect(commission.locator("h1")).to_contain_text("active")
    visitor.reload()
    expect(visitor.locator("#supporters")).to_contain_text("Lifelong Network")

    # A year on, the report falls due: the sweep mails the link; the office sees it owed.
    clock.offset = timedelta(days=366)
    swept = off_thread(Lifecycle(site.store, site.settings, clock=clock).sweep)
    assert reference in swept.due
    page.goto(f"{url}/office/feedback")
    expect(page.locator("#owed")).to_contain_text(reference)
    link = mailed_link(site, reference, "feedback_due")
    supporter.goto(url + link[link.index("/supporter/") :])
    expect(supporter.locator("h1")).to_contain_text("feedback report")
    supporter.locator("#members_actions").fill("Nine members adopted SECAPs; two joined.")
    supporter.locator("#services_offered").fill("Workshops and a helpdesk in Finnish.")
    shot(supporter, "feedback-form")
    supporter.get_by_role("button", name="Send the report").click()
    expect(supporter.locator("h1")).to_contain_text("your report was received")

    page.goto(f"{url}/office/feedback")
    expect(page.locator("#owed")).not_to_contain_text(reference)
    page.goto(f"{url}/office/applications/{reference}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Feedback report").click()
    report = tmp_path / "report.pdf"
    download.value.save_as(report)
    assert report.read_bytes().startswith(b"%PDF-")
    shot(page, "application")

    kinds = [(e.kind, e.actor, e.to_state) for e in site.store.events(reference=reference)]
    assert [k for k in kinds if k[2] in {"profile_created", "active", "suspended"}] == [
        ("state", "office", "profile_created"),
        ("state", "office", "active"),
        ("state", "commission", "suspended"),
        ("state", "commission", "active"),
    ]
    assert ("feedback_received", "supporter", None) in kinds
    assert site.store.verify_chain().ok
