"""The outbox (SPEC §11): messages written in the transaction of their cause, per language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from workflow import notifications
from workflow.notifications import COMMISSION, enqueue, register_kind, render
from workflow.states import State
from workflow.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store at the current schema on a fresh database."""
    store = Store(database_url)
    store.ensure_schema()
    yield store
    store.close()


def _received(store: Store, *, email: str = "anna@example.fi", lang: str = "fi") -> str:
    with store.tx() as tx:
        app = tx.new_application(
            state=State.RECEIVED,
            eoi_sha256="a" * 64,
            org_name="Kuntaverkosto <b>ry</b>",
            country="FI",
            lang=lang,
            fields={"org_name": "Kuntaverkosto <b>ry</b>", "contact_email": email},
        )
        tx.append_event("received", actor="system", reference=app.reference)
        assert app.reference is not None
        return app.reference


def _move(store: Store, reference: str, target: State, **kwargs: Any) -> None:
    with store.tx() as tx:
        app = tx.get_application(reference)
        assert app is not None
        tx.move(app, target, actor="system", **kwargs)


def test_valid_application_tells_the_applicant_in_their_language(store: Store) -> None:
    """received → awaiting_review queues one "received" message, in the same transaction."""
    reference = _received(store)
    assert store.notifications() == []
    _move(store, reference, State.AWAITING_REVIEW, reason="valid")
    [row] = store.notifications()
    assert (row.kind, row.recipient, row.lang, row.status) == (
        "received", "anna@example.fi", "fi", "queued",
    )  # fmt: skip
    app = store.application(reference)
    assert app is not None and row.application_id == app.id
    assert row.context["reference"] == reference
    message = render(row.kind, row.lang, row.context)
    assert reference in message.subject and "vastaanotettu" in message.subject
    assert "<b>" not in message.html and "&lt;b&gt;" in message.html


def test_invalid_application_lists_every_problem(store: Store) -> None:
    """received → invalid: the message names each problem with its fix."""
    reference = _received(store, lang="en")
    problems = [
        {"field": "country", "code": "country", "message": "“Atlantis” is not a country."},
        {"field": "date", "code": "date", "message": "“32.13.2026” is no date: use YYYY-MM-DD."},
    ]
    _move(store, reference, State.INVALID, reason="2 problems", data={"problems": problems})
    [row] = store.notifications()
    text = render(row.kind, row.lang, row.context).text
    assert row.kind == "invalid"
    for problem in problems:
        assert problem["message"] in text


def test_consent_issued_tells_applicant_and_commission(store: Store) -> None:
    """awaiting_review → consent_issued: the applicant and the Commission's address."""
    reference = _received(store)
    _move(store, reference, State.AWAITING_REVIEW)
    _move(store, reference, State.CONSENT_ISSUED)
    rows = store.notifications()[1:]
    assert {(row.kind, row.recipient) for row in rows} == {
        ("consent_issued", "anna@example.fi"),
        ("consent_to_sign", COMMISSION),
    }


def test_no_message_without_a_usable_address(store: Store) -> None:
    """An EOI whose e-mail is not an address causes no message (nothing to bounce)."""
    reference = _received(store, email="not an address")
    _move(store, reference, State.AWAITING_REVIEW)
    assert store.notifications() == []


def test_rolled_back_cause_leaves_no_message(store: Store) -> None:
    """A transaction that fails after the state change leaves neither event nor message."""
    reference = _received(store)
    events_before = len(store.events())
    with pytest.raises(RuntimeError), store.tx() as tx:
        app = tx.get_application(reference)
        assert app is not None
        tx.move(app, State.AWAITING_REVIEW, actor="system")
        raise RuntimeError("crash before the commit")
    assert store.notifications() == []
    assert len(store.events()) == events_before
    app = store.application(reference)
    assert app is not None and app.state == State.RECEIVED


def test_registered_kind_is_queued_and_rendered(store: Store) -> None:
    """Another module's kind: registered once, queued with enqueue in its own transaction."""
    register_kind(
        "test_profile_invitation",
        subject={"en": "Complete your profile, {org}", "fi": "Täydentäkää profiilinne, {org}"},
        text={"en": "Open {link}", "fi": "Avatkaa {link}"},
        html={"en": "<p>Open <a href='{link}'>{link}</a></p>"},
    )
    with store.tx() as tx:
        enqueue(
            tx.session,
            application_id=None,
            kind="test_profile_invitation",
            to="x@example.org",
            lang="fi",
            context={"org": "Verkosto", "link": "https://e.example/p?a=1&b=2"},
        )
        # Written at once, not an ORM object for the unit of work to flush (every state
        # change that tells someone queues messages: bench/HISTORY.md, 2026-12-01).
        assert not tx.session.new
        assert len(store.notifications()) == 0  # not visible outside until the commit
    [row] = store.notifications()
    assert (row.status, row.attempts, row.recipient) == ("queued", 0, "x@example.org")
    fi = render(row.kind, "fi", row.context)
    assert fi.subject == "Täydentäkää profiilinne, Verkosto"
    en = render(row.kind, "en", row.context)
    assert "a=1&amp;b=2" in en.html
    assert render(row.kind, "sv", row.context).subject.startswith("Complete")


def test_unknown_kind_is_refused_in_the_callers_transaction(store: Store) -> None:
    """A typo in a kind fails where it is made, not later in the sender."""
    with pytest.raises(ValueError, match="unknown message kind"), store.tx() as tx:
        enqueue(tx.session, application_id=None, kind="nope", to="a@b.c", lang="en", context={})
    assert store.notifications() == []


def test_every_kind_has_english_and_finnish() -> None:
    """The project's own messages exist in both languages, text and subject."""
    for rule in notifications.WHO_IS_TOLD:
        kind = notifications.kinds()[rule.kind]
        assert set(kind.subject) >= {"en", "fi"} and set(kind.text) >= {"en", "fi"}
