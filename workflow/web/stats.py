"""Figures for the stats page, computed from the events and the intake ledger, and their plots.

The figures are pure functions of rows (tested without a server); the plots are SVG
made on the server by pygal with its scripts turned off, served as images from the
site itself (no CDN, nothing inline), each with a table of the same figures beside it
for readers who cannot see the plot.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from workflow.states import State

#: Days shown on the "applications per state" plot.
DAYS = 60

#: The steps of an application whose durations are plotted: (name, from, to states).
STEPS: tuple[tuple[str, frozenset[str], frozenset[str]], ...] = (
    ("received → review", frozenset({State.RECEIVED}), frozenset({State.AWAITING_REVIEW})),
    (
        "review → issued",
        frozenset({State.AWAITING_REVIEW}),
        frozenset({State.CONSENT_ISSUED}),
    ),
    ("issued → signed", frozenset({State.CONSENT_ISSUED}), frozenset({State.SIGNED})),
)


@dataclass(frozen=True)
class Spread:
    """Count, median, 90th percentile and maximum of some durations, in seconds."""

    count: int
    median: float
    p90: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The spread of ``values`` (zeros for none)."""
        if not values:
            return cls(0, 0.0, 0.0, 0.0)
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        return cls(len(ordered), statistics.median(ordered), p90, ordered[-1])


History = Sequence[tuple[datetime, str, str | None, str]]


def states_per_day(
    history: History, today: date, days: int = DAYS
) -> tuple[list[date], dict[str, list[int]]]:
    """How many applications were in each state at the end of each of the last ``days`` days."""
    first = today - timedelta(days=days - 1)
    dates = [first + timedelta(days=offset) for offset in range(days)]
    current: dict[str, str] = {}
    counts: dict[str, list[int]] = {state.value: [0] * days for state in State}
    index = 0
    ordered = sorted(history, key=lambda row: row[0])
    for day_number, day in enumerate(dates):
        while index < len(ordered) and ordered[index][0].date() <= day:
            _, reference, _, to_state = ordered[index]
            current[reference] = to_state
            index += 1
        tally = Counter(current.values())
        for state, count in tally.items():
            counts.setdefault(state, [0] * days)[day_number] = count
    return dates, {state: row for state, row in counts.items() if any(row)}


def step_durations(history: History) -> dict[str, Spread]:
    """How long applications spent in each of :data:`STEPS`."""
    entered: dict[tuple[str, str], datetime] = {}
    durations: dict[str, list[float]] = {name: [] for name, _, _ in STEPS}
    for at, reference, _, to_state in sorted(history, key=lambda row: row[0]):
        for name, sources, targets in STEPS:
            if to_state in targets:
                for source in sources:
                    start = entered.get((reference, source))
                    if start is not None:
                        durations[name].append((at - start).total_seconds())
        entered[(reference, to_state)] = at
    return {name: Spread.of(values) for name, values in durations.items()}


def intake_latency(times: Sequence[tuple[str, datetime, datetime]]) -> dict[str, Spread]:
    """Seconds from a file's claim to its final place, per drop folder."""
    by_folder: dict[str, list[float]] = {}
    for folder, claimed, finished in times:
        by_folder.setdefault(folder, []).append((finished - claimed).total_seconds())
    return {folder: Spread.of(values) for folder, values in sorted(by_folder.items())}


#: Units a duration is shown in: the largest whose one unit the 90th percentile reaches.
UNITS: tuple[tuple[str, float], ...] = (
    ("days", 86400.0),
    ("hours", 3600.0),
    ("minutes", 60.0),
    ("seconds", 1.0),
)


def unit_for(spreads: dict[str, Spread]) -> tuple[str, float]:
    """``(name, seconds per unit)`` that keeps these figures readable."""
    largest = max((spread.p90 for spread in spreads.values()), default=0.0)
    for name, scale in UNITS:
        if largest >= scale:
            return name, scale
    return UNITS[-1]


def _chart_config() -> dict[str, object]:
    from pygal.style import DefaultStyle  # noqa: PLC0415

    return {
        "js": [],  # pygal would load its tooltips from a CDN
        "width": 900,
        "height": 360,
        "legend_at_bottom": True,
        "truncate_legend": -1,
        "truncate_label": -1,
        "style": DefaultStyle(font_family="DejaVu Sans, Noto Sans, sans-serif"),
    }


def states_chart(dates: list[date], counts: dict[str, list[int]]) -> bytes:
    """Stacked areas of applications per state per day."""
    import pygal  # noqa: PLC0415 - only the stats page pays for it

    chart = pygal.StackedLine(
        fill=True, show_dots=False, show_minor_x_labels=False, x_label_rotation=30,
        **_chart_config(),
    )  # fmt: skip
    chart.title = "Applications per state (end of each day, UTC)"
    chart.x_labels = [day.isoformat() for day in dates]
    chart.x_labels_major = [day.isoformat() for day in dates[:: max(1, len(dates) // 10)]]
    for state, row in counts.items():
        chart.add(state, row)
    return _without_scripts(chart)


def spread_chart(title: str, spreads: dict[str, Spread]) -> bytes:
    """Median and 90th percentile per step or folder, as bars, in the unit that fits."""
    import pygal  # noqa: PLC0415

    unit, scale = unit_for(spreads)
    chart = pygal.Bar(**_chart_config())
    chart.title = title
    chart.x_labels = list(spreads)
    chart.y_title = unit
    chart.add("median", [round(spread.median / scale, 2) for spread in spreads.values()])
    chart.add("90th percentile", [round(spread.p90 / scale, 2) for spread in spreads.values()])
    return _without_scripts(chart)


def _without_scripts(chart: Any) -> bytes:
    """The chart's SVG without the configuration script pygal always embeds (an image
    runs no script, but a file that needs none should carry none)."""
    from pygal.etree import etree  # noqa: PLC0415

    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    svg: bytes = etree.tostring(tree, encoding="utf-8", xml_declaration=True)
    return svg
