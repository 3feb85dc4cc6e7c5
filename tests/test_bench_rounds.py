"""bench/rounds.py: the statistics and the guard of interleaved rounds (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest

from bench.__main__ import Run, _intake_rows, _verification_rows, parse
from bench.report import Row
from bench.rounds import (
    Sample,
    doubt,
    drift,
    impossible_scaling,
    interleave,
    pair_ratios,
    spread,
    tree_cpu,
    uneven_waits,
    verdict,
)
from bench.web import beside_row


def test_a_spread_is_the_median_and_the_extremes_of_its_rounds() -> None:
    figure = spread([30.0, 50.0, 40.0])
    assert (figure.median, figure.low, figure.high) == (40.0, 30.0, 50.0)
    assert figure.relative == pytest.approx(50 / 30 - 1)
    assert figure.text(".1f", "ms") == "40.0 (30.0–50.0) ms"
    assert spread([0.5, 0.7, 0.6]).percent() == "60 % (50–70 %)"
    assert spread([12.0]).text(".0f") == "12"
    with pytest.raises(ValueError, match="no rounds"):
        spread([])


def test_a_ratio_is_the_median_of_the_pairs_not_the_ratio_of_the_medians() -> None:
    # Round 2 of both is slow (a busy minute): pairwise, the ratio is steady at 0.5.
    engine = [2.0, 4.0, 2.2]
    floor = [1.0, 2.0, 1.1]
    ratios = pair_ratios(floor, engine)
    assert ratios.values == (0.5, 0.5, 0.5)
    assert ratios.median == 0.5
    # The ratio of the medians mixes rounds: 1.1 / 2.2 here, but not in general.
    assert pair_ratios([1.0, 3.0, 1.0], [1.0, 2.0, 2.0]).median == 1.0
    assert spread([1.0, 3.0, 1.0]).median / spread([1.0, 2.0, 2.0]).median == 0.5
    with pytest.raises(ValueError, match="3 rounds against 2"):
        pair_ratios([1.0, 2.0, 3.0], [1.0, 2.0])


def test_floor_rounds_apart_by_more_than_15_percent_make_the_figure_unreliable() -> None:
    assert drift([30.0, 32.0, 34.0]) is None  # 13 %
    assert drift([30.0, 34.4]) is None  # 14.7 %
    reason = drift([30.1, 57.2, 31.0])  # the run of issue 14: 90 % apart
    assert reason == "floor rounds differ by 90%, more than 15%"
    assert (
        drift([10.0, 12.0], what="pdfsig", limit=0.1)
        == "pdfsig rounds differ by 20%, more than 10%"
    )
    assert drift([30.0]) is None  # one round cannot drift


def test_more_than_n_times_on_n_cores_is_impossible() -> None:
    assert impossible_scaling(spread([1.8, 1.9, 2.0]), workers=2, cores=2) is None
    reason = impossible_scaling(spread([1.9, 3.61, 2.0]), workers=2, cores=2)
    assert reason == "a round gave 3.61×, more than 2× is impossible on 2 cores"
    # Four workers on two cores can still not go past two.
    assert impossible_scaling(spread([2.3]), workers=4, cores=2) is not None
    assert impossible_scaling(spread([3.5]), workers=4, cores=8) is None


def test_an_unreliable_figure_is_neither_met_nor_missed() -> None:
    assert verdict(True) == "yes"
    assert verdict(False, None, None) == "**no**"
    met = verdict(True, drift([30.1, 57.2]), None)
    missed = verdict(False, drift([30.1, 57.2]))
    assert met == missed == "unreliable (floor rounds differ by 90%, more than 15%)"
    both = verdict(True, "a", "b")
    assert both == "unreliable (a; b)"
    # A figure without a target says nothing unless it is unreliable.
    assert doubt(None, None) == ""
    assert doubt(None, drift([30.1, 57.2])) == met


def rounds(*cpu_ms: float, busy: float = 1.0) -> list[Sample]:
    """Rounds of 10 items each, taking ``cpu_ms`` per item of CPU time and ``cpu_ms / busy``
    of wall time (``busy`` 2.0: two cores busy throughout)."""
    return [Sample(10, ms / 100 / busy, ms / 100) for ms in cpu_ms]


def test_a_speed_up_is_unreliable_when_its_workers_waited_more_than_one_did() -> None:
    """X3 and X4 (one code, an hour apart, steady rounds) gave the verifier's speed-up as
    1.41× and 1.63×: one worker was busy 94 % of its time, each of two 80 %."""
    one = rounds(12.8, 12.5, 13.2, busy=0.94)
    assert uneven_waits(one, rounds(15.0, 14.3, 15.8, busy=1.60), workers=2) == (
        "2 workers busy 80% of their time each, 1 worker 94%: more than 15% apart"
    )
    # The SQLite intake of the same run: 95 % alone, 88 % each of two: 8 % apart, no mark.
    assert uneven_waits(rounds(48.5, busy=0.95), rounds(48.2, busy=1.76), workers=2) is None
    # Two workers busier than one (a slow minute for the one worker) is not this guard's.
    assert uneven_waits(rounds(40.0, busy=0.80), rounds(40.0, busy=2.0), workers=2) is None

    run = Run(parse(["--quick"]))
    samples = {"floor": rounds(20.0, 20.1, 20.2), "engine": one,
               "engine-2": rounds(15.0, 14.3, 15.8, busy=1.60)}  # fmt: skip
    _verification_rows(run, samples, per_round=10)
    assert run.rows[1].met == (
        "unreliable (2 workers busy 80% of their time each, 1 worker 94%: more than 15% apart)"
    )


def test_a_peer_ratio_is_unreliable_when_the_engine_rounds_drifted() -> None:
    """Against `pyhanko sign validate` and `pdfsig`, the engine's side is guarded too."""

    steady, drifted = rounds(20.0, 21.0, 20.5), rounds(20.0, 25.0, 21.0)
    for engine, unsure in ((steady, False), (drifted, True)):
        run = Run(parse(["--quick"]))
        samples = {
            "floor": rounds(15.0, 15.2, 15.1),
            "engine": engine,
            "engine-2": rounds(26.0, 26.2, 26.1, busy=1.8),
            "pyhanko": rounds(500.0, 505.0, 502.0),
            "pdfsig": rounds(8.0, 8.1, 8.0),
        }
        _verification_rows(run, samples, per_round=10)
        share, speedup, pyhanko, one, two = run.rows[0:5]
        assert share.met == (  # no target: a mark only when unreliable
            "unreliable (engine CPU rounds differ by 25%, more than 15%)" if unsure else ""
        )
        assert speedup.met == (
            "unreliable (1-worker engine rounds differ by 25%, more than 15%)" if unsure else ""
        )
        assert pyhanko.met == (
            "unreliable (engine rounds differ by 25%, more than 15%)" if unsure else "yes"
        )
        assert one.met == (
            "unreliable (1-worker engine rounds differ by 25%, more than 15%)"
            if unsure
            else "**no**"
        )
        assert two.met == "**no**"  # the 2-worker engine's rounds were steady


