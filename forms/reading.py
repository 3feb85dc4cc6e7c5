"""Field extraction: untrusted PDF bytes in, the EOI's raw field values out (SPEC §4).

Two layers. :func:`read_fields` reads every form field of any AcroForm PDF, whatever
tool filled it; :func:`read_eoi` checks that the fields are our form and version and
maps them onto :data:`forms.eoi.FIELDS`. Files that are not a usable EOI raise
:class:`~forms.errors.UnusableDocument`; nothing else ever leaves this module.

Fields are collected from two sources, always both: the ``/AcroForm /Fields`` tree and
the widget annotations of every page. pypdf's ``get_fields()`` is not used because it
is all-or-nothing: it raises on one broken button kid ("Button field kid missing
/AP") and finds nothing when ``/Fields`` is not an array, while viewers still show
(and applicants still fill) the widgets on the page.

Parsing is strict first. The file is read again leniently when strict parsing fails
or when pypdf had to repair something (see :class:`_RepairLog`), except when the file
lacks its final ``%%EOF``: a truncated upload is ``damaged`` rather than half-read.
pypdf's limits are tightened for the whole read (``_LIMITS``), so a decompression bomb
is ``damaged`` after 16 MiB. Callers that read files from strangers should still run
this in a worker process with CPU and memory rlimits (tests/test_malformed.py shows
limits under which every hostile case in its corpus ends cleanly).

Encryption: a file that opens with the empty user password is read. Every viewer
opens such a file without asking, so the applicant never saw a password and would
not understand being told the form is "password-protected" (Acrobat's "restrict
editing" and some export tools produce these). Only a file that needs a password
that we do not have is ``encrypted``.
"""

from __future__ import annotations

import codecs
import logging
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from pypdf import PasswordType, PdfReader, apply_configuration, get_configuration
from pypdf.errors import LimitReachedError
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    StreamObject,
    TextStringObject,
    create_string_object,
)

from forms.eoi import FIELDS, FORM_ID, FieldValue, Kind, Lang
from forms.errors import UnusableCode, UnusableDocument

#: Default size limit (SPEC §8 ``intake.max_file_mb``): checked before any parsing.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024

#: The PDF header may be preceded by junk; readers accept it within the first 1 KiB.
_HEADER_WINDOW = 1024

#: pypdf limits for untrusted input. A filled one-page form decodes nothing bigger
#: than its object streams and one field value, so a few MiB per stream is plenty;
#: a decompression bomb stops at the limit instead of inflating to gigabytes (zlib's
#: ``max_length`` makes the stop immediate). External decoders are never run.
_MIB = 1024 * 1024
_LIMITS: dict[str, Any] = {
    "zlib_maximum_output_length": 16 * _MIB,
    "zlib_maximum_recovery_input_length": 2 * _MIB,
    "lzw_maximum_output_length": 16 * _MIB,
    "run_length_maximum_output_length": 16 * _MIB,
    "brotli_maximum_output_length": 16 * _MIB,
    "jbig2_maximum_output_length": 16 * _MIB,
    "array_based_stream_maximum_output_length": 16 * _MIB,
    "image_maximum_buffer_size": 16 * _MIB,
    "stream_decoding_work_maximum_length": 32 * _MIB,
    "xfa_decoding_work_maximum_length": 16 * _MIB,
    "xmp_maximum_input_length": 1 * _MIB,
    "form_fields_maximum_entries": 5_000,
    "form_fields_maximum_depth": 20,
    "page_tree_maximum_entries": 10_000,
    "page_tree_maximum_depth": 50,
    "jbig2dec_binary": None,
    # We never change pypdf's deprecated module constants; skipping the legacy
    # lookup also keeps another library's changes to them from loosening our limits.
    "disable_legacy_handling": True,
}

_OFF = "/Off"
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)
_PUSHBUTTON_FLAG = 1 << 16
_DETAIL_MAX = 300


@dataclass(frozen=True)
class PdfField:
    """One form field as the file holds it, whichever tool filled it.

    ``value`` is normalised text (NFC, trimmed, ``\\n`` line breaks) or ``None`` when
    empty. For a button (``button=True``) it is the on-state that is set, without the
    slash (``"Yes"``, ``"1"``, ``"privacy"``), or ``None`` when the button is off.
    """

    name: str
    button: bool
    value: str | None


