"""The folder watcher, with real folders, real files and the real watchdog observers."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from watchdog.observers.api import BaseObserver
from watchdog.utils import delayed_queue

from workflow.watching import (
    WatchConfig,
    Watcher,
    WatchMode,
    default_observer,
    filesystem_type_of,
)

STABLE = 0.2
PDF = b"%PDF-1.7\n" + b"x" * 4000 + b"\n%%EOF\n"


class RecordingFactory:
    """The default observer factory, keeping every observer it builds so tests can break them."""

    def __init__(self, *, refuse_events: bool = False) -> None:
        self.built: list[BaseObserver] = []
        self.refuse_events = refuse_events

    def __call__(self, mode: WatchMode, polling_interval_s: float) -> BaseObserver:
        if self.refuse_events and mode is WatchMode.EVENTS:
            # The very error watchdog's inotify_c raises when the watches are used up.
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        observer = default_observer(mode, polling_interval_s)
        self.built.append(observer)
        return observer


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    """An empty watched folder."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A sibling folder on the same filesystem, for files that get moved in."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def watcher(
    *folders: Path,
    factory: RecordingFactory | None = None,
    stability_s: float = STABLE,
    polling_interval_s: float = 0.0,
    rescan_interval_s: float = 300.0,
) -> Watcher:
    """A watcher with a short stability window."""
    config = WatchConfig(
        folders=folders,
        stability_s=stability_s,
        polling_interval_s=polling_interval_s,
        rescan_interval_s=rescan_interval_s,
    )
    return Watcher(config, observer_factory=factory or RecordingFactory())


def collect(
    watching: Watcher,
    want: int,
    *,
    timeout: float = 15.0,
    settle: float = 1.0,
    claim: bool = False,
) -> list[tuple[Path, int]]:
    """(path, size when ready() returned it) until ``want`` came, then ``settle`` s more.

    With ``claim`` each returned file is renamed into ``.processing/``, as the intake does.
    """
    got: list[tuple[Path, int]] = []

    def take(wait: float) -> None:
        for ready in watching.ready(wait):
            path = ready.path
            got.append((path, path.stat().st_size if path.exists() else -1))
            if claim:
                (path.parent / ".processing").mkdir(exist_ok=True)
                path.rename(path.parent / ".processing" / path.name)

    end = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < end:
        take(0.5)
    end = time.monotonic() + settle
    while time.monotonic() < end:
        take(0.2)
    return got


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    """The captured log messages containing ``text``."""
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_copied_file_is_returned_once(inbox: Path, outside: Path) -> None:
    """A file written by copying is returned exactly once, complete."""
    (outside / "a.pdf").write_bytes(PDF)
    with watcher(inbox) as watching:
        shutil.copyfile(outside / "a.pdf", inbox / "a.pdf")
        assert collect(watching, 1) == [(inbox / "a.pdf", len(PDF))]


def test_file_moved_in_from_a_sibling_folder_is_returned_once(inbox: Path, outside: Path) -> None:
    """A file renamed in from another folder is returned exactly once."""
    (outside / "b.pdf").write_bytes(PDF)
    with watcher(inbox) as watching:
        os.rename(outside / "b.pdf", inbox / "b.pdf")
        assert collect(watching, 1) == [(inbox / "b.pdf", len(PDF))]


@pytest.mark.parametrize("temp_name", [".x.pdf.tmp", "x.pdf.part"])
def test_temp_file_renamed_into_place_is_returned_once(inbox: Path, temp_name: str) -> None:
    """Write-to-temp-then-rename yields the final name once and never the temp name."""
    with watcher(inbox) as watching:
        (inbox / temp_name).write_bytes(PDF)
        time.sleep(0.5)  # let the temp file be seen (and ignored) before the rename
        os.rename(inbox / temp_name, inbox / "x.pdf")
        assert collect(watching, 1) == [(inbox / "x.pdf", len(PDF))]


