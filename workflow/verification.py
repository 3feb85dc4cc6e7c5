"""Verify the Commission's signature on a returned consent (SPEC §7).

The only module that uses pyHanko's validation API. :meth:`Verifier.verify` takes the
received bytes and a lookup of issued consents and returns a :class:`SignatureReport`:
a verdict, the ETSI EN 319 102-1 indication, and every check with a stable code and
one plain sentence. pyHanko alone accepts a document that is not ours, content
appended before the signer signed and a form value changed after the signature
(../shared/notes/signatures.md), so the binding, revision and modification rules are
enforced here on top of pyHanko's status. Outcomes are values: nothing but a bad
trust-root file raises.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.generated.etsi import ts_11910202
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESStatus
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffPolicy,
    DiffResult,
    ModificationLevel,
    SuspiciousModification,
)
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.general import NonexistentAttributeError, find_unique_cms_attribute
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    CertificateFetchingRule,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.report.tools import (
    NAMESPACES,
    _generate_report,
    _package_validation_object,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import NO_REVOCATION, REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig

from workflow.signature_report import (
    COMMISSION_FIELD,
    REVOCATION_MODES,
    Check,
    CheckCode,
    IssuedConsent,
    Lookup,
    SignaturePolicy,
    SignatureReport,
    TrustRootError,
)

__all__ = [
    "COMMISSION_FIELD",
    "REVOCATION_MODES",
    "Check",
    "CheckCode",
    "IssuedConsent",
    "Lookup",
    "SignaturePolicy",
    "SignatureReport",
    "TrustRootError",
    "Verifier",
    "bind",
]

_STATUS_NAMES = {
    AdESStatus.PASSED: "TOTAL_PASSED",
    AdESStatus.INDETERMINATE: "INDETERMINATE",
    AdESStatus.FAILED: "TOTAL_FAILED",
}
_FORMAT_FAILURE = ("TOTAL_FAILED", "FORMAT_FAILURE")
# Rules that are ours, not the signature's own validity: the signature does not meet
# the validation constraints (EN 319 102-1 §5.1.3).
_CONSTRAINTS = ("INDETERMINATE", AdESIndeterminate.SIG_CONSTRAINTS_FAILURE.name)
_REVOCATION_INDICS = frozenset(
    {
        AdESIndeterminate.REVOKED_NO_POE,
        AdESIndeterminate.REVOKED_CA_NO_POE,
        AdESIndeterminate.TRY_LATER,
        AdESFailure.REVOKED,
    }
)
_EOF = re.compile(rb"%%EOF")


def _severity(indication: tuple[str, str | None]) -> int:
    """The report shows the worst indication found; the signature's own INDETERMINATE
    (no chain, revoked…) says more than one of our constraints failing."""
    if indication == _CONSTRAINTS:
        return 1
    return {"TOTAL_PASSED": 0, "INDETERMINATE": 2, "TOTAL_FAILED": 3}[indication[0]]


@dataclass
class _Findings:
    """The checks collected while verifying one file, and the worst indication."""

    checks: list[Check] = field(default_factory=list)
    indication: tuple[str, str | None] = ("TOTAL_PASSED", None)

    def add(
        self,
        code: CheckCode,
        ok: bool,
        message: str,
        indication: tuple[str, str | None] = _CONSTRAINTS,
    ) -> None:
        self.checks.append(Check(code.value, ok, message))
        if not ok and _severity(indication) > _severity(self.indication):
            self.indication = indication

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


class _ReviewOnce(DiffPolicy):
    """pyHanko's default difference analysis, each review done once per document.

    The analysis is the most expensive step of a verification, and one review is asked
    three times: validating the office seal makes pyHanko review the revisions after the
    seal — for a consent signed as issued, exactly the revision the Commission's signature
    added —, `Verifier._check_revisions` reviews that same revision against the issued
    consent, and the ETSI report's AdES run reviews the seal again. A review depends only on
    its arguments (the reader, the base revision, the MDP settings), so a repeated question
    gets the first answer.
    """

    def __init__(self) -> None:
        self._reviews: dict[tuple[Any, ...], DiffResult | SuspiciousModification] = {}

    def apply(
        self, old: Any, new: Any, field_mdp_spec: Any = None, doc_mdp: MDPPerm | None = None
    ) -> DiffResult:
        """Compare two revisions with the default policy (not remembered: reviews are)."""
        return DEFAULT_DIFF_POLICY.apply(old, new, field_mdp_spec, doc_mdp)

    def review_file(
        self,
        reader: PdfFileReader,
        base_revision: Any,
        field_mdp_spec: Any = None,
        doc_mdp: MDPPerm | None = None,
    ) -> DiffResult | SuspiciousModification:
        """The default policy's review of ``reader`` since ``base_revision``, computed once."""
        # A field lock read from the file holds a PDF array (unhashable): key on its values.
        lock = None
        if field_mdp_spec is not None:
            names = field_mdp_spec.fields
            lock = (field_mdp_spec.action, None if names is None else tuple(map(str, names)))
        key = (reader, base_revision, lock, doc_mdp)
        if key not in self._reviews:
            self._reviews[key] = DEFAULT_DIFF_POLICY.review_file(
                reader, base_revision, field_mdp_spec=field_mdp_spec, doc_mdp=doc_mdp
            )
        return self._reviews[key]


