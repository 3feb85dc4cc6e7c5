"""Start-up of the command line (issue 16, SPEC §9 "quick to answer").

Each command is a fresh ``consentflow`` process, timed from start to exit, in the same run
as two references on the same machine: ``python -c pass`` (the interpreter alone) and
``pyhanko --help`` (a comparable command line). ``status`` and ``show`` read a home with
10,000 applications; ``check`` reads one filled EOI.

The starts are interleaved rounds (bench/rounds.py, issue 14): a round starts every
command in turn, five times over, so a slow minute slows a command and its references
alike. A time is the median of all its starts, and the budgets (issue 16) are judged on it.
A ratio is the median of the rounds' ratios of each command's fastest start in the round,
marked unreliable when those differ by more than 15 % between rounds on either side. The
fastest of a few starts is the figure the machine's other work disturbs least, as
``timeit``'s documentation says of its repeats; single starts of one round differed by up
to 58 % (2026-11-30, 15:58 UTC), the fastest of five by 4 to 12 %. Run one command's starts
after another's instead and ``status`` came out at 13.2× and 10.4× ``python -c pass`` in
two runs of 2026-11-30 (bench/HISTORY.md).

``python -m bench.startup`` measures this part alone and writes its section into
``bench/RESULTS.md``; ``python -m bench`` runs it with the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import Row, status
from bench.rounds import drift, pair_ratios

RESULTS = Path(__file__).with_name("RESULTS.md")
BEGIN = "<!-- startup: written by python -m bench.startup -->"
END = "<!-- /startup -->"

#: The budgets of issue 16 (seconds).
BUDGETS = {"--help": 0.15, "status": 0.3, "show": 0.3, "check": 0.6}

#: ``pyhanko --help`` on the machine where the budgets were set (issue 16: 0.40 s). A
#: budget is also shown scaled by this run's ``pyhanko --help`` over it: on a shared or
#: slower machine every process start is slower, and the budgets with it.
REFERENCE_PYHANKO_HELP = 0.40


@dataclass(frozen=True)
class Timing:
    """One command's wall times (seconds): each round's starts, rounds in order."""

    label: str
    rounds: tuple[tuple[float, ...], ...]

    @property
    def seconds(self) -> float:
        """The median of every start."""
        return statistics.median(t for starts in self.rounds for t in starts)

    @property
    def fastest(self) -> tuple[float, ...]:
        """Each round's fastest start."""
        return tuple(min(starts) for starts in self.rounds)


def _start(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def make_home(home: Path, applications: int) -> str:
    """A home with ``applications`` applications (schema by ``db upgrade``); one reference."""
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "workflow", "--home", str(home), "db", "upgrade"],
        check=True,
        capture_output=True,
    )
    fields = json.dumps({"org_name": "Benchmark Network", "services": "x" * 400, "website": "u"})
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for number in range(1, applications + 1):
        at = (now - timedelta(minutes=applications - number)).isoformat(sep=" ")
        rows.append(
            (
                f"SUP-2026-{number:05d}",
                "awaiting_review" if number % 3 else "consent_issued",
                f"Network {number}",
                f"network {number}|fi",
                "FI",
                "en",
                fields,
                "[]",
                "[]",
                f"{number:064x}",
                at,
                at,
            )
        )
    with sqlite3.connect(home / "consentflow.db") as connection:
        connection.executemany(
            "INSERT INTO applications (reference, state, org_name, org_key, country, lang, "
            "fields, problems, findings, eoi_sha256, received_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    return rows[len(rows) // 2][0]


def measure(
    work: Path, *, applications: int = 10_000, rounds: int = 5, starts: int = 5
) -> list[Timing]:
    """Time the references and the commands, ``rounds`` interleaved rounds of ``starts``
    starts of each; ``work`` is a scratch folder."""
    from tests.eoi_files import filled_eoi

    home = work / "startup-home"
    reference = make_home(home, applications)
    eoi = work / "startup-eoi.pdf"
    eoi.write_bytes(filled_eoi())
    env = {**os.environ, "CONSENTFLOW_HOME": str(home)}
    env.pop("CONSENTFLOW_DATABASE__URL", None)
    consentflow = str(Path(sys.executable).with_name("consentflow"))
    pyhanko = shutil.which("pyhanko", path=str(Path(sys.executable).parent)) or "pyhanko"
    commands = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("pyhanko --help", [pyhanko, "--help"]),
        ("--help", [consentflow, "--help"]),
        ("status", [consentflow, "status"]),
        ("show", [consentflow, "show", reference]),
        ("check", [consentflow, "check", str(eoi)]),
    ]
    for _, command in commands:  # warm the file cache and the bytecode once
        subprocess.run(command, env=env, capture_output=True, check=False)
    times: dict[str, list[tuple[float, ...]]] = {label: [] for label, _ in commands}
    for _ in range(rounds):
        round_times: dict[str, list[float]] = {label: [] for label, _ in commands}
        for _ in range(starts):
            for label, command in commands:
                round_times[label].append(_start(command, env))
        for label, values in round_times.items():
            times[label].append(tuple(values))
    return [Timing(label, tuple(times[label])) for label, _ in commands]


