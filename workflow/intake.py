"""Crash-safe intake of watched folders: claim, ledger, process, finish (notes/intake.md §5).

A complete file is *claimed* by an atomic rename into the folder's ``.processing/``
(the rename is the lock, and silences further events), recorded in the durable
ledger, handed to the folder's processor, and finished in the order
archive → fsync → commit → remove. Every file ends in exactly one place: an
application (or a signature report), a duplicate event, or ``failed/NAME`` beside
``NAME.error.json``. After a crash, :meth:`Intake.recover` re-drives whatever is
in ``.processing/`` from the ledger.

Errors are classified once here: :class:`PermanentError` (and any unexpected
exception) sends the file to ``failed/``; :class:`TransientError`, ``OSError`` and
database errors are retried with exponential backoff.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import socket
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from workflow.archive import fsync_dir, safe_name, unique_path, write_atomic
from workflow.config import IntakeSettings
from workflow.states import Actor
from workflow.store import IntakeItem, Store, sha256_file

PROCESSING = ".processing"
_HEAD_BYTES = 1024
_TAIL_BYTES = 2048


class PermanentError(Exception):
    """The file can never be processed as it is; it goes to ``failed/`` with ``code``."""

    def __init__(
        self, code: str, message: str, detail: str = "", extra: dict[str, object] | None = None
    ) -> None:
        self.code = code
        self.message = message
        self.detail = detail
        self.extra = extra or {}
        super().__init__(f"{code}: {message}" + (f" ({detail})" if detail else ""))


class TransientError(Exception):
    """Processing failed for a reason that may pass (disk full, database away)."""


@dataclass(frozen=True)
class Claimed:
    """A file renamed into ``.processing/`` and recorded in the ledger."""

    item_id: int
    folder: str
    path: Path
    original_name: str
    size: int


#: A folder's processor: does the work, commits, and returns the outcome for the log
#: (an application reference, ``duplicate of …``). It must be idempotent for an item:
#: after a crash it may see the same claimed file again.
Processor = Callable[[Claimed], str]


@dataclass
class _Deferred:
    size: int
    mtime_ns: int
    since: float
    logged: bool = False


@dataclass
class _Retry:
    claimed: Claimed
    attempts: int
    due: float


@dataclass
class IntakeStats:
    """Counts since start, for the heartbeat."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    deferred: int = 0


class FolderError(Exception):
    """A watched folder cannot be used safely; the message names the path and why."""


