"""Hostile files in signed/: each gets a stable answer from the verifier, within limits.

As tests/test_malformed.py does for EOIs, every case runs ``Verifier.verify_sync`` in its
own Python process under ``RLIMIT_CPU`` 2 s (hard 3 s) and ``RLIMIT_AS`` = the address
space of an idle verifier process plus 300 MiB. A process killed by SIGXCPU or dying of
MemoryError prints no JSON answer and fails its case. The files are made here, from a
consent issued and signed with the test PKI:

- 10,000 ``%%EOF`` lines (with and without a PDF header), and 1 MB of them,
- 1,000 revisions (one ``startxref`` each, and a single ``startxref`` with 1,000 /Prev links),
- 20 MB (a signed consent padded to the limit), and one byte over,
- a signing revision whose page content refers 100 times to one stream of 4 MiB,
- a 1 GiB compressed bomb in the signature dictionary,
- 100,000 nested arrays after the signature.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers

from tests.conftest import REPO
from tests.pki import TestPki, build_pki, commission_sign, issued_consent, pinned_time
from workflow.verification import IssuedConsent

generic: Any = pdf_generic

CPU_SECONDS = 2
HEADROOM = 300 * 1024 * 1024
MIB = 1024 * 1024

CHILD = """
import json, sys
from pathlib import Path
if sys.argv[1] == "--probe":
    import workflow.verification
    status = open("/proc/self/status").read()
    print(json.dumps({"vm_kib": int(status.split("VmSize:")[1].split()[0])}))
    sys.exit()
import hashlib, logging
logging.disable(logging.CRITICAL)
from workflow.verification import IssuedConsent, SignaturePolicy, Verifier
root, issued_path, path = sys.argv[1:]
issued = Path(issued_path).read_bytes()
consent = IssuedConsent("CF-2026-0001", hashlib.sha256(issued).hexdigest(), issued)
verifier = Verifier(SignaturePolicy(trust_roots=(Path(root),), revocation="off"))
report = verifier.verify_sync(Path(path).read_bytes(), {consent.sha256: consent}.get)
print(json.dumps({"accepted": report.accepted, "reference": report.reference,
                  "failed": [check.code for check in report.failed]}))
