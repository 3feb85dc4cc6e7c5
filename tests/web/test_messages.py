"""The dashboard shows each application's messages and their delivery state (SPEC §11)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from tests.eoi_files import filled_eoi
from tests.smtpserver import SmtpServer
from tests.web.conftest import Seeded, Site, off_thread
from workflow.mail_sender import Sender


@pytest.fixture(scope="module")
def viewer(site: Site) -> Iterator[httpx.Client]:
    """A client signed in as a viewer."""
    with closing(site.client("viewer")) as client:
        yield client


def _rows(page: str) -> list[str]:
    section = page.split('id="messages"', 1)[1].split("</table>", 1)[0]
    return section.split("<tr")[2:]


def test_messages_show_queued_accepted_and_failed(
    site: Site, seeded: Seeded, viewer: httpx.Client
) -> None:
    """Queued until the SMTP server answers; then accepted (with its reply) or failed."""
    page = viewer.get(f"/office/applications/{seeded.issued}").text
    rows = _rows(page)
    kinds = {kind for kind in ("received", "consent_issued", "consent_to_sign") if kind in page}
    assert kinds == {"received", "consent_issued", "consent_to_sign"}
    assert all("queued" in row for row in rows) and rows

    site.drop("bounce.pdf", filled_eoi(org_name="Bounce Network", contact_email="gone@example.org"))
    bounced = site.application_of("Bounce Network")
    smtp = SmtpServer().start()
    smtp.refuse = {"gone@example.org"}
    try:
        settings = site.settings.model_copy(
            update={
                "mail": site.settings.mail.model_copy(
                    update={"smtp_url": smtp.url, "commission_to": "signer@example.eu"}
                )
            }
        )
        sender = Sender(site.store, settings)
        while off_thread(sender.send_due):
            pass
        sender.close()
    finally:
        smtp.stop()
    accepted = _rows(viewer.get(f"/office/applications/{seeded.issued}").text)
    assert accepted and all("accepted by the mail server" in row for row in accepted)
    assert all("250" in row for row in accepted)
    [failed] = _rows(viewer.get(f"/office/applications/{bounced}").text)
    assert "failed" in failed and "550" in failed and "gone@example.org" in failed
