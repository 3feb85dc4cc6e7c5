"""Validation of extracted EOI values against the rules of SPEC §4, every problem at once.

A problem is a value, not an exception: :func:`validate` returns a :class:`Validation`
holding the normalised fields, one :class:`Problem` per faulty field (in form order)
and, when there is none, the typed :class:`~forms.eoi.EOI`. Stable problem codes:

==============  =============================================================
code            meaning
==============  =============================================================
``required``    a required text or choice field is empty or missing
``too_long``    longer than the field's ``max_len`` (counted in NFC characters)
``too_short``   ``services`` shorter than :data:`SERVICES_MIN_LEN` characters
``email``       ``contact_email`` is not a valid address (syntax only, no DNS)
``phone``       ``contact_phone`` is not a valid international number
``url``         ``website`` is not an http(s) address with a host name
``country``     ``country`` is neither an ISO 3166-1 code nor a known country name
``integer``     ``member_count`` is not a whole number from 1 to :data:`MEMBERS_MAX`
``choice``      ``org_type`` is not one of the :class:`~forms.eoi.OrgType` values
``date``        ``date`` is neither ``YYYY-MM-DD`` nor ``DD.MM.YYYY``, or no such day
``date_future`` ``date`` is after ``today``
``date_stale``  ``date`` is more than :data:`DATE_MAX_AGE_DAYS` days before ``today``
``unchecked``   a required checkbox (commitments, suspension, privacy) is not ticked
==============  =============================================================

Normalisation: every text is NFC-normalised and trimmed (empty means absent);
``country`` becomes ISO alpha-2, ``contact_phone`` E.164, ``contact_email`` the
email-validator normal form, ``date`` ISO 8601, ``member_count`` an ``int``,
``org_type`` its export value and ``website`` gains ``https://`` when typed as a bare
host (``www.example.org``): applicants copy addresses from the browser bar without the
scheme far more often than they mean anything else. Hidden fields (``form_id``,
``form_lang``) are the reader's business and are neither checked nor returned.
"""

from __future__ import annotations

import datetime
import gettext
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, partial
from urllib.parse import urlsplit

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email

from forms.eoi import EOI, FIELDS, FieldValue, Kind, Lang, OrgType
from forms.texts import text

#: ``services`` must describe the offer in at least this many characters (SPEC §4).
SERVICES_MIN_LEN = 20
#: Upper bound of ``member_count``: far above any real network, below any database limit.
MEMBERS_MAX = 1_000_000
#: A form dated longer ago than this was filled for an earlier round (SPEC §4).
DATE_MAX_AGE_DAYS = 365
#: Longest excerpt of the applicant's own text quoted back in a message.
_QUOTE_MAX = 60


class ProblemCode(StrEnum):
    """Stable codes of :class:`Problem` (see the table in the module docstring)."""

    REQUIRED = "required"
    TOO_LONG = "too_long"
    TOO_SHORT = "too_short"
    EMAIL = "email"
    PHONE = "phone"
    URL = "url"
    COUNTRY = "country"
    INTEGER = "integer"
    CHOICE = "choice"
    DATE = "date"
    DATE_FUTURE = "date_future"
    DATE_STALE = "date_stale"
    UNCHECKED = "unchecked"


@dataclass(frozen=True)
class Problem:
    """One faulty field: its name, a stable ``code`` and a sentence saying what to fix."""

    field: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        """Return the ``{field, code, message}`` object of ``check --json`` (SPEC §8)."""
        return {"field": self.field, "code": str(self.code), "message": self.message}


@dataclass(frozen=True)
class Validation:
    """The outcome of :func:`validate`.

    ``fields`` has every non-hidden field in form order: the normalised value where the
    field passed, the cleaned text (or ``None``) where it did not, ``bool`` for
    checkboxes. ``eoi`` is set exactly when ``problems`` is empty.
    """

    fields: dict[str, str | int | bool | None]
    problems: tuple[Problem, ...]
    eoi: EOI | None

    @property
    def valid(self) -> bool:
        """True when the form has no problem (and so ``eoi`` is set)."""
        return not self.problems

    def to_json(self) -> dict[str, object]:
        """Return the ``valid``, ``fields`` and ``problems`` keys of ``check --json``."""
        return {
            "valid": self.valid,
            "fields": dict(self.fields),
            "problems": [problem.to_json() for problem in self.problems],
        }


