"""Field extraction: our form, each quirk of real fillers, and real-world corpus files."""

from __future__ import annotations

import codecs
import io
import logging
import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from forms.eoi import FIELDS, FORM_ID, Kind, Lang
from forms.errors import UnusableCode, UnusableDocument
from forms.reading import RawForm, read_eoi, read_fields
from tests.conftest import need_tool
from tests.filling import blank_form, fill_pypdf, fill_pypdf_incremental
from tests.samples import CHECKED, TEXT_VALUES

VALUES: dict[str, str | bool] = {**TEXT_VALUES, **CHECKED}
Fields = dict[str, DictionaryObject]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Our English form, every field filled (pypdf full rewrite)."""
    return fill_pypdf(blank_form(Lang.EN), VALUES, tmp_path_factory.mktemp("filled"))


def _write(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _dict(obj: object) -> DictionaryObject:
    assert isinstance(obj, DictionaryObject)
    return obj


def _array(obj: object) -> ArrayObject:
    assert isinstance(obj, ArrayObject)
    return obj


def acro_form(writer: PdfWriter) -> DictionaryObject:
    """The writer's /AcroForm dictionary."""
    return _dict(writer.root_object["/AcroForm"])


def field_list(writer: PdfWriter) -> ArrayObject:
    """The writer's /AcroForm /Fields array."""
    return _array(acro_form(writer)["/Fields"])


def _fields(writer: PdfWriter) -> Fields:
    return {
        str(_dict(ref.get_object())["/T"]): _dict(ref.get_object()) for ref in field_list(writer)
    }


def edit(data: bytes, change: Callable[[PdfWriter, Fields], object]) -> bytes:
    """Rewrite ``data`` after ``change`` altered its objects (our form's fields by name)."""
    writer = PdfWriter(clone_from=io.BytesIO(data))
    change(writer, _fields(writer))
    return _write(writer)


def code_of(data: bytes, **options: int) -> UnusableCode:
    """The code read_eoi refuses ``data`` with."""
    with pytest.raises(UnusableDocument) as refused:
        read_eoi(data, **options)
    return refused.value.code


def set_value(name: str, value: object) -> Callable[[PdfWriter, Fields], None]:
    """A change that stores ``value`` as field ``name``'s /V."""

    def change(writer: PdfWriter, fields: Fields) -> None:
        fields[name][NameObject("/V")] = value

    return change


# --- the envelope: size, header ------------------------------------------------------------


def test_size_is_checked_before_anything_else() -> None:
    """An oversized file is too_large even when it is not a PDF at all."""
    assert code_of(b"no pdf here " * 10, max_bytes=100) is UnusableCode.TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [b"", b"Hello, here is our form.\n", b"\x00" * 1024 + b"%PDF-1.7\n%%EOF\n", b"%PDF 1.7\n"],
    ids=["empty", "text", "header-after-1024-bytes", "no-dash"],
)
def test_not_a_pdf(data: bytes) -> None:
    """No %PDF- header in the first 1024 bytes: not_pdf."""
    assert code_of(data) is UnusableCode.NOT_PDF


def test_junk_before_the_header_is_tolerated(filled: bytes) -> None:
    """Readers accept a header preceded by junk (mail gateways add some); so do we."""
    assert read_eoi(b"X-Junk: 1\r\n" + filled).values["org_name"] == TEXT_VALUES["org_name"]


