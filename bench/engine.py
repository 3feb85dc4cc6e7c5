"""A consentflow home with a running ``consentflow run`` process, as an operator would have it.

The engine runs as a separate process (``python -m workflow --home H run``), exactly
as deployed; the bench only drops files, watches folders and reads ``/proc``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from workflow.audit_key import AuditKey, load_key
from workflow.demo_pki import DemoPki, make_demo_pki

_CLK_TCK = os.sysconf("SC_CLK_TCK")
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class Memory:
    """Resident set size of one process, in MiB: now and the peak so far."""

    rss_mib: float
    peak_mib: float


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def serve_web(
    root: Path, url: str, *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``consentflow web`` over the home ``root`` (its log in ``root/web.log``), once
    ``url`` answers its health check; ``env``: the child's environment (default: ours
    without any ``CONSENTFLOW_*`` variable, as the engines start: see :func:`home_key`)."""
    import httpx

    if env is None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTFLOW_")}
    with (root / "web.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workflow", "--home", str(root), "web"],
            stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"consentflow web did not answer; see {root / 'web.log'}")


def home_key(root: Path) -> AuditKey:
    """The audit key of a bench home as its engines read it: they start without any
    ``CONSENTFLOW_*`` variable, so it is the home's ``audit.key`` (made when missing),
    never this process's ``CONSENTFLOW_AUDIT_KEY`` (which the test session sets)."""
    return load_key(root, environ={})


def memory(pid: int) -> Memory:
    """``VmRSS`` and ``VmHWM`` from ``/proc/PID/status``."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB
    return Memory(values["VmRSS"], values["VmHWM"])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far (``/proc/PID/stat`` utime + stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # fields 14 and 15 of stat(5)


def postgres_url() -> str:
    """This bench process's own PostgreSQL database: the test server's, with ``_bench_PID``
    appended.

    ``CONSENTFLOW_TEST_DATABASE_URL`` names the server (as for the tests); the bench
    empties its database at every reset, so it never uses the tests' database itself, nor
    another bench run's: on a shared machine, a quick run started elsewhere emptied a
    full run's database under its running engine (issue 14). :func:`drop_postgres`
    removes it at the end.
    """
    server = make_url(os.environ.get("CONSENTFLOW_TEST_DATABASE_URL", PG_DEFAULT))
    own = server.set(database=f"{server.database}_bench_{os.getpid()}")
    return own.render_as_string(hide_password=False)


def _libpq(url: str) -> tuple[str, str, str]:
    """``url`` as psycopg takes it, the same server's ``postgres`` database (where a database
    is created or dropped), and the name of ``url``'s database."""
    plain = make_url(url).set(drivername="postgresql")
    admin = plain.set(database="postgres")
    return (
        plain.render_as_string(hide_password=False),
        admin.render_as_string(hide_password=False),
        plain.database or "",
    )


