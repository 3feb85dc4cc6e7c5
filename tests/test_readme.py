"""The README's walkthrough, run literally from its code blocks (issue 16): it cannot drift.

The ``sh`` blocks of "Five-minute walkthrough" run line by line in a fresh home folder
whose ``.venv`` is this interpreter's environment; the ``python`` block is written to the
file its first comment names. The one substitution: the reference's year, which is the
year of the day the test runs (references are ``SUP-<year>-<number>``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import REPO


def _walkthrough() -> list[tuple[str, str]]:
    """``(language, text)`` of each fenced block in the walkthrough section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Five-minute walkthrough", 1)[1].split("\n## ", 1)[0]
    section = section.split("\n### ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)


def test_the_walkthrough_covers_the_whole_loop() -> None:
    """form, fill by script, drop, status, approve, demo PKI, sign, verify, drop signed, audit."""
    text = "\n".join(code for _, code in _walkthrough())
    for step in (
        "consentflow form eoi",
        "fill_eoi.py",
        "cp filled.pdf inbox/",
        "consentflow status",
        "consentflow approve",
        "consentflow demo-pki",
        "consentflow sign",
        "consentflow verify",
        "mv signed.pdf signed/",
        "consentflow audit verify",
    ):
        assert step in text, step


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CONSENTFLOW_") or key == "CONSENTFLOW_REQUIRE_TOOLS"
    }
    year = f"SUP-{datetime.now(UTC).year}-"
    outputs: list[tuple[str, str]] = []
    for language, code in _walkthrough():
        if language == "python":
            name = re.match(r"# (\S+\.py)", code)
            assert name, "the python block's first line names its file"
            (home / name.group(1)).write_text(code, encoding="utf-8")
            continue
        assert language == "sh"
        for line in code.splitlines():
            command = line.split("  #", 1)[0].strip().replace("SUP-2026-", year)
            if not command:
                continue
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=home,
                env=environment,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-3000:])
            assert "Traceback" not in result.stderr, command
            outputs.append((command, result.stdout))
    said = dict(outputs)
    status = next(out for command, out in outputs if command.endswith("consentflow status"))
    assert f"{year}00001  awaiting_review" in status
    verified = next(out for command, out in outputs if "verify signed.pdf" in command)
    assert "accepted" in verified
    assert "[ok] not_issued_here" not in verified  # read as the opposite of what it means
    assert "[ok] issued here:" in verified
    assert "None" not in verified
    assert f"{year}00001  signed" in said[".venv/bin/consentflow status --state signed"]
    assert "audit trail intact" in said[".venv/bin/consentflow audit verify"]
    fields = json.loads(
        subprocess.run(
            [str(home / ".venv" / "bin" / "consentflow"), "form", "fields", "--json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert {field["name"] for field in fields} >= {"org_name", "org_type", "consent_privacy"}