@dataclass(frozen=True)
class _Fail:
    """A rule's verdict that the text is wrong, with the values its message needs."""

    code: ProblemCode
    params: Mapping[str, object] = field(default_factory=dict)


_Check = Callable[[str], str | int | _Fail]


def validate(
    values: Mapping[str, FieldValue], *, lang: Lang = Lang.EN, today: datetime.date
) -> Validation:
    """Check ``values`` (as read from a form) against SPEC §4 and normalise them.

    ``lang`` selects the language of the messages and becomes ``EOI.lang``; ``today``
    is the date the form is judged on (injected so that a replay gives the same
    answer). Keys that are not form fields are ignored; a checkbox counts as ticked
    only when its value is ``True``.
    """
    checks: dict[str, _Check] = {**_CHECKS, "date": partial(_check_date, today=today)}
    fields: dict[str, str | int | bool | None] = {}
    problems: list[Problem] = []

    def report(name: str, code: ProblemCode, value: str, **params: object) -> None:
        message = text(
            lang,
            "messages",
            code,
            label=text(lang, "messages", f"label_{name}"),
            value=_quote(value),
            today_iso=today.isoformat(),
            today_dotted=f"{today.day}.{today.month}.{today.year}",
            **params,
        )
        problems.append(Problem(name, code, message))

    for spec in FIELDS:
        name = spec.name
        if spec.kind is Kind.HIDDEN:
            continue
        raw = values.get(name)
        if spec.kind is Kind.CHECKBOX:
            fields[name] = raw is True
            if spec.required and raw is not True:
                report(name, ProblemCode.UNCHECKED, "")
            continue
        cleaned = _clean(raw)
        fields[name] = cleaned
        if cleaned is None:
            if spec.required:
                report(name, ProblemCode.REQUIRED, "")
            continue
        if spec.max_len is not None and len(cleaned) > spec.max_len:
            report(name, ProblemCode.TOO_LONG, cleaned, length=len(cleaned), max_len=spec.max_len)
            continue
        check = checks.get(name)
        if check is None:
            continue
        outcome = check(cleaned)
        if isinstance(outcome, _Fail):
            report(name, outcome.code, cleaned, **outcome.params)
        else:
            fields[name] = outcome

    eoi = None if problems else EOI.from_fields({**fields, "lang": lang.value})
    return Validation(fields=fields, problems=tuple(problems), eoi=eoi)


def _clean(raw: FieldValue) -> str | None:
    """NFC, trimmed text; ``None`` for empty or non-text values (a bool in a text field)."""
    if not isinstance(raw, str):
        return None
    cleaned = unicodedata.normalize("NFC", raw).strip()
    return cleaned or None


def _quote(value: str) -> str:
    """The applicant's text as quoted in a message: one line, cut to a readable length."""
    line = " ".join(value.split())
    return line if len(line) <= _QUOTE_MAX else line[: _QUOTE_MAX - 1] + "…"


# --- the rules, one per field that has more than "required" and "max_len" -------------


def _check_org_type(value: str) -> str | int | _Fail:
    # Export values only (not the display labels, which differ per language); tolerate
    # case and spaces so that a form filled by pdftk or a script with "National network"
    # still reads.
    key = re.sub(r"[\s-]+", "_", value.casefold())
    if key in {member.value for member in OrgType}:
        return key
    return _Fail(ProblemCode.CHOICE)


def _check_country(value: str) -> str | int | _Fail:
    index = _country_index()
    code = index.get(_country_key(value)) or index.get(_strip_accents(_country_key(value)))
    return code if code is not None else _Fail(ProblemCode.COUNTRY)


def _check_website(value: str) -> str | int | _Fail:
    if any(char.isspace() for char in value):
        return _Fail(ProblemCode.URL)
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
        url = value
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])", value):
        # "mailto:…", "javascript:…": a scheme, but not a web one. ("host:8080" is a port.)
        return _Fail(ProblemCode.URL)
    else:
        url = "https://" + value
    parts = urlsplit(url)
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return _Fail(ProblemCode.URL)
    if (
        parts.scheme.lower() not in {"http", "https"}
        or host is None
        or "@" in parts.netloc  # user:password@host is not a public website
        or not _is_host_name(host)
    ):
        return _Fail(ProblemCode.URL)
    return url


_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")


