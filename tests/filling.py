"""Ways real applicants' tools fill the EOI form, reproduced with real libraries and tools.

Each route is ``(blank, values, tmp_path) -> filled bytes``; ``values`` maps field names
to text (``str``) or checkbox state (``bool``). The routes differ in what extraction must
cope with (SPEC §4): full rewrites and incremental updates, PDFDocEncoding, UTF-16BE and
hex strings, ``\\r\\n`` line breaks, values on merged field/widgets or on parent fields.
"""

from __future__ import annotations

import codecs
import io
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import cast
from xml.sax.saxutils import escape, quoteattr

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DictionaryObject,
    NameObject,
)

from forms.blank import render_blank_eoi
from forms.eoi import FIELDS_BY_NAME, Kind, Lang
from tests.conftest import need_tool

Values = dict[str, str | bool]
FillRoute = Callable[[bytes, Values, Path], bytes]


@cache
def blank_form(lang: Lang) -> bytes:
    """The blank EOI form in ``lang``, rendered once per test session."""
    return render_blank_eoi(lang)


def on_state(widget: DictionaryObject) -> str:
    """Return a checkbox widget's on-state name (e.g. ``/Yes``), read from its ``/AP /N`` keys."""
    appearances = cast(DictionaryObject, cast(DictionaryObject, widget["/AP"])["/N"])
    states = [str(key) for key in appearances if key != "/Off"]
    if len(states) != 1:
        raise ValueError(f"checkbox {widget.get('/T')!r} has on-states {states}")
    return states[0]


def _widgets(reader: PdfReader | PdfWriter) -> dict[str, DictionaryObject]:
    """Map field name to its (merged field/)widget dictionary, over all pages."""
    found: dict[str, DictionaryObject] = {}
    for page in reader.pages:
        for ref in page.get("/Annots", []):
            annot = ref.get_object()
            if annot.get("/Subtype") == "/Widget" and "/T" in annot:
                found[str(annot["/T"])] = annot
    return found


def _split(values: Values) -> tuple[dict[str, str], dict[str, bool]]:
    texts = {k: v for k, v in values.items() if isinstance(v, str)}
    boxes = {k: v for k, v in values.items() if isinstance(v, bool)}
    return texts, boxes


def _pypdf_fill(writer: PdfWriter, values: Values) -> None:
    texts, boxes = _split(values)
    widgets = _widgets(writer)
    # pypdf silently stores an unknown checkbox value as /Off, so pass the widget's own
    # on-state name rather than assuming /Yes.
    fields: dict[str, str] = dict(texts)
    for name, ticked in boxes.items():
        fields[name] = on_state(widgets[name]) if ticked else "/Off"
    # auto_regenerate=False: pypdf draws every appearance itself (with the form's DejaVu
    # /DR font), so viewers need not regenerate anything.
    writer.update_page_form_field_values(None, fields, auto_regenerate=False)


def _write(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def fill_pypdf(blank: bytes, values: Values, tmp_path: Path) -> bytes:
    """pypdf full rewrite: clone, ``update_page_form_field_values``, write."""
    writer = PdfWriter(clone_from=io.BytesIO(blank))
    _pypdf_fill(writer, values)
    return _write(writer)


def fill_pypdf_incremental(blank: bytes, values: Values, tmp_path: Path) -> bytes:
    """pypdf incremental update: the blank's bytes stay a prefix, like Acrobat or pdf.js."""
    writer = PdfWriter(io.BytesIO(blank), incremental=True)
    _pypdf_fill(writer, values)
    return _write(writer)


def fill_pdftk(blank: bytes, values: Values, tmp_path: Path) -> bytes:
    """pdftk-java ``fill_form`` with a UTF-8 XFDF file (pdftk writes every value UTF-16BE).

    pdftk-java 3.3's iText cannot encode for the form's Type0 ``/DA`` font, so its
    appearances show glyph 0 boxes; ``/V`` is still exact, which is what intake reads.
    """
    pdftk = need_tool("pdftk")
    texts, boxes = _split(values)
    widgets = _widgets(PdfReader(io.BytesIO(blank)))
    entries = dict(texts)
    for name, ticked in boxes.items():
        entries[name] = on_state(widgets[name]).removeprefix("/") if ticked else "Off"
    xfdf = "".join(
        f"<field name={quoteattr(name)}><value>{escape(value)}</value></field>"
        for name, value in entries.items()
    )
    source, data, target = tmp_path / "blank.pdf", tmp_path / "data.xfdf", tmp_path / "out.pdf"
    source.write_bytes(blank)
    data.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xfdf xmlns="http://ns.adobe.com/xfdf/" xml:space="preserve">'
        f"<fields>{xfdf}</fields></xfdf>\n",
        encoding="utf-8",
    )
    subprocess.run(
        [pdftk, str(source), "fill_form", str(data), "output", str(target)],
        check=True,
        capture_output=True,
    )
    return target.read_bytes()


