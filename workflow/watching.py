"""Watching the drop folders: which files in them are complete and ready to be claimed now.

Events are hints and the directory listing is the truth (notes/intake.md §5 A-B): the folders
are listed at start, every ``rescan_interval_s`` and after the observer had to be rebuilt;
watchdog events only make us look at a path sooner. A file is complete when

- a close-after-write or a rename into the folder confirms it (native events on Linux), or
- its (size, mtime, inode) stayed unchanged for ``stability_s`` (polling mode, files found by a
  listing, created/modified without a close), except that a file seen being written and not yet
  closed waits for its close, or for ``unclosed_write_s`` without change: scanners and SMB
  writers pause between pages for longer than any sensible stability window;
- and it is not empty: a 0-byte file is a placeholder that waits, however long, never an error.

`Watcher.ready` says which of the two confirmed each file: only a close or a rename is proof
that the writer is done, so the caller may take such a file at once whatever it holds, and
give one that was merely still for a while the benefit of the doubt. Entries that are not
regular files (links, FIFOs, sockets, devices) are handed out too, as they are, for the
caller to set aside; folders never are. Claiming, hashing and the ledger belong to the caller
(``workflow.intake``).
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

# Polling interval used when the inotify limits force us off native events.
FALLBACK_POLLING_S = 1.0
# Filesystems on which inotify misses changes made by other machines (notes §2, §5 A5).
_REMOTE_FS = ("nfs", "cifs", "smb", "fuse", "9p", "overlay", "ceph", "glusterfs", "afs", "davfs")
# Seconds between attempts to rebuild an observer that could not be rebuilt.
_REBUILD_RETRY_S = 5.0
_SUBFOLDER = "a subfolder (only files directly inside a watched folder count)"
# Bound on the "already logged as ignored" memory: temp names can be unique per upload.
_IGNORED_MEMORY = 10_000


class WatchMode(StrEnum):
    """How changes are noticed: native file events, or watchdog's polling observer."""

    EVENTS = "events"
    POLLING = "polling"


@dataclass(frozen=True)
class WatchConfig:
    """What to watch and when a file counts as complete. Times in seconds."""

    folders: tuple[Path, ...]
    # unchanged size+mtime needed when no close/rename event confirms completion
    stability_s: float = 1.0
    # 0: native events (inotify); > 0: watchdog PollingObserver with that interval
    polling_interval_s: float = 0.0
    # full directory listing, whatever the events said
    rescan_interval_s: float = 300.0
    # allow-list, fnmatch, case-insensitive
    patterns: tuple[str, ...] = ("*.pdf", "*.PDF")
    # temp files of editors/downloaders/mail clients and dotfiles (.processing/, hidden temp names)
    ignore: tuple[str, ...] = (".*", "~*", "*.tmp", "*.part", "*.crdownload", "*.swp")
    # events mode on Linux: a file seen being written but never seen closed (a lost close event,
    # a writer that keeps it open) is taken after this long unchanged instead of stability_s
    unclosed_write_s: float = 60.0


ObserverFactory = Callable[[WatchMode, float], BaseObserver]
"""Builds an unstarted observer for a mode and polling interval (see `default_observer`)."""


@dataclass(frozen=True)
class Ready:
    """A file `Watcher.ready` hands out: complete as far as the watcher can tell."""

    path: Path
    # a close after writing, or a rename into the folder, said so (not only stillness)
    confirmed: bool


@dataclass(frozen=True)
class Waiting:
    """A file the watcher has been waiting for (see `Watcher.waiting`)."""

    path: Path
    since: datetime  # UTC
    why: str


_Kind = Literal["touch", "write", "done", "gone"]


