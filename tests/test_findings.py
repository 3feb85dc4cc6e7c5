"""Eligibility findings on a valid EOI (SPEC §5)."""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import replace

import pytest

from forms.eoi import ELIGIBLE_ORG_TYPES, EOI, Lang, OrgType
from forms.findings import MIN_MEMBERS, Finding, FindingCode, eligibility_findings

EU = ("AT", "BE", "DE", "FI", "GR", "PL")

#: An eligible supporter: national network in Greece with 42 members.
BASE = EOI(
    org_name="Ελληνικό Δίκτυο Πόλεων",
    org_acronym="ΕΔΠ",
    org_type=OrgType.NATIONAL_NETWORK,
    country="GR",
    address_street="Łódzka 15",
    address_postcode="00-950",
    address_city="Αθήνα",
    website="https://example.eu",
    member_count=42,
    contact_name="Съюз на общините",
    contact_position="Директор",
    contact_email="office@example.eu",
    contact_phone="+302101234567",
    representative_name="Νικόλαος",
    representative_position="Президент",
    services="Ενημέρωση των μελών για το Σύμφωνο.",
    languages=None,
    date="2026-03-15",
    place="Łódź",
)


def codes(
    eoi: EOI, *, eligible_countries: Collection[str] = EU, open_application: str | None = None
) -> list[str]:
    """The finding codes for ``eoi``, judged against the EU list by default."""
    found = eligibility_findings(
        eoi, eligible_countries=eligible_countries, open_application=open_application
    )
    return [f.code for f in found]


def test_eligible_applicant_has_no_findings() -> None:
    """A national network in an eligible country with many members raises nothing."""
    assert eligibility_findings(BASE, eligible_countries=EU) == ()


@pytest.mark.parametrize("org_type", list(OrgType))
def test_org_type(org_type: OrgType) -> None:
    """The four network types are eligible; municipality, company and other are flagged."""
    expected = [] if org_type in ELIGIBLE_ORG_TYPES else ["org_type_ineligible"]
    assert codes(replace(BASE, org_type=org_type)) == expected


@pytest.mark.parametrize(
    ("country", "eligible", "expected"),
    [
        ("GR", EU, []),
        ("CH", EU, ["country_not_eligible"]),
        ("GR", ("gr", " at "), []),
        ("CH", (), []),
        ("CH", frozenset({"CH"}), []),
    ],
)
def test_country(country: str, eligible: Collection[str], expected: list[str]) -> None:
    """A country outside a non-empty list is flagged; an empty list restricts nothing."""
    assert codes(replace(BASE, country=country), eligible_countries=eligible) == expected


@pytest.mark.parametrize(
    ("member_count", "expected"),
    [(1, ["too_few_members"]), (MIN_MEMBERS, []), (500, [])],
)
def test_member_count(member_count: int, expected: list[str]) -> None:
    """A network of fewer than two member authorities is flagged."""
    assert codes(replace(BASE, member_count=member_count)) == expected


@pytest.mark.parametrize(
    ("reference", "expected"),
    [("SUP-2026-00041", ["open_application"]), (None, []), ("", [])],
)
def test_open_application(reference: str | None, expected: list[str]) -> None:
    """Another open application of the same organisation, named by the engine, is flagged."""
    assert codes(BASE, open_application=reference) == expected


def test_all_findings_at_once_in_order() -> None:
    """Every finding is reported, in the documented order, each naming its facts."""
    eoi = replace(BASE, org_type=OrgType.COMPANY, country="CH", member_count=1)
    found = eligibility_findings(eoi, eligible_countries=EU, open_application="SUP-2026-00041")
    assert [f.code for f in found] == [
        "org_type_ineligible",
        "country_not_eligible",
        "too_few_members",
        "open_application",
    ]
    assert "company" in found[0].message
    assert "CH" in found[1].message
    assert "Switzerland" in found[1].message
    assert "1" in found[2].message
    assert "SUP-2026-00041" in found[3].message
    for finding in found:
        assert finding.message.endswith(".")
        assert not re.search(r"[{}]", finding.message)


def test_finding_json_shape() -> None:
    """A finding serialises to exactly {code, message} with plain strings."""
    (finding,) = eligibility_findings(replace(BASE, member_count=1), eligible_countries=())
    assert finding.to_json() == {"code": "too_few_members", "message": finding.message}
    assert type(finding.to_json()["code"]) is str
    assert Finding(FindingCode.OPEN_APPLICATION, "m").to_json()["code"] == "open_application"


def test_findings_are_english_whatever_the_form_language() -> None:
    """Findings are for the office: English even on a Finnish form."""
    english = eligibility_findings(replace(BASE, member_count=1), eligible_countries=())
    finnish = eligibility_findings(
        replace(BASE, member_count=1, lang=Lang.FI), eligible_countries=()
    )
    assert english == finnish
