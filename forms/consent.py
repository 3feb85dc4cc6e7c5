"""The consent PDF (SPEC §6): the supporter's data and commitments, for the Commission to sign.

Two stages. reportlab draws the body in invariant mode, so the same EOI, reference and
time always give the same bytes (:func:`render_consent_body`). pyHanko then appends, as an
incremental update, the empty ``CommissionSignature`` field over the box drawn for it,
``/SigFlags 3`` and the reference as a custom metadata key (:func:`render_consent`).

That second stage is *not* reproducible: pyHanko's incremental writer gives every update a
random second ``/ID`` element. The issued bytes are therefore returned once, stored and
archived by the caller, and never rebuilt — verification compares a signed file with the
stored bytes, not with a fresh rendering. The incremental update keeps the deterministic
body as a byte-exact prefix of the issued file.
"""

from __future__ import annotations

import datetime
import gettext
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from xml.sax.saxutils import escape

import pycountry
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.fields import SigFieldSpec, append_signature_field, ensure_sig_flags
from reportlab.lib.colors import Color
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from forms.eoi import COMMITMENTS, EOI, Lang
from forms.texts import text

__all__ = ["REFERENCE_INFO_KEY", "SIGNATURE_FIELD", "render_consent", "render_consent_body"]

#: Name of the empty signature field the European Commission signs.
SIGNATURE_FIELD = "CommissionSignature"
#: Custom key of the document information dictionary that carries the application reference.
REFERENCE_INFO_KEY = "/ConsentflowReference"

_FONT = "DejaVuSans"
_FONT_BOLD = "DejaVuSans-Bold"
_INK = Color(0.1, 0.1, 0.1)
_MUTED = Color(0.35, 0.35, 0.35)
_RULE = Color(0.8, 0.82, 0.86)
_MARGIN = 18 * mm
_SIGNATURE_SIZE = (85 * mm, 25 * mm)


def render_consent(
    eoi: EOI,
    *,
    reference: str,
    issued_at: datetime.datetime,
    lang: Lang | None = None,
) -> bytes:
    """Return the consent PDF to issue: the body plus one empty ``CommissionSignature`` field.

    ``lang`` defaults to the EOI's form language; ``issued_at`` must be timezone-aware.
    The result differs on every call (see the module docstring): store these exact bytes.
    """
    lang = Lang(lang or eoi.lang)
    body, placement = _render(eoi, reference=reference, issued_at=issued_at, lang=lang)
    writer = IncrementalPdfFileWriter(io.BytesIO(body))
    append_signature_field(
        writer,
        SigFieldSpec(
            SIGNATURE_FIELD,
            box=placement.box,
            on_page=placement.page_index,
            readable_field_name=text(lang, "consent", "signature_tooltip"),
        ),
    )
    # Append-only from the start: without /SigFlags 3 in the issued revision, a diff review
    # starting there sees the signer's tool flip the flags (1 -> 3) as an extra change.
    ensure_sig_flags(writer, lock_sig_flags=True)
    # reportlab has no public way to add a custom Info key, so it goes into this revision,
    # which rewrites the Info dictionary anyway (pyHanko updates /ModDate and /Producer).
    info_ref = writer.trailer.raw_get("/Info")
    info_ref.get_object()[generic.NameObject(REFERENCE_INFO_KEY)] = generic.TextStringObject(
        reference
    )
    writer.mark_update(info_ref)
    out = io.BytesIO()
    writer.write(out)  # type: ignore[no-untyped-call]  # pyHanko leaves write() unannotated
    return out.getvalue()


def render_consent_body(
    eoi: EOI,
    *,
    reference: str,
    issued_at: datetime.datetime,
    lang: Lang | None = None,
) -> bytes:
    """Return the reportlab stage alone: byte-identical for the same arguments.

    This is the first revision of every issued consent; :func:`render_consent` only appends.
    """
    return _render(eoi, reference=reference, issued_at=issued_at, lang=Lang(lang or eoi.lang))[0]


