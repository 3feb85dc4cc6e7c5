"""After the signature (issue 19): the public list and the daily feedback sweep.

- ``/supporters`` with 2,000 active supporters (each with a published profile in two
  languages), served by ``consentflow web``: 20 clients ask for the page, a country's
  page, the JSON or the CSV (in English or Finnish) in a bounded loop, pausing about a
  second between requests as people do; p95 ≤ 50 ms. Back to back, for information.
- The due-and-reminder sweep over 10,000 applications (2,000 of them active, about one
  in twelve with a report falling due): ≤ 1 s; then the same sweep again (nothing left
  to send), which is what most days cost.

Runnable alone: ``python -m bench.supporters [--quick]``.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.engine import free_port, home_key, serve_web
from bench.report import Row, percentile, render_table, status
from workflow.config import load_settings
from workflow.lifecycle.service import Lifecycle, add_months
from workflow.states import State
from workflow.store import Store, SupporterProfile, org_key

CLIENTS = 20
COUNTRIES = ("AT", "BE", "DE", "EE", "ES", "FI", "FR", "GR", "IT", "LV", "PL", "SE")

Add = Callable[..., None]


def seed(store: Store, total: int, active: int, now: datetime, *, batch: int = 500) -> None:
    """``total`` applications; the first ``active`` published supporters whose reports
    fall due over the coming year (about one in twelve already due at ``now``)."""
    path = [State.AWAITING_REVIEW, State.CONSENT_ISSUED, State.SIGNED]
    for start in range(0, total, batch):
        with store.tx() as tx:
            for number in range(start, min(total, start + batch)):
                country = COUNTRIES[number % len(COUNTRIES)]
                name = f"Δίκτυο Πόλεων {number}"
                app = tx.new_application(
                    state=State.RECEIVED, eoi_sha256=f"{number:064x}", org_name=name,
                    country=country, org_key=org_key(name, country),
                    fields={"org_name": name, "org_acronym": f"ΔΠ{number}",
                            "contact_email": f"office{number}@example.eu"},
                )  # fmt: skip
                assert app.id is not None
                steps = [*path, State.PROFILE_CREATED, State.ACTIVE] if number < active else path
                for step in steps:
                    tx.move(app, step, actor="bench", reason="bench")
                if number < active:
                    due = add_months(now - timedelta(days=31), 12) - timedelta(
                        days=(number * 7) % 365
                    )
                    tx.session.add(
                        SupporterProfile(
                            application_id=app.id, status="published",
                            draft={}, published={
                                "name": name, "acronym": f"ΔΠ{number}", "country": country,
                                "website": f"https://network{number}.example.eu",
                                "languages": ["el", "en"],
                                "services": {
                                    "el": "Ενημέρωση των μελών για το Σύμφωνο. " * 2,
                                    "en": "Peer exchange on climate plans for members. " * 2,
                                },
                            },
                            published_at=now, feedback_due_at=due, created_at=now,
                            updated_at=now,
                        )
                    )  # fmt: skip


def _load(url: str, *, requests: int, think_s: float) -> list[float]:
    timings: list[float] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        chooser = random.Random(index)
        with httpx.Client(base_url=url, timeout=60) as client:
            time.sleep(chooser.random() * think_s)
            for _ in range(requests // CLIENTS):
                kind = chooser.choice(["", "", ".json", ".csv"])
                country = chooser.choice(["", *COUNTRIES])
                lang = chooser.choice(["en", "fi"])
                path = f"/supporters{kind}?country={country}&lang={lang}"
                began = time.perf_counter()
                answer = client.get(path)
                elapsed = time.perf_counter() - began
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code}")
                with lock:
                    timings.append(elapsed * 1000)
                if think_s:
                    time.sleep(think_s * (0.5 + chooser.random()))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(work, range(CLIENTS)))
    return timings


def public_list(add: Add, work: Path, *, active: int, requests: int) -> None:
    """``/supporters`` (and ``.json``, ``.csv``) with ``active`` supporters listed."""
    home = work / "supporters-list"
    home.mkdir(parents=True)
    port = free_port()
    # Every client here is 127.0.0.1: the rows measure the list, not the per-address limit.
    (home / "consentflow.toml").write_text(
        f'[web]\nlisten = "127.0.0.1:{port}"\nread_burst = 1000000\n'
    )
    url = f"http://127.0.0.1:{port}"
    store = Store(f"sqlite:///{home / 'consentflow.db'}", audit_key=home_key(home))
    store.ensure_schema()
    seed(store, active, active, datetime.now(UTC))
    store.close()
    process = serve_web(home, url)
    try:
        paced = _load(url, requests=requests, think_s=1.0)
        began = time.perf_counter()
        flat_out = _load(url, requests=requests, think_s=0.0)
        wall = time.perf_counter() - began
    finally:
        process.terminate()
        process.wait(30)
    add("supporters", f"/supporters (page, country, .json, .csv), {active:,} active, "
        f"{CLIENTS} clients, 1 s between clicks", f"p95 {percentile(paced, 0.95):.1f} ms",
        f"p50 {statistics.median(paced):.1f} ms, {len(paced)} requests", "p95 ≤ 50 ms",
        status(percentile(paced, 0.95) <= 50))  # fmt: skip
    capacity = f"{requests / wall:.0f} requests/s"
    add("supporters", f"/supporters, {CLIENTS} clients back to back (capacity)", capacity,
        f"p95 {percentile(flat_out, 0.95):.0f} ms", "", "")  # fmt: skip


def sweep(add: Add, work: Path, *, total: int, active: int) -> None:
    """The daily due-and-reminder sweep over ``total`` applications."""
    home = work / "supporters-sweep"
    home.mkdir(parents=True)
    settings = load_settings(home)
    store = Store(settings.database_url, audit_key=home_key(home))
    store.ensure_schema()
    now = datetime.now(UTC)
    seed(store, total, active, now)
    life = Lifecycle(store, settings, clock=lambda: now)
    began = time.perf_counter()
    first = life.sweep()
    elapsed = time.perf_counter() - began
    began = time.perf_counter()
    again = life.sweep()
    quiet = time.perf_counter() - began
    store.close()
    assert not again.due and not again.reminded
    add("supporters", f"feedback sweep, {total:,} applications ({active:,} active), "
        f"{len(first.due)} falling due", f"{elapsed * 1000:.0f} ms",
        f"again with nothing to send: {quiet * 1000:.1f} ms", "≤ 1 s",
        status(elapsed <= 1.0))  # fmt: skip


def measure(add: Add, work: Path, *, quick: bool) -> None:
    """Both rows: the public list, then the sweep."""
    public_list(add, work, active=200 if quick else 2000, requests=100 if quick else 2000)
    sweep(add, work, total=500 if quick else 10_000, active=100 if quick else 2000)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.supporters``: these rows alone, printed as a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.supporters", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="consentflow-bench-supporters-"))
    rows: list[Row] = []
    try:
        measure(lambda *a: rows.append(Row(*a)), work, quick=args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
