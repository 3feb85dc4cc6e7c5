"""``run --workers N``: N engine processes on one home folder and one database.

Workers cooperate through the file system and the database only, exactly as
``run`` processes on several hosts do: a file is claimed by an atomic rename into
``.processing/`` (a lost race is a ``FileNotFoundError`` and nothing else), its
ledger row carries a lease, and application changes take row locks. This module
only starts the processes, forwards signals, and restarts a worker that dies.

A worker that dies is started again after a pause that doubles while it keeps dying
young (1 s, 2 s, 4 s … at most 30 s): a crash loop costs little, and a worker killed
once, even twice in a row, is simply back. The supervisor gives up only when a worker
exits 78 (a configuration, database or folder problem that a restart cannot mend: the
worker said which), or when one has kept dying young for `GIVE_UP_AFTER_S`.
"""

from __future__ import annotations

import gc
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

from workflow.config import Settings

log = logging.getLogger("consentflow.workers")

#: Exit status of a worker that found a problem no restart can mend (sysexits EX_CONFIG).
EX_CONFIG = 78
#: A worker that ran this long before dying was healthy: its next death starts afresh.
HEALTHY_AFTER_S = 60.0
#: A worker that keeps dying young for this long makes the supervisor give up.
GIVE_UP_AFTER_S = 300.0
#: First and longest pause before a restart.
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0


@dataclass
class _Slot:
    """One worker: its process, or when it is due to be started again."""

    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deaths: int = 0  # deaths in a row, each after less than HEALTHY_AFTER_S
    dying_since: float | None = None  # when that run of young deaths began
    restart_at: float | None = None


class _Signals:
    """The signals received, for the supervisor's loop; the handler only records."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        """Signal handler: append, nothing else (no lock, no I/O)."""
        self.received.append(signum)


def supervise(
    settings: Settings,
    workers: int,
    *,
    once: bool,
    verbose: bool,
    clock: Callable[[], float] = time.monotonic,
    stop_requested: Callable[[], bool] = lambda: False,
) -> int:
    """Run ``workers`` engine processes until stopped (or, with ``once``, until all finish).

    ``stop_requested`` tells of a stop signal the caller's own handler took before this
    function installed its handlers: then no worker is started. Returns the exit status
    for the ``run`` command: 0 after a stop, 78 when a worker reported a problem no restart
    can mend, 1 when a worker kept dying for minutes.
    """
    if settings.database_url.startswith("sqlite"):
        log.warning(
            "%d workers on SQLite: SQLite lets one process write at a time, so workers "
            "take turns on every commit; use PostgreSQL ([database] url) for throughput",
            workers,
        )
    # The dashboard is served by the supervisor's process, never by each worker.
    command = [sys.executable, "-m", "workflow", "--home", str(settings.home), "run", "--no-web"]
    if once:
        command.append("--once")
    if verbose:
        command.append("--verbose")
    signals = _Signals()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signals.handler)  # before any worker exists to be orphaned
    if stop_requested():
        return 0
    # What the CLI imported lives as long as this process: out of the collector's reach, it
    # no longer costs the 0.5-0.8 s of collection that exiting took (a stop is a restart).
    gc.collect()
    gc.freeze()
    supervisor = _Supervisor(command, workers, once=once, clock=clock)
    forwarded = 0
    while not supervisor.finished:
        while forwarded < len(signals.received):  # forwarded here, outside the handler
            supervisor.stop(signals.received[forwarded])
            forwarded += 1
        supervisor.step()
        time.sleep(0.2)
    return supervisor.status


class _Supervisor:
    """The worker slots and what to do when a worker exits."""

    def __init__(
        self, command: list[str], workers: int, *, once: bool, clock: Callable[[], float]
    ) -> None:
        self.command = command
        self.once = once
        self.clock = clock
        self.slots = [_Slot() for _ in range(workers)]
        self.stopping = False
        self.status = 0
        for index in range(workers):
            self._start(index)

    @property
    def finished(self) -> bool:
        """No worker runs and none is due to start again."""
        return all(slot.process is None and slot.restart_at is None for slot in self.slots)

    def stop(self, signum: int) -> None:
        """Pass ``signum`` to every running worker and restart none."""
        self.stopping = True
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signum)

    def step(self) -> None:
        """Collect workers that exited; restart the ones that are due."""
        now = self.clock()
        for index, slot in enumerate(self.slots):
            if slot.process is None:
                if slot.restart_at is not None and now >= slot.restart_at and not self.stopping:
                    self._start(index)
                continue
            code = slot.process.poll()
            if code is not None:
                self._exited(index, slot, code, now)

    def _start(self, index: int) -> None:
        slot = self.slots[index]
        slot.process = subprocess.Popen(self.command)
        slot.started, slot.restart_at = self.clock(), None
        log.info("worker %d started (pid %d)", index + 1, slot.process.pid)

    def _exited(self, index: int, slot: _Slot, code: int, now: float) -> None:
        pid = slot.process.pid if slot.process is not None else 0
        slot.process = None
        if self.once or self.stopping:
            self.status = max(self.status, code if code > 0 else 0)
            return
        log.warning("worker %d (pid %d) exited with %d", index + 1, pid, code)
        if code == EX_CONFIG:
            log.error(
                "worker %d stopped on a problem a restart cannot mend (exit 78, see its "
                "message above); stopping all workers",
                index + 1,
            )
            self.status = EX_CONFIG
            self.stop(signal.SIGTERM)
        elif not _schedule_restart(slot, index, now):
            self.status = 1
            self.stop(signal.SIGTERM)


def _schedule_restart(slot: _Slot, index: int, now: float) -> bool:
    """Plan the restart of a worker that died; False when it is time to give up."""
    if now - slot.started >= HEALTHY_AFTER_S:
        slot.deaths, slot.dying_since = 0, None
    slot.deaths += 1
    if slot.dying_since is None:
        slot.dying_since = now
    elif now - slot.dying_since >= GIVE_UP_AFTER_S:
        log.error(
            "worker %d died %d times in a row, each within %.0f s of its start, for %.0f s; "
            "giving up (its log above says why)",
            index + 1,
            slot.deaths,
            HEALTHY_AFTER_S,
            now - slot.dying_since,
        )
        return False
    pause = min(FIRST_PAUSE_S * 2 ** (slot.deaths - 1), LONGEST_PAUSE_S)
    slot.restart_at = now + pause
    log.info("restarting worker %d in %.0f s", index + 1, pause)
    return True
