"""``python -m bench [--quick] [-n N]``: consentflow's throughput, latency, memory and idle cost.

Every measurement runs the real ``consentflow run`` process on a fresh home folder in
a temporary directory, with the demo PKI, the office seal and ``review = "auto"``,
and compares it with the libraries' own cost (the floor) measured in the same run on
the same documents. The full run writes ``bench/RESULTS.md``; ``--quick`` (tiny
numbers, about half a minute) only prints the table, for CI smoke runs.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import mail, startup, supporters, web
from bench.corpus import Corpus
from bench.engine import Home, cpu_seconds, memory, postgres_url, reset_postgres
from bench.floor import Floor, measure_floor
from bench.profiling import Profile, profile_engine
from bench.report import Row, print_run, render_results, status
from bench.scale import burst, run_burst
from workflow.audit_key import load_key
from workflow.signing import Signer, sign_consent
from workflow.store import Store

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


@dataclass(frozen=True)
class Options:
    """Sizes of one run; ``--quick`` shrinks them all."""

    quick: bool
    n: int
    memory_n: int
    scale_n: int
    latency_valid: int
    latency_invalid: int
    pyhanko_files: int
    pdfsig_files: int
    idle_s: float
    floor_docs: int
    profile_docs: int
    bases: int
    results: Path | None
    keep: bool


@dataclass
class Run:
    """What the run measured, for the table and RESULTS.md."""

    options: Options
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    memory_curve: list[tuple[int, float, float]] = field(default_factory=list)
    profile: Profile | None = None
    postgres: str | None = None
    started: float = field(default_factory=time.time)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """Append a table row."""
        self.rows.append(Row(*args, **kwargs))


def parse(argv: list[str] | None) -> Options:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run")
    parser.add_argument("-n", type=int, help="EOIs per intake run (default 1000; quick 20)")
    parser.add_argument(
        "--memory-n", type=int, help="documents for the memory point (default 10000; quick 40)"
    )
    parser.add_argument(
        "--scale-n", type=int, help="files in the 4-worker burst (default 2000; quick 40)"
    )
    parser.add_argument("--idle-s", type=float, help="idle measurement (default 60 s; quick 5)")
    parser.add_argument(
        "--results",
        type=Path,
        help="write RESULTS.md here (default: bench/RESULTS.md for a full run, none for quick)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary home folders")
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    n = args.n or (20 if quick else 1000)
    memory_n = args.memory_n or (2 * n if quick else max(10_000, n))
    results = args.results or (None if quick else RESULTS)
    return Options(
        quick=quick,
        n=n,
        memory_n=max(memory_n, n),
        scale_n=args.scale_n or (40 if quick else 2000),
        latency_valid=5 if quick else 200,
        latency_invalid=2 if quick else 50,
        pyhanko_files=2 if quick else 25,
        pdfsig_files=5 if quick else 200,
        idle_s=args.idle_s or (3.0 if quick else 60.0),
        floor_docs=3 if quick else 40,
        profile_docs=0 if quick else 100,
        bases=2 if quick else 12,
        results=results,
        keep=bool(args.keep),
    )


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table, write RESULTS.md when asked."""
    options = parse(argv)
    work = Path(tempfile.mkdtemp(prefix="consentflow-bench-"))
    run = Run(options)
    try:
        _measure(run, work)
    finally:
        if options.keep:
            print(f"home folders kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    table = print_run(run)
    if options.results is not None:
        options.results.write_text(render_results(run, table, argv))
        print(f"wrote {options.results}")
    return 0


def _step(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _measure(run: Run, work: Path) -> None:
    options = run.options
    _step(f"corpus: filling {options.bases} + 2 base EOIs with pypdf")
    corpus = Corpus(options.bases)
    corpus.check([0, 1, 9, options.n - 1])
    valid_share = sum(corpus.is_valid(i) for i in range(options.n)) / options.n

    main_home = Home(work / "main")
    _step("floor: library steps per document")
    floor_docs = [corpus.doc(i) for i in range(900_000, 900_000 + 2 * options.floor_docs)]
    valid = [d for i, d in enumerate(floor_docs, 900_000) if corpus.is_valid(i)]
    valid_floor_docs = valid[: options.floor_docs]
    floor = measure_floor(valid_floor_docs, main_home.pki)
    for name, label in (
        ("read", "pypdf reads the form's fields"),
        ("render", "reportlab renders the consent"),
        ("field", "pyHanko appends the signature field"),
        ("seal", "office seal signature (key parsed once)"),
        ("validate", "pyHanko validates a signed consent (2 signatures)"),
    ):
        ms = floor.steps[name]
        run.add("floor", label, f"{ms:.1f} ms", f"{1000 / ms:.0f} /s")
    floor_rate = floor.intake_rate(valid_share)
    run.add(
        "floor",
        f"intake floor, {valid_share:.0%} valid",
        f"{1000 / floor_rate:.1f} ms/doc",
        f"{floor_rate:.1f} docs/s",
    )

    def floor_again() -> float:
        _step("floor: the library steps again, right after the 1-worker intake run")
        again = measure_floor(valid_floor_docs, main_home.pki).intake_rate(valid_share)
        run.add("floor", "intake floor again, right after the 1-worker run",
                f"{1000 / again:.1f} ms/doc", f"{again:.1f} docs/s")  # fmt: skip
        return again

    _intake(run, corpus, main_home, work, floor_rate=floor_rate, floor_again=floor_again)
    _scale(run, corpus, main_home, work)
    _verification(run, main_home, floor, work)
    main_home.stop()
    _latency(run, corpus, work)
    _idle(run, work, main_home)
    _step("startup: --help, status, show, check against python -c pass and pyhanko --help")
    apps = 1000 if options.quick else 10_000
    timings = startup.measure(work, applications=apps, runs=3 if options.quick else 7)
    run.rows.extend(startup.rows(timings, applications=apps))
    _step("web: pages at scale, the live log, intake beside the dashboard (bench/web.py)")
    web.measure(run.add, corpus, work, main_home.pki, quick=options.quick)
    _step("supporters: /supporters at 2,000 active, the feedback sweep (bench/supporters.py)")
    supporters.measure(run.add, work, quick=options.quick)
    _step("mail: IMAP to record, state change to SMTP accepted (bench/mail.py)")
    mail.measure(run.add, corpus, work, main_home.pki, quick=options.quick)
    if options.profile_docs:
        _step(f"profile: cProfile over {options.profile_docs} EOIs in-process")
        home = Home(work / "profile", pki=main_home.pki)
        run.profile = profile_engine(home.root, corpus, list(range(options.profile_docs)))
        wall = run.profile.wall_ms_per_doc
        run.add("profile", "engine in-process under cProfile", f"{wall:.1f} ms/doc", "")


# -- intake throughput and memory -------------------------------------------------------


def _batch(
    home: Home, corpus: Corpus, start: int, count: int, *, timeout: float
) -> tuple[float, int]:
    """Drop documents start..start+count at once; return (seconds until all done, valid)."""
    indexes = range(start, start + count)
    valid = sum(corpus.is_valid(i) for i in indexes)
    paths = home.stage((f"eoi-{i:06d}.pdf", corpus.doc(i)) for i in indexes)
    before = home.count("outbox")
    began = home.drop(paths, "inbox")
    ended = home.wait_idle(
        "inbox", done=lambda: home.count("outbox") - before >= valid, timeout=timeout
    )
    return ended - began, valid


def _check_states(home: Home, expected: dict[str, int], run: Run, what: str) -> None:
    states = home.states()
    if any(states.get(state, 0) != count for state, count in expected.items()):
        raise RuntimeError(f"{what}: expected {expected}, the database says {states}")
    failed = home.count("failed")
    if failed:
        run.notes.append(f"{what}: {failed} file(s) in failed/")


def _intake(
    run: Run, corpus: Corpus, main_home: Home, work: Path, *, floor_rate: float,
    floor_again: Callable[[], float],
) -> None:  # fmt: skip
    """Intake throughput against the floor measured before and right after the 1-worker run.

    Both floors bracket the run and the ratios use their mean: on this shared machine the
    speed drifts by several per cent within minutes (bench/HISTORY.md).
    """
    options = run.options
    n = options.n
    timeout = 60 + n * 2.0
    rates: dict[str, float] = {}

    _step(f"intake: {n} EOIs, 1 worker, SQLite")
    main_home.start()
    seconds, valid = _batch(main_home, corpus, 0, n, timeout=timeout)
    _check_states(main_home, {"consent_issued": valid, "invalid": n - valid}, run, "1 worker")
    rates["1w-sqlite"] = n / seconds
    first = memory(main_home.pid)
    floor_rate = (floor_rate + floor_again()) / 2
    run.memory_curve.append((n, first.rss_mib, first.peak_mib))
    run.add(
        "intake", f"{n} EOIs, 1 worker, SQLite", f"{n / seconds:.1f} docs/s",
        f"{n / seconds / floor_rate:.0%} of floor (mean of both)", "≥ 80 % of floor",
        status(n / seconds / floor_rate >= 0.8),
    )  # fmt: skip

    _memory(run, corpus, main_home, first.rss_mib, timeout)

    postgres = postgres_url()
    # Quick runs measure one 2-worker configuration; full runs all three.
    configurations = [("2w-pg", 2, True)]
    if not options.quick:
        configurations = [("1w-pg", 1, True), *configurations, ("2w-sqlite", 2, False)]
    for key, workers, on_pg in configurations:
        if on_pg:
            run.postgres = reset_postgres(postgres)
            if run.postgres is None:
                run.notes.append(f"PostgreSQL at {postgres} unreachable: {key} not measured")
                if options.quick:
                    configurations.append(("2w-sqlite", 2, False))
                continue
        url = postgres if on_pg else "sqlite:///consentflow.db"
        label = f"{n} EOIs, {workers} worker{'s' if workers > 1 else ''}, "
        label += "PostgreSQL" if on_pg else "SQLite"
        _step(f"intake: {label}")
        home = Home(work / key, database_url=url, pki=main_home.pki)
        home.start(workers)
        try:
            seconds, valid = _batch(home, corpus, 0, n, timeout=timeout)
            expected = {"consent_issued": valid, "invalid": n - valid}
            _check_states(home, expected, run, label)
        finally:
            home.stop()
        rates[key] = n / seconds
        one = rates.get("1w-pg" if on_pg else "1w-sqlite")
        if workers == 2 and one:
            speedup = rates[key] / one
            base = "1 worker PostgreSQL" if on_pg else "1 worker SQLite"
            reference = f"{speedup:.2f}× {base}; {rates[key] / floor_rate:.0%} of floor"
            target = "≥ 1.8× on 2 cores" if on_pg else ""
            run.add("intake", label, f"{rates[key]:.1f} docs/s", reference, target,
                    status(speedup >= 1.8) if on_pg else "")  # fmt: skip
        else:
            run.add("intake", label, f"{rates[key]:.1f} docs/s",
                    f"{rates[key] / floor_rate:.0%} of floor")  # fmt: skip


def _scale(run: Run, corpus: Corpus, main_home: Home, work: Path) -> None:
    """Issue 5's point: a burst for ``run --workers 4`` on PostgreSQL, every file accounted for."""
    n = run.options.scale_n
    url = postgres_url()
    version = reset_postgres(url)
    if version is None:
        run.notes.append(f"PostgreSQL at {url} unreachable: the 4-worker burst not measured")
        return
    run.postgres = version
    work_burst = burst(corpus, n, first=0)
    label = f"{n} files (valid, invalid, repeated, damaged), 4 workers, PostgreSQL"
    _step(f"scale: {label}")
    home = Home(work / "scale", database_url=url, pki=main_home.pki)
    store = Store(url, audit_key=load_key(home.root))
    home.start(4)
    try:
        account = run_burst(home, store, work_burst, timeout=120 + 2.0 * n)
    finally:
        home.stop()
        store.close()
    ok = not account.problems
    run.add(
        "scale", label, f"{account.files / account.seconds:.1f} files/s",
        "every file in one place, no consent twice, none lost" if ok
        else "; ".join(account.problems),
        "every file accounted for once", status(ok),
    )  # fmt: skip


def _memory(run: Run, corpus: Corpus, main_home: Home, first_rss: float, timeout: float) -> None:
    """The 1-worker engine goes on to ``memory_n`` documents, in batches of ``n``."""
    options = run.options
    n = options.n
    done = n
    while done < options.memory_n:
        count = min(n, options.memory_n - done)
        _step(f"memory: documents {done}..{done + count} of {options.memory_n}")
        _batch(main_home, corpus, done, count, timeout=timeout)
        done += count
        now = memory(main_home.pid)
        run.memory_curve.append((done, now.rss_mib, now.peak_mib))
    last = run.memory_curve[-1]
    growth = last[1] - first_rss
    run.add("memory", f"RSS after {n} docs (final / peak)",
            f"{first_rss:.0f} / {run.memory_curve[0][2]:.0f} MiB", "", "", "")  # fmt: skip
    run.add(
        "memory", f"RSS after {done} docs (final / peak)",
        f"{last[1]:.0f} / {last[2]:.0f} MiB", f"{growth:+.0f} MiB since {n}",
        "≤ 200 MB, flat", status(last[2] <= 200 * 1e6 / 2**20 and growth <= 0.1 * first_rss),
    )  # fmt: skip
    _check_states(
        main_home,
        {"consent_issued": sum(corpus.is_valid(i) for i in range(done))},
        run,
        "memory run",
    )


# -- verification -----------------------------------------------------------------------


def _pyhanko_cli() -> Path | None:
    """pyhanko-cli's ``pyhanko`` in this environment, installed (pinned) if missing."""
    from importlib import metadata

    binary = Path(sys.executable).parent / "pyhanko"
    if binary.exists():
        return binary
    _step("installing pyhanko-cli into this environment (for `pyhanko sign validate`)")
    pins = [f"{name}=={metadata.version(name)}" for name in ("pyHanko", "pyhanko-certvalidator")]
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "pyhanko-cli", *pins],
        check=False,
        capture_output=True,
    )
    return binary if done.returncode == 0 and binary.exists() else None