"""


@dataclass(frozen=True)
class Case:
    """How to make one hostile file from the issued and the signed consent, and the first
    failed check codes allowed."""

    make: Callable[[bytes, bytes, TestPki], bytes]
    allowed: frozenset[str]


def _revision(base: bytes, objects: dict[int, bytes], *, junk: bytes = b"") -> bytes:
    """Append one incremental update with ``objects`` (number → body) to ``base``."""
    reader = PdfFileReader(BytesIO(base), strict=False)
    size = max([int(reader.trailer["/Size"]), *(n + 1 for n in objects)])
    root = reader.trailer.raw_get("/Root").reference
    out = bytearray(base if base.endswith(b"\n") else base + b"\n") + junk
    offsets = {}
    for number, body in sorted(objects.items()):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n" if objects else b"xref\n0 1\n0000000000 65535 f \n"
    for number, offset in sorted(offsets.items()):
        out += b"%d 1\n%010d 00000 n \n" % (number, offset)
    previous = int(reader.last_startxref or 0)
    out += b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        root.idnum,
        previous,
        xref,
    )
    return bytes(out)


def _serialise(obj: Any) -> bytes:
    buffer = BytesIO()
    obj.write_to_stream(buffer, None)
    return buffer.getvalue()


def _eof_lines(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    return b"%%EOF\n" * 10_000


def _eof_lines_1mb(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    """The issue's file: 1 MB of ``%%EOF`` lines (192 s of prefix hashing before the fix)."""
    return b"%%EOF\n" * (MIB // 6)


def _pdf_eof_lines(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    return b"%PDF-1.7\n" + b"%%EOF\n" * 10_000


def _thousand_revisions(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    data = signed
    reader = PdfFileReader(BytesIO(signed), strict=False)
    size, root = int(reader.trailer["/Size"]), reader.trailer.raw_get("/Root").reference.idnum
    previous = int(reader.last_startxref or 0)
    out = bytearray(data)
    for _ in range(1000):
        xref = len(out)
        out += b"xref\n0 0\ntrailer\n<< /Size %d /Root %d 0 R /Prev %d >>\n" % (
            size,
            root,
            previous,
        )
        out += b"startxref\n%d\n%%%%EOF\n" % xref
        previous = xref
    return bytes(out)


def _thousand_linked_sections(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    """1,000 cross-reference sections chained by /Prev, one ``startxref`` at the end."""
    reader = PdfFileReader(BytesIO(signed), strict=False)
    size, root = int(reader.trailer["/Size"]), reader.trailer.raw_get("/Root").reference.idnum
    previous = int(reader.last_startxref or 0)
    out = bytearray(signed)
    for _ in range(1000):
        xref = len(out)
        out += b"xref\n0 0\ntrailer\n<< /Size %d /Root %d 0 R /Prev %d >>\n" % (
            size,
            root,
            previous,
        )
        previous = xref
    out += b"startxref\n%d\n%%%%EOF\n" % previous
    return bytes(out)


def _padded(total: int) -> Callable[[bytes, bytes, TestPki], bytes]:
    """The signed consent with a revision after it that adds a stream of junk to the
    catalogue, the whole file ``total`` bytes long."""

    def make(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
        reader = PdfFileReader(BytesIO(signed), strict=False)
        root = reader.trailer.raw_get("/Root").reference.idnum
        number = int(reader.trailer["/Size"])
        catalog = _serialise(reader.root)[:-2] + b" /Junk %d 0 R >>" % number

        def build(size: int) -> bytes:
            stream = b"<< /Length %d >>\nstream\n" % size + b"x" * size + b"\nendstream"
            return _revision(signed, {root: catalog, number: stream})

        first = build(total - len(signed) - 400)
        out = build(total - len(signed) - 400 + total - len(first))
        assert len(out) == total
        return out

    return make


def _stream_referenced_100_times(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    writer: Any = IncrementalPdfFileWriter(BytesIO(issued))
    content = generic.StreamObject(stream_data=b"0 0 m\n" * (4 * MIB // 6))
    content.compress()
    ref = writer.add_object(content)
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Contents"] = generic.ArrayObject([ref] * 100)
    writer.update_container(page)
    meta = signers.PdfSignatureMetadata(
        field_name="CommissionSignature", subfilter=fields.SigSeedSubFilter.PADES
    )
    out = BytesIO()
    signers.PdfSigner(meta, pki.signer("signer-ecdsa")).sign_pdf(writer, output=out)
    return out.getvalue()


def _bomb_in_signature_dictionary(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    reader = PdfFileReader(BytesIO(signed), strict=False)
    (emb,) = reader.embedded_signatures
    sig_ref = emb.sig_field.raw_get("/V")
    sig = sig_ref.get_object()
    bomb = zlib.compress(b"\0" * (1024 * MIB), 9)
    number = int(reader.trailer["/Size"])
    body = _serialise(sig)[:-2] + b" /Bomb %d 0 R >>" % number
    stream = b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb + b"\nendstream"
    return _revision(signed, {sig_ref.idnum: body, number: stream})


def _deep_nesting(issued: bytes, signed: bytes, pki: TestPki) -> bytes:
    reader = PdfFileReader(BytesIO(signed), strict=False)
    catalog = reader.root
    root = reader.trailer.raw_get("/Root").reference.idnum
    number = int(reader.trailer["/Size"])
    body = _serialise(catalog)[:-2] + b" /Nest %d 0 R >>" % number
    return _revision(signed, {root: body, number: b"[" * 100_000 + b"]" * 100_000})


ANY_REJECTION = frozenset(
    {
        "unusable",
        "too_complex",
        "changes_after_signature",
        "changes_before_signature",
        "not_intact",
        "unvalidated_signature",
        "signature_status",
        "revision_count",
        "wrong_field",
        "error",
    }
)

CASES = {
    "eof_lines": Case(_eof_lines, frozenset({"not_pdf"})),
    "eof_lines_1mb": Case(_eof_lines_1mb, frozenset({"not_pdf"})),
    "pdf_header_eof_lines": Case(_pdf_eof_lines, frozenset({"not_issued_here", "unusable"})),
    "revisions_1000": Case(_thousand_revisions, frozenset({"too_complex"})),
    "linked_sections_1000": Case(_thousand_linked_sections, frozenset({"too_complex"})),
    # Read, bound and validated: the revision after the signature is what fails.
    "size_20mb": Case(_padded(20 * MIB), frozenset({"changes_after_signature"})),
    "size_over_20mb": Case(_padded(20 * MIB + 1), frozenset({"too_complex"})),
    "stream_referenced_100_times": Case(
        _stream_referenced_100_times, frozenset({"too_complex", "changes_before_signature"})
    ),
    "bomb_in_signature_dictionary": Case(_bomb_in_signature_dictionary, ANY_REJECTION),
    "deep_nesting": Case(_deep_nesting, ANY_REJECTION),
}


@dataclass(frozen=True)
class Outcome:
    """How one child process ended."""

    returncode: int
    answer: dict[str, Any]
    stderr: str


def _limits(address_space: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 1))
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _run_all(root: Path, issued: Path, paths: dict[str, Path]) -> dict[str, Outcome]:
    probe = subprocess.run(
        [sys.executable, "-c", CHILD, "--probe"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    limit = int(json.loads(probe.stdout)["vm_kib"]) * 1024 + HEADROOM
    waiting = list(paths.items())
    running: list[tuple[str, subprocess.Popen[str]]] = []
    outcomes: dict[str, Outcome] = {}
    parallel = max(1, os.cpu_count() or 1)
    while waiting or running:
        while waiting and len(running) < parallel:
            name, path = waiting.pop(0)
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(root), str(issued), str(path)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                # Safe: the PKI's server thread holds no lock the child could need.
                preexec_fn=_limits(limit),  # noqa: PLW1509
            )
            running.append((name, process))
        name, process = running.pop(0)
        stdout, stderr = process.communicate()
        lines = stdout.strip().splitlines()
        answer = json.loads(lines[-1]) if lines else {}
        outcomes[name] = Outcome(process.returncode, answer, stderr[-2000:])
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Outcome]]:
    """Every case's outcome, run in parallel child processes under limits."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the limits and the baseline probe use Linux rlimits and /proc")
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    folder = tmp_path_factory.mktemp("signed-malformed")
    (folder / "pki").mkdir()
    with build_pki(folder / "pki") as pki, pinned_time():
        consent: IssuedConsent = issued_consent("CF-2026-0001")
        signed = commission_sign(consent.data, pki)
        (folder / "issued.pdf").write_bytes(consent.data)
        paths = {"good": folder / "good.pdf"}
        paths["good"].write_bytes(signed)
        for name, case in CASES.items():
            paths[name] = folder / f"{name}.pdf"
            paths[name].write_bytes(case.make(consent.data, signed, pki))
        yield _run_all(pki.root_pem, folder / "issued.pdf", paths)


def test_the_signed_consent_is_accepted_under_the_same_limits(
    outcomes: dict[str, Outcome],
) -> None:
    """The genuine signed consent passes inside the sandbox: the limits are not too tight."""
    outcome = outcomes["good"]
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.answer["accepted"], outcome.answer


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_signed_file_gets_a_stable_answer(name: str, outcomes: dict[str, Outcome]) -> None:
    """The process ends cleanly with a rejection whose first failed code is the expected one."""
    outcome = outcomes[name]
    assert outcome.returncode == 0, f"exit {outcome.returncode}: {outcome.stderr}"
    assert outcome.answer["accepted"] is False, outcome.answer
    assert outcome.answer["failed"][0] in CASES[name].allowed, outcome.answer