def _is_host_name(host: str) -> bool:
    """True for a dotted DNS name (Unicode labels allowed); IP literals are no website."""
    labels = host.removesuffix(".").split(".")
    return (
        len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def _check_member_count(value: str) -> str | int | _Fail:
    # ASCII digits only: int() would also take "+5", "1_000" and non-Latin digits.
    if re.fullmatch(r"[0-9]+", value) and 1 <= int(value) <= MEMBERS_MAX:
        return int(value)
    return _Fail(ProblemCode.INTEGER, {"max_value": MEMBERS_MAX})


def _check_email(value: str) -> str | int | _Fail:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return _Fail(ProblemCode.EMAIL)


def _check_phone(value: str) -> str | int | _Fail:
    # Only digits and the usual separators: phonenumbers silently drops trailing letters
    # and extensions ("ext. 12"), which E.164 cannot carry.
    if not re.fullmatch(r"(?:\+|00)[0-9\s()./-]+", value):
        return _Fail(ProblemCode.PHONE)
    # Word processors put no-break spaces between digit groups; phonenumbers rejects them.
    spaced = " ".join(value.split())
    international = "+" + spaced[2:] if spaced.startswith("00") else spaced
    try:
        number = phonenumbers.parse(international, None)
    except phonenumbers.NumberParseException:
        return _Fail(ProblemCode.PHONE)
    if not phonenumbers.is_valid_number(number):
        return _Fail(ProblemCode.PHONE)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_services(value: str) -> str | int | _Fail:
    if len(value) < SERVICES_MIN_LEN:
        return _Fail(ProblemCode.TOO_SHORT, {"length": len(value), "min_len": SERVICES_MIN_LEN})
    return value


_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DOTTED_DATE = re.compile(r"([0-9]{1,2})\.([0-9]{1,2})\.([0-9]{4})")  # Finnish style, 5.3.2026 too


def _check_date(value: str, *, today: datetime.date) -> str | int | _Fail:
    if match := _ISO_DATE.fullmatch(value):
        year, month, day = match.groups()
    elif match := _DOTTED_DATE.fullmatch(value):
        day, month, year = match.groups()
    else:
        return _Fail(ProblemCode.DATE)
    try:
        when = datetime.date(int(year), int(month), int(day))
    except ValueError:
        return _Fail(ProblemCode.DATE)
    if when > today:
        return _Fail(ProblemCode.DATE_FUTURE)
    if (today - when).days > DATE_MAX_AGE_DAYS:
        return _Fail(ProblemCode.DATE_STALE, {"max_age_days": DATE_MAX_AGE_DAYS})
    return when.isoformat()


_CHECKS: dict[str, _Check] = {
    "org_type": _check_org_type,
    "country": _check_country,
    "website": _check_website,
    "member_count": _check_member_count,
    "contact_email": _check_email,
    "contact_phone": _check_phone,
    "services": _check_services,
}


# --- country names ----------------------------------------------------------------------

#: Codes the EU itself uses besides ISO 3166-1 (interinstitutional style guide), and
#: English names still in common use after ISO renamed the country.
_COUNTRY_ALIASES = {"EL": "GR", "UK": "GB", "Turkey": "TR"}


def _country_key(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _strip_accents(key: str) -> str:
    decomposed = unicodedata.normalize("NFD", key)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


@cache
def _country_index() -> dict[str, str]:
    """Map every accepted spelling of a country to its alpha-2 code.

    Spellings: alpha-2, alpha-3, the English name, common and official names, and
    their translations into every :class:`Lang` (pycountry's ``iso3166-1`` gettext
    domain), so adding a form language adds its country names. Accent-free variants
    ("Turkiye", "Tsekki") are added where they name only one country.
    """
    exact: dict[str, str] = {}
    loose: dict[str, set[str]] = {}
    translations = [
        gettext.translation(
            "iso3166-1", pycountry.LOCALES_DIR, languages=[lang.value], fallback=True
        )
        for lang in Lang
    ]
    for country in pycountry.countries:
        alpha2: str = country.alpha_2
        names = [country.alpha_2, country.alpha_3]
        for attribute in ("name", "common_name", "official_name"):
            english = getattr(country, attribute, None)
            if english:
                names += [english, *(t.gettext(english) for t in translations)]
        for name in names:
            exact.setdefault(_country_key(name), alpha2)
            loose.setdefault(_strip_accents(_country_key(name)), set()).add(alpha2)
    for alias, alpha2 in _COUNTRY_ALIASES.items():
        exact.setdefault(_country_key(alias), alpha2)
    index = {key: next(iter(codes)) for key, codes in loose.items() if len(codes) == 1}
    index.update(exact)
    return index
