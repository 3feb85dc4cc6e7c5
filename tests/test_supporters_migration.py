"""0009_i19 on a database made by wave 1 (schema 0004_i13, main before SPEC §12): the
applications keep their states and events, the chain verifies, and the new steps work."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from tests.test_supporters import PROFILE_FORM
from workflow.config import load_settings
from workflow.lifecycle.service import Lifecycle
from workflow.states import State, check_transition
from workflow.store import REKEY_KIND, EventRow, Store, event_hash

WAVE_1 = "0004_i13"


def wave_1_event(
    store: Store, reference: str, *, kind: str, actor: str, reason: str,
    from_state: State | None, to_state: State,
) -> None:  # fmt: skip
    """An event as wave 1 wrote it: plain SHA-256 chain, SQL its schema accepts."""
    with store.engine.begin() as connection:
        last_hash, count = connection.execute(
            text("SELECT last_hash, count FROM chain_head WHERE id = 1")
        ).one()
        row = EventRow(
            at=datetime.now(UTC), reference=reference, actor=actor, kind=kind,
            from_state=from_state.value if from_state else None, to_state=to_state.value,
            reason=reason, data={}, prev_hash=last_hash, hash="",
        )  # fmt: skip
        row.hash = event_hash(row)
        connection.execute(EventRow.__table__.insert(), row.model_dump(exclude={"id"}))  # type: ignore[attr-defined]
        connection.execute(
            text("UPDATE chain_head SET last_hash = :h, count = :n WHERE id = 1"),
            {"h": row.hash, "n": count + 1},
        )


def wave_1_application(store: Store, number: int, name: str, *path: tuple[State, str]) -> str:
    """An application as wave 1 made it (its row and its events, plain-chained), moved
    along ``path`` ((state, actor), …)."""
    reference = f"SUP-2026-{number:05d}"
    now = datetime.now(UTC)
    fields = {"org_name": name, "contact_email": "wave1@example.org",
              "website": "https://wave1.example.org"}  # fmt: skip
    state = path[-1][0] if path else State.RECEIVED
    with store.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO applications (reference, state, org_name, org_key, country, lang,"
                " fields, problems, findings, eoi_sha256, received_at, updated_at)"
                " VALUES (:ref, :state, :name, :key, 'FI', 'en', :fields, '[]', '[]', :sha,"
                " :now, :now)"
            ),
            {"ref": reference, "state": state.value, "name": name,
             "key": f"{name.casefold()}|FI", "fields": json.dumps(fields),
             "sha": name.encode().hex()[:64].ljust(64, "0"), "now": now},
        )  # fmt: skip
    wave_1_event(store, reference, kind="received", actor="system", reason="EOI received",
                 from_state=None, to_state=State.RECEIVED)  # fmt: skip
    current = State.RECEIVED
    for target, actor in path:
        check_transition(reference, current, target)
        wave_1_event(store, reference, kind="state", actor=actor, reason=f"to {target}",
                     from_state=current, to_state=target)  # fmt: skip
        current = target
    return reference


def test_a_wave_1_database_upgrades_and_keeps_its_chain(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    store.upgrade(WAVE_1)
    signed = wave_1_application(
        store, 1, "Wave One Signed", (State.AWAITING_REVIEW, "system"),
        (State.CONSENT_ISSUED, "anna"), (State.SIGNED, "commission"),
    )  # fmt: skip
    rejected = wave_1_application(
        store, 2, "Wave One Rejected", (State.AWAITING_REVIEW, "system"), (State.INELIGIBLE, "anna")
    )
    before_states = {a.reference: a.state for a in store.applications()}
    with store.engine.connect() as connection:
        before_events = [tuple(row) for row in connection.execute(
            text("SELECT id, hash FROM events ORDER BY id")
        )]  # fmt: skip

    store.upgrade()  # the plain chain is carried over into the keyed one (0006_i15b)
    assert store.current_revision() == store.head_revision() == "0009_i19"
    store.ensure_schema()
    assert {a.reference: a.state for a in store.applications()} == before_states
    assert before_states[rejected] == "ineligible" and before_states[signed] == "signed"
    after_events = [(e.id, e.hash) for e in store.events()]
    assert after_events[: len(before_events)] == before_events
    assert [e.kind for e in store.events()][len(before_events) :] == [REKEY_KIND]
    assert store.verify_chain().ok and store.state_disagreements() == []

    settings = load_settings(tmp_path, database={"url": database_url})
    life = Lifecycle(store, settings)
    link = life.create_profile(signed, actor="anna")
    life.submit_profile(link.token, PROFILE_FORM)
    life.publish(signed, actor="anna")
    assert [row["name"] for row in life.public_list()] == ["Wave One Signed"]
    assert store.verify_chain().ok and store.state_disagreements() == []
    store.close()
