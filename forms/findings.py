"""Eligibility findings on a valid EOI (SPEC §5): what the office should look at before approving.

A finding is not a problem with the form: the EOI is valid, but something about the
applicant may make it ineligible. ``review = "auto"`` approves only when there is none.
Stable codes, in the order they are reported:

========================  =====================================================
code                      when
========================  =====================================================
``org_type_ineligible``   ``org_type`` is not in :data:`~forms.eoi.ELIGIBLE_ORG_TYPES`
``country_not_eligible``  ``eligible_countries`` is non-empty and lacks the country
``too_few_members``       ``member_count`` < :data:`MIN_MEMBERS`
``open_application``      the engine found another open application for the organisation
========================  =====================================================

Messages are for the office and in English (``forms/texts/en/findings.toml``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

import pycountry

from forms.eoi import ELIGIBLE_ORG_TYPES, EOI, Lang
from forms.texts import text

#: A network or association of one local authority is no network (SPEC §1).
MIN_MEMBERS = 2


class FindingCode(StrEnum):
    """Stable codes of :class:`Finding` (see the table in the module docstring)."""

    ORG_TYPE_INELIGIBLE = "org_type_ineligible"
    COUNTRY_NOT_ELIGIBLE = "country_not_eligible"
    TOO_FEW_MEMBERS = "too_few_members"
    OPEN_APPLICATION = "open_application"


@dataclass(frozen=True)
class Finding:
    """One reason for the office to doubt eligibility: a stable ``code`` and a sentence."""

    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        """Return the ``{code, message}`` object of ``check --json`` and ``show --json``."""
        return {"code": str(self.code), "message": self.message}


def eligibility_findings(
    eoi: EOI, *, eligible_countries: Collection[str], open_application: str | None = None
) -> tuple[Finding, ...]:
    """Return the findings on ``eoi``, in the order of the table above; empty when eligible.

    ``eligible_countries`` holds ISO alpha-2 codes (any case) from ``[review]
    eligible_countries``; an empty collection means no country restriction, so a fresh
    installation does not flag every application. ``open_application`` is the reference
    of another open application of the same organisation, as found by the engine.
    """
    found: list[Finding] = []

    def add(code: FindingCode, **values: object) -> None:
        found.append(Finding(code, text(Lang.EN, "findings", code, **values)))

    if eoi.org_type not in ELIGIBLE_ORG_TYPES:
        add(FindingCode.ORG_TYPE_INELIGIBLE, org_type=eoi.org_type.value)
    allowed = {code.strip().upper() for code in eligible_countries}
    if allowed and eoi.country.upper() not in allowed:
        country = pycountry.countries.get(alpha_2=eoi.country)
        name = country.name if country is not None else "unknown code"
        add(FindingCode.COUNTRY_NOT_ELIGIBLE, country=eoi.country, country_name=name)
    if eoi.member_count < MIN_MEMBERS:
        add(FindingCode.TOO_FEW_MEMBERS, member_count=eoi.member_count, min_members=MIN_MEMBERS)
    if open_application:
        add(FindingCode.OPEN_APPLICATION, reference=open_application)
    return tuple(found)
