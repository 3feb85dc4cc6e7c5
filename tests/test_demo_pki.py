"""workflow.demo_pki: a labelled demo PKI whose output signs a consent that verifies."""

from __future__ import annotations

import hashlib
import logging
import tomllib
from pathlib import Path

from cryptography import x509

from tests.pki import issued_consent, lookup_for
from workflow.demo_pki import make_demo_pki
from workflow.signing import Signer, certify, sign_consent
from workflow.verification import IssuedConsent, SignaturePolicy, Verifier


def test_files_are_labelled_demo(tmp_path: Path) -> None:
    """Every certificate says DEMO and NOT FOR PRODUCTION; the signer has non-repudiation."""
    demo = make_demo_pki(tmp_path / "pki")
    for path in (demo.root_pem, demo.signer_pem, demo.seal_pem):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        assert "DEMO" in cert.subject.rfc4514_string()
        assert "NOT FOR PRODUCTION" in cert.subject.rfc4514_string()
    signer = x509.load_pem_x509_certificate(demo.signer_pem.read_bytes())
    usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.content_commitment
    assert demo.signer_p12.is_file()
    assert demo.seal_p12.is_file()


def test_config_lines_are_valid_toml(tmp_path: Path) -> None:
    """The printed lines parse as TOML and name the files just written."""
    demo = make_demo_pki(tmp_path / "dir with space")
    config = tomllib.loads(demo.config_text)
    assert config["signature"]["trust_roots"] == [str(demo.root_pem)]
    assert config["signature"]["signer_fingerprints"] == [demo.signer_sha256]
    assert config["seal"]["p12"] == str(demo.seal_p12)


def test_demo_pki_signs_a_consent_that_verifies(tmp_path: Path) -> None:
    """Seal with the demo seal, sign with the demo signer: accepted under the printed policy."""
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    demo = make_demo_pki(tmp_path)
    config = tomllib.loads(demo.config_text)
    consent = issued_consent("CF-2026-0300")
    seal = Signer.from_p12(demo.seal_p12)
    sealed = certify(consent.data, seal)
    issued = IssuedConsent(consent.reference, hashlib.sha256(sealed).hexdigest(), sealed)
    signed = sign_consent(sealed, Signer.from_p12(demo.signer_p12))
    policy = SignaturePolicy(
        trust_roots=tuple(Path(p) for p in config["signature"]["trust_roots"]),
        signer_fingerprints=tuple(config["signature"]["signer_fingerprints"]),
        seal_certificate_sha256=seal.sha256,
    )
    report = Verifier(policy).verify_sync(signed, lookup_for(issued))
    assert report.accepted, report.failed
    codes = {c.code for c in report.checks if c.ok}
    assert {"certification_broken", "signer_policy", "untrusted_chain"} <= codes


def test_seal_and_signer_have_separate_issuers(tmp_path: Path) -> None:
    """The seal is issued by an office CA of its own, not by the Commission's demo root."""
    demo = make_demo_pki(tmp_path / "pki")
    root = x509.load_pem_x509_certificate(demo.root_pem.read_bytes())
    signer = x509.load_pem_x509_certificate(demo.signer_pem.read_bytes())
    seal = x509.load_pem_x509_certificate(demo.seal_pem.read_bytes())
    assert signer.issuer == root.subject
    assert seal.issuer != root.subject
    assert demo.office_root_pem is not None
    office = x509.load_pem_x509_certificate(demo.office_root_pem.read_bytes())
    assert seal.issuer == office.subject


def test_seal_cannot_sign_for_the_commission_under_any_policy(tmp_path: Path) -> None:
    """The office seal's p12 used as the Commission's signer is refused, even with no
    signer rule at all and no seal configured (the file's own certification names it)."""
    logging.getLogger("pyhanko").setLevel(logging.ERROR)
    demo = make_demo_pki(tmp_path)
    consent = issued_consent("CF-2026-0301")
    seal = Signer.from_p12(demo.seal_p12)
    sealed = certify(consent.data, seal)
    issued = IssuedConsent(consent.reference, hashlib.sha256(sealed).hexdigest(), sealed)
    forged = sign_consent(sealed, seal)
    assert demo.office_root_pem is not None
    roots = (demo.root_pem, demo.office_root_pem)
    for policy in (
        SignaturePolicy(trust_roots=roots),  # trusts the office CA too, no signer rule
        SignaturePolicy(trust_roots=roots, seal_certificate_sha256=seal.sha256),
        SignaturePolicy(trust_roots=roots, seal_key_sha256=seal.key_sha256),
    ):
        report = Verifier(policy).verify_sync(forged, lookup_for(issued))
        assert not report.accepted
        assert "signer_policy" in {c.code for c in report.failed}, report.failed
    # Unsealed consent, seal key configured: refused by the key alone.
    forged = sign_consent(consent.data, seal)
    policy = SignaturePolicy(trust_roots=roots, seal_key_sha256=seal.key_sha256)
    report = Verifier(policy).verify_sync(forged, lookup_for(consent))
    assert [c.code for c in report.failed] == ["signer_policy"]
