"""Whichever tool fills the form, and in whichever language, extraction gives the same values."""

from __future__ import annotations

from pathlib import Path

import pytest

from forms.eoi import FIELDS, FORM_ID, Kind, Lang
from forms.reading import read_eoi
from tests.filling import ROUTES, FillRoute, blank_form, fill_pypdf_incremental
from tests.samples import CHECKED, TEXT_VALUES

#: The applicant's answers: every EU script, and one box left unticked.
VALUES: dict[str, str | bool] = {**TEXT_VALUES, **CHECKED, "commit_media": False}


@pytest.fixture(params=list(ROUTES), ids=str)
def route(request: pytest.FixtureRequest) -> FillRoute:
    """Each way of filling the form."""
    return ROUTES[request.param]


@pytest.fixture(params=list(Lang), ids=str)
def lang(request: pytest.FixtureRequest) -> Lang:
    """Each language the blank form exists in."""
    return Lang(request.param)


def test_every_route_reads_back_the_same_values(
    route: FillRoute, lang: Lang, tmp_path: Path
) -> None:
    """Text comes back exactly, ticked boxes True, the unticked box False."""
    raw = read_eoi(route(blank_form(lang), VALUES, tmp_path))
    assert raw.form_id == FORM_ID
    assert raw.lang is lang
    assert raw.unknown_fields == ()
    expected = {
        spec.name: VALUES.get(spec.name, False if spec.kind is Kind.CHECKBOX else None)
        for spec in FIELDS
        if spec.kind is not Kind.HIDDEN
    }
    got = {name: value for name, value in raw.values.items() if name in expected}
    assert got == expected


def test_partly_filled_form_reads_missing_as_empty(route: FillRoute, tmp_path: Path) -> None:
    """Fields the applicant left alone read as None, boxes left alone as False."""
    values: dict[str, str | bool] = {"org_name": "Suomen Kuntaliitto ry", "commit_promote": True}
    raw = read_eoi(route(blank_form(Lang.FI), values, tmp_path))
    for spec in FIELDS:
        if spec.kind is Kind.HIDDEN:
            continue
        default = False if spec.kind is Kind.CHECKBOX else None
        assert raw.values[spec.name] == values.get(spec.name, default), spec.name


def test_incremental_route_keeps_the_blank_as_prefix(tmp_path: Path) -> None:
    """The incremental route appends to the blank form, as Acrobat and pdf.js do."""
    blank = blank_form(Lang.EN)
    filled = fill_pypdf_incremental(blank, VALUES, tmp_path)
    assert filled.startswith(blank)
    assert len(filled) > len(blank)