def test_garbage_after_the_header_is_damaged() -> None:
    """A PDF header over garbage is damaged, with pypdf's reason kept in the detail."""
    with pytest.raises(UnusableDocument) as refused:
        read_eoi(b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n")
    assert refused.value.code is UnusableCode.DAMAGED
    assert "strict:" in refused.value.detail


# --- our form -----------------------------------------------------------------------------


@pytest.mark.parametrize("lang", list(Lang), ids=str)
def test_blank_form_reads_as_empty(lang: Lang) -> None:
    """The blank form: form_id and language set, every text None, every box False."""
    raw = read_eoi(blank_form(lang))
    assert raw == RawForm(
        form_id=FORM_ID,
        lang=lang,
        values={
            spec.name: {"form_id": FORM_ID, "form_lang": lang.value}.get(
                spec.name, False if spec.kind is Kind.CHECKBOX else None
            )
            for spec in FIELDS
        },
        unknown_fields=(),
    )


def test_filled_form_reads_every_value(filled: bytes) -> None:
    """Every value comes back exactly as typed, Greek, Cyrillic and Polish included."""
    raw = read_eoi(filled)
    assert {name: raw.values[name] for name in VALUES} == VALUES


@pytest.mark.parametrize("form_id", ["consentflow/eoi/2", "consentflow/eoi/0", "something/else"])
def test_other_version_is_wrong_form(filled: bytes, form_id: str) -> None:
    """Another form_id is another form (or version): wrong_form, naming what was found."""
    with pytest.raises(UnusableDocument) as refused:
        read_eoi(edit(filled, set_value("form_id", TextStringObject(form_id))))
    assert refused.value.code is UnusableCode.WRONG_FORM
    assert form_id in refused.value.detail


def test_form_without_form_id_is_wrong_form(filled: bytes) -> None:
    """Fields but no form_id at all: wrong_form."""

    def rename(writer: PdfWriter, fields: Fields) -> None:
        fields["form_id"][NameObject("/T")] = TextStringObject("legacy_id")

    assert code_of(edit(filled, rename)) is UnusableCode.WRONG_FORM


@pytest.mark.parametrize(
    ("stored", "lang"),
    [("fi", Lang.FI), (" FI ", Lang.FI), ("en", Lang.EN), ("xx", Lang.EN), ("", Lang.EN)],
)
def test_language_from_form_lang(filled: bytes, stored: str, lang: Lang) -> None:
    """form_lang names the language; unknown or empty falls back to English."""
    assert read_eoi(edit(filled, set_value("form_lang", TextStringObject(stored)))).lang is lang


def test_missing_fields_read_as_empty(filled: bytes) -> None:
    """A text field absent from the file is None, an absent checkbox False."""

    def drop(writer: PdfWriter, fields: Fields) -> None:
        for name in ("org_name", "commit_media"):
            widget = fields[name]
            fields_array = field_list(writer)
            fields_array.remove(widget.indirect_reference)
            _array(_dict(widget["/P"])["/Annots"]).remove(widget.indirect_reference)

    raw = read_eoi(edit(filled, drop))
    assert raw.values["org_name"] is None
    assert raw.values["commit_media"] is False
    assert raw.values["org_acronym"] == TEXT_VALUES["org_acronym"]


def test_unknown_fields_are_listed_sorted_and_fully_qualified(filled: bytes) -> None:
    """Fields that are not ours are named by their full dotted name, sorted."""

    def add(writer: PdfWriter, fields: Fields) -> None:
        parent = DictionaryObject({NameObject("/T"): TextStringObject("zeta")})
        kid = DictionaryObject(
            {
                NameObject("/T"): TextStringObject("note"),
                NameObject("/FT"): NameObject("/Tx"),
                NameObject("/V"): TextStringObject("hello"),
                NameObject("/Parent"): writer._add_object(parent),
            }
        )
        parent[NameObject("/Kids")] = ArrayObject([writer._add_object(kid)])
        extra = DictionaryObject(
            {NameObject("/T"): TextStringObject("alpha"), NameObject("/FT"): NameObject("/Tx")}
        )
        fields_array = field_list(writer)
        fields_array.extend([kid["/Parent"], writer._add_object(extra)])

    raw = read_eoi(edit(filled, add))
    assert raw.unknown_fields == ("alpha", "zeta.note")
    assert read_fields(edit(filled, add))["zeta.note"].value == "hello"


# --- checkboxes ---------------------------------------------------------------------------


def _box(
    v: str | None, shown: str | None, *, states: tuple[str, ...]
) -> Callable[[PdfWriter, Fields], None]:
    """A change giving commit_promote the /V and /AS given (None: key absent) and /AP states."""

    def change(writer: PdfWriter, fields: Fields) -> None:
        box = fields["commit_promote"]
        appearances = _dict(box["/AP"])
        appearance = next(iter(_dict(appearances["/N"]).values()))
        appearances[NameObject("/N")] = DictionaryObject(
            {NameObject(state): appearance for state in states}
        )
        for key, value in (("/V", v), ("/AS", shown)):
            if value is None:
                box.pop(key, None)
            else:
                box[NameObject(key)] = NameObject(value)

    return change


@pytest.mark.parametrize(
    ("v", "shown", "states", "ticked"),
    [
        ("/Yes", "/Yes", ("/Yes", "/Off"), True),
        ("/Off", "/Off", ("/Yes", "/Off"), False),
        # Arbitrary on-state names (LibreOffice /1, mPDF /privacy, Spanish /Sí).
        ("/Ja", "/Ja", ("/Ja", "/Off"), True),
        ("/S#c3#ad", "/S#c3#ad", ("/S#c3#ad", "/Off"), True),
        # /V and /AS disagree: set in either counts (pdf.js renders /V, PDFium /AS).
        ("/Yes", "/Off", ("/Yes", "/Off"), True),
        ("/Off", "/Yes", ("/Yes", "/Off"), True),
        (None, "/Yes", ("/Yes", "/Off"), True),
        ("/Yes", None, ("/Yes", "/Off"), True),
        # A state with no appearance is not a state the box can be in.
        ("/On", "/Off", ("/Yes", "/Off"), False),
        ("/Off", "/Bogus", ("/Yes", "/Off"), False),
        (None, None, ("/Yes", "/Off"), False),
    ],
)
def test_checkbox_states(
    filled: bytes, v: str | None, shown: str | None, states: tuple[str, ...], ticked: bool
) -> None:
    """Ticked when /V or /AS is an on-state the widget has an appearance for."""
    assert read_eoi(edit(filled, _box(v, shown, states=states))).values["commit_promote"] is ticked


@pytest.mark.parametrize(("v", "ticked"), [("/Yes", True), ("/Off", False)])
def test_checkbox_without_appearances(filled: bytes, v: str, ticked: bool) -> None:
    """With no /AP at all (pdf.js checkbox_no_appearance.pdf), any name but /Off ticks."""

    def change(writer: PdfWriter, fields: Fields) -> None:
        box = fields["commit_promote"]
        del box["/AP"]
        box[NameObject("/V")] = box[NameObject("/AS")] = NameObject(v)

    assert read_eoi(edit(filled, change)).values["commit_promote"] is ticked


def test_text_field_with_a_checkbox_name_is_not_ticked(filled: bytes) -> None:
    """A text field carrying a checkbox's name (another form's layout) never ticks it."""

    def change(writer: PdfWriter, fields: Fields) -> None:
        box = fields["commit_feedback"]
        box[NameObject("/FT")] = NameObject("/Tx")
        box[NameObject("/V")] = TextStringObject("Yes")

    assert read_eoi(edit(filled, change)).values["commit_feedback"] is False


def _radio(writer: PdfWriter, page_index: int, *, kid_b_in_kids: bool) -> None:
    """A radio group ``choice`` as macOS Preview leaves it after clicking option b.

    Preview rewrites the clicked kid with its own /T, /FT and /V, drops its /Parent,
    and leaves the parent's /V on the previous option a.
    """
    page = writer.pages[page_index]

    def widget(state: str, shown: str) -> DictionaryObject:
        return DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Widget"),
                NameObject("/Rect"): ArrayObject([NumberObject(n) for n in (0, 0, 10, 10)]),
                NameObject("/AP"): DictionaryObject(
                    {
                        NameObject("/N"): DictionaryObject(
                            {
                                NameObject(state): DecodedStreamObject(),
                                NameObject("/Off"): DecodedStreamObject(),
                            }
                        )
                    }
                ),
                NameObject("/AS"): NameObject(shown),
            }
        )

    group = DictionaryObject(
        {
            NameObject("/T"): TextStringObject("choice"),
            NameObject("/FT"): NameObject("/Btn"),
            NameObject("/Ff"): NumberObject(1 << 15),
            NameObject("/V"): NameObject("/a"),
        }
    )
    group_ref = writer._add_object(group)
    kid_a = widget("/a", "/Off")
    kid_a[NameObject("/Parent")] = group_ref
    kid_b = widget("/b", "/b")
    kid_b[NameObject("/T")] = TextStringObject("choice")
    kid_b[NameObject("/FT")] = NameObject("/Btn")
    kid_b[NameObject("/V")] = NameObject("/b")
    kid_refs = [writer._add_object(kid_a), writer._add_object(kid_b)]
    group[NameObject("/Kids")] = ArrayObject(kid_refs if kid_b_in_kids else kid_refs[:1])
    field_list(writer).append(group_ref)
    page[NameObject("/Annots")] = ArrayObject([*_array(page["/Annots"]), *kid_refs])


