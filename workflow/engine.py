"""The engine: settings → store, services, intake and watcher, and the loop that runs them.

``consentflow run`` builds one :class:`Engine` and calls :meth:`Engine.run`. Start-up
order matters: check the schema and the folders, finish what a crash left behind
(outbox copies, ``.processing/``, auto-approvals, consent drafts), then watch. The loop
stops when its stop signal is set; a signal handler may set it (``is_set`` is all the loop
asks of it), and the loop notices after the file in hand: within a fifth of a second while
the intake waits for something, within a second when it is idle.
"""

from __future__ import annotations

import fnmatch
import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from workflow.applications import Applications, Sealer
from workflow.archive import Access, make_dir, remove_stale_temp_files
from workflow.audit_key import load_key
from workflow.config import Settings
from workflow.intake import Claimed, FolderError, Intake, Processor
from workflow.notices import Notice, NoticeBoard
from workflow.signing import Signer, certify
from workflow.store import Store, wait_for_database
from workflow.verification import SignaturePolicy, Verifier
from workflow.watching import ObserverFactory, Ready, WatchConfig, Watcher, default_observer

HEARTBEAT_S = 60.0
YOUNG_COLLECTION_EVERY = 5000  # allocations between young-generation collections (run)
#: How often a running engine sends feedback links that fell due and reminders; a link
#: is sent once and reminders are days apart, so this only bounds how late one goes out.
FEEDBACK_SWEEP_S = 3600.0
#: A file the watcher waits for this long (still being written, empty) shows in ``status``.
NOTICE_AFTER_S = 5.0
#: How long the loop waits for a file before it looks again at its stop signal, retries,
#: sweeps and notices: short while the intake waits for something (a retry, a file not yet
#: whole), up to a second when it is idle. Each wake-up costs CPU, even with nothing to do:
#: on an Intel Xeon virtual machine here, half a millisecond (25 bare sleeps of 0.2 s took
#: 13.7 ms of thread CPU time), and an idle engine waking five times a second used 2 % of a
#: core (bench/HISTORY.md, 2026-11-29).
BUSY_WAIT_S = 0.2
IDLE_WAIT_S = 1.0


class StopSignal(Protocol):
    """What the loop asks of its stop signal: a ``threading.Event``, or a flag that a
    signal handler sets (a handler must not take locks, as ``Event.set`` does)."""

    def is_set(self) -> bool:
        """Whether to stop."""
        ...


class MailThread(Protocol):
    """A mail service started beside the loop (:mod:`workflow.mail_sender`)."""

    def join(self, timeout: float = 10.0) -> None:
        """Wait for it to end once the stop signal is set."""
        ...


log = logging.getLogger("consentflow")