def _ratio(command: Timing, reference: Timing, fmt: str) -> str:
    """``command`` over ``reference`` from their rounds' pairs, with the guard's remark."""
    ratio = pair_ratios(command.fastest, reference.fastest)
    text = f"{ratio.text(fmt)}× {reference.label}"
    doubts = [
        drift(reference.fastest, what=reference.label),
        drift(command.fastest, what=f"consentflow {command.label}"),
    ]
    why = "; ".join(doubt for doubt in doubts if doubt)
    return f"{text} (unreliable: {why})" if why else text


def rows(timings: list[Timing], applications: int = 10_000) -> list[Row]:
    """The benchmark table's rows for these timings."""
    timing_of = {timing.label: timing for timing in timings}
    by_label = {timing.label: timing.seconds for timing in timings}
    floor = by_label["python -c pass"]
    out = [
        Row("startup", "python -c pass (the interpreter alone)", f"{floor * 1000:.0f} ms"),
        Row("startup", "pyhanko --help", f"{by_label['pyhanko --help'] * 1000:.0f} ms"),
    ]
    what = {
        "--help": "consentflow --help",
        "status": f"consentflow status ({applications:,} applications)",
        "show": "consentflow show REF",
        "check": "consentflow check (one EOI)",
    }
    scale = by_label["pyhanko --help"] / REFERENCE_PYHANKO_HELP
    for label, measure_name in what.items():
        seconds = by_label[label]
        budget = BUDGETS[label]
        out.append(
            Row(
                "startup",
                measure_name,
                f"{seconds * 1000:.0f} ms",
                f"{_ratio(timing_of[label], timing_of['python -c pass'], '.1f')}; "
                f"{_ratio(timing_of[label], timing_of['pyhanko --help'], '.2f')}",
                f"≤ {budget * 1000:.0f} ms ({budget * scale * 1000:.0f} ms at this run's speed)",
                f"{status(seconds <= budget)} ({status(seconds <= budget * scale)} scaled)",
            )
        )
    return out


def section(table: list[Row], command: str, *, rounds: int = 5, starts: int = 5) -> str:
    """The Markdown section of RESULTS.md for these rows."""
    lines = [
        BEGIN,
        "## Start-up of the command line",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{command}`: each command a "
        "fresh process, after one warm-up, in interleaved rounds with the two references "
        f"({rounds} rounds, each starting every command in turn, {starts} times over), on the "
        "machine below. "
        "A time is the median of all its starts; a ratio is the median of the rounds' "
        "ratios of each command's fastest start in the round, marked unreliable when those "
        "differ by more than 15 % between rounds on either side. A budget is also given scaled by "
        "this run's `pyhanko --help` over the 0.40 s it took where the budgets were set "
        "(issue 16), for a machine that is slower or shared with other work while measured.",
        "",
        "| measure | measured | compared with | target | met |",
        "|---|---|---|---|---|",
        *(f"| {r.measure} | {r.measured} | {r.reference} | {r.target} | {r.met} |" for r in table),
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Put ``text`` in ``path`` in place of the previous start-up section (or at its end)."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if BEGIN in old and END in old:
        head, _, rest = old.partition(BEGIN)
        _, _, tail = rest.partition(END)
        new = head + text.rstrip("\n") + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.startup``: measure, print, write the section of RESULTS.md."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--applications", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--starts", type=int, default=5, help="starts of each command a round")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--no-results", action="store_true", help="print only")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="consentflow-startup-"))
    try:
        table = rows(
            measure(work, applications=args.applications, rounds=args.rounds, starts=args.starts)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = section(table, "python -m bench.startup", rounds=args.rounds, starts=args.starts)
    print(text)
    if not args.no_results:
        write_section(args.results, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