@dataclass
class _Signer:
    """What the report says about the Commission signer."""

    subject: str | None = None
    sha256: str | None = None
    signing_time: datetime | None = None
    timestamp_time: datetime | None = None
    etsi_xml: str | None = None


class Verifier:
    """Applies one :class:`SignaturePolicy` to received files; build once, reuse.

    Trust roots are read once here. Each call builds a fresh pyHanko validation
    context (they accumulate revocation data and cached paths) and never fetches
    anything online unless ``policy.fetch`` is set.
    """

    def __init__(self, policy: SignaturePolicy) -> None:
        """Load the trust roots; raise :class:`TrustRootError` naming an unreadable file."""
        if policy.revocation not in REVOCATION_MODES:
            raise ValueError(
                f"revocation must be one of {', '.join(REVOCATION_MODES)}, "
                f"not {policy.revocation!r}"
            )
        self.policy = policy
        roots: list[Any] = []
        for path in policy.trust_roots:
            roots.extend(_load_certificates(path))
        self._roots = tuple(roots)
        self._subject = re.compile(policy.signer_subject) if policy.signer_subject else None
        self._fingerprints = frozenset(
            _normalise_fingerprint(fp) for fp in policy.signer_fingerprints
        )
        self._seal = (
            _normalise_fingerprint(policy.seal_certificate_sha256)
            if policy.seal_certificate_sha256
            else None
        )

    async def verify(self, data: bytes, lookup: Lookup) -> SignatureReport:
        """Verify ``data``; ``lookup`` maps the SHA-256 hex of a candidate prefix to a consent.

        ``lookup`` is called in the caller's thread; the parsing and validation run in
        a worker thread so the caller's event loop is never blocked. Never raises.
        """
        try:
            issued = bind(data, lookup)
        except Exception as exc:
            return _error_report(exc)
        return await asyncio.to_thread(self._run, data, issued)

    def verify_sync(self, data: bytes, lookup: Lookup) -> SignatureReport:
        """Like :meth:`verify`, for callers without an event loop. Never raises."""
        try:
            issued = bind(data, lookup)
        except Exception as exc:
            return _error_report(exc)
        return self._run(data, issued)

    def _run(self, data: bytes, issued: IssuedConsent | None) -> SignatureReport:
        try:
            return asyncio.run(self._verify(data, issued))
        except Exception as exc:  # rule 7: any exception is a rejection, never a crash
            return _error_report(exc, issued)

    async def _verify(self, data: bytes, issued: IssuedConsent | None) -> SignatureReport:
        found = _Findings()
        who = _Signer()
        reference = issued.reference if issued else None
        if b"%PDF-" not in data[:1024]:
            found.add(CheckCode.NOT_PDF, False, "The file is not a PDF document.", _FORMAT_FAILURE)
            return _report(found, who, reference)
        if issued is None:
            found.add(
                CheckCode.NOT_ISSUED_HERE,
                False,
                "The file does not start with any consent form issued here: it is another "
                "document, or a consent that was regenerated or rewritten instead of signed "
                "as issued.",
            )
        else:
            found.add(
                CheckCode.NOT_ISSUED_HERE,
                True,
                f"The file starts with the exact bytes of consent {issued.reference} as issued.",
            )
        try:
            reader, fields, note = _read(data)
        except Exception as exc:
            found.add(
                CheckCode.UNUSABLE,
                False,
                f"The PDF is damaged or not standard enough to check its signatures ({exc}).",
                _FORMAT_FAILURE,
            )
            return _report(found, who, reference)
        found.add(CheckCode.UNUSABLE, True, note)
        await self._check_signatures(
            reader=reader, data=data, fields=fields, issued=issued, found=found, who=who
        )
        return _report(found, who, reference)

    async def _check_signatures(
        self,
        *,
        reader: PdfFileReader,
        data: bytes,
        fields: list[tuple[str, Any, Any]],
        issued: IssuedConsent | None,
        found: _Findings,
        who: _Signer,
    ) -> None:
        name = self.policy.field
        embedded, broken, shared = _embed(reader, fields)
        context = self._context(reader, embedded.values())
        reviews = _ReviewOnce()
        statuses: dict[str, Any] = {}
        failures: dict[str, str] = {}
        try:
            for field_name, each in embedded.items():
                try:
                    statuses[field_name] = await self._validate(each, context, reviews)
                except Exception as exc:
                    failures[field_name] = _describe(exc)
                    if field_name == name:
                        found.add(
                            CheckCode.NOT_INTACT,
                            False,
                            "The Commission's signature is damaged and cannot be validated "
                            f"({_describe(exc)}).",
                            _indication_of(exc),
                        )
        finally:
            if self.policy.fetch:
                # The async API leaves fetcher sessions open when fetching is allowed.
                await context.aclose()  # type: ignore[no-untyped-call]

        # Rule 2: the signature sits in CommissionSignature …
        if name in broken:
            found.add(
                CheckCode.WRONG_FIELD,
                True,
                f"The Commission's signature is in the {name} field.",
            )
            found.add(
                CheckCode.NOT_INTACT,
                False,
                f"The signature in {name} is damaged and cannot be read ({broken[name]}).",
                _FORMAT_FAILURE,
            )
        elif name not in embedded:
            others = ", ".join(sorted({n for n, _, _ in fields})) or "none"
            found.add(
                CheckCode.WRONG_FIELD,
                False,
                f"There is no signature in the {name} field (signed fields found: {others}).",
                _FORMAT_FAILURE,
            )
        else:
            found.add(
                CheckCode.WRONG_FIELD, True, f"The Commission's signature is in the {name} field."
            )
        emb = embedded.get(name)
        status = statuses.get(name)
        certification = _certification(embedded)

        # … in the revision directly after the issued document.
        if issued is not None and emb is not None:
            self._check_revisions(emb, data, issued, found, reviews)
        if emb is not None and status is not None:
            await self._check_commission(emb, status, found, who, reviews)
        self._check_every_field(
            fields=fields,
            embedded=embedded,
            broken=broken,
            shared=shared,
            statuses=statuses,
            failures=failures,
            found=found,
        )
        self._check_certification(certification, statuses, failures, found)

    def _context(
        self, reader: PdfFileReader, embedded: Any, *, revocation: bool = True
    ) -> ValidationContext:
        kwargs: dict[str, Any] = {
            "trust_roots": list(self._roots),
            "allow_fetching": self.policy.fetch and revocation,
        }
        if self.policy.revocation == "off" or not revocation:
            kwargs["revinfo_policy"] = CertRevTrustPolicy(NO_REVOCATION)
        else:
            kwargs["revocation_mode"] = self.policy.revocation
        # Adobe-style revocation data inside the CMS (Acrobat's default) is not read by
        # pyHanko's classic API, so it is added to the context by hand.
        crls, ocsps = _adobe_revinfo(embedded)
        kwargs["crls"], kwargs["ocsps"] = crls, ocsps
        try:
            return DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs)
        except NoDSSFoundError:
            return ValidationContext(**kwargs)

    @staticmethod
    async def _validate(
        emb: EmbeddedPdfSignature, context: ValidationContext, reviews: DiffPolicy
    ) -> Any:
        if emb.sig_object_type == "/DocTimeStamp":
            return await async_validate_pdf_timestamp(
                emb, validation_context=context, diff_policy=reviews
            )
        return await async_validate_pdf_signature(emb, context, diff_policy=reviews)

    @staticmethod
    def _check_revisions(
        emb: EmbeddedPdfSignature,
        data: bytes,
        issued: IssuedConsent,
        found: _Findings,
        reviews: DiffPolicy,
    ) -> None:
        issued_revisions = PdfFileReader(BytesIO(issued.data), strict=False).xrefs.total_revisions
        if emb.signed_revision != issued_revisions:
            found.add(
                CheckCode.REVISION_COUNT,
                False,
                f"The Commission signed revision {emb.signed_revision + 1} of the file, but "
                f"must sign revision {issued_revisions + 1}, the first after the issued "
                "consent: the consent was changed before it was signed.",
            )
            return
        found.add(
            CheckCode.REVISION_COUNT,
            True,
            "The Commission's signature is in the first revision after the issued consent.",
        )
        # pyHanko diffs only the revisions *after* a signature; what the signing revision
        # itself changed relative to the issued consent is checked here.
        start, length = int(emb.byte_range[2]), int(emb.byte_range[3])
        if start + length == len(data):
            # Nothing follows the signature (the usual case): the signed revision is the
            # file as already read, and its review is the one validating the seal asked.
            signed = emb.reader
        else:
            signed = PdfFileReader(BytesIO(data[: start + length]), strict=emb.reader.strict)
        review = reviews.review_file(signed, issued_revisions - 1, doc_mdp=MDPPerm.FILL_FORMS)
        extra = (
            set(review.changed_form_fields) - {emb.field_name}
            if isinstance(review, DiffResult)
            else None
        )
        suspicious = (
            not isinstance(review, DiffResult)
            or bool(extra)
            or review.modification_level > ModificationLevel.FORM_FILLING
        )
        if suspicious and not extra:
            # pyHanko's diff rejects harmless rewrites real tools make while signing
            # (poppler's pdfsig rewrites the widget with /M and its old appearance
            # stream); what the reader sees is compared instead.
            issued_reader = PdfFileReader(BytesIO(issued.data), strict=emb.reader.strict)
            suspicious = _visible_state(issued_reader) != _visible_state(signed)
        if suspicious:
            detail = f"fields {', '.join(sorted(extra))}" if extra else str(review)
            found.add(
                CheckCode.CHANGES_BEFORE_SIGNATURE,
                False,
                "The revision holding the Commission's signature also changes the consent "
                f"({_clip(detail)}); only the signature itself may be added.",
            )
        else:
            found.add(
                CheckCode.CHANGES_BEFORE_SIGNATURE,
                True,
                "The signing revision adds the signature and changes nothing else.",
            )

    async def _check_commission(
        self,
        emb: EmbeddedPdfSignature,
        status: Any,
        found: _Findings,
        who: _Signer,
        reviews: DiffPolicy,
    ) -> None:
        cert = status.signing_cert
        der = cert.dump()
        who.sha256 = hashlib.sha256(der).hexdigest()
        who.subject = pyca_x509.load_der_x509_certificate(der).subject.rfc4514_string()
        who.signing_time = status.signer_reported_dt
        self._check_integrity(status, found)
        await self._check_trust(emb, status, found, who)
        self._check_timestamp(status, found, who)
        self._check_later_changes(status, found)
        if not status.bottom_line:
            found.add(
                CheckCode.SIGNATURE_STATUS,
                False,
                f"pyHanko does not accept the signature as a whole ({status.summary()}).",
            )
        who.etsi_xml = await self._etsi_report(emb, reviews)

    @staticmethod
    def _check_integrity(status: Any, found: _Findings) -> None:
        if not status.intact:
            found.add(
                CheckCode.NOT_INTACT,
                False,
                "The signed bytes were changed after signing: the document's hash does not "
                "match the one the signer signed.",
                ("TOTAL_FAILED", AdESFailure.HASH_FAILURE.name),
            )
        elif not status.valid:
            found.add(
                CheckCode.NOT_INTACT,
                False,
                "The cryptographic signature value does not verify with the signer's key.",
                ("TOTAL_FAILED", AdESFailure.SIG_CRYPTO_FAILURE.name),
            )
        elif status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            found.add(
                CheckCode.NOT_INTACT,
                False,
                "The signature does not cover its whole revision (its byte range or its "
                "signature dictionary was manipulated).",
                _FORMAT_FAILURE,
            )
        else:
            found.add(
                CheckCode.NOT_INTACT, True, "The signature is intact and cryptographically valid."
            )

    async def _check_trust(
        self, emb: EmbeddedPdfSignature, status: Any, found: _Findings, who: _Signer
    ) -> None:
        cert = status.signing_cert
        indic = status.trust_problem_indic
        nr = _has_non_repudiation(cert)
        validity = _validity_problem(cert, status.validation_time or datetime.now(UTC))
        chained = "The signer's certificate chains to a configured Commission trust root."
        revocation_unknown = False
        if indic is None and status.validation_path is not None:
            found.add(CheckCode.UNTRUSTED_CHAIN, True, chained)
        elif validity is not None:
            found.add(
                CheckCode.CERTIFICATE_VALIDITY,
                False,
                validity[1],
                ("INDETERMINATE", validity[0]),
            )
        elif indic in _REVOCATION_INDICS or (
            nr is False and indic == AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE
        ):
            # The path was built; the revocation and key-usage checks below say what failed.
            found.add(CheckCode.UNTRUSTED_CHAIN, True, chained)
        elif (
            indic == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE
            and self.policy.revocation == "hard-fail"
            and await self._trusted_without_revocation(emb)
        ):
            # pyHanko reports missing revocation data under hard-fail as a general chain
            # failure; the chain itself is sound, so this is EN 319 102-1's TRY_LATER.
            revocation_unknown = True
            found.add(CheckCode.UNTRUSTED_CHAIN, True, chained)
        else:
            found.add(
                CheckCode.UNTRUSTED_CHAIN,
                False,
                "The signer's certificate does not chain to a configured Commission trust "
                "root (whatever its name says).",
                _indication(indic, AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND),
            )
        found.add(
            CheckCode.KEY_USAGE,
            nr,
            "The signer's certificate allows non-repudiation signatures."
            if nr
            else "The signer's certificate lacks the non-repudiation key usage required for a "
            "commitment signature.",
            ("INDETERMINATE", AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE.name),
        )
        self._check_signer_policy(who, found)
        self._check_revocation(status, indic, revocation_unknown, found)

    async def _trusted_without_revocation(self, emb: EmbeddedPdfSignature) -> bool:
        context = self._context(emb.reader, [emb], revocation=False)
        status = await async_validate_pdf_signature(emb, context, skip_diff=True)
        return bool(status.trusted)

    def _check_signer_policy(self, who: _Signer, found: _Findings) -> None:
        problems = []
        if self._subject is not None and not self._subject.search(who.subject or ""):
            problems.append(f"its subject {who.subject!r} does not match signer_subject")
        if self._fingerprints and who.sha256 not in self._fingerprints:
            problems.append("its SHA-256 is not among signer_fingerprints")
        found.add(
            CheckCode.SIGNER_POLICY,
            not problems,
            "The signer is not one the configuration accepts: " + "; ".join(problems) + "."
            if problems
            else "The signer matches the configured signer policy.",
            ("INDETERMINATE", AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE.name),
        )

    def _check_revocation(self, status: Any, indic: Any, unknown: bool, found: _Findings) -> None:
        mode = self.policy.revocation
        if status.revoked or indic in (
            AdESFailure.REVOKED,
            AdESIndeterminate.REVOKED_NO_POE,
            AdESIndeterminate.REVOKED_CA_NO_POE,
        ):
            details = status.revocation_details
            when = f" on {details.revocation_date:%Y-%m-%d}" if details is not None else ""
            found.add(
                CheckCode.REVOCATION,
                False,
                f"The signer's certificate (or a CA above it) was revoked{when}.",
                _indication(indic, AdESIndeterminate.REVOKED_NO_POE),
            )
        elif unknown or indic == AdESIndeterminate.TRY_LATER:
            where = "online or in the file" if self.policy.fetch else "in the file"
            found.add(
                CheckCode.REVOCATION,
                False,
                f"No usable revocation information for the signer's certificate was found "
                f"{where}, and the revocation policy is hard-fail.",
                ("INDETERMINATE", AdESIndeterminate.TRY_LATER.name),
            )
        elif mode == "off":
            found.add(CheckCode.REVOCATION, True, "Revocation checking is switched off.")
        else:
            found.add(
                CheckCode.REVOCATION,
                True,
                f"No revocation of the signer's certificate is known ({mode}).",
            )

    def _check_timestamp(self, status: Any, found: _Findings, who: _Signer) -> None:
        ts = status.timestamp_validity
        if ts is None:
            found.add(
                CheckCode.TIMESTAMP_REQUIRED,
                not self.policy.require_timestamp,
                "The signature has no timestamp, and the configuration requires one."
                if self.policy.require_timestamp
                else "The signature has no timestamp (not required).",
            )
            return
        if ts.intact and ts.valid and ts.trusted:
            who.timestamp_time = ts.timestamp
            found.add(
                CheckCode.TIMESTAMP_INVALID,
                True,
                f"A trusted timestamp proves the signature existed at {ts.timestamp.isoformat()}.",
            )
        else:
            found.add(
                CheckCode.TIMESTAMP_INVALID,
                False,
                "The signature's timestamp is damaged or not issued by a trusted timestamp "
                "authority.",
                _indication(ts.trust_problem_indic, AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND),
            )

    @staticmethod
    def _check_later_changes(status: Any, found: _Findings) -> None:
        level = status.modification_level
        if status.coverage == SignatureCoverageLevel.ENTIRE_FILE:
            found.add(
                CheckCode.CHANGES_AFTER_SIGNATURE,
                True,
                "Nothing was added to the file after the signature.",
            )
        elif (
            status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
            and level is not None
            and level <= ModificationLevel.LTA_UPDATES
            and status.docmdp_ok
        ):
            found.add(
                CheckCode.CHANGES_AFTER_SIGNATURE,
                True,
                "Only validation data and timestamps were added after the signature.",
            )
        else:
            what = {
                ModificationLevel.FORM_FILLING: "form values or another signature",
                ModificationLevel.ANNOTATIONS: "annotations",
            }.get(level, "page content or other objects")
            found.add(
                CheckCode.CHANGES_AFTER_SIGNATURE,
                False,
                f"The file was changed after the Commission signed it ({what} added); only "
                "validation data and timestamps may follow the signature.",
            )

    async def _etsi_report(self, emb: EmbeddedPdfSignature, reviews: DiffPolicy) -> str | None:
        # Evidence only, never the gate: the AdES engine misses the diff result and
        # reports NO_POE for a sound B-LT signature without a document timestamp.
        try:
            result = await ades_lta_validation(emb, self._ades_spec(reviews))
            return _etsi_xml(emb, result)
        except Exception:
            return None

    def _ades_spec(self, reviews: DiffPolicy = DEFAULT_DIFF_POLICY) -> Any:
        revinfo = NO_REVOCATION if self.policy.revocation == "off" else REQUIRE_REVINFO
        fetching = (
            RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH
            if self.policy.fetch
            else RevinfoOnlineFetchingRule.LOCAL_ONLY
        )
        return PdfSignatureValidationSpec(
            SignatureValidationSpec(
                cert_validation_policy=CertValidationPolicySpec(
                    trust_manager=SimpleTrustManager.build(trust_roots=list(self._roots)),
                    revinfo_policy=CertRevTrustPolicy(revinfo),
                ),
                revinfo_gathering_policy=RevocationInfoGatheringSpec(
                    online_fetching_rule=fetching,
                    certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
                ),
                key_usage_settings=KeyUsageConstraints(key_usage={"non_repudiation"}),
            ),
            diff_policy=reviews,
        )

    @staticmethod
    def _check_every_field(
        *,
        fields: list[tuple[str, Any, Any]],
        embedded: dict[str, EmbeddedPdfSignature],
        broken: dict[str, str],
        shared: list[str],
        statuses: dict[str, Any],
        failures: dict[str, str],
        found: _Findings,
    ) -> None:
        problems = [f"{n}: {why}" for n, why in sorted({**broken, **failures}.items())]
        if shared:
            problems.append(
                "one signature object is referenced from several fields (" + ", ".join(shared) + ")"
            )
        for name, status in statuses.items():
            emb = embedded[name]
            if emb.sig_object_type == "/DocTimeStamp" and not (status.intact and status.valid):
                problems.append(f"{name}: the document timestamp is damaged")
        validated = len(statuses)
        found.add(
            CheckCode.UNVALIDATED_SIGNATURE,
            not problems and validated == len(fields),
            f"Every signed field ({validated}) was validated."
            if not problems
            else "Not every signed field holds a signature that could be validated: "
            + _clip("; ".join(problems))
            + ".",
        )

    def _check_certification(
        self,
        certification: EmbeddedPdfSignature | None,
        statuses: dict[str, Any],
        failures: dict[str, str],
        found: _Findings,
    ) -> None:
        if certification is None:
            if self._seal is not None:
                found.add(
                    CheckCode.CERTIFICATION_BROKEN,
                    False,
                    "The office seal (certification) is missing, but issued consents are sealed.",
                )
            else:
                found.add(
                    CheckCode.CERTIFICATION_BROKEN, True, "The consent carries no office seal."
                )
            return
        name = certification.field_name
        status = statuses.get(name)
        if status is None:
            found.add(
                CheckCode.CERTIFICATION_BROKEN,
                False,
                f"The office seal cannot be validated ({failures.get(name, 'unreadable')}).",
            )
            return
        sha = hashlib.sha256(status.signing_cert.dump()).hexdigest()
        problems = []
        if self._seal is not None and sha != self._seal:
            problems.append("it was not made with the configured seal certificate")
        if not (status.intact and status.valid):
            problems.append("its signature no longer verifies")
        if status.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            problems.append("its byte range was manipulated")
        level = status.modification_level
        if not status.docmdp_ok or level is None or level > ModificationLevel.FORM_FILLING:
            problems.append("changes other than form filling and signing were made after it")
        found.add(
            CheckCode.CERTIFICATION_BROKEN,
            not problems,
            "The office seal is broken: " + "; ".join(problems) + "."
            if problems
            else "The office seal is intact and only permitted changes followed it.",
        )


