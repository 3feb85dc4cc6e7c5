"""A throwaway PostgreSQL server for fault tests: its own data folder, port, and life.

The fault tests must stop and restart the database under running workers, which the
shared test server (``CONSENTFLOW_TEST_DATABASE_URL``) must never be put through. This
server is made with the Debian server binaries (``initdb``, ``pg_ctl``) in a temporary
folder, trusts every local connection, listens on a free port of 127.0.0.1 only, and
is deleted when closed. ``initdb`` refuses to run as root, so under root the server
runs as an unprivileged user (``postgres``, else ``nobody``) via ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

#: Where Debian puts the server binaries when they are not on PATH.
_DEBIAN_BIN = Path("/usr/lib/postgresql")
_USERS = ("postgres", "nobody")


class PgServerError(Exception):
    """The server cannot be made here (no binaries, no unprivileged user); says why."""


def find_binary(name: str) -> Path | None:
    """``name`` (``initdb``, ``pg_ctl``…) on PATH, else in the newest Debian server folder."""
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    for version in sorted(_DEBIAN_BIN.glob("*/bin"), reverse=True):
        if (version / name).is_file():
            return version / name
    return None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgServer:
    """One PostgreSQL cluster in a temporary folder; :meth:`close` removes everything."""

    def __init__(self) -> None:
        initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise PgServerError(
                "the PostgreSQL server binaries (initdb, pg_ctl) are not installed "
                "(Debian: apt-get install postgresql)"
            )
        self.initdb = initdb
        self.pg_ctl = pg_ctl
        self.user = _server_user()
        # Not under pytest's tmp_path: its parents are root-only, and the server user
        # must reach its data folder.
        self.root = Path(tempfile.mkdtemp(prefix="consentflow-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self._as_server_user(
            [str(self.initdb), "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
        )  # fmt: skip

    @property
    def admin_url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` maintenance database."""
        return self.url("postgres")

    def url(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3) of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        # fsync off: this cluster is thrown away, and the tests stop it cleanly.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        self._as_server_user(
            [str(self.pg_ctl), "-D", str(self.data), "-l", str(self.log), "-o", options,
             "-w", "-t", "60", "start"],
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once, as a crash would for clients."""
        self._as_server_user(
            [str(self.pg_ctl), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"]
        )

    def restart(self) -> None:
        """Stop and start again (same port, same data)."""
        self.stop()
        self.start()

    def running(self) -> bool:
        """Whether the server's postmaster is up."""
        result = subprocess.run(
            self._command([str(self.pg_ctl), "-D", str(self.data), "status"]),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if self.data.is_dir() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def _dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def _command(self, argv: list[str]) -> list[str]:
        if self.user is None:
            return argv
        return ["runuser", "-u", self.user.pw_name, "--", *argv]

    def _as_server_user(self, argv: list[str]) -> None:
        started = time.monotonic()
        result = subprocess.run(
            self._command(argv), capture_output=True, check=False, cwd=self.root, timeout=120
        )
        if result.returncode != 0:
            raise PgServerError(
                f"{Path(argv[0]).name} failed after {time.monotonic() - started:.1f} s "
                f"(exit {result.returncode}): {result.stderr.decode(errors='replace')[-2000:]}"
                f"\n{self.log_tail()}"
            )


def _server_user() -> pwd.struct_passwd | None:
    """The user to run the server as: ``None`` (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    if shutil.which("runuser") is None:
        raise PgServerError("running as root and runuser is missing: initdb refuses root")
    for name in _USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PgServerError(
        f"running as root and none of the users {', '.join(_USERS)} exists: initdb refuses root"
    )
