"""The ETSI TS 119 102-2 report stored as evidence (never the gate)."""

from __future__ import annotations

from typing import Any

from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffPolicy,
)
from pyhanko.sign.validation.ades import ades_lta_validation
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.policy_decl import (
    CertificateFetchingRule,
    PdfSignatureValidationSpec,
    RevinfoOnlineFetchingRule,
    RevocationInfoGatheringSpec,
    SignatureValidationSpec,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import NO_REVOCATION, REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

from workflow.signature_report import (
    SignaturePolicy,
)
from workflow.verification.pdf import etsi_xml


async def etsi_report(
    policy: SignaturePolicy, roots: tuple[Any, ...], emb: EmbeddedPdfSignature, reviews: DiffPolicy
) -> str | None:
    """The ETSI report of the AdES engine on ``emb``, or None if the engine fails."""
    # Evidence only, never the gate: the AdES engine misses the diff result and
    # reports NO_POE for a sound B-LT signature without a document timestamp.
    try:
        result = await ades_lta_validation(emb, ades_spec(policy, roots, reviews))
        return etsi_xml(emb, result)
    except Exception:
        return None


def ades_spec(
    policy: SignaturePolicy, roots: tuple[Any, ...], reviews: DiffPolicy = DEFAULT_DIFF_POLICY
) -> Any:
    """The AdES validation spec for ``policy`` (local revocation data unless fetching)."""
    revinfo = NO_REVOCATION if policy.revocation == "off" else REQUIRE_REVINFO
    fetching = (
        RevinfoOnlineFetchingRule.NO_HISTORICAL_FETCH
        if policy.fetch
        else RevinfoOnlineFetchingRule.LOCAL_ONLY
    )
    return PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=list(roots)),
                revinfo_policy=CertRevTrustPolicy(revinfo),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=fetching,
                certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
            ),
            key_usage_settings=KeyUsageConstraints(key_usage={"non_repudiation"}),
        ),
        diff_policy=reviews,
    )