def drop_postgres(url: str) -> None:
    """Drop the database of ``url`` if it exists (and the server can be reached)."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return
    _, server, name = _libpq(url)
    try:
        with psycopg.connect(server, connect_timeout=5, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip
    except psycopg.Error:
        return


def reset_postgres(url: str) -> str | None:
    """Create the database if needed and empty its ``public`` schema; return the server
    version, or None when PostgreSQL cannot be reached."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError:
        return None
    plain, server, name = _libpq(url)
    try:
        with psycopg.connect(server, connect_timeout=5, autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if found.fetchone() is None:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        with psycopg.connect(plain, connect_timeout=5, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else "?"


class Home:
    """A fresh home folder with the demo PKI, ``review = "auto"`` and the office seal."""

    def __init__(
        self, root: Path, *, database_url: str = "sqlite:///consentflow.db",
        polling_interval_s: float = 0, pki: DemoPki | None = None,
    ) -> None:  # fmt: skip
        """Lay out ``root`` (it must not exist) and write ``consentflow.toml``."""
        self.root = root
        root.mkdir(parents=True)
        for name in ("inbox", "signed", "stage"):
            (root / name).mkdir()
        self.pki = pki or make_demo_pki(root / "pki")
        (root / "consentflow.toml").write_text(
            "[database]\n"
            f"url = {json.dumps(database_url)}\n\n"
            "[review]\n"
            'mode = "auto"\n\n'
            "[intake]\n"
            f"polling_interval_s = {polling_interval_s}\n\n" + self.pki.config_text
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.workers = 0
        self.log_path = root / "engine.log"

    # -- the engine process -----------------------------------------------------------

    def start(self, workers: int = 1, *, timeout: float = 60, web: bool = False) -> None:
        """Start ``consentflow run`` (``--workers N`` for N > 1) and wait until it watches;
        with ``web``, serving the dashboard on the home's ``[web] listen``."""
        command = [sys.executable, "-m", "workflow", "--home", str(self.root), "run"]
        command += [] if web else ["--no-web"]  # the engine alone, unless asked
        if workers > 1:
            command += ["--workers", str(workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTFLOW_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root
            )
        self.workers = workers
        deadline = time.monotonic() + timeout
        while self.log_path.read_text(errors="replace").count(" watching ") < workers:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start; see {self.log_path}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        """The engine's process id (the supervisor's, with several workers)."""
        if self.process is None:
            raise RuntimeError("not started")
        return self.process.pid

    def stop(self) -> None:
        """Stop the engine the way an operator would (SIGTERM) and wait for it."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # -- files ------------------------------------------------------------------------

    def stage(self, docs: Iterable[tuple[str, bytes]]) -> list[Path]:
        """Write files to ``stage/`` (outside the watched folders), ready to be renamed in."""
        paths = []
        for name, data in docs:
            path = self.root / "stage" / name
            path.write_bytes(data)
            paths.append(path)
        return paths

    def drop(self, paths: list[Path], folder: str) -> float:
        """Rename staged files into ``folder`` at once; return the moment before the first."""
        start = time.perf_counter()
        target = self.root / folder
        for path in paths:
            path.rename(target / path.name)
        return start

    def count(self, folder: str) -> int:
        """Regular files directly in ``folder`` (not hidden)."""
        with os.scandir(self.root / folder) as entries:
            return sum(1 for e in entries if not e.name.startswith(".") and e.is_file())

    def busy(self, folder: str) -> bool:
        """Whether ``folder`` still has files waiting or being processed."""
        processing = self.root / folder / ".processing"
        if self.count(folder):
            return True
        if processing.is_dir():
            with os.scandir(processing) as entries:
                return any(True for _ in entries)
        return False

    def wait_idle(
        self, folder: str, *, done: Callable[[], bool] | None = None, timeout: float,
    ) -> float:  # fmt: skip
        """Wait until ``folder`` is drained (and ``done()`` holds); return the moment it was."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            now = time.perf_counter()
            if not self.busy(folder):
                if done is None or done():
                    return now
                # Drained but not done: something went elsewhere (failed/); stop waiting.
                quiet_since = quiet_since or now
                if now - quiet_since > 5:
                    raise RuntimeError(f"{folder}/ drained but the expected outcome is missing")
            time.sleep(0.02)
        raise TimeoutError(f"{folder}/ not drained after {timeout:.0f} s; see {self.log_path}")

    def states(self) -> dict[str, int]:
        """Applications per state, from ``consentflow status --json``."""
        out = subprocess.run(
            [sys.executable, "-m", "workflow", "--home", str(self.root), "status", "--json"],
            check=True, capture_output=True, cwd=self.root,
            env={k: v for k, v in os.environ.items() if not k.startswith("CONSENTFLOW_")},
        ).stdout  # fmt: skip
        counts: dict[str, int] = {}
        for app in json.loads(out):
            counts[app["state"]] = counts.get(app["state"], 0) + 1
        return counts
