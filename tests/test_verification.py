"""SPEC §7 on a real certomancer PKI: what is accepted, and each rejection's stable code."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils.content import RawContent
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints

from tests.conftest import need_tool
from tests.pki import (
    SIGNER_SUBJECT,
    TestPki,
    commission_sign,
    embed_crl,
    issued_consent,
    lookup_for,
    pinned_time,
)
from workflow import signing
from workflow.verification import (
    IssuedConsent,
    SignaturePolicy,
    SignatureReport,
    TrustRootError,
    Verifier,
    bind,
)

# pyHanko's PDF object constructors are unannotated; Any keeps mypy --strict quiet.
generic: Any = pdf_generic


@pytest.fixture(autouse=True)
def _pinned() -> Iterator[None]:
    # pyHanko logs expected validation failures with tracebacks at WARNING.
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.ERROR)
    with pinned_time():
        yield


@pytest.fixture(scope="module")
def consent() -> IssuedConsent:
    """An issued consent with its empty CommissionSignature field."""
    return issued_consent("CF-2026-0001")


def policy(pki: TestPki, **overrides: Any) -> SignaturePolicy:
    """The configured policy: the test root as the only anchor, Commission signers only."""
    values: dict[str, Any] = {"trust_roots": (pki.root_pem,), "signer_subject": SIGNER_SUBJECT}
    values.update(overrides)
    return SignaturePolicy(**values)


def verify(pki: TestPki, data: bytes, *issued: IssuedConsent, **overrides: Any) -> SignatureReport:
    """Verify ``data`` against the given issued consents under ``policy(**overrides)``."""
    return Verifier(policy(pki, **overrides)).verify_sync(data, lookup_for(*issued))


def failed(report: SignatureReport) -> set[str]:
    """The codes of the failed checks."""
    return {check.code for check in report.failed}


def assert_rejected(report: SignatureReport, code: str) -> None:
    """The file is rejected and ``code`` is among the failed checks."""
    assert not report.accepted
    assert code in failed(report), report.checks
    assert "error" not in failed(report), report.checks


# --- accepted ---------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["signer-rsa", "signer-ecdsa"])
@pytest.mark.parametrize("timestamp", [False, True], ids=["no-ts", "ts"])
@pytest.mark.parametrize("revinfo", [False, True], ids=["no-revinfo", "revinfo"])
def test_accepts_genuine_signature(
    pki: TestPki, consent: IssuedConsent, label: str, timestamp: bool, revinfo: bool
) -> None:
    """RSA and ECDSA signers, with or without a timestamp and embedded revocation data."""
    signed = commission_sign(consent.data, pki, label, timestamp=timestamp, embed_revinfo=revinfo)
    report = verify(pki, signed, consent, require_timestamp=timestamp)
    assert report.accepted, report.failed
    assert (report.indication, report.subindication) == ("TOTAL_PASSED", None)
    assert report.reference == consent.reference
    assert report.signer_sha256 == pki.sha256(label)
    assert report.signer_subject is not None
    assert "O=European Commission" in report.signer_subject
    assert report.signing_time is not None
    assert (report.timestamp_time is not None) is timestamp
    assert all(check.ok for check in report.checks)


def test_accepts_embedded_revocation_under_hard_fail(pki: TestPki, consent: IssuedConsent) -> None:
    """Embedded OCSP data satisfies hard-fail without any fetching."""
    signed = commission_sign(consent.data, pki, embed_revinfo=True)
    assert verify(pki, signed, consent, revocation="hard-fail").accepted


def test_fetch_true_uses_served_ocsp(pki: TestPki, consent: IssuedConsent) -> None:
    """fetch = true fetches revocation data online (the OCSP served on 127.0.0.1)."""
    signed = commission_sign(consent.data, pki)
    assert not verify(pki, signed, consent, revocation="hard-fail").accepted
    assert verify(pki, signed, consent, revocation="hard-fail", fetch=True).accepted


def test_accepts_pinned_fingerprint(pki: TestPki, consent: IssuedConsent) -> None:
    """A signer listed in signer_fingerprints (any case, with colons) is accepted."""
    sha = pki.sha256("signer-rsa").upper()
    pretty = ":".join(sha[i : i + 2] for i in range(0, 64, 2))
    signed = commission_sign(consent.data, pki, "signer-rsa")
    assert verify(pki, signed, consent, signer_fingerprints=(pretty,)).accepted


def test_accepts_sealed_consent(pki: TestPki, consent: IssuedConsent) -> None:
    """The office certification stays intact when the Commission signs."""
    sealed = _sealed(pki, consent)
    signed = commission_sign(sealed.data, pki)
    report = verify(pki, signed, sealed, seal_certificate_sha256=pki.sha256("seal"))
    assert report.accepted, report.failed
    assert any(c.code == "certification_broken" and c.ok for c in report.checks)


def test_the_issued_revision_is_reviewed_through_its_own_bytes(
    pki: TestPki, consent: IssuedConsent
) -> None:
    """The review of what the Commission's revision changed asks where each changed object
    was reached from in the issued consent; that is read from the consent's bytes, and the
    review is pyHanko's own: pyHanko's index of the whole revision is never built."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import MDPPerm

    from workflow.verification import pdf

    sealed = _sealed(pki, consent)
    for data in (commission_sign(sealed.data, pki), _tampered_sealed(pki, sealed)):
        results = []
        for issued in (sealed.data, None):
            reader = PdfFileReader(BytesIO(data), strict=True)
            base = sum(1 for end in pdf.xref_section_ends(reader) if end <= len(sealed.data))
            review = pdf.ReviewOnce(issued).review_file(
                reader, base - 1, doc_mdp=MDPPerm.FILL_FORMS
            )
            view = reader.get_historical_resolver(base - 1)
            assert (view._indirect_object_access_cache is None) == (issued is not None)
            results.append(str(review))
        assert results[0] == results[1]