@pytest.mark.parametrize("kid_b_in_kids", [True, False], ids=["kid-kept", "kid-orphaned"])
def test_radio_value_follows_the_widgets_when_v_is_stale(
    filled: bytes, kid_b_in_kids: bool
) -> None:
    """The option the widgets show wins over the parent's stale /V (the Preview bug)."""
    data = edit(filled, lambda writer, fields: _radio(writer, 0, kid_b_in_kids=kid_b_in_kids))
    field = read_fields(data)["choice"]
    assert field.button
    assert field.value == "b"


# --- strings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (codecs.BOM_UTF16_BE + "Ελληνικό Δίκτυο".encode("utf-16-be"), "Ελληνικό Δίκτυο"),
        (codecs.BOM_UTF16_LE + "Съюз".encode("utf-16-le"), "Съюз"),
        (codecs.BOM_UTF8 + "Łódź".encode(), "Łódź"),
        # PDFDocEncoding: 0x84 em dash, 0xA0 euro sign, 0xE9 é (not Latin-1 in 0x80-0xA0).
        (b"Caf\xe9 \x84 10 \xa0", "Café — 10 €"),
        # Raw UTF-8 without a BOM (non-conforming producers) is recognised, not mojibake.
        ("Zürich, Čačak".encode(), "Zürich, Čačak"),
        (b"line one\r\nline two\rline three\n", "line one\nline two\nline three"),
        (b"  padded \t", "padded"),
        (
            codecs.BOM_UTF16_BE + unicodedata.normalize("NFD", "Åbo Łódź").encode("utf-16-be"),
            "Åbo Łódź",
        ),
        (b"   ", None),
        (b"", None),
    ],
    ids=[
        "utf16be",
        "utf16le",
        "utf8-bom",
        "pdfdoc",
        "utf8-raw",
        "newlines",
        "trim",
        "nfc",
        "blank",
        "empty",
    ],
)
def test_text_encodings_and_normalisation(
    filled: bytes, stored: bytes, expected: str | None
) -> None:
    """Every encoding producers use decodes to the same NFC, trimmed, \\n-separated text."""
    raw = read_eoi(edit(filled, set_value("services", ByteStringObject(stored))))
    assert raw.values["services"] == expected


