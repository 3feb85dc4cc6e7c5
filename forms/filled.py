"""A filled EOI PDF made from values typed elsewhere (the online form, SPEC §10).

The blank form of :mod:`forms.blank` in the applicant's language, with each value set
on its field by pypdf, which also draws every appearance with the form's own Unicode
field font: the file reads the same in any viewer and enters the intake like a form
filled in a PDF reader (the reader then finds exactly these values).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from functools import cache
from typing import cast

from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, TextStringObject

from forms.blank import FIELD_FONT, field_font_cmap, render_blank_eoi
from forms.eoi import FIELDS_BY_NAME, Kind, Lang
from forms.texts import text

__all__ = ["render_filled_eoi"]


@cache
def _blank(lang: Lang) -> PdfReader:
    """The blank form, parsed once: cloning it then copies objects instead of parsing ~0.5 MB
    of font again for every form (a third of a second)."""
    reader = PdfReader(io.BytesIO(render_blank_eoi(lang)))
    PdfWriter(clone_from=reader)  # resolves every object into the reader's cache
    return reader


#: pypdf's reader is not made for threads; the web server fills forms in several.
_CLONING = threading.Lock()


def _checkbox_on_states(writer: PdfWriter) -> dict[str, str]:
    """Each checkbox's on-state name (``/Yes`` for ours), read from its appearances."""
    found: dict[str, str] = {}
    for page in writer.pages:
        for ref in page.get("/Annots", []):
            widget = cast(DictionaryObject, ref.get_object())
            name = str(widget.get("/T", ""))
            spec = FIELDS_BY_NAME.get(name)
            if spec is None or spec.kind is not Kind.CHECKBOX:
                continue
            normal = cast(DictionaryObject, cast(DictionaryObject, widget["/AP"])["/N"])
            found[name] = next(str(key) for key in normal if key != "/Off")
    return found


def _field_font(writer: PdfWriter) -> DictionaryObject:
    acro_form = cast(DictionaryObject, writer.root_object["/AcroForm"])
    resources = cast(DictionaryObject, acro_form["/DR"].get_object())
    fonts = cast(DictionaryObject, resources["/Font"].get_object())
    return cast(DictionaryObject, fonts[FIELD_FONT].get_object())


def render_filled_eoi(values: Mapping[str, str | bool], lang: Lang = Lang.EN) -> bytes:
    """The blank EOI in ``lang`` with ``values`` filled in (text as given, ``bool`` ticks).

    Names that are not fields of the form, and the hidden ``form_id`` / ``form_lang``
    (the blank sets them), are ignored.
    """
    with _CLONING:
        writer = PdfWriter(clone_from=_blank(lang))
    on_states = _checkbox_on_states(writer)
    fields: dict[str, str] = {}
    choices: dict[str, str] = {}
    for name, value in values.items():
        spec = FIELDS_BY_NAME.get(name)
        if spec is None or spec.kind is Kind.HIDDEN:
            continue
        if spec.kind is Kind.CHECKBOX:
            fields[name] = on_states[name] if value is True else "/Off"
        elif spec.kind is Kind.CHOICE and value in spec.options:
            # pypdf draws a combo box's value as it is; a person should see the option's
            # label, as a PDF reader shows it. The export value is put back in /V below.
            fields[name] = text(lang, "form", f"{name}_{value}")
            choices[name] = str(value)
        elif isinstance(value, str) and value:
            fields[name] = value
    # auto_regenerate=False: pypdf draws every appearance (with the form's /DR font), so
    # no viewer needs to regenerate anything. While it draws, the font's ToUnicode CMap is
    # one for the typed characters only: pypdf parses it again for each field, and the
    # whole one (~6,000 glyphs) costs ~0.2 s each time. The file keeps the whole one.
    font = _field_font(writer)
    whole = font[NameObject("/ToUnicode")]
    small = DecodedStreamObject()
    small.set_data(field_font_cmap("".join(fields.values())))
    font[NameObject("/ToUnicode")] = small
    try:
        writer.update_page_form_field_values(None, fields, auto_regenerate=False)
    finally:
        font[NameObject("/ToUnicode")] = whole
    for page in writer.pages:
        for ref in page.get("/Annots", []):
            widget = cast(DictionaryObject, ref.get_object())
            export = choices.get(str(widget.get("/T", "")))
            if export is not None:
                widget[NameObject("/V")] = TextStringObject(export)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
