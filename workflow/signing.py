"""Sign a consent into ``CommissionSignature`` and seal issued consents (SPEC §6, §7).

:class:`Signer` parses a PKCS#12 key once and is reused for every document: pyHanko's
``SimpleSigner`` re-parses the key on each signature (about 29 ms for RSA-2048) and,
without ``bytes_reserved``, signs every document twice to size ``/Contents`` — the
measured 5x penalty in ../shared/notes/prototype.md. Both are avoided here: the size of
``/Contents`` is measured once per key, from one signature made when it is loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.serialization import pkcs12
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

#: The empty field of every issued consent, and the invisible field of the office seal.
COMMISSION_FIELD = "CommissionSignature"
SEAL_FIELD = "OfficeSeal"

# Bytes reserved beyond the signature a key was measured making (`_cms_size`): an ECDSA
# value's DER length varies by a few bytes from one signature to the next. Hex digits
# for a timestamp token with its TSA certificates, which no local measure can predict.
_CMS_SIZE_MARGIN = 64
_TIMESTAMP_RESERVE = 2 * 8192


class SignerError(Exception):
    """A signing key cannot be loaded or used; ``path`` names the PKCS#12 file if any."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        self.path = path
        super().__init__(message)


class _CachedKeySigner(signers.SimpleSigner):
    """pyHanko's SimpleSigner, signing with a key parsed once instead of per signature."""

    def __init__(self, key: Any, **kwargs: Any) -> None:
        self._pyca_key = key
        super().__init__(**kwargs)

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        hash_algo = get_pyca_cryptography_hash(digest_algorithm)
        key = self._pyca_key
        if mechanism == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, PKCS1v15(), hash_algo)
        if mechanism == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hash_algo))
        result: bytes = super().sign_raw(data, digest_algorithm)
        return result


@dataclass(frozen=True)
class Signer:
    """A signing key with its certificate and chain, parsed once; reuse it for a batch.

    ``bytes_reserved`` is the size of ``/Contents`` in hex digits, fixed in advance so
    pyHanko does not make a dummy signature per document to measure it.
    """

    subject: str
    sha256: str
    bytes_reserved: int
    _pyhanko: Any
    #: SHA-256 of the certificate's SubjectPublicKeyInfo (the key, whatever certifies it).
    key_sha256: str = ""

    @classmethod
    def from_p12(cls, path: Path, passphrase: bytes | None = None) -> Signer:
        """Load the key, certificate and chain from PKCS#12 file ``path``.

        Raises :class:`SignerError` with a sentence naming the file when it cannot be
        read, the passphrase is wrong, or it holds no key and certificate.
        """
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise SignerError(
                f"Cannot read the PKCS#12 file {path}: {exc.strerror}.", path
            ) from exc
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(raw, passphrase)
        except ValueError as exc:
            raise SignerError(
                f"Cannot open the PKCS#12 file {path}: wrong passphrase or not a PKCS#12 "
                "file. Pass the passphrase the file was exported with.",
                path,
            ) from exc
        if key is None or cert is None:
            raise SignerError(
                f"The PKCS#12 file {path} holds no private key with its certificate.", path
            )
        return cls.from_key(key, cert, list(extra))

    @classmethod
    def from_key(
        cls, key: Any, certificate: x509.Certificate, chain: list[x509.Certificate]
    ) -> Signer:
        """Build a signer from ``cryptography`` objects (key, certificate, CA chain)."""
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise SignerError(f"Unsupported key type {type(key).__name__}: use RSA or ECDSA.")
        der = certificate.public_bytes(serialization.Encoding.DER)
        chain_der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
        # pyhanko_certvalidator leaves this constructor unannotated.
        store = SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [asn1_x509.Certificate.load(c) for c in chain_der]
        )
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        inner = _CachedKeySigner(
            key,
            signing_cert=asn1_x509.Certificate.load(der),
            signing_key=asn1_keys.PrivateKeyInfo.load(pkcs8),
            cert_registry=store,
        )
        # pyHanko counts the reservation in hex digits of /Contents: two per DER byte.
        size = 2 * (_cms_size(inner) + _CMS_SIZE_MARGIN)
        return cls(
            subject=certificate.subject.rfc4514_string(),
            sha256=hashlib.sha256(der).hexdigest(),
            bytes_reserved=size,
            _pyhanko=inner,
            key_sha256=hashlib.sha256(
                certificate.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).hexdigest(),
        )


def _cms_size(signer: signers.Signer) -> int:
    """Bytes of the CMS ``signer`` makes for a PAdES signature, measured by making one.

    Every byte reserved and left unused is a ``0`` hex digit that each validator parses
    again: pyHanko reads ``/Contents`` one character at a time. Measured here instead of
    a fixed allowance, it made checking a sealed and signed consent about a quarter
    cheaper (bench/HISTORY.md).
    """
    attributes = PdfCMSSignedAttributes(signing_time=datetime.now(UTC))
    cms = asyncio.run(
        signer.async_sign(
            hashlib.sha256(b"").digest(),
            "sha256",
            use_pades=True,
            signed_attr_settings=attributes,
        )
    )
    return len(cms.dump())


def sign_consent(
    data: bytes,
    signer: Signer,
    *,
    field: str = COMMISSION_FIELD,
    timestamp_url: str | None = None,
) -> bytes:
    """Sign consent ``data`` into its existing empty ``field``, as one incremental revision.

    The issued bytes stay an exact prefix of the result. With ``timestamp_url`` an RFC
    3161 timestamp from that authority is embedded. Not for use inside a running event
    loop (pyHanko's synchronous API runs its own).
    """
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
    )
    timestamper = HTTPTimeStamper(timestamp_url) if timestamp_url else None
    reserved = signer.bytes_reserved + (_TIMESTAMP_RESERVE if timestamp_url else 0)
    pdf_signer = signers.PdfSigner(meta, signer._pyhanko, timestamper=timestamper)
    return _sign(data, pdf_signer, reserved, empty_field=field)


def certify(data: bytes, seal: Signer) -> bytes:
    """Certify an issued consent with the office seal (DocMDP: form filling and signing).

    The seal goes into a new invisible ``OfficeSeal`` field. The empty
    ``CommissionSignature`` field must already exist: pyHanko (like a strict reader)
    rejects signature fields created after a certification.
    """
    meta = signers.PdfSignatureMetadata(
        field_name=SEAL_FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=fields.MDPPerm.FILL_FORMS,
    )
    pdf_signer = signers.PdfSigner(
        meta, seal._pyhanko, new_field_spec=fields.SigFieldSpec(SEAL_FIELD)
    )
    return _sign(data, pdf_signer, seal.bytes_reserved, empty_field=COMMISSION_FIELD)


def _sign(data: bytes, pdf_signer: Any, reserved: int, *, empty_field: str) -> bytes:
    """Sign ``data`` as one new revision, once it has the empty field ``empty_field``."""
    writer = IncrementalPdfFileWriter(BytesIO(data), strict=True)  # parsed once for both
    _require_empty_field(writer, empty_field)
    out = BytesIO()
    pdf_signer.sign_pdf(writer, output=out, bytes_reserved=reserved)
    return out.getvalue()


def _require_empty_field(writer: IncrementalPdfFileWriter, name: str) -> None:
    empty = list(fields.enumerate_sig_fields(writer, filled_status=False, with_name=name))
    if not empty:
        raise SignerError(
            f"The document has no empty signature field named {name}; only a consent "
            "issued by consentflow (and not yet signed) can be signed or sealed."
        )
