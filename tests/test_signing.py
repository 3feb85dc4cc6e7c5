"""workflow.signing: Commission signatures into CommissionSignature and the office seal."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms

from tests.pki import SIGNER_SUBJECT, TestPki, issued_consent, lookup_for, pinned_time
from workflow.signing import Signer, SignerError, certify, sign_consent
from workflow.verification import IssuedConsent, SignaturePolicy, SignatureReport, Verifier


@pytest.fixture(autouse=True)
def _pinned() -> Iterator[None]:
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    with pinned_time():
        yield


@pytest.fixture(scope="module")
def consent() -> IssuedConsent:
    """An issued consent with its empty CommissionSignature field."""
    return issued_consent("CF-2026-0100")


def verify(pki: TestPki, data: bytes, issued: IssuedConsent, **kw: Any) -> SignatureReport:
    """Verify under the test policy (test root, Commission subjects)."""
    policy = SignaturePolicy(trust_roots=(pki.root_pem,), signer_subject=SIGNER_SUBJECT, **kw)
    return Verifier(policy).verify_sync(data, lookup_for(issued))


@pytest.mark.parametrize(
    ("label", "passphrase"), [("signer-rsa", b"secret"), ("signer-ecdsa", None)]
)
def test_signed_consent_verifies(
    pki: TestPki, consent: IssuedConsent, label: str, passphrase: bytes | None
) -> None:
    """An RSA (with passphrase) or ECDSA (without) PKCS#12 signs a consent that verifies."""
    signer = Signer.from_p12(pki.p12(label, passphrase), passphrase)
    assert signer.sha256 == pki.sha256(label)
    assert "O=European Commission" in signer.subject
    signed = sign_consent(consent.data, signer)
    assert signed.startswith(consent.data)
    report = verify(pki, signed, consent)
    assert report.accepted, report.failed


def test_batch_reuses_the_parsed_key(pki: TestPki, consent: IssuedConsent) -> None:
    """One Signer signs many consents; each differs from the last and verifies."""
    signer = Signer.from_p12(pki.p12("signer-rsa"))
    consents = [issued_consent(f"CF-2026-02{i:02}") for i in range(5)]
    for issued in consents:
        assert verify(pki, sign_consent(issued.data, signer), issued).accepted


def test_signature_size_is_reserved(pki: TestPki, consent: IssuedConsent) -> None:
    """/Contents is exactly the reserved size: no dummy signature was made to measure it."""
    signer = Signer.from_p12(pki.p12("signer-rsa"))
    signed = sign_consent(consent.data, signer)
    match = re.search(rb"/Contents <([0-9a-fA-F]+)>", signed[len(consent.data) :])
    assert match is not None
    assert len(match.group(1)) == signer.bytes_reserved


@pytest.mark.parametrize("key", ["signer-rsa", "signer-ecdsa", "seal"])
def test_reservation_fits_the_signature(pki: TestPki, consent: IssuedConsent, key: str) -> None:
    """/Contents holds the signature with no more than the margin to spare: every unused
    byte is two '0' digits that each validator of the consent parses again."""
    signed = sign_consent(consent.data, Signer.from_p12(pki.p12(key)))
    match = re.search(rb"/Contents <([0-9a-fA-F]+)>", signed[len(consent.data) :])
    assert match is not None
    contents = bytes.fromhex(match.group(1).decode())
    unused = len(contents) - len(cms.ContentInfo.load(contents).dump())
    assert 0 < unused <= 128, unused


def test_timestamped_signature(pki: TestPki, consent: IssuedConsent) -> None:
    """timestamp_url embeds a timestamp the verifier proves the time with."""
    signer = Signer.from_p12(pki.p12("signer-ecdsa"))
    signed = sign_consent(consent.data, signer, timestamp_url=pki.tsa_url)
    report = verify(pki, signed, consent, require_timestamp=True)
    assert report.accepted, report.failed
    assert report.timestamp_time is not None


def test_certify_then_sign(pki: TestPki, consent: IssuedConsent) -> None:
    """The office seal (DocMDP 2) stays valid when the Commission signs afterwards."""
    seal = Signer.from_p12(pki.p12("seal"))
    sealed = certify(consent.data, seal)
    assert sealed.startswith(consent.data)
    assert b"/DocMDP" in sealed[len(consent.data) :]
    assert re.search(rb"/P 2\b", sealed[len(consent.data) :])
    issued = IssuedConsent(consent.reference, hashlib.sha256(sealed).hexdigest(), sealed)
    signed = sign_consent(sealed, Signer.from_p12(pki.p12("signer-ecdsa")))
    report = verify(pki, signed, issued, seal_certificate_sha256=seal.sha256)
    assert report.accepted, report.failed


def test_sign_needs_the_empty_field(pki: TestPki, consent: IssuedConsent) -> None:
    """A document without an empty CommissionSignature field is refused, not half-signed."""
    signer = Signer.from_p12(pki.p12("signer-ecdsa"))
    signed = sign_consent(consent.data, signer)
    with pytest.raises(SignerError, match="CommissionSignature"):
        sign_consent(signed, signer)
    with pytest.raises(SignerError, match="CommissionSignature"):
        certify(signed, signer)


def test_wrong_passphrase_names_the_file(pki: TestPki) -> None:
    """A wrong passphrase says which file and what to do."""
    path = pki.p12("signer-rsa", b"right")
    with pytest.raises(SignerError, match=re.escape(str(path))) as info:
        Signer.from_p12(path, b"wrong")
    assert info.value.path == path


def test_missing_p12(tmp_path: Path) -> None:
    """A missing PKCS#12 file is a SignerError naming it."""
    with pytest.raises(SignerError, match=r"nothing\.p12"):
        Signer.from_p12(tmp_path / "nothing.p12")