class Engine:
    """Everything ``run`` needs, built once per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Callable[[], datetime] | None = None,
        observer_factory: ObserverFactory = default_observer,
    ) -> None:
        self.settings = settings
        self.store = store or Store(
            settings.database_url, clock=clock, audit_key=load_key(settings.home)
        )
        self.applications = build_applications(self.store, settings, clock=clock)
        processors: dict[str, Processor] = {
            "inbox": self.applications.receive_eoi,
            "signed": self.applications.receive_signed,
        }
        folders = {"inbox": settings.inbox, "signed": settings.signed}
        self.intake = Intake(
            self.store,
            folders=folders,
            failed_dir=settings.failed,
            processors=processors,
            settings=settings.intake,
            follow_up=self._follow_up,
            failed_access=Access(settings.files.gid_for("failed")),
        )
        self.notices = NoticeBoard(self.store, owner=self.intake.worker)
        self.watch_config = WatchConfig(
            folders=tuple(folders.values()),
            stability_s=settings.intake.stability_ms / 1000,
            polling_interval_s=settings.intake.polling_interval_s,
            rescan_interval_s=settings.intake.rescan_interval_s,
        )
        self.observer_factory = observer_factory

    def start(self, stop: StopSignal | None = None) -> bool:
        """Check the schema and the folders and recover from an earlier crash.

        Returns False when ``stop`` was set while waiting for the database.
        """
        for folder in (self.settings.outbox, self.settings.archive, self.settings.failed):
            try:
                make_dir(folder, Access(self.settings.files.gid_for(folder.name)))
            except OSError as exc:
                raise FolderError(f"{folder} cannot be created: {exc.strerror}") from exc
            try:
                removed = remove_stale_temp_files(folder, older_than_s=self.settings.intake.lease_s)
            except OSError as exc:
                log.warning("cannot clean temporary files in %s: %s", folder, exc)
                removed = 0
            if removed:
                log.info("removed %d unfinished temporary file(s) from %s", removed, folder)
        if not self._wait_for_database(stop):
            return False
        self.store.key_chain()  # another key, or a head changed without it: stop here
        self.intake.prepare()
        self.applications.warm_up()
        self.notices.clear_dead()
        self.intake.recover()
        self._guarded(self._follow_up)  # outbox copies, auto consents, drafts a crash left
        return True

    def _wait_for_database(self, stop: StopSignal | None) -> bool:
        """Wait while a database server cannot be reached; a database that cannot be used
        as configured raises `~workflow.store.StoreError` (the CLI exits 78)."""
        return wait_for_database(self.store, lambda: stop is not None and stop.is_set())

    def _follow_up(self) -> None:
        restored = self.applications.restore_outbox()
        issued = self.applications.issue_pending_auto()
        swept = self.applications.sweep_drafts()
        if restored or issued:
            log.info("caught up: %d outbox copies restored, %d consents issued", restored, issued)
        if swept:
            log.info("removed %d consent draft(s) a stopped worker left", swept)

    def run_once(self) -> None:
        """Process what is in the folders now, then return (``run --once``)."""
        self.start()
        for folder in self.intake.folders.values():
            try:
                names = sorted(entry.name for entry in os.scandir(folder))
            except OSError as exc:
                log.error("cannot list %s: %s", folder, exc)
                continue
            for name in names:
                if self._wanted(name):
                    self._guarded(self.intake.offer, folder / name)
        self._guarded(self.intake.tick)
        self._guarded(self._publish, None)

    def run(self, stop: StopSignal | None = None, *, freeze_heap: bool = False) -> None:
        """Watch and process until ``stop`` is set (or forever).

        With ``freeze_heap`` (``consentflow run``, a process that does nothing else), what
        start-up loaded is moved out of the garbage collector's reach; see `_freeze_heap`.
        """
        stop = stop or threading.Event()
        self.intake.should_stop = stop.is_set
        if stop.is_set() or not self.start(stop) or stop.is_set():
            log.info("stopped")
            return
        if freeze_heap:
            _freeze_heap()
        watcher = Watcher(
            self.watch_config,
            log=logging.getLogger("consentflow.watch"),
            observer_factory=self.observer_factory,
        )
        watcher.start()
        mail = self._start_mail(stop)
        log.info(
            "watching %s via %s (review = %s, database %s)",
            ", ".join(str(folder) for folder in self.watch_config.folders),
            watcher.mode,
            self.settings.review.mode,
            self.store.engine.url.render_as_string(hide_password=True),
        )
        last_beat = last_sweep = time.monotonic()
        self._guarded(self._feedback_sweep)
        try:
            while not stop.is_set():
                for ready in watcher.ready(timeout=self._wait_s()):
                    if stop.is_set():
                        break  # what is left stays in the folder for the next start
                    self._guarded(self._offer, ready)
                    watcher.forget(ready.path)
                    # Between files too: a backlog must not hold back retries that are due
                    # or the sweep that resumes a dead worker's claims within the lease.
                    self._guarded(self.intake.tick)
                self._guarded(self.intake.tick)
                self._guarded(self._publish, watcher)
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    last_beat = time.monotonic()
                    self._heartbeat(watcher)
                if time.monotonic() - last_sweep >= FEEDBACK_SWEEP_S:
                    last_sweep = time.monotonic()
                    self._guarded(self._feedback_sweep)
        finally:
            watcher.stop()
            for service in mail:
                service.join()
            log.info("stopped")

    def _wait_s(self) -> float:
        """How long the loop may wait for a file (see `IDLE_WAIT_S`): never past the sweep
        that resumes a dead worker's claims."""
        if self.intake.pending:
            return BUSY_WAIT_S
        return max(0.0, min(IDLE_WAIT_S, self.intake.next_sweep_in()))

    def _feedback_sweep(self) -> None:
        """Send the feedback links that fell due, and reminders (SPEC §12). Each is
        decided under the application's lock, so workers sweeping together send one."""
        from workflow.lifecycle.service import Lifecycle  # noqa: PLC0415

        life = Lifecycle(self.store, self.settings, archive=self.applications.archive)
        swept = life.sweep()
        if swept.due or swept.reminded:
            log.info(
                "feedback: %d report(s) fell due, %d reminder(s) sent",
                len(swept.due), len(swept.reminded),
            )  # fmt: skip

    def _start_mail(self, stop: StopSignal) -> list[MailThread]:
        """Start the notification sender (``[mail] smtp_url``) and the mailbox's reader
        (``[mail] imap_url``) beside the loop, each in a thread of its own."""
        started: list[MailThread] = []
        if self.settings.mail.smtp_url:
            from workflow.mail_sender import MailService  # noqa: PLC0415 - when configured

            sender = MailService(self.store, self.settings)
            sender.start(stop)
            started.append(sender)
        if self.settings.mail.imap_url:
            from workflow.mail_intake import MailboxError, MailReader  # noqa: PLC0415

            try:
                reader = MailReader(self.store, self.settings, self._second_intake())
            except MailboxError as exc:
                log.error("no mail intake: %s", exc)
            else:
                reader.start(stop)
                started.append(reader)
        return started

    def _second_intake(self) -> Intake:
        """An intake for another thread (mail): same folders, processors and settings."""
        return Intake(
            self.store,
            folders=self.intake.folders,
            failed_dir=self.settings.failed,
            processors=self.intake.processors,
            settings=self.settings.intake,
            failed_access=Access(self.settings.files.gid_for("failed")),
        )

    def _offer(self, ready: Ready) -> None:
        self.intake.offer(ready.path, confirmed=ready.confirmed)

    def _publish(self, watcher: Watcher | None) -> None:
        """Tell ``status`` which files are waiting or cannot be taken."""
        notices = self.intake.notices()
        known = {(notice.folder, notice.name) for notice in notices}
        for waiting in watcher.waiting(longer_than=NOTICE_AFTER_S) if watcher else []:
            folder = self.intake.folder_of(waiting.path)
            name = waiting.path.name
            if folder is not None and (folder, name) not in known:
                notices.append(Notice(folder, name, "waiting", waiting.why, waiting.since))
        self.notices.publish(notices)

    @staticmethod
    def _guarded(step: Callable[..., None], *args: object) -> None:
        # Whatever one file does (a bug, a folder that vanished), the loop goes on; a
        # claimed file stays in .processing/ and the lease sweep resumes it.
        try:
            step(*args)
        except Exception:
            log.exception("error in the intake loop; intake goes on")
            time.sleep(0.5)

    def _heartbeat(self, watcher: Watcher) -> None:
        status = watcher.status()
        stats = self.intake.stats
        log.info(
            "heartbeat: watching %s via %s, %s waiting, %d pending, last rescan %s; "
            "since start %d claimed, %d done, %d failed",
            ", ".join(str(folder) for folder in self.watch_config.folders),
            status.get("mode"),
            status.get("pending"),
            self.intake.pending,
            status.get("last_rescan") or "never",
            stats.claimed,
            stats.done,
            stats.failed,
        )

    def _wanted(self, name: str) -> bool:
        name = name.lower()
        if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in self.watch_config.ignore):
            return False
        return any(fnmatch.fnmatch(name, pattern.lower()) for pattern in self.watch_config.patterns)

    def close(self) -> None:
        """Stop renewing leases and release the database."""
        self.intake.close()
        self.store.close()


