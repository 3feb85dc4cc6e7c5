"""Canonical applicant values used across the tests: every EU script, a multi-line field."""

from __future__ import annotations

from datetime import date

from forms.eoi import COMMITMENTS, FORM_ID

#: Text values as an applicant types them, keyed by SPEC §4 field names.
TEXT_VALUES: dict[str, str] = {
    "org_name": "Ελληνικό Δίκτυο Πόλεων για την Ενέργεια",
    "org_acronym": "ΕΔΠΕ",
    "org_type": "national_network",
    "country": "GR",
    "address_street": "Łódzka 15/3, Żółć",
    "address_postcode": "00-950",
    "address_city": "Αθήνα",
    "website": "https://example.eu/ąęść?x=1&y=2",
    "member_count": "42",
    "contact_name": "Съюз на общините",
    "contact_position": "Директор / Ředitelka",
    "contact_email": "office@example.eu",
    "contact_phone": "+30 21 0123 4567",
    "representative_name": "Νικόλαος Παπαδόπουλος",
    "representative_position": "Президент",
    "services": (
        "Ενημέρωση των μελών για το Σύμφωνο.\n"
        "Обучение на общините и обмен на опит.\n"
        "Szkolenia w Łodzi, Kraków — Zürich, Åbo, Čačak."
    ),
    "languages": "el, bg, pl, fi",
    "date": date.today().isoformat(),
    "place": "Łódź",
}

#: Checkbox values: every box the form requires is ticked.
CHECKED: dict[str, bool] = {
    **{name: True for name in COMMITMENTS},
    "accept_suspension": True,
    "consent_privacy": True,
}

HIDDEN: dict[str, str] = {"form_id": FORM_ID, "form_lang": "en"}
