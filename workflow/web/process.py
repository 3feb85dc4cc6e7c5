"""``consentflow run`` serving the dashboard: ``consentflow web`` as a child process.

The dashboard runs in a process of its own beside the engine, so that people using it
never hold the engine's interpreter (its GIL) while a document waits, and a fault in
one cannot stop the other. This module imports nothing heavy: ``run`` starts the
child, checks that it listens, restarts it if it dies, and stops it on the way out.
"""

from __future__ import annotations

import logging
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("consentflow.web")

#: Exit code of a child that cannot start for a reason a restart will not cure.
_CONFIG_EXIT = 78
#: A child that dies sooner than this after its start is restarted after a pause.
_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class WebStartError(Exception):
    """The dashboard could not start (its message says why)."""


class WebProcess:
    """``consentflow --home HOME web`` in a child process, kept running until stopped."""

    def __init__(self, home: Path, host: str, port: int) -> None:
        self.command = [
            sys.executable, "-m", "workflow", "--home", str(home), "web", "--with-parent"
        ]  # fmt: skip
        self.address = (host or "127.0.0.1", port)
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(
        self, *, timeout: float = 60.0, should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Start the child and return once it listens; raise `WebStartError` if it exits,
        or if ``should_stop()`` turns true first (the child is then stopped, not waited
        for: a stop asked of ``run`` while the child starts must not wait for it to
        listen, which took 3.6 s on a loaded 2-core machine, 2026-12-01)."""
        self._spawn(timeout, should_stop)
        self._watcher = threading.Thread(target=self._watch, name="web-watch", daemon=True)
        self._watcher.start()

    def _spawn(self, timeout: float, should_stop: Callable[[], bool] = lambda: False) -> None:
        # The child shares our standard error: it prints the address and the first admin's
        # link there. Its standard input is a pipe we never write to (it exits when we do);
        # on its standard output it says one line, once it listens.
        process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._process = process
        assert process.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            if should_stop():
                process.terminate()
                process.wait()
                raise WebStartError("stopped before the dashboard listened")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill()
                raise WebStartError(f"the dashboard did not listen within {timeout:.0f} s")
            ready, _, _ = select.select([process.stdout], [], [], min(remaining, 0.1))
            if ready:
                if process.stdout.readline().strip() == b"listening":
                    return
                process.wait(10)  # its output ended: it is exiting
            code = process.poll()
            if code is not None:
                raise WebStartError(
                    f"the dashboard at {self.address[0]}:{self.address[1]} could not start "
                    f"(exit {code}; its message is above)"
                )

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            process = self._process
            if process is None or process.poll() is None:
                self._stopping.wait(1.0)
                continue
            if process.returncode == 0:
                return  # stopped on purpose (a signal to the whole process group)
            if process.returncode == _CONFIG_EXIT:
                log.error("the dashboard stopped: its configuration is wrong (exit 78)")
                return
            pause = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
            log.warning("the dashboard exited with %d; restarting in %.0f s",
                        process.returncode, pause)  # fmt: skip
            if self._stopping.wait(pause):
                return
            try:
                self._spawn(60.0)
                failures = 0
            except (WebStartError, OSError) as exc:
                failures += 1
                log.warning("the dashboard did not restart: %s", exc)

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after 15 s) and stop restarting it."""
        self._stopping.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(5)