# The report classes' XML metadata, derived once per process: pyHanko's generate_report
# builds a new xsdata context for every report, and deriving it is half the report's cost.
_XML_CONTEXT = XmlContext()


def _etsi_xml(emb: EmbeddedPdfSignature, result: Any) -> str:
    """pyHanko's ``generate_report(emb, result)`` (ETSI TS 119 102-2 XML), on `_XML_CONTEXT`."""
    report = ts_11910202.ValidationReport(
        signature_validation_report=(_generate_report(emb, result),),
        signature_validation_objects=ts_11910202.ValidationObjectListType(
            tuple(_package_validation_object(vo) for vo in result.validation_objects)
        ),
    )
    serializer = XmlSerializer(config=SerializerConfig(indent="  "), context=_XML_CONTEXT)
    return serializer.render(report, ns_map=NAMESPACES)


def bind(data: bytes, lookup: Lookup) -> IssuedConsent | None:
    """Return the issued consent whose exact bytes start ``data`` (SPEC §7 rule 1).

    Every end of a revision (``%%EOF`` with any trailing end-of-line variant) is a
    candidate; the longest prefix that ``lookup`` knows by SHA-256 and that matches
    byte for byte binds the file.
    """
    for end in sorted(_revision_ends(data), reverse=True):
        prefix = data[:end]
        issued = lookup(hashlib.sha256(prefix).hexdigest())
        if issued is not None and issued.data == prefix:
            return issued
    return None