def _per_file(command: Callable[[Path], list[str]], files: list[Path]) -> tuple[float, int]:
    """Run ``command(file)`` for each file in turn; return (files per second, exit-0 count)."""
    ok = 0
    start = time.perf_counter()
    for path in files:
        ok += subprocess.run(command(path), check=False, capture_output=True).returncode == 0
    return len(files) / (time.perf_counter() - start), ok


def _verification(run: Run, home: Home, floor: Floor, work: Path) -> None:
    options = run.options
    consents = sorted((home.root / "outbox").glob("SUP-*.pdf"))[: options.n]
    _step(f"verification: signing {len(consents)} consents with the demo Commission key")
    commission = Signer.from_p12(home.pki.signer_p12)
    signed = [(f"signed-{path.name}", sign_consent(path.read_bytes(), commission))
              for path in consents]  # fmt: skip
    peers_dir = work / "peers"
    peers_dir.mkdir()
    peer_files = []
    for name, data in signed[: max(options.pyhanko_files, options.pdfsig_files)]:
        (peers_dir / name).write_bytes(data)
        peer_files.append(peers_dir / name)
    paths = home.stage(signed)
    failed_before = home.count("failed")
    _step(f"verification: {len(paths)} signed consents into signed/")
    began = home.drop(paths, "signed")
    ended = home.wait_idle("signed", timeout=60 + 3.0 * len(paths))
    rate = len(paths) / (ended - began)
    rejected = home.count("failed") - failed_before
    if rejected:
        run.notes.append(f"verification: {rejected} signed consent(s) rejected (in failed/)")
    states = home.states()
    if states.get("signed", 0) != len(paths):
        raise RuntimeError(f"verification: {len(paths)} should be signed; database: {states}")

    cli = _pyhanko_cli()
    cli_rate = 0.0
    if cli is not None:
        files = peer_files[: options.pyhanko_files]
        _step(f"verification: `pyhanko sign validate` on {len(files)} files, one process each")
        root = str(home.pki.root_pem)
        office = str(home.pki.office_root_pem or root)  # the seal's own issuer (issue 15)
        cli_rate, ok = _per_file(
            lambda path: [str(cli), "sign", "validate", "--trust", root, "--trust", office,
                          "--trust-replace", "--no-revocation-check", str(path)],
            files,
        )  # fmt: skip
        if ok != len(files):
            run.notes.append(f"pyhanko sign validate: {len(files) - ok} file(s) not exit 0")
    else:
        run.notes.append("pyhanko-cli could not be installed: `pyhanko sign validate` not measured")
    pdfsig = shutil.which("pdfsig")
    pdfsig_rate = 0.0
    if pdfsig is not None:
        files = peer_files[: options.pdfsig_files]
        _step(f"verification: pdfsig on {len(files)} files, one process each")
        pdfsig_rate, _ = _per_file(lambda path: [pdfsig, str(path)], files)
    else:
        run.notes.append("poppler's pdfsig not found: not measured")

    run.add("verify", f"{len(paths)} signed consents, 1 worker", f"{rate:.1f} accepted/s",
            f"{rate / floor.verify_rate:.0%} of floor ({floor.verify_rate:.1f}/s)")  # fmt: skip
    if cli_rate:
        run.add(
            "verify", f"`pyhanko sign validate` per file ({options.pyhanko_files} files)",
            f"{cli_rate:.2f} files/s", f"engine {rate / cli_rate:.1f}×",
            "engine ≥ 10×", status(rate / cli_rate >= 10),
        )  # fmt: skip
    if pdfsig_rate:
        run.add(
            "verify", f"poppler `pdfsig` per file ({options.pdfsig_files} files)",
            f"{pdfsig_rate:.1f} files/s", f"engine {rate / pdfsig_rate:.2f}×",
            "engine ≥ 1×", status(rate >= pdfsig_rate),
        )  # fmt: skip