def _tampered_sealed(pki: TestPki, sealed: IssuedConsent) -> bytes:
    """``sealed`` with a page overlay in the revision that the Commission then signs."""
    writer: Any = IncrementalPdfFileWriter(BytesIO(sealed.data))
    _paint(writer)
    return commission_sign(_write(writer), pki)


def test_accepts_seal_that_locks_a_list_of_fields(pki: TestPki, consent: IssuedConsent) -> None:
    """A seal whose field lock names fields (a FieldMDP list) is reviewed like any other."""
    from pyhanko.sign import fields, signers

    meta = signers.PdfSignatureMetadata(
        field_name="OfficeSeal",
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=fields.MDPPerm.FILL_FORMS,
    )
    lock = fields.FieldMDPSpec(fields.FieldMDPAction.INCLUDE, ["OfficeSeal"])
    spec = fields.SigFieldSpec("OfficeSeal", field_mdp_spec=lock)
    out = BytesIO()
    signers.PdfSigner(meta, pki.signer("seal"), new_field_spec=spec).sign_pdf(
        IncrementalPdfFileWriter(BytesIO(consent.data)), output=out
    )
    sealed = IssuedConsent(consent.reference, hashlib.sha256(out.getvalue()).hexdigest(),
                           out.getvalue())  # fmt: skip
    report = verify(pki, commission_sign(sealed.data, pki), sealed)
    assert report.accepted, report.failed


def test_accepts_real_consent_sealed_and_signed(pki: TestPki) -> None:
    """forms.consent's actual output, sealed by the office and signed, is accepted."""
    import datetime

    from forms.consent import render_consent
    from forms.eoi import EOI, OrgType

    eoi = EOI(
        org_name="Ελληνικό Δίκτυο Πόλεων", org_acronym="ΕΔΠ", org_type=OrgType.NATIONAL_NETWORK,
        country="GR", address_street="Łódzka 15", address_postcode="00-950",
        address_city="Αθήνα", website="https://example.eu", member_count=42,
        contact_name="Съюз на общините", contact_position="Директор",
        contact_email="office@example.eu", contact_phone="+302101234567",
        representative_name="Νικόλαος", representative_position="Президент",
        services="Ενημέρωση των μελών.", languages=None, date="2026-03-15", place="Łódź",
    )  # fmt: skip
    data = render_consent(eoi, reference="CF-2026-0042", issued_at=datetime.datetime.now(UTC))
    rendered = IssuedConsent("CF-2026-0042", hashlib.sha256(data).hexdigest(), data)
    sealed = _sealed(pki, rendered)
    signed = commission_sign(sealed.data, pki, "signer-rsa", timestamp=True)
    report = verify(pki, signed, sealed, seal_certificate_sha256=pki.sha256("seal"))
    assert report.accepted, report.failed


def test_report_json_shape(pki: TestPki, consent: IssuedConsent) -> None:
    """to_json has exactly the SPEC §8 keys, plus the ETSI XML report."""
    report = verify(pki, commission_sign(consent.data, pki, timestamp=True), consent)
    doc = report.to_json()
    assert set(doc) >= {
        "accepted",
        "reference",
        "indication",
        "subindication",
        "signer",
        "signing_time",
        "timestamp_time",
        "checks",
    }
    assert doc["signer"] == {"subject": report.signer_subject, "sha256": report.signer_sha256}
    assert isinstance(doc["signing_time"], str)
    assert isinstance(doc["timestamp_time"], str)
    checks = doc["checks"]
    assert isinstance(checks, list)
    assert all(set(c) == {"code", "ok", "message"} for c in checks)
    xml = report.etsi_report_xml
    assert xml is not None
    assert "ValidationReport" in xml
    assert "urn:etsi:019102:mainindication:" in xml


