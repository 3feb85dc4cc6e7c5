"""The engine end to end on real folders, a real database and the real watcher."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.eoi_files import broken_pdf, filled_eoi, invalid_eoi
from tests.processes import consentflow, wait_for
from workflow.archive import TEMP_SUFFIX
from workflow.config import Settings, load_settings
from workflow.engine import Engine
from workflow.intake import Claimed, Intake, PermanentError
from workflow.states import State
from workflow.store import Store, sha256_file


def make_settings(home: Path, database_url: str, **overrides: Any) -> Settings:
    """Settings for a test home: fast stability window, given database and review mode."""
    intake = {"stability_ms": 200, "rescan_interval_s": 2, "incomplete_grace_s": 5}
    intake.update(overrides.pop("intake", {}))
    return load_settings(home, database={"url": database_url}, intake=intake, **overrides)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home folder."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def running(home: Path, database_url: str) -> Iterator[Callable[..., Engine]]:
    """Start an engine in a thread (``review`` mode and intake options as arguments)."""
    threads: list[tuple[threading.Thread, threading.Event, Engine]] = []

    def start(**overrides: Any) -> Engine:
        engine = Engine(make_settings(home, database_url, **overrides))
        stop = threading.Event()
        thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
        thread.start()
        threads.append((thread, stop, engine))
        assert wait_for((home / "inbox" / ".processing").is_dir)
        return engine

    yield start
    for thread, stop, engine in threads:
        stop.set()
        thread.join(10)
        engine.close()


def states(store: Store) -> dict[str, str]:
    """Organisation name → state of every application."""
    return {app.org_name: app.state for app in store.applications()}


# -- run --once --------------------------------------------------------------------------


def test_once_accounts_for_every_kind_of_file(home: Path, database_url: str) -> None:
    """Valid, invalid, duplicate and broken files each end in exactly one place."""
    inbox = home / "inbox"
    inbox.mkdir()
    valid = filled_eoi(org_name="Valid Network")
    (inbox / "valid.pdf").write_bytes(valid)
    (inbox / "copy of valid.pdf").write_bytes(valid)
    (inbox / "invalid.pdf").write_bytes(invalid_eoi(org_name="Invalid Network"))
    (inbox / "broken.pdf").write_bytes(broken_pdf(valid))
    (inbox / "notes.txt").write_text("not for us")

    engine = Engine(make_settings(home, database_url))
    engine.run_once()

    assert states(engine.store) == {
        "Valid Network": State.AWAITING_REVIEW,
        "Invalid Network": State.INVALID,
    }
    assert sorted(path.name for path in inbox.iterdir()) == [".processing", "notes.txt"]
    assert list((inbox / ".processing").iterdir()) == []
    failed = sorted(path.name for path in (home / "failed").iterdir())
    assert failed == ["broken.pdf", "broken.pdf.error.json"]
    report = json.loads((home / "failed" / "broken.pdf.error.json").read_text())
    assert report["code"] == "damaged"
    duplicates = [event for event in engine.store.events() if event.kind == "duplicate"]
    assert len(duplicates) == 1
    assert {item.status for item in engine.store.items()} == {"done", "duplicate", "failed"}
    assert engine.store.verify_chain().ok
    engine.close()


def test_invalid_application_keeps_every_problem(home: Path, database_url: str) -> None:
    """An invalid EOI is recorded with all its problems, in the form's language."""
    (home / "inbox").mkdir()
    (home / "inbox" / "x.pdf").write_bytes(invalid_eoi())
    engine = Engine(make_settings(home, database_url))
    engine.run_once()
    [app] = engine.store.applications()
    assert app.state == State.INVALID
    assert {(p["field"], p["code"]) for p in app.problems} == {
        ("contact_email", "email"),
        ("commit_media", "unchecked"),
    }
    engine.close()


def test_auto_review_issues_the_consent(home: Path, database_url: str) -> None:
    """review = auto: an EOI without findings gets its consent in outbox/, archived and hashed."""
    (home / "inbox").mkdir()
    (home / "inbox" / "eoi.pdf").write_bytes(filled_eoi())
    engine = Engine(make_settings(home, database_url, review={"mode": "auto"}))
    engine.run_once()
    [app] = engine.store.applications()
    assert app.state == State.CONSENT_ISSUED
    consent = (home / "outbox" / f"{app.reference}.pdf").read_bytes()
    assert app.issued_length == len(consent)
    assert engine.applications.archive.get(app.issued_sha256 or "") == consent
    engine.close()


