"""The dashboard's targets (issue 17), measured against real processes on 127.0.0.1.

- Page latency: ``consentflow web`` over a database of 10,000 applications (each with
  its fields and events), 20 signed-in clients requesting the applications page (a
  random page of the list) and an application's page in a bounded loop, each pausing
  about a second between requests as people do; p95 ≤ 50 ms. The same loop back to
  back gives the server's capacity (requests/s, CPU per request), for information: with
  no pause, 20 clients measure the queue in front of a 2-core machine, not a page.
- Live log: SSE clients connected to ``/office/log/stream``; events committed by this
  process; the delay from the commit's return to the event's arrival at each client;
  p95 ≤ 200 ms. (An HTTP client reading the stream, not a browser: the browser adds
  its parsing of one small JSON message.)
- Intake beside the dashboard: one ``consentflow run`` (serving the dashboard) takes
  batches of EOIs, alternately with no one on the dashboard and while 20 clients each ask
  for ``/office`` and ``/office/log`` once a second; the rate with them ≥ 90 % of the
  rate without, round by round (the median of the pairs), in the same run; unreliable when
  either kind of batch drifted (bench/rounds.py). The engine's own CPU time per document is
  shown beside: the dashboard is another process, so it should not move.

Runnable alone: ``python -m bench.web [--quick]``; ``python -m bench`` runs it too.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from bench import apply as apply_bench
from bench.corpus import Corpus
from bench.engine import Home, cpu_seconds, free_port, home_key, serve_web
from bench.report import Row, percentile, render_table, status
from bench.rounds import drift, pair_ratios, spread, verdict
from workflow.demo_pki import DemoPki
from workflow.states import State
from workflow.store import Store, org_key
from workflow.users import Users

CLIENTS = 20
PASSWORD = "bench password, long enough"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

Add = Callable[..., None]


def _listen_on(home: Home) -> str:
    port = free_port()
    with (home.root / "consentflow.toml").open("a") as config:
        config.write(f'\n[web]\nlisten = "127.0.0.1:{port}"\n')
    return f"http://127.0.0.1:{port}"


def _fields(number: int) -> dict[str, Any]:
    """An application's stored fields, as intake stores a valid EOI's."""
    return {
        "org_name": f"Δίκτυο Πόλεων {number}", "org_acronym": f"ΔΠ{number}",
        "org_type": "national_network", "country": "GR", "address_street": "Łódzka 15",
        "address_postcode": "00-950", "address_city": "Αθήνα",
        "website": "https://example.eu/", "member_count": 42, "contact_name": "Съюз",
        "contact_position": "Директор", "contact_email": "office@example.eu",
        "contact_phone": "+302101234567", "representative_name": "Νικόλαος",
        "representative_position": "Президент", "services": "Ενημέρωση των μελών. " * 5,
        "languages": "el, bg", "date": date.today().isoformat(), "place": "Łódź",
        "commit_promote": True, "commit_recognise": True, "commit_exchange": True,
        "commit_media": True, "commit_synergies": True, "commit_feedback": True,
        "accept_suspension": True, "consent_privacy": True,
    }  # fmt: skip


def populate(store: Store, count: int, *, batch: int = 500) -> list[str]:
    """``count`` applications, each received, validated and most awaiting review or issued."""
    references: list[str] = []
    states = [State.AWAITING_REVIEW, State.CONSENT_ISSUED, State.INVALID, State.SIGNED]
    for start in range(0, count, batch):
        with store.tx() as tx:
            for number in range(start, min(count, start + batch)):
                fields = _fields(number)
                app = tx.new_application(
                    state=State.RECEIVED, eoi_sha256=f"{number:064x}",
                    org_name=fields["org_name"], country="GR",
                    org_key=org_key(fields["org_name"], "GR"), fields=fields,
                )  # fmt: skip
                assert app.reference is not None
                tx.append_event(
                    "received", actor="system", reference=app.reference,
                    to_state=State.RECEIVED, reason=f"EOI received as eoi-{number}.pdf",
                )  # fmt: skip
                target = states[number % len(states)]
                path = {
                    State.AWAITING_REVIEW: [State.AWAITING_REVIEW],
                    State.INVALID: [State.INVALID],
                    State.CONSENT_ISSUED: [State.AWAITING_REVIEW, State.CONSENT_ISSUED],
                    State.SIGNED: [State.AWAITING_REVIEW, State.CONSENT_ISSUED, State.SIGNED],
                }[target]
                for step in path:
                    tx.move(app, step, actor="system", reason="bench")
                references.append(app.reference)
    return references


def _signed_in(url: str, name: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=60)
    token = _CSRF.search(client.get("/login").text)
    assert token, "no sign-in form"
    answer = client.post("/login", data={"name": name, "password": PASSWORD,
                                         "csrf_token": token.group(1)})  # fmt: skip
    if answer.status_code not in (200, 303) or "cf_session" not in client.cookies:
        raise RuntimeError(f"cannot sign in to {url}: {answer.status_code}")
    return client


def _load(
    clients: list[httpx.Client], references: list[str], *, requests: int, think_s: float
) -> dict[str, list[float]]:
    """Each client in turn asks for a random list page and a random application (pausing
    ``think_s`` ± 50 % between requests; 0: back to back); latencies in ms per kind."""
    timings: dict[str, list[float]] = {"list": [], "one": []}
    lock = threading.Lock()
    pages_count = max(1, len(references) // 50)

    def work(index: int) -> None:
        client = clients[index]
        chooser = random.Random(index)
        time.sleep(chooser.random() * think_s)  # the clients do not start in step
        for turn in range(requests // len(clients)):
            if turn % 2:
                kind, path = "one", f"/office/applications/{chooser.choice(references)}"
            else:
                kind, path = "list", f"/office?page={chooser.randint(1, pages_count)}"
            began = time.perf_counter()
            answer = client.get(path)
            elapsed = time.perf_counter() - began
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: {answer.status_code}")
            with lock:
                timings[kind].append(elapsed * 1000)
            if think_s:
                time.sleep(think_s * (0.5 + chooser.random()))

    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(work, range(len(clients))))
    return timings


def pages(add: Add, home: Home, *, applications: int, requests: int) -> None:
    """The applications page and an application's page with ``applications`` in the
    database and 20 signed-in clients: as people use it (a second's pause between
    clicks; the target), and back to back (the server's capacity, for information)."""
    url = _listen_on(home)
    store = Store(f"sqlite:///{home.root / 'consentflow.db'}", audit_key=home_key(home.root))
    store.ensure_schema()
    started = time.perf_counter()
    references = populate(store, applications)
    Users(store).add("bench", "viewer", PASSWORD, actor="bench")
    store.close()
    seeded = time.perf_counter() - started
    process = serve_web(home.root, url)
    try:
        clients = [_signed_in(url, "bench") for _ in range(CLIENTS)]
        paced = _load(clients, references, requests=requests, think_s=1.0)
        cpu_before = cpu_seconds(process.pid)
        began = time.perf_counter()
        flat_out = _load(clients, references, requests=requests, think_s=0.0)
        wall = time.perf_counter() - began
        cpu_ms = (cpu_seconds(process.pid) - cpu_before) * 1000 / requests
        for client in clients:
            client.close()
    finally:
        process.terminate()
        process.wait(30)
    for kind, label in (("list", "applications page"), ("one", "an application's page")):
        values = paced[kind]
        p95 = percentile(values, 0.95)
        add("web", f"{label}, {applications:,} applications, {CLIENTS} clients, 1 s between clicks",
            f"p95 {p95:.1f} ms", f"p50 {statistics.median(values):.1f} ms, "
            f"{len(values)} requests", "p95 ≤ 50 ms", status(p95 <= 50))  # fmt: skip
    both = flat_out["list"] + flat_out["one"]
    add("web", f"both pages, {CLIENTS} clients back to back (capacity)",
        f"{requests / wall:.0f} requests/s", f"p95 {percentile(both, 0.95):.0f} ms; server CPU "
        f"{cpu_ms:.1f} ms/request", "", "")  # fmt: skip
    add("web", f"(seeding {applications:,} applications with their events)",
        f"{seeded:.1f} s", "", "", "")  # fmt: skip


def live_log(add: Add, home: Home, *, events: int, listeners: int = 5) -> None:
    """Delay from an event's commit to its arrival at SSE clients (p50, p95)."""
    url = _listen_on(home)
    store = Store(f"sqlite:///{home.root / 'consentflow.db'}", audit_key=home_key(home.root))
    store.ensure_schema()
    Users(store).add("bench", "viewer", PASSWORD, actor="bench")
    process = serve_web(home.root, url)
    arrivals: dict[int, list[float]] = {}
    lock = threading.Lock()
    ready = threading.Barrier(listeners + 1)
    stop = threading.Event()
    after = store.newest_event_id()

    def listen() -> None:
        client = _signed_in(url, "bench")
        params = {"after": str(after)}
        with (
            closing(client),
            client.stream("GET", "/office/log/stream", params=params, timeout=None) as stream,
        ):
            ready.wait()
            for line in stream.iter_lines():
                if line.startswith("id: "):
                    with lock:
                        arrivals.setdefault(int(line[4:]), []).append(time.perf_counter())
                if stop.is_set():
                    return

    threads = [threading.Thread(target=listen, daemon=True) for _ in range(listeners)]
    for thread in threads:
        thread.start()
    committed: dict[int, float] = {}
    try:
        ready.wait(timeout=60)
        time.sleep(0.5)
        chooser = random.Random(7)
        for number in range(events):
            with store.tx() as tx:
                tx.append_event("note", actor="bench", reason=f"live {number}")
            committed[store.newest_event_id()] = time.perf_counter()
            time.sleep(0.05 + chooser.random() * 0.1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                if all(len(arrivals.get(i, [])) == listeners for i in committed):
                    break
            time.sleep(0.05)
        stop.set()
        with store.tx() as tx:  # wakes the streams so that they see the stop
            tx.append_event("note", actor="bench", reason="live done")
    finally:
        process.terminate()
        process.wait(30)
        store.close()
    delays = [(t - committed[i]) * 1000 for i in committed for t in arrivals.get(i, [])]
    missing = len(committed) * listeners - len(delays)
    add("web", f"live log: commit → {listeners} SSE clients, {events} events",
        f"p95 {percentile(delays, 0.95):.0f} ms", f"p50 {statistics.median(delays):.0f} ms"
        + (f"; {missing} never arrived" if missing else ""), "p95 ≤ 200 ms",
        status(percentile(delays, 0.95) <= 200 and not missing))  # fmt: skip


def _poll(client: httpx.Client, stop: threading.Event) -> None:
    """Ask for the applications page and the log once a second until stopped."""
    with closing(client):
        while not stop.is_set():
            for path in ("/office", "/office/log"):
                client.get(path)
            stop.wait(1.0)


def intake_beside(
    add: Add, corpus: Corpus, work: Path, pki: DemoPki, *, batch: int, rounds: int
) -> None:
    """EOIs per second for one ``run`` serving the dashboard, in interleaved batches without
    and with 20 clients polling it, compared round by round (the machine's speed drifts
    between batches, and other work on it comes and goes: interleaving spreads both)."""
    home = Home(work / "web-intake", pki=pki)
    url = _listen_on(home)
    store = Store(f"sqlite:///{home.root / 'consentflow.db'}", audit_key=home_key(home.root))
    store.ensure_schema()
    Users(store).add("bench", "viewer", PASSWORD, actor="bench")
    store.close()
    home.start(web=True)
    rates: dict[str, list[float]] = {"quiet": [], "polled": []}
    cpu: dict[str, list[float]] = {"quiet": [], "polled": []}
    first = 0
    try:
        for _ in range(rounds):
            for key in ("quiet", "polled"):
                stop = threading.Event()
                pollers = []
                if key == "polled":
                    pollers = [
                        threading.Thread(target=_poll, args=(_signed_in(url, "bench"), stop),
                                         daemon=True)
                        for _ in range(CLIENTS)
                    ]  # fmt: skip
                    for thread in pollers:
                        thread.start()
                    time.sleep(2)  # every poller at its pace before the batch
                try:
                    indexes = range(first, first + batch)
                    first += batch
                    valid = sum(corpus.is_valid(i) for i in indexes)
                    before = home.count("outbox")
                    paths = home.stage((f"eoi-{i:06d}.pdf", corpus.doc(i)) for i in indexes)
                    cpu_before = cpu_seconds(home.pid)
                    began = home.drop(paths, "inbox")

                    def issued(before: int = before, valid: int = valid) -> bool:
                        return home.count("outbox") - before >= valid

                    ended = home.wait_idle("inbox", done=issued, timeout=60 + 3.0 * batch)
                    rates[key].append(batch / (ended - began))
                    cpu[key].append((cpu_seconds(home.pid) - cpu_before) * 1000 / batch)
                finally:
                    stop.set()
                    for thread in pollers:
                        thread.join(10)
    finally:
        home.stop()
    beside_row(add, rates, cpu, batch=batch)


def beside_row(
    add: Add, rates: dict[str, list[float]], cpu: dict[str, list[float]], *, batch: int
) -> None:
    """The intake-beside-the-dashboard row from its batches' rates (docs/s) and the engine's
    CPU per document, each keyed ``quiet`` and ``polled`` in round order.

    The ratio is the median of each round's polled rate over the quiet batch just before it
    (bench/rounds.py); when either kind of batch drifted by more than the guard's limit over
    the rounds, the machine's speed moved and the verdict says unreliable.
    """
    quiet, polled = spread(rates["quiet"]), spread(rates["polled"])
    ratio = pair_ratios(rates["polled"], rates["quiet"])
    cpu_polled, cpu_quiet = spread(cpu["polled"]), spread(cpu["quiet"])
    doubts = (drift(rates["quiet"], what="batches without clients"),
              drift(rates["polled"], what="batches with clients"))  # fmt: skip
    add("web", f"intake, {len(rates['quiet'])}×{batch} EOIs, {CLIENTS} clients polling the "
        "dashboard (1/s each), interleaved with batches without them",
        f"{polled.text()} docs/s", f"{ratio.percent()} of {quiet.text()} docs/s without them; "
        f"engine CPU {cpu_polled.median:.1f} vs {cpu_quiet.median:.1f} ms/doc", "≥ 90 %",
        verdict(ratio.median >= 0.9, *doubts))  # fmt: skip


def measure(add: Add, corpus: Corpus, work: Path, pki: DemoPki, *, quick: bool) -> None:
    """Every web row, in this order: pages, live log, intake beside the dashboard, /apply."""
    pages(add, Home(work / "web-pages", pki=pki),
          applications=300 if quick else 10_000, requests=100 if quick else 2000)  # fmt: skip
    live_log(add, Home(work / "web-live", pki=pki), events=10 if quick else 100)
    rounds, batch = (1, 20) if quick else (3, 100)
    intake_beside(add, corpus, work, pki, batch=batch, rounds=rounds)
    apply_bench.measure(add, work, pki, quick=quick)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.web``: the web rows alone, printed as a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.web", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="consentflow-bench-web-"))
    rows: list[Row] = []
    try:
        from workflow.demo_pki import make_demo_pki

        pki = make_demo_pki(work / "pki")
        measure(lambda *a: rows.append(Row(*a)), Corpus(2 if args.quick else 12), work, pki,
                quick=args.quick)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