def test_value_as_text_stream(filled: bytes) -> None:
    """A /V given as a text stream (allowed by the PDF spec) is decoded like a string."""

    def change(writer: PdfWriter, fields: Fields) -> None:
        stream = DecodedStreamObject()
        stream.set_data(codecs.BOM_UTF16_BE + "Αθήνα\r\nПловдив".encode("utf-16-be"))
        fields["services"][NameObject("/V")] = writer._add_object(stream)

    assert read_eoi(edit(filled, change)).values["services"] == "Αθήνα\nПловдив"


# --- where the value lives ----------------------------------------------------------------


def test_value_on_the_widget_kid_instead_of_the_field(filled: bytes) -> None:
    """A tool that writes /V on the widget kid (not the parent field) is still read."""

    def split(writer: PdfWriter, fields: Fields) -> None:
        widget = fields["org_name"]
        parent = DictionaryObject(
            {NameObject(k): widget[k] for k in ("/T", "/FT", "/Ff", "/DA") if k in widget}
        )
        parent_ref = writer._add_object(parent)
        del widget["/T"]
        widget[NameObject("/V")] = TextStringObject("Kuntaliitto ry")
        widget[NameObject("/Parent")] = parent_ref
        parent[NameObject("/Kids")] = ArrayObject([widget.indirect_reference])
        fields_array = field_list(writer)
        fields_array[fields_array.index(widget.indirect_reference)] = parent_ref

    assert read_eoi(edit(filled, split)).values["org_name"] == "Kuntaliitto ry"


