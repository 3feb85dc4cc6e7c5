"""signer_subject is matched on whole attributes of the signer's subject (SPEC 7 rule 3)."""

from __future__ import annotations

import pytest
from cryptography import x509

from workflow.verification.policy import subject_matches

COMMISSION = x509.Name.from_rfc4514_string("CN=Commission signer,O=European Commission,C=BE")
MALLORY = x509.Name.from_rfc4514_string("CN=Mallory,OU=O=European Commission,O=Evil Corp")


def test_whole_attribute_matches() -> None:
    assert subject_matches("O=European Commission", COMMISSION)
    assert subject_matches("O=European Commission,C=BE", COMMISSION)


@pytest.mark.parametrize(
    "rule",
    [
        "O=European Commission",
        "O=European Commission,C=BE",
        "O=European",  # a prefix of the value
        "O=European Commission.*",  # a regex is not a value
    ],
)
def test_substring_or_other_attribute_does_not_match(rule: str) -> None:
    """``OU=O=European Commission`` is an OU: it satisfies no rule on O."""
    assert not subject_matches(rule, MALLORY)
    if rule != "O=European Commission,C=BE" and not rule.startswith("O=European Commission"):
        assert not subject_matches(rule, COMMISSION)


def test_a_regex_rule_must_match_the_whole_subject() -> None:
    assert subject_matches(r"^CN=Commission signer,O=European Commission,C=BE$", COMMISSION)
    assert subject_matches(r"(CN=Commission signer),.*", COMMISSION)
    assert not subject_matches(r"(O=European Commission)", COMMISSION)
    assert not subject_matches(r"(O=European Commission)", MALLORY)
