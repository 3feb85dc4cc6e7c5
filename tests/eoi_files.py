"""Filled EOI PDFs for engine tests: valid, invalid, broken — real files filled by pypdf."""

from __future__ import annotations

import io
from datetime import date

from pypdf import PdfWriter

from forms.eoi import Lang
from tests.filling import Values, _pypdf_fill, blank_form
from tests.samples import CHECKED, TEXT_VALUES


def valid_values(**overrides: str | bool) -> Values:
    """A complete, valid, eligible EOI's values (today's date), with overrides."""
    values: Values = {**TEXT_VALUES, **CHECKED, "date": date.today().isoformat()}
    values.update(overrides)
    return values


def filled_eoi(lang: Lang = Lang.EN, **overrides: str | bool) -> bytes:
    """A filled EOI PDF; distinct ``org_name`` overrides give distinct bytes."""
    writer = PdfWriter(clone_from=io.BytesIO(blank_form(lang)))
    _pypdf_fill(writer, valid_values(**overrides))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def invalid_eoi(**overrides: str | bool) -> bytes:
    """A filled EOI with problems: a bad e-mail address and an unticked commitment."""
    values: dict[str, str | bool] = {"contact_email": "not an address", "commit_media": False}
    return filled_eoi(Lang.EN, **(values | overrides))


def broken_pdf(data: bytes) -> bytes:
    """A PDF cut in half with its trailer put back: complete-looking but damaged."""
    return data[: len(data) // 2] + b"\n%%EOF\n"
