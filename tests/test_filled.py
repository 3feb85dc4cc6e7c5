"""The filled EOI the online form makes: read back by the intake's reader, value for value."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from forms.eoi import Lang
from forms.filled import render_filled_eoi
from forms.reading import read_eoi
from tests.samples import CHECKED, TEXT_VALUES


@pytest.mark.parametrize("lang", list(Lang))
def test_filled_values_read_back_exactly(lang: Lang) -> None:
    """Every script, line breaks, ticks and the choice's export value survive; the form's
    language is the one it was made in."""
    values: dict[str, str | bool] = {**TEXT_VALUES, **CHECKED, "commit_media": False}
    pdf = render_filled_eoi(values, lang)
    raw = read_eoi(pdf)
    assert raw.lang is lang
    assert {name: raw.values.get(name) for name in values} == values
    fields = PdfReader(io.BytesIO(pdf)).get_fields() or {}
    assert fields["org_type"].get("/V") == "national_network"


def test_unknown_names_and_hidden_fields_are_ignored() -> None:
    """A posted name that is no field, or the hidden form_id, does not reach the file."""
    pdf = render_filled_eoi({"org_name": "X", "nonsense": "y", "form_id": "other/9"})
    raw = read_eoi(pdf)
    assert raw.values.get("org_name") == "X" and "nonsense" not in raw.values
