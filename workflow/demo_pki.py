"""``consentflow demo-pki DIR``: a labelled demo Commission CA, signer and office seal.

So a newcomer can run the whole loop (issue, sign, verify) on one machine. Built with
``cryptography`` only; every certificate says DEMO and NOT FOR PRODUCTION in its
subject, and the PKCS#12 files have no passphrase.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from workflow.archive import make_dir

ROOT_NAME = "consentflow DEMO Commission root — NOT FOR PRODUCTION"
SIGNER_NAME = "consentflow DEMO Commission signer — NOT FOR PRODUCTION"
SEAL_NAME = "consentflow DEMO office seal — NOT FOR PRODUCTION"
OFFICE_ROOT_NAME = "consentflow DEMO office CA — NOT FOR PRODUCTION"
_ORG = "consentflow demo"
_VALIDITY = timedelta(days=2 * 365)


@dataclass(frozen=True)
class DemoPki:
    """The files :func:`make_demo_pki` wrote and the configuration that uses them."""

    root_pem: Path
    signer_pem: Path
    signer_p12: Path
    seal_pem: Path
    seal_p12: Path
    signer_sha256: str
    seal_sha256: str
    config_lines: tuple[str, ...]
    #: The office's own CA, issuer of the seal: never a Commission trust root.
    office_root_pem: Path | None = None

    @property
    def config_text(self) -> str:
        """The ``consentflow.toml`` lines as one block of text to print."""
        return "\n".join(self.config_lines) + "\n"


def make_demo_pki(directory: Path, *, now: datetime | None = None) -> DemoPki:
    """Write a demo root, Commission signer and office seal (PEM + PKCS#12) to ``directory``.

    The signer has digitalSignature and nonRepudiation key usage, as the verifier
    requires. Existing files of the same names are overwritten. ``now`` pins the
    start of validity (default: the current time).
    """
    make_dir(directory)  # 0700 when it is new: it holds private keys
    start = (now or datetime.now(UTC)) - timedelta(hours=1)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate(
        subject=_name(ROOT_NAME),
        issuer=_name(ROOT_NAME),
        public_key=root_key.public_key(),
        issuer_key=root_key,
        start=start,
        ca=True,
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = _certificate(
        subject=_name(SIGNER_NAME),
        issuer=root.subject,
        public_key=signer_key.public_key(),
        issuer_key=root_key,
        start=start,
        ca=False,
    )
    # The seal has an issuer of its own: a seal certificate must never chain to the
    # Commission's trust roots, so it cannot pass for the Commission's signature.
    office_key = ec.generate_private_key(ec.SECP256R1())
    office = _certificate(
        subject=_name(OFFICE_ROOT_NAME),
        issuer=_name(OFFICE_ROOT_NAME),
        public_key=office_key.public_key(),
        issuer_key=office_key,
        start=start,
        ca=True,
    )
    seal_key = ec.generate_private_key(ec.SECP256R1())
    seal = _certificate(
        subject=_name(SEAL_NAME),
        issuer=office.subject,
        public_key=seal_key.public_key(),
        issuer_key=office_key,
        start=start,
        ca=False,
    )
    root_pem = _write(directory / "commission-root.pem", _pem(root), _PUBLIC)
    signer_pem = _write(directory / "commission-signer.pem", _pem(signer), _PUBLIC)
    signer_p12 = _write(
        directory / "commission-signer.p12", _p12("signer", signer_key, signer, root), _PRIVATE
    )
    seal_pem = _write(directory / "office-seal.pem", _pem(seal), _PUBLIC)
    office_pem = _write(directory / "office-root.pem", _pem(office), _PUBLIC)
    seal_p12 = _write(directory / "office-seal.p12", _p12("seal", seal_key, seal, office), _PRIVATE)
    signer_sha = _sha256(signer)
    seal_sha = _sha256(seal)
    lines = (
        "# consentflow DEMO PKI — NOT FOR PRODUCTION (made by `consentflow demo-pki`)",
        "[signature]",
        f"trust_roots = [{_toml(root_pem)}]",
        f"signer_fingerprints = [{json.dumps(signer_sha)}]",
        "",
        "[seal]",
        f"p12 = {_toml(seal_p12)}",
        "",
        f"# sign a consent: consentflow sign IN.pdf OUT.pdf --p12 {_shell(signer_p12)}",
    )
    return DemoPki(
        root_pem=root_pem,
        signer_pem=signer_pem,
        signer_p12=signer_p12,
        seal_pem=seal_pem,
        seal_p12=seal_p12,
        signer_sha256=signer_sha,
        seal_sha256=seal_sha,
        config_lines=lines,
        office_root_pem=office_pem,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, _ORG),
        ]
    )


def _certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePrivateKey,
    start: datetime,
    ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=not ca,  # nonRepudiation: a commitment signature
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _p12(
    name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, root: x509.Certificate
) -> bytes:
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, [root], serialization.NoEncryption()
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


#: Certificates are public (readable by all, like any CA certificate); keys are not.
_PUBLIC = 0o644
_PRIVATE = 0o600


def _write(path: Path, data: bytes, mode: int) -> Path:
    # Set on the descriptor too: overwriting a file that existed keeps its old mode.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
    with open(fd, "wb") as handle:
        os.fchmod(fd, mode)
        handle.write(data)
    return path.resolve()


def _toml(path: Path) -> str:
    # A JSON string is a valid TOML basic string.
    return json.dumps(str(path), ensure_ascii=False)


def _shell(path: Path) -> str:
    text = str(path)
    return text if all(c.isalnum() or c in "/._-" for c in text) else "'" + text + "'"
