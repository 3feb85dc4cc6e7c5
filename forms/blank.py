"""The blank EOI form (SPEC §4): reportlab draws page and fields, pypdf adds a Unicode field font.

reportlab's AcroForm fields only know the standard-14 fonts, whose appearances drop
Greek, Cyrillic and most Polish letters. So after drawing, the form gets DejaVu Sans as a
Type0/Identity-H font in ``/AcroForm /DR`` and every variable-text field's ``/DA`` points
at it: viewers and tools that build a field's appearance from its ``/DA`` (pypdf; by
the PDF model also pdf.js and Acrobat, not tested here) then show what applicants type in
any EU script. Known exception: pdftk-java 3.3's old iText cannot encode text for a Type0
``/DA`` font and draws every character as glyph 0; the values themselves stay intact.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import cast

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
)
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont, TTFontFile
from reportlab.pdfgen.canvas import Canvas

from forms.eoi import COMMITMENTS, FIELDS_BY_NAME, FORM_ID, FORM_VERSION, Kind, Lang
from forms.texts import text

__all__ = ["FIELD_FONT", "field_font_cmap", "render_blank_eoi"]

#: Resource name of the Unicode font in ``/AcroForm /DR``; every text field's ``/DA`` uses it.
FIELD_FONT = "/DejaVuSans"
# Size 0 is "auto": a long value shrinks to fit its box instead of being cut off.
_DA = f"{FIELD_FONT} 0 Tf 0 g"

_PAGE_FONT = "DejaVuSans"
_PAGE_FONT_BOLD = "DejaVuSans-Bold"
_PAGES = 2
_WIDTH, _HEIGHT = A4
_LEFT = 50.0
_RIGHT = _WIDTH - 50.0
_TOP = _HEIGHT - 48.0
_GUTTER = 10.0
_FIELD_HEIGHT = 20.0
_LABEL_SIZE = 8.5
_INK = Color(0.15, 0.15, 0.15)
_MUTED = Color(0.35, 0.35, 0.35)
_FIELD_FILL = Color(0.93, 0.95, 1.0)
_FIELD_BORDER = Color(0.55, 0.6, 0.7)


def render_blank_eoi(lang: Lang = Lang.EN) -> bytes:
    """Return the blank EOI form in ``lang``: the fields of :data:`forms.eoi.FIELDS`, nothing else.

    The same ``lang`` always gives the same bytes (reportlab's invariant mode, and the
    file identifier is kept through the font post-processing).
    """
    return _add_field_font(_draw(lang))


# --- drawing -----------------------------------------------------------------------------


def _font_path(name: str) -> str:
    return str(resources.files("forms") / "fonts" / f"{name}.ttf")


def _register_page_fonts() -> None:
    registered = pdfmetrics.getRegisteredFontNames()
    for name in (_PAGE_FONT, _PAGE_FONT_BOLD):
        if name not in registered:
            pdfmetrics.registerFont(TTFont(name, _font_path(name)))


@dataclass
class _Sheet:
    """A canvas with a writing position that moves down the page."""

    canvas: Canvas
    lang: Lang
    y: float = _TOP

    def t(self, key: str) -> str:
        return text(self.lang, "form", key)

    def paragraph(self, body: str, *, size: float, font: str = _PAGE_FONT, gap: float = 4) -> None:
        leading = size * 1.3
        self.canvas.setFont(font, size)
        for line in simpleSplit(body, font, size, _RIGHT - _LEFT):
            self.y -= leading
            self.canvas.drawString(_LEFT, self.y, line)
        self.y -= gap

    def heading(self, key: str) -> None:
        self.y -= 8
        self.canvas.setFillColor(_INK)
        self.paragraph(self.t(key), size=11, font=_PAGE_FONT_BOLD, gap=6)

    def row(self, *cells: tuple[str, float], height: float = _FIELD_HEIGHT) -> None:
        """Draw fields side by side; each cell is (field name, share of the line width)."""
        usable = _RIGHT - _LEFT - _GUTTER * (len(cells) - 1)
        x = _LEFT
        label_y = self.y - _LABEL_SIZE - 2
        field_y = label_y - 3 - height
        for name, share in cells:
            width = usable * share
            spec = FIELDS_BY_NAME[name]
            label = self.t(name) + (" *" if spec.required else "")
            self.canvas.setFillColor(_MUTED)
            self.canvas.setFont(_PAGE_FONT, _LABEL_SIZE)
            self.canvas.drawString(x, label_y, label)
            _field(
                self.canvas,
                self.lang,
                name,
                x=x,
                y=field_y,
                width=width,
                height=height,
                tooltip=label,
            )
            x += width + _GUTTER
        self.y = field_y - 8

    def checkbox(self, name: str) -> None:
        size = 12.0
        indent = size + 8
        lines = simpleSplit(self.t(name), _PAGE_FONT, 9.5, _RIGHT - _LEFT - indent)
        top = self.y - 2
        _field(
            self.canvas,
            self.lang,
            name,
            x=_LEFT,
            y=top - size,
            width=size,
            height=size,
            tooltip=self.t(name),
        )
        self.canvas.setFillColor(_INK)
        self.canvas.setFont(_PAGE_FONT, 9.5)
        line_y = top - 9.5
        for line in lines:
            self.canvas.drawString(_LEFT + indent, line_y, line)
            line_y -= 12.5
        self.y = min(line_y, top - size) - 6

    def footer(self, page: int) -> None:
        self.canvas.setFillColor(_MUTED)
        self.canvas.setFont(_PAGE_FONT, 8)
        note = self.t("footer").format(
            form_id=FORM_ID, version=FORM_VERSION, page=page, pages=_PAGES
        )
        self.canvas.drawString(_LEFT, 28, note)
        self.canvas.drawRightString(_RIGHT, 28, self.t("title"))


def _field_flags(name: str) -> str:
    spec = FIELDS_BY_NAME[name]
    # Always explicit: reportlab's defaults differ per widget type (checkboxes default
    # to "required", text fields to nothing), and the flags are part of the form's contract.
    flags = {
        Kind.HIDDEN: ["readOnly"],
        Kind.TEXT: [],
        Kind.MULTILINE: ["multiline"],
        Kind.CHOICE: ["combo"],
        Kind.CHECKBOX: [],
    }[spec.kind]
    if spec.required and spec.kind is not Kind.HIDDEN:
        flags.append("required")
    return " ".join(flags)


def _field(
    canvas: Canvas,
    lang: Lang,
    name: str,
    *,
    x: float,
    y: float,
    width: float,
    height: float,
    tooltip: str,
) -> None:
    spec = FIELDS_BY_NAME[name]
    form = canvas.acroForm
    box = {
        "name": name,
        "tooltip": tooltip,
        "x": x,
        "y": y,
        "fieldFlags": _field_flags(name),
        "borderWidth": 0.8,
        "borderColor": _FIELD_BORDER,
        "fillColor": _FIELD_FILL,
        "textColor": Color(0, 0, 0),
    }
    if spec.kind is Kind.CHECKBOX:
        form.checkbox(checked=False, buttonStyle="check", size=width, **box)
    elif spec.kind is Kind.CHOICE:
        options = [(text(lang, "form", f"{name}_{value}"), value) for value in spec.options]
        # reportlab 5.1 cannot draw a combo box without a value (value="" raises
        # UnboundLocalError), so it starts on the first option; _clear_choice empties it.
        form.choice(value=spec.options[0], options=options, width=width, height=height, **box)
    else:
        # maxlen=None: reportlab otherwise writes /MaxLen 100, and viewers would
        # silently cut a long address or services text. Lengths are checked on intake.
        form.textfield(value="", width=width, height=height, maxlen=None, **box)


def _hidden(canvas: Canvas, name: str, value: str) -> None:
    # Invisible, read-only, outside the text area: identifies the form, never typed in.
    canvas.acroForm.textfield(
        name=name,
        value=value,
        x=_LEFT + (0 if name == "form_id" else 120),
        y=6,
        width=110,
        height=10,
        maxlen=None,
        annotationFlags="hidden",
        fieldFlags=_field_flags(name),
        borderWidth=0,
    )


def _draw(lang: Lang) -> bytes:
    _register_page_fonts()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1, pageCompression=1)
    canvas.setTitle(f"{text(lang, 'form', 'title')} ({FORM_ID})")
    canvas.setSubject(FORM_ID)
    canvas.setCreator("consentflow")
    sheet = _Sheet(canvas, lang)

    canvas.setFillColor(_INK)
    sheet.paragraph(sheet.t("title"), size=18, font=_PAGE_FONT_BOLD, gap=2)
    sheet.paragraph(sheet.t("subtitle"), size=11, gap=6)
    canvas.setFillColor(_MUTED)
    sheet.paragraph(f"{FORM_ID} · v{FORM_VERSION}", size=8, gap=6)
    canvas.setFillColor(_INK)
    sheet.paragraph(sheet.t("instructions"), size=9, gap=2)
    sheet.paragraph(sheet.t("required_note"), size=8, gap=0)

    sheet.heading("section_organisation")
    sheet.row(("org_name", 1.0))
    sheet.row(("org_acronym", 0.3), ("org_type", 0.7))
    sheet.row(("address_street", 1.0))
    sheet.row(("address_postcode", 0.22), ("address_city", 0.43), ("country", 0.35))
    sheet.row(("website", 0.6), ("member_count", 0.4))
    sheet.heading("section_contact")
    sheet.row(("contact_name", 0.5), ("contact_position", 0.5))
    sheet.row(("contact_email", 0.4), ("contact_phone", 0.6))
    sheet.heading("section_representative")
    sheet.row(("representative_name", 0.5), ("representative_position", 0.5))
    sheet.heading("section_services")
    sheet.row(("services", 1.0), height=120)
    sheet.row(("languages", 1.0))
    _hidden(canvas, "form_id", FORM_ID)
    _hidden(canvas, "form_lang", lang.value)
    sheet.footer(1)
    canvas.showPage()

    sheet.y = _TOP
    sheet.heading("section_commitments")
    canvas.setFillColor(_INK)
    sheet.paragraph(sheet.t("commitments_intro"), size=9.5, gap=6)
    for name in COMMITMENTS:
        sheet.checkbox(name)
    sheet.y -= 8
    sheet.checkbox("accept_suspension")
    sheet.checkbox("consent_privacy")
    sheet.heading("section_signature")
    sheet.row(("date", 0.45), ("place", 0.55))
    sheet.footer(2)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


# --- the Unicode field font ----------------------------------------------------------------


@dataclass(frozen=True)
class _FontData:
    """What a Type0/Identity-H font needs from the TrueType file (glyph id = CID)."""

    name: str
    file: bytes
    widths: tuple[int, ...]  # advance width per glyph id, in 1/1000 em
    to_unicode: bytes  # CMap from glyph id to the (lowest) code point it draws
    bbox: tuple[int, int, int, int]
    ascent: int
    descent: int
    cap_height: int
    stem_v: int


@cache
def _font_data() -> _FontData:
    path = _font_path(_PAGE_FONT)
    face = TTFontFile(path)
    scale = 1000 / face.unitsPerEm
    widths = tuple(round(advance * scale) for advance, _lsb in face.hmetrics)
    glyph_to_code: dict[int, int] = {}
    for code, glyph in sorted(face.charToGlyph.items()):
        glyph_to_code.setdefault(glyph, code)
    with open(path, "rb") as handle:
        data = handle.read()
    return _FontData(
        name=face.name.decode("ascii"),
        file=data,
        widths=widths,
        to_unicode=_to_unicode_cmap(glyph_to_code),
        bbox=(
            round(face.bbox[0]),
            round(face.bbox[1]),
            round(face.bbox[2]),
            round(face.bbox[3]),
        ),
        ascent=round(face.ascent),
        descent=round(face.descent),
        cap_height=round(face.capHeight),
        stem_v=int(face.stemV),
    )


@cache
def _char_to_glyph() -> dict[int, int]:
    return dict(TTFontFile(_font_path(_PAGE_FONT)).charToGlyph)


def field_font_cmap(chars: str) -> bytes:
    """A ToUnicode CMap of :data:`FIELD_FONT` for ``chars`` only (those it has a glyph for).

    The form's own CMap covers every glyph, some 6,000 entries, and pypdf parses it again
    for each field it draws: a filler that knows its text swaps this small one in while
    drawing (:mod:`forms.filled`), with the same glyphs for the same characters.
    """
    to_glyph = _char_to_glyph()
    glyph_to_code: dict[int, int] = {}
    for code in sorted({ord(char) for char in chars}):
        glyph = to_glyph.get(code)
        if glyph is not None:
            glyph_to_code.setdefault(glyph, code)
    return _to_unicode_cmap(glyph_to_code)


def _to_unicode_cmap(glyph_to_code: dict[int, int]) -> bytes:
    # Tools that build appearances without parsing the TrueType cmap (pypdf without
    # fontTools, pdftk's iText) invert this CMap to encode typed text, so it must cover
    # every glyph that has a code point, not only the ones used on the page.
    entries = [
        f"<{glyph:04X}> <{chr(code).encode('utf-16-be').hex().upper()}>"
        for glyph, code in sorted(glyph_to_code.items())
    ]
    blocks = []
    for start in range(0, len(entries), 100):  # a CMap block holds at most 100 entries
        chunk = entries[start : start + 100]
        blocks.append(f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar")
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _stream(writer: PdfWriter, data: bytes, **entries: int) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    for key, value in entries.items():
        stream[NameObject(f"/{key}")] = NumberObject(value)
    return writer._add_object(stream.flate_encode(level=9))


def _type0_font(writer: PdfWriter) -> IndirectObject:
    """Add DejaVu Sans, whole (applicants may type any glyph), as a Type0 font; return its ref."""
    font = _font_data()
    base = NameObject(f"/{font.name}")
    descriptor = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/FontDescriptor"),
            NameObject("/FontName"): base,
            NameObject("/Flags"): NumberObject(32),  # nonsymbolic
            NameObject("/FontBBox"): ArrayObject(NumberObject(v) for v in font.bbox),
            NameObject("/ItalicAngle"): NumberObject(0),
            NameObject("/Ascent"): NumberObject(font.ascent),
            NameObject("/Descent"): NumberObject(font.descent),
            NameObject("/CapHeight"): NumberObject(font.cap_height),
            NameObject("/StemV"): NumberObject(font.stem_v),
            NameObject("/FontFile2"): _stream(writer, font.file, Length1=len(font.file)),
        }
    )
    cid_font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/CIDFontType2"),
            NameObject("/BaseFont"): base,
            NameObject("/CIDSystemInfo"): DictionaryObject(
                {
                    NameObject("/Registry"): TextStringObject("Adobe"),
                    NameObject("/Ordering"): TextStringObject("Identity"),
                    NameObject("/Supplement"): NumberObject(0),
                }
            ),
            NameObject("/FontDescriptor"): writer._add_object(descriptor),
            NameObject("/DW"): NumberObject(1000),
            NameObject("/W"): ArrayObject(
                [NumberObject(0), ArrayObject(NumberObject(w) for w in font.widths)]
            ),
            NameObject("/CIDToGIDMap"): NameObject("/Identity"),
        }
    )
    return writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type0"),
                NameObject("/BaseFont"): base,
                NameObject("/Encoding"): NameObject("/Identity-H"),
                NameObject("/DescendantFonts"): ArrayObject([writer._add_object(cid_font)]),
                NameObject("/ToUnicode"): _stream(writer, font.to_unicode),
            }
        )
    )


def _clear_choice(field: DictionaryObject) -> None:
    """Take the preselected option out of a combo box: no value, no text in its appearance."""
    for key in ("/V", "/DV", "/I"):
        field.pop(NameObject(key), None)
    appearance = cast(StreamObject, cast(DictionaryObject, field["/AP"])["/N"])
    appearance.set_data(re.sub(rb"BT\n.*?ET\n", b"", appearance.get_data(), flags=re.DOTALL))


def _add_field_font(pdf: bytes) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    acro_form = cast(DictionaryObject, writer.root_object["/AcroForm"])
    dr = acro_form.setdefault(NameObject("/DR"), DictionaryObject()).get_object()
    fonts = cast(DictionaryObject, dr).setdefault(NameObject("/Font"), DictionaryObject())
    cast(DictionaryObject, fonts.get_object())[NameObject(FIELD_FONT)] = _type0_font(writer)
    acro_form[NameObject("/DA")] = TextStringObject(_DA)
    for ref in cast(ArrayObject, acro_form["/Fields"]):
        field = cast(DictionaryObject, ref.get_object())
        if field.get("/FT") in ("/Tx", "/Ch"):
            field[NameObject("/DA")] = TextStringObject(_DA)
        if field.get("/FT") == "/Ch":
            _clear_choice(field)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
