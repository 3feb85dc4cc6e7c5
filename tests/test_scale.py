"""Scale and faults: several workers on PostgreSQL, a killed worker, a database outage, a full
disk, and folders the engine must refuse — each burst ends with every file accounted for once.

The plain case uses the shared test server (``CONSENTFLOW_TEST_DATABASE_URL``, in a database
of this session's own); the fault cases start a throwaway server (``tests.pgserver``), which
the outage case stops and starts. Full disks and foreign filesystems are real tmpfs mounts,
so those tests need root (they skip otherwise, and fail under ``CONSENTFLOW_REQUIRE_TOOLS=1``).
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import text

from tests.conftest import STRICT
from tests.eoi_files import broken_pdf, filled_eoi, invalid_eoi
from tests.pgserver import PgServer, PgServerError
from tests.processes import without_override
from workflow.states import State
from workflow.store import Store

#: Filling a form with pypdf takes most of a second; variants are made by replacing this
#: fixed-width placeholder in the field's value, which keeps every byte offset valid.
_MARK = b"QQQQQQ"


def _unavailable(message: str) -> NoReturn:
    if STRICT:
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class Corpus:
    """Files to drop and what must become of them."""

    files: list[Path]
    sha256: dict[str, str]  # file name -> SHA-256
    valid: int  # distinct valid EOIs: each must get exactly one consent

    @property
    def distinct(self) -> set[str]:
        """SHA-256 of every distinct readable file: one application each."""
        return {sha for name, sha in self.sha256.items() if not name.startswith("broken")}

    @property
    def copies(self) -> int:
        """Readable files whose bytes were dropped before: one duplicate event each."""
        return len([n for n in self.sha256 if not n.startswith("broken")]) - len(self.distinct)

    @property
    def broken(self) -> list[str]:
        """Names of the damaged files: each must end in failed/."""
        return sorted(n for n in self.sha256 if n.startswith("broken"))


def _corpus(
    directory: Path, *, valid: int, invalid: int, copies: int, broken: int, seed: int
) -> Corpus:
    """Valid, invalid, byte-identical copies and damaged files, shuffled."""
    rng = random.Random(seed)
    directory.mkdir()
    valid_template = filled_eoi(org_name=f"Network {_MARK.decode()}")
    invalid_template = invalid_eoi(org_name=f"Invalid {_MARK.decode()}")
    assert valid_template.count(_MARK) == 1 and invalid_template.count(_MARK) == 1
    tag = secrets.randbelow(10**6)  # distinct bytes in each run: the archive is content-addressed
    valid_data = [
        valid_template.replace(_MARK, b"%06d" % ((tag + n) % 10**6)) for n in range(valid)
    ]
    contents: dict[str, bytes] = {}
    for n, data in enumerate(valid_data):
        contents[f"valid-{n:04d}.pdf"] = data
    for n in range(invalid):
        contents[f"invalid-{n:04d}.pdf"] = invalid_template.replace(_MARK, b"%06d" % n)
    for n in range(copies):
        contents[f"again-{n:04d}.pdf"] = valid_data[rng.randrange(valid)]
    for n in range(broken):
        contents[f"broken-{n:04d}.pdf"] = broken_pdf(valid_data[n % valid]) + str(n).encode()
    files = []
    for name, data in contents.items():
        files.append(directory / name)
        files[-1].write_bytes(data)
    rng.shuffle(files)
    sha256 = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    return Corpus(files, sha256, valid)


class _Dropper(threading.Thread):
    """Drops the corpus into the inbox as a script should: a hidden name, then a rename."""

    def __init__(self, files: list[Path], inbox: Path, interval: float) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.inbox = inbox
        self.interval = interval

    def run(self) -> None:
        for path in self.files:
            temp = self.inbox / f".{path.name}.part"
            shutil.copyfile(path, temp)
            os.rename(temp, self.inbox / path.name)
            time.sleep(self.interval)


def _env(database_url: str, **intake: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CONSENTFLOW_DATABASE__URL": database_url,
        "CONSENTFLOW_REVIEW__MODE": "auto",
        "CONSENTFLOW_INTAKE__STABILITY_MS": "200",
        "CONSENTFLOW_INTAKE__INCOMPLETE_GRACE_S": "2",
    }
    env.update({f"CONSENTFLOW_INTAKE__{key.upper()}": value for key, value in intake.items()})
    return env


def _start(home: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """A ``consentflow run`` process whose log goes to ``log``."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "workflow", "--home", str(home), "run", "--no-web", *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _running(
    home: Path, env: dict[str, str], logs: list[Path], *args: str
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One ``run`` process per log file, stopped (SIGTERM) when the block ends."""
    processes = [_start(home, env, log, *args) for log in logs]
    try:
        yield processes
    finally:
        for process in processes:
            _stop(process)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took, fail after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not reached in {timeout:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _settled(store: Store, corpus: Corpus) -> bool:
    """Every file has a final ledger row and every valid EOI has its consent."""
    items = store.items()
    final = [item for item in items if item.status in ("done", "duplicate", "failed")]
    issued = store.applications(State.CONSENT_ISSUED)
    return len(final) >= len(corpus.files) and len(issued) >= corpus.valid


def _wait_settled(store: Store, corpus: Corpus, timeout: float, logs: list[Path]) -> float:
    """Wait for the burst to finish; on timeout, say what is stuck and show the logs."""
    started = time.monotonic()
    while not _settled(store, corpus):
        if time.monotonic() - started > timeout:
            items = store.items()
            stuck = [
                f"{app.reference} {app.state} findings={app.findings}"
                for app in store.applications(State.AWAITING_REVIEW)
            ]
            claimed = [f"{i.original_name} ({i.attempts})" for i in items if i.status == "claimed"]
            final = len([i for i in items if i.status != "claimed"])
            tails = "\n".join(_tail(log, 25) for log in logs)
            pytest.fail(
                f"burst not finished in {timeout:.0f} s: {final}/{len(corpus.files)} final, "
                f"{len(store.applications(State.CONSENT_ISSUED))}/{corpus.valid} consents; "
                f"claimed {claimed[:10]}; awaiting_review {stuck[:10]}\n{tails}"
            )
        time.sleep(0.2)
    return time.monotonic() - started


def _wait_watching(logs: list[Path]) -> None:
    """Wait until every engine has started and watches its folders."""
    _wait_for(
        lambda: all("watching " in log.read_text(errors="replace") for log in logs),
        60,
        "the engines watching",
    )


def _tail(log: Path, lines: int) -> str:
    text_lines = log.read_text(errors="replace").splitlines()
    return f"--- {log.name}\n" + "\n".join(text_lines[-lines:])


def _count(logs: list[Path], pattern: str) -> int:
    regex = re.compile(pattern)
    return sum(len(regex.findall(log.read_text(errors="replace"))) for log in logs)


def _assert_accounted(home: Path, store: Store, corpus: Corpus, *, killed: bool = False) -> None:
    """Exactly-once in effect: every file in one final place, one consent per valid EOI.

    After a SIGKILL (``killed``) a failed file may carry a ``-2`` suffix and a dead writer's
    hidden temporary file may remain in ``archive/``; contents must still match exactly.
    """
    apps = store.applications()
    items = store.items()

    # Every file dropped has exactly one final ledger row, and nothing is left behind.
    final = [item for item in items if item.status in ("done", "duplicate", "failed")]
    assert sorted(item.original_name for item in final) == sorted(corpus.sha256)
    assert [item.original_name for item in items if item.status == "claimed"] == []
    assert list((home / "inbox" / ".processing").iterdir()) == []
    assert [p.name for p in (home / "inbox").iterdir()] == [".processing"]

    # One application per distinct readable file; duplicates and broken files accounted for.
    assert sorted(app.eoi_sha256 for app in apps) == sorted(corpus.distinct)
    assert len([item for item in items if item.status == "duplicate"]) == corpus.copies
    failed = sorted(p for p in (home / "failed").iterdir() if p.suffix == ".pdf")
    for path in failed:
        assert path.with_name(path.name + ".error.json").is_file()
    if killed:
        broken = sorted(corpus.sha256[name] for name in corpus.broken)
        assert sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in failed) == broken
    else:
        assert [p.name for p in failed] == corpus.broken

    # No consent issued twice: one consent document, event and outbox file per valid EOI.
    issued = [app for app in apps if app.state == State.CONSENT_ISSUED]
    assert len(issued) == corpus.valid
    assert len({app.issued_sha256 for app in issued}) == corpus.valid
    outbox = sorted(p.name for p in (home / "outbox").iterdir() if not p.name.startswith("."))
    assert outbox == sorted(f"{app.reference}.pdf" for app in issued)
    consent_events = [e for e in store.events() if e.to_state == State.CONSENT_ISSUED]
    assert len(consent_events) == corpus.valid
    with store.engine.connect() as connection:
        consents = connection.execute(
            text("SELECT count(*) FROM documents WHERE kind = 'consent'")
        ).scalar_one()
    assert consents == corpus.valid

    _assert_archive_matches(home, store, killed=killed)
    assert store.verify_chain().ok


def _assert_archive_matches(home: Path, store: Store, *, killed: bool = False) -> None:
    """Nothing is recorded that is not on disk: each document's bytes, whole, in archive/."""
    with store.engine.connect() as connection:
        rows = connection.execute(text("SELECT sha256, size FROM documents")).all()
    assert rows
    for sha256, size in rows:
        path = home / "archive" / sha256[:2] / sha256
        assert path.is_file(), f"documents row {sha256} has no archive file"
        data = path.read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (size, sha256)
    if not killed:
        hidden = [p.name for p in (home / "archive").rglob("*") if p.is_file() and p.name[0] == "."]
        assert hidden == [], "temporary archive files left behind"


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    return home


