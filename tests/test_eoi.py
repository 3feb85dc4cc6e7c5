"""The EOI field contract and the EOI value object."""

from __future__ import annotations

from dataclasses import replace

from forms.eoi import EOI, FIELDS, FIELDS_BY_NAME, FORM_ID, Kind, Lang
from tests.test_findings import BASE

SPEC_FIELDS = {
    "form_id",
    "org_name",
    "org_acronym",
    "org_type",
    "country",
    "address_street",
    "address_postcode",
    "address_city",
    "website",
    "member_count",
    "contact_name",
    "contact_position",
    "contact_email",
    "contact_phone",
    "representative_name",
    "representative_position",
    "services",
    "languages",
    "commit_promote",
    "commit_recognise",
    "commit_exchange",
    "commit_media",
    "commit_synergies",
    "commit_feedback",
    "accept_suspension",
    "consent_privacy",
    "date",
    "place",
}


def test_every_spec_field_is_in_the_contract() -> None:
    """The form carries every field name of SPEC §4, each exactly once."""
    names = [spec.name for spec in FIELDS]
    assert set(names) >= SPEC_FIELDS
    assert len(names) == len(set(names))


def test_form_id_and_kinds() -> None:
    """form_id names form and version; the commitments are checkboxes."""
    assert FORM_ID == "consentflow/eoi/1"
    assert FIELDS_BY_NAME["form_id"].kind is Kind.HIDDEN
    assert FIELDS_BY_NAME["commit_media"].kind is Kind.CHECKBOX
    assert FIELDS_BY_NAME["org_name"].max_len == 200
    assert FIELDS_BY_NAME["org_acronym"].max_len == 30


def test_eoi_round_trips_through_fields() -> None:
    """An EOI stored as fields comes back equal, Greek and Cyrillic included."""
    eoi = replace(
        BASE, org_name="Ελληνικό Δίκτυο", org_acronym=None, date="2026-11-26", lang=Lang.FI
    )
    fields = eoi.to_fields()
    assert fields["org_type"] == "national_network"
    assert fields["lang"] == "fi"
    assert EOI.from_fields(dict(fields)) == eoi