# -- latency ----------------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def _latency(run: Run, corpus: Corpus, work: Path) -> None:
    options = run.options
    home = Home(work / "latency")
    home.start()
    valid_ms: list[float] = []
    invalid_ms: list[float] = []
    valid_left, invalid_left = options.latency_valid, options.latency_invalid
    index = 500_000
    _step(f"latency: {valid_left} valid and {invalid_left} invalid EOIs, one at a time")
    inbox = home.root / "inbox"
    try:
        while valid_left or invalid_left:
            index += 1
            valid = corpus.is_valid(index)
            if (valid and not valid_left) or (not valid and not invalid_left):
                continue
            hidden = inbox / f".eoi-{index}.pdf.part"
            hidden.write_bytes(corpus.doc(index))
            before = home.count("outbox")
            start = time.perf_counter()
            hidden.rename(inbox / f"eoi-{index}.pdf")
            deadline = time.monotonic() + 30
            while (home.count("outbox") == before) if valid else home.busy("inbox"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"latency: eoi-{index}.pdf not processed in 30 s")
                time.sleep(0.001)
            elapsed = (time.perf_counter() - start) * 1000
            if valid:
                valid_ms.append(elapsed)
                valid_left -= 1
            else:
                invalid_ms.append(elapsed)
                invalid_left -= 1
            time.sleep(0.05)
        expected = {"consent_issued": len(valid_ms), "invalid": len(invalid_ms)}
        _check_states(home, expected, run, "latency")
    finally:
        home.stop()
    for label, values, target in (
        ("file complete → consent in outbox/", valid_ms, "p50 ≤ 250 ms, p99 ≤ 1 s"),
        ("file complete → invalid recorded", invalid_ms, ""),
    ):
        p50, p95, p99 = (_percentile(values, share) for share in (0.5, 0.95, 0.99))
        run.add(
            "latency", f"{label} (n={len(values)})",
            f"p50 {p50:.0f} / p95 {p95:.0f} / p99 {p99:.0f} ms",
            f"mean {statistics.fmean(values):.0f} ms", target,
            status(p50 <= 250 and p99 <= 1000) if target else "",
        )  # fmt: skip


# -- idle -------------------------------------------------------------------------------


def _idle(run: Run, work: Path, main_home: Home) -> None:
    seconds = run.options.idle_s
    _step(f"idle: two idle engines (native events, polling every 5 s) for {seconds:.0f} s")
    native = Home(work / "idle-native", pki=main_home.pki)
    polling = Home(work / "idle-polling", pki=main_home.pki, polling_interval_s=5)
    homes = (native, polling)
    try:
        for home in homes:
            home.start()
        time.sleep(2)  # the start-up scan and imports settle
        before = [cpu_seconds(home.pid) for home in homes]
        start = time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - start
        used = [cpu_seconds(home.pid) - b for home, b in zip(homes, before, strict=True)]
    finally:
        for home in homes:
            home.stop()
    for label, cpu, target in (
        ("native events", used[0], "< 1 %"),
        ("polling every 5 s", used[1], ""),
    ):
        share = 100 * cpu / wall
        run.add(
            "idle", f"CPU of an idle engine over {wall:.0f} s, {label}",
            f"{share:.2f} % of a core", f"{cpu * 1000:.0f} ms CPU", target,
            status(share < 1) if target else "",
        )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