def _store(url: str) -> Store:
    """The test's view of the database, schema made first (``consentflow db upgrade``)."""
    store = Store(url)
    store.ensure_schema()
    return store


# -- PostgreSQL servers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server this module may stop and start at will."""
    try:
        server = PgServer()
    except PgServerError as exc:
        _unavailable(str(exc))
    try:
        server.start()
    except PgServerError as exc:
        server.close()
        _unavailable(str(exc))
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A new, empty database on the throwaway server."""
    return pg_server.create_database(f"scale_{secrets.token_hex(4)}")


@contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[None]:
    """A small tmpfs mounted on ``path`` for the block (root only); always unmounted."""
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        _unavailable(f"cannot mount a tmpfs on {path}: {result.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


# -- the tests -----------------------------------------------------------------------------


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_four_workers_on_postgresql_account_for_every_file(
    tmp_path: Path, database_url: str
) -> None:
    """``run --workers 4``, 300 files: each accounted for once, no consent twice, none lost."""
    home = _home(tmp_path)
    corpus = _corpus(tmp_path / "source", valid=200, invalid=40, copies=40, broken=20, seed=1)
    log = tmp_path / "workers.log"
    store = _store(database_url)
    started = time.monotonic()
    with _running(home, _env(database_url), [log], "--workers", "4"):
        dropper = _Dropper(corpus.files, home / "inbox", interval=0.005)
        dropper.start()
        _wait_settled(store, corpus, timeout=150, logs=[log])
        dropper.join()
    elapsed = time.monotonic() - started
    _assert_accounted(home, store, corpus)
    owners = {item.owner for item in store.items()}
    print(f"\n300 files by 4 workers in {elapsed:.1f} s ({300 / elapsed:.1f} files/s); "
          f"{len(owners)} lease owners")  # fmt: skip
    assert len(owners) >= 4, "the work was not shared between the four workers"
    store.close()


@pytest.mark.postgresql
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    "backlog",
    [False, True],
    ids=["steady-burst", "backlog"],
)
def test_sigkill_of_a_worker_is_resumed_within_the_lease(
    tmp_path: Path, database_url: str, backlog: bool
) -> None:
    """Two ``run`` processes; one is SIGKILLed mid-burst holding claims; the other finishes them
    within the lease time (a steady burst, or a backlog found at start)."""
    lease_s = 3.0
    home = _home(tmp_path)
    corpus = _corpus(tmp_path / "source", valid=50, invalid=10, copies=8, broken=6, seed=2)
    env = _env(database_url, lease_s=str(lease_s))
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    store = _store(database_url)
    dropper = _Dropper(corpus.files, home / "inbox", interval=0 if backlog else 0.08)
    if backlog:
        dropper.run()
    with _running(home, env, logs) as (victim, survivor):
        victim_owner = f"{socket.gethostname()}:{victim.pid}:"
        survivor_owner = f"{socket.gethostname()}:{survivor.pid}:"
        if not backlog:
            _wait_watching(logs)
            dropper.start()

        def victim_held() -> set[str]:
            """The victim's claims: ledger rows, and claims it renamed but had not recorded
            yet (its pid is in the claim name)."""
            held = {
                item.claimed_name
                for item in store.items("claimed")
                if (item.owner or "").startswith(victim_owner)
            }
            held |= {
                path.name
                for path in (home / "inbox" / ".processing").iterdir()
                if f".{victim.pid}." in path.name.partition("__")[0]
            }
            return held

        def victim_frozen_holding_work() -> bool:
            # Freeze the victim before looking, so that the claims seen are the claims it holds
            # when it dies (a claim seen while it runs may be finished before the SIGKILL).
            done = len([i for i in store.items() if i.status != "claimed"])
            if done < 10:
                return False
            victim.send_signal(signal.SIGSTOP)
            if victim_held():
                return True
            victim.send_signal(signal.SIGCONT)
            return False

        _wait_for(victim_frozen_holding_work, 60, "the victim holding a claimed file mid-burst")
        held = victim_held()
        victim.send_signal(signal.SIGKILL)
        killed, killed_at = time.monotonic(), datetime.now(UTC)
        victim.wait()
        assert held, "the victim was killed holding no claim"
        finished: dict[str, float] = {}

        def all_resumed() -> bool:
            for name in held - finished.keys():
                item = store.item_by_claim(name)
                if item is not None and item.status != "claimed":
                    finished[name] = time.monotonic() - killed
            return finished.keys() == held

        _wait_for(all_resumed, 60, "the victim's claims finished by the survivor")
        _wait_settled(store, corpus, timeout=60, logs=logs)
        assert survivor.poll() is None, _tail(logs[1], 40)
    for name in held:
        item = store.item_by_claim(name)
        assert item is not None and item.finished_at is not None
        # Resumed by the survivor, unless the victim's last commit reached the server as it
        # died (then the survivor only finished the file's move, which the ledger already had).
        assert (item.owner or "").startswith(survivor_owner) or (
            item.finished_at < killed_at + timedelta(seconds=1)
        ), f"{item.original_name} finished by {item.owner} at {item.finished_at}"
    _assert_accounted(home, store, corpus, killed=True)
    store.close()
    slowest = max(finished.values())
    times = ", ".join(f"{seconds:.2f}" for seconds in sorted(finished.values()))
    print(f"\nvictim held {len(held)} claim(s); the survivor finished them in {times} s "
          f"(lease {lease_s:g} s)")  # fmt: skip
    assert slowest <= lease_s, f"the victim's work took {slowest:.2f} s to resume"


@pytest.mark.postgresql
def test_postgresql_outage_mid_burst_loses_and_duplicates_nothing(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    """The database stops for 10 s mid-burst: workers wait, reconnect, and finish the burst."""
    home = _home(tmp_path)
    corpus = _corpus(tmp_path / "source", valid=50, invalid=10, copies=8, broken=6, seed=3)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    store = _store(pg_url)
    with _running(home, _env(pg_url, retry_backoff_s="1"), logs) as processes:
        _wait_watching(logs)
        dropper = _Dropper(corpus.files, home / "inbox", interval=0.08)
        dropper.start()
        _wait_for(
            lambda: len([i for i in store.items() if i.status != "claimed"]) >= 15,
            60,
            "15 files processed before the outage",
        )
        pg_server.stop()
        time.sleep(10)
        pg_server.start()
        restarted = time.monotonic()
        took = _wait_settled(store, corpus, timeout=60, logs=logs)
        dropper.join()
        for process, log in zip(processes, logs, strict=True):
            assert process.poll() is None, f"a worker died in the outage\n{_tail(log, 40)}"
    waits = _count(logs, r"database unavailable")
    retries = _count(logs, r"transient error")
    print(f"\noutage of 10 s: {waits} 'database unavailable' and {retries} transient-error "
          f"retry lines; burst finished {took:.1f} s after the restart "
          f"({time.monotonic() - restarted:.1f} s)")  # fmt: skip
    assert waits + retries > 0, "the outage went unnoticed: was the database really stopped?"
    _assert_accounted(home, store, corpus)
    store.close()


@pytest.mark.postgresql
def test_full_archive_disk_keeps_files_claimed_until_space_is_freed(
    tmp_path: Path, pg_url: str
) -> None:
    """archive/ on a 2 MB tmpfs fills mid-burst: files stay claimed, are retried, and succeed
    once it grows; every recorded document is whole on disk."""
    home = _home(tmp_path)
    archive = home / "archive"
    corpus = _corpus(tmp_path / "source", valid=24, invalid=4, copies=4, broken=2, seed=4)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    store = _store(pg_url)
    env = _env(pg_url, retry_backoff_s="0.5", retry_max_attempts="9")
    with _tmpfs(archive, "2m"), _running(home, env, logs) as processes:
        _wait_watching(logs)
        _Dropper(corpus.files, home / "inbox", interval=0.03).start()

        def disk_full_and_files_held() -> bool:
            held = [i for i in store.items("claimed") if i.attempts >= 1]
            return bool(held) and all(
                (home / "inbox" / ".processing" / i.claimed_name).is_file() for i in held
            )

        full_after = _wait_for(disk_full_and_files_held, 60, "a file held for retry (disk full)")
        time.sleep(4)  # keep the disk full over several retries
        held = [i.original_name for i in store.items("claimed")]
        assert held, "nothing stayed claimed while the disk was full"
        _assert_archive_matches(home, store)  # nothing recorded that is not on disk
        subprocess.run(["mount", "-o", "remount,size=64m", str(archive)], check=True)
        freed = time.monotonic()
        took = _wait_settled(store, corpus, timeout=60, logs=logs)
        for process, log in zip(processes, logs, strict=True):
            assert process.poll() is None, f"a worker died on the full disk\n{_tail(log, 40)}"
        retries = _count(logs, r"transient error \(.*No space left")
        print(f"\ndisk full {full_after:.1f} s into the burst; {len(held)} file(s) held claimed; "
              f"{retries} ENOSPC retries; burst finished {took:.1f} s after space was freed "
              f"({time.monotonic() - freed:.1f} s)")  # fmt: skip
        _assert_accounted(home, store, corpus)
    store.close()


@pytest.mark.postgresql
def test_full_outbox_disk_places_every_consent_once_space_is_freed(
    tmp_path: Path, pg_url: str
) -> None:
    """outbox/ on a 200 kB tmpfs fills mid-burst: once it grows, every issued consent is in
    outbox/ without a restart."""
    home = _home(tmp_path)
    outbox = home / "outbox"
    corpus = _corpus(tmp_path / "source", valid=16, invalid=2, copies=2, broken=2, seed=5)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    store = _store(pg_url)
    env = _env(pg_url, retry_backoff_s="0.5", retry_max_attempts="9")
    with _tmpfs(outbox, "200k"), _running(home, env, logs) as processes:
        _wait_watching(logs)
        _Dropper(corpus.files, home / "inbox", interval=0.03).start()
        _wait_for(lambda: _count(logs, r"No space left") > 0, 60, "outbox/ full")
        time.sleep(4)  # keep the disk full over several retries
        subprocess.run(["mount", "-o", "remount,size=64m", str(outbox)], check=True)
        freed = time.monotonic()
        _wait_settled(store, corpus, timeout=60, logs=logs)
        try:
            _wait_for(
                lambda: len(list(outbox.glob("SUP-*.pdf"))) >= corpus.valid,
                10,
                f"{corpus.valid} consents in outbox/",
            )
        finally:
            placed = len(list(outbox.glob("SUP-*.pdf")))
            print(f"\noutbox full: {_count(logs, r'No space left')} ENOSPC log lines; "
                  f"{placed}/{corpus.valid} consents in outbox/ "
                  f"{time.monotonic() - freed:.1f} s after space was freed")  # fmt: skip
        for process, log in zip(processes, logs, strict=True):
            assert process.poll() is None, f"a worker died on the full disk\n{_tail(log, 40)}"
        _assert_accounted(home, store, corpus)
    store.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def test_workers_starting_together_on_an_empty_database_all_start(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """``run --workers 4 --once`` on a new, empty database: the schema is made once, all start."""
    for attempt in range(3):
        home = _home(tmp_path / f"attempt-{attempt}")
        if backend == "postgresql":
            pg_server: PgServer = request.getfixturevalue("pg_server")
            url = pg_server.create_database(f"fresh_{secrets.token_hex(4)}")
        else:
            url = f"sqlite:///{home / 'cf.db'}"
        result = subprocess.run(
            [sys.executable, "-m", "workflow", "--home", str(home), "run", "--workers", "4",
             "--once"],
            env=_env(url),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert "Traceback" not in result.stderr


def _refusal(home: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "workflow", "--home", str(home), "run", "--once"],
        env={**os.environ, "CONSENTFLOW_DATABASE__URL": f"sqlite:///{home / 'cf.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("processing_exists", [True, False])
def test_refuses_to_start_on_an_unwritable_inbox(tmp_path: Path, processing_exists: bool) -> None:
    """An inbox this process cannot write: exit 78 naming the path and why, no traceback."""
    prefix = without_override()
    home = _home(tmp_path)
    if processing_exists:
        (home / "inbox" / ".processing").mkdir()
    (home / "inbox").chmod(0o555)
    try:
        result = _refusal(home, *prefix)
    finally:
        (home / "inbox").chmod(0o755)
    assert result.returncode == 78, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert f"{home / 'inbox'}" in result.stderr
    assert "not readable and writable" in result.stderr


def test_refuses_to_start_when_processing_is_another_filesystem(tmp_path: Path) -> None:
    """``.processing/`` mounted apart from the inbox: exit 78 naming both and why."""
    home = _home(tmp_path)
    processing = home / "inbox" / ".processing"
    with _tmpfs(processing, "1m"):
        result = _refusal(home)
    assert result.returncode == 78, result.stderr[-3000:]
    assert f"{processing} is on another filesystem than {home / 'inbox'}" in result.stderr
    assert "rename" in result.stderr
