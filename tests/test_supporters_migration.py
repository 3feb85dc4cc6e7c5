"""0009_i19 on a database made by wave 1 (schema 0004_i13, main before SPEC §12): the
applications keep their states and events, the chain verifies, and the new steps work."""

from __future__ import annotations

from pathlib import Path

from tests.test_supporters import PROFILE_FORM, make_signed
from workflow.config import load_settings
from workflow.lifecycle.service import Lifecycle
from workflow.states import State
from workflow.store import Store

WAVE_1 = "0004_i13"


def test_a_wave_1_database_upgrades_and_keeps_its_chain(database_url: str, tmp_path: Path) -> None:
    store = Store(database_url)
    store.upgrade(WAVE_1)
    signed = make_signed(store, "Wave One Signed")
    with store.tx() as tx:
        other = tx.new_application(
            state=State.RECEIVED, eoi_sha256="b" * 64, org_name="Wave One Rejected",
            org_key="wave one rejected|FI", country="FI", fields={"org_name": "x"},
        )  # fmt: skip
        tx.move(other, State.AWAITING_REVIEW, actor="system", reason="valid")
        tx.move(other, State.INELIGIBLE, actor="anna", reason="a company")
        rejected = other.reference
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
