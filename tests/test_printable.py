"""Text from outside cannot print a fake line (issue 15): the CLI and the engine's log.

An applicant names the EOI file so that its name holds a newline and a made-up log
line. On c1fb782 `consentflow log`, `show` and the engine's log printed that line as a
line of their own, indistinguishable from a real state change.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from tests.eoi_files import filled_eoi
from workflow.cli import app
from workflow.config import load_settings
from workflow.printable import printable
from workflow.store import Store

#: A line as `consentflow log` prints a real Commission signature.
FAKE = "2026-11-29T12:00:00Z SUP-2026-00001 commission state consent_issued→signed: signed"
EVIL_NAME = f"eoi.pdf\n{FAKE}\x1b[2K\r.pdf"

runner = CliRunner()


def cli(home: Path, *args: str) -> tuple[int, str]:
    """Run ``consentflow --home HOME ARGS``; return exit code and standard output."""
    result = runner.invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout


def _no_fake_line(output: str) -> None:
    lines = output.splitlines()
    assert not [line for line in lines if line.lstrip().startswith(FAKE[:30])], output
    assert "\x1b" not in output and "\r" not in output


@pytest.fixture
def evil_home(tmp_path: Path, database_url: str) -> tuple[Path, str]:
    """A home where the engine (a real `consentflow run --once`) took the evil file; its
    standard error is the engine's log."""
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    (home / "consentflow.toml").write_text(f'[database]\nurl = "{database_url}"\n')
    (home / "inbox" / EVIL_NAME).write_bytes(filled_eoi(org_name=f"Evil\n{FAKE}"))
    result = subprocess.run(
        [sys.executable, "-m", "workflow", "--home", str(home), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return home, result.stderr


def test_printable_escapes_controls_and_keeps_every_script() -> None:
    """Controls, separators and bidi overrides are escaped; letters of any script are not."""
    assert printable("a\nb\r\tc\x1b[31m\x7f\x85") == "a\\nb\\r\\tc\\x1b[31m\\x7f\\x85"
    assert printable("x\u2028y\u202ez\u2066") == "x\\u2028y\\u202ez\\u2066"
    assert printable("Δίκτυο Zürich Łódź 東京 → ✓") == "Δίκτυο Zürich Łódź 東京 → ✓"


def test_the_engine_log_keeps_one_line_per_record(evil_home: tuple[Path, str]) -> None:
    """The engine's log names the file with its newline escaped."""
    _home, log = evil_home
    _no_fake_line(log)
    assert "eoi.pdf\\n2026-11-29T12:00:00Z" in log


def test_log_show_and_status_keep_one_line_per_item(evil_home: tuple[Path, str]) -> None:
    """`log`, `show` and `status` print the name and the organisation escaped, while
    their JSON keeps the exact text."""
    home, _ = evil_home
    code, out = cli(home, "log")
    assert code == 0
    _no_fake_line(out)
    assert "received as eoi.pdf\\n2026" in out

    code, out = cli(home, "status", "--json")
    [row] = json.loads(out)
    reference = row["reference"]
    code, out = cli(home, "show", reference)
    assert code == 0
    _no_fake_line(out)
    assert "received as eoi.pdf\\n2026" in out

    # The organisation's name as the form gave it (a form value may be changed to hold
    # anything by whoever fills the PDF by script): stored exactly, printed escaped.
    store = Store(load_settings(home).database_url)
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE applications SET org_name = :name"), {"name": f"Evil\n{FAKE}"}
        )
    store.close()
    code, out = cli(home, "status")
    assert code == 0
    _no_fake_line(out)
    assert f"Evil\\n{FAKE}" in out
    code, out = cli(home, "log", "--json")
    assert any(EVIL_NAME in event["reason"] for event in json.loads(out))