_STRUCTURE_KEYS = frozenset({"/P", "/Parent", "/AP", "/M", "/V", "/Kids", "/AcroForm", "/DSS"})


def _visible_state(reader: PdfFileReader) -> object:
    """What a reader shows and runs, apart from signature fields: each page's geometry,
    content, resources and non-signature annotations, the catalogue's actions, and the
    value of every other form field."""
    pages = []
    for page_ref in _page_refs(reader.root["/Pages"]):
        page = page_ref.get_object()
        contents = page.get("/Contents")
        streams = contents if isinstance(contents, generic.ArrayObject) else [contents]
        data = b"".join(s.get_object().data for s in streams if s is not None)
        annots = [_plain(a) for a in page.get("/Annots", ()) if a.get_object().get("/FT") != "/Sig"]
        keys = ("/MediaBox", "/CropBox", "/Rotate", "/Resources")
        pages.append((data, annots, [_plain(page.get(k)) for k in keys]))
    catalog = {
        k: _plain(v)
        for k, v in reader.root.items()
        if k not in ("/Pages", "/AcroForm", "/DSS", "/Metadata")
    }
    values = {name: _plain(field.get_object().get("/V")) for name, field in _other_fields(reader)}
    return pages, catalog, values


def _page_refs(node: Any) -> Iterator[Any]:
    node = node.get_object()
    if node.get("/Type") == "/Pages":
        for kid in node["/Kids"]:
            yield from _page_refs(kid)
    else:
        yield node


