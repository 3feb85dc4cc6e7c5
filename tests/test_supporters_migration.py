"""0009_i19 on a database made by wave 1 (schema 0004_i13, main before SPEC §12): the
applications keep their states and events, the chain verifies, and the new steps work."""

from __future__ import annotations

from pathlib import Path

from tests.test_supporters import PROFILE_FORM
from workflow.config import load_settings
from workflow.lifecycle.service import Lifecycle
from workflow.states import State, check_transition
from workflow.store import Application, Store, Tx

WAVE_1 = "0004_i13"


def wave_1_move(tx: Tx, app: Application, target: State, actor: str, reason: str) -> None:
    """What wave 1's ``Tx.move`` did: the state and its event (today's also queues mail,
    into a table a wave-1 database does not have)."""
    assert app.reference is not None
    current = State(app.state)
    check_transition(app.reference, current, target)
    app.state = target.value
    app.updated_at = tx.now()
    tx.session.add(app)
    tx.append_event("state", actor=actor, reference=app.reference, from_state=current,
                    to_state=target, reason=reason)  # fmt: skip


def wave_1_application(store: Store, name: str, *path: tuple[State, str]) -> str:
    """An application as wave 1 made it, moved along ``path`` ((state, actor), …)."""
    with store.tx() as tx:
        app = tx.new_application(
            state=State.RECEIVED, eoi_sha256=name.encode().hex()[:64].ljust(64, "0"),
            org_name=name, org_key=f"{name.casefold()}|FI", country="FI",
            fields={"org_name": name, "contact_email": "wave1@example.org",
                    "website": "https://wave1.example.org"},
        )  # fmt: skip
        tx.append_event("received", actor="system", reference=app.reference,
                        to_state=State.RECEIVED, reason="EOI received")  # fmt: skip
        for target, actor in path:
            wave_1_move(tx, app, target, actor, f"to {target}")
        assert app.reference is not None
        return app.reference


def test_a_wave_1_database_upgrades_and_keeps_its_chain(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    store.upgrade(WAVE_1)
    signed = wave_1_application(
        store, "Wave One Signed", (State.AWAITING_REVIEW, "system"),
        (State.CONSENT_ISSUED, "anna"), (State.SIGNED, "commission"),
    )  # fmt: skip
    rejected = wave_1_application(
        store, "Wave One Rejected", (State.AWAITING_REVIEW, "system"), (State.INELIGIBLE, "anna")
    )
    before_states = {a.reference: a.state for a in store.applications()}
    before_events = [(e.id, e.hash) for e in store.events()]
    assert store.verify_chain().ok

    store.upgrade()
    assert store.current_revision() == store.head_revision() == "0009_i19"
    store.ensure_schema()
    assert {a.reference: a.state for a in store.applications()} == before_states
    assert before_states[rejected] == "ineligible" and before_states[signed] == "signed"
    assert [(e.id, e.hash) for e in store.events()] == before_events
    assert store.verify_chain().ok and store.state_disagreements() == []

    settings = load_settings(tmp_path, database={"url": database_url})
    life = Lifecycle(store, settings)
    link = life.create_profile(signed, actor="anna")
    life.submit_profile(link.token, PROFILE_FORM)
    life.publish(signed, actor="anna")
    assert [row["name"] for row in life.public_list()] == ["Wave One Signed"]
    assert store.verify_chain().ok and store.state_disagreements() == []
    store.close()