def test_value_inherited_from_an_ancestor(filled: bytes) -> None:
    """/V (and /FT) inherit: a value two levels up reaches the named field below it."""

    def nest(writer: PdfWriter, fields: Fields) -> None:
        widget = fields["place"]
        top = DictionaryObject(
            {NameObject("/FT"): NameObject("/Tx"), NameObject("/V"): TextStringObject("Tampere")}
        )
        widget[NameObject("/Parent")] = writer._add_object(top)
        del widget["/V"]
        del widget["/FT"]
        top[NameObject("/Kids")] = ArrayObject([widget.indirect_reference])

    # The untitled ancestor adds no name part, so the field is still called "place".
    assert read_eoi(edit(filled, nest)).values["place"] == "Tampere"


def test_orphan_widget_missing_from_fields(filled: bytes) -> None:
    """A widget on the page but missing from /AcroForm /Fields is still read."""

    def orphan(writer: PdfWriter, fields: Fields) -> None:
        fields_array = field_list(writer)
        fields_array.remove(fields["contact_email"].indirect_reference)
        fields_array.remove(fields["consent_privacy"].indirect_reference)

    raw = read_eoi(edit(filled, orphan))
    assert raw.values["contact_email"] == TEXT_VALUES["contact_email"]
    assert raw.values["consent_privacy"] is True


def test_fields_that_is_not_an_array(filled: bytes) -> None:
    """A broken /Fields (qpdf form-bad-fields-array.pdf) falls back to the page widgets."""

    def break_fields(writer: PdfWriter, fields: Fields) -> None:
        acro_form(writer)[NameObject("/Fields")] = NameObject("/potato")

    raw = read_eoi(edit(filled, break_fields))
    assert {name: raw.values[name] for name in VALUES} == VALUES


def test_incremental_updates_the_last_revision_wins(filled: bytes, tmp_path: Path) -> None:
    """Two incremental saves in a row: the newest value is read, the old bytes stay a prefix."""
    first = fill_pypdf_incremental(blank_form(Lang.EN), VALUES, tmp_path)
    second = fill_pypdf_incremental(first, {"org_name": "Suomen Kuntaliitto ry"}, tmp_path)
    assert second.startswith(first)
    assert second.count(b"%%EOF") == 3
    # pypdf's second incremental save reuses the first one's xref-stream object number.
    # pypdf in strict mode then stops reading the xref chain and finds the other objects
    # by their first occurrence, in the blank form. Only a lenient re-read gets them right.
    raw = read_eoi(second)
    assert raw.values["org_name"] == "Suomen Kuntaliitto ry"
    assert raw.values["contact_name"] == TEXT_VALUES["contact_name"]
    assert raw.values["commit_promote"] is True


def test_choice_label_is_mapped_to_its_export_value(filled: bytes) -> None:
    """A tool that stores the display label in /V gives the export value back."""
    label = TextStringObject("Regional network of local authorities")
    assert read_eoi(edit(filled, set_value("org_type", label))).values["org_type"] == (
        "regional_network"
    )


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["european_network"], "european_network"),
        (["company", "other"], "company\nother"),
        ([], None),
    ],
)
def test_choice_value_as_an_array(filled: bytes, items: list[str], expected: str | None) -> None:
    """A multi-select /V array gives its items, one per line (validation rejects several)."""
    value = ArrayObject([TextStringObject(item) for item in items])
    assert read_eoi(edit(filled, set_value("org_type", value))).values["org_type"] == expected


def test_cycles_end(filled: bytes) -> None:
    """A /Parent loop, a /Kids loop and a self-containing /V array end without crashing."""

    def loop(writer: PdfWriter, fields: Fields) -> None:
        widget = fields["languages"]
        widget[NameObject("/Parent")] = widget.indirect_reference
        top = fields["member_count"]
        top[NameObject("/Kids")] = ArrayObject([top.indirect_reference])
        array = ArrayObject([TextStringObject("company")])
        array_ref = writer._add_object(array)
        array.append(array_ref)
        fields["org_type"][NameObject("/V")] = array_ref

    raw = read_eoi(edit(filled, loop))
    assert raw.values["member_count"] == TEXT_VALUES["member_count"]
    assert raw.values["org_type"] == "company"


