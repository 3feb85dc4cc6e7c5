"""``python -m bench.latency [-n N]``: only the benchmark's latency section, printed as a table.

The same measurement as the full run's latency rows (a real ``consentflow run`` process,
files renamed into ``inbox/`` one at a time, 50 ms apart), without the slow sections
before it: for checking a latency change without a 15-minute run.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

from bench.__main__ import Run, _latency, _step, parse
from bench.corpus import Corpus
from bench.report import print_run


def main(argv: list[str] | None = None) -> int:
    """Measure file-complete-to-outcome latency for N valid and N/4 invalid files."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("-n", type=int, default=40, help="valid files (default 40)")
    args = parser.parse_args(argv)
    options = dataclasses.replace(
        parse(["--quick"]), latency_valid=args.n, latency_invalid=max(1, args.n // 4)
    )
    work = Path(tempfile.mkdtemp(prefix="consentflow-latency-"))
    run = Run(options)
    try:
        _step(f"corpus: filling {options.bases} + 2 base EOIs with pypdf")
        _latency(run, Corpus(options.bases), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_run(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