@pytest.mark.parametrize(
    ("stability_s", "polling_interval_s", "pause"),
    [
        # events: pauses longer than the stability window; only the close may complete it
        (STABLE, 0.0, 0.25),
        # polling: no close events, so the stability window must outlast the pauses
        (1.0, 0.1, 0.2),
    ],
    ids=["events", "polling"],
)
def test_slow_chunked_write_is_returned_only_when_complete(
    inbox: Path,
    stability_s: float,
    polling_interval_s: float,
    pause: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file written in chunks over ~3 s is returned once, at its final size."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    chunk, count = b"y" * 1000, 13

    def write() -> None:
        with (inbox / "slow.pdf").open("wb") as out:
            for _ in range(count):
                out.write(chunk)
                out.flush()
                time.sleep(pause)

    with watcher(inbox, stability_s=stability_s, polling_interval_s=polling_interval_s) as watching:
        writer = threading.Thread(target=write)
        writer.start()
        got = collect(watching, 1)
        writer.join()
    assert got == [(inbox / "slow.pdf", len(chunk) * count)]
    assert len(messages(caplog, "waiting for the file to finish")) == 1


def test_files_present_before_start_are_returned(tmp_path: Path, inbox: Path) -> None:
    """Files already in the folders when watching starts are returned, once each."""
    signed = tmp_path / "signed"
    signed.mkdir()
    (inbox / "early.pdf").write_bytes(PDF)
    (signed / "consent.PDF").write_bytes(PDF)
    with watcher(inbox, signed) as watching:
        got = collect(watching, 2)
    assert sorted(got) == [(inbox / "early.pdf", len(PDF)), (signed / "consent.PDF", len(PDF))]


def test_polling_mode_returns_copied_and_moved_files(inbox: Path, outside: Path) -> None:
    """With a polling interval the polling observer is used and still finds new files."""
    (outside / "c.pdf").write_bytes(PDF)
    (outside / "m.pdf").write_bytes(PDF)
    with watcher(inbox, polling_interval_s=0.1) as watching:
        assert watching.mode == "polling"
        shutil.copyfile(outside / "c.pdf", inbox / "c.pdf")
        os.rename(outside / "m.pdf", inbox / "m.pdf")
        got = collect(watching, 2)
    assert sorted(got) == [(inbox / "c.pdf", len(PDF)), (inbox / "m.pdf", len(PDF))]


def test_lost_events_are_recovered_by_the_rescan(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A file whose events never arrive is found by the periodic rescan."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    factory = RecordingFactory()
    with watcher(inbox, factory=factory, rescan_interval_s=0.5) as watching:
        factory.built[0].unschedule_all()  # the observer lives on but hears nothing any more
        (inbox / "unseen.pdf").write_bytes(PDF)
        assert collect(watching, 1, claim=True) == [(inbox / "unseen.pdf", len(PDF))]
    assert len(factory.built) == 1
    assert messages(caplog, "found by the rescan")


def test_dead_observer_is_rebuilt_and_the_folder_rescanned(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """When the observer thread dies a new one is started and files from the gap are found."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    factory = RecordingFactory()
    with watcher(inbox, factory=factory) as watching:
        factory.built[0].stop()
        factory.built[0].join()
        (inbox / "gap.pdf").write_bytes(PDF)
        assert collect(watching, 1) == [(inbox / "gap.pdf", len(PDF))]
        assert len(factory.built) == 2
        assert factory.built[1].is_alive()
        (inbox / "after.pdf").write_bytes(PDF)
        assert collect(watching, 1) == [(inbox / "after.pdf", len(PDF))]
    assert messages(caplog, "observer stopped")


def test_ignored_names_and_subfolders_are_never_returned(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Hidden, temporary and non-PDF names, subfolders and their files are never returned."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    ignored = [
        ".hidden.pdf",
        "~$lock.pdf",
        "a.tmp",
        "b.pdf.part",
        "c.pdf.crdownload",
        ".d.pdf.swp",
        "notes.txt",
        "scan.jpg",
    ]
    (inbox / ".hidden.pdf").write_bytes(PDF)
    (inbox / "sub").mkdir()
    (inbox / "sub" / "inner.pdf").write_bytes(PDF)
    with watcher(inbox) as watching:
        for name in ignored:
            (inbox / name).write_bytes(PDF)
        (inbox / "dir.pdf").mkdir()
        (inbox / ".processing").mkdir()
        (inbox / "sub" / "later.pdf").write_bytes(PDF)
        (inbox / "ok.PDF").write_bytes(PDF)
        got = collect(watching, 1)
    assert got == [(inbox / "ok.PDF", len(PDF))]
    # .hidden.pdf was listed at start and then written again: still one log line
    assert len(messages(caplog, f"ignoring {inbox / '.hidden.pdf'}")) == 1
    assert messages(caplog, f"ignoring {inbox / 'notes.txt'}")
    assert messages(caplog, f"ignoring {inbox / 'sub'}")


def test_handler_exception_does_not_stop_watching(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception inside event handling is logged; the same observer keeps delivering."""
    caplog.set_level(logging.INFO, logger="workflow.watching")

    def path_filter(path: Path) -> bool:
        if path.name.startswith("boom"):
            raise RuntimeError("filter exploded")
        return True

    factory = RecordingFactory()
    config = WatchConfig(folders=(inbox,), stability_s=STABLE)
    with Watcher(config, path_filter=path_filter, observer_factory=factory) as watching:
        (inbox / "boom.pdf").write_bytes(PDF)
        time.sleep(0.3)
        (inbox / "fine.pdf").write_bytes(PDF)
        got = collect(watching, 1)
        assert factory.built[0].is_alive()
    assert got == [(inbox / "fine.pdf", len(PDF))]
    assert len(factory.built) == 1
    assert messages(caplog, "error while handling file event")


def test_file_deleted_before_it_is_complete_is_dropped(inbox: Path) -> None:
    """A file removed while still being written is never returned and no longer pending."""
    with watcher(inbox) as watching:
        with (inbox / "gone.pdf").open("wb") as out:
            out.write(PDF)
            out.flush()
            assert watching.ready(0.5) == []  # open for writing: not complete yet
            os.unlink(inbox / "gone.pdf")
        assert collect(watching, 0, settle=1.0) == []
        assert watching.status()["pending"] == 0


def test_empty_file_waits_until_it_has_content(
    inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 0-byte placeholder is not complete, even when closed; once filled it is returned."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    with watcher(inbox) as watching:
        (inbox / "placeholder.pdf").touch()
        assert collect(watching, 0, settle=1.0) == []
        assert watching.status()["pending"] == 1
        (inbox / "placeholder.pdf").write_bytes(PDF)
        assert collect(watching, 1) == [(inbox / "placeholder.pdf", len(PDF))]
    assert len(messages(caplog, "waiting for the file to finish")) == 1


def test_claimed_file_is_not_returned_again(inbox: Path) -> None:
    """A file the caller renamed into .processing/ never comes back, rescans included."""
    (inbox / ".processing").mkdir()
    with watcher(inbox, rescan_interval_s=0.3) as watching:
        (inbox / "claim.pdf").write_bytes(PDF)
        got = collect(watching, 1, settle=0)
        assert got == [(inbox / "claim.pdf", len(PDF))]
        os.rename(inbox / "claim.pdf", inbox / ".processing" / "claim.pdf")
        assert collect(watching, 0, settle=1.5) == []
        assert watching.status()["pending"] == 0


def test_a_claim_holds_back_no_later_event(inbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claim (a rename out of the folder) does not hold back the next file's events.

    watchdog waits on its own clock for the other half of a move, and its queue delivers
    nothing behind a waiting move; with that clock stopped, any such wait never ends.
    """
    stopped = SimpleNamespace(monotonic=lambda: 0.0, sleep=time.sleep)
    monkeypatch.setattr(delayed_queue, "time", stopped)
    with watcher(inbox) as watching:
        try:
            (inbox / "first.pdf").write_bytes(PDF)
            got = collect(watching, 1, claim=True, settle=0)
            assert got == [(inbox / "first.pdf", len(PDF))]
            (inbox / "next.pdf").write_bytes(PDF)
            assert collect(watching, 1, settle=0) == [(inbox / "next.pdf", len(PDF))]
        finally:
            monkeypatch.undo()  # the clock runs again: a held move is let go, the observer stops


def test_unclaimed_file_is_offered_again_by_a_rescan(inbox: Path) -> None:
    """A returned file left in place is not repeated by events, only by the next rescan."""
    with watcher(inbox, rescan_interval_s=2.0) as watching:
        (inbox / "left.pdf").write_bytes(PDF)
        assert collect(watching, 1, settle=0) == [(inbox / "left.pdf", len(PDF))]
        os.utime(inbox / "left.pdf")  # an attribute touch is not a change of content
        assert collect(watching, 1, timeout=5.0, settle=0) == [(inbox / "left.pdf", len(PDF))]


def test_changed_file_is_returned_again(inbox: Path) -> None:
    """A returned file rewritten in place is returned again with its new content."""
    with watcher(inbox) as watching:
        (inbox / "redo.pdf").write_bytes(PDF)
        assert collect(watching, 1, settle=0.5) == [(inbox / "redo.pdf", len(PDF))]
        (inbox / "redo.pdf").write_bytes(PDF + PDF)
        assert collect(watching, 1) == [(inbox / "redo.pdf", 2 * len(PDF))]


def test_inotify_limit_falls_back_to_polling(
    inbox: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC from inotify switches to polling with a warning, and files still arrive."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    (outside / "f.pdf").write_bytes(PDF)
    with watcher(inbox, factory=RecordingFactory(refuse_events=True)) as watching:
        assert watching.mode == "polling"
        assert watching.status()["mode"] == "polling"
        os.rename(outside / "f.pdf", inbox / "f.pdf")
        assert collect(watching, 1) == [(inbox / "f.pdf", len(PDF))]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("inotify watch limit reached" in r.getMessage() for r in warnings)


def test_status_reports_mode_folders_pending_and_last_rescan(inbox: Path) -> None:
    """status() gives the heartbeat's data: mode, folders, pending count, last rescan in UTC."""
    watching = watcher(inbox)
    assert watching.status()["last_rescan"] is None
    (inbox / "empty.pdf").touch()
    with watching:
        watching.ready(0.3)
        status = watching.status()
    assert status["mode"] == "events"
    assert status["folders"] == [str(inbox)]
    assert status["pending"] == 1
    last = datetime.fromisoformat(str(status["last_rescan"]))
    assert last.utcoffset() is not None
    assert last.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fstype", "polling_interval_s", "warned"),
    [("nfs4", 0.0, True), ("cifs", 0.0, True), ("nfs4", 5.0, False), ("ext4", 0.0, False)],
)
def test_warns_when_events_watch_a_network_filesystem(
    inbox: Path,
    caplog: pytest.LogCaptureFixture,
    fstype: str,
    polling_interval_s: float,
    warned: bool,
) -> None:
    """Native events on NFS or CIFS miss other hosts' changes: say so, and what to set."""
    config = WatchConfig(folders=(inbox,), polling_interval_s=polling_interval_s)
    watching = Watcher(
        config, observer_factory=RecordingFactory(), filesystem_type=lambda _path: fstype
    )
    with caplog.at_level(logging.WARNING, logger="workflow.watching"):
        watching.start()
        watching.stop()
    warnings = [r.getMessage() for r in caplog.records if "polling_interval_s" in r.getMessage()]
    if warned:
        assert warnings == [
            f"{inbox} is on a {fstype} filesystem, where file events may miss changes made "
            "elsewhere; set [intake] polling_interval_s (e.g. 5) to poll instead"
        ]
    else:
        assert warnings == []


def test_filesystem_type_is_the_mount_holding_the_folder(inbox: Path) -> None:
    """The type read from /proc/mounts is the one util-linux's findmnt reports."""
    findmnt = shutil.which("findmnt")
    if findmnt is None:
        pytest.skip("findmnt (util-linux) is not installed")
    expected = subprocess.run(
        [findmnt, "-n", "-o", "FSTYPE", "--target", str(inbox)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert filesystem_type_of(inbox) == expected


class _ChangedInternalsFactory:
    """Observers whose emitter fails when it starts, as the inotify subclass would under a
    watchdog whose internals changed (a TypeError from an unexpected constructor argument)."""

    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, mode: WatchMode, polling_interval_s: float) -> BaseObserver:
        from watchdog.observers.inotify import InotifyEmitter, InotifyObserver

        factory = self

        class ChangedEmitter(InotifyEmitter):
            def on_thread_start(self) -> None:
                factory.failed += 1
                raise TypeError("InotifyWatchGroup.__init__() got an unexpected keyword argument")

        observer = InotifyObserver(generate_full_events=True)
        observer._emitter_class = ChangedEmitter
        return observer


def test_observer_that_fails_to_start_falls_back_to_watchdogs_own(
    inbox: Path, outside: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer that cannot start (not for the inotify limits) is replaced by watchdog's
    own observer: native events still, a warning, and files still arrive."""
    caplog.set_level(logging.INFO, logger="workflow.watching")
    factory = _ChangedInternalsFactory()
    (outside / "f.pdf").write_bytes(PDF)
    with Watcher(WatchConfig(folders=(inbox,), stability_s=STABLE), observer_factory=factory) as w:
        assert factory.failed == 1
        assert w.mode == "events"
        os.rename(outside / "f.pdf", inbox / "f.pdf")
        (inbox / "g.pdf").write_bytes(PDF)
        assert sorted(collect(w, 2)) == [(inbox / "f.pdf", len(PDF)), (inbox / "g.pdf", len(PDF))]
    assert messages(caplog, "could not start (TypeError")