def test_findings_hold_the_application_for_the_office(home: Path, database_url: str) -> None:
    """review = auto still leaves an application with findings to the office."""
    (home / "inbox").mkdir()
    (home / "inbox" / "eoi.pdf").write_bytes(filled_eoi(org_type="company", member_count="1"))
    engine = Engine(make_settings(home, database_url, review={"mode": "auto"}))
    engine.run_once()
    [app] = engine.store.applications()
    assert app.state == State.AWAITING_REVIEW
    assert {f["code"] for f in app.findings} == {"org_type_ineligible", "too_few_members"}
    assert list((home / "outbox").iterdir()) == []
    engine.close()


def test_auto_review_at_start_issues_what_was_left_awaiting(home: Path, database_url: str) -> None:
    """Applications recorded but not issued (recorded under manual review, or a crash between
    recording and issuing) get their consent when an engine with review = auto starts; an
    application with findings still waits for the office."""
    (home / "inbox").mkdir()
    (home / "inbox" / "clean.pdf").write_bytes(filled_eoi(org_name="Clean Network"))
    (home / "inbox" / "held.pdf").write_bytes(
        filled_eoi(org_name="Held Network", org_type="company", member_count="1")
    )
    manual = Engine(make_settings(home, database_url))
    manual.run_once()
    assert {app.state for app in manual.store.applications()} == {State.AWAITING_REVIEW}
    manual.close()

    engine = Engine(make_settings(home, database_url, review={"mode": "auto"}))
    engine.start()
    states = {app.org_name: app.state for app in engine.store.applications()}
    assert states == {"Clean Network": State.CONSENT_ISSUED, "Held Network": State.AWAITING_REVIEW}
    clean = next(app for app in engine.store.applications() if app.org_name == "Clean Network")
    assert [p.name for p in (home / "outbox").iterdir()] == [f"{clean.reference}.pdf"]
    engine.close()


def test_unexpected_exception_goes_to_failed_and_intake_goes_on(
    home: Path, database_url: str
) -> None:
    """A processor that raises sends its file to failed/ with error.json; the next goes on."""
    settings = make_settings(home, database_url)
    store = Store(settings.database_url)
    store.ensure_schema()
    seen: list[str] = []

    def processor(claimed: Claimed) -> str:
        if claimed.original_name == "bad.pdf":
            raise RuntimeError("bug in a processor")
        with store.tx() as tx:
            item = tx.get_item(claimed.item_id)
            assert item is not None
            tx.finish_item(item, status="done", outcome="ok", sha256=None)
        seen.append(claimed.original_name)
        return "ok"

    inbox = home / "inbox"
    intake = Intake(
        store,
        folders={"inbox": inbox},
        failed_dir=home / "failed",
        processors={"inbox": processor},
        settings=settings.intake,
    )
    inbox.mkdir()
    intake.prepare()
    for name in ("bad.pdf", "good.pdf"):
        (inbox / name).write_bytes(filled_eoi())
        intake.offer(inbox / name)
    assert seen == ["good.pdf"]
    report = json.loads((home / "failed" / "bad.pdf.error.json").read_text())
    assert report["code"] == "internal_error"
    assert "bug in a processor" in report["detail"]
    assert (home / "failed" / "bad.pdf").is_file()
    store.close()


# -- crash recovery ---------------------------------------------------------------------------


def _rejecting_intake(home: Path, store: Store, settings: Settings) -> Intake:
    def processor(claimed: Claimed) -> str:
        raise PermanentError("damaged", "The file is damaged.")

    intake = Intake(
        store,
        folders={"inbox": home / "inbox"},
        failed_dir=home / "failed",
        processors={"inbox": processor},
        settings=settings.intake,
    )
    intake.prepare()
    return intake


