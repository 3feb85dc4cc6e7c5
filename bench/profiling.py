"""Where an engine's time goes: cProfile over ``Engine`` processing EOIs in this process.

Time is grouped by the package whose code ran; time in C functions is charged to
the package that called them, except ``os.fsync`` and SQLite, which are shown on
their own because they are the engine's durability and bookkeeping costs.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.corpus import Corpus
from workflow.config import load_settings
from workflow.engine import Engine

_PACKAGES = (
    "pypdf", "reportlab", "pyhanko_certvalidator", "pyhanko", "asn1crypto", "cryptography",
    "sqlalchemy", "sqlmodel", "pydantic", "phonenumbers", "email_validator", "pycountry",
    "fontTools", "watchdog", "alembic", "psycopg",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """Milliseconds per document by group, and the wall time per document."""

    docs: int
    wall_ms_per_doc: float
    groups: dict[str, float]


def _group(key: tuple[str, int, str]) -> str | None:
    filename, _, name = key
    if filename == "~":
        if "fsync" in name:
            return "os.fsync"
        if "sqlite3" in name:
            return "sqlite3 (C)"
        return None  # charged to the caller
    for package in _PACKAGES:
        if f"/{package}/" in filename:
            return package
    for own in ("forms", "workflow", "bench"):
        if f"/{own}/" in filename:
            return own
    return "python stdlib"


def profile_engine(home: Path, corpus: Corpus, indexes: list[int]) -> Profile:
    """Process the documents ``indexes`` with an in-process engine under cProfile."""
    settings = load_settings(home)
    engine = Engine(settings)
    engine.start()
    inbox = settings.inbox
    paths = []
    for index in indexes:
        path = inbox / f"eoi-{index:06d}.pdf"
        path.write_bytes(corpus.doc(index))
        paths.append(path)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for path in paths:
        engine.intake.offer(path)
    engine.intake.tick()
    profiler.disable()
    wall = time.perf_counter() - start
    engine.close()
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    groups: dict[str, float] = defaultdict(float)
    for key, (_, _, tottime, _, callers) in stats.items():
        group = _group(key)
        if group is not None:
            groups[group] += tottime
            continue
        for caller, edge in callers.items():
            groups[_group(caller) or "C (other)"] += edge[2]
    per_doc = {name: 1000 * seconds / len(indexes) for name, seconds in groups.items()}
    ordered = dict(sorted(per_doc.items(), key=lambda item: -item[1]))
    return Profile(len(indexes), 1000 * wall / len(indexes), ordered)
