"""The EOI form's contract: field names, kinds and rules (SPEC §4).

These names are what every applicant's downloaded form carries. Extend the table,
never rename an entry: a renamed field makes every form already in circulation
unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

FORM_NAME = "eoi"
FORM_VERSION = 1
#: Value of the hidden, read-only ``form_id`` field, also printed on the page.
FORM_ID = f"consentflow/{FORM_NAME}/{FORM_VERSION}"


class Lang(StrEnum):
    """Languages the form, its messages and the consent form exist in."""

    EN = "en"
    FI = "fi"


class Kind(StrEnum):
    """How a field is drawn and what type its extracted value has."""

    HIDDEN = "hidden"  # read-only text, str
    TEXT = "text"  # single-line text, str
    MULTILINE = "multiline"  # multi-line text, str
    CHOICE = "choice"  # combo box with fixed export values, str
    CHECKBOX = "checkbox"  # bool


class OrgType(StrEnum):
    """Export values of ``org_type``; the first four are eligible."""

    NATIONAL_NETWORK = "national_network"
    REGIONAL_NETWORK = "regional_network"
    EUROPEAN_NETWORK = "european_network"
    ASSOCIATION_OF_LOCAL_AUTHORITIES = "association_of_local_authorities"
    SINGLE_MUNICIPALITY = "single_municipality"
    COMPANY = "company"
    OTHER = "other"


ELIGIBLE_ORG_TYPES = frozenset(
    {
        OrgType.NATIONAL_NETWORK,
        OrgType.REGIONAL_NETWORK,
        OrgType.EUROPEAN_NETWORK,
        OrgType.ASSOCIATION_OF_LOCAL_AUTHORITIES,
    }
)


@dataclass(frozen=True)
class FieldSpec:
    """One field of the EOI form."""

    name: str
    kind: Kind
    required: bool = True
    max_len: int | None = None
    options: tuple[str, ...] = ()


COMMITMENTS = (
    "commit_promote",
    "commit_recognise",
    "commit_exchange",
    "commit_media",
    "commit_synergies",
    "commit_feedback",
)

#: Every field, in the order it appears on the page.
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("form_id", Kind.HIDDEN),
    # Extension of SPEC §4: the language the blank form was generated in, so that
    # problems are reported in the applicant's language.
    FieldSpec("form_lang", Kind.HIDDEN, required=False),
    FieldSpec("org_name", Kind.TEXT, max_len=200),
    FieldSpec("org_acronym", Kind.TEXT, required=False, max_len=30),
    FieldSpec("org_type", Kind.CHOICE, options=tuple(OrgType)),
    FieldSpec("country", Kind.TEXT),
    FieldSpec("address_street", Kind.TEXT),
    FieldSpec("address_postcode", Kind.TEXT),
    FieldSpec("address_city", Kind.TEXT),
    FieldSpec("website", Kind.TEXT),
    FieldSpec("member_count", Kind.TEXT),
    FieldSpec("contact_name", Kind.TEXT),
    FieldSpec("contact_position", Kind.TEXT),
    FieldSpec("contact_email", Kind.TEXT),
    FieldSpec("contact_phone", Kind.TEXT),
    FieldSpec("representative_name", Kind.TEXT),
    FieldSpec("representative_position", Kind.TEXT),
    FieldSpec("services", Kind.MULTILINE),
    FieldSpec("languages", Kind.TEXT, required=False),
    *(FieldSpec(name, Kind.CHECKBOX) for name in COMMITMENTS),
    FieldSpec("accept_suspension", Kind.CHECKBOX),
    FieldSpec("consent_privacy", Kind.CHECKBOX),
    FieldSpec("date", Kind.TEXT),
    FieldSpec("place", Kind.TEXT),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {spec.name: spec for spec in FIELDS}

#: The type of an extracted value: text and choices are ``str``, checkboxes ``bool``,
#: a field absent from the file is ``None``.
FieldValue = str | bool | None


@dataclass(frozen=True)
class EOI:
    """A validated expression of interest: typed, normalised values ready to store and print.

    Only :func:`forms.validation.validate` builds one from a form; the store rebuilds
    it with :meth:`from_fields`. The six commitments, the suspension clause and the
    privacy consent are not fields here: an EOI exists only when all were ticked.
    """

    org_name: str
    org_acronym: str | None
    org_type: OrgType
    country: str  # ISO 3166-1 alpha-2
    address_street: str
    address_postcode: str
    address_city: str
    website: str
    member_count: int
    contact_name: str
    contact_position: str
    contact_email: str
    contact_phone: str  # E.164
    representative_name: str
    representative_position: str
    services: str
    languages: str | None
    date: str  # ISO 8601 YYYY-MM-DD
    place: str
    lang: Lang = Lang.EN

    def to_fields(self) -> dict[str, str | int | None]:
        """Return the values as a JSON-ready mapping keyed by SPEC §4 field names."""
        out: dict[str, str | int | None] = {}
        for name, value in self.__dict__.items():
            out[name] = value.value if isinstance(value, StrEnum) else value
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, object]) -> EOI:
        """Rebuild an EOI from :meth:`to_fields` output (as stored in the database)."""
        known = {name: fields[name] for name in cls.__dataclass_fields__ if name in fields}
        known["org_type"] = OrgType(str(known["org_type"]))
        known["lang"] = Lang(str(known.get("lang", Lang.EN.value)))
        return cls(**known)  # type: ignore[arg-type]
