"""The ETSI TS 119 102-2 report stored as evidence of a verdict (never the gate).

The report is pyHanko's own XML, made from the validation this verifier already ran
and the indication its checks gave: a second run of pyHanko's AdES engine only for the
report cost a fifth of a verification (``python -m bench.verify --profile``), and its
indication missed our rules (it said INDETERMINATE, NO_POE or
CERTIFICATE_CHAIN_GENERAL_FAILURE, for signatures this verifier accepts).
"""

from __future__ import annotations

from typing import Any

from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko_certvalidator import ValidationContext

from workflow.verification.pdf import etsi_xml


def subindication(indication: tuple[str, str | None]) -> Any:
    """pyHanko's AdES sub-indication for a report's (indication, sub-indication) pair."""
    main, sub = indication
    if main == "TOTAL_PASSED":
        return AdESPassed.OK
    kind: Any = AdESFailure if main == "TOTAL_FAILED" else AdESIndeterminate
    return kind[sub]


def etsi_report(
    emb: EmbeddedPdfSignature,
    status: Any,
    context: ValidationContext,
    indication: tuple[str, str | None],
    failure: str | None,
) -> str | None:
    """The ETSI report of ``status`` (pyHanko's validation of ``emb``) with the verdict's
    ``indication`` and first ``failure``, or None if pyHanko cannot make one."""
    try:
        return etsi_xml(emb, status, context, subindication(indication), failure)
    except Exception:
        return None
