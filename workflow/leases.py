"""Who holds a claimed file: worker names, whether a holder still runs, and lease renewal.

A worker holds each file it claimed through the lease on its ledger row (``intake.lease_s``).
Another worker resumes the file once the lease has lapsed, or at once when the holder was a
process of this host that no longer runs. While a worker processes a file, :class:`LeaseKeeper`
renews that lease from a thread of its own, so that a long verification never lets another
worker take over a file that is still in hand.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError

from workflow.store import Store

#: Short tag of this host in claim names (a hostname can be long or contain dots).
HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def worker_id() -> str:
    """This process's name in leases: ``host:pid:random`` (the random part survives pid reuse)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_alive(owner: str) -> bool:
    """Whether a lease owner may still be running: false only for a gone process of this host."""
    host, _, rest = owner.partition(":")
    pid_text, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return True  # another host: only its lease expiry can tell
    if int(pid_text) == os.getpid():
        return False  # an earlier intake of this process (the caller checks its own name)
    return pid_alive(int(pid_text))


class LeaseKeeper:
    """Renews the leases of the ledger rows one worker holds, every third of a lease.

    Rows are held while in hand (`holding`) or while waiting for a retry (`hold` …
    `release`). The renewal runs on a daemon thread started with the first hold, so that
    it goes on while the worker's own thread is busy with one long file; it renews only
    rows this worker still owns, never taking one back from a worker that resumed it.
    """

    def __init__(
        self, store: Store, *, owner: str, lease_s: float, log: logging.Logger | None = None
    ) -> None:
        self.store = store
        self.owner = owner
        self.lease_s = lease_s
        self.log = log or logging.getLogger("consentflow.intake")
        self._held: dict[int, int] = {}  # item id -> how many holds
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_at = 0.0

    def lease_until(self) -> datetime:
        """The end of a lease taken or renewed now."""
        return datetime.now(UTC) + timedelta(seconds=self.lease_s)

    def hold(self, item_id: int) -> None:
        """Keep renewing ``item_id``'s lease until it is released as often as it was held."""
        with self._lock:
            self._held[item_id] = self._held.get(item_id, 0) + 1
            if self._thread is None and not self._closed.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="consentflow-leases", daemon=True
                )
                self._thread.start()

    def release(self, item_id: int) -> None:
        """Undo one `hold`."""
        with self._lock:
            count = self._held.get(item_id, 0) - 1
            if count > 0:
                self._held[item_id] = count
            else:
                self._held.pop(item_id, None)

    @contextmanager
    def holding(self, item_id: int) -> Iterator[None]:
        """Renew ``item_id``'s lease for the duration of the block."""
        self.hold(item_id)
        try:
            yield
        finally:
            self.release(item_id)

    @property
    def held(self) -> list[int]:
        """The ids held now."""
        with self._lock:
            return list(self._held)

    def renew(self) -> None:
        """Renew every held lease now (the thread calls this every third of a lease)."""
        held = self.held
        if not held:
            return
        try:
            with self.store.tx() as tx:
                tx.renew(held, owner=self.owner, lease_until=self.lease_until())
        except DBAPIError as exc:
            if time.monotonic() - self._warned_at >= self.lease_s:
                self._warned_at = time.monotonic()
                first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
                self.log.warning("database unavailable (%s); leases not renewed", first)

    def close(self) -> None:
        """Stop renewing (the worker is done with the store)."""
        self._closed.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._closed.wait(self.lease_s / 3):
            try:
                self.renew()
            except Exception:  # a bug here must not end renewal for good
                self.log.exception("renewing leases failed; trying again in %.0f s", self.lease_s)