# --- the body ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Placement:
    """Where the signature box landed, in the coordinates pyHanko's ``SigFieldSpec`` takes."""

    page_index: int
    box: tuple[int, int, int, int]


class _SignatureBox(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """A framed empty box; remembers its page and absolute position once drawn."""

    def __init__(self, width: float, height: float) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self.drawn_at: tuple[int, tuple[float, float, float, float]] | None = None

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        canvas: Canvas = self.canv
        canvas.setStrokeColor(_MUTED)
        canvas.setLineWidth(0.8)
        canvas.rect(0, 0, self.width, self.height)
        x0, y0 = canvas.absolutePosition(0, 0)
        x1, y1 = canvas.absolutePosition(self.width, self.height)
        self.drawn_at = (canvas.getPageNumber() - 1, (x0, y0, x1, y1))


@cache
def _register_fonts() -> None:
    # Once per process: reportlab's font registry is global, and forms.blank may already
    # have registered the same files under the same names.
    registered = pdfmetrics.getRegisteredFontNames()
    for name in (_FONT, _FONT_BOLD):
        if name not in registered:
            path = resources.files("forms") / "fonts" / f"{name}.ttf"
            pdfmetrics.registerFont(TTFont(name, str(path)))


@cache
def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle(
        "body", fontName=_FONT, bulletFontName=_FONT, fontSize=9.5, leading=12.5, textColor=_INK
    )
    return {
        "body": base,
        "title": ParagraphStyle("title", base, fontName=_FONT_BOLD, fontSize=16, leading=20),
        "subtitle": ParagraphStyle("subtitle", base, fontSize=11.5, leading=15, textColor=_MUTED),
        "meta": ParagraphStyle("meta", base, fontSize=9, leading=12),
        "heading": ParagraphStyle(
            "heading",
            base,
            fontName=_FONT_BOLD,
            fontSize=11,
            leading=14,
            spaceBefore=9,
            spaceAfter=4,
        ),
        "label": ParagraphStyle("label", base, fontSize=8.5, leading=11, textColor=_MUTED),
        "value": ParagraphStyle("value", base, fontName=_FONT_BOLD),
        "item": ParagraphStyle("item", base, leftIndent=8 * mm, bulletIndent=2 * mm, spaceAfter=2),
        "note": ParagraphStyle("note", base, fontSize=8, leading=10.5, textColor=_MUTED),
    }


def _para(value: str, style: str, *, bullet: str | None = None) -> Paragraph:
    # Paragraph parses its text as XML markup: applicant values (and catalogue sentences)
    # must be escaped, or "<b>&" in a name breaks the layout or is swallowed.
    return Paragraph(escape(value), _styles()[style], bulletText=bullet)


def _format_date(lang: Lang, day: datetime.date) -> str:
    return text(lang, "consent", "date_format", year=day.year, month=day.month, day=day.day)


@cache
def _country_translations(lang: Lang) -> gettext.NullTranslations:
    # pycountry ships the Debian iso-codes translations; English needs none.
    return gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=[lang.value], fallback=True
    )


