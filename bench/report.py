"""The table and ``RESULTS.md``: machine, versions, date, table, targets, how to reproduce."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.__main__ import Run

_HEADER = ("area", "measure", "measured", "compared with", "target", "met")


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank, as every bench row states its p95)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    area: str
    measure: str
    measured: str
    reference: str = ""
    target: str = ""
    met: str = ""


#: The table's verdicts as the target list at the end of RESULTS.md says them; anything
#: else (``unreliable (why)``, bench/rounds.py) is said as it is.
_TARGET_WORDS = {"yes": "met", "**no**": "MISSED"}


def status(ok: bool) -> str:
    """The table's verdict for a target."""
    return "yes" if ok else "**no**"


def render_table(rows: list[Row]) -> str:
    """A Markdown table, readable as plain text too."""
    cells = [_HEADER, *((r.area, r.measure, r.measured, r.reference, r.target, r.met)
                        for r in rows)]  # fmt: skip
    widths = [max(len(row[i]) for row in cells) for i in range(len(_HEADER))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in cells]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _pdfsig_version() -> str:
    try:
        out = subprocess.run(["pdfsig", "-v"], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return "not installed"
    return (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else "?"


def machine() -> list[str]:
    """Lines describing the machine and the software versions."""
    packages = ("consentflow", "pypdf", "reportlab", "pyHanko", "pyhanko-certvalidator",
                "pyhanko-cli", "SQLAlchemy", "watchdog", "psycopg", "cryptography")  # fmt: skip
    return [
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores; {_memory_gib():.0f} GiB memory",
        f"- OS: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        + ", ".join(f"{name} {_version(name)}" for name in packages),
        f"- {_pdfsig_version()}",
    ]


def print_run(run: Run) -> str:
    """Print the run's table and its notes (every ``bench`` command ends so); return the table."""
    table = render_table(run.rows)
    print(table)
    for note in run.notes:
        print(f"note: {note}")
    return table


def render_results(run: Run, table: str, argv: list[str] | None) -> str:
    """The whole of ``RESULTS.md`` for one run."""
    options = run.options
    args = sys.argv[1:] if argv is None else argv
    command = ".venv/bin/python -m bench" + "".join(f" {a}" for a in args)
    minutes = (time.time() - run.started) / 60
    lines = [
        "# consentflow benchmark results",
        "",
        "Written by `python -m bench` (issue 6); do not edit by hand, run it again.",
        "",
        f"Date: {time.strftime('%Y-%m-%d %H:%M %Z', time.localtime(run.started))}; "
        f"the run took {minutes:.0f} min.",
        "",
        *methodology_section(),
        "## Machine",
        "",
        *machine(),
        f"- PostgreSQL: {run.postgres or 'not reached'}",
        "",
        "## How to reproduce",
        "",
        "```sh",
        command,
        "```",
        "",
        f"Sizes: {options.n} EOIs per intake run (1 in 10 invalid), memory up to "
        f"{options.memory_n} documents, a burst of {options.scale_n} files for 4 workers, "
        f"latency {options.latency_valid} valid + "
        f"{options.latency_invalid} invalid files one at a time, {options.verify_n} signed "
        "consents per verification round, `pyhanko sign validate` on "
        f"{options.pyhanko_files} files and `pdfsig` on {options.pdfsig_files}, idle "
        f"{options.idle_s:.0f} s. Every engine is a real `consentflow run` process on a fresh "
        'home folder with the demo PKI, the office seal and `review = "auto"`; 2 workers '
        "are `run --workers 2`. The floor is each library step called directly on the "
        "same documents in the same run.",
        "",
        "## Results",
        "",
        table,
        "",
    ]
    if run.notes:
        lines += ["Notes:", "", *(f"- {note}" for note in run.notes), ""]
    lines += ["## Memory by documents processed (one engine process)", "",
              "| documents | RSS MiB | peak RSS MiB |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {docs} | {rss:.0f} | {peak:.0f} |" for docs, rss, peak in run.memory_curve]
    lines.append("")
    if run.profile is not None:
        profile = run.profile
        lines += [
            "## Where an engine's time goes (cProfile)",
            "",
            f"{profile.docs} EOIs processed by an in-process engine under cProfile: "
            f"{profile.wall_ms_per_doc:.1f} ms per document (profiling inflates this). "
            "Time in C functions is charged to the package that called them.",
            "",
            "| code | ms per document |",
            "|---|---|",
            *(f"| {name} | {ms:.2f} |" for name, ms in profile.groups.items() if ms >= 0.05),
            "",
        ]
    lines += history_section()
    lines += ["## Targets", ""]
    lines += [
        f"- {row.target}: {row.measured} ({row.measure}; {row.reference}) — "
        f"{_TARGET_WORDS.get(row.met, row.met)}"
        for row in run.rows
        if row.target
    ]
    lines.append("")
    return "\n".join(lines)


#: Before and after figures for the targets a run missed, written by hand as they are worked
#: on (the issue asks for both in RESULTS.md, which a run rewrites whole).
HISTORY = Path(__file__).with_name("HISTORY.md")


#: How the figures are made (issue 14), written by hand; read when RESULTS.md is written.
METHODOLOGY = Path(__file__).with_name("METHODOLOGY.md")


def methodology_section() -> list[str]:
    """The lines of ``bench/METHODOLOGY.md`` under their heading, or none without the file."""
    if not METHODOLOGY.is_file():
        return []
    body = METHODOLOGY.read_text(encoding="utf-8").strip()
    return ["## How the figures are made", "", body, ""]


def history_section() -> list[str]:
    """The lines of ``bench/HISTORY.md`` under their heading, or none if there is no file."""
    if not HISTORY.is_file():
        return []
    body = HISTORY.read_text(encoding="utf-8").strip()
    return ["## Missed targets: causes, fixes, before and after (bench/HISTORY.md)", "", body, ""]