def test_etsi_report_is_pyhankos_own(pki: TestPki, consent: IssuedConsent) -> None:
    """The ETSI report, serialised with one xsdata context per process, is pyHanko's own
    ``generate_report`` of the same validation and indication."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.ades import (
        AdESBasicValidationResult,
        ValidationObjectSet,
        _enumerate_certs_in_paths,
    )
    from pyhanko.sign.validation.report.tools import generate_report
    from pyhanko_certvalidator import ValidationContext

    from workflow.verification import _etsi_xml

    signed = commission_sign(consent.data, pki, timestamp=True)
    reader = PdfFileReader(BytesIO(signed))
    (emb,) = [e for e in reader.embedded_signatures if e.field_name == signing.COMMISSION_FIELD]
    context = ValidationContext(trust_roots=[pki.cert("root")], allow_fetching=False)
    status = validate_pdf_signature(emb, context)
    result = AdESBasicValidationResult(
        ades_subindic=AdESPassed.OK,
        api_status=status,
        failure_msg=None,
        # The signer's and the timestamp's paths (the context holds no revocation data).
        validation_objects=ValidationObjectSet(_enumerate_certs_in_paths(status)),
    )
    for _ in range(2):  # the second report reuses the context the first one filled
        assert _etsi_xml(emb, status, context, AdESPassed.OK, None) == generate_report(emb, result)


@pytest.mark.parametrize(
    ("overrides", "indication", "sub"),
    [
        ({}, "TOTAL_PASSED", "OK"),
        ({"signer_fingerprints": ("00" * 32,)}, "INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE"),
    ],
    ids=["accepted", "wrong-signer"],
)
def test_etsi_report_carries_the_verdict(
    pki: TestPki, consent: IssuedConsent, overrides: dict[str, Any], indication: str, sub: str
) -> None:
    """The stored evidence says what the report says: an accepted signature is TOTAL_PASSED
    in it (pyHanko's separate AdES run called it INDETERMINATE), a refused one is not."""
    report = verify(pki, commission_sign(consent.data, pki), consent, **overrides)
    assert report.accepted is (indication == "TOTAL_PASSED")
    assert (report.indication, report.subindication or "OK") == (indication, sub)
    xml = report.etsi_report_xml
    assert xml is not None
    said = re.search(
        r"<vr:MainIndication>urn:etsi:019102:mainindication:([a-z-]+)</vr:MainIndication>\s*"
        r"<vr:SubIndication>urn:etsi:019102:subindication:([A-Z_]+)</vr:SubIndication>",
        xml,
    )
    assert said is not None, xml
    urn = {"TOTAL_PASSED": "total-passed", "INDETERMINATE": "indeterminate"}[indication]
    assert said.groups() == (urn, sub)


def test_async_entry_point_inside_running_loop(pki: TestPki, consent: IssuedConsent) -> None:
    """verify() is awaitable from a running event loop (the sync pyHanko API is not)."""
    signed = commission_sign(consent.data, pki)
    verifier = Verifier(policy(pki))

    async def main() -> SignatureReport:
        return await verifier.verify(signed, lookup_for(consent))

    assert asyncio.run(main()).accepted


def test_one_event_loop_per_thread_closed_with_its_thread(
    pki: TestPki, consent: IssuedConsent
) -> None:
    """verify_sync runs pyHanko's coroutines on its thread's loop, made once per thread
    (asyncio.run made and closed a loop per file) and closed when the thread ends."""
    from workflow.verification.verifier import _runner

    signed = commission_sign(consent.data, pki)
    verifier = Verifier(policy(pki))
    loops: list[asyncio.AbstractEventLoop] = []

    def verify_twice() -> None:
        for _ in range(2):
            assert verifier.verify_sync(signed, lookup_for(consent)).accepted
            loops.append(_runner().get_loop())

    thread = threading.Thread(target=verify_twice)
    thread.start()
    thread.join()
    assert len(loops) == 2 and loops[0] is loops[1]
    assert _runner().get_loop() is not loops[0]  # this thread has a loop of its own
    gc.collect()
    assert loops[0].is_closed()


def test_pdfsig_signature_accepted(pki: TestPki, consent: IssuedConsent, tmp_path: Path) -> None:
    """A consent signed by poppler's pdfsig with an NSS database (not pyHanko) is accepted."""
    pdfsig = need_tool("pdfsig")
    certutil = need_tool("certutil")
    pk12util = need_tool("pk12util")
    nss = tmp_path / "nss"
    nss.mkdir()
    db = f"sql:{nss}"
    subprocess.run([certutil, "-N", "-d", db, "--empty-password"], check=True)
    p12 = pki.p12("signer-rsa", b"demo")
    subprocess.run([pk12util, "-i", str(p12), "-d", db, "-W", "demo"], check=True)
    nicks = subprocess.run(
        [pdfsig, "-nssdir", db, "-list-nicks"], check=True, capture_output=True, text=True
    ).stdout
    nick = next(line.strip() for line in nicks.splitlines() if line.strip() and ":" not in line)
    source, target = tmp_path / "in.pdf", tmp_path / "out.pdf"
    source.write_bytes(consent.data)
    subprocess.run(
        [pdfsig, "-nssdir", db, "-nick", nick, "-sign", "CommissionSignature",
         str(source), str(target)],
        check=True,
    )  # fmt: skip
    report = verify(pki, target.read_bytes(), consent)
    assert report.accepted, report.failed
    assert report.signer_sha256 == pki.sha256("signer-rsa")


# --- rejected: who signed -------------------------------------------------------------


#: (certificate, policy overrides, failed check, ETSI indication or None)
WRONG_SIGNERS: dict[str, tuple[str, dict[str, Any], str, tuple[str, str] | None]] = {
    "untrusted-root-same-subject": (
        "rogue-signer", {}, "untrusted_chain", ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND"),
    ),
    "outside-subject": (
        "signer-outsider", {}, "signer_policy", ("INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE"),
    ),
    "outside-fingerprints": (
        "signer-ecdsa", {"signer_fingerprints": ("00" * 32,)}, "signer_policy",
        ("INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE"),
    ),
    "no-non-repudiation": (
        "signer-nonr", {}, "key_usage", ("INDETERMINATE", "CHAIN_CONSTRAINTS_FAILURE"),
    ),
    "expired": (
        "signer-expired", {}, "certificate_validity", ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE"),
    ),
    "not-yet-valid": (
        "signer-notyet", {}, "certificate_validity", ("INDETERMINATE", "NOT_YET_VALID"),
    ),
    "no-trust-roots": ("signer-ecdsa", {"trust_roots": ()}, "untrusted_chain", None),
}  # fmt: skip


@pytest.mark.parametrize("case", WRONG_SIGNERS)
def test_rejects_wrong_signer(pki: TestPki, consent: IssuedConsent, case: str) -> None:
    """Chaining to *a* root is not enough: the exact signer policy applies."""
    label, overrides, code, indication = WRONG_SIGNERS[case]
    report = verify(pki, commission_sign(consent.data, pki, label), consent, **overrides)
    assert_rejected(report, code)
    if indication is not None:
        assert (report.indication, report.subindication) == indication


def test_rogue_signer_has_the_genuine_subject(pki: TestPki) -> None:
    """The untrusted-root case really uses the Commission signer's exact subject."""
    assert pki.cert("rogue-signer").subject == pki.cert("signer-rsa").subject


@pytest.mark.parametrize("mode", ["hard-fail", "soft-fail"])
def test_rejects_revoked_signer_from_embedded_crl(
    pki: TestPki, consent: IssuedConsent, mode: str
) -> None:
    """A revocation known from the file's own CRL rejects, offline."""
    signed = embed_crl(commission_sign(consent.data, pki, "signer-revoked"), pki)
    report = verify(pki, signed, consent, revocation=mode)
    assert_rejected(report, "revocation")
    assert (report.indication, report.subindication) == ("INDETERMINATE", "REVOKED_NO_POE")


def test_revocation_off_ignores_revocation(pki: TestPki, consent: IssuedConsent) -> None:
    """revocation = "off" does not look at revocation data at all."""
    signed = embed_crl(commission_sign(consent.data, pki, "signer-revoked"), pki)
    assert verify(pki, signed, consent, revocation="off").accepted


def test_offline_hard_fail_makes_no_connection(pki: TestPki, consent: IssuedConsent) -> None:
    """An OCSP URL at 127.0.0.1:9 gives INDETERMINATE/TRY_LATER and is never contacted."""
    signed = commission_sign(consent.data, pki, "signer-offline")
    connects: list[object] = []
    watching = [True]

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "socket.connect" and watching[0]:
            connects.append(args[1])

    sys.addaudithook(hook)
    try:
        report = verify(pki, signed, consent, revocation="hard-fail")
    finally:
        watching[0] = False  # audit hooks cannot be removed
    assert_rejected(report, "revocation")
    assert (report.indication, report.subindication) == ("INDETERMINATE", "TRY_LATER")
    assert connects == []


def test_require_timestamp(pki: TestPki, consent: IssuedConsent) -> None:
    """require_timestamp rejects a signature without one."""
    report = verify(pki, commission_sign(consent.data, pki), consent, require_timestamp=True)
    assert_rejected(report, "timestamp_required")


# --- rejected: which document ---------------------------------------------------------


def test_rejects_document_not_issued_here(pki: TestPki, consent: IssuedConsent) -> None:
    """A validly signed consent that was never issued here is rejected."""
    other = issued_consent("CF-2026-0999", text="Another consent")
    report = verify(pki, commission_sign(other.data, pki), consent)
    assert_rejected(report, "not_issued_here")
    assert report.reference is None


def test_rejects_regenerated_consent(pki: TestPki, consent: IssuedConsent) -> None:
    """The same content regenerated is not byte-identical, so it is not ours."""
    again = issued_consent(consent.reference)
    assert again.data != consent.data
    assert_rejected(verify(pki, commission_sign(again.data, pki), consent), "not_issued_here")


def test_rejects_tampering_appended_before_signature(pki: TestPki, consent: IssuedConsent) -> None:
    """An overlay revision slipped in before the Commission signed: revision_count."""
    tampered = _overlay(consent.data)
    report = verify(pki, commission_sign(tampered, pki), consent)
    assert_rejected(report, "revision_count")


def test_rejects_tampering_inside_signing_revision(pki: TestPki, consent: IssuedConsent) -> None:
    """An overlay written in the same revision as the signature: changes_before_signature."""
    writer: Any = IncrementalPdfFileWriter(BytesIO(consent.data))
    _paint(writer)
    out = BytesIO()
    from pyhanko.sign import signers

    meta = signers.PdfSignatureMetadata(field_name="CommissionSignature")
    signers.PdfSigner(meta, pki.signer("signer-ecdsa")).sign_pdf(writer, output=out)
    report = verify(pki, out.getvalue(), consent)
    assert_rejected(report, "changes_before_signature")


def test_rejects_wrong_field(pki: TestPki, consent: IssuedConsent) -> None:
    """A signature in a new field instead of CommissionSignature is rejected."""
    signed = commission_sign(consent.data, pki, field="Signature1")
    assert_rejected(verify(pki, signed, consent), "wrong_field")


def test_rejects_unsigned_consent(pki: TestPki, consent: IssuedConsent) -> None:
    """The issued consent itself, unsigned, is bound but has no signature."""
    report = verify(pki, consent.data, consent)
    assert report.reference == consent.reference
    assert_rejected(report, "wrong_field")


# --- rejected: changes after the signature --------------------------------------------


def test_rejects_page_overlay_after_signature(pki: TestPki, consent: IssuedConsent) -> None:
    """New page content after the signature."""
    signed = _overlay(commission_sign(consent.data, pki))
    assert_rejected(verify(pki, signed, consent), "changes_after_signature")


def test_rejects_annotation_after_signature(pki: TestPki, consent: IssuedConsent) -> None:
    """A FreeText annotation after the signature."""
    signed = _annotate(commission_sign(consent.data, pki))
    assert_rejected(verify(pki, signed, consent), "changes_after_signature")


def test_rejects_form_value_changed_after_signature(pki: TestPki) -> None:
    """A text field's value changed after the signature (pyHanko alone says FORM_FILLING, OK)."""
    consent = issued_consent("CF-2026-0002", text_field="Original value")
    signed = commission_sign(consent.data, pki)
    writer: Any = IncrementalPdfFileWriter(BytesIO(signed))
    field = next(
        f.get_object()
        for f in writer.root["/AcroForm"]["/Fields"]
        if f.get_object().get("/FT") == "/Tx"
    )
    field["/V"] = generic.TextStringObject("EVIL CORP LTD")
    writer.mark_update(next(
        f for f in writer.root["/AcroForm"]["/Fields"] if f.get_object().get("/FT") == "/Tx"
    ))  # fmt: skip
    report = verify(pki, _write(writer), consent)
    assert_rejected(report, "changes_after_signature")


def test_rejects_second_signature_after(pki: TestPki, consent: IssuedConsent) -> None:
    """A second signature (even a trusted one) after the Commission's."""
    signed = commission_sign(commission_sign(consent.data, pki), pki, field="LateSig")
    assert_rejected(verify(pki, signed, consent), "changes_after_signature")


def test_accepts_only_validation_data_after(pki: TestPki, consent: IssuedConsent) -> None:
    """A DSS revision (validation data) after the signature is allowed."""
    signed = embed_crl(commission_sign(consent.data, pki), pki)
    assert verify(pki, signed, consent).accepted


# --- rejected: the signature bytes -------------------------------------------------------


def test_rejects_byte_flip_in_signed_range(pki: TestPki, consent: IssuedConsent) -> None:
    """A byte changed inside the issued (signed) bytes: HASH_FAILURE."""
    signed = bytearray(commission_sign(consent.data, pki))
    at = signed.index(b"Consent CF-2026-0001")  # the title, in the issued bytes
    signed[at] ^= 0x01
    report = verify(pki, bytes(signed), consent)
    assert_rejected(report, "not_intact")
    assert (report.indication, report.subindication) == ("TOTAL_FAILED", "HASH_FAILURE")


def test_rejects_byte_flip_in_signature_value(pki: TestPki, consent: IssuedConsent) -> None:
    """A nibble of the RSA signature value changed: SIG_CRYPTO_FAILURE."""
    signed = commission_sign(consent.data, pki, "signer-rsa")
    start, der = _contents(signed)
    # The signature value is the last field of the only SignerInfo.
    at = start + 2 * (len(der) - 20)
    report = verify(pki, _flip_hex(signed, at), consent)
    assert_rejected(report, "not_intact")
    assert (report.indication, report.subindication) == ("TOTAL_FAILED", "SIG_CRYPTO_FAILURE")


def test_rejects_byte_flip_in_certificate_area(pki: TestPki, consent: IssuedConsent) -> None:
    """A nibble of the embedded signer certificate changed."""
    signed = commission_sign(consent.data, pki, "signer-rsa")
    start, der = _contents(signed)
    cert = pki.cert("signer-rsa").dump()
    at = start + 2 * (der.index(cert) + len(cert) // 3)
    assert_rejected(verify(pki, _flip_hex(signed, at), consent), "not_intact")


def test_rejects_zeroed_contents(pki: TestPki, consent: IssuedConsent) -> None:
    """A /Contents of zeros is a damaged signature, not a crash."""
    signed = commission_sign(consent.data, pki)
    start, _ = _contents(signed)
    end = signed.index(b">", start)
    zeroed = signed[:start] + b"0" * (end - start) + signed[end:]
    report = verify(pki, zeroed, consent)
    assert_rejected(report, "not_intact")
    assert report.indication == "TOTAL_FAILED"


@pytest.mark.parametrize("shape", ["gap", "overlap"])
def test_rejects_manipulated_byte_range(pki: TestPki, consent: IssuedConsent, shape: str) -> None:
    """A ByteRange whose gap is larger than /Contents, or that overlaps itself."""
    signed = commission_sign(consent.data, pki)
    match = re.search(rb"/ByteRange \[([\d ]+)\]", signed)
    assert match is not None
    _, b, c, d = (int(x) for x in match.group(1).split())
    new = [0, b - 10, c, d] if shape == "gap" else [0, b, b - 100, d + (c - b) + 100]
    text = " ".join(str(x) for x in new).encode().ljust(len(match.group(1)))
    assert len(text) == len(match.group(1))
    forged = signed[: match.start(1)] + text + signed[match.end(1) :]
    report = verify(pki, forged, consent)
    assert not report.accepted
    assert failed(report) & {"not_intact", "unvalidated_signature"}


def test_rejects_signature_in_two_fields(pki: TestPki, consent: IssuedConsent) -> None:
    """One signature object referenced from two fields."""
    signed = commission_sign(consent.data, pki)
    writer: Any = IncrementalPdfFileWriter(BytesIO(signed))
    original = next(
        f.get_object()
        for f in writer.root["/AcroForm"]["/Fields"]
        if f.get_object().get("/T") == "CommissionSignature"
    )
    _add_sig_field(writer, "Copy", original.raw_get("/V"))
    report = verify(pki, _write(writer), consent)
    assert_rejected(report, "unvalidated_signature")


def test_rejects_unsupported_subfilter_beside_valid(pki: TestPki, consent: IssuedConsent) -> None:
    """A filled signature field pyHanko would silently skip is reported, not ignored."""
    writer: Any = IncrementalPdfFileWriter(BytesIO(commission_sign(consent.data, pki)))
    fake = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Sig"),
                generic.pdf_name("/Filter"): generic.pdf_name("/Adobe.PPKLite"),
                generic.pdf_name("/SubFilter"): generic.pdf_name("/adbe.x509.rsa_sha1"),
                generic.pdf_name("/Contents"): generic.ByteStringObject(b"\x00" * 16),
                generic.pdf_name("/ByteRange"): generic.ArrayObject([generic.NumberObject(0)] * 4),
            }
        )
    )
    _add_sig_field(writer, "Other", fake)
    report = verify(pki, _write(writer), consent)
    assert_rejected(report, "unvalidated_signature")