def _freeze_heap() -> None:
    """Collect once, then freeze what is left: modules, fonts, tables, the seal's key.

    Those objects live as long as the process, yet every full collection walked them
    again: about 100 ms each, 1.4 ms per document processed (bench/HISTORY.md). Frozen
    objects are still freed by reference counting; only cycles among them would stay,
    which is why this is for the ``run`` process alone and not for callers that build
    engines and drop them (tests).

    The young generation is collected every 5,000 allocations instead of 700: what a
    document leaves for the collector is traced about once either way, while the objects
    of the document in hand were traced again at each of the small collections. Verifying
    146 signed consents in-process, collections took 0.27 ms per consent at 700 and 0.09
    at 5,000 (gc.callbacks; bench/HISTORY.md).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, older, oldest)


def build_applications(
    store: Store, settings: Settings, *, clock: Callable[[], datetime] | None = None
) -> Applications:
    """The application services with the office seal and the verifier the settings name.

    The seal's key is parsed once here, not per consent. Raises
    :class:`~workflow.signing.SignerError` or :class:`~workflow.verification.TrustRootError`
    naming the file when a configured key or root cannot be read.
    """
    sealer: Sealer | None = None
    seal_sha256: str | None = None
    seal_key_sha256: str | None = None
    if settings.seal.p12 is not None:
        passphrase = os.environ.get(settings.seal.passphrase_env)
        seal = Signer.from_p12(
            settings.resolve(settings.seal.p12), passphrase.encode() if passphrase else None
        )
        seal_sha256, seal_key_sha256 = seal.sha256, seal.key_sha256

        def sealer(data: bytes) -> bytes:
            return certify(data, seal)

    signature = settings.signature
    if not signature.trust_roots:
        log.warning(
            "no [signature] trust_roots configured: every file dropped in signed/ will be "
            "rejected as untrusted (consentflow demo-pki shows the lines to add)"
        )
    verifier = Verifier(
        SignaturePolicy(
            trust_roots=tuple(settings.resolve(path) for path in signature.trust_roots),
            signer_subject=signature.signer_subject,
            signer_fingerprints=signature.signer_fingerprints,
            revocation=signature.revocation,
            fetch=signature.fetch,
            require_timestamp=signature.require_timestamp,
            seal_certificate_sha256=seal_sha256,
            seal_key_sha256=seal_key_sha256,
        )
    )
    return Applications(
        store, settings, sealer=sealer, verifier=verifier, clock=clock, seal_sha256=seal_sha256
    )


__all__ = ["Claimed", "Engine", "StopSignal", "build_applications"]
