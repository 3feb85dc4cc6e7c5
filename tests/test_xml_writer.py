"""The ETSI report's XML written in one pass is xsdata's own, byte for byte.

`workflow.verification.xml_writer` replaces xsdata's serializer for the models pyHanko's
report uses (about a quarter of xsdata's time for a consent's report). Each test holds it to the
text of pyHanko's ``generate_report`` (xsdata's ``XmlSerializer`` with pyHanko's namespaces
and indent) on reports of real validations: our consents signed by RSA and ECDSA signers,
with and without a timestamp and embedded revocation data, the EU DSS corpus's signatures,
and hand-made models for escaping and for what the writer leaves to xsdata.
"""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import pytest
from pyhanko.generated.etsi import ts_11910202
from pyhanko.pdf_utils.misc import PdfReadError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESPassed
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.report.tools import NAMESPACES
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig
from xsdata.models.datatype import XmlDateTime

from tests.pki import TestPki, commission_sign, issued_consent, pinned_time
from workflow.signature_report import SignaturePolicy
from workflow.verification.pdf import etsi_model, render_etsi, validation_context
from workflow.verification.xml_writer import UnsupportedError, XmlWriter

#: A failure message with every character XML escapes, in text and in attributes.
AWKWARD = "a <b> & 'c' \"d\" ]]> é"

WRITER = XmlWriter(XmlContext(), NAMESPACES, indent="  ")
UNTRUSTED = AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND


def xsdata(model: Any) -> str:
    """pyHanko's generate_report: a fresh xsdata serializer, two-space indent, its namespaces."""
    return XmlSerializer(config=SerializerConfig(indent="  ")).render(model, ns_map=NAMESPACES)


@pytest.fixture(autouse=True)
def _pinned() -> Iterator[None]:
    with pinned_time():
        yield


def models(data: bytes, roots: tuple[Any, ...], indication: Any) -> list[Any]:
    """The ETSI report model of each signature pyHanko validates in ``data``."""
    found: list[Any] = []
    try:
        reader = PdfFileReader(BytesIO(data))
        embedded = reader.embedded_signatures
    except PdfReadError:  # pyHanko cannot read the file: no signature, no report
        return found
    policy = SignaturePolicy(trust_roots=(), revocation="soft-fail")  # the roots are given
    for emb in embedded:
        if emb.sig_object_type != "/Sig":
            continue
        context = validation_context(policy, roots, reader, [emb])
        try:
            status = validate_pdf_signature(emb, context)
        except Exception:  # a signature pyHanko cannot validate has no report
            continue
        found.append(etsi_model(emb, status, context, indication, AWKWARD))
    return found


@pytest.mark.parametrize("label", ["signer-rsa", "signer-ecdsa"])
@pytest.mark.parametrize("timestamp", [False, True], ids=["no-ts", "ts"])
@pytest.mark.parametrize("revinfo", [False, True], ids=["no-revinfo", "revinfo"])
def test_a_commission_signatures_report_is_xsdatas_text(
    pki: TestPki, label: str, timestamp: bool, revinfo: bool
) -> None:
    """Written by the one-pass writer (no fallback), identical to xsdata's text; with
    embedded revocation data the report lists CRLs and OCSP responses as well."""
    consent = issued_consent("CF-2026-0002")
    signed = commission_sign(consent.data, pki, label, timestamp=timestamp, embed_revinfo=revinfo)
    (model,) = models(signed, (pki.cert("root"),), AdESPassed.OK)
    text = WRITER.render(model)
    assert text == xsdata(model)
    assert render_etsi(model) == text
    kinds = {vo.object_type for vo in model.signature_validation_objects.validation_object}
    assert len(kinds) >= (2 if revinfo else 1), kinds


#: The EU DSS corpus (../shared/corpus/signatures), as test_verification.py lists it.
DSS_FILES = (
    "dss-2236-annotation-and-visible-change.pdf", "dss-2236-hide.pdf", "dss-2236-replace.pdf",
    "pades-signed-annot-added.pdf", "pades-spoofing-replaced-reason.pdf",
    "pdf-byterange-overlap.pdf", "pdf-signed-added-page.pdf", "pdf-spoofing-attack.pdf",
    "signature-referenced-from-multiple-fields.pdf", "siwa.pdf",
)  # fmt: skip