# --- the office certification ---------------------------------------------------------


def test_rejects_broken_certification(pki: TestPki, consent: IssuedConsent) -> None:
    """An overlay after a sealed consent was signed breaks the certification too."""
    sealed = _sealed(pki, consent)
    signed = _overlay(commission_sign(sealed.data, pki))
    report = verify(pki, signed, sealed, seal_certificate_sha256=pki.sha256("seal"))
    assert_rejected(report, "certification_broken")


def test_seal_configured_later_does_not_reject_an_unsealed_consent(
    pki: TestPki, consent: IssuedConsent
) -> None:
    """SPEC 7.5: the seal is judged as the consent was issued; one issued without a seal
    is not rejected because a seal was configured later (the README's walkthrough)."""
    signed = commission_sign(consent.data, pki)
    report = verify(pki, signed, consent, seal_certificate_sha256=pki.sha256("seal"))
    assert report.accepted, report.failed
    assert "without an office seal" in _check(report, "certification_broken").message


def test_seal_rotated_later_does_not_reject_a_sealed_consent(
    pki: TestPki, consent: IssuedConsent
) -> None:
    """A consent sealed with the seal of its day stays acceptable after the seal changed."""
    sealed = _sealed(pki, consent)
    report = verify(
        pki, commission_sign(sealed.data, pki), sealed, seal_certificate_sha256="ab" * 32
    )
    assert report.accepted, report.failed


