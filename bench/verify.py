"""``python -m bench.verify [-n N] [--profile | --engine]``: what verifying a signed consent costs.

By default the engine's verification step alone, in this process, on the bench's consents
(rendered, sealed with the demo office seal, signed with the demo Commission key):
``Verifier.verify_sync`` with the policy ``consentflow run`` builds from the demo PKI's
configuration, against pyHanko's own validation of the same files (the floor).
``--profile`` adds where the verifier's time goes (cProfile, cumulative). ``--engine``
runs the full benchmark's verification section instead (a real ``consentflow run``
issues N consents, then verifies them signed; ``pyhanko sign validate`` and ``pdfsig``
per file on a few of them), for checking a change without the 15-minute full run.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import logging
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from bench.__main__ import Run, _verification, parse
from bench.corpus import Corpus
from bench.engine import Home
from bench.floor import _add_field, _validate, demo_roots, measure_floor
from bench.report import print_run
from forms.consent import render_consent_body
from forms.eoi import EOI
from forms.reading import read_eoi
from forms.validation import validate
from workflow.demo_pki import make_demo_pki
from workflow.signing import Signer, certify, sign_consent
from workflow.verification import IssuedConsent, SignaturePolicy, Verifier


def main(argv: list[str] | None = None) -> int:
    """Verify N signed consents; print ms per document for the verifier and the floor."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify", description=__doc__)
    parser.add_argument("-n", type=int, default=30, help="signed consents (default 30)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--engine", action="store_true", help="a real engine process instead")
    args = parser.parse_args(argv)
    if args.engine:
        return _engine(args.n)
    # pyHanko logs expected validation findings with tracebacks, as the CLI's log filter knows.
    for name in ("pypdf", "pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="consentflow-verify-"))
    pki = make_demo_pki(work / "pki")
    seal = Signer.from_p12(pki.seal_p12)
    commission = Signer.from_p12(pki.signer_p12)
    root = demo_roots(pki)
    corpus = Corpus(2)
    issued: dict[str, IssuedConsent] = {}
    signed: list[bytes] = []
    for number in range(args.n):
        raw = read_eoi(corpus.doc(number * 10))  # multiples of 10 are valid EOIs
        eoi = validate(raw.values, lang=raw.lang, today=date.today()).eoi
        assert isinstance(eoi, EOI)
        reference = f"SUP-2026-{number:05d}"
        body = render_consent_body(eoi, reference=reference, issued_at=datetime.now(UTC))
        data = certify(_add_field(body), seal)
        sha = hashlib.sha256(data).hexdigest()
        issued[sha] = IssuedConsent(reference, sha, data)
        signed.append(sign_consent(data, commission))
    verifier = Verifier(
        SignaturePolicy(
            trust_roots=(pki.root_pem,),
            signer_fingerprints=(pki.signer_sha256,),
            seal_certificate_sha256=pki.seal_sha256,
        )
    )
    shutil.rmtree(work)  # the keys and the trust root are in memory now

    def engine(data: bytes) -> None:
        report = verifier.verify_sync(data, issued.get)
        if not report.accepted:
            raise RuntimeError(f"the verifier rejects a genuine consent: {report.failed}")

    floor_ms = _per_doc(lambda data: _validate(data, root), signed)
    engine_ms = _per_doc(engine, signed)
    print(f"{len(signed)} signed consents, one at a time, in-process (median of per-file times)")
    print(f"verifier (Verifier.verify_sync): {engine_ms:6.1f} ms/doc  {1000 / engine_ms:5.1f} /s")
    print(f"floor (pyHanko validate, 2 sigs): {floor_ms:6.1f} ms/doc  {1000 / floor_ms:5.1f} /s")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for data in signed:
            engine(data)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    return 0


def _engine(n: int) -> int:
    """The full benchmark's verification rows for ``n`` consents (quick sizes elsewhere)."""
    options = parse(["--quick", "-n", str(n)])
    work = Path(tempfile.mkdtemp(prefix="consentflow-verify-"))
    run = Run(options)
    try:
        corpus = Corpus(options.bases)
        home = Home(work / "main")
        floor_docs = [corpus.doc(i) for i in range(0, 30, 10)]
        home.start()
        _verification(
            run, home, lambda k: measure_floor(floor_docs, home.pki).verify_sample(), work, corpus
        )
        home.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_run(run)
    return 0


def _per_doc(step: Callable[[bytes], None], docs: list[bytes]) -> float:
    """Median milliseconds of ``step`` per document, after one warm-up call."""
    step(docs[0])
    times = []
    for data in docs:
        start = time.perf_counter()
        step(data)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    raise SystemExit(main())
