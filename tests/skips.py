"""One line on the skipped tests, for ``tests/run`` to end with (issue 16).

pytest's own summary lists skips among hundreds of lines; a run that skipped the
PostgreSQL or the tool-dependent tests must say so where it is read: at the very end.
With ``CONSENTFLOW_SKIP_SUMMARY=FILE`` the hook writes the line to FILE, and
``tests/run`` prints it after pytest's last line.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

#: What runs every test (README "Running the tests").
HOW_TO_RUN_ALL = (
    ".ci/run runs them all (it installs the Debian tools and sets "
    "CONSENTFLOW_TEST_DATABASE_URL and CONSENTFLOW_REQUIRE_TOOLS=1)"
)


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return str(text).removeprefix("Skipped: ").strip()


def skip_summary(stats: dict[str, list[Any]]) -> str:
    """``N of M tests skipped: count reason; …`` from the terminal reporter's stats."""
    tests = {
        report.nodeid
        for key in ("passed", "failed", "skipped", "error", "xfailed", "xpassed")
        for report in stats.get(key, [])
        if hasattr(report, "nodeid") and report.nodeid
    }
    skipped = [report for report in stats.get("skipped", []) if hasattr(report, "nodeid")]
    if not skipped:
        return f"tests/run: none of {len(tests)} tests skipped"
    reasons = Counter(_reason(report) for report in skipped)
    why = "; ".join(f"{count} because {reason}" for reason, count in reasons.most_common())
    return f"tests/run: {len(skipped)} of {len(tests)} tests skipped: {why}. {HOW_TO_RUN_ALL}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Write the line to ``$CONSENTFLOW_SKIP_SUMMARY`` when that is set."""
    target = os.environ.get("CONSENTFLOW_SKIP_SUMMARY")
    if target:
        Path(target).write_text(skip_summary(terminalreporter.stats) + "\n", encoding="utf-8")