def test_an_intake_ratio_is_unreliable_when_the_engine_rounds_drifted() -> None:
    """Against the floor, the engine's side is guarded too: its CPU rounds for the share of
    the floor, each engine's rates for the 2-worker speed-up."""

    steady, drifted = rounds(40.0, 41.0, 40.5), rounds(40.0, 50.0, 41.0)
    for engine, unsure in ((steady, False), (drifted, True)):
        run = Run(parse(["--quick"]))
        samples = {
            "floor": rounds(30.0, 30.2, 30.1),
            "1w": engine,
            "2w": rounds(48, 48, 48, busy=1.8),
        }
        _intake_rows(run, samples, "PostgreSQL", target=False)
        _, one, two = run.rows
        assert one.met == ("unreliable (engine CPU rounds differ by 25%, more than 15%)"
                           if unsure else "**no**")  # fmt: skip
        assert two.met == ("unreliable (1-worker engine rounds differ by 25%, more than 15%)"
                           if unsure else "")  # fmt: skip
        _intake_rows(run := Run(parse(["--quick"])), samples, "PostgreSQL", target=True)
        assert run.rows[1].met == (
            "unreliable (engine CPU rounds differ by 25%, more than 15%)" if unsure else ""
        )  # no target: only a doubt
        assert run.rows[2].met == ("unreliable (1-worker engine rounds differ by 25%, more "
                                   "than 15%)" if unsure else "**no**")  # fmt: skip


