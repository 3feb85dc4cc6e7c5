"""The checks found while verifying one file, and the report they make."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus

from workflow.signature_report import (
    Check,
    CheckCode,
    IssuedConsent,
    SignatureReport,
)
from workflow.verification.limits import LimitExceededError

STATUS_NAMES = {
    AdESStatus.PASSED: "TOTAL_PASSED",
    AdESStatus.INDETERMINATE: "INDETERMINATE",
    AdESStatus.FAILED: "TOTAL_FAILED",
}
FORMAT_FAILURE = ("TOTAL_FAILED", "FORMAT_FAILURE")
# Rules that are ours, not the signature's own validity: the signature does not meet
# the validation constraints (EN 319 102-1 §5.1.3).
CONSTRAINTS = ("INDETERMINATE", AdESIndeterminate.SIG_CONSTRAINTS_FAILURE.name)
REVOCATION_INDICS = frozenset(
    {
        AdESIndeterminate.REVOKED_NO_POE,
        AdESIndeterminate.REVOKED_CA_NO_POE,
        AdESIndeterminate.TRY_LATER,
        AdESFailure.REVOKED,
    }
)


def _severity(indication: tuple[str, str | None]) -> int:
    """The report shows the worst indication found; the signature's own INDETERMINATE
    (no chain, revoked…) says more than one of our constraints failing."""
    if indication == CONSTRAINTS:
        return 1
    return {"TOTAL_PASSED": 0, "INDETERMINATE": 2, "TOTAL_FAILED": 3}[indication[0]]


@dataclass
class Findings:
    """The checks collected while verifying one file, and the worst indication."""

    checks: list[Check] = field(default_factory=list)
    indication: tuple[str, str | None] = ("TOTAL_PASSED", None)

    def add(
        self,
        code: CheckCode,
        ok: bool,
        message: str,
        indication: tuple[str, str | None] = CONSTRAINTS,
    ) -> None:
        self.checks.append(Check(code.value, ok, message))
        if not ok and _severity(indication) > _severity(self.indication):
            self.indication = indication

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


@dataclass
class Signer:
    """What the report says about the Commission signer."""

    subject: str | None = None
    sha256: str | None = None
    signing_time: datetime | None = None
    timestamp_time: datetime | None = None
    etsi_xml: str | None = None
    name: Any = None  # the subject as a cryptography x509.Name
    key_sha256: str | None = None  # SHA-256 of the signer's SubjectPublicKeyInfo
    #: SHA-256 of the certificate and of the key of the file's own office seal.
    seal_marks: frozenset[str] = frozenset()


def ades_indication(indic: Any, default: Any) -> tuple[str, str | None]:
    chosen = indic if indic is not None else default
    return STATUS_NAMES[chosen.status], chosen.name


def indication_of(exc: Exception) -> tuple[str, str | None]:
    sub = getattr(exc, "ades_subindication", None)
    if sub is not None and sub.status in STATUS_NAMES and sub.status != AdESStatus.PASSED:
        return STATUS_NAMES[sub.status], sub.name
    return FORMAT_FAILURE


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict(found: Findings) -> tuple[bool, tuple[str, str | None]]:
    """Whether ``found`` accepts the file, and the (indication, sub-indication) it reports."""
    if found.ok:
        return True, ("TOTAL_PASSED", None)
    if found.indication[0] == "TOTAL_PASSED":
        return False, CONSTRAINTS
    return False, found.indication


def make_report(found: Findings, who: Signer, reference: str | None) -> SignatureReport:
    accepted, (indication, sub) = verdict(found)
    return SignatureReport(
        accepted=accepted,
        reference=reference,
        indication=indication,
        subindication=sub,
        signer_subject=who.subject,
        signer_sha256=who.sha256,
        signing_time=who.signing_time,
        timestamp_time=who.timestamp_time,
        checks=tuple(found.checks),
        etsi_report_xml=who.etsi_xml,
    )


def error_report(exc: BaseException, issued: IssuedConsent | None = None) -> SignatureReport:
    """The report on a file whose verification stopped: past a limit, or on an error."""
    found = Findings()
    if isinstance(exc, LimitExceededError):
        found.add(
            CheckCode.TOO_COMPLEX,
            False,
            f"The file asks for more work than any signed consent needs ({exc}); "
            "it is rejected unread.",
            FORMAT_FAILURE,
        )
        return make_report(found, Signer(), issued.reference if issued else None)
    found.add(
        CheckCode.ERROR,
        False,
        f"The file could not be verified because of an unexpected error ({describe(exc)}); "
        "it is rejected.",
        FORMAT_FAILURE,
    )
    return make_report(found, Signer(), issued.reference if issued else None)
