"""Crash-safe intake of watched folders: claim, ledger, process, finish (notes/intake.md §5).

A complete file is *claimed* by an atomic rename into the folder's ``.processing/``
(the rename is the lock, and silences further events), recorded in the durable
ledger, read once (never through a link: :mod:`workflow.dropfolder`), handed to the
folder's processor, and finished in the order archive → fsync → commit → remove. Every
file ends in exactly one place: an application (or a signature report), a duplicate
event, or ``failed/NAME`` beside ``NAME.error.json``. After a crash, :meth:`Intake.recover`
re-drives whatever is in ``.processing/`` from the ledger.

No single file can stop intake: one that cannot be read goes to ``failed/`` as
``unreadable``, one that is not a regular file (a link, a FIFO…) as ``not_a_file``,
one that keeps killing its worker as ``interrupted``; one that cannot even be claimed
stays where it is, with a log line at most once an hour and a notice for ``status``.

Errors are classified once here: :class:`PermanentError` (and any unexpected
exception) sends the file to ``failed/``; :class:`TransientError`, ``OSError`` and
database errors are retried with exponential backoff.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import DBAPIError, IntegrityError

from workflow.archive import (
    PRIVATE,
    Access,
    fsync_dir,
    make_dir,
    safe_name,
    write_atomic,
)
from workflow.config import IntakeSettings
from workflow.dropfolder import (
    Contents,
    NotAFileError,
    Opener,
    TooLargeError,
    claim_name,
    claimant,
    kind_of,
    looks_whole,
    open_no_follow,
    read_regular,
    sha256_of,
)
from workflow.failed import FailedFolder
from workflow.leases import HOST_TAG, LeaseKeeper, owner_alive, pid_alive, worker_id
from workflow.notices import Notice
from workflow.states import Actor
from workflow.store import IntakeItem, Store

PROCESSING = ".processing"

#: A file resumed this many times after its worker died is set aside as ``interrupted``.
MAX_TAKEOVERS = 3
#: Longest wait between two attempts at a file (retries double up to this).
MAX_RETRY_DELAY_S = 3600.0
#: Problems that cannot be solved here are logged at most this often (per file).
SAY_AGAIN_S = 3600.0


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


class FolderError(Exception):
    """A watched folder cannot be used safely; the message names the path and why."""


@dataclass(frozen=True)
class Claim:
    """A file renamed into ``.processing/`` and recorded in the ledger."""

    item_id: int
    folder: str
    path: Path
    original_name: str
    size: int


@dataclass(frozen=True)
class Claimed(Claim):
    """A claimed file with its bytes, read once by the intake: what a processor gets."""

    data: bytes = field(repr=False)
    sha256: str


#: A folder's processor: does the work, commits, and returns the outcome for the log
#: (an application reference, ``duplicate of …``). It must be idempotent for an item:
#: after a crash it may see the same claimed file again.
Processor = Callable[[Claimed], str]


@dataclass
class _Deferred:
    """A file that is not yet a whole PDF and that no close or rename confirmed."""

    size: int
    mtime_ns: int
    since: float  # the intake's clock
    since_wall: datetime
    grace: float | None  # None: an empty file, which waits until it has content


@dataclass
class _Retry:
    claim: Claim
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
        opener: Opener = open_no_follow,
        failed_access: Access = PRIVATE,
        worker: str | None = None,
    ) -> None:
        """Prepare intake of ``folders``; nothing is touched before `prepare`.

        ``opener`` opens a claimed file for reading (default: without following links);
        ``failed_access`` says who may read ``failed/``; ``worker`` names this worker in
        leases (default: ``host:pid:random``).
        """
        self.store = store
        self.folders = folders
        self.failed_dir = failed_dir
        self.failed = FailedFolder(failed_dir, failed_access)
        self.processors = processors
        self.follow_up = follow_up
        self.settings = settings
        self.log = log or logging.getLogger("consentflow.intake")
        self.clock = clock
        self.opener = opener
        self.max_bytes = int(settings.max_file_mb * 1024 * 1024)
        self.worker = worker or worker_id()
        #: Polled while waiting for the database: a stopping engine leaves the file claimed.
        self.should_stop: Callable[[], bool] = lambda: False
        self._leases = LeaseKeeper(store, owner=self.worker, lease_s=settings.lease_s, log=self.log)
        self._next_sweep = 0.0
        self._deferred: dict[Path, _Deferred] = {}
        self._retries: dict[int, _Retry] = {}
        self._unclaimable: dict[Path, Notice] = {}
        self._said: dict[object, float] = {}
        self.stats = IntakeStats()

    # -- start-up -------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the folders and refuse to start if a claim by rename could not work.

        A drop folder keeps the mode its owner gave it (it is created 0700 only when it
        is absent); ``.processing/`` must be a real folder, not a link, on the drop
        folder's filesystem, and so must ``failed/``: files move there by rename.
        """
        _make_usable(self.failed_dir, self.failed.access)
        for folder in self.folders.values():
            processing = folder / PROCESSING
            _make_usable(folder, PRIVATE)
            _make_usable(processing, PRIVATE, real=True)
            for other in (folder, self.failed_dir):
                if other.stat().st_dev != processing.stat().st_dev:
                    raise FolderError(
                        f"{processing} is on another filesystem than {other}: files are "
                        "claimed and set aside by rename, which needs one filesystem; do "
                        "not mount anything over .processing or failed/"
                    )

    def recover(self) -> None:
        """Resume the work of dead workers (or of this host's crashed run), as the ledger says.

        A ledger row whose lease expired, or whose owner was a process on this host that
        is no longer running, is leased to this worker and driven to its end. Files in
        ``.processing/`` without a ledger row (a crash between the rename and the
        insert) are recorded first, once they are older than a lease. A file that cannot
        be finished now is logged and left for the next sweep: the others go on.
        """
        self._next_sweep = self.clock() + self.settings.lease_s / 3
        self._adopt_orphans()
        try:
            with self.store.tx() as tx:
                taken = tx.take_over(
                    owner=self.worker,
                    lease_until=self._leases.lease_until(),
                    expired=self._expired,
                )
                work = [(item.id, item.folder, item.claimed_name, item.original_name,
                         item.takeovers) for item in taken]  # fmt: skip
        except DBAPIError as exc:
            self.log.warning("database unavailable (%s); recovery postponed", _short(exc))
            return
        work = [entry for entry in work if entry[0] not in self._retries]  # ours, waiting
        for item_id, *_ in work:
            assert item_id is not None
            self._leases.hold(item_id)  # the later ones wait while the first are processed
        for item_id, folder_name, claimed_name, original, takeovers in work:
            assert item_id is not None
            path = self.folders[folder_name] / PROCESSING / claimed_name
            try:
                self._resume(Claim(item_id, folder_name, path, original, 0), takeovers)
            except Exception:
                self._say(
                    ("resume", item_id),
                    logging.ERROR,
                    "%s (item %d) cannot be resumed now; it stays in %s and is tried again "
                    "at the next sweep",
                    original,
                    item_id,
                    path.parent,
                    exc_info=True,
                )
            finally:
                self._leases.release(item_id)

    def _resume(self, claim: Claim, takeovers: int) -> None:
        try:
            size = os.lstat(claim.path).st_size
        except FileNotFoundError:
            self._missing(claim)
            return
        claim = Claim(claim.item_id, claim.folder, claim.path, claim.original_name, size)
        if takeovers > MAX_TAKEOVERS:
            self._fail(
                claim,
                "interrupted",
                f"Processing this file was interrupted {takeovers} times (its worker "
                "stopped or died each time); it was set aside so that it cannot stop intake "
                "again. `consentflow retry` tries it once more.",
                f"resumed {takeovers} times",
            )
            return
        self.log.info("resuming %s (item %d)", claim.original_name, claim.item_id)
        self._process(claim)

    def _missing(self, claim: Claim) -> None:
        self.log.error(
            "%s: ledger item %d is claimed but %s is missing; recording it as failed",
            claim.original_name,
            claim.item_id,
            claim.path,
        )
        with self.store.tx() as tx:
            item = tx.get_item(claim.item_id)
            if item is not None and item.status == "claimed":
                tx.finish_item(item, status="failed", outcome=None, sha256=None)

    def _adopt_orphans(self) -> None:
        for folder_name, folder in self.folders.items():
            processing = folder / PROCESSING
            try:
                names = sorted(entry.name for entry in os.scandir(processing))
            except OSError as exc:
                self._say(
                    ("list", processing), logging.ERROR, "cannot list %s: %s", processing, exc
                )
                continue
            for name in names:
                if name.startswith("."):
                    continue
                try:
                    self._adopt(folder_name, processing / name)
                except Exception:
                    self._say(
                        ("adopt", processing / name),
                        logging.ERROR,
                        "cannot finish %s now; it stays there and is tried again at the next sweep",
                        processing / name,
                        exc_info=True,
                    )

    def _adopt(self, folder_name: str, path: Path) -> None:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            self._say(("adopt", path), logging.WARNING, "ignoring %s: a folder", path)
            return
        item = self.store.item_by_claim(path.name)
        if item is None:
            if not self._orphan_is_abandoned(path):
                return  # another worker may be between its rename and its insert
            original = path.name.split("__", 1)[-1]
            self.log.info("recovered %s from .processing (no ledger row yet)", original)
            try:
                self._record_claim(folder_name, path, original)
            except IntegrityError:
                return  # another worker recorded it first
        elif item.status in ("done", "duplicate"):
            self.log.info(
                "finishing %s: already %s (%s)", item.original_name, item.status, item.outcome
            )
            _remove(path)
        elif item.status == "failed":
            target = self.failed_dir / (item.outcome or safe_name(item.original_name))
            self.log.info("finishing %s: moving to %s", item.original_name, target)
            self.failed.set_aside(path, target)

    def _orphan_is_abandoned(self, path: Path) -> bool:
        # A claim made by a process of this host that no longer runs, or older than a
        # lease, will never be recorded by its claimant.
        made = claimant(path.name)
        if made is None:
            return True
        claimed_ns, pid, host = made
        if time.time_ns() - claimed_ns > self.settings.lease_s * 1e9:
            return True
        return host == HOST_TAG and pid != os.getpid() and not pid_alive(pid)

    def _expired(self, item: IntakeItem) -> bool:
        if item.owner == self.worker:
            return False
        if item.lease_until is None or item.owner is None:
            return True
        if item.lease_until < datetime.now(UTC):
            return True
        return not owner_alive(item.owner)

    # -- the loop's entry points ------------------------------------------------------

    def offer(self, path: Path, *, confirmed: bool = False) -> None:
        """A file the watcher reports complete: claim and process it, or wait for it.

        ``confirmed``: a close after writing or a rename into the folder says the file is
        whole, so it is taken at once, whatever it holds (a truncated PDF fails as
        damaged). A file found by a scan or by polling that is not yet a whole PDF waits
        up to ``incomplete_grace_s`` after its last change; an empty file waits until it
        has content. A folder is left alone; any other entry that is not a regular file
        goes to ``failed/`` as ``not_a_file`` (a link moves, never its target).
        """
        folder_name = self.folder_of(path)
        if folder_name is None:
            return
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self._forget(path)
            return
        except OSError as exc:
            self._cannot_claim(folder_name, path, exc)
            return
        if stat.S_ISDIR(st.st_mode):
            self._say(("folder", path), logging.INFO, "ignoring %s: a folder, not a file", path)
            return
        if stat.S_ISREG(st.st_mode) and (
            st.st_size == 0 or not (confirmed or looks_whole(path, st.st_size, opener=self.opener))
        ):
            self._defer(path, st)
            return
        if self._deferred.pop(path, None) is not None:
            self.log.info("%s is complete now: stopped waiting for it", path)
        claim = self.claim(folder_name, path)
        if claim is not None:
            self._process(claim)

    def tick(self) -> None:
        """Re-check waiting files, run due retries, and sweep (leases, recovery) when due."""
        now = self.clock()
        for path, deferred in list(self._deferred.items()):
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._forget(path)
                continue
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns) != (deferred.size, deferred.mtime_ns):
                self.offer(path)
            elif deferred.grace is not None and now - deferred.since >= deferred.grace:
                self.log.warning(
                    "stopped waiting for %s: it did not become a whole PDF in %g s without "
                    "change; processing it as it is",
                    path,
                    deferred.grace,
                )
                del self._deferred[path]
                folder_name = self.folder_of(path)
                claim = self.claim(folder_name, path) if folder_name else None
                if claim is not None:
                    self._process(claim)
        for path in [p for p in self._unclaimable if not os.path.lexists(p)]:
            self._forget(path)
        for item_id, retry in list(self._retries.items()):
            if retry.due <= now:
                del self._retries[item_id]
                self.stats.retried += 1
                try:
                    self._process(retry.claim, attempts=retry.attempts)
                finally:
                    self._leases.release(item_id)
        if now >= self._next_sweep:
            self.recover()
            self._catch_up()

    def _catch_up(self) -> None:
        """Run the follow-up hook: work that follows a committed file (an automatic
        consent, its outbox copy) and that a transient error or a killed worker left."""
        if self.follow_up is None:
            return
        try:
            self.follow_up()
        except (DBAPIError, OSError) as exc:
            self.log.warning("follow-up work postponed to the next sweep (%s)", _short(exc))

    @property
    def pending(self) -> int:
        """Files waiting to be whole, waiting for a retry, or that cannot be claimed."""
        return len(self._deferred) + len(self._retries) + len(self._unclaimable)

    def next_sweep_in(self) -> float:
        """Seconds until `tick` sweeps (leases, recovery) again; 0 or less when it is due."""
        return self._next_sweep - self.clock()

    def notices(self) -> list[Notice]:
        """Why files are still in the drop folders, as far as this intake knows."""
        notices = list(self._unclaimable.values())
        for path, deferred in self._deferred.items():
            folder_name = self.folder_of(path)
            if folder_name is None:
                continue
            if deferred.grace is None:
                message = "the file is empty; it is taken once it has content"
                until = None
            else:
                message = (
                    "not yet a whole PDF (no %EOF trailer) and no close or rename confirmed "
                    "it; it is taken as it is if it stays unchanged until then"
                )
                until = deferred.since_wall + timedelta(seconds=deferred.grace)
            notices.append(
                Notice(folder_name, path.name, "waiting", message, deferred.since_wall, until)
            )
        return notices

    def close(self) -> None:
        """Stop renewing leases (the engine is done)."""
        self._leases.close()

    # -- claiming -------------------------------------------------------------------

    def claim(self, folder_name: str, path: Path) -> Claim | None:
        """Rename ``path`` into ``.processing/`` and record it; ``None`` if it is gone or
        cannot be moved (then it stays, with a notice and a log line at most hourly)."""
        original = path.name
        target = self.folders[folder_name] / PROCESSING / claim_name(original)
        try:
            os.rename(path, target)  # the lock: a second claimant's rename fails
        except FileNotFoundError:
            if os.path.lexists(path):  # the file is there: .processing/ is not
                self._cannot_claim(folder_name, path, OSError(errno.ENOENT, "no .processing/"))
            else:
                self.log.debug("%s vanished before it was claimed (claimed elsewhere?)", original)
                self._forget(path)
            return None
        except OSError as exc:
            self._cannot_claim(folder_name, path, exc)
            return None
        self._forget(path)
        fsync_dir(target.parent)
        self.stats.claimed += 1
        return self._record_claim(folder_name, target, original)

    def _cannot_claim(self, folder_name: str, path: Path, exc: OSError) -> None:
        if path not in self._unclaimable:
            message = f"it cannot be moved into {PROCESSING}/: {exc.strerror or exc}"
            self._unclaimable[path] = Notice(
                folder_name, path.name, "unclaimable", message, datetime.now(UTC)
            )
        hint = ""
        if exc.errno in (errno.EPERM, errno.EACCES):
            hint = (
                " Let the service's user move it: in a folder with the sticky bit (chmod +t) "
                "only the file's owner or the folder's owner may move a file."
            )
        self._say(
            ("claim", path),
            logging.ERROR,
            "cannot take %s: moving it into %s failed (%s). It stays where it is and is tried "
            "again at each rescan.%s",
            path,
            PROCESSING,
            exc.strerror or exc,
            hint,
        )

    def _record_claim(self, folder_name: str, target: Path, original: str) -> Claim | None:
        size = os.lstat(target).st_size
        for attempt in range(1, 1_000_000):
            try:
                # Not durable: a crash that undoes it leaves the file in .processing/
                # without a row, which `recover` adopts; the file's outcome is durable.
                with self.store.tx(durable=False) as tx:
                    item_id = tx.claim_item(
                        folder=folder_name,
                        original_name=original,
                        claimed_name=target.name,
                        size=size,
                        owner=self.worker,
                        lease_until=self._leases.lease_until(),
                    )
                break
            except IntegrityError:
                raise
            except DBAPIError as exc:
                # The file is safe in .processing/; wait for the database, never drop it.
                if self.should_stop():
                    self.log.warning("stopping: %s stays claimed for the next start", original)
                    return None
                delay = min(30.0, 0.5 * attempt)
                self.log.warning(
                    "database unavailable (%s); retrying in %.1f s", _short(exc), delay
                )
                time.sleep(delay)
        self.log.info("claimed %s as item %d", original, item_id)
        return Claim(item_id, folder_name, target, original, size)

    def submit(self, folder_name: str, original_name: str, data: bytes, *, source: str) -> int:
        """Take bytes that arrived otherwise than by a drop (a dashboard upload) through the
        same intake, now, in this thread: written into the folder's ``.processing/`` as a
        claim, recorded, processed and finished like a dropped file (an application or
        report, a duplicate, or ``failed/``). Returns the ledger row's id, whose row says
        how it ended. The name is only recorded, never used as a path."""
        target = self.folders[folder_name] / PROCESSING / claim_name(original_name)
        write_atomic(target, data)  # a hidden temporary, then the rename: never half-claimed
        self.stats.claimed += 1
        with self.store.tx() as tx:
            item_id = tx.claim_item(
                folder=folder_name,
                original_name=original_name,
                claimed_name=target.name,
                size=len(data),
                owner=self.worker,
                lease_until=self._leases.lease_until(),
                source=source,
            )
        self._process(Claim(item_id, folder_name, target, original_name, len(data)))
        return item_id

    # -- processing -----------------------------------------------------------------

    def _process(self, claim: Claim, *, attempts: int = 0) -> None:
        with self._leases.holding(claim.item_id):
            try:
                self._run(claim, attempts)
            except Exception:
                # Setting the file aside failed too (failed/ full or unwritable, the
                # database away while stopping, a bug): it stays claimed, tried again later.
                delay = self._delay(attempts + 1)
                self._say(
                    ("process", claim.item_id),
                    logging.ERROR,
                    "%s cannot be finished now; it stays in %s and is tried again in %.0f s",
                    claim.original_name,
                    claim.path.parent,
                    delay,
                    exc_info=True,
                )
                self._later(claim, attempts, delay)

    def _run(self, claim: Claim, attempts: int) -> None:
        sha256 = None
        try:
            contents = self._read(claim)
            if contents is None:
                return
            sha256 = contents.sha256
            claimed = Claimed(
                claim.item_id,
                claim.folder,
                claim.path,
                claim.original_name,
                len(contents.data),
                data=contents.data,
                sha256=contents.sha256,
            )
            outcome = self.processors[claim.folder](claimed)
        except PermanentError as exc:
            self._fail(claim, exc.code, exc.message, exc.detail, extra=exc.extra, sha256=sha256)
            return
        except (TransientError, DBAPIError, OSError) as exc:
            self._transient(claim, attempts, exc, sha256=sha256)
            return
        except Exception as exc:  # a bug must not stop the intake of the next file
            self.log.exception("unexpected error processing %s", claim.original_name)
            self._fail(
                claim,
                "internal_error",
                "consentflow failed unexpectedly on this file; the office has the details.",
                "".join(traceback.format_exception(exc)),
                sha256=sha256,
            )
            return
        # Not flushed to disk: the outcome is, and a crash that undoes this removal leaves
        # a file whose ledger row is finished, which `recover` removes again.
        claim.path.unlink(missing_ok=True)
        self.stats.done += 1
        self.log.info("%s: %s", claim.original_name, outcome)

    def _read(self, claim: Claim) -> Contents | None:
        """The claimed file's bytes; `PermanentError` for what no retry can mend, ``None``
        when the file is gone (recorded as failed unless another worker finished it)."""
        try:
            return read_regular(claim.path, limit=self.max_bytes, opener=self.opener)
        except FileNotFoundError:
            self._missing(claim)
            return None
        except NotAFileError as exc:
            raise PermanentError(
                "not_a_file",
                f"This is a {exc.kind}, not a file: only regular files are taken from a drop "
                "folder, and links are never followed. Put the file itself there.",
                exc.kind,
            ) from None
        except TooLargeError as exc:
            raise PermanentError(
                "too_large",
                f"The file is larger than the {self.settings.max_file_mb:g} MB limit.",
                f"{exc.size} bytes",
            ) from None
        except PermissionError as exc:
            raise PermanentError(
                "unreadable",
                "consentflow may not read this file (its owner or mode keeps the service's "
                "user out). Let the service read it, then `consentflow retry` it.",
                repr(exc),
            ) from None

    def _transient(
        self, claim: Claim, attempts: int, exc: BaseException, *, sha256: str | None
    ) -> None:
        if isinstance(exc, OSError) and exc.errno not in _TRANSIENT_ERRNOS:
            self._fail(
                claim,
                "io_error",
                "The file could not be read or written.",
                repr(exc),
                sha256=sha256,
            )
            return
        attempts += 1
        if attempts >= self.settings.retry_max_attempts:
            self._fail(
                claim,
                "retries_exhausted",
                f"Processing failed {attempts} times for a passing reason; retry it later.",
                repr(exc),
                sha256=sha256,
            )
            return
        delay = self._delay(attempts)
        self.log.warning(
            "%s: transient error (%s); attempt %d in %.1f s",
            claim.original_name,
            _short(exc),
            attempts + 1,
            delay,
        )
        try:
            with self.store.tx() as tx:
                item = tx.get_item(claim.item_id)
                if item is not None:
                    item.attempts = attempts
                    item.last_error = repr(exc)[:2000]
                    item.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
                    tx.save(item)
        except DBAPIError:
            pass  # the schedule below is enough; the ledger row is updated on success
        self._later(claim, attempts, delay)

    def _delay(self, attempts: int) -> float:
        return min(self.settings.retry_backoff_s * 2.0 ** min(attempts - 1, 64), MAX_RETRY_DELAY_S)

    def _later(self, claim: Claim, attempts: int, delay: float) -> None:
        if claim.item_id not in self._retries:
            self._leases.hold(claim.item_id)  # released when the retry runs
        self._retries[claim.item_id] = _Retry(claim, attempts, self.clock() + delay)

    def _fail(
        self,
        claim: Claim,
        code: str,
        message: str,
        detail: str,
        *,
        extra: dict[str, object] | None = None,
        sha256: str | None = None,
    ) -> None:
        """Send a file to ``failed/``: error.json, then ledger commit, then the move."""
        if sha256 is None:
            sha256 = sha256_of(claim.path, opener=self.opener)
        target = self.failed.report(
            claim.original_name,
            {
                "code": code,
                "message": message,
                "detail": detail,
                "file": claim.original_name,
                "folder": claim.folder,
                "sha256": sha256,
                "size": claim.size,
                "item": claim.item_id,
                "failed_at": datetime.now(UTC).isoformat(),
                **(extra or {}),
            },
        )
        while True:
            try:
                with self.store.tx() as tx:
                    item = tx.get_item(claim.item_id)
                    if item is None or item.status != "claimed":
                        # Another worker finished it after our lease lapsed; keep its outcome.
                        self.failed.withdraw(target)
                        _remove(claim.path)
                        return
                    tx.finish_item(item, status="failed", outcome=target.name, sha256=sha256)
                    tx.append_event(
                        "file_failed",
                        actor=Actor.SYSTEM,
                        reason=message,
                        data={
                            "code": code,
                            "file": claim.original_name,
                            "folder": claim.folder,
                            "failed_as": target.name,
                            "sha256": sha256,
                        },
                    )
                break
            except DBAPIError as exc:
                if self.should_stop():
                    raise  # the report stays; the next start finishes this file
                self.log.warning("database unavailable (%s); retrying in 2 s", _short(exc))
                time.sleep(2)
        self.failed.set_aside(claim.path, target)
        self.stats.failed += 1
        self.log.warning("%s: failed (%s) -> %s", claim.original_name, code, target)

    # -- helpers --------------------------------------------------------------------

    def folder_of(self, path: Path) -> str | None:
        """The name of the watched folder ``path`` is directly in, if any."""
        for name, folder in self.folders.items():
            if path.parent == folder:
                return name
        return None

    def _defer(self, path: Path, st: os.stat_result) -> None:
        deferred = self._deferred.get(path)
        if deferred is not None and (deferred.size, deferred.mtime_ns) == (
            st.st_size,
            st.st_mtime_ns,
        ):
            return
        grace = None if st.st_size == 0 else self.settings.incomplete_grace_s
        now_wall = datetime.now(UTC)
        self._deferred[path] = _Deferred(st.st_size, st.st_mtime_ns, self.clock(), now_wall, grace)
        if deferred is not None:
            self.log.debug("%s changed while waiting for it", path)
            return
        self.stats.deferred += 1
        if grace is None:
            self.log.info("waiting for %s: it is empty; it is taken once it has content", path)
        else:
            until = now_wall + timedelta(seconds=grace)
            self.log.info(
                "waiting for %s: not yet a whole PDF, and no close or rename confirmed it; "
                "unless it changes, it is processed as it is at %s UTC (%g s from now)",
                path,
                until.strftime("%H:%M:%S"),
                grace,
            )

    def _forget(self, path: Path) -> None:
        """``path`` left its folder (claimed, or removed): stop waiting for it."""
        self._deferred.pop(path, None)
        self._unclaimable.pop(path, None)
        self._said.pop(("claim", path), None)

    def _say(
        self, key: object, level: int, message: str, *args: object, exc_info: bool = False
    ) -> None:
        """Log a problem that may last, at most once an hour per ``key``."""
        now = self.clock()
        last = self._said.get(key)
        if last is not None and now - last < SAY_AGAIN_S:
            return
        if len(self._said) >= 10_000:
            self._said.clear()
        self._said[key] = now
        self.log.log(level, message + " (said at most once an hour)", *args, exc_info=exc_info)


def _make_usable(path: Path, access: Access, *, real: bool = False) -> None:
    """Create ``path`` if needed (with ``access``'s mode); raise `FolderError` unless this
    user may read and write it, or, with ``real``, when it is not a real folder."""
    try:
        if real and os.path.lexists(path) and not stat.S_ISDIR(os.lstat(path).st_mode):
            kind = kind_of(os.lstat(path).st_mode)
            raise FolderError(
                f"{path} is a {kind}, not a folder: it must be a real folder inside "
                f"{path.parent} (claiming a file is a rename within that folder's filesystem); "
                "remove it and start again"
            )
        make_dir(path, access)
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


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
