"""Drop folders lead nowhere else; files that cannot be read, claimed or named stop nothing.

Real folders, real links, FIFOs, sockets and devices, a real watcher and a real database;
permissions are made real for root by dropping its override capabilities (setpriv) in a
subprocess, or, where a test needs the intake in this process, by making a file immutable
(``chattr +i``: not even root may move it).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STRICT
from tests.eoi_files import broken_pdf, filled_eoi
from tests.processes import consentflow, wait_for, without_override
from workflow.config import load_settings
from workflow.engine import Engine
from workflow.intake import Intake
from workflow.store import Store

PRIVATE_BYTES = b"%PDF-1.7\nroot's private file, never to be read by consentflow\n%%EOF\n"


def settings_for(home: Path, database_url: str, **intake: Any) -> Any:
    """Settings for a test home: short stability, given database."""
    values = {"stability_ms": 200, "rescan_interval_s": 2, **intake}
    return load_settings(home, database={"url": database_url}, intake=values)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite file: these tests are about files, and the database is not their subject."""
    return f"sqlite:///{tmp_path / 'consentflow.db'}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home with an inbox/ and a signed/ folder."""
    path = tmp_path / "home"
    (path / "inbox").mkdir(parents=True)
    (path / "signed").mkdir()
    return path


@pytest.fixture
def private_file(tmp_path: Path) -> Path:
    """A file outside the home, root's and 0640: what a link in a drop folder points at."""
    path = tmp_path / "elsewhere" / "eoi.pdf"
    path.parent.mkdir()
    path.write_bytes(PRIVATE_BYTES)
    path.chmod(0o640)
    return path


@contextmanager
def odd_entries(home: Path, private_file: Path) -> Iterator[None]:
    """A link, a FIFO, a socket and a device, all named *.pdf, and a folder named *.pdf."""
    (home / "inbox" / "linked.pdf").symlink_to(private_file)
    (home / "signed" / "linked.pdf").symlink_to(private_file)
    os.mkfifo(home / "inbox" / "pipe.pdf")
    os.mknod(home / "inbox" / "null.pdf", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (home / "inbox" / "folder.pdf").mkdir()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(home / "inbox" / "sock.pdf"))
    try:
        yield
    finally:
        sock.close()


ODD = {
    ("inbox", "linked.pdf"): "symbolic link",
    ("signed", "linked.pdf"): "symbolic link",
    ("inbox", "pipe.pdf"): "FIFO (named pipe)",
    ("inbox", "null.pdf"): "character device",
    ("inbox", "sock.pdf"): "socket",
}


def _assert_odd_entries_set_aside(home: Path, store: Store, private_file: Path) -> None:
    """Each odd entry is in failed/ as itself, with its report; nothing was read through it."""
    reports = {}
    for path in (home / "failed").glob("*.error.json"):
        report = json.loads(path.read_text())
        reports[(report["folder"], report["file"])] = report
    odd = {key: report for key, report in reports.items() if report["code"] == "not_a_file"}
    assert {key: report["detail"] for key, report in odd.items()} == ODD
    for report in odd.values():
        assert report["sha256"] is None
    links = [p for p in (home / "failed").iterdir() if p.is_symlink()]
    assert len(links) == 2 and all(p.readlink() == private_file for p in links)
    assert private_file.read_bytes() == PRIVATE_BYTES and stat.S_IMODE(
        private_file.stat().st_mode
    ) == (0o640)
    archived = [p.read_bytes() for p in (home / "archive").rglob("*") if p.is_file()]
    assert PRIVATE_BYTES not in archived
    events = [e for e in store.events() if e.kind == "file_failed"]
    assert sorted((e.data["folder"], e.data["file"]) for e in events) == sorted(ODD)
    assert (home / "inbox" / "folder.pdf").is_dir()  # a folder is left alone
    assert sorted(p.name for p in (home / "inbox").iterdir()) == [
        ".processing",
        "folder.pdf",
    ]
    assert [p.name for p in (home / "signed").iterdir()] == [".processing"]
    assert not [item for item in store.items() if item.status == "claimed"]