@pytest.mark.parametrize("same_item", [True, False])
def test_failure_killed_before_its_commit_keeps_its_name(
    home: Path, database_url: str, same_item: bool
) -> None:
    """A report left by a kill between error.json and the commit is this file's, not a rival.

    The state a SIGKILL leaves there: ``failed/bad.pdf.error.json`` written, the file
    still claimed in ``.processing/``. Resumed, the file joins its own report as
    ``bad.pdf``; a report of another item keeps its name and the file becomes ``bad-2.pdf``.
    """
    settings = make_settings(home, database_url)
    store = Store(settings.database_url)
    store.ensure_schema()
    intake = _rejecting_intake(home, store, settings)
    (home / "inbox" / "bad.pdf").write_bytes(b"%PDF-1.7\nnot really\n%%EOF\n")
    claimed = intake.claim("inbox", home / "inbox" / "bad.pdf")
    assert claimed is not None
    left_behind = {
        "code": "damaged",
        "item": claimed.item_id if same_item else claimed.item_id + 1,
        "sha256": sha256_file(claimed.path),
    }
    (home / "failed").mkdir(exist_ok=True)
    (home / "failed" / "bad.pdf.error.json").write_text(json.dumps(left_behind))

    intake._process(claimed)

    failed = sorted(path.name for path in (home / "failed").iterdir())
    if same_item:
        assert failed == ["bad.pdf", "bad.pdf.error.json"]
    else:
        assert failed == ["bad-2.pdf", "bad-2.pdf.error.json", "bad.pdf.error.json"]
    [item] = store.items()
    assert (item.status, item.outcome) == ("failed", failed[0])
    store.close()


def test_start_removes_temporaries_of_a_killed_write(home: Path, database_url: str) -> None:
    """A write killed before its rename leaves a hidden temporary: the next start removes it."""
    settings = make_settings(home, database_url)
    stale = home / "archive" / "ab" / f".abcd.1234{TEMP_SUFFIX}"
    fresh = home / "outbox" / f".SUP-2026-00001.pdf.5678{TEMP_SUFFIX}"
    for path in (stale, fresh):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"half a consent")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))

    engine = Engine(settings)
    engine.start()
    engine.close()

    assert not stale.exists()
    assert fresh.exists(), "a young temporary may be another worker's write in progress"


def test_stop_is_honoured_between_files_of_a_backlog(home: Path, database_url: str) -> None:
    """SIGTERM's stop ends the loop after the current file, not after the whole backlog."""
    inbox = home / "inbox"
    inbox.mkdir()
    for number in range(40):
        (inbox / f"eoi-{number:02}.pdf").write_bytes(filled_eoi(org_name=f"Network {number}"))
    engine = Engine(make_settings(home, database_url))
    engine.store.ensure_schema()
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    assert wait_for(lambda: len(engine.store.applications()) >= 1, timeout=60)
    stop.set()
    thread.join(60)
    assert not thread.is_alive()
    left = sorted(inbox.glob("*.pdf"))
    processed = len(engine.store.applications())
    assert processed + len(left) == 40
    assert len(left) > 30, f"{processed} files processed after the stop"
    assert list((inbox / ".processing").iterdir()) == []
    engine.close()


class _CountingStop:
    """A stop signal that remembers when it was asked: the loop asks once a pass."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self.flag = threading.Event()

    def is_set(self) -> bool:
        self.asked.append(time.monotonic())
        return self.flag.is_set()


def test_an_idle_loop_wakes_once_a_second(home: Path, database_url: str) -> None:
    """With nothing to do, the loop waits up to a second between passes, not a fifth of
    one: every wake-up costs CPU (on a virtual machine here, 2 % of a core at five a
    second). It still passes at least every second or so, and stops when asked."""
    engine = Engine(make_settings(home, database_url))
    stop = _CountingStop()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    assert wait_for((home / "inbox" / ".processing").is_dir)
    time.sleep(4.5)
    stop.flag.set()
    stopped = time.monotonic()
    thread.join(10)
    assert not thread.is_alive()
    passes = [at for at in stop.asked if stopped - 3.0 <= at < stopped]
    assert 2 <= len(passes) <= 6, f"{len(passes)} passes of the loop in 3 s of idling"
    engine.close()


def test_restart_finishes_files_left_in_processing(home: Path, database_url: str) -> None:
    """A file claimed but not recorded, and one recorded as done, are finished at start.

    Both are what a crash of the machine can leave: a claim's transaction is not flushed
    to disk, nor is the removal of a finished file (see `Store.tx`)."""
    engine = Engine(make_settings(home, database_url))
    engine.start()
    processing = home / "inbox" / ".processing"
    done = filled_eoi(org_name="Done Network")
    (home / "inbox" / "done.pdf").write_bytes(done)
    engine.run_once()
    [finished] = engine.store.items()
    assert finished.status == "done" and finished.claimed_name is not None
    (processing / finished.claimed_name).write_bytes(done)  # its removal undone
    (processing / "1a2b__orphan.pdf").write_bytes(filled_eoi(org_name="Orphan Network"))
    engine.close()

    engine = Engine(make_settings(home, database_url))
    engine.start()
    engine.run_once()
    assert states(engine.store) == {
        "Done Network": State.AWAITING_REVIEW,
        "Orphan Network": State.AWAITING_REVIEW,
    }
    assert list(processing.iterdir()) == []
    assert sorted(item.original_name for item in engine.store.items()) == [
        "done.pdf",
        "orphan.pdf",
    ]
    assert not any(e.kind == "duplicate" for e in engine.store.events())
    engine.close()


def test_only_the_claim_commits_without_waiting_for_the_disk(home: Path, database_url: str) -> None:
    """A file's claim is committed without a flush to disk, its outcome with one: the
    statement that turns the flush off comes in the claim's transaction alone."""
    engine = Engine(make_settings(home, database_url))
    engine.start()
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(" ".join(statement.split()[:3]).upper())

    event.listen(engine.store.engine, "before_cursor_execute", record)
    try:
        (home / "inbox" / "a.pdf").write_bytes(filled_eoi(org_name="Claimed Network"))
        engine.run_once()
    finally:
        event.remove(engine.store.engine, "before_cursor_execute", record)
    engine.close()
    lazy = (
        "PRAGMA SYNCHRONOUS=NORMAL"
        if database_url.startswith("sqlite")
        else "SET LOCAL SYNCHRONOUS_COMMIT"
    )
    claim = sent.index("INSERT INTO INTAKE_ITEMS")
    assert sent[:claim].count(lazy) == 1
    assert lazy not in sent[claim:]
    assert "INSERT INTO APPLICATIONS" in sent[claim:]