def default_observer(mode: WatchMode, polling_interval_s: float) -> BaseObserver:
    """Return an unstarted watchdog observer for ``mode``.

    On Linux the inotify observer runs with full events, so that a file renamed into the folder
    arrives as a move with an empty source rather than as "created": a rename means the file
    is complete, a creation means someone is about to write it.
    """
    if mode is WatchMode.POLLING:
        return PollingObserver(timeout=polling_interval_s)
    if sys.platform.startswith("linux"):
        try:
            return _undelayed_inotify_observer()
        except (ImportError, AttributeError, TypeError) as exc:
            # Another watchdog than the one this was written for (7.x): its own observer
            # works, with up to 0.5 s more latency per claim. (Errors that only show when
            # the observer starts are caught by the Watcher, which falls back the same way.)
            logging.getLogger(__name__).warning(
                "watchdog's inotify internals changed (%s); using its observer as it is", exc
            )
    return stock_observer(mode, polling_interval_s)


def stock_observer(mode: WatchMode, polling_interval_s: float) -> BaseObserver:
    """watchdog's own observer for ``mode``, as it ships: the fallback when a factory's
    observer cannot be built or started."""
    if mode is WatchMode.POLLING:
        return PollingObserver(timeout=polling_interval_s)
    if sys.platform.startswith("linux"):
        from watchdog.observers.inotify import InotifyObserver  # noqa: PLC0415

        return InotifyObserver(generate_full_events=True)
    from watchdog.observers import Observer  # noqa: PLC0415

    return Observer()


def _undelayed_inotify_observer() -> BaseObserver:
    """watchdog's InotifyObserver (full events) without its 0.5 s wait on moves out.

    watchdog holds every IN_MOVED_FROM for ``InotifyMoveEventGrouper.delay`` (0.5 s) hoping
    to pair it with its IN_MOVED_TO, and its queue is first in, first out: every event behind
    an unpaired move waits too. Each claim renames a file out of the watched folder into the
    unwatched ``.processing/``, so each claim held back the events of the next files by half a
    second (the benchmark's latency p50 was 450 ms). We need no pairing: a paired move and
    an unpaired move-from plus move-to mean the same to `Watcher._meaning` (the source is
    gone, the destination arrived), so the pairing window is zero. The subclasses only
    swap that one class; the emitter builds its watch group as watchdog's own does.
    """
    import dataclasses  # noqa: PLC0415

    from watchdog.observers.inotify import (  # noqa: PLC0415 (Linux only)
        InotifyFullEmitter,
        InotifyObserver,
        InotifyWatchGroup,
    )
    from watchdog.observers.inotify_move_event_grouper import (  # noqa: PLC0415
        InotifyMoveEventGrouper,
    )

    class UndelayedMoveGrouper(InotifyMoveEventGrouper):
        delay = 0.0

    @dataclasses.dataclass
    class UndelayedWatchGroup(InotifyWatchGroup):
        _move_event_grouper: InotifyMoveEventGrouper = dataclasses.field(
            default_factory=UndelayedMoveGrouper, init=False
        )

    class UndelayedEmitter(InotifyFullEmitter):
        def on_thread_start(self) -> None:
            self._inotify = UndelayedWatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
            )

    observer = InotifyObserver(generate_full_events=True)
    observer._emitter_class = UndelayedEmitter  # InotifyObserver takes no emitter argument
    return observer


@dataclass
class _Candidate:
    """A file we are watching until it is complete (state owned by the `ready` caller)."""

    first_seen: float
    changed_at: float
    signature: tuple[int, int, int] | None = None  # (size, mtime_ns, inode)
    confirmed: bool = False  # closed after writing, or renamed in, since the last change
    writing: bool = False  # a write was seen and not yet its close
    rescanned: bool = False  # re-seen by a rescan after it was handed out: offer it again
    waiting_logged: bool = False
    why: str = ""  # why it is not complete yet, once `_waiting` said so
    since_utc: datetime = field(default_factory=lambda: datetime.now(UTC))


class _Handler(FileSystemEventHandler):
    """Hands each watchdog event to the watcher; never lets an exception reach watchdog.

    A handler exception ends the observer thread and every later event is lost
    (watchdog #427, #793), so everything is caught and logged here.
    """

    def __init__(self, on_event: Callable[[FileSystemEvent], None], log: logging.Logger) -> None:
        self._on_event = on_event
        self._log = log

    def dispatch(self, event: FileSystemEvent) -> None:
        """Record the event; log, never raise."""
        try:
            self._on_event(event)
        except Exception:
            self._log.exception("error while handling file event %r; watching goes on", event)