def test_reading_leaves_pypdf_logging_as_it_was(filled: bytes) -> None:
    """The repair log is attached to pypdf's logger only while a file is read."""
    handlers = list(logging.getLogger("pypdf").handlers)
    read_eoi(filled)
    code_of(b"%PDF-1.7\n" + bytes(500) + b"\n%%EOF\n")
    assert logging.getLogger("pypdf").handlers == handlers


def test_strict_failure_falls_back_to_lenient_parsing(filled: bytes) -> None:
    """A wrong startxref offset (common in hand-edited files) is recovered leniently."""
    head, _, tail = filled.rpartition(b"startxref\n")
    broken = head + b"startxref\n" + b"123" + tail[tail.index(b"\n") :]
    assert read_eoi(broken).values["org_name"] == TEXT_VALUES["org_name"]


# --- encryption, XFA, no fields -----------------------------------------------------------


def _encrypt(data: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=user_password, owner_password="owner-only", algorithm="AES-256")
    return _write(writer)


def test_empty_user_password_is_read(filled: bytes) -> None:
    """Encrypted with an empty user password (opens without asking anywhere): read normally."""
    raw = read_eoi(_encrypt(filled, ""))
    assert {name: raw.values[name] for name in VALUES} == VALUES


def test_password_protected_is_encrypted(filled: bytes) -> None:
    """A file that needs a password is encrypted."""
    assert code_of(_encrypt(filled, "s3cret")) is UnusableCode.ENCRYPTED


def _add_xfa(*, needs_rendering: bool, drop_fields: bool) -> Callable[[PdfWriter, Fields], None]:
    def change(writer: PdfWriter, fields: Fields) -> None:
        form = acro_form(writer)
        packet = DecodedStreamObject()
        packet.set_data(b"<xdp:xdp xmlns:xdp='http://ns.adobe.com/xdp/'/>")
        form[NameObject("/XFA")] = writer._add_object(packet)
        if needs_rendering:
            writer.root_object[NameObject("/NeedsRendering")] = BooleanObject(True)
        if drop_fields:
            form[NameObject("/Fields")] = ArrayObject()
            for page in writer.pages:
                page[NameObject("/Annots")] = ArrayObject()

    return change


@pytest.mark.parametrize(
    ("needs_rendering", "drop_fields"), [(True, False), (False, True)], ids=["dynamic", "no-fields"]
)
def test_xfa_forms(filled: bytes, needs_rendering: bool, drop_fields: bool) -> None:
    """Dynamic XFA, or XFA with no AcroForm fields to read: xfa."""
    data = edit(filled, _add_xfa(needs_rendering=needs_rendering, drop_fields=drop_fields))
    assert code_of(data) is UnusableCode.XFA


def test_static_xfa_with_our_fields_is_read(filled: bytes) -> None:
    """A hybrid form whose AcroForm fields are complete is read from those fields."""
    data = edit(filled, _add_xfa(needs_rendering=False, drop_fields=False))
    assert read_eoi(data).values["org_name"] == TEXT_VALUES["org_name"]


def test_acroform_without_fields_is_no_fields(filled: bytes) -> None:
    """An /AcroForm with no fields and pages with no widgets: no_fields."""

    def strip(writer: PdfWriter, fields: Fields) -> None:
        acro_form(writer)[NameObject("/Fields")] = ArrayObject()
        for page in writer.pages:
            del page["/Annots"]

    assert code_of(edit(filled, strip)) is UnusableCode.NO_FIELDS


def test_pdftk_flattened_copy_has_no_fields(filled: bytes, tmp_path: Path) -> None:
    """pdftk ``flatten`` bakes the values into the page: no_fields."""
    pdftk = need_tool("pdftk")
    source, target = tmp_path / "filled.pdf", tmp_path / "flat.pdf"
    source.write_bytes(filled)
    subprocess.run([pdftk, str(source), "output", str(target), "flatten"], check=True)
    assert code_of(target.read_bytes()) is UnusableCode.NO_FIELDS