@dataclass(frozen=True)
class RawForm:
    """The EOI's field values as extracted, before validation.

    ``values`` has one entry for every name in :data:`forms.eoi.FIELDS`: text, choice
    and hidden fields give ``str`` (NFC, trimmed, ``\\n`` line breaks) or ``None`` when
    empty or missing; checkboxes give ``True`` only when ticked.
    """

    form_id: str
    lang: Lang
    values: dict[str, FieldValue]
    unknown_fields: tuple[str, ...]


def read_eoi(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> RawForm:
    """Extract the EOI's values from filled-form bytes.

    Raises :class:`~forms.errors.UnusableDocument` with code ``too_large``,
    ``not_pdf``, ``encrypted``, ``damaged``, ``xfa``, ``no_fields`` or ``wrong_form``
    (not our form, or another version of it); never anything else.
    """
    fields = read_fields(data, max_bytes=max_bytes)
    form_id = fields["form_id"].value if "form_id" in fields else None
    if form_id != FORM_ID:
        found = f"form_id={form_id!r}" if "form_id" in fields else "no form_id field"
        raise UnusableDocument(
            UnusableCode.WRONG_FORM, f"{found} among {len(fields)} fields; expected {FORM_ID!r}"
        )
    values: dict[str, FieldValue] = {}
    for spec in FIELDS:
        found_field = fields.get(spec.name)
        if spec.kind is Kind.CHECKBOX:
            # A text field that happens to carry a checkbox's name never ticks it.
            values[spec.name] = bool(
                found_field and found_field.button and found_field.value is not None
            )
        else:
            values[spec.name] = found_field.value if found_field else None
    lang_value = values.get("form_lang")
    lang = Lang.EN
    if isinstance(lang_value, str) and lang_value.lower() in {item.value for item in Lang}:
        lang = Lang(lang_value.lower())
    known = {spec.name for spec in FIELDS}
    return RawForm(
        form_id=FORM_ID,
        lang=lang,
        values=values,
        unknown_fields=tuple(sorted(name for name in fields if name not in known)),
    )


def read_fields(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, PdfField]:
    """Read every form field of a PDF, keyed by fully qualified name.

    Raises :class:`~forms.errors.UnusableDocument` (``too_large``, ``not_pdf``,
    ``encrypted``, ``damaged``, ``xfa``, ``no_fields``) for a file that holds no
    readable AcroForm; never anything else.
    """
    if len(data) > max_bytes:
        raise UnusableDocument(
            UnusableCode.TOO_LARGE, f"{len(data)} bytes, the limit is {max_bytes}"
        )
    if b"%PDF-" not in data[:_HEADER_WINDOW]:
        raise UnusableDocument(UnusableCode.NOT_PDF, "no %PDF- header in the first 1024 bytes")
    # The boundary with untrusted input: whatever pypdf raises (including MemoryError
    # and RecursionError on hostile structures) becomes "damaged", never a traceback.
    with apply_configuration(**_LIMITS):
        try:
            return _parse_strictly(data)
        except UnusableDocument:
            raise
        except LimitReachedError as exc:
            # A limit is a property of the file, not of parsing strictness.
            raise UnusableDocument(UnusableCode.DAMAGED, _describe(exc)) from exc
        except Exception as strict_error:
            if b"%%EOF" not in data[-_HEADER_WINDOW:]:
                # Lenient recovery of a cut-off file would return whatever revision
                # survived; the applicant should resend the whole file instead.
                raise UnusableDocument(
                    UnusableCode.DAMAGED,
                    f"truncated (no %%EOF at the end); {_describe(strict_error)}",
                ) from strict_error
            try:
                return _parse(data, strict=False)
            except UnusableDocument:
                raise
            except Exception as exc:
                if b"/Encrypt" in data:
                    # An encryption scheme pypdf cannot open (e.g. certificate security).
                    raise UnusableDocument(UnusableCode.ENCRYPTED, _describe(exc)) from exc
                raise UnusableDocument(
                    UnusableCode.DAMAGED,
                    f"strict: {_describe(strict_error)}; lenient: {_describe(exc)}",
                ) from exc


class _Repaired(Exception):  # noqa: N818 - an outcome, like UnusableDocument
    """pypdf had to repair the file while reading it in strict mode."""


class _RepairLog(logging.Handler):
    """Collects the warnings pypdf logs on this thread: each one is a repair it applied.

    pypdf's strict mode is not strict everywhere. Some repairs only log a warning, and
    one of them can return stale data. If an older cross-reference section cannot be
    read, pypdf stops reading the chain and finds each missing object by searching for
    the *first* ``N 0 obj`` in the file. In an incrementally updated form that object is
    the blank revision, so values that were typed in read as empty. So a strict parse
    that logged anything counts as failed, and the file is read again in lenient mode.
    (This relies on WARNING records of the ``pypdf`` logger being emitted. Hide pypdf's
    noise with handler filters or ``propagate = False``, not by raising its level.)
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the message of a record logged by the reading thread."""
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def _parse_strictly(data: bytes) -> dict[str, PdfField]:
    logger = logging.getLogger("pypdf")
    repairs = _RepairLog()
    logger.addHandler(repairs)
    try:
        fields = _parse(data, strict=True)
    except UnusableDocument as exc:
        if repairs.messages and exc.code is not UnusableCode.ENCRYPTED:
            raise _Repaired("; ".join(repairs.messages[:3])) from exc
        raise
    finally:
        logger.removeHandler(repairs)
    if repairs.messages:
        raise _Repaired("; ".join(repairs.messages[:3]))
    return fields


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _parse(data: bytes, *, strict: bool) -> dict[str, PdfField]:
    # PdfReader already tries the empty user password while opening.
    reader = PdfReader(BytesIO(data), strict=strict)
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise UnusableDocument(UnusableCode.ENCRYPTED, "a password is needed to open the file")
    root = reader.root_object
    acroform = _resolve(root.get("/AcroForm"))
    has_xfa = isinstance(acroform, DictionaryObject) and "/XFA" in acroform
    needs_rendering = _resolve(root.get("/NeedsRendering"))
    if has_xfa and isinstance(needs_rendering, BooleanObject) and needs_rendering.value:
        raise UnusableDocument(UnusableCode.XFA, "dynamic XFA form (/NeedsRendering true)")
    collected = _Collector()
    if isinstance(acroform, DictionaryObject):
        collected.walk_fields(_resolve(acroform.get("/Fields")))
    for page in reader.pages:
        collected.scan_annotations(_resolve(page.get("/Annots")))
    if not collected.entries:
        if has_xfa:
            raise UnusableDocument(UnusableCode.XFA, "XFA form without AcroForm fields")
        raise UnusableDocument(UnusableCode.NO_FIELDS, "no form fields and no widgets")
    return {name: entry.to_field(name) for name, entry in collected.entries.items()}


def _resolve(obj: Any) -> Any:
    """The direct object behind ``obj`` (``None`` for a dangling reference)."""
    seen = 0
    while isinstance(obj, IndirectObject) and seen < 8:
        obj = obj.get_object()
        seen += 1
    return obj


def _items(array: Any) -> Iterator[Any]:
    if isinstance(array, ArrayObject):
        for item in array:
            yield _resolve(item)


@dataclass
class _Entry:
    """Every dictionary in the file that carries one fully qualified field name."""

    terminals: list[DictionaryObject] = field(default_factory=list)
    widgets: list[DictionaryObject] = field(default_factory=list)

    def to_field(self, name: str) -> PdfField:
        field_type = self._first_inherited("/FT")
        button = field_type == "/Btn" or (field_type is None and bool(self._on_states()))
        if button:
            return PdfField(name, button=True, value=self._button_state())
        texts = [_clean(_text(value)) for value in self._values()]
        text = next((t for t in texts if t is not None), None)
        if field_type == "/Ch" and text is not None:
            text = self._export_value(text)
        return PdfField(name, button=False, value=text)

    def _first_inherited(self, key: str) -> Any:
        for terminal in self.terminals:
            value = _inherited(terminal, key)
            if value is not None:
                return value
        return None

    def _values(self) -> list[Any]:
        """Candidate ``/V``s, where the PDF spec puts them first.

        That is the field (or an ancestor), then widgets that carry their own ``/V``,
        from tools that write the value onto the widget kid.
        """
        values = [_inherited(terminal, "/V") for terminal in self.terminals]
        values += [_resolve(w.get("/V")) for w in self.widgets if not _same_in(w, self.terminals)]
        return [value for value in values if value is not None]

    def _on_states(self) -> set[str]:
        states: set[str] = set()
        for widget in self.widgets:
            states |= _appearance_states(widget)
        states.discard(_OFF)
        return states

    def _button_state(self) -> str | None:
        """The on-state that is set, reconciling ``/V`` with the widgets' ``/AS``.

        An on-state counts only when the widgets' ``/AP /N`` has an appearance for it
        (any name but ``/Off`` when no widget has appearances at all). When ``/V`` and
        ``/AS`` disagree, what the widgets show wins: macOS Preview rewrites the
        clicked radio kid and leaves the parent's ``/V`` stale. A ``/V`` set on a
        field whose widgets all show off still counts (viewers that render from ``/V``
        such as pdf.js show it set).
        """
        if _pushbutton(self._first_inherited("/Ff")):
            return None
        known = self._on_states()

        def on(state: Any) -> str | None:
            if isinstance(state, NameObject) and state != _OFF and (not known or state in known):
                return str(state)
            return None

        values = [name for name in map(on, self._values()) if name is not None]
        shown = [name for name in (on(_resolve(w.get("/AS"))) for w in self.widgets) if name]
        if shown:
            chosen = next((name for name in values if name in shown), shown[0])
        elif values:
            chosen = values[0]
        else:
            return None
        return chosen[1:]

    def _export_value(self, text: str) -> str:
        """Map a display label some tools store in ``/V`` back to its export value."""
        exports: set[str] = set()
        labels: dict[str, str] = {}
        for option in _items(self._first_inherited("/Opt")):
            # An option is a string, or an [export value, display label] pair.
            pair = list(_items(option)) if isinstance(option, ArrayObject) else [option, option]
            if len(pair) == 2:
                export, label = (_clean(_text(item)) for item in pair)
                if export is not None and label is not None:
                    exports.add(export)
                    labels.setdefault(label, export)
        return text if text in exports else labels.get(text, text)


class _Collector:
    """Finds every terminal field and widget, from ``/Fields`` and from the pages."""

    def __init__(self) -> None:
        config = get_configuration()
        self.max_nodes = config.form_fields_maximum_entries
        self.max_depth = config.form_fields_maximum_depth
        self.nodes = 0
        self.entries: dict[str, _Entry] = {}
        self._seen_terminals: set[int] = set()
        self._seen_widgets: set[int] = set()

    def _count(self) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise LimitReachedError(f"more than {self.max_nodes} form field objects")

    def walk_fields(self, fields: Any) -> None:
        """Walk the ``/Fields`` tree (iteratively, depth- and size-limited, cycle-safe)."""
        stack = [(node, 0) for node in reversed(list(_items(fields)))]
        visited: set[int] = set()
        while stack:
            node, depth = stack.pop()
            if not isinstance(node, DictionaryObject) or id(node) in visited:
                continue
            if depth > self.max_depth:
                raise LimitReachedError(f"form fields nested deeper than {self.max_depth}")
            self._count()
            visited.add(id(node))
            kids = [
                kid
                for kid in _items(_resolve(node.get("/Kids")))
                if isinstance(kid, DictionaryObject)
            ]
            named = [kid for kid in kids if "/T" in kid]
            stack.extend((kid, depth + 1) for kid in reversed(named))
            widgets = [kid for kid in kids if "/T" not in kid]
            if "/T" in node and not named:
                self._terminal(node)
            if node.get("/Subtype") == "/Widget":
                self.add_widget(node)
            for widget in widgets:
                self.add_widget(widget)

    def scan_annotations(self, annotations: Any) -> None:
        """Add the widgets of one page, including orphans missing from ``/Fields``."""
        for annotation in _items(annotations):
            if isinstance(annotation, DictionaryObject) and annotation.get("/Subtype") == "/Widget":
                self._count()
                self.add_widget(annotation)

    def add_widget(self, widget: DictionaryObject) -> None:
        """Attach a widget to its field: itself when merged (has ``/T``), else ``/Parent``."""
        terminal = widget if "/T" in widget else _resolve(widget.get("/Parent"))
        if not isinstance(terminal, DictionaryObject) or "/T" not in terminal:
            return  # a widget with no name anywhere cannot be matched to a field
        entry = self._terminal(terminal)
        if id(widget) not in self._seen_widgets:
            self._seen_widgets.add(id(widget))
            entry.widgets.append(widget)

    def _terminal(self, node: DictionaryObject) -> _Entry:
        name = self._qualified_name(node)
        entry = self.entries.setdefault(name, _Entry())
        if id(node) not in self._seen_terminals:
            self._seen_terminals.add(id(node))
            entry.terminals.append(node)
        return entry

    def _qualified_name(self, node: DictionaryObject) -> str:
        parts: list[str] = []
        seen: set[int] = set()
        current: Any = node
        while isinstance(current, DictionaryObject) and id(current) not in seen:
            if len(seen) > self.max_depth:
                raise LimitReachedError(f"form field parents deeper than {self.max_depth}")
            seen.add(id(current))
            partial = _text(_resolve(current.get("/T")))
            if partial:
                parts.append(partial)
            current = _resolve(current.get("/Parent"))
        return ".".join(reversed(parts))


def _inherited(node: DictionaryObject, key: str) -> Any:
    """``key`` from ``node`` or its nearest ancestor (``/FT``, ``/V``, ``/Ff`` inherit)."""
    current: Any = node
    for _ in range(get_configuration().form_fields_maximum_depth + 1):
        if not isinstance(current, DictionaryObject):
            return None
        if key in current:
            return _resolve(current[key])
        current = _resolve(current.get("/Parent"))
    return None


def _same_in(item: DictionaryObject, items: list[DictionaryObject]) -> bool:
    return any(item is other for other in items)


def _appearance_states(widget: DictionaryObject) -> set[str]:
    appearances = _resolve(widget.get("/AP"))
    normal = _resolve(appearances.get("/N")) if isinstance(appearances, DictionaryObject) else None
    if isinstance(normal, DictionaryObject) and not isinstance(normal, StreamObject):
        return {str(key) for key in normal}
    return set()


def _pushbutton(flags: Any) -> bool:
    return isinstance(flags, int) and bool(flags & _PUSHBUTTON_FLAG)


def _text(value: Any) -> str | None:
    """Decode a field value to text, whatever the producer wrote."""
    if isinstance(value, TextStringObject):
        return _text_string(value)
    if isinstance(value, (ByteStringObject, StreamObject)):
        # A stream is a text stream (PDF 32000 §12.7.4.3), decoded under the limits.
        return _decode_bytes(value.get_data() if isinstance(value, StreamObject) else value)
    if isinstance(value, ArrayObject):  # a multi-select choice
        # One level only: a nested (or self-referencing) array is no choice value.
        items = [item for item in _items(value) if not isinstance(item, ArrayObject)]
        return "\n".join(filter(None, (_clean(_text(item)) for item in items))) or None
    if isinstance(value, (NameObject, NumberObject, FloatObject)):
        # Some tools store a choice as a name, or a number as a number.
        return str(value).removeprefix("/")
    return None


def _text_string(value: TextStringObject) -> str:
    raw = value.original_bytes
    if not raw.startswith(_BOMS) and not raw.isascii():
        # pypdf decodes BOM-less strings as PDFDocEncoding; some producers write raw
        # UTF-8 there, which PDFDocEncoding turns into "Ã©". Valid multi-byte UTF-8 is
        # practically never genuine PDFDocEncoding text.
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return str(value)


def _decode_bytes(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8) :].decode("utf-8", errors="replace")
    if raw[:2] in (codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE):
        return raw.decode("utf-16", errors="replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        decoded = create_string_object(raw)
        return str(decoded) if isinstance(decoded, TextStringObject) else raw.decode("latin-1")


def _clean(text: str | None) -> str | None:
    """NFC, ``\\r\\n``/``\\r`` → ``\\n``, trimmed; empty → ``None``."""
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")
    text = unicodedata.normalize("NFC", text).strip()
    return text or None
