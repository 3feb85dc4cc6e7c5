"""What a signature verification produces: the policy it applies and the report it returns.

Kept apart from :mod:`workflow.verification` so that the store, the CLI and the
application services can read and print reports without importing pyHanko's
validation machinery. The codes and the ``to_json`` shape are a contract (SPEC §8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

#: The empty signature field every issued consent carries (SPEC §6).
COMMISSION_FIELD = "CommissionSignature"

REVOCATION_MODES = ("off", "soft-fail", "hard-fail")


class CheckCode(StrEnum):
    """Stable codes of the checks in a :class:`SignatureReport` (SPEC §7 rules 1-7)."""

    NOT_PDF = "not_pdf"
    UNUSABLE = "unusable"
    NOT_ISSUED_HERE = "not_issued_here"
    WRONG_FIELD = "wrong_field"
    REVISION_COUNT = "revision_count"
    CHANGES_BEFORE_SIGNATURE = "changes_before_signature"
    NOT_INTACT = "not_intact"
    UNTRUSTED_CHAIN = "untrusted_chain"
    CERTIFICATE_VALIDITY = "certificate_validity"
    KEY_USAGE = "key_usage"
    SIGNER_POLICY = "signer_policy"
    REVOCATION = "revocation"
    TIMESTAMP_REQUIRED = "timestamp_required"
    TIMESTAMP_INVALID = "timestamp_invalid"
    CHANGES_AFTER_SIGNATURE = "changes_after_signature"
    UNVALIDATED_SIGNATURE = "unvalidated_signature"
    CERTIFICATION_BROKEN = "certification_broken"
    SIGNATURE_STATUS = "signature_status"
    ERROR = "error"
    # SPEC §7 rule 8 and the files of signed/ that are no signed consent.
    TOO_COMPLEX = "too_complex"
    UNSIGNED = "unsigned"
    WRONG_FOLDER = "wrong_folder"
    SUPERSEDED = "superseded"


class TrustRootError(Exception):
    """A configured trust-root file cannot be read as a certificate; ``path`` names it."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(
            f"Cannot read the trust root {path}: {detail}. Check [signature] trust_roots in "
            "consentflow.toml: each entry must be a readable PEM or DER certificate file."
        )


@dataclass(frozen=True)
class IssuedConsent:
    """A consent as issued: its reference and exact bytes (``sha256`` is of ``data``).

    ``superseded``: a newer consent replaced this one (``consentflow reissue``).
    ``seal_sha256``: the SHA-256 of the seal certificate it was issued with, when known.
    """

    reference: str
    sha256: str
    data: bytes
    superseded: bool = False
    seal_sha256: str | None = None


@dataclass(frozen=True)
class SignaturePolicy:
    """What makes a Commission signature acceptable: the ``[signature]`` settings.

    ``seal_certificate_sha256``: when the office seals, the SHA-256 of the seal
    certificate; the certification must then be present and intact.
    ``field`` is the signature field that must hold the Commission's signature.
    ``signer_subject``: RFC 4514 attributes the signer's subject must all have, each
    whole (or, if it is no RFC 4514 name, a regex over the whole subject).
    """

    trust_roots: tuple[Path, ...]
    signer_subject: str = ""
    signer_fingerprints: tuple[str, ...] = ()
    revocation: str = "soft-fail"
    fetch: bool = False
    require_timestamp: bool = False
    seal_certificate_sha256: str | None = None
    field: str = COMMISSION_FIELD
    #: SHA-256 of the office seal's SubjectPublicKeyInfo: never accepted as the signer.
    seal_key_sha256: str | None = None


@dataclass(frozen=True)
class Check:
    """One rule applied to the file: a stable ``code``, pass/fail and one plain sentence."""

    code: str
    ok: bool
    message: str


@dataclass(frozen=True)
class SignatureReport:
    """The verdict on one received file, with the evidence an auditor needs.

    ``indication``/``subindication`` follow ETSI EN 319 102-1 (``TOTAL_PASSED``,
    ``TOTAL_FAILED``/``HASH_FAILURE``, ``INDETERMINATE``/``NO_CERTIFICATE_CHAIN_FOUND``…);
    ``signing_time`` is the signer's claim, ``timestamp_time`` the time a trusted
    timestamp proves. ``etsi_report_xml`` is pyHanko's ETSI TS 119 102-2 report.
    """

    accepted: bool
    reference: str | None
    indication: str
    subindication: str | None
    signer_subject: str | None
    signer_sha256: str | None
    signing_time: datetime | None
    timestamp_time: datetime | None
    checks: tuple[Check, ...]
    etsi_report_xml: str | None = None

    @property
    def failed(self) -> tuple[Check, ...]:
        """The checks that failed, in the order they were made."""
        return tuple(check for check in self.checks if not check.ok)

    def to_json(self) -> dict[str, object]:
        """The ``verify --json`` document of SPEC §8 (plus ``etsi_report_xml``)."""
        return {
            "accepted": self.accepted,
            "reference": self.reference,
            "indication": self.indication,
            "subindication": self.subindication,
            "signer": {"subject": self.signer_subject, "sha256": self.signer_sha256},
            "signing_time": _iso(self.signing_time),
            "timestamp_time": _iso(self.timestamp_time),
            "checks": [
                {"code": check.code, "ok": check.ok, "message": check.message}
                for check in self.checks
            ],
            "etsi_report_xml": self.etsi_report_xml,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


Lookup = Callable[[str], IssuedConsent | None]
