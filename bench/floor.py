"""The floor: what each library step costs per document, called directly, nothing else.

These are the steps the engine cannot avoid: pypdf reading the form's fields,
reportlab rendering the consent, pyHanko appending the empty signature field, the
office seal's signature (key parsed once) and pyHanko validating a signed consent.
Everything consentflow adds (validation, the database, the archive, fsync, events)
is engine overhead measured against this.
"""

from __future__ import annotations

import gc
import io
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import SigFieldSpec, append_signature_field, ensure_sig_flags
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader

from bench.rounds import Sample, own_cpu
from forms.consent import render_consent_body
from forms.eoi import EOI
from forms.reading import read_eoi
from forms.validation import validate
from workflow.demo_pki import DemoPki
from workflow.engine import _freeze_heap
from workflow.signing import COMMISSION_FIELD, Signer, certify, sign_consent
from workflow.verification.pdf import pyhanko_as_shipped

_INTAKE = ("read", "render", "field", "seal")


@dataclass
class Floor:
    """Mean milliseconds per document for each step (wall and CPU time of this process),
    and the signed files it made."""

    steps: dict[str, float] = field(default_factory=dict)
    cpu_steps: dict[str, float] = field(default_factory=dict)
    signed: list[bytes] = field(default_factory=list)

    @property
    def intake_ms(self) -> float:
        """One valid EOI through read, render, signature field and seal."""
        return sum(self.steps[k] for k in _INTAKE)

    def intake_rate(self, valid_share: float) -> float:
        """Documents per second at the floor for a mix with this share of valid files."""
        per_doc = valid_share * self.intake_ms + (1 - valid_share) * self.steps["read"]
        return 1000 / per_doc

    def intake_sample(self, valid_share: float) -> Sample:
        """Wall and CPU milliseconds per document of the mix, as one round's sample."""

        def mix(steps: dict[str, float]) -> float:
            valid = sum(steps[k] for k in _INTAKE)
            return valid_share * valid + (1 - valid_share) * steps["read"]

        return Sample.per_item(mix(self.steps), mix(self.cpu_steps))

    def verify_sample(self) -> Sample:
        """Wall and CPU milliseconds per signed consent that pyHanko alone validates."""
        return Sample.per_item(self.steps["validate"], self.cpu_steps["validate"])

    @property
    def verify_rate(self) -> float:
        """Signed consents per second that pyHanko alone validates."""
        return 1000 / self.steps["validate"]


class _Clock:
    """Milliseconds per named step, wall and CPU time, one sample per document."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def clear(self) -> None:
        """Forget the samples so far (the warm-up's)."""
        self.samples.clear()
        self.cpu.clear()

    @contextmanager
    def time(self, name: str) -> Iterator[None]:
        """Time the block as one sample of ``name``."""
        cpu = own_cpu()
        start = time.perf_counter()
        yield
        self.samples.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        self.cpu.setdefault(name, []).append((own_cpu() - cpu) * 1000)


def measure_floor(docs: list[bytes], pki: DemoPki) -> Floor:
    """Run every library step on each of ``docs`` (valid EOIs); return the mean costs."""
    seal = Signer.from_p12(pki.seal_p12)
    commission = Signer.from_p12(pki.signer_p12)
    root = demo_roots(pki)
    clock = _Clock()
    floor = Floor()
    # The libraries as released: without the faster readers workflow.verification gives them.
    with _frozen_heap(), pyhanko_as_shipped():
        # One warm-up document: imports, font loading and caches are paid once by a service.
        for number, data in enumerate([docs[0], *docs]):
            if number == 1:
                clock.clear()
                floor.signed.clear()
            with clock.time("read"):
                PdfReader(io.BytesIO(data)).get_fields()
            raw = read_eoi(data)
            eoi = validate(raw.values, lang=raw.lang, today=date.today()).eoi
            assert isinstance(eoi, EOI)
            with clock.time("render"):
                body = render_consent_body(
                    eoi, reference=f"SUP-2026-{number:05d}", issued_at=datetime.now(UTC)
                )
            with clock.time("field"):
                with_field = _add_field(body)
            with clock.time("seal"):
                sealed = certify(with_field, seal)
            signed = sign_consent(sealed, commission)
            floor.signed.append(signed)
            with clock.time("validate"):
                _validate(signed, root)
    floor.steps = {name: statistics.fmean(values) for name, values in clock.samples.items()}
    floor.cpu_steps = {name: statistics.fmean(values) for name, values in clock.cpu.items()}
    return floor


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """What ``consentflow run`` does after start-up, undone afterwards: the collector stops
    walking this process's long-lived objects, so the floor is the libraries' own cost."""
    _freeze_heap()
    try:
        yield
    finally:
        gc.unfreeze()


def _add_field(body: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(body))
    append_signature_field(
        writer, SigFieldSpec(COMMISSION_FIELD, box=(50, 50, 290, 120), on_page=-1)
    )
    ensure_sig_flags(writer, lock_sig_flags=True)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]
    return out.getvalue()


def demo_roots(pki: DemoPki) -> list[Any]:
    """The demo Commission root and the office CA that issues the seal (since issue 15 the
    seal has an issuer of its own): pyHanko alone validates both signatures against them."""
    paths = [pki.root_pem, *([pki.office_root_pem] if pki.office_root_pem else [])]
    return [load_cert_from_pemder(str(path)) for path in paths]  # type: ignore[no-untyped-call]


def _validate(data: bytes, root: list[Any]) -> None:
    # A fresh context per document, as the engine does: contexts accumulate state. pyHanko
    # as released: without the faster token readers workflow.verification gives it.
    context = ValidationContext(trust_roots=root, allow_fetching=False)
    with pyhanko_as_shipped():
        reader = PdfFileReader(io.BytesIO(data))
        for embedded in reader.embedded_signatures:
            status = validate_pdf_signature(embedded, signer_validation_context=context)
            if not status.bottom_line:
                raise RuntimeError(f"floor: pyHanko rejects a signature it should accept: {status}")