class Intake:
    """Claims complete files from watched folders and drives them to a final place."""

    def __init__(
        self,
        store: Store,
        *,
        folders: dict[str, Path],
        failed_dir: Path,
        processors: dict[str, Processor],
        follow_up: Callable[[], None] | None = None,
        settings: IntakeSettings,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.folders = folders
        self.failed_dir = failed_dir
        self.processors = processors
        self.follow_up = follow_up
        self.settings = settings
        self.log = log or logging.getLogger("consentflow.intake")
        self.clock = clock
        self.max_bytes = int(settings.max_file_mb * 1024 * 1024)
        self.worker = worker_id()
        self._next_sweep = 0.0
        self._deferred: dict[Path, _Deferred] = {}
        self._retries: dict[int, _Retry] = {}
        self.stats = IntakeStats()

    # -- start-up -------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the folders and refuse to start if a claim by rename could not work."""
        _make_usable(self.failed_dir)
        for folder in self.folders.values():
            processing = folder / PROCESSING
            _make_usable(folder)
            _make_usable(processing)
            if folder.stat().st_dev != processing.stat().st_dev:
                raise FolderError(
                    f"{processing} is on another filesystem than {folder}: claiming a file "
                    "by rename needs both on one filesystem; do not mount over .processing"
                )

    def recover(self) -> None:
        """Resume the work of dead workers (or of this host's crashed run), as the ledger says.

        A ledger row whose lease expired, or whose owner was a process on this host that
        is no longer running, is leased to this worker and driven to its end. Files in
        ``.processing/`` without a ledger row (a crash between the rename and the
        insert) are recorded first, once they are older than a lease.
        """
        self._next_sweep = self.clock() + self.settings.lease_s / 3
        self._adopt_orphans()
        try:
            with self.store.tx() as tx:
                taken = tx.take_over(
                    owner=self.worker, lease_until=self._lease_until(), expired=self._expired
                )
                work = [(item.id, item.folder, item.claimed_name, item.original_name,
                         item.status) for item in taken]  # fmt: skip
        except (OperationalError, DBAPIError) as exc:
            self.log.warning("database unavailable (%s); recovery postponed", _short(exc))
            return
        for item_id, folder_name, claimed_name, original, _ in work:
            assert item_id is not None
            if item_id in self._retries:
                continue  # ours, waiting for its retry
            path = self.folders[folder_name] / PROCESSING / claimed_name
            if not path.is_file():
                self.log.error(
                    "%s: ledger item %d is claimed but %s is missing; recording it as failed",
                    original,
                    item_id,
                    path,
                )
                with self.store.tx() as tx:
                    item = tx.get_item(item_id)
                    if item is not None and item.status == "claimed":
                        tx.finish_item(item, status="failed", outcome=None, sha256=None)
                continue
            self.log.info("resuming %s (item %d)", original, item_id)
            self._process(Claimed(item_id, folder_name, path, original, path.stat().st_size))

    def _adopt_orphans(self) -> None:
        for folder_name, folder in self.folders.items():
            for path in sorted((folder / PROCESSING).iterdir()):
                if not path.is_file() or path.name.startswith("."):
                    continue
                item = self.store.item_by_claim(path.name)
                if item is None:
                    if not self._orphan_is_abandoned(path):
                        continue  # another worker may be between its rename and its insert
                    original = path.name.split("__", 1)[-1]
                    self.log.info("recovered %s from .processing (no ledger row yet)", original)
                    try:
                        self._record_claim(folder_name, path, original)
                    except IntegrityError:
                        continue  # another worker recorded it first
                elif item.status in ("done", "duplicate"):
                    self.log.info(
                        "finishing %s: already %s (%s)",
                        item.original_name,
                        item.status,
                        item.outcome,
                    )
                    _remove(path)
                elif item.status == "failed":
                    target = self.failed_dir / (item.outcome or safe_name(item.original_name))
                    self.log.info("finishing %s: moving to %s", item.original_name, target)
                    path.replace(target)
                    fsync_dir(self.failed_dir)

    def _orphan_is_abandoned(self, path: Path) -> bool:
        # The claim name is "<time ns hex>.<pid>.<host tag>__<name>": a claim made by a
        # process of this host that no longer runs, or older than a lease, will never be
        # recorded by its claimant.
        stamp, _, _ = path.name.partition("__")
        parts = stamp.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return True
        try:
            claimed_ns = int(parts[0], 16)
        except ValueError:
            return True
        if time.time_ns() - claimed_ns > self.settings.lease_s * 1e9:
            return True
        pid = int(parts[1])
        return parts[2] == HOST_TAG and pid != os.getpid() and not _pid_alive(pid)

    def _expired(self, item: IntakeItem) -> bool:
        if item.owner == self.worker:
            return False
        if item.lease_until is None or item.owner is None:
            return True
        if item.lease_until < datetime.now(UTC):
            return True
        return not owner_alive(item.owner)

    def _lease_until(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.settings.lease_s)

    # -- the loop's entry points ------------------------------------------------------

    def offer(self, path: Path) -> None:
        """A file the watcher reports complete: claim and process it, or defer it."""
        folder_name = self._folder_of(path)
        if folder_name is None:
            return
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._deferred.pop(path, None)
            return
        if not self._looks_complete(path, stat.st_size):
            self._defer(path, stat)
            return
        self._deferred.pop(path, None)
        claimed = self.claim(folder_name, path)
        if claimed is not None:
            self._process(claimed)

    def tick(self) -> None:
        """Re-check deferred files and run due retries."""
        now = self.clock()
        for path, deferred in list(self._deferred.items()):
            try:
                stat = path.stat()
            except FileNotFoundError:
                del self._deferred[path]
                continue
            if (stat.st_size, stat.st_mtime_ns) != (deferred.size, deferred.mtime_ns):
                self._deferred[path] = _Deferred(stat.st_size, stat.st_mtime_ns, now)
                self.offer(path)
            elif now - deferred.since >= self.settings.incomplete_grace_s:
                self.log.warning(
                    "%s did not become a whole PDF in %.0f s; processing it as it is",
                    path.name,
                    self.settings.incomplete_grace_s,
                )
                del self._deferred[path]
                folder_name = self._folder_of(path)
                claimed = self.claim(folder_name, path) if folder_name else None
                if claimed is not None:
                    self._process(claimed)
        for item_id, retry in list(self._retries.items()):
            if retry.due <= now:
                del self._retries[item_id]
                self.stats.retried += 1
                self._process(retry.claimed, attempts=retry.attempts)
        if now >= self._next_sweep:
            self._renew_leases()
            self.recover()
            self._catch_up()

    def _catch_up(self) -> None:
        """Run the follow-up hook: work that follows a committed file (an automatic
        consent, its outbox copy) and that a transient error or a killed worker left."""
        if self.follow_up is None:
            return
        try:
            self.follow_up()
        except (OperationalError, DBAPIError, OSError) as exc:
            self.log.warning("follow-up work postponed to the next sweep (%s)", _short(exc))

    def _renew_leases(self) -> None:
        try:
            with self.store.tx() as tx:
                tx.renew(list(self._retries), owner=self.worker, lease_until=self._lease_until())
        except (OperationalError, DBAPIError) as exc:
            self.log.warning("database unavailable (%s); leases not renewed", _short(exc))

    @property
    def pending(self) -> int:
        """Files deferred or waiting for a retry."""
        return len(self._deferred) + len(self._retries)

    # -- claiming -------------------------------------------------------------------

    def claim(self, folder_name: str, path: Path) -> Claimed | None:
        """Rename ``path`` into ``.processing/`` and record it; ``None`` if it is gone."""
        original = path.name
        claim_name = f"{time.time_ns():x}.{os.getpid()}.{HOST_TAG}__{safe_name(original)}"
        target = self.folders[folder_name] / PROCESSING / claim_name
        try:
            path.rename(target)  # the lock: a second claimant's rename fails
        except FileNotFoundError:
            self.log.debug("%s vanished before it was claimed (claimed elsewhere?)", original)
            return None
        fsync_dir(target.parent)
        self.stats.claimed += 1
        return self._record_claim(folder_name, target, original)

    def _record_claim(self, folder_name: str, target: Path, original: str) -> Claimed:
        size = target.stat().st_size
        for attempt in range(1, 1_000_000):
            try:
                with self.store.tx() as tx:
                    item_id = tx.claim_item(
                        folder=folder_name,
                        original_name=original,
                        claimed_name=target.name,
                        size=size,
                        owner=self.worker,
                        lease_until=self._lease_until(),
                    )
                break
            except (OperationalError, DBAPIError) as exc:
                # The file is safe in .processing/; wait for the database, never drop it.
                delay = min(30.0, 0.5 * attempt)
                self.log.warning(
                    "database unavailable (%s); retrying in %.1f s", _short(exc), delay
                )
                time.sleep(delay)
        self.log.info("claimed %s as item %d", original, item_id)
        return Claimed(item_id, folder_name, target, original, size)

    def submit(self, folder_name: str, original_name: str, data: bytes, *, source: str) -> int:
        """Take bytes that arrived otherwise than by a drop (a dashboard upload) through the
        same intake, now, in this thread: written into the folder's ``.processing/`` as a
        claim, recorded, processed and finished like a dropped file (an application or
        report, a duplicate, or ``failed/``). Returns the ledger row's id, whose row says
        how it ended. The name is only recorded, never used as a path."""
        claim_name = f"{time.time_ns():x}.{os.getpid()}.{HOST_TAG}__{safe_name(original_name)}"
        target = self.folders[folder_name] / PROCESSING / claim_name
        write_atomic(target, data)  # a hidden temporary, then the rename: never half-claimed
        self.stats.claimed += 1
        with self.store.tx() as tx:
            item_id = tx.claim_item(
                folder=folder_name,
                original_name=original_name,
                claimed_name=claim_name,
                size=len(data),
                owner=self.worker,
                lease_until=self._lease_until(),
                source=source,
            )
        self._process(Claimed(item_id, folder_name, target, original_name, len(data)))
        return item_id

    # -- processing -----------------------------------------------------------------

    def _process(self, claimed: Claimed, *, attempts: int = 0) -> None:
        processor = self.processors[claimed.folder]
        try:
            if claimed.size > self.max_bytes:
                raise PermanentError(
                    "too_large",
                    f"The file is larger than the {self.settings.max_file_mb:g} MB limit.",
                    f"{claimed.size} bytes",
                )
            outcome = processor(claimed)
        except PermanentError as exc:
            self._fail(claimed, exc.code, exc.message, exc.detail, exc.extra)
            return
        except (TransientError, OperationalError, DBAPIError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _TRANSIENT_ERRNOS:
                self._fail(claimed, "io_error", "The file could not be read or written.", repr(exc))
                return
            self._schedule_retry(claimed, attempts + 1, exc)
            return
        except Exception as exc:  # a bug must not stop the intake of the next file
            self.log.exception("unexpected error processing %s", claimed.original_name)
            self._fail(
                claimed,
                "internal_error",
                "consentflow failed unexpectedly on this file; the office has the details.",
                "".join(traceback.format_exception(exc)),
            )
            return
        _remove(claimed.path)
        self.stats.done += 1
        self.log.info("%s: %s", claimed.original_name, outcome)

    def _schedule_retry(self, claimed: Claimed, attempts: int, exc: BaseException) -> None:
        if attempts >= self.settings.retry_max_attempts:
            self._fail(
                claimed,
                "retries_exhausted",
                f"Processing failed {attempts} times for a passing reason; retry it later.",
                repr(exc),
            )
            return
        delay = self.settings.retry_backoff_s * 2 ** (attempts - 1)
        self.log.warning(
            "%s: transient error (%s); attempt %d in %.1f s",
            claimed.original_name,
            _short(exc),
            attempts + 1,
            delay,
        )
        try:
            with self.store.tx() as tx:
                item = tx.get_item(claimed.item_id)
                if item is not None:
                    item.attempts = attempts
                    item.last_error = repr(exc)[:2000]
                    item.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
                    tx.save(item)
        except (OperationalError, DBAPIError):
            pass  # the schedule below is enough; the ledger row is updated on success
        self._retries[claimed.item_id] = _Retry(claimed, attempts, self.clock() + delay)

    def _fail(
        self,
        claimed: Claimed,
        code: str,
        message: str,
        detail: str,
        extra: dict[str, object] | None = None,
    ) -> None:
        """Send a file to ``failed/``: error.json, then ledger commit, then the move."""
        sha256 = sha256_file(claimed.path)

        def ours(candidate: Path) -> bool:
            # A report of this very item left by a run killed before its commit: the
            # file takes the name that report gives, not the next free one.
            return _report_names(candidate, claimed.item_id, sha256)

        target = unique_path(self.failed_dir, safe_name(claimed.original_name), reusable=ours)
        report = {
            "code": code,
            "message": message,
            "detail": detail,
            "file": claimed.original_name,
            "folder": claimed.folder,
            "sha256": sha256,
            "size": claimed.size,
            "item": claimed.item_id,
            "failed_at": datetime.now(UTC).isoformat(),
            **(extra or {}),
        }
        write_atomic(
            target.with_name(target.name + ".error.json"),
            json.dumps(report, indent=2, ensure_ascii=False).encode(),
        )
        while True:
            try:
                with self.store.tx() as tx:
                    item = tx.get_item(claimed.item_id)
                    if item is None or item.status != "claimed":
                        # Another worker finished it after our lease lapsed; keep its outcome.
                        target.with_name(target.name + ".error.json").unlink(missing_ok=True)
                        _remove(claimed.path)
                        return
                    tx.finish_item(item, status="failed", outcome=target.name, sha256=sha256)
                    tx.append_event(
                        "file_failed",
                        actor=Actor.SYSTEM,
                        reason=message,
                        data={
                            "code": code,
                            "file": claimed.original_name,
                            "folder": claimed.folder,
                            "failed_as": target.name,
                            "sha256": sha256,
                        },
                    )
                break
            except (OperationalError, DBAPIError) as exc:
                self.log.warning("database unavailable (%s); retrying in 2 s", _short(exc))
                time.sleep(2)
        try:
            claimed.path.replace(target)
        except FileNotFoundError:
            if not target.exists():
                raise
            # Another worker's sweep saw the committed row and finished the move for us.
        fsync_dir(self.failed_dir)
        self.stats.failed += 1
        self.log.warning("%s: failed (%s) -> %s", claimed.original_name, code, target)

    # -- helpers --------------------------------------------------------------------

    def _folder_of(self, path: Path) -> str | None:
        for name, folder in self.folders.items():
            if path.parent == folder:
                return name
        return None

    def _looks_complete(self, path: Path, size: int) -> bool:
        """False for a file still being written: empty, or a PDF header without a trailer.

        A file that does not start like a PDF is complete as far as we can tell (and
        will fail as not_pdf); a writer always writes the header first.
        """
        if size == 0:
            return False
        try:
            with path.open("rb") as handle:
                head = handle.read(_HEAD_BYTES)
                if b"%PDF-" not in head:
                    return True
                handle.seek(max(0, size - _TAIL_BYTES))
                return b"%%EOF" in handle.read()
        except OSError:
            return False

    def _defer(self, path: Path, stat: os.stat_result) -> None:
        deferred = self._deferred.get(path)
        if deferred is None or (deferred.size, deferred.mtime_ns) != (
            stat.st_size,
            stat.st_mtime_ns,
        ):
            self._deferred[path] = _Deferred(stat.st_size, stat.st_mtime_ns, self.clock())
        entry = self._deferred[path]
        if not entry.logged:
            entry.logged = True
            self.stats.deferred += 1
            self.log.info("waiting for %s to finish (not yet a whole PDF)", path.name)


def _make_usable(path: Path) -> None:
    """Create ``path`` if needed; raise `FolderError` unless this user may read and write it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        usable = os.access(path, os.R_OK | os.W_OK | os.X_OK)
    except OSError as exc:
        raise FolderError(
            f"{path} is not readable and writable by this user (uid {os.getuid()}): "
            f"{exc.strerror}; fix its permissions"
        ) from exc
    if not usable:
        raise FolderError(
            f"{path} is not readable and writable by this user "
            f"(uid {os.getuid()}); fix its permissions"
        )


#: Short tag of this host in claim names (a hostname can be long or contain dots).
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_id() -> str:
    """This process's name in leases: ``host:pid:random`` (the random part survives pid reuse)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def owner_alive(owner: str) -> bool:
    """Whether a lease owner may still be running: false only for a gone process of this host."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another host: only its lease expiry can tell
    if int(pid_text) == os.getpid():
        return False  # an earlier intake of this process (the caller checks its own name)
    return _pid_alive(int(pid_text))


def retry_failed(failed_dir: Path, folders: dict[str, Path], names: Iterable[str]) -> list[str]:
    """Move files from ``failed/`` back into the folder they came from; return the names moved."""
    moved = []
    for name in names:
        source = failed_dir / safe_name(name)
        report_path = source.with_name(source.name + ".error.json")
        if not source.is_file():
            raise FileNotFoundError(f"no file {name!r} in {failed_dir}")
        folder = "inbox"
        if report_path.is_file():
            folder = str(json.loads(report_path.read_text(encoding="utf-8")).get("folder", "inbox"))
        destination = unique_path(folders.get(folder, folders["inbox"]), source.name)
        # One rename on one filesystem: the watcher sees a complete file appear.
        source.replace(destination)
        report_path.unlink(missing_ok=True)
        fsync_dir(destination.parent)
        moved.append(destination.name)
    return moved


_TRANSIENT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EIO,
    errno.EBUSY,
    errno.EAGAIN,
    errno.ENOMEM,
    errno.ETIMEDOUT,
    errno.ESTALE,
    errno.EMFILE,
    errno.ENFILE,
}


def _report_names(candidate: Path, item_id: int, sha256: str) -> bool:
    """Whether ``candidate``'s error.json is the report of ledger item ``item_id`` (same bytes)."""
    try:
        report = json.loads(candidate.with_name(candidate.name + ".error.json").read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and (report.get("item"), report.get("sha256")) == (
        item_id,
        sha256,
    )


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