def test_intake_beside_the_dashboard_is_judged_by_pairs_and_guarded() -> None:
    """Run C's row moved 16 % from A2's with no mark: either kind of batch drifting now
    marks it, and the ratio is the median of each round's pair."""

    def row(quiet: list[float], polled: list[float]) -> Row:
        rows: list[Row] = []
        cpu = {"quiet": [40.0] * len(quiet), "polled": [41.0] * len(polled)}
        beside_row(lambda *a: rows.append(Row(*a)), {"quiet": quiet, "polled": polled}, cpu,
                   batch=100)  # fmt: skip
        (only,) = rows
        return only

    steady = row([20.0, 21.0, 20.5], [19.0, 20.0, 18.5])
    assert steady.met == "yes"
    assert steady.reference.startswith("95 % (90–95 %) of 20.5 (20.0–21.0) docs/s")
    assert row([20.0, 21.0, 20.5], [17.0, 17.5, 17.2]).met == "**no**"
    assert row([20.0, 24.0, 20.5], [19.0, 20.0, 19.5]).met == (
        "unreliable (batches without clients rounds differ by 20%, more than 15%)"
    )
    assert row([20.0, 21.0, 20.5], [16.0, 20.0, 18.5]).met == (
        "unreliable (batches with clients rounds differ by 25%, more than 15%)"
    )
    # Pairs, not medians: 93 %, where the ratio of the medians (18.6 / 21) says 89 %.
    paired = row([20.0, 28.0, 21.0], [18.6, 27.0, 18.2])
    assert paired.reference.startswith("93 % (87–96 %)")
    assert paired.met.startswith("unreliable (batches without clients rounds differ by 40%")
    assert row([30.0], [20.0]).met == "**no**"  # the quick mode's single round


def test_rounds_take_turns_and_keep_their_order() -> None:
    order: list[str] = []

    def contender(name: str, items: int) -> tuple[str, Callable[[int], Sample]]:
        def run(k: int) -> Sample:
            order.append(f"{name}{k}")
            return Sample(items, wall_s=k + 1.0, cpu_s=(k + 1.0) / 2)

        return name, run

    samples = interleave(3, [contender("floor", 1), contender("engine", 10)])
    assert order == ["floor0", "engine0", "floor1", "engine1", "floor2", "engine2"]
    assert [s.wall_ms for s in samples["engine"]] == [100.0, 200.0, 300.0]
    assert [s.busy for s in samples["floor"]] == [0.5, 0.5, 0.5]
    assert samples["engine"][1].rate == 5.0
    with pytest.raises(ValueError):
        interleave(0, [])


def test_a_sample_per_item_and_without_cpu() -> None:
    sample = Sample.per_item(40.0, 38.0)
    assert (sample.wall_ms, sample.cpu_ms) == pytest.approx((40.0, 38.0))
    with pytest.raises(ValueError, match="no CPU time"):
        Sample(5, 1.0).cpu_ms  # noqa: B018


def test_tree_cpu_counts_a_grandchild_alive_and_after_it_ended() -> None:
    """A worker's CPU is the engine's: live children by /proc, ended ones by cutime."""
    burn = "import time\nwhile time.process_time() < 0.3: pass\n"
    parent = textwrap.dedent(
        f"""
        import subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", {burn!r} + "input()"],
                                 stdin=subprocess.PIPE)
        print("burning", flush=True)
        sys.stdin.readline()
        child.communicate(b"\\n")  # the child ends and is waited for
        print("reaped", flush=True)
        sys.stdin.readline()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        assert process.stdout.readline() == "burning\n"
        # Wait (by CPU, not by clock) until the grandchild has burnt its 0.3 s.
        deadline = 600
        while tree_cpu(process.pid) < 0.3 and deadline:
            deadline -= 1
            subprocess.run([sys.executable, "-c", "import time; time.sleep(0.1)"], check=True)
        assert tree_cpu(process.pid) >= 0.3
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.stdout.readline() == "reaped\n"
        assert tree_cpu(process.pid) >= 0.3  # now in the parent's cutime
    finally:
        process.stdin.write("\n")
        process.stdin.flush()
        process.wait(timeout=60)


def test_verification_rounds_are_sized_apart_from_the_intake_runs() -> None:
    # Rounds of 88 to 98 consents and of 200 `pdfsig` files lasted a second or two and
    # drifted apart by up to 43 % on a shared machine (bench/HISTORY.md), so a full run
    # verifies 300 a round, however few EOIs its intake runs take.
    assert parse(["-n", "300"]).verify_n == 300
    assert parse(["-n", "300"]).pdfsig_files == 300
    assert parse(["--verify-n", "120"]).verify_n == 120
    # The quick mode and `python -m bench.verify --engine -n 200` verify what -n allows.
    assert parse(["--quick"]).verify_n == 8
    assert parse(["--quick", "-n", "200"]).verify_n == 98
