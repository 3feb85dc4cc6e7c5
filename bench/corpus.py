"""Distinct filled EOIs, cheaply: a few filled by pypdf, the rest by a same-length byte edit.

Filling a form with pypdf costs about half a second per file, too slow for 10,000
documents. Each base file is filled once with an ``org_name`` that ends in a six-digit
placeholder; variant ``i`` replaces those digits in the field's ``/V`` string. The
replacement has the same length, so every offset in the cross-reference table stays
right and the result is a valid, distinct EOI (distinct bytes, and a distinct
organisation, so no ``open_application`` finding holds a consent back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from forms.eoi import Lang
from forms.reading import read_eoi
from forms.validation import validate
from tests.eoi_files import filled_eoi, invalid_eoi

PLACEHOLDER = b"000000"
_NAME = "Bench Network {}"
# Countries and languages vary between bases; all are eligible so valid files get consents.
_VARIANTS = (
    (Lang.EN, "GR"),
    (Lang.FI, "FI"),
    (Lang.EN, "PL"),
    (Lang.FI, "SE"),
    (Lang.EN, "BG"),
    (Lang.EN, "DE"),
)
#: One file in this many is invalid (a bad e-mail address and an unticked commitment).
INVALID_EVERY = 10


@dataclass(frozen=True)
class Base:
    """A filled EOI whose ``org_name`` ends in :data:`PLACEHOLDER`."""

    data: bytes
    valid: bool


class Corpus:
    """``doc(i)`` is the i-th distinct EOI; one in :data:`INVALID_EVERY` is invalid."""

    def __init__(self, bases: int = 6) -> None:
        """Fill ``bases`` valid bases (cycling languages and countries) and two invalid ones."""
        logging.getLogger("pypdf").setLevel(logging.ERROR)  # font-encoding warnings per fill
        self.valid = [
            _base(valid=True, lang=_VARIANTS[k % len(_VARIANTS)][0],
                  country=_VARIANTS[k % len(_VARIANTS)][1], tag=k)
            for k in range(bases)
        ]  # fmt: skip
        self.invalid = [_base(valid=False, lang=Lang.EN, country="GR", tag=k) for k in range(2)]

    @staticmethod
    def is_valid(index: int) -> bool:
        """Whether document ``index`` is a valid EOI that gets a consent with review = auto."""
        return index % INVALID_EVERY != INVALID_EVERY - 1

    def doc(self, index: int) -> bytes:
        """Document ``index`` (0 ≤ index < 10⁶), distinct bytes for every index."""
        if not 0 <= index < 10**6:
            raise ValueError("index out of range")
        pool = self.valid if self.is_valid(index) else self.invalid
        base = pool[index % len(pool)]
        return base.data.replace(_marker(PLACEHOLDER), _marker(b"%06d" % index))

    def check(self, indexes: list[int]) -> None:
        """Read back some variants and make sure each is what it claims to be."""
        for index in indexes:
            raw = read_eoi(self.doc(index))
            result = validate(raw.values, lang=raw.lang, today=date.today())
            name = str(raw.values.get("org_name"))
            valid = result.eoi is not None
            if not name.endswith(f"{index:06d}") or valid != self.is_valid(index):
                raise RuntimeError(f"corpus variant {index} reads back wrong: {name!r}")


def _marker(digits: bytes) -> bytes:
    # The /V string of org_name: "(Bench Network Bk 000000)" with the base's tag before it.
    return b" " + digits + b")"


def _base(*, valid: bool, lang: Lang, country: str, tag: int) -> Base:
    name = _NAME.format(f"{'V' if valid else 'X'}{tag:02d} {PLACEHOLDER.decode()}")
    if valid:
        data = filled_eoi(lang, org_name=name, country=country)
    else:
        data = invalid_eoi(org_name=name, country=country)
    if data.count(_marker(PLACEHOLDER)) < 1:
        raise RuntimeError("the placeholder is not stored as a plain string in the filled form")
    return Base(data, valid)