def fill_qpdf_rewrite(blank: bytes, values: Values, tmp_path: Path) -> bytes:
    """A pypdf-filled file rewritten by qpdf into object streams (new xref, new layout)."""
    qpdf = need_tool("qpdf")
    source, target = tmp_path / "filled.pdf", tmp_path / "rewritten.pdf"
    source.write_bytes(fill_pypdf(blank, values, tmp_path))
    subprocess.run(
        [qpdf, "--object-streams=generate", "--compress-streams=y", str(source), str(target)],
        check=True,
        capture_output=True,
    )
    return target.read_bytes()


def fill_pikepdf(blank: bytes, values: Values, tmp_path: Path) -> bytes:
    """pikepdf: ``/V`` (and checkbox ``/AS``) set directly; stale appearances, NeedAppearances."""
    import pikepdf

    texts, boxes = _split(values)
    with pikepdf.open(io.BytesIO(blank)) as pdf:
        acro_form = pdf.Root.AcroForm
        for field in acro_form.Fields:
            name = str(field.T)
            if name in texts:
                field.V = pikepdf.String(texts[name])
            elif name in boxes:
                states = [key for key in field.AP.N if key != "/Off"]
                state = pikepdf.Name(str(states[0])) if boxes[name] else pikepdf.Name.Off
                field.V = state
                field.AS = state
        acro_form.NeedAppearances = True
        out = io.BytesIO()
        pdf.save(out)
    return out.getvalue()


def fill_parent_kids(blank: bytes, values: Values, tmp_path: Path) -> bytes:
    """Values on parent fields whose widgets are kids, as hex UTF-16BE with ``\\r\\n`` breaks.

    Built by hand with pypdf objects: every filled field is split into a parent field
    (``/T``, ``/FT``, ``/Ff``, ``/V``) and its one widget kid (``/Rect``, ``/AP``, ``/AS``),
    the way Acrobat-made forms and PDFium store them.
    """
    texts, boxes = _split(values)
    writer = PdfWriter(clone_from=io.BytesIO(blank))
    acro_form = cast(DictionaryObject, writer.root_object["/AcroForm"])
    fields = cast(ArrayObject, acro_form["/Fields"])
    widget_keys = {"/Type", "/Subtype", "/Rect", "/AP", "/AS", "/MK", "/BS", "/F", "/P", "/DA"}
    for index, ref in enumerate(list(fields)):
        widget = cast(DictionaryObject, ref.get_object())
        name = str(widget["/T"])
        if name not in values:
            continue
        parent = DictionaryObject(
            {NameObject(k): v for k, v in widget.items() if k not in widget_keys}
        )
        if name in texts:
            value = texts[name]
            if FIELDS_BY_NAME[name].kind is Kind.MULTILINE:
                value = value.replace("\n", "\r\n")  # as PDFium (Chrome) stores line breaks
            # Written as <FEFF...>: Acrobat's hex UTF-16BE string form.
            parent[NameObject("/V")] = ByteStringObject(
                codecs.BOM_UTF16_BE + value.encode("utf-16-be")
            )
        else:
            state = NameObject(on_state(widget) if boxes[name] else "/Off")
            parent[NameObject("/V")] = state
            widget[NameObject("/AS")] = state
        parent_ref = writer._add_object(parent)
        for key in list(widget):
            if key not in widget_keys:
                del widget[key]
        widget[NameObject("/Parent")] = parent_ref
        parent[NameObject("/Kids")] = ArrayObject([ref])
        fields[index] = parent_ref
    # Nothing here drew appearances for the new values: viewers must regenerate them.
    acro_form[NameObject("/NeedAppearances")] = BooleanObject(True)
    return _write(writer)


#: Every fill route, by the name the parametrised tests show.
ROUTES: dict[str, FillRoute] = {
    "pypdf": fill_pypdf,
    "pypdf_incremental": fill_pypdf_incremental,
    "pdftk_xfdf": fill_pdftk,
    "qpdf_rewrite": fill_qpdf_rewrite,
    "pikepdf": fill_pikepdf,
    "parent_kids": fill_parent_kids,
}