# -- the watcher, live ------------------------------------------------------------------------


def _slow_write(path: Path, data: bytes, seconds: float) -> None:
    chunks = 10
    step = len(data) // chunks + 1
    with path.open("wb") as handle:
        for index in range(chunks):
            handle.write(data[index * step : (index + 1) * step])
            handle.flush()
            time.sleep(seconds / chunks)


def test_every_way_of_dropping_a_file_is_processed_once(
    running: Callable[..., Engine], home: Path, tmp_path: Path
) -> None:
    """cp, mv, write-then-rename and a 3 s chunked write: each processed once, never early."""
    engine = running(review={"mode": "auto"})
    inbox = home / "inbox"
    outside = tmp_path / "outside"
    outside.mkdir()

    (outside / "a.pdf").write_bytes(filled_eoi(org_name="Copied Network"))
    shutil.copyfile(outside / "a.pdf", inbox / "a.pdf")

    (outside / "b.pdf").write_bytes(filled_eoi(org_name="Moved Network"))
    os.rename(outside / "b.pdf", inbox / "b.pdf")

    (inbox / ".c.pdf.part").write_bytes(filled_eoi(org_name="Renamed Network"))
    os.rename(inbox / ".c.pdf.part", inbox / "c.pdf")

    writer = threading.Thread(
        target=_slow_write, args=(inbox / "d.pdf", filled_eoi(org_name="Slow Network"), 3.0)
    )
    writer.start()
    writer.join()

    names = {"Copied Network", "Moved Network", "Renamed Network", "Slow Network"}
    assert wait_for(lambda: set(states(engine.store)) == names)
    assert wait_for(lambda: len(list((home / "outbox").iterdir())) == 4)
    assert set(states(engine.store).values()) == {State.CONSENT_ISSUED}
    assert len(engine.store.items()) == 4
    assert all(item.status == "done" for item in engine.store.items())
    assert not any(item.status == "failed" for item in engine.store.items())


def test_same_bytes_twice_is_one_application(running: Callable[..., Engine], home: Path) -> None:
    """The second copy of the same file is a duplicate event and leaves the inbox."""
    engine = running()
    data = filled_eoi(org_name="Twice Network")
    (home / "inbox" / "first.pdf").write_bytes(data)
    assert wait_for(lambda: len(engine.store.applications()) == 1)
    (home / "inbox" / "second.pdf").write_bytes(data)
    assert wait_for(lambda: any(e.kind == "duplicate" for e in engine.store.events()))
    assert wait_for(lambda: not (home / "inbox" / "second.pdf").exists())
    assert len(engine.store.applications()) == 1


def test_files_present_at_start_are_processed(running: Callable[..., Engine], home: Path) -> None:
    """Files already in the inbox when the engine starts are processed."""
    (home / "inbox").mkdir()
    (home / "inbox" / "early.pdf").write_bytes(filled_eoi(org_name="Early Network"))
    engine = running()
    assert wait_for(lambda: states(engine.store) == {"Early Network": State.AWAITING_REVIEW})