class Watcher:
    """Watches folders (not their subfolders) and reports files that are complete.

    ``ready`` is meant to be called from one thread (the engine's loop); the watchdog thread
    only appends to a queue. ``forget``, ``status`` and ``stop`` may be called from any thread.
    """

    def __init__(
        self,
        config: WatchConfig,
        *,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        path_filter: Callable[[Path], bool] | None = None,
        observer_factory: ObserverFactory = default_observer,
        fallback_factory: ObserverFactory = stock_observer,
        filesystem_type: Callable[[Path], str | None] | None = None,
    ) -> None:
        """Prepare watching ``config.folders``; nothing runs before `start`.

        ``path_filter`` is an extra predicate after the name patterns (false: ignore the file);
        ``observer_factory`` builds the watchdog observers (the default suits production);
        ``fallback_factory`` builds the ones used when an observer from ``observer_factory``
        fails to build or start for a reason other than the inotify limits (default:
        watchdog's own); ``filesystem_type`` names the filesystem a folder is on (default:
        `/proc/mounts`).
        """
        self._config = config
        self._folders = tuple(Path(os.path.abspath(f)) for f in config.folders)
        self._log = log or logging.getLogger(__name__)
        self._clock = clock
        self._path_filter = path_filter
        self._factory = observer_factory
        self._fallback = fallback_factory
        self._filesystem_type = filesystem_type or filesystem_type_of
        self._mode = WatchMode.POLLING if config.polling_interval_s > 0 else WatchMode.EVENTS
        self._polling_s = config.polling_interval_s
        self._observer: BaseObserver | None = None
        self._stopped = False
        self._rebuild_at = 0.0
        # Filled by the watchdog thread, drained by ready(); the condition wakes ready() early.
        self._cond = threading.Condition()
        self._events: deque[tuple[_Kind, Path, float]] = deque()
        self._ignored_logged: set[Path] = set()
        self._state = threading.RLock()
        self._candidates: dict[Path, _Candidate] = {}
        self._delivered: dict[Path, tuple[int, int, int]] = {}
        self._last_scan = 0.0
        self._last_scan_utc: datetime | None = None

    # -- public API -----------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """``"events"`` or ``"polling"`` (also after an automatic fallback to polling)."""
        return str(self._mode)

    def start(self) -> None:
        """Start the observer, then list the folders: every file present is a candidate.

        The observer starts first so that no file can arrive unseen between the listing and
        the first event.
        """
        self._observer = self._build_observer()
        for folder in self._folders:
            self._warn_if_remote(folder)
        self._log.info(
            "watching %s via %s",
            ", ".join(map(str, self._folders)),
            "inotify" if self._close_events() else f"polling every {self._polling_s:g} s",
        )
        self._rescan(initial=True)

    def ready(self, timeout: float) -> list[Ready]:
        """Block up to ``timeout`` seconds; return the files that are complete now.

        Each file is returned once; it comes back only if it changes again, or if a rescan
        still finds it in the folder (the caller neither claimed nor forgot it). Ignored or
        non-matching names, directories and files in subfolders are never returned; links
        and other entries that are not regular files are, for the caller to set aside.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while not self._stopped:
            self._supervise()
            found = self._collect()
            if found:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with self._cond:
                if not self._events:
                    self._cond.wait(min(remaining, self._tick()))
        return []

    def forget(self, path: Path) -> None:
        """Stop tracking ``path``: the caller claimed it (renamed it away) or gave up on it."""
        path = Path(os.path.abspath(path))
        with self._state:
            self._candidates.pop(path, None)
            self._delivered.pop(path, None)

    def waiting(self, *, longer_than: float = 0.0) -> list[Waiting]:
        """The files waited for (empty, open for writing, still changing) for more than
        ``longer_than`` seconds, for ``status``."""
        now = self._clock()
        with self._state:
            return [
                Waiting(path, candidate.since_utc, candidate.why)
                for path, candidate in self._candidates.items()
                if candidate.why and now - candidate.first_seen > longer_than
            ]

    def status(self) -> dict[str, object]:
        """Data for the heartbeat line: mode, folders, pending candidates, last rescan (UTC)."""
        with self._state:
            pending = len(self._candidates)
        last = self._last_scan_utc
        return {
            "mode": self.mode,
            "folders": [str(f) for f in self._folders],
            "pending": pending,
            "last_rescan": last.isoformat(timespec="seconds") if last else None,
        }

    def stop(self) -> None:
        """Stop the observer and wake a waiting `ready`, which then returns ``[]``."""
        self._stopped = True
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(timeout=5)
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Self:
        """Start watching."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop watching."""
        self.stop()

    # -- the observer -----------------------------------------------------------------------

    def _build_observer(self) -> BaseObserver:
        """Build, schedule and start an observer; fall back to polling on inotify limits."""
        if self._mode is WatchMode.EVENTS:
            try:
                return self._schedule_and_start(WatchMode.EVENTS, 0.0)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                self._mode = WatchMode.POLLING
                self._polling_s = FALLBACK_POLLING_S
                self._log.warning(
                    "%s: falling back to polling every %g s; raise the sysctl "
                    "fs.inotify.max_user_watches / max_user_instances to use file events again",
                    exc.strerror or exc,
                    self._polling_s,
                )
        return self._schedule_and_start(WatchMode.POLLING, self._polling_s)

    def _schedule_and_start(self, mode: WatchMode, interval: float) -> BaseObserver:
        """An observer from the factory, or, if that one cannot be built or started for any
        reason but an ``OSError`` (a watchdog whose internals changed), the fallback's."""
        try:
            return self._start_observer(self._factory, mode, interval)
        except OSError:
            raise  # inotify's limits, a folder that is gone: the fallback would fail alike
        except Exception as exc:
            self._log.warning(
                "the %s observer could not start (%s: %s); using watchdog's own observer",
                mode,
                type(exc).__name__,
                exc,
            )
        return self._start_observer(self._fallback, mode, interval)

    def _start_observer(
        self, factory: ObserverFactory, mode: WatchMode, interval: float
    ) -> BaseObserver:
        # inotify reports its limits from the constructor (instances) or from start (watches).
        observer = factory(mode, interval)
        try:
            handler = _Handler(self._on_event, self._log)
            for folder in self._folders:
                observer.schedule(handler, str(folder), recursive=False)
            observer.start()
        except BaseException:
            _stop_quietly(observer)  # release the inotify descriptor and any running emitter
            raise
        return observer

    def _close_events(self) -> bool:
        """Whether close-after-write events exist: native mode on Linux (inotify)."""
        return self._mode is WatchMode.EVENTS and sys.platform.startswith("linux")

    def _supervise(self) -> None:
        """Rebuild a dead observer (then rescan), or rescan when the interval has passed."""
        now = self._clock()
        observer = self._observer
        healthy = (
            observer is not None
            and observer.is_alive()
            and all(emitter.is_alive() for emitter in observer.emitters)
        )
        if not healthy and now >= self._rebuild_at:
            self._log.warning("the folder observer stopped; starting a new one and rescanning")
            if observer is not None:
                observer.stop()
            try:
                self._observer = self._build_observer()
            except OSError as exc:
                self._observer = None
                self._rebuild_at = now + _REBUILD_RETRY_S
                self._log.error("cannot watch the folders (%s); relying on rescans for now", exc)
            self._rescan(initial=False)
        elif now - self._last_scan >= self._config.rescan_interval_s:
            self._rescan(initial=False)

    def _tick(self) -> float:
        """How long `ready` may sleep without an event: short while files are waiting."""
        if self._candidates:
            return min(0.25, max(0.01, self._config.stability_s / 4))
        return 1.0

    # -- the watchdog thread ----------------------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        """Turn one event into "look at this path again" entries; no I/O here (notes §5 A3)."""
        now = self._clock()
        if event.is_directory:
            # Only new subfolders are worth a word; the folder's own modifications are noise.
            if event.event_type in ("created", "moved"):
                raw = event.dest_path if event.event_type == "moved" else event.src_path
                target = os.fsdecode(raw)
                if target and Path(target).parent in self._folders:
                    self._note_ignored(Path(target), _SUBFOLDER)
            return
        for kind, raw in self._meaning(event):
            path = Path(raw)
            if path.parent not in self._folders:
                continue
            if kind != "gone" and not self._accepted(path):
                continue
            with self._cond:
                self._events.append((kind, path, now))
                self._cond.notify_all()

    def _meaning(self, event: FileSystemEvent) -> list[tuple[_Kind, str]]:
        """What a file event says about which paths (opened, attrib, ... say nothing)."""
        src = os.fsdecode(event.src_path)
        if isinstance(event, FileClosedEvent):
            return [("done", src)]
        if isinstance(event, FileModifiedEvent):
            return [("write" if self._close_events() else "touch", src)]
        if isinstance(event, FileCreatedEvent):
            return [("touch", src)]
        if isinstance(event, FileDeletedEvent):
            return [("gone", src)]
        if isinstance(event, FileMovedEvent):
            # Full inotify events leave src or dest empty for moves across the folder's edge.
            dest = os.fsdecode(event.dest_path)
            arrived: _Kind = "done" if self._mode is WatchMode.EVENTS else "touch"
            moves: list[tuple[_Kind, str]] = [("gone", src)] if src else []
            return [*moves, (arrived, dest)] if dest else moves
        return []

    # -- names --------------------------------------------------------------------------------

    def _accepted(self, path: Path) -> bool:
        """Apply the ignore list, the allow-list and the path filter; log each refusal once."""
        name = path.name.lower()
        if any(fnmatch.fnmatchcase(name, p.lower()) for p in self._config.ignore):
            self._note_ignored(path, "a hidden or temporary name")
            return False
        if not any(fnmatch.fnmatchcase(name, p.lower()) for p in self._config.patterns):
            self._note_ignored(path, f"the name matches none of {', '.join(self._config.patterns)}")
            return False
        if self._path_filter is not None and not self._path_filter(path):
            self._note_ignored(path, "refused by the path filter")
            return False
        return True

    def _note_ignored(self, path: Path, why: str) -> None:
        with self._cond:
            if path in self._ignored_logged:
                return
            if len(self._ignored_logged) >= _IGNORED_MEMORY:
                self._ignored_logged.clear()
            self._ignored_logged.add(path)
        self._log.info("ignoring %s: %s", path, why)

    # -- candidates -----------------------------------------------------------------------------

    def _collect(self) -> list[Ready]:
        """Apply the queued events, then return (and hand out) the candidates now complete."""
        with self._cond:
            events = list(self._events)
            self._events.clear()
        with self._state:
            for kind, path, at in events:
                self._apply(kind, path, at)
            now = self._clock()
            found: list[Ready] = []
            by_age = sorted(self._candidates.items(), key=lambda item: item[1].first_seen)
            for path, candidate in by_age:
                if self._is_complete(path, candidate, now):
                    del self._candidates[path]
                    if candidate.signature is not None:
                        self._delivered[path] = candidate.signature
                    found.append(Ready(path, candidate.confirmed))
            return found

    def _apply(self, kind: _Kind, path: Path, at: float) -> None:
        if kind == "gone":
            self._candidates.pop(path, None)
            self._delivered.pop(path, None)
            return
        candidate = self._candidates.setdefault(path, _Candidate(first_seen=at, changed_at=at))
        if kind == "done":
            candidate.confirmed, candidate.writing = True, False
        else:
            # Any other event resets the stability window (notes §5 B6).
            candidate.confirmed = False
            candidate.changed_at = max(candidate.changed_at, at)
            candidate.writing = candidate.writing or kind == "write"

    def _is_complete(self, path: Path, candidate: _Candidate, now: float) -> bool:
        """Stat ``path`` and decide; drops candidates that vanished or are folders."""
        st = self._stat(path, candidate)
        if st is None or not stat.S_ISREG(st.st_mode):
            # None: gone, or a folder. A link, FIFO, socket or device is complete as it is:
            # the caller never reads it, only sets it aside.
            return st is not None
        signature = (st.st_size, st.st_mtime_ns, st.st_ino)
        if signature != candidate.signature:
            candidate.signature = signature
            candidate.changed_at = max(candidate.changed_at, now)
        if self._delivered.get(path) == signature and not candidate.rescanned:
            # An event about a file already handed out, with nothing changed: not news.
            del self._candidates[path]
            return False
        if st.st_size == 0:
            # A 0-byte file is a placeholder (scanners, SMB clients): wait, never fail (§5 B8).
            candidate.confirmed = False
            self._waiting(path, candidate, "it is still empty")
            return False
        if candidate.confirmed:
            self._log.debug("%s is complete (closed after writing, or renamed in)", path)
            return True
        needed = self._config.unclosed_write_s if candidate.writing else self._config.stability_s
        if now - candidate.changed_at >= needed:
            self._log.debug("%s is complete (unchanged for %g s)", path, needed)
            return True
        why = "it is open for writing" if candidate.writing else "its size or time still changes"
        self._waiting(path, candidate, why)
        return False

    def _stat(self, path: Path, candidate: _Candidate) -> os.stat_result | None:
        """Stat a candidate (never through a link); None (dropping it if it is gone or a
        folder) when there is nothing to hand out."""
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            self._log.debug("%s went away before it was complete", path)
            del self._candidates[path]
            return None
        except OSError as exc:
            self._waiting(path, candidate, f"cannot read it yet: {exc}")
            return None
        if stat.S_ISDIR(st.st_mode):
            self._note_ignored(path, _SUBFOLDER)
            del self._candidates[path]
            return None
        return st

    def _waiting(self, path: Path, candidate: _Candidate, why: str) -> None:
        candidate.why = why
        if not candidate.waiting_logged:
            candidate.waiting_logged = True
            self._log.info("waiting for the file to finish: %s (%s)", path, why)

    # -- listings -------------------------------------------------------------------------------

    def _rescan(self, *, initial: bool) -> None:
        """List the folders; every matching file not yet known becomes a candidate."""
        present: set[Path] = set()
        for folder in self._folders:
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        path = folder / entry.name
                        if entry.is_dir(follow_symlinks=False):
                            self._note_ignored(path, _SUBFOLDER)
                        elif self._scan_accepts(path):
                            present.add(path)  # a link or a FIFO too: the caller sets it aside
            except OSError as exc:
                self._log.warning("cannot list %s: %s", folder, exc)
        now = self._clock()
        with self._state:
            for path in [p for p in self._delivered if p not in present]:
                del self._delivered[path]
            new = 0
            for path in sorted(present):
                if path in self._candidates:
                    continue
                candidate = _Candidate(first_seen=now, changed_at=now)
                if self._delivered.pop(path, None) is not None:
                    candidate.rescanned = True
                    self._log.info("%s was reported before and is still there: offered again", path)
                elif not initial:
                    self._log.info("%s found by the rescan (no file event was seen)", path)
                self._candidates[path] = candidate
                new += 1
        self._last_scan = now
        self._last_scan_utc = datetime.now(UTC)
        if initial:
            self._log.info("%d file(s) already waiting in the watched folders", new)

    def _scan_accepts(self, path: Path) -> bool:
        try:
            return self._accepted(path)
        except Exception:
            self._log.exception("error while checking %s; skipping it", path)
            return False

    def _warn_if_remote(self, folder: Path) -> None:
        """Warn when native events cannot see the folder's changes (notes §2, §5 A5)."""
        if self._mode is not WatchMode.EVENTS:
            return
        fstype = self._filesystem_type(folder)
        if fstype and fstype.startswith(_REMOTE_FS):
            self._log.warning(
                "%s is on a %s filesystem, where file events may miss changes made elsewhere; "
                "set [intake] polling_interval_s (e.g. 5) to poll instead",
                folder,
                fstype,
            )


def _stop_quietly(observer: BaseObserver) -> None:
    try:
        observer.stop()
    except Exception:  # a half-built observer of a changed watchdog: nothing more to release
        logging.getLogger(__name__).debug("stopping a failed observer failed", exc_info=True)


def filesystem_type_of(path: Path) -> str | None:
    """The type of the mount holding ``path``, from /proc/mounts; None when unknown."""
    try:
        lines = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, best_type = mount, fields[2]
    return best_type
