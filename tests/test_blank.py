"""The blank EOI form: its fields, flags, texts, and that typed EU scripts are visible."""

from __future__ import annotations

import io
import subprocess
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
from pypdf import PdfReader

from forms.blank import FIELD_FONT, render_blank_eoi
from forms.eoi import FIELDS, FIELDS_BY_NAME, FORM_ID, Kind, Lang, OrgType
from forms.texts import text
from tests.conftest import need_tool
from tests.filling import blank_form, fill_pypdf
from tests.samples import TEXT_VALUES

# Field flag bits (ISO 32000-1, tables 221, 226, 228, 230) and the annotation hidden flag.
READ_ONLY, REQUIRED, MULTILINE, COMBO = 1 << 0, 1 << 1, 1 << 12, 1 << 17
HIDDEN_ANNOTATION = 1 << 1
TEXTS_DIR = Path(__file__).resolve().parent.parent / "forms" / "texts"


@pytest.fixture(params=list(Lang), ids=str)
def lang(request: pytest.FixtureRequest) -> Lang:
    """Each language the form exists in."""
    return Lang(request.param)


def acro_form_of(pdf: bytes) -> Any:
    """The /AcroForm dictionary (typed Any: pypdf's objects are untyped PdfObjects)."""
    return cast(Any, PdfReader(io.BytesIO(pdf)).trailer["/Root"])["/AcroForm"]


def fields_of(pdf: bytes) -> dict[str, Any]:
    """The form's field dictionaries by name (every field is a merged field/widget)."""
    acro_form = acro_form_of(pdf)
    return {str(ref.get_object()["/T"]): ref.get_object() for ref in acro_form["/Fields"]}


