"""A certomancer test PKI for the signature tests, with its services on 127.0.0.1.

Keys are generated in the test setup (certomancer does not generate keys). One root
issues every certificate; an unrelated root issues a rogue signer with the genuine
signer's exact subject. OCSP, CRL and a timestamp authority are served by
certomancer's aiohttp animator in a thread (werkzeug, which its WSGI animator needs,
is not installed). Validity periods are fixed, and the tests pin the clock to
:data:`NOW` with freezegun so OCSP and CRL freshness never depends on the real date.

Also here: :func:`issued_consent`, a stand-in for the consent PDF, and
:func:`commission_sign`, which signs the way the Commission's tools may (pyHanko
with or without timestamp and embedded revocation data).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from aiohttp import web
from asn1crypto import x509 as asn1_x509
from certomancer.integrations.aiohttp_animator import build_animator_app
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, KeyLabel, ServiceLabel
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from freezegun import freeze_time
from pyhanko.pdf_utils import generic as pdf_generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from reportlab.pdfgen import canvas

from workflow.verification import IssuedConsent

# pyHanko's PDF object constructors are unannotated; Any keeps mypy --strict quiet.
generic: Any = pdf_generic

#: The pinned "now" of every signature test.
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ARCH = "consentflow-test"

SIGNER_SUBJECT = "O=European Commission"
_VALID = {"valid-from": "2025-01-01T00:00:00+0000", "valid-to": "2030-01-01T00:00:00+0000"}
_ROOT_VALID = {"valid-from": "2020-01-01T00:00:00+0000", "valid-to": "2040-01-01T00:00:00+0000"}

#: Key label -> key kind. RSA where the test needs RSA, ECDSA (fast) elsewhere.
KEYS = {
    "root": "ec",
    "other-root": "ec",
    "ocsp": "ec",
    "tsa": "ec",
    "signer-rsa": "rsa",
    "signer-ecdsa": "ec",
    "signer-nonr": "ec",
    "signer-outsider": "ec",
    "signer-revoked": "ec",
    "signer-expired": "ec",
    "signer-notyet": "ec",
    "signer-offline": "ec",
    "rogue-signer": "ec",
    "seal": "ec",
}


def _key_usage(*usages: str) -> dict[str, Any]:
    return {
        "id": "key_usage",
        "critical": True,
        "smart-value": {"schema": "key-usage", "params": list(usages)},
    }


_REVINFO = [
    {
        "id": "crl_distribution_points",
        "smart-value": {"schema": "crl-dist-url", "params": {"crl-repo-names": ["root"]}},
    },
    {
        "id": "authority_information_access",
        "smart-value": {"schema": "aia-urls", "params": {"ocsp-responder-names": ["root"]}},
    },
]


def _leaf(
    issuer: str = "root", *usages: str, validity: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "validity": validity or _VALID,
        "extensions": [_key_usage(*(usages or ("digital_signature", "non_repudiation")))]
        + (_REVINFO if issuer == "root" else []),
    }


def _config() -> dict[str, Any]:
    config = _arch_config()
    certs = config["pki-architectures"][ARCH]["certs"]
    for label, spec in certs.items():
        spec.setdefault("subject-key", label)  # one key per certificate, named alike
    return config


def _arch_config() -> dict[str, Any]:
    ca = [
        {"id": "basic_constraints", "critical": True, "value": {"ca": True}},
        _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
    ]
    offline = _leaf()
    # An OCSP responder nobody listens on: validation must not even try it.
    offline["extensions"] = [
        _key_usage("digital_signature", "non_repudiation"),
        {
            "id": "authority_information_access",
            "value": [
                {
                    "access_method": "ocsp",
                    "access_location": {"uniform_resource_identifier": "http://127.0.0.1:9/ocsp"},
                }
            ],
        },
    ]
    return {
        "keysets": {
            "keys": {"keys": {label: {"path": f"{label}.key.pem"} for label in KEYS}},
        },
        "pki-architectures": {
            ARCH: {
                "keyset": "keys",
                "entity-defaults": {"country-name": "BE"},
                "entities": {
                    "root": {"organization-name": "Test Commission PKI", "common-name": "Root CA"},
                    "other-root": {
                        "organization-name": "Somebody Else",
                        "common-name": "Untrusted Other Root CA",
                    },
                    "ocsp": {"organization-name": "Test Commission PKI", "common-name": "OCSP"},
                    "tsa": {"organization-name": "Test Commission PKI", "common-name": "TSA"},
                    "signer": {
                        "organization-name": "European Commission",
                        "common-name": "Commission signer",
                    },
                    "signer-ecdsa": {
                        "organization-name": "European Commission",
                        "common-name": "Commission signer (ECDSA)",
                    },
                    "outsider": {
                        "organization-name": "Not the Commission",
                        "common-name": "Somebody",
                    },
                    "seal": {
                        "organization-name": "Covenant of Mayors office",
                        "common-name": "Office seal",
                    },
                },
                "certs": {
                    "root": {
                        "subject": "root",
                        "issuer": "root",
                        "validity": _ROOT_VALID,
                        "extensions": ca,
                    },
                    "other-root": {
                        "subject": "other-root",
                        "issuer": "other-root",
                        "validity": _ROOT_VALID,
                        "extensions": ca,
                    },
                    "ocsp": {
                        "issuer": "root",
                        "validity": _VALID,
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["ocsp_signing"],
                            },
                            {"id": "ocsp_no_check"},
                        ],
                    },
                    "tsa": {
                        "issuer": "root",
                        "validity": _VALID,
                        "extensions": [
                            _key_usage("digital_signature"),
                            {
                                "id": "extended_key_usage",
                                "critical": True,
                                "value": ["time_stamping"],
                            },
                        ],
                    },
                    "signer-rsa": {"subject": "signer", **_leaf()},
                    "signer-ecdsa": {"subject": "signer-ecdsa", **_leaf()},
                    "signer-nonr": {
                        "subject": "signer",
                        **_leaf("root", "digital_signature"),
                    },
                    "signer-outsider": {"subject": "outsider", **_leaf()},
                    "signer-revoked": {
                        "subject": "signer",
                        **_leaf(),
                        "revocation": {
                            "revoked-since": "2026-01-01T00:00:00+0000",
                            "reason": "key_compromise",
                        },
                    },
                    "signer-expired": {
                        "subject": "signer",
                        **_leaf(
                            validity={
                                "valid-from": "2024-01-01T00:00:00+0000",
                                "valid-to": "2025-01-01T00:00:00+0000",
                            }
                        ),
                    },
                    "signer-notyet": {
                        "subject": "signer",
                        **_leaf(
                            validity={
                                "valid-from": "2027-01-01T00:00:00+0000",
                                "valid-to": "2030-01-01T00:00:00+0000",
                            }
                        ),
                    },
                    "signer-offline": {"subject": "signer", **offline},
                    "rogue-signer": {"subject": "signer", **_leaf("other-root")},
                    "seal": {"subject": "seal", **_leaf()},
                },
                "services": {
                    "ocsp": {
                        "root": {
                            "for-issuer": "root",
                            "responder-cert": "ocsp",
                            "signing-key": "ocsp",
                        }
                    },
                    "crl-repo": {
                        "root": {
                            "for-issuer": "root",
                            "signing-key": "root",
                            "simulated-update-schedule": "P7D",
                        }
                    },
                    "time-stamping": {"tsa": {"signing-key": "tsa", "signing-cert": "tsa"}},
                },
            }
        },
    }


def _generate_keys(directory: Path) -> None:
    for label, kind in KEYS.items():
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa.generate_private_key(65537, 2048)
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1())
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        (directory / f"{label}.key.pem").write_bytes(pem)


class _Server:
    """certomancer's aiohttp animator on 127.0.0.1, in its own thread and event loop."""

    def __init__(self) -> None:
        self.architectures: dict[Any, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    async def _start(self) -> None:
        # The dict is filled after the port is known (certificates carry the URLs).
        app = build_animator_app(self.architectures, with_web_ui=False)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def close(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class TestPki:
    """The built architecture, its files on disk and its service URLs."""

    __test__ = False  # not a test class, despite the name

    arch: Any
    directory: Path
    server: _Server

    @property
    def root_pem(self) -> Path:
        """The trusted root, as a PEM file (what ``trust_roots`` names)."""
        return self._pem("root")

    @property
    def other_root_pem(self) -> Path:
        """The unrelated root that issued the rogue signer."""
        return self._pem("other-root")

    @property
    def tsa_url(self) -> str:
        """The timestamp authority's URL."""
        return str(self.arch.service_registry.get_tsa_info(ServiceLabel("tsa")).url)

    def cert(self, label: str) -> asn1_x509.Certificate:
        """The certificate ``label``."""
        return self.arch.get_cert(CertLabel(label))

    def sha256(self, label: str) -> str:
        """SHA-256 (hex) of certificate ``label``."""
        return hashlib.sha256(self.cert(label).dump()).hexdigest()

    def signer(self, label: str) -> signers.SimpleSigner:
        """A pyHanko signer for certificate ``label`` (key label = certificate label)."""
        key = self.arch.key_set.get_private_key(KeyLabel(label))
        issuer = "other-root" if label == "rogue-signer" else "root"
        return signers.SimpleSigner(
            signing_cert=self.cert(label),
            signing_key=key,
            cert_registry=_store([self.cert(issuer)]),
        )

    def p12(self, label: str, passphrase: bytes | None = None) -> Path:
        """Certificate ``label`` with its key and root as a PKCS#12 file."""
        issuer = "other-root" if label == "rogue-signer" else "root"
        data = self.arch.package_pkcs12(
            CertLabel(label), certs_to_embed=[CertLabel(issuer)], password=passphrase
        )
        path = self.directory / f"{label}.p12"
        path.write_bytes(data)
        return path

    def _pem(self, label: str) -> Path:
        path = self.directory / f"{label}.cert.pem"
        if not path.exists():
            from asn1crypto import pem

            path.write_bytes(pem.armor("CERTIFICATE", self.cert(label).dump()))
        return path


def _store(certs: list[asn1_x509.Certificate]) -> Any:
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    return SimpleCertificateStore.from_certs(certs)  # type: ignore[no-untyped-call]


@contextmanager
def build_pki(directory: Path) -> Iterator[TestPki]:
    """Generate keys in ``directory``, build the PKI and serve it until the block ends."""
    _generate_keys(directory)
    server = _Server()
    try:
        config = CertomancerConfig(
            _config(),
            key_search_dir=str(directory),
            external_url_prefix=f"http://127.0.0.1:{server.port}",
        )
        arch = config.get_pki_arch(ArchLabel(ARCH))
        server.architectures[ArchLabel(ARCH)] = arch
        yield TestPki(arch=arch, directory=directory, server=server)
    finally:
        server.close()


@contextmanager
def pinned_time(moment: datetime = NOW) -> Iterator[None]:
    """Freeze the clock at ``moment`` (asyncio keeps real time, so network I/O works)."""
    with freeze_time(moment, tick=True, real_asyncio=True):
        yield


# --- documents ------------------------------------------------------------------------


def issued_consent(
    reference: str = "CF-2026-0001", *, text: str = "Consent", text_field: str | None = None
) -> IssuedConsent:
    """A consent as issued: one page, the empty ``CommissionSignature`` field, /SigFlags 3.

    A stand-in with the shape of ``forms.consent.render_consent``'s output;
    ``text_field`` adds a filled text field (the real consent has none) so a test can
    change a form value after signing.
    """
    buffer = BytesIO()
    page = canvas.Canvas(buffer, invariant=True)
    page.setTitle(f"Consent {reference}")
    page.drawString(72, 760, f"{text} — application {reference}")
    page.drawString(72, 740, "For the European Commission")
    if text_field is not None:
        page.acroForm.textfield(name="note", value=text_field, x=72, y=600, width=300, height=20)
    page.save()
    writer: Any = IncrementalPdfFileWriter(BytesIO(buffer.getvalue()))
    writer.document_meta_view  # noqa: B018 - force the Info dictionary to be read
    info = writer.trailer["/Info"].get_object() if "/Info" in writer.trailer else None
    if info is not None:
        info["/ConsentflowReference"] = generic.TextStringObject(reference)
        writer.update_container(info)
    fields.append_signature_field(
        writer,
        fields.SigFieldSpec("CommissionSignature", on_page=0, box=(300, 80, 540, 160)),
    )
    acroform = writer.root["/AcroForm"]
    acroform["/SigFlags"] = generic.NumberObject(3)
    if isinstance(writer.root.raw_get("/AcroForm"), generic.IndirectObject):
        writer.update_container(acroform)
    else:
        writer.update_root()
    out = BytesIO()
    writer.write(out)
    data = out.getvalue()
    return IssuedConsent(reference, hashlib.sha256(data).hexdigest(), data)


def commission_sign(
    data: bytes,
    pki: TestPki,
    label: str = "signer-ecdsa",
    *,
    field: str = "CommissionSignature",
    timestamp: bool = False,
    embed_revinfo: bool = False,
) -> bytes:
    """Sign ``data`` the way the Commission's tool may: pyHanko, PAdES, optionally with a
    timestamp and with revocation data embedded (fetched from the served OCSP/CRL)."""
    meta = signers.PdfSignatureMetadata(
        field_name=field,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=embed_revinfo,
        validation_context=ValidationContext(trust_roots=[pki.cert("root")], allow_fetching=True)
        if embed_revinfo
        else None,
    )
    timestamper = HTTPTimeStamper(pki.tsa_url) if timestamp else None
    out = BytesIO()
    signers.PdfSigner(meta, pki.signer(label), timestamper=timestamper).sign_pdf(
        IncrementalPdfFileWriter(BytesIO(data)), output=out
    )
    return out.getvalue()


def embed_crl(data: bytes, pki: TestPki) -> bytes:
    """Append a DSS revision holding the root's current CRL, as a signing tool that
    embeds revocation data does (pyHanko itself refuses to for a revoked signer)."""
    crl = pki.arch.service_registry.get_crl(ServiceLabel("root"), datetime.now(UTC))
    writer: Any = IncrementalPdfFileWriter(BytesIO(data))
    DocumentSecurityStore.supply_dss_in_writer(writer, None, crls=[crl])
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def lookup_for(*consents: IssuedConsent) -> Any:
    """A lookup over ``consents`` by SHA-256, as the store provides it."""
    by_hash = {c.sha256: c for c in consents}
    return by_hash.get
