"""The start-up part of the benchmark (bench/startup.py) runs and fills its table."""

from __future__ import annotations

from pathlib import Path

from bench import startup


def test_startup_part_measures_every_command(tmp_path: Path) -> None:
    timings = startup.measure(tmp_path, applications=50, runs=1)
    assert [t.label for t in timings] == [
        "python -c pass", "pyhanko --help", "--help", "status", "show", "check",
    ]  # fmt: skip
    assert all(t.seconds > 0 for t in timings)
    rows = startup.rows(timings, applications=50)
    assert [row.target.split(" (")[0] for row in rows[2:]] == [
        "≤ 150 ms", "≤ 300 ms", "≤ 300 ms", "≤ 600 ms",
    ]  # fmt: skip
    results = tmp_path / "RESULTS.md"
    results.write_text("# results\n\nearlier text\n")
    startup.write_section(results, startup.section(rows, "test"))
    startup.write_section(results, startup.section(rows, "test"))
    text = results.read_text()
    assert text.count(startup.BEGIN) == 1
    assert "earlier text" in text
    assert "consentflow status (50 applications)" in text