def test_printed_to_pdf_copy_has_no_fields(filled: bytes, tmp_path: Path) -> None:
    """'Print to PDF' (cairo, as pdftocairo -pdf does) keeps only the drawing: no_fields."""
    pdftocairo = need_tool("pdftocairo")
    source, target = tmp_path / "filled.pdf", tmp_path / "printed.pdf"
    source.write_bytes(filled)
    subprocess.run([pdftocairo, "-pdf", str(source), str(target)], check=True)
    assert code_of(target.read_bytes()) is UnusableCode.NO_FIELDS


# --- real-world files (../shared/corpus/forms) ----------------------------------------------


CORPUS_CODES = {
    "boxes-flattened.pdf": UnusableCode.NO_FIELDS,
    "xfa_issue14315.pdf": UnusableCode.XFA,
    **{
        name: UnusableCode.WRONG_FORM
        for name in (
            "button-set-broken.pdf",
            "checkbox-bad-appearance.pdf",
            "checkbox_no_appearance.pdf",
            "field-parse-errors.pdf",
            "form-bad-fields-array.pdf",
            "form-empty-from-odt.pdf",
            "form-errors.pdf",
            "form-filled-by-acrobat.pdf",
            "form-filled-with-atril.pdf",
            "need-appearances-utf8.pdf",
            "pypdf-FormTestFromOo.pdf",
            "pypdf-form.pdf",
            "pypdf-form_acrobatReader.pdf",
            "pypdf-form_evince.pdf",
        )
    },
}


def test_corpus_is_covered(corpus_forms: Path) -> None:
    """Every corpus file has an expected answer below."""
    assert {path.name for path in corpus_forms.glob("*.pdf")} == set(CORPUS_CODES)


@pytest.mark.parametrize("name", sorted(CORPUS_CODES))
def test_corpus_forms_are_not_eois(corpus_forms: Path, name: str) -> None:
    """Other origins' forms are wrong_form, flattened ones no_fields, XFA xfa; none damaged."""
    assert code_of((corpus_forms / name).read_bytes()) is CORPUS_CODES[name]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Acrobat: incremental save, hex strings, appearances regenerated.
        (
            "form-filled-by-acrobat.pdf",
            {
                "Text Box 1": "abc potato",
                "r1": "1",
                "Check Box 1": None,
                "Check Box 2": "Yes",
                "Text Box 2": "salad πʬ xyz",
            },
        ),
        # Atril (poppler): incremental save, UTF-16BE, appearances removed.
        (
            "form-filled-with-atril.pdf",
            {
                "Text Box 1": "Hagoogamagoogle",
                "r1": "3",
                "Check Box 1": "Yes",
                "Check Box 2": "Yes",
                "Check Box 3": None,
            },
        ),
        ("pypdf-form_acrobatReader.pdf", {"foo": "Bar"}),
        ("pypdf-form_evince.pdf", {"foo": "bar"}),
        # /Fields is not an array: every value comes from the page widgets.
        ("form-bad-fields-array.pdf", {"r1": "1", "Check Box 2": "Yes", "Text Box 2": "salad πʬ"}),
        # get_fields() raises on these; the widget walk reads the rest.
        ("button-set-broken.pdf", {"checkbox2": "Yes", "r2": "2", "text2": "salad πʬ"}),
        ("form-errors.pdf", {"Text Box 2": "salad πʬ", "Check Box 2": "Yes"}),
        ("checkbox-bad-appearance.pdf", {"privacy": "privacy", "agb": None}),
        ("checkbox_no_appearance.pdf", {"cbOn": "Yes", "cbOff": None}),
        ("need-appearances-utf8.pdf", {"text": "abcde", "text2": "salad ÷πʬ", "list1": "six"}),
    ],
)
def test_corpus_values_whichever_tool_saved_them(
    corpus_forms: Path, name: str, expected: dict[str, str | None]
) -> None:
    """The generic reading layer gives each real-world file's values and button states."""
    fields = read_fields((corpus_forms / name).read_bytes())
    assert {key: fields[key].value for key in expected} == expected
