"""The benchmark's quick mode runs to the end and prints its table (no timing thresholds)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_completes_and_prints_the_table() -> None:
    """`python -m bench --quick` exits 0 and prints the results table."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("| area") and "| measured" in line for line in lines), done.stdout
    areas = ["floor", "intake", "latency", "verify", "memory", "idle", "web", "mail"]
    if os.environ.get("CONSENTFLOW_TEST_DATABASE_URL"):
        areas.append("scale")  # the 4-worker burst runs on PostgreSQL only
    for area in areas:
        assert any(line.startswith(f"| {area} ") for line in lines), area
    # The burst's exactly-once account is a correctness check, not a timing: it must hold.
    assert not any(line.startswith("| scale ") and "**no**" in line for line in lines), lines
