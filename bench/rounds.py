"""Interleaved rounds, and figures that survive a shared, noisy machine (issue 14).

On a machine shared with other work, the speed drifts by more than the differences a
benchmark looks for, within minutes (bench/HISTORY.md). So every comparison here is made
the same way:

- **Rounds, interleaved**: the contenders (the floor, an engine, a peer tool) take turns,
  round after round, on the same work — ``floor, engine, floor, engine, …`` — so that a
  slow minute slows both sides of a pair rather than one side of the comparison.
- **Median and spread**: each figure is the median of its rounds, shown with the lowest and
  highest round.
- **Ratios from pairs**: a ratio is the median of the per-round ratios (round *k* of one
  contender against round *k* of the other), not the ratio of two medians.
- **CPU time beside wall time**: a sample carries the CPU time its process (and that
  process's children) used. CPU time is what the work costs; wall time adds waiting — for
  the disk, a lock, or the core that another process holds. The gap between the two is the
  waiting.
- **A guard**: when the reference's rounds differ by more than :data:`DRIFT_LIMIT`, or a
  scaling figure is impossible (more than N× with N workers or N cores), or its N workers
  waited for a larger share of their time than one worker did, the figure is *unreliable*
  and its verdict says why, never met or missed.

The statistics are pure functions of the samples; the clocks at the end read the CPU time
of this process, of its reaped children, and of another process's tree from ``/proc``.
Any bench part can use them: ``interleave`` runs the rounds, ``spread`` and
``pair_ratios`` make the figures, ``drift``, ``impossible_scaling`` and ``uneven_waits``
guard them and ``verdict`` (``doubt`` for a figure without a target) writes the table's
last column.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Rounds of the reference that differ by more than this (highest over lowest, less one)
#: make every figure compared with them unreliable.
DRIFT_LIMIT = 0.15

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    """One round of one contender: ``items`` done in ``wall_s`` seconds, using ``cpu_s``
    seconds of CPU (None when it was not measured)."""

    items: int
    wall_s: float
    cpu_s: float | None = None

    @classmethod
    def per_item(cls, wall_ms: float, cpu_ms: float | None = None) -> Sample:
        """A sample given as milliseconds per item (a floor's mix of steps)."""
        return cls(1, wall_ms / 1000, None if cpu_ms is None else cpu_ms / 1000)

    @property
    def wall_ms(self) -> float:
        """Wall-clock milliseconds per item."""
        return 1000 * self.wall_s / self.items

    @property
    def cpu_ms(self) -> float:
        """CPU milliseconds per item (ValueError if not measured)."""
        if self.cpu_s is None:
            raise ValueError("this sample has no CPU time")
        return 1000 * self.cpu_s / self.items

    @property
    def rate(self) -> float:
        """Items per wall-clock second."""
        return self.items / self.wall_s

    @property
    def busy(self) -> float:
        """CPU time over wall time: 1.0 is one core busy throughout; below, it waited."""
        if self.cpu_s is None:
            raise ValueError("this sample has no CPU time")
        return self.cpu_s / self.wall_s


@dataclass(frozen=True)
class Spread:
    """A figure over rounds: its median, lowest and highest value."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        """The median round."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The lowest round."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The highest round."""
        return max(self.values)

    @property
    def relative(self) -> float:
        """How far the rounds differ: highest over lowest, less one (0.15 is 15 %)."""
        if self.low <= 0:
            return float("inf") if self.high > self.low else 0.0
        return self.high / self.low - 1

    def text(self, fmt: str = ".1f", unit: str = "") -> str:
        """``median (low–high) unit``, e.g. ``47.1 (45.0–49.3) ms``; no range for one round."""
        unit = f" {unit}" if unit else ""
        if len(self.values) == 1:
            return f"{self.median:{fmt}}{unit}"
        return f"{self.median:{fmt}} ({self.low:{fmt}}–{self.high:{fmt}}){unit}"

    def percent(self) -> str:
        """The figure as percentages: ``66 % (64–68 %)``."""
        if len(self.values) == 1:
            return f"{self.median:.0%}".replace("%", " %")
        return f"{100 * self.median:.0f} % ({100 * self.low:.0f}–{100 * self.high:.0f} %)"


def spread(values: Sequence[float]) -> Spread:
    """The spread of one figure over its rounds (at least one)."""
    if not values:
        raise ValueError("no rounds")
    return Spread(tuple(values))


def pair_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> Spread:
    """Round k's ``numerators[k] / denominators[k]`` for every round, as a spread.

    Both lists come from the same interleaved rounds, so they must be as long.
    """
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} rounds against {len(denominators)}")
    return spread([a / b for a, b in zip(numerators, denominators, strict=True)])


def drift(
    reference: Sequence[float], *, what: str = "floor", limit: float = DRIFT_LIMIT
) -> str | None:
    """Why a figure compared with ``reference``'s rounds is unreliable, or None if it is not.

    The rounds of the reference (the floor, or a peer tool) measure the same work each time;
    when they differ by more than ``limit``, the machine's speed moved during the run.
    """
    if len(reference) < 2:
        return None
    moved = spread(reference).relative
    if moved > limit:
        return f"{what} rounds differ by {moved:.0%}, more than {limit:.0%}"
    return None


def impossible_scaling(speedups: Spread, workers: int, cores: int | None = None) -> str | None:
    """Why a speed-up of ``workers`` over one worker cannot be right, or None.

    N workers cannot do more than N times the work of one, nor more than the machine's
    cores allow; a round that seems to means the one-worker round was slowed by something
    else. ``cores`` defaults to this machine's.
    """
    cores = cores or os.cpu_count() or 1
    limit = min(workers, cores)
    worst = speedups.high
    if worst > limit:
        return f"a round gave {worst:.2f}×, more than {limit}× is impossible on {cores} cores"
    return None


def uneven_waits(
    one: Sequence[Sample], many: Sequence[Sample], workers: int, *, limit: float = DRIFT_LIMIT
) -> str | None:
    """Why a speed-up of ``workers`` over one worker is unreliable because the two engines
    waited for different shares of their time, or None.

    A speed-up is a ratio of wall times. When each of N workers is busy for a smaller share
    of its time than one worker alone (``CPU/wall`` over N against one worker's), the rest
    is waiting — for the disk, a lock, or a core — and the ratio then moves with how long
    the host makes a wait last against how fast it runs a core, which changed between two
    runs whose rounds were steady: the verifier's engines, one worker busy 94 % of its time
    and two 80 % each, gave 1.41× and 1.63× one worker in two runs of one code an hour apart
    (runs X3 and X4, bench/HISTORY.md). The guard marks the speed-up when one worker's share
    is more than ``limit`` over each of the N workers'.
    """
    alone = statistics.median(sample.busy for sample in one)
    each = statistics.median(sample.busy for sample in many) / workers
    if each <= 0 or alone / each - 1 <= limit:
        return None
    return (
        f"{workers} workers busy {each:.0%} of their time each, 1 worker {alone:.0%}: "
        f"more than {limit:.0%} apart"
    )


def verdict(ok: bool, *reasons: str | None) -> str:
    """The table's ``met`` column: ``yes`` / ``**no**``, or ``unreliable (why)``."""
    why = [reason for reason in reasons if reason]
    if why:
        return f"unreliable ({'; '.join(why)})"
    return "yes" if ok else "**no**"


def doubt(*reasons: str | None) -> str:
    """The ``met`` column of a figure without a target: empty, or ``unreliable (why)``."""
    return verdict(True, *reasons) if any(reasons) else ""


def interleave(
    rounds: int, contenders: Sequence[tuple[str, Callable[[int], Sample]]]
) -> dict[str, list[Sample]]:
    """Run each contender once per round, in the order given, ``rounds`` times.

    ``contenders`` are (name, run) pairs; ``run(k)`` measures round ``k`` and returns its
    sample. The result maps each name to its samples in round order.
    """
    if rounds < 1:
        raise ValueError("at least one round")
    samples: dict[str, list[Sample]] = {name: [] for name, _ in contenders}
    for k in range(rounds):
        for name, run in contenders:
            samples[name].append(run(k))
    return samples


# -- clocks -------------------------------------------------------------------------------


def own_cpu() -> float:
    """CPU seconds this process has used (all its threads)."""
    return time.process_time()


def children_cpu() -> float:
    """CPU seconds of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stat(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it ended meanwhile
        return None
    # Fields after the command name, which may hold spaces and parentheses: state is [0].
    return stat[stat.rindex(")") + 2 :].split()


def tree_cpu(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and every process below it.

    For each live process of the tree: its own user and system time plus those of its
    children that have ended and been waited for (``utime + stime + cutime + cstime``,
    fields 14–17 of proc_pid_stat(5)). A child's time moves into its parent's ``cutime``
    when it is waited for, so each process's time is counted once, alive or ended.
    """
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry.name))
    total = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = _stat(current)
        if fields is None:
            continue
        total += sum(int(value) for value in fields[11:15])
        todo += parents.get(current, [])
    return total / _CLK_TCK
