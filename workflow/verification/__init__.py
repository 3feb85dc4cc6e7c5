"""Verify the Commission's signature on a returned consent (SPEC §7).

The only package that uses pyHanko's validation API. :meth:`Verifier.verify` takes the
received bytes and a lookup of issued consents and returns a :class:`SignatureReport`:
a verdict, the ETSI EN 319 102-1 indication, and every check with a stable code and
one plain sentence. pyHanko alone accepts a document that is not ours, content
appended before the signer signed and a form value changed after the signature
(../shared/notes/signatures.md), so the binding, revision and modification rules are
enforced here on top of pyHanko's status. Outcomes are values: nothing but a bad
trust-root file raises.

By concern: :mod:`.binding` (which issued consent a file extends), :mod:`.revisions`
(what the signing revision changed), :mod:`.pdf` (the pyHanko calls, and the only uses
of pyHanko's private functions), :mod:`.policy` (the signer, trust, revocation and seal
rules), :mod:`.etsi` (the ETSI report), :mod:`.findings` (checks and the report made of
them) and :mod:`.verifier` (the order they run in).
"""

from __future__ import annotations

from workflow.signature_report import (
    COMMISSION_FIELD,
    REVOCATION_MODES,
    Check,
    CheckCode,
    IssuedConsent,
    Lookup,
    SignaturePolicy,
    SignatureReport,
    TrustRootError,
)
from workflow.verification.binding import bind
from workflow.verification.pdf import etsi_xml as _etsi_xml
from workflow.verification.verifier import Verifier

__all__ = [
    "COMMISSION_FIELD",
    "REVOCATION_MODES",
    "Check",
    "CheckCode",
    "IssuedConsent",
    "Lookup",
    "SignaturePolicy",
    "SignatureReport",
    "TrustRootError",
    "Verifier",
    "_etsi_xml",
    "bind",
]