def test_rejects_certification_other_than_recorded(pki: TestPki, consent: IssuedConsent) -> None:
    """A certification made with a key other than the seal recorded at issue."""
    sealed = _sealed(pki, consent)
    recorded = replace(sealed, seal_sha256="ab" * 32)
    report = verify(pki, commission_sign(sealed.data, pki), recorded)
    assert_rejected(report, "certification_broken")


def test_rejects_certification_added_after_issue(pki: TestPki, consent: IssuedConsent) -> None:
    """A certification in the Commission's revision is no seal of the office."""
    signed = commission_sign(_sealed(pki, consent).data, pki)
    report = verify(pki, signed, consent)
    assert not report.accepted


def _check(report: SignatureReport, code: str) -> Any:
    return next(check for check in report.checks if check.code == code)


# --- unusable input and errors ------------------------------------------------------------


def test_not_a_pdf(pki: TestPki) -> None:
    """Bytes that are not a PDF are rejected as not_pdf."""
    report = verify(pki, b"hello, world")
    assert_rejected(report, "not_pdf")
    assert (report.indication, report.subindication) == ("TOTAL_FAILED", "FORMAT_FAILURE")


def test_damaged_pdf(pki: TestPki, consent: IssuedConsent) -> None:
    """A truncated PDF is rejected as unusable, never a crash."""
    assert_rejected(verify(pki, consent.data[: len(consent.data) // 2]), "unusable")


def test_lookup_error_is_a_rejection(pki: TestPki, consent: IssuedConsent) -> None:
    """An exception anywhere (here: in the lookup) is a rejection with code error."""

    def broken(_: str) -> IssuedConsent | None:
        raise RuntimeError("database is gone")

    report = Verifier(policy(pki)).verify_sync(commission_sign(consent.data, pki), broken)
    assert not report.accepted
    assert failed(report) == {"error"}
    assert "database is gone" in report.checks[0].message


def test_unreadable_trust_root_names_the_file(tmp_path: Path) -> None:
    """A bad trust-root file fails at start-up with its path in the message."""
    bad = tmp_path / "root.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TrustRootError, match=re.escape(str(bad))):
        Verifier(SignaturePolicy(trust_roots=(bad,)))
    with pytest.raises(TrustRootError, match=r"missing\.pem"):
        Verifier(SignaturePolicy(trust_roots=(tmp_path / "missing.pem",)))


def test_bind_accepts_any_end_of_line_after_eof(consent: IssuedConsent) -> None:
    """Binding tries each %%EOF with its trailing EOL variants, and needs exact bytes."""
    body = consent.data.rstrip(b"\r\n")
    for eol in (b"", b"\n", b"\r\n", b"\r"):
        issued = IssuedConsent("R", hashlib.sha256(body + eol).hexdigest(), body + eol)
        assert bind(body + eol + b"more", lookup_for(issued)) == issued
    impostor = IssuedConsent("R", hashlib.sha256(consent.data).hexdigest(), b"other")
    assert bind(consent.data, lookup_for(impostor)) is None


# --- the EU DSS attack corpus -------------------------------------------------------------

# (file, signature field to treat as the Commission's, the code that catches the attack)
CORPUS = [
    ("dss-2236-hide.pdf", "Signature1", "not_intact"),
    ("dss-2236-replace.pdf", "Signature2", "changes_after_signature"),
    ("dss-2236-annotation-and-visible-change.pdf", "Digital Signature 1",
     "changes_after_signature"),
    ("dss-2236-annotation-and-visible-change.pdf", "ES_CERTIFYING_SIGNATURE",
     "certification_broken"),
    ("siwa.pdf", "Signature1", "not_intact"),
    ("pdf-byterange-overlap.pdf", "Signature2", "not_intact"),
    ("pdf-spoofing-attack.pdf", "Signature1", "unusable"),
    ("pades-spoofing-replaced-reason.pdf", "Signature1", "not_intact"),
    ("signature-referenced-from-multiple-fields.pdf", "signature-test", "unvalidated_signature"),
    ("pdf-signed-added-page.pdf", "Signature1", "changes_after_signature"),
    ("pades-signed-annot-added.pdf", "Signature2", "changes_after_signature"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "field", "code"), CORPUS, ids=[f"{n}:{f}" for n, f, _ in CORPUS])
def test_dss_corpus_attack_is_caught(
    pki: TestPki, corpus_signatures: Path, name: str, field: str, code: str
) -> None:
    """Each DSS attack is rejected as not issued here, and the integrity layer names it."""
    data = (corpus_signatures / name).read_bytes()
    assert_rejected(verify(pki, data), "not_issued_here")
    # Treat the attacked signature as if it were the Commission's, revocation aside:
    # the attack itself must still be caught.
    report = verify(pki, data, field=field, revocation="off", signer_subject="")
    assert_rejected(report, code)


# --- helpers -------------------------------------------------------------------------------


def _sealed(pki: TestPki, consent: IssuedConsent) -> IssuedConsent:
    seal = signing.Signer.from_p12(pki.p12("seal"))
    data = signing.certify(consent.data, seal)
    return IssuedConsent(consent.reference, hashlib.sha256(data).hexdigest(), data)


def _write(writer: Any) -> bytes:
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _paint(writer: Any) -> None:
    """Paint "EVIL CORP LTD" over the first page, as an incremental change."""
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    font = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Font"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
                generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
            }
        )
    )
    content = RawContent(
        b"q 1 1 1 rg 70 750 400 30 re f 0 0 0 rg BT /HelvX 14 Tf 72 760 Td (EVIL CORP LTD) Tj ET Q",
        box=BoxConstraints(width=600, height=800),
    )
    stream = writer.add_object(generic.StreamObject(stream_data=content.data))
    contents = page["/Contents"]
    kids = (
        list(contents) if isinstance(contents, generic.ArrayObject) else [page.raw_get("/Contents")]
    )
    page["/Contents"] = generic.ArrayObject([*kids, stream])
    page["/Resources"] = generic.DictionaryObject(
        {generic.pdf_name("/Font"): generic.DictionaryObject({generic.pdf_name("/HelvX"): font})}
    )
    writer.update_container(page)


