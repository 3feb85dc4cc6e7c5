"""`python -m bench.compare OLD NEW`: issue 14's test of two runs, ratio by ratio."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import compare
from bench.startup import RESULTS

HEADER = """# consentflow benchmark results

Date: {date} UTC; the run took 27 min.

## Machine

- CPU: AMD EPYC, 2 logical cores; 24 GiB memory

## Results

| area | measure | measured | compared with | target | met |
|------|---------|----------|---------------|--------|-----|
"""

ROWS = {
    "intake": "| intake | {n} EOIs, 1 worker, SQLite, 3 rounds | CPU 42.0 ms/doc "
    "| CPU {share} % (64–69 %) of floor; wall 67 % (61–67 %) | ≥ 80 % of floor (CPU) | {met} |",
    "speedup": "| intake | {n} EOIs, 2 workers, SQLite, 3 rounds | 40 docs/s "
    "| 1.66 (1.57–1.72)× 1 worker (wall, per pair); CPU 65 % (60–66 %) of floor | | |",
    "floor": "| floor | intake floor, rounds beside the SQLite engines | 30 ms "
    "| rounds apart: CPU {apart}%, wall 6% | | |",
    "startup": "| startup | consentflow status (10,000 applications) | 279 ms "
    "| {times}× python -c pass{remark}; 0.53 (0.50–0.56)× pyhanko --help | ≤ 300 ms "
    "| yes (yes scaled) |",
}


def results(
    tmp_path: Path,
    name: str,
    *,
    date: str = "2026-11-30 14:09",
    n: int = 300,
    share: int = 69,
    met: str = "**no**",
    apart: int = 6,
    times: str = "10.4 (9.8–11.0)",
    remark: str = "",
) -> Path:
    fields = {"n": n, "share": share, "met": met, "apart": apart, "times": times}
    rows = [row.format(**fields, remark=remark) for row in ROWS.values()]
    path = tmp_path / name
    path.write_text(HEADER.format(date=date) + "\n".join(rows) + "\n\n## Memory\n\n| a |\n")
    return path


def run(capsys: pytest.CaptureFixture[str], old: Path, new: Path) -> tuple[int, str]:
    code = compare.main([str(old), str(new)])
    return code, capsys.readouterr().out


def test_the_ratios_of_a_row_are_its_medians_and_guard_figures_are_left_out(
    tmp_path: Path,
) -> None:
    ratios = compare.read_run(results(tmp_path, "a.md").read_text()).ratios
    assert [(r.value, r.unit) for r in ratios.values()] == [
        (69.0, "%"), (67.0, "%"), (1.66, "×"), (65.0, "%"), (10.4, "×"), (0.53, "×"),
    ]  # fmt: skip
    # The sizes of a run are not part of a row's name: -n 200 and -n 300 are the same row.
    assert set(ratios) == set(compare.read_run(results(tmp_path, "b.md", n=200).read_text()).ratios)


def test_runs_a_day_apart_that_agree_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = results(tmp_path, "old.md", date="2026-11-30 14:09", share=69, apart=6)
    new = results(tmp_path, "new.md", date="2026-12-01 15:10", share=60, apart=40)
    code, out = run(capsys, old, new)
    assert code == 0
    assert "Apart: 25 h 01 min" in out
    assert "| 69 % | 60 % | 15% | agree |" in out  # 69 / 60 is 1.15: at the limit, agreeing
    assert "6 agree, 0 apart but marked, 0 apart and unmarked" in out


def test_a_ratio_apart_by_more_than_15_percent_fails_unless_a_run_marks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = results(tmp_path, "old.md")
    new = results(tmp_path, "new.md", times="13.2 (12.9–13.6)")
    code, out = run(capsys, old, new)
    assert code == 1
    assert "| 10.4× | 13.2× | 27% | DISAGREE |" in out

    marked = results(
        tmp_path, "marked.md", times="13.2 (9.0–13.6)",
        remark=" (unreliable: python -c pass rounds differ by 46%, more than 15%)",
    )  # fmt: skip
    code, out = run(capsys, old, marked)
    assert code == 0
    assert "| 10.4× | 13.2× (marked) | 27% | marked |" in out

    # A remark with two reasons is one part: its "; " does not start another ratio (the
    # second reason's "29%" was read as the next part's ratio, in the place of 0.53×).
    two_reasons = results(
        tmp_path, "two.md", times="13.2 (9.0–13.6)",
        remark=" (unreliable: python -c pass rounds differ by 46%, more than 15%; "
        "consentflow status rounds differ by 29%, more than 15%)",
    )  # fmt: skip
    code, out = run(capsys, old, two_reasons)
    assert code == 0, out
    assert "| 0.53× | 0.53× | 0% | agree |" in out
    assert "6 agree" not in out and "5 agree, 1 apart but marked, 0 apart" in out

    # The met column marks every ratio of its row, in either run.
    old = results(tmp_path, "old.md", met="unreliable (engine CPU rounds differ by 19%)")
    new = results(tmp_path, "new.md", share=50)
    code, out = run(capsys, old, new)
    assert code == 0
    assert "| 69 % (marked) | 50 % | 38% | marked |" in out
    assert "| 67 % (marked) | 67 % | 0% | agree |" in out


def test_a_file_without_a_results_table_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.md"
    other.write_text("# notes\n\nno table here\n")
    code = compare.main([str(other), str(results(tmp_path, "ok.md"))])
    assert code == 2
    assert "no '## Results' section" in capsys.readouterr().err


def test_the_committed_results_agree_with_themselves(capsys: pytest.CaptureFixture[str]) -> None:
    # bench/RESULTS.md as the bench writes it: every row format the comparison must read.
    code, out = run(capsys, RESULTS, RESULTS)
    ratios = compare.read_run(RESULTS.read_text(encoding="utf-8")).ratios
    assert code == 0
    assert len(ratios) >= 20
    assert {key[0].split(" | ")[0] for key in ratios} >= {"intake", "verify", "startup", "web"}
    assert f"{len(ratios)} agree, 0 apart but marked, 0 apart and unmarked" in out
