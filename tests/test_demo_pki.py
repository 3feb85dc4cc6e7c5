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