def _overlay(data: bytes) -> bytes:
    writer: Any = IncrementalPdfFileWriter(BytesIO(data))
    _paint(writer)
    return _write(writer)


def _annotate(data: bytes) -> bytes:
    writer: Any = IncrementalPdfFileWriter(BytesIO(data))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    annot = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
                generic.pdf_name("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(n) for n in (72, 700, 300, 730)]
                ),
                generic.pdf_name("/Contents"): generic.TextStringObject("EVIL CORP LTD"),
                generic.pdf_name("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
            }
        )
    )
    annots = page.get("/Annots", generic.ArrayObject())
    page["/Annots"] = generic.ArrayObject([*annots, annot])
    writer.update_container(page)
    return _write(writer)


def _add_sig_field(writer: Any, name: str, value: Any) -> None:
    page_ref = writer.root["/Pages"]["/Kids"][0]
    field = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/FT"): generic.pdf_name("/Sig"),
                generic.pdf_name("/T"): generic.TextStringObject(name),
                generic.pdf_name("/V"): value,
                generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Widget"),
                generic.pdf_name("/Rect"): generic.ArrayObject([generic.NumberObject(0)] * 4),
                generic.pdf_name("/P"): page_ref,
            }
        )
    )
    acroform = writer.root["/AcroForm"]
    acroform["/Fields"].append(field)
    fields_ref = acroform.raw_get("/Fields")
    if isinstance(fields_ref, generic.IndirectObject):
        writer.mark_update(fields_ref)
    if isinstance(writer.root.raw_get("/AcroForm"), generic.IndirectObject):
        writer.update_container(acroform)
    else:
        writer.update_root()