def test_once_takes_only_regular_files(home: Path, database_url: str, private_file: Path) -> None:
    """``run --once``: a link, FIFO, socket or device named *.pdf goes to failed/ as itself,
    never read through; a folder stays; the regular file beside them is processed."""
    with odd_entries(home, private_file):
        (home / "inbox" / "real.pdf").write_bytes(filled_eoi(org_name="Real Network"))
        engine = Engine(settings_for(home, database_url))
        engine.run_once()
        assert [app.org_name for app in engine.store.applications()] == ["Real Network"]
        _assert_odd_entries_set_aside(home, engine.store, private_file)
        engine.close()


@pytest.mark.parametrize("polling_interval_s", [0.0, 0.3], ids=["events", "polling"])
def test_watching_takes_only_regular_files(
    home: Path, database_url: str, private_file: Path, polling_interval_s: float
) -> None:
    """The running engine (native events, or polling): the same, for entries that appear
    while it watches."""
    settings = settings_for(home, database_url, polling_interval_s=polling_interval_s)
    engine = Engine(settings)
    stop = threading.Event()
    thread = threading.Thread(target=engine.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_for((home / "inbox" / ".processing").is_dir)
        time.sleep(0.5)
        with odd_entries(home, private_file):
            (home / "inbox" / "real.pdf").write_bytes(filled_eoi(org_name="Real Network"))
            assert wait_for(lambda: len(list((home / "failed").glob("*.error.json"))) == 5)
            assert wait_for(lambda: len(engine.store.applications()) == 1)
    finally:
        stop.set()
        thread.join(20)
    _assert_odd_entries_set_aside(home, engine.store, private_file)
    engine.close()


@pytest.mark.parametrize("folder", ["inbox", "signed"])
def test_processing_folder_that_is_a_link_refuses_to_start(
    home: Path, tmp_path: Path, folder: str
) -> None:
    """``.processing`` linked to another folder: ``run`` exits 78 naming it, touching nothing."""
    elsewhere = tmp_path / "elsewhere-processing"
    elsewhere.mkdir()
    (elsewhere / "notes.txt").write_text("not for consentflow")
    (elsewhere / "1a2b__orphan.pdf").write_bytes(filled_eoi())
    (home / folder / ".processing").symlink_to(elsewhere)
    result = consentflow(home, "run", "--once")
    assert result.returncode == 78, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"{home / folder / '.processing'} is a symbolic link, not a folder" in result.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["1a2b__orphan.pdf", "notes.txt"]


def test_recovery_sets_aside_a_link_in_processing(
    home: Path, database_url: str, private_file: Path
) -> None:
    """A link found in ``.processing/`` (no ledger row) is recovered as itself: moved to
    failed/, its target never read into archive/."""
    (home / "inbox" / ".processing").mkdir()
    (home / "inbox" / ".processing" / "1a2b__orphan.pdf").symlink_to(private_file)
    engine = Engine(settings_for(home, database_url))
    engine.start()
    assert [p.name for p in (home / "inbox" / ".processing").iterdir()] == []
    [link] = (home / "failed").glob("orphan*.pdf")
    assert link.is_symlink() and link.readlink() == private_file
    report = json.loads(link.with_name(link.name + ".error.json").read_text())
    assert (report["code"], report["detail"]) == ("not_a_file", "symbolic link")
    assert not [p for p in (home / "archive").rglob("*") if p.is_file()]
    assert engine.store.applications() == []
    engine.close()


def test_retry_never_moves_a_link_or_a_report(home: Path, private_file: Path) -> None:
    """``retry`` refuses a report and a link (exit 1, nothing moves); ``--all`` takes only
    regular files."""
    made = consentflow(home, "db", "upgrade")  # a home: retry refuses a folder without one
    assert made.returncode == 0, made.stderr
    failed = home / "failed"
    failed.mkdir(exist_ok=True)
    (failed / "x.pdf").write_bytes(b"%PDF-1.7\n%%EOF\n")
    (failed / "x.pdf.error.json").write_text(json.dumps({"code": "damaged", "folder": "inbox"}))
    (failed / "l.pdf").symlink_to(private_file)
    (failed / "l.pdf.error.json").write_text(json.dumps({"code": "not_a_file"}))
    before = sorted(p.name for p in failed.iterdir())

    report = consentflow(home, "retry", "x.pdf.error.json")
    assert report.returncode == 1, report.stderr
    assert "x.pdf.error.json is the report of a failed file" in report.stderr
    link = consentflow(home, "retry", "l.pdf")
    assert link.returncode == 1, link.stderr
    assert "l.pdf in " in link.stderr and "is a symbolic link, not a file" in link.stderr
    assert sorted(p.name for p in failed.iterdir()) == before
    assert sorted(p.name for p in (home / "inbox").iterdir()) == []

    every = consentflow(home, "retry", "--all")
    assert every.returncode == 0, every.stderr
    assert every.stdout.split() == ["retrying", "x.pdf"]
    assert sorted(p.name for p in failed.iterdir()) == ["l.pdf", "l.pdf.error.json"]
    assert (failed / "l.pdf").is_symlink()


def test_unreadable_files_go_to_failed_and_stop_nothing(home: Path) -> None:
    """Mode-000 files (in inbox/, and claimed in .processing/ by a killed run) with
    permissions made real: each goes to failed/ as unreadable with one event; recovery goes
    on to restore a lost outbox copy; the next file is processed; a restart is clean."""
    prefix = without_override()
    env = {"CONSENTFLOW_REVIEW__MODE": "auto"}
    (home / "inbox" / "first.pdf").write_bytes(filled_eoi(org_name="First Network"))
    first = consentflow(home, "run", "--once", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    [consent] = (home / "outbox").iterdir()
    consent.unlink()  # lost: the next start must put it back
    secret = home / "inbox" / "secret.pdf"
    secret.write_bytes(filled_eoi(org_name="Secret Network"))
    orphan = home / "inbox" / ".processing" / "1a2b__orphan.pdf"
    orphan.write_bytes(filled_eoi(org_name="Orphan Network"))
    (home / "inbox" / "zlast.pdf").write_bytes(filled_eoi(org_name="Last Network"))
    for path in (secret, orphan):
        path.chmod(0)

    run = consentflow(home, "run", "--once", env=env, prefix=prefix)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert consent.is_file(), "recovery stopped before restoring the outbox copy"
    store = Store(f"sqlite:///{home / 'cf.db'}")
    assert sorted(app.org_name for app in store.applications()) == [
        "First Network",
        "Last Network",
    ]
    failed = {
        json.loads(p.read_text())["file"]: json.loads(p.read_text())
        for p in (home / "failed").glob("*.error.json")
    }
    assert set(failed) == {"secret.pdf", "orphan.pdf"}
    assert {report["code"] for report in failed.values()} == {"unreadable"}
    assert all(report["sha256"] is None for report in failed.values())
    events = [e.data["file"] for e in store.events() if e.kind == "file_failed"]
    assert sorted(events) == ["orphan.pdf", "secret.pdf"]
    assert [p.name for p in (home / "inbox" / ".processing").iterdir()] == []
    store.close()

    again = consentflow(home, "run", "--once", env=env, prefix=prefix)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr


def test_long_names_in_any_script_are_claimed(home: Path, database_url: str) -> None:
    """A 120-letter Greek name (240 bytes) is claimed, processed, and fails with its report."""
    greek = "Δ" * 120
    (home / "inbox" / f"{greek}.pdf").write_bytes(filled_eoi(org_name="Greek Network"))
    (home / "inbox" / f"{greek}ω.pdf").write_bytes(broken_pdf(filled_eoi()))
    engine = Engine(settings_for(home, database_url))
    engine.run_once()
    assert [app.org_name for app in engine.store.applications()] == ["Greek Network"]
    [report] = (home / "failed").glob("*.error.json")
    assert json.loads(report.read_text())["file"] == f"{greek}ω.pdf"
    assert len(report.name.encode()) <= 255
    assert sorted(p.name for p in (home / "inbox").iterdir()) == [".processing"]
    engine.close()


def test_file_of_another_owner_in_a_sticky_inbox(home: Path) -> None:
    """A sticky-bit inbox of another user, holding that user's file: it cannot be claimed.
    ``run --once`` says so in one log line, goes on with the next file and exits 0; the file
    stays, and ``status`` shows it."""
    prefix = without_override()
    inbox = home / "inbox"
    (inbox / "theirs.pdf").write_bytes(filled_eoi(org_name="Their Network"))
    (inbox / "ours.pdf").write_bytes(filled_eoi(org_name="Our Network"))
    os.chown(inbox / "theirs.pdf", 65534, 65534)
    os.chown(inbox, 65534, 65534)
    inbox.chmod(0o1777)
    try:
        run = consentflow(home, "run", "--once", prefix=prefix)
        status = consentflow(home, "status", prefix=prefix)
    finally:
        inbox.chmod(0o755)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    said = [line for line in run.stderr.splitlines() if f"cannot take {inbox}" in line]
    assert len(said) == 1, run.stderr[-3000:]
    assert "Operation not permitted" in said[0] and "sticky bit" in said[0]
    assert (inbox / "theirs.pdf").is_file()
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert any(line.startswith("SUP-") and "Our Network" in line for line in lines)
    [line] = [line for line in lines if "theirs.pdf" in line]
    assert line.startswith("inbox/theirs.pdf  unclaimable: ")
    assert "Operation not permitted" in line


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Make files immutable (``chattr +i``: not even root may rename them); undone after."""
    chattr = shutil.which("chattr")
    if chattr is None or os.geteuid() != 0:
        message = "chattr (e2fsprogs) as root is needed to make a file unmovable"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    made: list[Path] = []

    def make(path: Path) -> None:
        result = subprocess.run([chattr, "+i", str(path)], capture_output=True, check=False)
        if result.returncode != 0:
            pytest.skip(f"this filesystem has no immutable flag: {result.stderr!r}")
        made.append(path)

    yield make
    for path in made:
        subprocess.run([chattr, "-i", str(path)], check=False)


def test_unclaimable_file_is_said_at_most_hourly(
    home: Path,
    database_url: str,
    immutable: Callable[[Path], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file that cannot be moved: one log line per hour however often it is offered, a
    notice for status while it is there, and none once it is gone."""
    caplog.set_level(logging.INFO, logger="consentflow.intake")
    settings = settings_for(home, database_url)
    store = Store(settings.database_url)
    store.ensure_schema()
    now = [1000.0]
    intake = Intake(
        store,
        folders={"inbox": home / "inbox"},
        failed_dir=home / "failed",
        processors={},
        settings=settings.intake,
        clock=lambda: now[0],
    )
    intake.prepare()
    stuck = home / "inbox" / "stuck.pdf"
    stuck.write_bytes(filled_eoi())
    immutable(stuck)

    for _ in range(5):
        intake.offer(stuck)
        now[0] += 600
    intake.offer(stuck)  # 3000 s after the first: still the first hour
    said = [r for r in caplog.records if "cannot take" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.ERROR
    now[0] += 700
    intake.offer(stuck)
    assert len([r for r in caplog.records if "cannot take" in r.getMessage()]) == 2
    [notice] = intake.notices()
    assert (notice.folder, notice.name, notice.kind) == ("inbox", "stuck.pdf", "unclaimable")
    assert stuck.is_file()
    assert store.items() == []
    subprocess.run(["chattr", "-i", str(stuck)], check=True)
    stuck.unlink()
    intake.tick()
    assert intake.notices() == []
    intake.close()
    store.close()
