"""``python -m bench.compare OLD NEW``: two runs' RESULTS.md set side by side, ratio by ratio.

Issue 14's test of the benchmark: two full runs of one code, a day apart on one processor
model, agree on every ratio within 15 %, or the run marks the figure unreliable. This reads
the ``Results`` table of both files and takes every ratio of a row's ``compared with`` cell:
in each of its parts (between semicolons outside parentheses), the first percentage or
multiple, the median before the range in parentheses (``69 % (69–69 %) of floor``,
``1.66 (1.57–1.72)× 1 worker``).
A part that says how far rounds were apart is a guard's figure, not a ratio, and is left out.

A ratio is *marked* in a run when the row's ``met`` cell says ``unreliable``, or when its own
part of the cell does (a remark such as ``(unreliable: …)``). Each ratio is then one of:
``agree`` (the larger at most 15 % over the smaller), ``marked`` (apart by more, and marked
in at least one run), or ``DISAGREE`` (apart by more, marked in neither).

Prints the two runs' dates and processors and a Markdown table, one line per ratio; exits 0
when no ratio disagrees unmarked, 1 when one does, 2 when a file has no ``Results`` table.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.rounds import DRIFT_LIMIT, spread

#: The first ratio of a part: a number, its range in parentheses if any, then % or ×.
_RATIO = re.compile(r"(\d+(?:\.\d+)?) ?(?:\([^()]*\))? ?(%|×)")
#: Run sizes in a measure's name (``300 EOIs``, ``10,000 applications``), which a quick run
#: or another ``-n`` changes; single digits (``1 worker``, ``3 rounds``) name the figure.
_SIZE = re.compile(r"\d[\d,]*\d")
#: A range in parentheses, ``(64–69 %)``, left out of a ratio's label.
_RANGE = re.compile(r" ?\([\d.]+–[\d.]+ ?%?\)")
#: Where a guard's remark starts in a part, left out of a ratio's label.
_REMARK = re.compile(r",? \(?unreliable:.*")
_DATE = re.compile(r"^Date: (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", re.MULTILINE)
_CPU = re.compile(r"^- CPU: ([^,\n]*)", re.MULTILINE)


@dataclass(frozen=True)
class Ratio:
    """One ratio of one run: its row and place, its value and unit, and whether marked."""

    key: tuple[str, int]
    label: str
    value: float
    unit: str
    marked: bool


@dataclass(frozen=True)
class Run:
    """What the comparison reads of one RESULTS.md."""

    date: datetime | None
    cpu: str | None
    ratios: dict[tuple[str, int], Ratio]


@dataclass(frozen=True)
class Line:
    """One ratio in both runs (either may be missing) and the verdict on the pair."""

    label: str
    old: Ratio | None
    new: Ratio | None

    @property
    def apart(self) -> float | None:
        """The larger over the smaller, less one; None unless both runs have the ratio."""
        if self.old is None or self.new is None:
            return None
        return spread((self.old.value, self.new.value)).relative

    @property
    def verdict(self) -> str:
        """``agree``, ``marked``, ``DISAGREE``, or which run alone has the ratio."""
        if self.old is None:
            return "only in NEW"
        if self.new is None:
            return "only in OLD"
        apart = self.apart
        assert apart is not None
        if round(apart, 6) <= DRIFT_LIMIT:
            return "agree"
        return "marked" if self.old.marked or self.new.marked else "DISAGREE"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _parts(cell: str) -> list[str]:
    """A ``compared with`` cell's parts: split at semicolons outside parentheses, since a
    remark may give two reasons (``(unreliable: a rounds differ by 29%; b rounds …)``)."""
    parts, depth, start = [], 0, 0
    for at, char in enumerate(cell):
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == ";" and depth == 0:
            parts.append(cell[start:at].strip())
            start = at + 1
    return [*parts, cell[start:].strip()]


def read_run(text: str) -> Run:
    """The ratios of a RESULTS.md text; ValueError if it has no ``Results`` table."""
    _, found, rest = text.partition("\n## Results\n")
    if not found:
        raise ValueError("no '## Results' section")
    table = [line for line in rest.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
    if len(table) < 2 or _cells(table[0])[:2] != ["area", "measure"]:
        raise ValueError("the Results section has no table with area and measure columns")
    header = _cells(table[0])
    reference, met = header.index("compared with"), header.index("met")
    ratios: dict[tuple[str, int], Ratio] = {}
    for line in table[2:]:
        cells = _cells(line)
        if len(cells) != len(header):
            continue
        row = f"{cells[0]} | {_SIZE.sub('N', cells[1])}"
        row_marked = "unreliable" in cells[met]
        parts = _parts(cells[reference])
        for index, part in enumerate(parts):
            match = _RATIO.search(part)
            if match is None or part.startswith("rounds apart"):
                continue
            key = (row, index)
            bare = _RATIO.sub("#", _RANGE.sub("", _REMARK.sub("", part)))
            label = f"{cells[0]}: {cells[1]} — {bare}"
            ratios[key] = Ratio(
                key,
                label,
                float(match.group(1)),
                match.group(2),
                row_marked or "unreliable" in part,
            )
    date = _DATE.search(text)
    cpu = _CPU.search(text)
    return Run(
        datetime.strptime(date.group(1), "%Y-%m-%d %H:%M") if date else None,
        cpu.group(1).strip() if cpu else None,
        ratios,
    )


def compare(old: Run, new: Run) -> list[Line]:
    """Every ratio of either run, in OLD's order and then NEW's."""
    keys = list(old.ratios) + [key for key in new.ratios if key not in old.ratios]
    return [
        Line(
            (old.ratios.get(key) or new.ratios[key]).label,
            old.ratios.get(key),
            new.ratios.get(key),
        )
        for key in keys
    ]


def _figure(ratio: Ratio | None) -> str:
    if ratio is None:
        return "—"
    value = f"{ratio.value:g}"
    text = f"{value} %" if ratio.unit == "%" else f"{value}×"
    return f"{text} (marked)" if ratio.marked else text


def _gap(old: Run, new: Run) -> str:
    if old.date is None or new.date is None:
        return "unknown (a file has no Date line)"
    minutes = round(abs((new.date - old.date).total_seconds()) / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def report(old_name: str, old: Run, new_name: str, new: Run, lines: list[Line]) -> str:
    """The comparison as text: the runs, then a Markdown table, then a summary."""
    out = [
        f"OLD: {old_name} ({old.date or 'no date'} UTC, {old.cpu or 'processor not given'})",
        f"NEW: {new_name} ({new.date or 'no date'} UTC, {new.cpu or 'processor not given'})",
        f"Apart: {_gap(old, new)}; limit {DRIFT_LIMIT:.0%}",
    ]
    if old.cpu != new.cpu:
        out.append(
            "Note: the processors differ; ratios between Python and a C program move with the "
            "processor (bench/METHODOLOGY.md): compare runs on one processor model."
        )
    out += ["", "| ratio | OLD | NEW | apart | verdict |", "|---|---|---|---|---|"]
    for line in lines:
        apart = line.apart
        shown = "—" if apart is None else f"{apart:.0%}"
        out.append(
            f"| {line.label} | {_figure(line.old)} | {_figure(line.new)} | {shown} "
            f"| {line.verdict} |"
        )
    counts = {
        verdict: sum(1 for line in lines if line.verdict == verdict)
        for verdict in ("agree", "marked", "DISAGREE")
    }
    out += [
        "",
        f"{counts['agree']} agree, {counts['marked']} apart but marked, "
        f"{counts['DISAGREE']} apart and unmarked",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Compare two RESULTS.md files; the exit status says whether every ratio held."""
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("old", type=Path, help="the earlier run's RESULTS.md")
    parser.add_argument("new", type=Path, help="the later run's RESULTS.md")
    args = parser.parse_args(argv)
    runs = []
    for path in (args.old, args.new):
        try:
            runs.append(read_run(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
    old, new = runs
    lines = compare(old, new)
    print(report(str(args.old), old, str(args.new), new, lines))
    return 1 if any(line.verdict == "DISAGREE" for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