def test_reports_of_the_dss_corpus_signatures_are_xsdatas_text(corpus_signatures: Path) -> None:
    """Signatures made by other tools (reasons, locations, Adobe sub-filters, broken
    byte ranges), validated without trust: the one-pass writer takes each of their
    reports, and writes xsdata's text."""
    compared = 0
    for name in DSS_FILES:
        for model in models((corpus_signatures / name).read_bytes(), (), UNTRUSTED):
            assert WRITER.render(model) == xsdata(model), name
            compared += 1
    assert compared == 11, compared  # the signatures pyHanko validates in the corpus


def test_text_and_attributes_are_escaped_as_xsdata_escapes_them() -> None:
    status = ts_11910202.ValidationStatusType(
        main_indication="urn:etsi:019102:mainindication:total-failed",
        sub_indication=("urn:etsi:019102:subindication:HASH_FAILURE",),
    )
    model = ts_11910202.ValidationReport(
        signature_validation_report=(
            ts_11910202.SignatureValidationReportType(
                signature_validation_status=status,
                signature_validation_process=ts_11910202.SignatureValidationProcessType(
                    signature_validation_process_id=AWKWARD
                ),
            ),
        ),
        signature_validation_objects=ts_11910202.ValidationObjectListType(
            (
                ts_11910202.ValidationObjectType(
                    id=AWKWARD,
                    object_type="urn:etsi:019102:validationObject:certificate",
                    validation_object_representation=ts_11910202.ValidationObjectRepresentationType(
                        base64=b"\x00\xff" * 40
                    ),
                ),
            )
        ),
    )
    text = WRITER.render(model)
    assert text == xsdata(model)
    assert "&lt;b&gt; &amp;" in text


@pytest.mark.parametrize(
    "model",
    [
        # an element outside pyHanko's namespaces
        ts_11910202.ValidationReport(
            signature_validation_report=(
                ts_11910202.SignatureValidationReportType(any_element=("<x/>",)),
            )
        ),
        # a value xsdata would write as a qualified name
        ts_11910202.ValidationReport(
            signature_validation_report=(
                ts_11910202.SignatureValidationReportType(
                    signature_validation_process=ts_11910202.SignatureValidationProcessType(
                        signature_validation_process_id="{urn:x}y"
                    )
                ),
            )
        ),
        # a None in a list, which xsdata writes as an empty element
        ts_11910202.ValidationReport(signature_validation_report=cast(Any, (None,))),
    ],
    ids=["wildcard", "qname-like", "none-in-list"],
)
def test_what_the_writer_does_not_know_goes_to_xsdata(model: Any) -> None:
    with pytest.raises(UnsupportedError):
        WRITER.render(model)
    assert render_etsi(model) == xsdata(model)


def test_dates_booleans_and_failures_are_written_as_xsdata_writes_them() -> None:
    report = ts_11910202.SignatureValidationReportType(
        validation_time_info=ts_11910202.ValidationTimeInfoType(
            validation_time=XmlDateTime(2026, 11, 30, 12, 0, 5, 123000, 0)
        ),
        signature_identifier=ts_11910202.SignatureIdentifierType(
            hash_only=False, doc_hash_only=True, id="sig-1"
        ),
        signature_validation_status=ts_11910202.ValidationStatusType(
            main_indication="urn:etsi:019102:mainindication:indeterminate",
            sub_indication=(
                f"urn:etsi:019102:subindication:{AdESIndeterminate.NO_POE.name}",
                f"urn:etsi:019102:subindication:{AdESFailure.HASH_FAILURE.name}",
            ),
        ),
    )
    model = ts_11910202.ValidationReport(signature_validation_report=(report,))
    text = WRITER.render(model)
    assert text == xsdata(model)
    assert "<vr:HashOnly>false</vr:HashOnly>" in text
