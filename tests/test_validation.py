"""Validation of EOI values against SPEC §4: rules, normalisation, messages in two languages."""

from __future__ import annotations

import re
import tomllib
import unicodedata
from datetime import date, timedelta
from pathlib import Path

import pytest

from forms.eoi import COMMITMENTS, EOI, FIELDS, FieldValue, Kind, Lang, OrgType
from forms.validation import DATE_MAX_AGE_DAYS, Problem, ProblemCode, Validation, validate
from tests.samples import CHECKED, HIDDEN, TEXT_VALUES

#: The day every test judges forms on, so that dates in the tables never go stale.
TODAY = date(2026, 3, 15)

TEXTS = Path(__file__).resolve().parent.parent / "forms" / "texts"


def valid_values(**changes: FieldValue) -> dict[str, FieldValue]:
    """A complete, valid form as the reader returns it, with ``changes`` applied."""
    values: dict[str, FieldValue] = {
        **HIDDEN,
        **TEXT_VALUES,
        **CHECKED,
        "date": TODAY.isoformat(),
    }
    values.update(changes)
    return values


def check(**changes: FieldValue) -> Validation:
    """Validate the sample form with ``changes`` on TODAY, in English."""
    return validate(valid_values(**changes), today=TODAY)


def test_sample_form_is_valid() -> None:
    """The samples, in every script, pass and come back unchanged in the EOI."""
    result = check()
    assert result.valid
    assert result.problems == ()
    assert isinstance(result.eoi, EOI)
    assert result.eoi.org_name == TEXT_VALUES["org_name"]
    assert result.eoi.services == TEXT_VALUES["services"]
    assert result.eoi.org_type is OrgType.NATIONAL_NETWORK
    assert result.eoi.member_count == 42
    assert result.eoi.contact_phone == "+302101234567"
    assert result.eoi.lang is Lang.EN


def test_samples_dated_today_are_valid_today() -> None:
    """samples.py dates the form today, which is valid on the real today."""
    assert validate({**HIDDEN, **TEXT_VALUES, **CHECKED}, today=date.today()).valid


def test_fields_cover_every_visible_field_in_order() -> None:
    """fields has every non-hidden field in form order; checkboxes as bools."""
    fields = check().fields
    assert list(fields) == [spec.name for spec in FIELDS if spec.kind is not Kind.HIDDEN]
    assert all(fields[name] is True for name in COMMITMENTS)


def test_eoi_takes_the_given_language() -> None:
    """EOI.lang is the language validate() was given."""
    result = validate(valid_values(), lang=Lang.FI, today=TODAY)
    assert result.eoi is not None
    assert result.eoi.lang is Lang.FI


def test_optional_fields_may_be_empty() -> None:
    """An empty acronym or languages field is no problem and becomes None."""
    result = check(org_acronym=None, languages="   ")
    assert result.valid
    assert result.eoi is not None
    assert result.eoi.org_acronym is None
    assert result.eoi.languages is None