def _other_fields(reader: PdfFileReader) -> Iterator[tuple[str, Any]]:
    form = reader.root.get("/AcroForm")
    stack = list(form.get_object().get("/Fields", ())) if form is not None else []
    while stack:
        field = stack.pop().get_object()
        stack.extend(field.get("/Kids", ()))
        if field.get("/FT") != "/Sig" and "/T" in field:
            yield str(field["/T"]), field


def _plain(value: Any, depth: int = 0) -> object:
    """A comparable copy of a PDF object, indirect references resolved (bounded depth,
    structural back-links skipped)."""
    if depth > 12:
        return "…"
    if isinstance(value, generic.IndirectObject):
        value = value.get_object()  # type: ignore[no-untyped-call]
    if isinstance(value, generic.StreamObject):
        header = {k: v for k, v in value.items() if k not in ("/Length", "/Filter")}
        return ("stream", value.data, _plain(header, depth + 1))
    if isinstance(value, dict):
        return tuple(
            sorted(
                (str(k), _plain(v, depth + 1)) for k, v in value.items() if k not in _STRUCTURE_KEYS
            )
        )
    if isinstance(value, generic.ArrayObject):
        return tuple(_plain(v, depth + 1) for v in value)
    return value


def _read(data: bytes) -> tuple[PdfFileReader, list[tuple[str, Any, Any]], str]:
    """Open the PDF strictly, or tolerantly if only the strict reader refuses it.

    poppler's pdfsig (a real signing tool) writes a generation-1 object without freeing
    generation 0, which pyHanko's strict reader refuses. The tolerant reader is safe
    here because binding, revision and difference checks still apply to every byte.
    """
    try:
        reader = PdfFileReader(BytesIO(data), strict=True)
        fields = list(enumerate_sig_fields(reader, filled_status=True))
        return reader, fields, "The PDF is well-formed."
    except Exception as exc:
        strict_error = _describe(exc)
    reader = PdfFileReader(BytesIO(data), strict=False)
    fields = list(enumerate_sig_fields(reader, filled_status=True))
    return reader, fields, f"The PDF was read in tolerant mode ({strict_error})."


