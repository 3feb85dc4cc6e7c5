"""Exactly-once at scale: a burst of valid, invalid, duplicate and damaged files for several
workers, then an account of where every file went (issue 5's benchmark point).

The burst is dropped at once into a running ``consentflow run --workers N``; when every file
has a final ledger row, the account checks the same promises as ``tests/test_scale.py``:
each file in exactly one final place, one application per distinct readable file, one
duplicate event per repeated file, each damaged file in ``failed/`` with its report, one
consent (document, event and outbox copy) per valid EOI and none twice, and an intact event
chain. The bench reads the database through the store, as ``consentflow status`` does.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from bench.corpus import Corpus
from bench.engine import Home
from workflow.states import State
from workflow.store import Store


@dataclass(frozen=True)
class Burst:
    """The files of one burst and what must become of each."""

    files: list[tuple[str, bytes]]
    valid: int  # distinct valid EOIs: one consent each
    copies: int  # byte-identical repeats of an earlier file: one duplicate event each
    broken: list[str]  # names of the damaged files: each to failed/

    @property
    def distinct(self) -> set[str]:
        """SHA-256 of every distinct readable file: one application each."""
        broken = set(self.broken)
        return {hashlib.sha256(data).hexdigest() for name, data in self.files if name not in broken}


def burst(corpus: Corpus, count: int, *, first: int) -> Burst:
    """``count`` files: 80 % distinct corpus EOIs (1 in 10 invalid), 10 % repeats, 10 % damaged.

    ``first`` is the corpus index of the first distinct EOI, so bursts in one run differ.
    """
    repeats = count // 10
    damaged = count // 10
    distinct = count - repeats - damaged
    files: list[tuple[str, bytes]] = []
    valid = 0
    for index in range(first, first + distinct):
        files.append((f"eoi-{index:06d}.pdf", corpus.doc(index)))
        valid += corpus.is_valid(index)
    for n in range(repeats):
        name, data = files[(n * 7) % distinct]
        files.append((f"again-{n:05d}-{name}", data))
    broken = []
    for n in range(damaged):
        _, data = files[(n * 3) % distinct]
        # Cut in half with the trailer put back: complete-looking, but damaged.
        name = f"broken-{n:05d}.pdf"
        files.append((name, data[: len(data) // 2] + b"\n%%EOF\n" + str(n).encode()))
        broken.append(name)
    # Interleave the kinds, as a real inbox gets them.
    files.sort(key=lambda item: hashlib.sha256(item[0].encode()).digest())
    return Burst(files, valid, repeats, sorted(broken))


@dataclass
class Account:
    """How the burst ended: seconds from the drop until every file was final, and problems."""

    files: int
    seconds: float
    problems: list[str] = field(default_factory=list)


def run_burst(home: Home, store: Store, work: Burst, *, timeout: float) -> Account:
    """Drop ``work`` at once into ``home``'s running engine and account for every file."""
    paths = home.stage(work.files)
    started = home.drop(paths, "inbox")
    deadline = time.monotonic() + timeout
    names = {name for name, _ in work.files}
    while True:
        final = [item for item in store.items() if item.status != "claimed"]
        if len({item.original_name for item in final} & names) >= len(names):
            break
        if time.monotonic() > deadline:
            account = Account(len(names), time.perf_counter() - started)
            account.problems.append(f"only {len(final)}/{len(names)} files final in {timeout} s")
            return account
        time.sleep(0.2)
    account = Account(len(names), time.perf_counter() - started)
    # The consents of the last files are issued after their ledger rows are final.
    while len(store.applications(State.CONSENT_ISSUED)) < work.valid:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    account.problems += _check(home.root, store, work)
    return account


def _check(root: Path, store: Store, work: Burst) -> list[str]:
    problems = []
    items = store.items()
    apps = store.applications()
    final = Counter(item.original_name for item in items if item.status != "claimed")
    names = Counter(name for name, _ in work.files)
    if final != names:
        problems.append(f"ledger: {sum((final - names).values())} extra final rows, "
                        f"{sum((names - final).values())} files without one")  # fmt: skip
    leftover = [p.name for p in (root / "inbox").iterdir() if p.name != ".processing"]
    leftover += [p.name for p in (root / "inbox" / ".processing").iterdir()]
    if leftover:
        problems.append(f"{len(leftover)} file(s) left in inbox/ or .processing/")
    if {app.eoi_sha256 for app in apps} != work.distinct or len(apps) != len(work.distinct):
        problems.append(f"{len(apps)} applications for {len(work.distinct)} distinct files")
    duplicates = sum(item.status == "duplicate" for item in items)
    if duplicates != work.copies:
        problems.append(f"{duplicates} duplicates recorded for {work.copies} repeated files")
    failed = sorted(p.name for p in (root / "failed").iterdir() if p.suffix == ".pdf")
    if failed != work.broken or not all(
        (root / "failed" / f"{name}.error.json").is_file() for name in failed
    ):
        problems.append(f"failed/ holds {len(failed)} files for {len(work.broken)} damaged")
    issued = [app for app in apps if app.state == State.CONSENT_ISSUED]
    outbox = {p.name for p in (root / "outbox").iterdir() if not p.name.startswith(".")}
    with store.engine.connect() as connection:
        documents = connection.execute(
            text("SELECT count(*) FROM documents WHERE kind = 'consent'")
        ).scalar_one()
    events = sum(event.to_state == State.CONSENT_ISSUED for event in store.events())
    counts = (len(issued), len({app.issued_sha256 for app in issued}), documents, events)
    if counts != (work.valid,) * 4 or outbox != {f"{app.reference}.pdf" for app in issued}:
        problems.append(
            f"consents for {work.valid} valid EOIs: {len(issued)} applications, "
            f"{documents} documents, {events} events, {len(outbox)} outbox files"
        )
    if not store.verify_chain().ok:
        problems.append("the event chain does not verify")
    return problems