VALID_CASES = [
    # field, as typed, as stored
    ("org_name", "  Union of Cities  ", "Union of Cities"),
    ("org_name", "x" * 200, "x" * 200),
    ("org_acronym", "x" * 30, "x" * 30),
    ("org_type", "company", "company"),
    ("org_type", " National_Network ", "national_network"),
    ("org_type", "association of local authorities", "association_of_local_authorities"),
    ("country", "GR", "GR"),
    ("country", "de", "DE"),
    ("country", "DEU", "DE"),
    ("country", "Germany", "DE"),
    ("country", " GERMANY ", "DE"),
    ("country", "Federal Republic of Germany", "DE"),
    ("country", "Saksa", "DE"),
    ("country", "Suomi", "FI"),
    ("country", "suomen tasavalta", "FI"),
    ("country", "Finland", "FI"),
    ("country", "Tšekki", "CZ"),
    ("country", "Czech Republic", "CZ"),
    ("country", "Moldova", "MD"),
    ("country", "Ahvenanmaa", "AX"),
    ("country", "Kongo", "CG"),
    ("country", "Turkiye", "TR"),
    ("country", "Turkey", "TR"),
    ("country", "EL", "GR"),
    ("country", "UK", "GB"),
    ("website", "https://example.org", "https://example.org"),
    ("website", "http://example.org/path?q=1", "http://example.org/path?q=1"),
    ("website", "www.example.org", "https://www.example.org"),
    ("website", "example.org:8080/a", "https://example.org:8080/a"),
    ("website", "https://ąęść.pl/ścieżka", "https://ąęść.pl/ścieżka"),
    ("member_count", "1", 1),
    ("member_count", " 42 ", 42),
    ("member_count", "042", 42),
    ("member_count", "1000000", 1_000_000),
    ("contact_email", "office@example.eu", "office@example.eu"),
    ("contact_email", "Office@Example.ORG", "Office@example.org"),
    ("contact_email", "pää@esimerkki.fi", "pää@esimerkki.fi"),
    ("contact_phone", "+358 40 1234567", "+358401234567"),
    ("contact_phone", "00358 40 1234567", "+358401234567"),
    ("contact_phone", "+358 (0)40 123 4567", "+358401234567"),
    ("contact_phone", "+32 2 299 11 11", "+3222991111"),
    ("contact_phone", "+49-30-123456", "+4930123456"),
    ("contact_phone", "+33\u202f6\u00a012 34 56 78", "+33612345678"),
    ("services", "x" * 20, "x" * 20),
    ("date", "2026-03-15", "2026-03-15"),
    ("date", "15.03.2026", "2026-03-15"),
    ("date", "5.3.2026", "2026-03-05"),
    ("date", (TODAY - timedelta(days=DATE_MAX_AGE_DAYS)).isoformat(), "2025-03-15"),
    ("date", "15.3.2025", "2025-03-15"),
]


@pytest.mark.parametrize(("field", "typed", "stored"), VALID_CASES)
def test_valid_value_is_normalised(field: str, typed: str, stored: str | int) -> None:
    """A valid value passes and is stored in its normal form, in fields and in the EOI."""
    result = check(**{field: typed})
    assert result.problems == ()
    assert result.fields[field] == stored
    assert result.eoi is not None
    assert result.eoi.to_fields()[field] == stored


INVALID_CASES = [
    # field, as typed, code
    ("org_name", None, "required"),
    ("org_name", "", "required"),
    ("org_name", " \n ", "required"),
    ("org_name", True, "required"),
    ("org_name", "x" * 201, "too_long"),
    ("org_acronym", "x" * 31, "too_long"),
    ("org_type", None, "required"),
    ("org_type", "mayor", "choice"),
    ("org_type", "Paikallisviranomaisten yhdistys", "choice"),
    ("country", None, "required"),
    ("country", "Atlantis", "country"),
    ("country", "XX", "country"),
    ("country", "Europe", "country"),
    ("address_street", "", "required"),
    ("address_postcode", None, "required"),
    ("address_city", None, "required"),
    ("website", None, "required"),
    ("website", "ftp://example.org", "url"),
    ("website", "mailto:office@example.org", "url"),
    ("website", "javascript:alert(1)", "url"),
    ("website", "https://", "url"),
    ("website", "not a url", "url"),
    ("website", "localhost", "url"),
    ("website", "http://exa mple.org", "url"),
    ("website", "https://user:secret@example.org", "url"),
    ("website", "https://example.org:99999", "url"),
    ("website", "https://192.168.1.1", "url"),
    ("website", "https://-bad-.org", "url"),
    ("member_count", None, "required"),
    ("member_count", "12a", "integer"),
    ("member_count", "0", "integer"),
    ("member_count", "-3", "integer"),
    ("member_count", "+5", "integer"),
    ("member_count", "1.5", "integer"),
    ("member_count", "1 200", "integer"),
    ("member_count", "٤٢", "integer"),
    ("member_count", "1000001", "integer"),
    ("contact_name", None, "required"),
    ("contact_position", None, "required"),
    ("contact_email", None, "required"),
    ("contact_email", "office@", "email"),
    ("contact_email", "office.example.org", "email"),
    ("contact_email", "a b@example.org", "email"),
    ("contact_email", "office@localhost", "email"),
    ("contact_phone", None, "required"),
    ("contact_phone", "040 1234567", "phone"),
    ("contact_phone", "358401234567", "phone"),
    ("contact_phone", "+358 40", "phone"),
    ("contact_phone", "+1 555", "phone"),
    ("contact_phone", "+358 40 123456a", "phone"),
    ("contact_phone", "+358 40 1234567 ext. 12", "phone"),
    ("contact_phone", "tel: +358 40 1234567", "phone"),
    ("representative_name", None, "required"),
    ("representative_position", None, "required"),
    ("services", None, "required"),
    ("services", "Training.", "too_short"),
    ("services", "x" * 19, "too_short"),
    ("date", None, "required"),
    ("date", "2026/03/15", "date"),
    ("date", "15-03-2026", "date"),
    ("date", "2026-3-15", "date"),
    ("date", "2026-02-30", "date"),
    ("date", "31.4.2026", "date"),
    ("date", "yesterday", "date"),
    ("date", "2026-03-16", "date_future"),
    ("date", "16.03.2026", "date_future"),
    ("date", (TODAY - timedelta(days=DATE_MAX_AGE_DAYS + 1)).isoformat(), "date_stale"),
    ("date", "1.1.2020", "date_stale"),
    ("place", None, "required"),
    *((name, False, "unchecked") for name in CHECKED),
    *((name, None, "unchecked") for name in CHECKED),
    ("consent_privacy", "Yes", "unchecked"),
]


