"""The rules the Commission's signature and the office seal must meet (SPEC 7 rules 3-6)."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any

from cryptography import x509 as pyca_x509
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
from pyhanko.sign.diff_analysis import (
    DiffPolicy,
    DiffResult,
    ModificationLevel,
)
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from workflow.signature_report import (
    CheckCode,
    IssuedConsent,
    SignaturePolicy,
)
from workflow.verification.findings import (
    FORMAT_FAILURE,
    REVOCATION_INDICS,
    Findings,
    Signer,
    ades_indication,
    clip,
)
from workflow.verification.pdf import trusted_without_revocation


class Rules:
    """The configured rules on the Commission's signer and the office seal."""

    def __init__(self, policy: SignaturePolicy, roots: tuple[Any, ...]) -> None:
        """Compile ``policy``'s signer rules; ``roots`` are its trust roots, loaded."""
        self.policy = policy
        self._roots = roots
        self._fingerprints = frozenset(
            _normalise_fingerprint(fp) for fp in policy.signer_fingerprints
        )
        self._seal = (
            _normalise_fingerprint(policy.seal_certificate_sha256)
            if policy.seal_certificate_sha256
            else None
        )
        self._seal_key = (
            _normalise_fingerprint(policy.seal_key_sha256) if policy.seal_key_sha256 else None
        )

    @staticmethod
    def check_integrity(status: Any, found: Findings) -> None:
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
                FORMAT_FAILURE,
            )
        else:
            found.add(
                CheckCode.NOT_INTACT, True, "The signature is intact and cryptographically valid."
            )

    async def check_trust(
        self, emb: EmbeddedPdfSignature, status: Any, found: Findings, who: Signer
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
        elif indic in REVOCATION_INDICS or (
            nr is False and indic == AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE
        ):
            # The path was built; the revocation and key-usage checks below say what failed.
            found.add(CheckCode.UNTRUSTED_CHAIN, True, chained)
        elif (
            indic == AdESIndeterminate.CERTIFICATE_CHAIN_GENERAL_FAILURE
            and self.policy.revocation == "hard-fail"
            and await trusted_without_revocation(self.policy, self._roots, emb)
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
                ades_indication(indic, AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND),
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
        self.check_signer_policy(who, found)
        self.check_revocation(status, indic, revocation_unknown, found)

    def check_signer_policy(self, who: Signer, found: Findings) -> None:
        problems = []
        seal = {self._seal, self._seal_key, *who.seal_marks} - {None}
        if {who.sha256, who.key_sha256} & seal:
            problems.append(
                "it is the office seal's own certificate or key, which never stands for the "
                "Commission"
            )
        rule = self.policy.signer_subject
        if rule and (who.name is None or not subject_matches(rule, who.name)):
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

    def check_revocation(self, status: Any, indic: Any, unknown: bool, found: Findings) -> None:
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
                ades_indication(indic, AdESIndeterminate.REVOKED_NO_POE),
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

    def check_timestamp(self, status: Any, found: Findings, who: Signer) -> None:
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
                ades_indication(
                    ts.trust_problem_indic, AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND
                ),
            )

    @staticmethod
    def check_later_changes(status: Any, found: Findings) -> None:
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

    @staticmethod
    def check_every_field(
        *,
        fields: list[tuple[str, Any, Any]],
        embedded: dict[str, EmbeddedPdfSignature],
        broken: dict[str, str],
        shared: list[str],
        statuses: dict[str, Any],
        failures: dict[str, str],
        found: Findings,
        bound: int = 0,
    ) -> None:
        """Rule 4: every filled signature field holds a signature that was validated
        (``bound``: the office seal as issued, which the exact binding stands for)."""
        problems = [f"{n}: {why}" for n, why in sorted({**broken, **failures}.items())]
        if shared:
            problems.append(
                "one signature object is referenced from several fields (" + ", ".join(shared) + ")"
            )
        for name, status in statuses.items():
            emb = embedded[name]
            if emb.sig_object_type == "/DocTimeStamp" and not (status.intact and status.valid):
                problems.append(f"{name}: the document timestamp is damaged")
        validated = len(statuses) + bound
        found.add(
            CheckCode.UNVALIDATED_SIGNATURE,
            not problems and validated == len(fields),
            f"Every signed field ({validated}) was validated."
            if not problems
            else "Not every signed field holds a signature that could be validated: "
            + clip("; ".join(problems))
            + ".",
        )

    def check_seal(
        self,
        *,
        certification: EmbeddedPdfSignature | None,
        issued: IssuedConsent | None,
        issued_revisions: int | None,
        reviews: DiffPolicy,
        statuses: dict[str, Any],
        failures: dict[str, str],
        found: Findings,
    ) -> None:
        """Rule 5: the office certification, as issued for a bound file, else by policy."""
        if issued is not None and issued_revisions is not None:
            self.check_certification_as_issued(
                certification, issued, issued_revisions, reviews, found
            )
        else:
            self.check_certification(certification, statuses, failures, found)

    def check_certification_as_issued(
        self,
        certification: EmbeddedPdfSignature | None,
        issued: IssuedConsent,
        issued_revisions: int,
        reviews: DiffPolicy,
        found: Findings,
    ) -> None:
        """Rule 5 for a file bound to an issued consent: the seal is judged as the consent
        was issued. Its bytes are the issued bytes (rule 1), so its cryptographic
        re-validation rests on that binding; what was changed after it is still reviewed."""
        if certification is None:
            found.add(
                CheckCode.CERTIFICATION_BROKEN,
                True,
                f"Consent {issued.reference} was issued without an office seal, and is judged so.",
            )
            return
        if certification.signed_revision >= issued_revisions:
            found.add(
                CheckCode.CERTIFICATION_BROKEN,
                False,
                "A certification was added after the consent was issued; only the office may "
                "seal a consent, when it issues it.",
            )
            return
        problems = []
        sha = hashlib.sha256(certification.signer_cert.dump()).hexdigest()
        if issued.seal_sha256 is not None and sha != issued.seal_sha256:
            problems.append("it is not the seal recorded when the consent was issued")
        review = reviews.review_file(
            certification.reader,
            certification.signed_revision,
            field_mdp_spec=certification.fieldmdp,
            doc_mdp=certification.docmdp_level,
        )
        allowed = (
            ModificationLevel.LTA_UPDATES
            if certification.docmdp_level == MDPPerm.NO_CHANGES
            else ModificationLevel.FORM_FILLING
        )
        if not isinstance(review, DiffResult) or review.modification_level > allowed:
            problems.append("changes other than form filling and signing were made after it")
        found.add(
            CheckCode.CERTIFICATION_BROKEN,
            not problems,
            "The office seal is broken: " + "; ".join(problems) + "."
            if problems
            else "The office seal is the one the consent was issued with, and only permitted "
            "changes followed it.",
        )

    def check_certification(
        self,
        certification: EmbeddedPdfSignature | None,
        statuses: dict[str, Any],
        failures: dict[str, str],
        found: Findings,
    ) -> None:
        """Rule 5 for a file bound to no issued consent: the configured seal decides."""
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


def subject_matches(rule: str, subject: pyca_x509.Name) -> bool:
    """Whether ``subject`` has every attribute of ``rule`` (RFC 4514, e.g.
    ``O=European Commission,C=BE``), each whole: ``OU=O=European Commission`` is an OU, so
    it does not satisfy ``O=European Commission``. A rule that is no RFC 4514 name is a
    regular expression that must match the whole subject, never a part of it."""
    try:
        wanted = pyca_x509.Name.from_rfc4514_string(rule)
    except ValueError:
        return re.fullmatch(rule, subject.rfc4514_string()) is not None
    have = {(attribute.oid, attribute.value) for attribute in subject}
    return all((attribute.oid, attribute.value) in have for attribute in wanted)


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


def _normalise_fingerprint(value: str) -> str:
    return value.replace(":", "").replace(" ", "").strip().lower()