def _country(lang: Lang, code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    name = getattr(country, "common_name", None) or country.name
    return f"{_country_translations(lang).gettext(name)} ({code})"


def _pdf_date(moment: datetime.datetime) -> Callable[..., str]:
    stamp = f"D:{moment:%Y%m%d%H%M%S}+00'00'"
    # reportlab calls this with its own (invariant, fixed) date parts; ignore them so the
    # metadata dates are the issue time while the bytes stay reproducible.
    return lambda *_parts: stamp


def _render(
    eoi: EOI,
    *,
    reference: str,
    issued_at: datetime.datetime,
    lang: Lang,
) -> tuple[bytes, _Placement]:
    if issued_at.tzinfo is None:
        raise ValueError("issued_at must be timezone-aware (UTC)")
    issued_at = issued_at.astimezone(datetime.UTC)
    _register_fonts()
    t = partial(text, lang, "consent")
    issued = _format_date(lang, issued_at.date())
    box = _SignatureBox(*_SIGNATURE_SIZE)

    def decorate(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.setDateFormatter(_pdf_date(issued_at))
        canvas.setFont(_FONT, 8)
        canvas.setFillColor(_MUTED)
        footer = t("footer", reference=reference, issued=issued, page=doc.page)
        canvas.drawString(_MARGIN, 12 * mm, footer)

    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN - 4 * mm,
        bottomMargin=_MARGIN,
        invariant=True,
        lang=lang.value,
        title=t("meta_title", org_name=eoi.org_name),
        subject=t("meta_subject", reference=reference),
        keywords=[reference, *t("meta_keywords").split(", ")],
        author=t("meta_author"),
        creator="consentflow",
        # Every font reportlab selects, even for nothing, is referenced: keep all of them DejaVu.
        initialFontName=_FONT,
        initialFontSize=9.5,
    )
    story = _story(eoi, lang, t, reference=reference, issued=issued, box=box)
    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    if box.drawn_at is None:  # pragma: no cover - platypus always draws the last flowable
        raise RuntimeError("the signature box was not drawn")
    page_index, (x0, y0, x1, y1) = box.drawn_at
    # Whole points, inside the drawn frame, so the field's /Rect is stable and exact.
    field_box = (round(x0) + 1, round(y0) + 1, round(x1) - 1, round(y1) - 1)
    return out.getvalue(), _Placement(page_index, field_box)


def _story(
    eoi: EOI,
    lang: Lang,
    t: Callable[..., str],
    *,
    reference: str,
    issued: str,
    box: _SignatureBox,
) -> list[Flowable]:
    supporter = [("org_name", eoi.org_name)]
    if eoi.org_acronym:
        supporter.append(("org_acronym", eoi.org_acronym))
    supporter += [
        ("country", _country(lang, eoi.country)),
        ("address", f"{eoi.address_street}, {eoi.address_postcode} {eoi.address_city}"),
        ("member_count", str(eoi.member_count)),
        ("website", eoi.website),
    ]
    representative = [
        ("representative_name", eoi.representative_name),
        ("representative_position", eoi.representative_position),
    ]
    eoi_date = _format_date(lang, datetime.date.fromisoformat(eoi.date))
    return [
        _para(t("title"), "title"),
        _para(t("subtitle"), "subtitle"),
        Spacer(1, 3 * mm),
        _para(t("reference", reference=reference), "meta"),
        _para(t("issued", issued=issued), "meta"),
        Spacer(1, 3 * mm),
        _para(t("intro", date=eoi_date, place=eoi.place), "body"),
        _para(t("section_supporter"), "heading"),
        _table(t, supporter),
        _para(t("section_representative"), "heading"),
        _table(t, representative),
        _para(t("section_commitments"), "heading"),
        _para(t("commitments_intro"), "body"),
        Spacer(1, 2 * mm),
        *(
            _para(t(name), "item", bullet=f"{number}.")
            for number, name in enumerate(COMMITMENTS, start=1)
        ),
        _para(t("section_suspension"), "heading"),
        _para(t("suspension"), "body"),
        Spacer(1, 3 * mm),
        KeepTogether(
            [
                _para(t("signature_heading"), "heading"),
                box,
                Spacer(1, 2 * mm),
                _para(t("signature_note", field=SIGNATURE_FIELD), "note"),
            ]
        ),
    ]


def _table(t: Callable[..., str], rows: list[tuple[str, str]]) -> Table:
    table = Table(
        [[_para(t(key), "label"), _para(value, "value")] for key, value in rows],
        colWidths=[55 * mm, None],
    )
    table.setStyle(
        TableStyle(
            [
                # Cells default to Helvetica: an unused, non-embedded font in the resources.
                ("FONT", (0, 0), (-1, -1), _FONT, 9.5),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.4, _RULE),
                ("LEFTPADDING", (0, 0), (0, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 3),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table