def _load_certificates(path: Path) -> list[Any]:
    """Every certificate in a PEM (one or more) or DER file, as asn1crypto objects."""
    try:
        raw = path.read_bytes()
        if b"-----BEGIN" in raw:
            certs = pyca_x509.load_pem_x509_certificates(raw)
        else:
            certs = [pyca_x509.load_der_x509_certificate(raw)]
    except OSError as exc:
        raise TrustRootError(path, exc.strerror or str(exc)) from exc
    except ValueError as exc:
        raise TrustRootError(path, f"not a PEM or DER certificate ({exc})") from exc
    return [
        asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)) for cert in certs
    ]


def _revision_ends(data: bytes) -> set[int]:
    ends: set[int] = set()
    for match in _EOF.finditer(data):
        end = match.end()
        ends.add(end)
        for eol in (b"\r\n", b"\r", b"\n"):
            if data.startswith(eol, end):
                ends.add(end + len(eol))
    return ends


def _embed(
    reader: PdfFileReader, fields: list[tuple[str, Any, Any]]
) -> tuple[dict[str, EmbeddedPdfSignature], dict[str, str], list[str]]:
    """Read every filled signature field ourselves: pyHanko's own list silently drops
    fields with an unknown /SubFilter, and one bad signature would hide the others."""
    embedded: dict[str, EmbeddedPdfSignature] = {}
    broken: dict[str, str] = {}
    owners: dict[Any, list[str]] = {}
    for name, _value, field_ref in fields:
        field_dict = field_ref.get_object()
        value = field_dict.raw_get("/V")
        if isinstance(value, generic.IndirectObject):
            owners.setdefault(value.reference, []).append(name)
        try:
            emb = EmbeddedPdfSignature(reader, field_ref, name)
            subfilter = emb.sig_object.get("/SubFilter")
            if subfilter not in _SUBFILTERS:
                raise SignatureValidationError(f"unsupported /SubFilter {subfilter}")
            embedded[name] = emb
        except Exception as exc:
            broken[name] = _describe(exc)
    shared = [name for names in owners.values() if len(names) > 1 for name in names]
    return embedded, broken, shared