def page_text(pdf: bytes, tmp_path: Path) -> str:
    """The page text as poppler's pdftotext extracts it (what a printout would show)."""
    source = tmp_path / "form.pdf"
    source.write_bytes(pdf)
    result = subprocess.run(
        [need_tool("pdftotext"), "-layout", str(source), "-"],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def test_fields_are_exactly_the_contract(lang: Lang) -> None:
    """The form has one field per FIELDS entry, with those names, and nothing else."""
    acro_form = acro_form_of(blank_form(lang))
    names = [str(ref.get_object()["/T"]) for ref in acro_form["/Fields"]]
    assert sorted(names) == sorted(spec.name for spec in FIELDS)
    assert "/XFA" not in acro_form


def test_field_types_and_flags(lang: Lang) -> None:
    """Each field's type and flags follow its kind and whether it is required."""
    expected_type = {
        Kind.HIDDEN: "/Tx",
        Kind.TEXT: "/Tx",
        Kind.MULTILINE: "/Tx",
        Kind.CHOICE: "/Ch",
        Kind.CHECKBOX: "/Btn",
    }
    for name, field in fields_of(blank_form(lang)).items():
        spec = FIELDS_BY_NAME[name]
        flags = int(field.get("/Ff", 0))
        assert field["/FT"] == expected_type[spec.kind], name
        assert bool(flags & MULTILINE) == (spec.kind is Kind.MULTILINE), name
        assert bool(flags & COMBO) == (spec.kind is Kind.CHOICE), name
        assert bool(flags & READ_ONLY) == (spec.kind is Kind.HIDDEN), name
        assert bool(flags & REQUIRED) == (spec.required and spec.kind is not Kind.HIDDEN), name


def test_free_text_fields_have_no_max_len(lang: Lang) -> None:
    """No text field carries /MaxLen: viewers would silently cut long values."""
    for name, field in fields_of(blank_form(lang)).items():
        assert "/MaxLen" not in field, name


def test_hidden_fields_identify_form_and_language(lang: Lang) -> None:
    """form_id holds FORM_ID and form_lang the language, both hidden and read-only."""
    fields = fields_of(blank_form(lang))
    assert fields["form_id"]["/V"] == FORM_ID
    assert fields["form_lang"]["/V"] == lang.value
    for name in ("form_id", "form_lang"):
        assert int(fields[name]["/F"]) & HIDDEN_ANNOTATION, name


def test_no_field_is_prefilled(lang: Lang) -> None:
    """Apart from the hidden fields, every field starts empty and every box unticked."""
    for name, field in fields_of(blank_form(lang)).items():
        kind = FIELDS_BY_NAME[name].kind
        if kind is Kind.CHECKBOX:
            assert field["/V"] == "/Off", name
            assert field["/AS"] == "/Off", name
        elif kind is not Kind.HIDDEN:
            assert field.get("/V", "") == "", name


def test_org_type_offers_labels_with_export_values(lang: Lang) -> None:
    """org_type lists (export value, label) pairs: OrgType values, labels in the form's language."""
    options = fields_of(blank_form(lang))["org_type"]["/Opt"]
    assert [str(export) for export, _label in options] == [v.value for v in OrgType]
    assert [str(label) for _export, label in options] == [
        text(lang, "form", f"org_type_{v.value}") for v in OrgType
    ]


def test_text_fields_use_the_embedded_unicode_font(lang: Lang) -> None:
    """Every text and choice field's /DA names the embedded DejaVu Type0 font in /DR."""
    acro_form = acro_form_of(blank_form(lang))
    font = acro_form["/DR"]["/Font"][FIELD_FONT]
    assert font["/Subtype"] == "/Type0"
    assert font["/Encoding"] == "/Identity-H"
    assert "/ToUnicode" in font
    descendant = font["/DescendantFonts"][0].get_object()
    assert descendant["/FontDescriptor"]["/FontFile2"].get_data()[:4] == b"\x00\x01\x00\x00"
    for name, field in fields_of(blank_form(lang)).items():
        if field["/FT"] in ("/Tx", "/Ch"):
            assert str(field["/DA"]).startswith(f"{FIELD_FONT} "), name


def test_same_language_gives_same_bytes() -> None:
    """Rendering twice gives byte-identical files (the form's hash is stable)."""
    assert render_blank_eoi(Lang.FI) == render_blank_eoi(Lang.FI)


def test_form_id_is_printed_on_every_page(tmp_path: Path) -> None:
    """The form id and version are page text, so even a printout identifies the form."""
    pages = page_text(blank_form(Lang.EN), tmp_path).split("\f")
    printed = [page for page in pages if page.strip()]
    assert len(printed) == 2
    assert all(FORM_ID in page and "version 1" in page for page in printed)


def test_finnish_labels_differ_from_english(tmp_path: Path) -> None:
    """The fi form prints Finnish labels and tooltips, not the English ones."""
    english = page_text(blank_form(Lang.EN), tmp_path)
    finnish = page_text(blank_form(Lang.FI), tmp_path)
    assert "Name of the organisation" in english
    assert "Organisaation nimi" in finnish
    assert "Name of the organisation" not in finnish
    assert FORM_ID in finnish
    en_tips = {n: str(f.get("/TU")) for n, f in fields_of(blank_form(Lang.EN)).items()}
    fi_tips = {n: str(f.get("/TU")) for n, f in fields_of(blank_form(Lang.FI)).items()}
    assert en_tips["org_name"] != fi_tips["org_name"]


def test_catalogues_have_the_same_keys() -> None:
    """Both form catalogues define every key, and a label for every visible field."""
    keys = {
        lang: set(tomllib.loads((TEXTS_DIR / lang.value / "form.toml").read_text("utf-8")))
        for lang in Lang
    }
    assert keys[Lang.EN] == keys[Lang.FI]
    visible = {spec.name for spec in FIELDS if spec.kind is not Kind.HIDDEN}
    assert visible <= keys[Lang.EN]


def render_gray(pdf: bytes, page: int, tmp_path: Path) -> tuple[int, int, bytes]:
    """Render one page (1-based) at 72 dpi, so 1 px = 1 pt, as 8-bit gray: width, height, pixels."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "render.pdf"
    source.write_bytes(pdf)
    prefix = tmp_path / f"page{page}"
    subprocess.run(
        [
            need_tool("pdftoppm"),
            "-r",
            "72",
            "-f",
            str(page),
            "-l",
            str(page),
            "-gray",
            "-singlefile",
            str(source),
            str(prefix),
        ],
        check=True,
        capture_output=True,
    )
    data = prefix.with_suffix(".pgm").read_bytes()
    magic, width, height, maxval, pixels = data.split(maxsplit=4)
    assert magic == b"P5" and maxval == b"255"
    return int(width), int(height), pixels[: int(width) * int(height)]


def ink_in(image: tuple[int, int, bytes], rect: list[float]) -> int:
    """Count dark pixels inside a field rectangle (PDF points), 3 pt in from its border."""
    width, height, pixels = image
    x0, y0, x1, y1 = (round(float(v)) for v in rect)
    return sum(
        1
        for row in range(height - y1 + 3, height - y0 - 3)
        for col in range(x0 + 3, x1 - 3)
        if pixels[row * width + col] < 128
    )


def test_greek_cyrillic_polish_values_are_drawn(tmp_path: Path) -> None:
    """Filled with EU scripts, every text field's appearance uses DejaVu and shows ink."""
    values: dict[str, str | bool] = {k: v for k, v in TEXT_VALUES.items() if k != "org_type"}
    blank = blank_form(Lang.EN)
    filled = fill_pypdf(blank, values, tmp_path)
    drawn = []
    for number, page in enumerate(PdfReader(io.BytesIO(filled)).pages, start=1):
        before = render_gray(blank, number, tmp_path / "blank")
        after = render_gray(filled, number, tmp_path / "filled")
        for ref in cast(Any, page)["/Annots"]:
            widget = ref.get_object()
            name = str(widget.get("/T"))
            if name not in values:
                continue
            # Helvetica (pypdf's fallback) would have drawn Greek and Cyrillic as "?".
            appearance = widget["/AP"]["/N"]
            fonts = appearance["/Resources"]["/Font"]
            used = [key for key in fonts if f"{key} ".encode() in appearance.get_data()]
            assert used, name
            assert all(fonts[key]["/BaseFont"] == "/DejaVuSans" for key in used), name
            assert ink_in(before, widget["/Rect"]) == 0, name
            assert ink_in(after, widget["/Rect"]) > 20, name
            drawn.append(name)
    assert sorted(drawn) == sorted(values)
