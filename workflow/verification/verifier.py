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
import threading
from typing import Any

from cryptography import x509 as pyca_x509
from pyhanko.pdf_utils.misc import PdfDecodeLimitError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from workflow.signature_report import (
    REVOCATION_MODES,
    CheckCode,
    IssuedConsent,
    Lookup,
    SignaturePolicy,
    SignatureReport,
)
from workflow.verification.binding import (
    bind_ends,
    file_revision_ends,
    precheck,
    scanned_ends,
)
from workflow.verification.etsi import etsi_report
from workflow.verification.findings import (
    FORMAT_FAILURE,
    Findings,
    Signer,
    describe,
    error_report,
    indication_of,
    make_report,
    verdict,
)
from workflow.verification.limits import LimitExceededError, Limits
from workflow.verification.pdf import (
    Parsed,
    ReviewOnce,
    certification_of,
    embed,
    load_certificates,
    read_pdf,
    release,
    signer_certificate,
    validate,
    validation_context,
    xref_section_ends,
)
from workflow.verification.policy import Rules
from workflow.verification.revisions import check_revisions


class Verifier:
    """Applies one :class:`SignaturePolicy` to received files; build once, reuse.

    Trust roots are read once here. Each call builds a fresh pyHanko validation
    context (they accumulate revocation data and cached paths) and never fetches
    anything online unless ``policy.fetch`` is set.
    """

    def __init__(self, policy: SignaturePolicy, limits: Limits | None = None) -> None:
        """Load the trust roots; raise :class:`TrustRootError` naming an unreadable file."""
        if policy.revocation not in REVOCATION_MODES:
            raise ValueError(
                f"revocation must be one of {', '.join(REVOCATION_MODES)}, "
                f"not {policy.revocation!r}"
            )
        self.policy = policy
        self.limits = limits or Limits()
        roots: list[Any] = []
        for path in policy.trust_roots:
            roots.extend(load_certificates(path))
        self._roots = tuple(roots)
        self._rules = Rules(policy, self._roots)

    async def verify(self, data: bytes, lookup: Lookup) -> SignatureReport:
        """Verify ``data``; ``lookup`` maps the SHA-256 hex of a candidate prefix to a consent.

        ``lookup`` is called in the caller's thread; the parsing and validation run in
        a worker thread so the caller's event loop is never blocked. Never raises.
        """
        early = self._early(data)
        if early is not None:
            return early
        parsed = await asyncio.to_thread(self._parse, data)
        try:
            issued = self._bind(data, parsed, lookup)
        except Exception as exc:
            return error_report(exc)
        return await asyncio.to_thread(self._run, data, issued, parsed)

    def verify_sync(self, data: bytes, lookup: Lookup) -> SignatureReport:
        """Like :meth:`verify`, for callers without an event loop. Never raises."""
        early = self._early(data)
        if early is not None:
            return early
        parsed = self._parse(data)
        try:
            issued = self._bind(data, parsed, lookup)
        except Exception as exc:
            return error_report(exc)
        return self._run(data, issued, parsed)

    def _early(self, data: bytes) -> SignatureReport | None:
        """The answer for a file that is no PDF or too big a task, before any parsing."""
        if b"%PDF-" not in data[:1024]:
            found = Findings()
            found.add(CheckCode.NOT_PDF, False, "The file is not a PDF document.", FORMAT_FAILURE)
            return make_report(found, Signer(), None)
        try:
            precheck(data, self.limits)
        except LimitExceededError as exc:
            return error_report(exc)
        return None

    def _parse(self, data: bytes) -> Parsed | Exception:
        try:
            return read_pdf(data, self.limits)
        except Exception as exc:
            return exc

    def _bind(
        self, data: bytes, parsed: Parsed | Exception, lookup: Lookup
    ) -> IssuedConsent | None:
        if isinstance(parsed, Exception):
            return bind_ends(data, scanned_ends(data, self.limits), lookup)
        try:
            ends = file_revision_ends(data, parsed[0], self.limits)
        except LimitExceededError:
            return None  # rejected by _verify, which checks the same limit
        return bind_ends(data, ends, lookup)

    def _run(
        self, data: bytes, issued: IssuedConsent | None, parsed: Parsed | Exception
    ) -> SignatureReport:
        try:
            return _runner().run(self._verify(data, issued, parsed))
        except PdfDecodeLimitError as exc:  # pyHanko's decoding caps, set from our limits
            return error_report(LimitExceededError(str(exc)), issued)
        except Exception as exc:  # rule 7: any exception is a rejection, never a crash
            return error_report(exc, issued)
        finally:
            if not isinstance(parsed, Exception):
                release(parsed[0])

    async def _verify(
        self, data: bytes, issued: IssuedConsent | None, parsed: Parsed | Exception
    ) -> SignatureReport:
        found = Findings()
        who = Signer()
        reference = issued.reference if issued else None
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
        if isinstance(parsed, PdfDecodeLimitError):
            raise LimitExceededError(f"{parsed}")
        if isinstance(parsed, Exception):
            exc = parsed
            found.add(
                CheckCode.UNUSABLE,
                False,
                f"The PDF is damaged or not standard enough to check its signatures ({exc}).",
                FORMAT_FAILURE,
            )
            return make_report(found, who, reference)
        reader, fields, note = parsed
        total = reader.xrefs.total_revisions
        if total > self.limits.max_revisions:
            raise LimitExceededError(
                f"it has {total} revisions; the limit is {self.limits.max_revisions}"
            )
        found.add(CheckCode.UNUSABLE, True, note)
        if issued is not None and issued.superseded:
            found.add(
                CheckCode.SUPERSEDED,
                False,
                f"The file is a copy of consent {issued.reference} as first issued, which a "
                "newer consent has since replaced: the Commission must sign the new one.",
            )
            return make_report(found, who, reference)
        if issued is not None and len(issued.data) == len(data):
            found.add(
                CheckCode.UNSIGNED,
                False,
                f"The file is consent {issued.reference} exactly as issued: it still needs the "
                "Commission's signature (sign it in the CommissionSignature field, then put the "
                "signed copy in signed/).",
            )
            found.add(
                CheckCode.WRONG_FIELD,
                False,
                f"There is no signature in the {self.policy.field} field.",
                FORMAT_FAILURE,
            )
            return make_report(found, who, reference)
        await self._check_signatures(
            reader=reader, data=data, fields=fields, issued=issued, found=found, who=who
        )
        return make_report(found, who, reference)

    async def _check_signatures(
        self,
        *,
        reader: PdfFileReader,
        data: bytes,
        fields: list[tuple[str, Any, Any]],
        issued: IssuedConsent | None,
        found: Findings,
        who: Signer,
    ) -> None:
        name = self.policy.field
        embedded, broken, shared = embed(reader, fields)
        context = validation_context(self.policy, self._roots, reader, embedded.values())
        reviews = ReviewOnce(issued.data if issued is not None else None)
        statuses: dict[str, Any] = {}
        failures: dict[str, str] = {}
        certification = certification_of(embedded)
        issued_revisions = None
        if issued is not None:
            size = len(issued.data)
            issued_revisions = sum(1 for end in xref_section_ends(reader) if end <= size)
        # SPEC 7.5: the seal issued with the consent is bound byte for byte, so it is not
        # validated again (one signature validated, not two); later changes are reviewed.
        as_issued = (
            certification
            if certification is not None
            and issued_revisions is not None
            and certification.field_name != name
            and certification.signed_revision < issued_revisions
            else None
        )
        try:
            for field_name, each in embedded.items():
                if each is as_issued:
                    continue
                try:
                    statuses[field_name] = await validate(each, context, reviews)
                except Exception as exc:
                    failures[field_name] = describe(exc)
                    if field_name == name:
                        found.add(
                            CheckCode.NOT_INTACT,
                            False,
                            "The Commission's signature is damaged and cannot be validated "
                            f"({describe(exc)}).",
                            indication_of(exc),
                        )
        finally:
            if self.policy.fetch:
                # The async API leaves fetcher sessions open when fetching is allowed.
                await context.aclose()  # type: ignore[no-untyped-call]

        self._check_field(name, fields, embedded, broken, found)
        emb = embedded.get(name)
        status = statuses.get(name)

        # … in the revision directly after the issued document.
        if issued is not None and issued_revisions is not None and emb is not None:
            check_revisions(
                emb,
                data,
                issued,
                found,
                reviews,
                issued_revisions=issued_revisions,
                limits=self.limits,
            )
        if certification is not None and certification is not emb:
            seal = signer_certificate(certification)
            who.seal_marks = frozenset(
                hashlib.sha256(part.dump()).hexdigest() for part in (seal, seal.public_key)
            )
        if emb is not None and status is not None:
            await self._check_commission(emb, status, found, who)
        self._rules.check_every_field(
            fields=fields,
            embedded=embedded,
            broken=broken,
            shared=shared,
            statuses=statuses,
            failures=failures,
            found=found,
            bound=0 if as_issued is None else 1,
        )
        self._rules.check_seal(
            certification=certification,
            issued=issued,
            issued_revisions=issued_revisions,
            reviews=reviews,
            statuses=statuses,
            failures=failures,
            found=found,
        )
        if emb is not None and status is not None:
            # The checks are all in: the evidence carries the verdict they make.
            failure = next((check.message for check in found.checks if not check.ok), None)
            who.etsi_xml = etsi_report(emb, status, context, verdict(found)[1], failure)

    @staticmethod
    def _check_field(
        name: str,
        fields: list[tuple[str, Any, Any]],
        embedded: dict[str, EmbeddedPdfSignature],
        broken: dict[str, str],
        found: Findings,
    ) -> None:
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
                FORMAT_FAILURE,
            )
        elif name not in embedded:
            others = ", ".join(sorted({n for n, _, _ in fields})) or "none"
            found.add(
                CheckCode.WRONG_FIELD,
                False,
                f"There is no signature in the {name} field (signed fields found: {others}).",
                FORMAT_FAILURE,
            )
        else:
            found.add(
                CheckCode.WRONG_FIELD, True, f"The Commission's signature is in the {name} field."
            )

    async def _check_commission(
        self,
        emb: EmbeddedPdfSignature,
        status: Any,
        found: Findings,
        who: Signer,
    ) -> None:
        cert = status.signing_cert
        der = cert.dump()
        who.sha256 = hashlib.sha256(der).hexdigest()
        who.name = pyca_x509.load_der_x509_certificate(der).subject
        who.subject = who.name.rfc4514_string()
        who.key_sha256 = hashlib.sha256(cert.public_key.dump()).hexdigest()
        who.signing_time = status.signer_reported_dt
        self._rules.check_integrity(status, found)
        await self._rules.check_trust(emb, status, found, who)
        self._rules.check_timestamp(status, found, who)
        self._rules.check_later_changes(status, found)
        if not status.bottom_line:
            found.add(
                CheckCode.SIGNATURE_STATUS,
                False,
                f"pyHanko does not accept the signature as a whole ({status.summary()}).",
            )


class _Loop:
    """An event loop for pyHanko's coroutines, closed with the thread that made it."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def __del__(self) -> None:
        self.runner.close()


_threads = threading.local()


def _runner() -> asyncio.Runner:
    """This thread's event loop, made once: ``asyncio.run`` made and closed one for every
    file, 0.2 to 0.4 ms of a verification (``python -m bench.verify``, 2026-11-30)."""
    loop: _Loop | None = getattr(_threads, "loop", None)
    if loop is None:
        loop = _threads.loop = _Loop()
    return loop.runner