_SUBFILTERS = frozenset(
    {"/adbe.pkcs7.detached", "/ETSI.CAdES.detached", "/ETSI.RFC3161", "/PBAD.PAdES"}
)


def _certification(embedded: dict[str, EmbeddedPdfSignature]) -> EmbeddedPdfSignature | None:
    for emb in embedded.values():
        if emb.sig_object_type == "/Sig" and emb.docmdp_level is not None:
            return emb
    return None


def _adobe_revinfo(embedded: Any) -> tuple[list[Any], list[Any]]:
    crls: list[Any] = []
    ocsps: list[Any] = []
    for emb in embedded:
        try:
            archival = find_unique_cms_attribute(
                emb.signer_info["signed_attrs"], "adobe_revocation_info_archival"
            )
        except NonexistentAttributeError:
            continue
        crls.extend(asn1_crl.CertificateList.load(c.dump()) for c in archival["crl"] or ())
        ocsps.extend(asn1_ocsp.OCSPResponse.load(o.dump()) for o in archival["ocsp"] or ())
    return crls, ocsps


def _validity_problem(cert: Any, moment: datetime) -> tuple[str, str] | None:
    validity = cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if moment < not_before:
        return (
            AdESIndeterminate.NOT_YET_VALID.name,
            f"The signer's certificate is not valid before {not_before:%Y-%m-%d}.",
        )
    if moment > not_after:
        return (
            AdESIndeterminate.OUT_OF_BOUNDS_NO_POE.name,
            f"The signer's certificate expired on {not_after:%Y-%m-%d}, and no timestamp "
            "proves the signature was made before that.",
        )
    return None