@pytest.mark.parametrize(("field", "typed", "code"), INVALID_CASES)
def test_invalid_value_is_one_problem(field: str, typed: FieldValue, code: str) -> None:
    """A value breaking a rule gives exactly one problem with that field and code, and no EOI."""
    result = check(**{field: typed})
    assert [(p.field, p.code) for p in result.problems] == [(field, code)]
    assert not result.valid
    assert result.eoi is None


@pytest.mark.parametrize("lang", list(Lang))
@pytest.mark.parametrize(("field", "typed", "code"), INVALID_CASES)
def test_every_message_is_complete(lang: Lang, field: str, typed: FieldValue, code: str) -> None:
    """Every problem message, in every language, is a sentence with no placeholder left."""
    (problem,) = validate(valid_values(**{field: typed}), lang=lang, today=TODAY).problems
    assert problem.message.endswith(".")
    assert not re.search(r"[{}]", problem.message)


def test_failed_field_keeps_its_text() -> None:
    """A field that failed keeps the cleaned text in fields; the others are normalised."""
    result = check(member_count=" 12a ", country="Suomi")
    assert result.fields["member_count"] == "12a"
    assert result.fields["country"] == "FI"


def test_all_problems_are_reported_at_once_in_field_order() -> None:
    """Every faulty field is reported, in the order of the form, not only the first."""
    result = check(
        place=None,
        date="2099-01-01",
        commit_media=False,
        contact_phone="12345",
        member_count="0",
        org_name=None,
        website="ftp://x.org",
        country="Atlantis",
    )
    assert [(p.field, p.code) for p in result.problems] == [
        ("org_name", "required"),
        ("country", "country"),
        ("website", "url"),
        ("member_count", "integer"),
        ("contact_phone", "phone"),
        ("commit_media", "unchecked"),
        ("date", "date_future"),
        ("place", "required"),
    ]


def test_empty_form_reports_every_required_field() -> None:
    """A form with nothing filled in names every required field, optional ones not at all."""
    result = validate({}, today=TODAY)
    required = [s.name for s in FIELDS if s.required and s.kind is not Kind.HIDDEN]
    assert [p.field for p in result.problems] == required
    assert "org_acronym" not in {p.field for p in result.problems}


def test_unknown_keys_are_ignored() -> None:
    """Values that are not form fields do not disturb validation."""
    assert validate({**valid_values(), "surprise": "x"}, today=TODAY).valid


def test_finnish_messages_differ_from_english() -> None:
    """The same problems read in Finnish for a Finnish form, naming the Finnish field label."""
    values = valid_values(org_name=None, contact_phone="040 1234567", commit_feedback=False)
    english = validate(values, lang=Lang.EN, today=TODAY).problems
    finnish = validate(values, lang=Lang.FI, today=TODAY).problems
    assert [(p.field, p.code) for p in english] == [(p.field, p.code) for p in finnish]
    for en, fi in zip(english, finnish, strict=True):
        assert en.message != fi.message
    assert "Organisaation nimi" in finnish[0].message
    assert "Name of the organisation" in english[0].message
    assert "040 1234567" in finnish[1].message


