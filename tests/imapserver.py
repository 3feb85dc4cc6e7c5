"""A real IMAP server for the tests: Debian's Dovecot, started from tests/dovecot/dovecot.conf
on 127.0.0.1 with a maildir in a temporary folder (``dovecot -c FILE``)."""

from __future__ import annotations

import imaplib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, STRICT
from tests.pgserver import free_port

CONFIG = REPO / "tests" / "dovecot" / "dovecot.conf"
USER = "office@localhost"
PASSWORD = "secret"  # a throwaway test account


def need_dovecot() -> str:
    """The dovecot binary, or skip (fail under CONSENTFLOW_REQUIRE_TOOLS)."""
    found = shutil.which("dovecot") or (
        "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
    )
    if found is None:
        message = "dovecot is not installed (Debian package dovecot-imapd; see .ci/run)"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return found


class Dovecot:
    """One Dovecot instance on a free port; ``stop()`` and ``start()`` keep its mail."""

    def __init__(self) -> None:
        self.binary = need_dovecot()
        # Its mail processes run as nobody, who must pass through every parent folder:
        # pytest's temporary folders are private (0700), so this one is made apart.
        self.root = Path(tempfile.mkdtemp(prefix="consentflow-dovecot-"))
        self.root.chmod(0o711)
        root = self.root
        self.port = free_port()
        for name in ("run", "state", "mail"):
            (root / name).mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(root / "mail", 65534, 65534)
        (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        self.config = root / "dovecot.conf"
        text = CONFIG.read_text().replace("@ROOT@", str(root)).replace("@PORT@", str(self.port))
        self.config.write_text(text)

    @property
    def url(self) -> str:
        """``[mail] imap_url`` for the INBOX."""
        return f"imap://office%40localhost@127.0.0.1:{self.port}/INBOX"

    def start(self) -> Dovecot:
        """Start it and wait until it answers."""
        # Its children keep the parent's stdout and stderr open: never capture them.
        with (self.root / "start.log").open("ab") as log:
            subprocess.run(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=log, check=True
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start: {(self.root / 'dovecot.log').read_text()}")

    def stop(self) -> None:
        """Stop it (its mail stays)."""
        subprocess.run(
            ["doveadm", "-c", str(self.config), "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (self.root / "run" / "master.pid").exists():
            time.sleep(0.05)

    def kill(self) -> None:
        """Kill it and its children at once (SIGKILL): connections drop without a BYE."""
        pid = int((self.root / "run" / "master.pid").read_text().split()[0])
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        (self.root / "run" / "master.pid").unlink(missing_ok=True)

    def remove(self) -> None:
        """Stop it and remove its folder."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self) -> imaplib.IMAP4:
        """A logged-in imaplib client (for the tests' own APPEND, STORE, DELETE…)."""
        client = imaplib.IMAP4("127.0.0.1", self.port)
        client.login(USER, PASSWORD)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver a message to ``folder``."""
        client = self.client()
        try:
            typ, data = client.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
            assert typ == "OK", data
        finally:
            client.logout()
