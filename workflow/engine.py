"""The engine: settings → store, services, intake and watcher, and the loop that runs them.

``consentflow run`` builds one :class:`Engine` and calls :meth:`Engine.run`. Start-up
order matters: check the schema and the folders, finish what a crash left behind
(outbox copies, ``.processing/``, auto-approvals), then watch.
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
from pathlib import Path

from sqlalchemy.exc import OperationalError

from workflow.applications import Applications, Sealer
from workflow.archive import remove_stale_temp_files
from workflow.config import Settings
from workflow.intake import Claimed, FolderError, Intake, Processor
from workflow.signing import Signer, certify
from workflow.store import Store
from workflow.verification import SignaturePolicy, Verifier
from workflow.watching import WatchConfig, Watcher

HEARTBEAT_S = 60.0

log = logging.getLogger("consentflow")


class Engine:
    """Everything ``run`` needs, built once per process."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or Store(settings.database_url, clock=clock)
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
        )
        self.watch_config = WatchConfig(
            folders=tuple(folders.values()),
            stability_s=settings.intake.stability_ms / 1000,
            polling_interval_s=settings.intake.polling_interval_s,
            rescan_interval_s=settings.intake.rescan_interval_s,
        )

    def start(self) -> None:
        """Check the schema and the folders and recover from an earlier crash."""
        for folder in (self.settings.outbox, self.settings.archive, self.settings.failed):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise FolderError(f"{folder} cannot be created: {exc.strerror}") from exc
            removed = remove_stale_temp_files(folder, older_than_s=self.settings.intake.lease_s)
            if removed:
                log.info("removed %d unfinished temporary file(s) from %s", removed, folder)
        self._wait_for_database()
        self.intake.prepare()
        self.applications.warm_up()
        self.intake.recover()
        self._follow_up()  # outbox copies and auto consents a crash left undone

    def _wait_for_database(self) -> None:
        delay = 1.0
        while True:
            try:
                self.store.ensure_schema()
                return
            except OperationalError as exc:
                log.warning(
                    "database unavailable (%s); retrying in %.0f s",
                    str(exc).splitlines()[0][:200],
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def _follow_up(self) -> None:
        restored = self.applications.restore_outbox()
        issued = self.applications.issue_pending_auto()
        if restored or issued:
            log.info("caught up: %d outbox copies restored, %d consents issued", restored, issued)

    def run_once(self) -> None:
        """Process what is in the folders now, then return (``run --once``)."""
        self.start()
        for folder in self.intake.folders.values():
            for path in sorted(folder.iterdir()):
                if path.is_file() and self._wanted(path):
                    self.intake.offer(path)
        self.intake.tick()

    def run(self, stop: threading.Event | None = None, *, freeze_heap: bool = False) -> None:
        """Watch and process until ``stop`` is set (or forever).

        With ``freeze_heap`` (``consentflow run``, a process that does nothing else), what
        start-up loaded is moved out of the garbage collector's reach; see `_freeze_heap`.
        """
        stop = stop or threading.Event()
        self.start()
        if freeze_heap:
            _freeze_heap()
        watcher = Watcher(self.watch_config, log=logging.getLogger("consentflow.watch"))
        watcher.start()
        log.info(
            "watching %s via %s (review = %s, database %s)",
            ", ".join(str(folder) for folder in self.watch_config.folders),
            watcher.mode,
            self.settings.review.mode,
            self.store.engine.url.render_as_string(hide_password=True),
        )
        last_beat = time.monotonic()
        try:
            while not stop.is_set():
                for path in watcher.ready(timeout=0.2):
                    if stop.is_set():
                        break  # what is left stays in the folder for the next start
                    self._guarded(self.intake.offer, path)
                    watcher.forget(path)
                    # Between files too: a backlog must not hold back retries that are due
                    # or the sweep that resumes a dead worker's claims within the lease.
                    self._guarded(self.intake.tick)
                self._guarded(self.intake.tick)
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    last_beat = time.monotonic()
                    self._heartbeat(watcher)
        finally:
            watcher.stop()
            log.info("stopped")

    def _guarded(self, step: Callable[..., None], *args: Path) -> None:
        # Whatever one file does (a full disk while writing failed/, a bug), the loop
        # goes on: the file stays in .processing/ and the lease sweep resumes it.
        try:
            step(*args)
        except Exception:
            log.exception("error in the intake loop; the file stays claimed and is resumed later")
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

    def _wanted(self, path: Path) -> bool:
        name = path.name.lower()
        if any(fnmatch.fnmatch(name, pattern.lower()) for pattern in self.watch_config.ignore):
            return False
        return any(fnmatch.fnmatch(name, pattern.lower()) for pattern in self.watch_config.patterns)

    def close(self) -> None:
        """Release the database."""
        self.store.close()


def _freeze_heap() -> None:
    """Collect once, then freeze what is left: modules, fonts, tables, the seal's key.

    Those objects live as long as the process, yet every full collection walked them
    again: about 100 ms each, 1.4 ms per document processed (bench/HISTORY.md). Frozen
    objects are still freed by reference counting; only cycles among them would stay,
    which is why this is for the ``run`` process alone and not for callers that build
    engines and drop them (tests).
    """
    gc.collect()
    gc.freeze()


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
    if settings.seal.p12 is not None:
        passphrase = os.environ.get(settings.seal.passphrase_env)
        seal = Signer.from_p12(
            settings.resolve(settings.seal.p12), passphrase.encode() if passphrase else None
        )
        seal_sha256 = seal.sha256

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
        )
    )
    return Applications(store, settings, sealer=sealer, verifier=verifier, clock=clock)


__all__ = ["Claimed", "Engine", "build_applications"]
