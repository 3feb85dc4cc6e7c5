"""Running ``consentflow`` as a real process, as an operator or a service manager would,
and waiting for what it does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.conftest import STRICT

#: Root without the capabilities that bypass file permissions: the kernel checks modes,
#: owners and the sticky bit as for any user (the interpreter lives under /root, so
#: switching to another user could not even start Python).
WITHOUT_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner")


def without_override() -> tuple[str, ...]:
    """The command prefix that makes permissions real for this test process's user."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        message = "setpriv (util-linux) is missing: cannot drop root's permission override"
        if STRICT:
            pytest.fail(message)
        pytest.skip(message)
    return WITHOUT_OVERRIDE


def consentflow(
    home: Path,
    *args: str,
    database_url: str | None = None,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``consentflow --home HOME ARGS`` to its end; the database is ``home/cf.db`` unless
    ``database_url`` says otherwise."""
    environment = {
        **os.environ,
        "CONSENTFLOW_DATABASE__URL": database_url or f"sqlite:///{home / 'cf.db'}",
        **(env or {}),
    }
    return subprocess.run(
        [*prefix, sys.executable, "-m", "workflow", "--home", str(home), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll until ``predicate`` holds or ``timeout`` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
