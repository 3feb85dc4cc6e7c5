"""``run --workers N``: N engine processes on one home folder and one database.

Workers cooperate through the file system and the database only, exactly as
``run`` processes on several hosts do: a file is claimed by an atomic rename into
``.processing/`` (a lost race is a ``FileNotFoundError`` and nothing else), its
ledger row carries a lease, and application changes take row locks. This module
only starts the processes, forwards signals, and restarts a worker that dies.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from types import FrameType

from workflow.config import Settings

log = logging.getLogger("consentflow.workers")

#: A worker that dies sooner than this after its start is not restarted in a loop.
_MIN_UPTIME_S = 5.0


def supervise(settings: Settings, workers: int, *, once: bool, verbose: bool) -> int:
    """Run ``workers`` engine processes until stopped (or, with ``once``, until all finish)."""
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
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.poll() is None:
                process.send_signal(signum)

    def start(index: int) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command)
        log.info("worker %d started (pid %d)", index + 1, process.pid)
        return process

    processes = [start(index) for index in range(workers)]
    started = [time.monotonic()] * workers
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    worst = 0
    while True:
        alive = False
        for index, process in enumerate(processes):
            code = process.poll()
            if code is None:
                alive = True
                continue
            if once or stopping:
                worst = max(worst, code if code > 0 else 0)
                continue
            log.warning("worker %d (pid %d) exited with %d", index + 1, process.pid, code)
            if time.monotonic() - started[index] < _MIN_UPTIME_S:
                log.error("worker %d keeps failing at start; stopping all workers", index + 1)
                stop(signal.SIGTERM, None)
                worst = max(worst, code if code > 0 else 1)
                continue
            processes[index] = start(index)
            started[index] = time.monotonic()
            alive = True
        if not alive:
            return worst
        time.sleep(0.2)