def test_polling_mode_processes_files(running: Callable[..., Engine], home: Path) -> None:
    """With polling_interval_s > 0 files are found without native events."""
    engine = running(intake={"polling_interval_s": 0.3})
    (home / "inbox" / "polled.pdf").write_bytes(filled_eoi(org_name="Polled Network"))
    assert wait_for(lambda: states(engine.store) == {"Polled Network": State.AWAITING_REVIEW})


@pytest.mark.parametrize("how", ["renamed", "closed"])
def test_truncated_pdf_confirmed_by_its_writer_fails_at_once(
    running: Callable[..., Engine], home: Path, how: str
) -> None:
    """A file renamed into the inbox, or closed after writing, is whole by its writer's
    word: a truncated PDF goes to failed/ as damaged at once, not after the grace."""
    engine = running(intake={"incomplete_grace_s": 600})
    data = filled_eoi()
    cut = data[: len(data) // 2]  # no %%EOF: it looks unfinished
    if how == "renamed":
        (home / "inbox" / ".cut.pdf.part").write_bytes(cut)
        os.rename(home / "inbox" / ".cut.pdf.part", home / "inbox" / "cut.pdf")
    else:
        (home / "inbox" / "cut.pdf").write_bytes(cut)
    report = home / "failed" / "cut.pdf.error.json"
    assert wait_for(report.is_file, timeout=15)
    assert json.loads(report.read_text())["code"] == "damaged"
    assert engine.store.applications() == []


def test_unconfirmed_truncated_pdf_waits_for_the_grace_and_shows_in_status(
    running: Callable[..., Engine],
    home: Path,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A truncated PDF found by the start-up scan (no close or rename seen) waits for the
    grace, and a file seen being written waits for its close: status shows both while they
    wait; the log says when the wait will end and that it did; then the truncated one fails
    as damaged."""
    caplog.set_level(logging.INFO, logger="consentflow")
    grace = 12.0
    (home / "inbox").mkdir()
    data = filled_eoi(org_name="Slow Network")
    (home / "inbox" / "cut.pdf").write_bytes(data[: len(data) // 2])
    started = time.monotonic()
    running(intake={"incomplete_grace_s": grace})
    assert wait_for(lambda: any("via events" in r.getMessage() for r in caplog.records))
    writing = (home / "inbox" / "writing.pdf").open("wb")  # seen being written, not closed
    writing.write(data[:1000])
    writing.flush()
    try:
        lines: list[str] = []

        def both_shown() -> bool:
            status = consentflow(home, "status", database_url=database_url)
            lines[:] = [line for line in status.stdout.splitlines() if line.startswith("inbox/")]
            return len(lines) == 2

        assert wait_for(both_shown, timeout=grace), lines
        cut_line, writing_line = sorted(lines)
        assert cut_line.startswith("inbox/cut.pdf  waiting: not yet a whole PDF")
        assert "; taken as it is at " in cut_line
        assert writing_line.startswith("inbox/writing.pdf  waiting: it is open for writing")
    finally:
        writing.write(data[1000:])
        writing.close()
    report = home / "failed" / "cut.pdf.error.json"
    assert wait_for(report.is_file, timeout=grace + 15)
    assert time.monotonic() - started >= grace
    assert json.loads(report.read_text())["code"] == "damaged"
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        f"waiting for {home / 'inbox' / 'cut.pdf'}: not yet a whole PDF" in m
        and "it is processed as it is at " in m
        for m in messages
    )
    assert any(f"stopped waiting for {home / 'inbox' / 'cut.pdf'}" in m for m in messages)
    assert wait_for(lambda: not (home / "inbox" / "writing.pdf").exists())
    status = consentflow(home, "status", database_url=database_url)
    assert not [line for line in status.stdout.splitlines() if line.startswith("inbox/")]


def test_run_process_freezes_its_heap_and_collects_the_young_less_often() -> None:
    """What `consentflow run` does to the collector once started (in a process of its own:
    freezing is for a process that does nothing else)."""
    script = (
        "import gc; from workflow.engine import _freeze_heap, YOUNG_COLLECTION_EVERY as n; "
        "before = gc.get_threshold(); _freeze_heap(); "
        "print(gc.get_freeze_count() > 1000, gc.get_threshold() == (n, *before[1:]), n > 700)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]