def _contents(signed: bytes) -> tuple[int, bytes]:
    """Offset of the last /Contents hex string and the DER it holds (padding removed)."""
    match = list(re.finditer(rb"/Contents <([0-9a-fA-F]+)>", signed))[-1]
    raw = bytes.fromhex(match.group(1).decode())
    from asn1crypto import cms

    der = cms.ContentInfo.load(raw).dump()
    return match.start(1), der


def _flip_hex(data: bytes, at: int) -> bytes:
    digit = data[at : at + 1]
    replacement = b"0" if digit != b"0" else b"1"
    return data[:at] + replacement + data[at + 1 :]


def test_unsigned_consent_says_it_still_needs_the_signature(consent: IssuedConsent) -> None:
    """SPEC 7: the issued consent itself is rejected with a sentence saying what is missing."""
    report = Verifier(SignaturePolicy(trust_roots=())).verify_sync(
        consent.data, lookup_for(consent)
    )
    assert report.failed[0].code == "unsigned"
    assert "still needs the Commission's signature" in report.failed[0].message
    assert report.reference == consent.reference


def test_signed_copy_of_a_superseded_consent(pki: TestPki, consent: IssuedConsent) -> None:
    """A signed copy of a consent that `reissue` replaced is rejected as superseded."""
    signed = commission_sign(consent.data, pki)
    report = verify(pki, signed, replace(consent, superseded=True))
    assert report.failed[0].code == "superseded"
    assert report.reference == consent.reference