def _has_non_repudiation(cert: Any) -> bool:
    usage = cert.key_usage_value
    return usage is not None and "non_repudiation" in usage.native


def _indication(indic: Any, default: Any) -> tuple[str, str | None]:
    chosen = indic if indic is not None else default
    return _STATUS_NAMES[chosen.status], chosen.name


def _indication_of(exc: Exception) -> tuple[str, str | None]:
    sub = getattr(exc, "ades_subindication", None)
    if sub is not None and sub.status in _STATUS_NAMES and sub.status != AdESStatus.PASSED:
        return _STATUS_NAMES[sub.status], sub.name
    return _FORMAT_FAILURE


def _normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").replace(" ", "").strip().lower()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return _clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _report(found: _Findings, who: _Signer, reference: str | None) -> SignatureReport:
    accepted = found.ok
    indication, sub = ("TOTAL_PASSED", None) if accepted else found.indication
    if not accepted and indication == "TOTAL_PASSED":
        indication, sub = _CONSTRAINTS
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


def _error_report(exc: BaseException, issued: IssuedConsent | None = None) -> SignatureReport:
    found = _Findings()
    found.add(
        CheckCode.ERROR,
        False,
        f"The file could not be verified because of an unexpected error ({_describe(exc)}); "
        "it is rejected.",
        _FORMAT_FAILURE,
    )
    return _report(found, _Signer(), issued.reference if issued else None)
