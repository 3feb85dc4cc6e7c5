"""Issuing a consent: a race for one decision leaves one consent, and every file in archive/
belongs to a record — after lost races and after an issuer killed half-way."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import text

from tests.eoi_files import filled_eoi
from workflow.applications import DRAFT_MAX_AGE_S
from workflow.config import load_settings
from workflow.engine import Engine, build_applications
from workflow.states import State, TransitionError
from workflow.store import Store

RACES = 8


def _recorded(store: Store) -> set[str]:
    with store.engine.connect() as connection:
        return set(connection.execute(text("SELECT sha256 FROM documents")).scalars())


def _archived(home: Path) -> set[str]:
    return {p.name for p in (home / "archive").glob("??/*") if p.is_file()}


def test_racing_approvals_leave_no_consent_behind(tmp_path: Path, database_url: str) -> None:
    """Two issuers approve each of eight applications at the same moment: one wins each race,
    the other gets TransitionError, and archive/ holds exactly the recorded files."""
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    for number in range(RACES):
        (home / "inbox" / f"{number}.pdf").write_bytes(filled_eoi(org_name=f"Network {number}"))
    settings = load_settings(home, database={"url": database_url})
    engine = Engine(settings)
    engine.run_once()
    references = [app.reference for app in engine.store.applications() if app.reference]
    assert len(references) == RACES
    issuers = [build_applications(Store(settings.database_url), settings) for _ in range(2)]
    outcomes: list[str] = []

    def approve(issuer_index: int, reference: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            issuers[issuer_index].approve(reference, actor=f"office-{issuer_index}")
            outcomes.append("won")
        except TransitionError:
            outcomes.append("lost")

    for reference in references:
        start = threading.Barrier(2)
        threads = [threading.Thread(target=approve, args=(i, reference, start)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert sorted(outcomes) == ["lost"] * RACES + ["won"] * RACES
    assert len(engine.store.applications(State.CONSENT_ISSUED)) == RACES
    assert _archived(home) == _recorded(engine.store)
    assert list((home / "archive" / ".drafts").iterdir()) == []
    for issuer in issuers:
        issuer.store.close()
    engine.close()


def test_drafts_of_a_killed_issuer_are_swept(tmp_path: Path) -> None:
    """What a kill between the draft and the commit leaves: a draft, perhaps already linked
    into archive/. After the draft age, the sweep removes unrecorded bytes and keeps
    recorded ones; a young draft (an issuer at work) is left alone."""
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    (home / "inbox" / "a.pdf").write_bytes(filled_eoi())
    settings = load_settings(home, database={"url": f"sqlite:///{home / 'cf.db'}"})
    engine = Engine(settings)
    engine.run_once()
    archive = engine.applications.archive
    recorded_before = _archived(home)

    unrecorded = archive.draft(b"%PDF-1.7 a consent whose commit never happened\n%%EOF\n")
    archive.commit_draft(unrecorded)  # killed after the link, before the commit
    young = archive.draft(b"%PDF-1.7 an issuer at work right now\n%%EOF\n")
    [eoi_sha] = recorded_before
    left_of_winner = archive.draft(archive.get(eoi_sha))  # killed after the commit
    old = time.time() - DRAFT_MAX_AGE_S - 1
    for draft in (unrecorded, left_of_winner):
        os.utime(draft.path, (old, old))

    assert engine.applications.sweep_drafts() == 2
    assert _archived(home) == recorded_before
    assert [p.name for p in archive.drafts.iterdir()] == [young.path.name]
    assert archive.get(eoi_sha)
    engine.close()
