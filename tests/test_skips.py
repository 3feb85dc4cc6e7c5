"""tests/run's last line: how many tests were skipped and why (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SAMPLE = """
import pytest

def test_one():
    pass

def test_two():
    pass

@pytest.mark.parametrize("n", [1, 2])
def test_needs_a_server(n):
    pytest.skip("CONSENTFLOW_TEST_DATABASE_URL is not set (.ci/run sets it)")

def test_needs_a_tool():
    pytest.skip("pdftk is not installed")
"""


def _summary(tmp_path: Path, source: str) -> str:
    (tmp_path / "test_sample.py").write_text(source)
    out = tmp_path / "summary.txt"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.skips", "test_sample.py"],
        cwd=tmp_path,
        env={**os.environ, "CONSENTFLOW_SKIP_SUMMARY": str(out), "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=True,
    )
    return out.read_text()


def test_the_line_counts_skips_by_reason(tmp_path: Path) -> None:
    line = _summary(tmp_path, SAMPLE)
    assert line.count("\n") == 1
    assert line.startswith("tests/run: 3 of 5 tests skipped: ")
    assert "2 because CONSENTFLOW_TEST_DATABASE_URL is not set (.ci/run sets it)" in line
    assert "1 because pdftk is not installed" in line
    assert ".ci/run runs them all" in line


def test_no_skips(tmp_path: Path) -> None:
    assert _summary(tmp_path, "def test_one():\n    pass\n") == (
        "tests/run: none of 1 tests skipped\n"
    )


def test_tests_run_prints_it_last() -> None:
    script = (REPO / "tests" / "run").read_text()
    assert 'CONSENTFLOW_SKIP_SUMMARY="$summary" .venv/bin/pytest' in script
    assert script.rstrip().endswith('cat "$summary" 2>/dev/null || true\nexit "$status"')
