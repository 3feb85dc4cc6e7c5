"""Crash safety: SIGKILL at random moments while files arrive loses and duplicates nothing."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.eoi_files import broken_pdf, filled_eoi, invalid_eoi
from workflow.config import load_settings
from workflow.states import State
from workflow.store import Store

KILLS = 10


def _corpus(directory: Path) -> list[Path]:
    """200 files: 120 valid, 30 invalid, 30 byte-identical duplicates, 20 broken."""
    rng = random.Random(7)
    directory.mkdir()
    files: list[Path] = []
    valid = [filled_eoi(org_name=f"Network {n:03d}") for n in range(120)]
    for n, data in enumerate(valid):
        files.append(directory / f"valid-{n:03d}.pdf")
        files[-1].write_bytes(data)
    for n in range(30):
        files.append(directory / f"invalid-{n:03d}.pdf")
        files[-1].write_bytes(invalid_eoi(org_name=f"Invalid {n:03d}"))
    for n in range(30):
        files.append(directory / f"again-{n:03d}.pdf")
        files[-1].write_bytes(valid[rng.randrange(len(valid))])
    for n in range(20):
        files.append(directory / f"broken-{n:03d}.pdf")
        files[-1].write_bytes(broken_pdf(valid[n]) + f"{n}".encode())
    rng.shuffle(files)
    return files


def _engine(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "workflow", "--home", str(home), "run", "--no-web"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkill_during_a_burst_loses_nothing(tmp_path: Path, database_url: str) -> None:
    """200 files, ten SIGKILLs and restarts: every file accounted for once, no consent twice."""
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    files = _corpus(tmp_path / "source")
    env = {
        **os.environ,
        "CONSENTFLOW_DATABASE__URL": database_url,
        "CONSENTFLOW_REVIEW__MODE": "auto",
        "CONSENTFLOW_INTAKE__STABILITY_MS": "200",
        "CONSENTFLOW_INTAKE__INCOMPLETE_GRACE_S": "2",
    }

    def drop() -> None:
        for path in files:
            temp = home / "inbox" / f".{path.name}.part"
            shutil.copyfile(path, temp)
            os.rename(temp, home / "inbox" / path.name)
            time.sleep(0.02)

    dropper = threading.Thread(target=drop)
    dropper.start()
    rng = random.Random(11)
    for _ in range(KILLS):
        engine = _engine(home, env)
        time.sleep(rng.uniform(1.0, 3.0))
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    dropper.join()
    finish = subprocess.run(
        [sys.executable, "-m", "workflow", "--home", str(home), "run", "--once"],
        env=env,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert finish.returncode == 0, finish.stderr.decode()[-3000:]

    store = Store(load_settings(home, database={"url": database_url}).database_url)
    apps = store.applications()
    items = store.items()
    failed = sorted(p.name for p in (home / "failed").iterdir() if p.suffix == ".pdf")
    by_name = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files}

    # Every file dropped has exactly one final ledger row, and nothing is left behind.
    final = [item for item in items if item.status in ("done", "duplicate", "failed")]
    assert sorted(item.original_name for item in final) == sorted(by_name)
    assert not [item for item in items if item.status == "claimed"]
    assert list((home / "inbox" / ".processing").iterdir()) == []
    assert [p.name for p in (home / "inbox").iterdir()] == [".processing"]

    # One application per distinct readable file; duplicates and broken files accounted for.
    distinct = {sha for name, sha in by_name.items() if not name.startswith("broken")}
    assert sorted(app.eoi_sha256 for app in apps) == sorted(distinct)
    copies = len([n for n in by_name if not n.startswith("broken")]) - len(distinct)
    assert len([item for item in items if item.status == "duplicate"]) == copies
    assert failed == sorted(n for n in by_name if n.startswith("broken"))

    # No consent issued twice: one consent document and one outbox file per valid application.
    issued = [app for app in apps if app.state == State.CONSENT_ISSUED]
    assert len(issued) == 120
    assert len({app.issued_sha256 for app in issued}) == 120
    outbox = sorted(p.name for p in (home / "outbox").iterdir() if not p.name.startswith("."))
    assert outbox == sorted(f"{app.reference}.pdf" for app in issued)
    consent_events = [e for e in store.events() if e.to_state == State.CONSENT_ISSUED]
    assert len(consent_events) == 120

    assert store.verify_chain().ok
    store.close()