def test_message_names_the_limit() -> None:
    """too_long and too_short say how long the text is and what the limit is."""
    (too_long,) = check(org_name="x" * 250).problems
    assert "250" in too_long.message
    assert "200" in too_long.message
    (too_short,) = validate(valid_values(services="Koulutus"), lang=Lang.FI, today=TODAY).problems
    assert "8" in too_short.message
    assert "20" in too_short.message


def test_date_message_gives_an_example_in_the_forms_language() -> None:
    """An unreadable date is answered with today's date written the way the language writes it."""
    (en,) = check(date="March 15").problems
    (fi,) = validate(valid_values(date="maaliskuu"), lang=Lang.FI, today=TODAY).problems
    assert "2026-03-15" in en.message
    assert "15.3.2026" in fi.message


def test_long_value_is_shortened_in_the_message() -> None:
    """The applicant's text quoted in a message is cut to a readable length."""
    (problem,) = check(website="ftp://" + "a" * 500 + ".org").problems
    assert len(problem.message) < 300
    assert "…" in problem.message


def test_values_are_nfc_normalised() -> None:
    """Decomposed input is stored composed, compared composed and counted in NFC characters."""
    decomposed = unicodedata.normalize("NFD", "Łódź Ελληνικό")
    assert decomposed != "Łódź Ελληνικό"
    result = check(
        place=decomposed,
        country=unicodedata.normalize("NFD", "Tšekki"),
        org_name=unicodedata.normalize("NFD", "é" * 200),
    )
    assert result.problems == ()
    assert result.fields["place"] == "Łódź Ελληνικό"
    assert result.fields["country"] == "CZ"
    assert result.fields["org_name"] == "é" * 200


def test_multiline_text_is_kept() -> None:
    """Line breaks inside services survive validation untouched."""
    services = "Line one of the services.\nLine two: Ελληνικά, Кирилица."
    result = check(services=services)
    assert result.eoi is not None
    assert result.eoi.services == services


def test_problem_json_shape() -> None:
    """A problem serialises to exactly {field, code, message} with plain strings."""
    (problem,) = check(place=None).problems
    assert problem.to_json() == {
        "field": "place",
        "code": "required",
        "message": problem.message,
    }
    assert type(problem.to_json()["code"]) is str


def test_validation_json_shape() -> None:
    """A validation serialises to valid, fields and problems."""
    result = check(place=None)
    assert result.to_json() == {
        "valid": False,
        "fields": result.fields,
        "problems": [p.to_json() for p in result.problems],
    }


def test_problem_codes_are_the_spec_codes() -> None:
    """The stable codes include every code SPEC §4 names."""
    spec = {
        "required",
        "too_long",
        "email",
        "phone",
        "url",
        "country",
        "integer",
        "choice",
        "date",
        "date_future",
        "date_stale",
        "unchecked",
    }
    assert spec <= {code.value for code in ProblemCode}
    assert Problem("x", ProblemCode.URL, "m").to_json()["code"] == "url"


#: Every placeholder validate() fills in (see the header of messages.toml).
PLACEHOLDERS = {
    "label",
    "value",
    "today_iso",
    "today_dotted",
    "length",
    "max_len",
    "min_len",
    "max_value",
    "max_age_days",
}


def _catalogue(lang: str) -> dict[str, str]:
    with (TEXTS / lang / "messages.toml").open("rb") as file:
        return {key: str(value) for key, value in tomllib.load(file).items()}


@pytest.mark.parametrize("lang", [lang.value for lang in Lang])
def test_catalogue_is_complete(lang: str) -> None:
    """Each language has a message per code and a label per field, with English's placeholders."""
    english, other = _catalogue("en"), _catalogue(lang)
    assert set(other) == set(english)
    assert {code.value for code in ProblemCode} <= set(other)
    visible = {s.name for s in FIELDS if s.kind is not Kind.HIDDEN}
    assert {f"label_{name}" for name in visible} <= set(other)
    for key, template in other.items():
        assert set(re.findall(r"{(\w+)}", template)) <= PLACEHOLDERS, key
