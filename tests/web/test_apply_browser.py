"""The online EOI in a real browser (Debian's Chromium through Playwright), in Finnish and in
English: filled with mistakes, corrected, sent; the status link follows the application as
the office approves it and the Commission signs; accessibility and screenshots."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, expect

from forms.eoi import Lang
from forms.validation import validate
from tests.samples import CHECKED, TEXT_VALUES
from tests.web.conftest import Site, off_thread

#: What a person types wrong the first time: each comes back with the `check` message.
MISTAKES: dict[str, str | bool] = {
    "contact_email": "office(at)example.eu",
    "contact_phone": "040 123",
    "services": "Koulutusta.",
    "commit_media": False,
}

#: The words of the status page per language (from the locale catalogues).
STATE_WORDS = {
    "en": {"awaiting_review": "Being reviewed by the Covenant office",
           "consent_issued": "Waiting for the European Commission's signature",
           "signed": "Signed by the European Commission"},
    "fi": {"awaiting_review": "Sopimuksen toimisto käsittelee",
           "consent_issued": "Odottaa Euroopan komission allekirjoitusta",
           "signed": "Euroopan komissio on allekirjoittanut"},
}  # fmt: skip


@pytest.fixture
def watched(page: Page) -> Iterator[list[str]]:
    """Dialogs and console errors (a script that ran, or a CSP refusal): none may happen."""
    seen: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        seen.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def on_console(message: ConsoleMessage) -> None:
        # A form sent back with its problems answers 422, which Chromium logs as a failed
        # load: not a script, and expected.
        if message.type == "error" and "status of 422" not in message.text:
            seen.append(f"console: {message.text}")

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    yield seen


def fill(page: Page, values: dict[str, str | bool]) -> None:
    """Type ``values`` into the form the way a person does, field by field."""
    for name, value in values.items():
        field = page.locator(f"#f-{name}")
        if isinstance(value, bool):
            field.set_checked(value)
        elif name == "org_type":
            field.select_option(value)
        else:
            field.fill(value)


def no_serious_axe_violations(page: Page) -> None:
    """axe-core finds nothing serious or critical on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    serious = [
        (violation["id"], violation["impact"], len(violation["nodes"]))
        for violation in results.response["violations"]
        if violation["impact"] in {"serious", "critical"}
    ]
    assert serious == []


def sign_and_return(site: Site, reference: str, tmp_path: Path) -> None:
    """The Commission signs the issued consent and it is dropped into signed/."""
    consent = site.home / "outbox" / f"{reference}.pdf"
    signed = tmp_path / "signed.pdf"
    p12 = site.home / "pki" / "commission-signer.p12"
    code, out = site.cli("sign", str(consent), str(signed), "--p12", str(p12))
    assert code == 0, out
    hidden = site.home / "signed" / f".{reference}.part"
    hidden.write_bytes(signed.read_bytes())
    hidden.rename(site.home / "signed" / f"{reference}-signed.pdf")


@pytest.mark.parametrize("lang", ["fi", "en"])
def test_apply_with_mistakes_then_follow_the_status_link(  # noqa: PLR0917 - fixtures
    page: Page, site: Site, screenshots: Path, watched: list[str], tmp_path: Path, lang: str
) -> None:
    """Fill /apply with mistakes; each shows beside its field in the page's language with
    the typing kept; correct them and send; the status link shows the reference and the
    state, and follows it through approval and signature."""
    org_name = f"{TEXT_VALUES['org_name']} ({lang})"
    values: dict[str, str | bool] = {**TEXT_VALUES, **CHECKED, "org_name": org_name}
    del values["date"]  # the form starts with today's date
    page.goto(f"{site.url}/apply?lang={lang}")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    expect(page.locator("#f-date")).to_have_value(date.today().isoformat())
    no_serious_axe_violations(page)
    page.screenshot(path=str(screenshots / f"apply-{lang}-empty.png"), full_page=True)
    wide = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=str(screenshots / f"apply-{lang}-phone.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    if wide is not None:
        page.set_viewport_size(wide)
    expect(page.locator("a.brand")).to_have_attribute("href", f"/apply?lang={lang}")

    fill(page, {**values, **MISTAKES})
    page.locator("form.eoi button[type=submit]").click()
    expected = validate(
        {**values, **MISTAKES, "date": date.today().isoformat()},
        lang=Lang(lang),
        today=date.today(),
    )
    assert {p.field for p in expected.problems} == set(MISTAKES)
    for problem in expected.problems:
        expect(page.locator(f"#e-{problem.field}")).to_have_text(problem.message)
        expect(page.locator(f"#f-{problem.field}")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#problems li")).to_have_count(len(MISTAKES))
    expect(page.locator("#problems")).to_be_focused()  # the list is where reading starts
    # Everything typed is still there, in every script, line breaks included.
    expect(page.locator("#f-org_name")).to_have_value(org_name)
    expect(page.locator("#f-contact_email")).to_have_value("office(at)example.eu")
    expect(page.locator("#f-address_street")).to_have_value(str(TEXT_VALUES["address_street"]))
    expect(page.locator("#f-org_type")).to_have_value("national_network")
    expect(page.locator("#f-commit_promote")).to_be_checked()
    expect(page.locator("#f-commit_media")).not_to_be_checked()
    no_serious_axe_violations(page)
    page.screenshot(path=str(screenshots / f"apply-{lang}-mistakes.png"), full_page=True)
    assert [a for a in site.store.applications() if a.org_name == org_name] == []

    # A person follows the summary's link to the first field and corrects each one.
    page.locator("#problems a").first.click()
    fill(page, {name: values[name] for name in MISTAKES})
    page.locator("form.eoi button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(site.url)}/apply/status/[\w-]+\?lang={lang}"))
    expect(page.locator("html")).to_have_attribute("lang", lang)
    reference = site.application_of(org_name)
    expect(page.locator("#reference")).to_have_text(reference)
    expect(page.locator("#state")).to_have_attribute("data-state", "awaiting_review")
    expect(page.locator("#state")).to_have_text(STATE_WORDS[lang]["awaiting_review"])
    link = page.locator("#status-link").get_attribute("href")
    assert link and link.startswith("/apply/status/")
    no_serious_axe_violations(page)
    page.screenshot(path=str(screenshots / f"apply-{lang}-sent.png"), full_page=True)

    app = site.store.application(reference)
    assert app is not None and app.lang == lang and app.fields["services"] == values["services"]
    with page.expect_download() as download:
        page.locator(f'a[href="{link}/eoi.pdf"]').click()
    saved = tmp_path / "eoi.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes()[:5] == b"%PDF-"

    # The office approves (the real CLI); the same link now says so.
    code, out = site.cli("approve", reference, "--by", "office")
    assert code == 0, out
    page.goto(site.url + link)
    expect(page.locator("#state")).to_have_text(STATE_WORDS[lang]["consent_issued"])
    page.screenshot(path=str(screenshots / f"apply-{lang}-issued.png"), full_page=True)

    # The Commission signs; once the engine has verified it, the link says that too.
    off_thread(sign_and_return, site, reference, tmp_path)
    for _ in range(100):
        page.goto(site.url + link)
        if page.locator("#state").get_attribute("data-state") == "signed":
            break
        page.wait_for_timeout(200)
    expect(page.locator("#state")).to_have_text(STATE_WORDS[lang]["signed"])
    page.screenshot(path=str(screenshots / f"apply-{lang}-signed.png"), full_page=True)
    assert watched == []
