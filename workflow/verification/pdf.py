"""The pyHanko calls: reading the PDF, its signature fields, validating one signature.

Every use of pyHanko's private functions is here (see tests/test_pyhanko_private.py)."""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import serialization
from pyhanko.generated.etsi import ts_11910202
from pyhanko.pdf_utils import generic, misc, xref
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.misc import PdfDecodeLimitError
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader, RawPdfPath
from pyhanko.sign import general
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    DiffPolicy,
    DiffResult,
    SuspiciousModification,
)
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.general import NonexistentAttributeError, find_unique_cms_attribute
from pyhanko.sign.validation import (
    ades,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
    dss,
    generic_cms,
)
from pyhanko.sign.validation.ades import (
    AdESBasicValidationResult,
    ValidationObjectSet,
    _enumerate_certs_in_paths,
    _enumerate_validation_objects,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError, SignatureValidationError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.report.tools import (
    NAMESPACES,
    _generate_report,
    _package_validation_object,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import NO_REVOCATION, CertRevTrustPolicy
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig
from xsdata.formats.dataclass.serializers.writers import XmlEventWriter

from workflow.signature_report import (
    SignaturePolicy,
    TrustRootError,
)
from workflow.verification.findings import describe
from workflow.verification.limits import Limits
from workflow.verification.xml_writer import UnsupportedError, XmlWriter


class ReviewOnce(DiffPolicy):
    """pyHanko's default difference analysis, each review done once per document.

    The analysis is the most expensive step of a verification, and one review is asked
    three times: validating the office seal makes pyHanko review the revisions after the
    seal — for a consent signed as issued, exactly the revision the Commission's signature
    added —, `Verifier._check_revisions` reviews that same revision against the issued
    consent, and the ETSI report's AdES run reviews the seal again. A review depends only on
    its arguments (the reader, the base revision, the MDP settings), so a repeated question
    gets the first answer.

    ``issued`` is the consent as issued, when the file is bound to one: a review based on
    its last revision then looks for the paths to an object only through the objects whose
    bytes lead to it (:func:`issued_reach`).
    """

    def __init__(self, issued: bytes | None = None) -> None:
        self._reviews: dict[tuple[Any, ...], DiffResult | SuspiciousModification] = {}
        self._issued = issued

    def apply(
        self, old: Any, new: Any, field_mdp_spec: Any = None, doc_mdp: MDPPerm | None = None
    ) -> DiffResult:
        """Compare two revisions with the default policy (not remembered: reviews are)."""
        return DEFAULT_DIFF_POLICY.apply(old, new, field_mdp_spec, doc_mdp)

    def review_file(
        self,
        reader: PdfFileReader,
        base_revision: Any,
        field_mdp_spec: Any = None,
        doc_mdp: MDPPerm | None = None,
    ) -> DiffResult | SuspiciousModification:
        """The default policy's review of ``reader`` since ``base_revision``, computed once."""
        # A field lock read from the file holds a PDF array (unhashable): key on its values.
        lock = None
        if field_mdp_spec is not None:
            names = field_mdp_spec.fields
            lock = (field_mdp_spec.action, None if names is None else tuple(map(str, names)))
        key = (reader, base_revision, lock, doc_mdp)
        if key not in self._reviews:
            if self._issued is not None and isinstance(base_revision, int):
                _mark_issued(reader, base_revision, self._issued)
            self._reviews[key] = DEFAULT_DIFF_POLICY.review_file(
                reader, base_revision, field_mdp_spec=field_mdp_spec, doc_mdp=doc_mdp
            )
        return self._reviews[key]


# -- where the issued revision reaches an object -----------------------------------------
#
# For each object that a later revision rewrites, pyHanko's difference analysis asks every
# path by which the base revision reached it. pyHanko answers from a reverse index of the
# whole base revision (HistoricalResolver._load_reverse_xref_cache), which reads every
# object of it: 3.2 ms of a 12 ms verification of a consent, the fonts' /Widths most of it.
# When the base revision is the consent as issued (our own bytes, bound byte for byte), an
# object can only hold references written in its own bytes, so a path to an object only
# passes through objects whose bytes lead to it. The walk below is pyHanko's, entering only
# those; tests/test_pdf_tokens.py holds its answers to pyHanko's own on every reference.
_Key = tuple[int, int]
# "n g R" read backwards, from each R: the search runs from one R to the next (0.1 ms for
# a consent's 55 KB, against 2.4 ms forwards, where a match may start at any digit). Each R
# is tried, and the digits taken are whole runs, as a token of pyHanko's reader is; its
# pattern (INDIRECT_PATTERN) takes \s only, and only at a token's start: a superset.
_REFERENCE_BACKWARDS = re.compile(rb"R[\s\x00]+(\d+)[\s\x00]+(\d+)")
_STARTXREF = re.compile(rb"startxref[\s\x00]+(\d+)[\s\x00]+%%EOF[\s\x00]*$")


class _Reach:
    """Which objects of an issued revision name which references in their bytes."""

    def __init__(self, holders: dict[_Key, set[_Key]]) -> None:
        self.holders = holders  # a reference -> the objects whose bytes name it
        self.usages: dict[_Key, set[RawPdfPath]] = {}
        self.trees: tuple[dict[Any, Any], set[Any]] | None = None

    def leading_to(self, target: _Key) -> set[_Key]:
        """The objects from which ``target`` may be reached (itself only through a cycle)."""
        found: set[_Key] = set()
        todo = [target]
        while todo:
            for holder in self.holders.get(todo.pop(), ()):
                if holder not in found:
                    found.add(holder)
                    todo.append(holder)
        return found


def issued_reach(reader: PdfFileReader, revision: int, issued: bytes) -> _Reach | None:
    """The references each object of ``revision`` holds, read from the bytes of the consent
    as issued; None unless that revision is exactly its last one, in plain objects.

    The cross-reference section of ``revision`` must be the one the issued file's own
    ``startxref`` names, so that every object of the revision and of those before it is
    located by our own sections in our own bytes; object streams are not scanned (their
    objects are compressed), so a revision using them is left to pyHanko."""
    found = _STARTXREF.search(issued, max(0, len(issued) - 64))
    if not reader.strict or found is None:
        return None
    xrefs = reader.xrefs
    meta = xrefs.get_xref_container_info(revision)
    if meta.declared_startxref != int(found.group(1)):
        return None
    size = len(issued)
    positions = {size}
    versions: list[tuple[_Key, int]] = []
    for number in range(revision + 1):
        meta = xrefs.get_xref_container_info(number)
        section = xrefs.get_xref_data(number)
        if section.xrefs_in_objstm or section.hybrid is not None or meta.end_location > size:
            return None
        positions.add(min(meta.declared_startxref, meta.start_location))
        for idnum, (generation, offset) in section.standard_xrefs.items():
            if not 0 <= offset < size:
                return None
            positions.add(offset)
            versions.append(((idnum, generation), offset))
    ordered = sorted(positions)
    backwards = issued[::-1]
    holders: dict[_Key, set[_Key]] = defaultdict(set)
    for key, offset in versions:  # every version of each object: a superset again
        end = ordered[bisect_right(ordered, offset)]
        for match in _REFERENCE_BACKWARDS.finditer(backwards, size - end, size - offset):
            held = (int(match.group(2)[::-1]), int(match.group(1)[::-1]))
            holders[held].add(key)
    return _Reach(holders)


def _mark_issued(reader: PdfFileReader, revision: int, issued: bytes) -> None:
    view = reader.get_historical_resolver(revision)
    if "_issued_reach" not in vars(view) and view._indirect_object_access_cache is None:
        view._issued_reach = issued_reach(reader, revision, issued)  # type: ignore[attr-defined]


def _paths_to(view: HistoricalResolver, reach: _Reach, target: _Key) -> set[RawPdfPath]:
    """pyHanko's ``_load_reverse_xref_cache`` for one reference: the same walk, entering
    only the objects ``reach`` says may lead to ``target``. Every path to ``target`` passes
    through such objects only, and the page and structure trees are mapped in full, as
    pyHanko maps them, so the paths found are the ones pyHanko finds."""
    kept = reach.leading_to(target)
    collected: set[Any] = set()

    def walk(  # pyHanko's _compute_paths_to_refs, with its arguments
        obj: Any,
        cur_path: Any,
        seen_in_path: Any,
        *,
        page_tree_objs: dict[Any, Any],
        is_struct_tree: bool,
        struct_tree_objs: set[Any],
    ) -> None:
        if isinstance(obj, generic.IndirectObject):
            obj_ref = obj.reference
            if obj_ref in seen_in_path:
                return
            key = (obj_ref.idnum, obj_ref.generation)
            if key == target:
                collected.add(cur_path)
            if key not in kept:
                return  # no bytes of it lead to the target
            seen_in_path = seen_in_path.cons(obj_ref)
            obj = view(obj_ref)
            if page_tree_objs.get(obj_ref, cur_path) != cur_path:
                return
            if not is_struct_tree and obj_ref in struct_tree_objs:
                return
        if isinstance(obj, generic.DictionaryObject):
            for k, v in obj.items():
                if k == "/Parent" or (is_struct_tree and k == "/P"):
                    continue
                walk(
                    v,
                    cur_path.cons(k),
                    seen_in_path,
                    page_tree_objs=page_tree_objs,
                    is_struct_tree=is_struct_tree
                    or (
                        cur_path.head == "/StructTreeRoot"
                        and k == "/K"
                        and cur_path.tail == misc.ConsList.sing("/Root")
                    ),
                    struct_tree_objs=struct_tree_objs,
                )
        elif isinstance(obj, generic.ArrayObject):
            for ix, v in enumerate(obj):
                walk(
                    v,
                    cur_path.cons(ix),
                    seen_in_path,
                    page_tree_objs=page_tree_objs,
                    is_struct_tree=is_struct_tree,
                    struct_tree_objs=struct_tree_objs,
                )

    if reach.trees is None:
        reach.trees = _trees(view)
    page_tree_objs, struct_tree_objs = reach.trees
    walk(
        view.trailer_view,
        misc.ConsList.empty(),
        misc.ConsList.empty(),
        page_tree_objs=page_tree_objs,
        is_struct_tree=False,
        struct_tree_objs=struct_tree_objs,
    )
    return {RawPdfPath(*reversed(list(path))) for path in collected}


def _trees(view: HistoricalResolver) -> tuple[dict[Any, Any], set[Any]]:
    """The page tree's nodes with their canonical paths, and the structure tree's elements,
    mapped as pyHanko's ``_load_reverse_xref_cache`` maps them (errors included)."""

    def page_tree_refs(pages_obj: Any, path: Any) -> Iterator[tuple[Any, Any]]:
        for ix, kid in enumerate(pages_obj["/Kids"]):
            kid_path = path.cons("/Kids").cons(ix)
            if isinstance(kid, generic.IndirectObject):
                yield kid.reference, kid_path
            node = kid.get_object()
            if node.get("/Type", None) == "/Pages":
                yield from page_tree_refs(node, kid_path)

    def struct_tree_refs(struct_elem: Any) -> Iterator[Any]:
        try:
            children = struct_elem["/K"]
        except KeyError:
            return
        if not isinstance(children, generic.ArrayObject):
            children = (children,)
        for child in children:
            child_ref = None
            element: Any = child
            if isinstance(child, generic.IndirectObject):
                child_ref = child.reference
                element = child.get_object()  # type: ignore[no-untyped-call]
            if not isinstance(element, generic.DictionaryObject):
                continue
            try:
                if element["/Type"] != "/StructElem":
                    continue
            except KeyError:
                pass
            if child_ref is not None:
                yield child_ref
            yield from struct_tree_refs(element)

    pages_ref = view.root.raw_get("/Pages")
    pages_path = misc.ConsList.sing("/Root").cons("/Pages")
    page_tree_nodes: dict[Any, Any] = {}
    if isinstance(pages_ref, generic.IndirectObject):
        page_tree_nodes[pages_ref.reference] = pages_path
    for ref, path in page_tree_refs(pages_ref.get_object(), pages_path):
        if ref in page_tree_nodes:
            raise misc.PdfReadError("Circular reference in page tree in mapping stage")
        page_tree_nodes[ref] = path
    struct_tree_nodes: set[Any] = set()
    try:
        struct_tree_root = view.root.raw_get("/StructTreeRoot").get_object()
        for ref in struct_tree_refs(struct_tree_root):
            if ref in struct_tree_nodes:
                raise misc.PdfReadError("Circular reference in structure tree in mapping stage")
            struct_tree_nodes.add(ref)
    except KeyError:
        pass
    return page_tree_nodes, struct_tree_nodes


_usages_one_by_one: Any = HistoricalResolver._get_usages_of_ref
_reverse_index_one_by_one: Any = HistoricalResolver._load_reverse_xref_cache


def _get_usages_of_ref(self: Any, ref: Any) -> Any:
    """pyHanko's ``HistoricalResolver._get_usages_of_ref``; in the issued revision of a
    bound consent, the paths to ``ref`` alone, found by :func:`_paths_to`."""
    reach = vars(self).get("_issued_reach")
    if reach is None or self._indirect_object_access_cache is not None:
        return _usages_one_by_one(self, ref)
    key = (ref.idnum, ref.generation)
    if key not in reach.usages:
        reach.usages[key] = _paths_to(self, reach, key)
    return reach.usages[key]


def _load_reverse_xref_cache(self: Any) -> None:
    """pyHanko's reverse index of a revision; for the issued revision of a bound consent,
    nothing: :func:`_get_usages_of_ref` answers each question as it comes."""
    if vars(self).get("_issued_reach") is None:
        _reverse_index_one_by_one(self)


# The report classes' XML metadata, derived once per process: pyHanko's generate_report
# builds a new xsdata context for every report, and deriving it is half the report's cost.
_XML_CONTEXT = XmlContext()
#: The standard library's SAX writer: the same text as xsdata's default lxml writer, 9 %
#: faster (0.557 against 0.613 ms for a consent's report, a throwaway script, 2026-11-30).
_XML_SERIALIZER = XmlSerializer(
    config=SerializerConfig(indent="  "), context=_XML_CONTEXT, writer=XmlEventWriter
)
#: The same text in one pass for the models a report holds (``xml_writer``): a consent's
#: report took 0.60–0.65 ms of CPU in an engine instead of 1.37–1.48 (a throwaway script,
#: 300 consents through ``Intake.offer``, two interleaved pairs, 2026-11-30).
_XML_WRITER = XmlWriter(_XML_CONTEXT, NAMESPACES, indent="  ")


def etsi_xml(
    emb: EmbeddedPdfSignature,
    status: Any,
    context: ValidationContext,
    subindication: Any,
    failure: str | None,
) -> str:
    """pyHanko's ETSI TS 119 102-2 XML (``generate_report``) of :func:`etsi_model`."""
    return render_etsi(etsi_model(emb, status, context, subindication, failure))


def etsi_model(
    emb: EmbeddedPdfSignature,
    status: Any,
    context: ValidationContext,
    subindication: Any,
    failure: str | None,
) -> Any:
    """pyHanko's ETSI TS 119 102-2 report (the model ``generate_report`` writes) for the
    classic validation ``status`` of ``emb``, as a basic AdES result with ``subindication``.

    Its validation objects are those pyHanko's AdES engine lists: the revocation data of
    ``context`` and the certificates of the validation path."""
    result = AdESBasicValidationResult(
        ades_subindic=subindication,
        api_status=status,
        failure_msg=failure,
        validation_objects=ValidationObjectSet(
            _enumerate_validation_objects(context), _enumerate_certs_in_paths(status)
        ),
    )
    return ts_11910202.ValidationReport(
        signature_validation_report=(_generate_report(emb, result),),
        signature_validation_objects=ts_11910202.ValidationObjectListType(
            tuple(_package_validation_object(vo) for vo in result.validation_objects)
        ),
    )


def render_etsi(report: Any) -> str:
    """The XML of an ETSI report model, as xsdata writes it with pyHanko's namespaces
    (``generate_report``): in one pass where :mod:`xml_writer` can, by xsdata otherwise."""
    try:
        return _XML_WRITER.render(report)
    except UnsupportedError:
        return _XML_SERIALIZER.render(report, ns_map=NAMESPACES)


_PDF_WHITESPACE = b"\x00\t\n\x0c\r "
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_read_hex_string_one_by_one = generic.read_hex_string_from_stream


def _read_hex_string(stream: Any) -> Any:
    """pyHanko's ``read_hex_string_from_stream``, reading the string in one piece.

    pyHanko reads a hex string one character at a time, three Python calls a digit, and a
    signature's ``/Contents`` is thousands of digits: parsing the two of a consent was a
    sixth of its verification (``python -m bench.verify``). A string of hex digits and
    whitespace is decoded here at once; anything else (a comment, a bad character, no
    closing ``>``) is read again by pyHanko's own function, for its result or its error.
    """
    start = stream.tell()
    stream.read(1)  # the opening "<"
    parts = []
    while True:
        block = stream.read(1 << 16)
        end = block.find(b">")
        if end >= 0:
            parts.append(block[:end])
            break
        if not block:
            stream.seek(start)
            return _read_hex_string_one_by_one(stream)
        parts.append(block)
    raw = b"".join(parts)
    digits = raw.translate(None, _PDF_WHITESPACE)
    if digits.translate(None, _HEX_DIGITS):
        stream.seek(start)
        return _read_hex_string_one_by_one(stream)
    stream.seek(start + 1 + len(raw) + 1)
    return generic.pdf_string(binascii.unhexlify(digits + b"0" * (len(digits) % 2)))


_DELIMITER = re.compile(rb"[ \n\r\t\f\x00()<>\[\]{}/%]")
# (imported into generic from misc, hence not among its declared names for mypy)
_read_until_delimiter_one_by_one = vars(generic)["read_until_delimiter"]


def _read_until_delimiter(stream: Any) -> bytes:
    """pyHanko's ``read_until_delimiter`` (the bytes of a name or an operator), reading a
    block at a time instead of a character: the stream ends at the delimiter, or at its end."""
    start = stream.tell()
    parts = []
    while True:
        block = stream.read(256)
        if not block:
            break
        found = _DELIMITER.search(block)
        if found is not None:
            parts.append(block[: found.start()])
            break
        parts.append(block)
    token = b"".join(parts)
    stream.seek(start + len(token))
    return token


# The bytes a name may hold unescaped (pyHanko checks each one, one at a time).
_NAME_BYTES = bytes(set(range(0x21, 0x7F)) - set(b"()<>[]{}/%#"))
_decode_name_one_by_one = generic._decode_name


def _decode_name(name_bytes: bytes) -> Any:
    """pyHanko's ``_decode_name``; a name of plain characters (no ``#`` escape, nothing to
    refuse: almost every name) is made at once, anything else by pyHanko's own function."""
    if name_bytes.translate(None, _NAME_BYTES):
        return _decode_name_one_by_one(name_bytes)
    return generic.NameObject("/" + name_bytes.decode("ascii"))


# An array of plain numbers (a font's /Widths, a /MediaBox): each number costs pyHanko a
# look-ahead for "n g R" and a read of its own; a font's 128 widths were a third of a
# millisecond. Numbers separated by whitespace are read at once, anything else by pyHanko.
_WS = rb"[ \n\r\t\f\x00]"
_NUMBER = rb"[+-]?(?:\d+\.?\d*|\.\d+)"
_NUMBER_ARRAY = re.compile(
    rb"\[" + _WS + rb"*((?:" + _NUMBER + _WS + rb"+)*(?:" + _NUMBER + rb")?)" + _WS + rb"*\]"
)
_ONE_NUMBER = re.compile(_NUMBER)
_read_array_one_by_one = generic.ArrayObject.read_from_stream


def _pdf_number(text: bytes) -> Any:
    """The number pyHanko's NumberObject.read_from_stream makes of ``text`` (one _NUMBER)."""
    kind: Any = generic.FloatObject if b"." in text else generic.NumberObject
    return kind(text.decode("ascii"))


def _numbers(text: bytes, container_ref: Any) -> Any:
    """The array of the numbers in ``text`` (what _NUMBER_ARRAY's group holds)."""
    array = generic.ArrayObject()
    for token in _ONE_NUMBER.findall(text):
        number = _pdf_number(token)
        number.container_ref = container_ref
        array.append(number)
    return array


def _read_array(
    stream: Any, container_ref: Any, in_content_stream: Any = generic.ContentOpReading.NO
) -> Any:
    """pyHanko's ``ArrayObject.read_from_stream``; an array of numbers alone is read at once."""
    start = stream.tell()
    found = _NUMBER_ARRAY.match(stream.read(4096))
    if found is None:
        stream.seek(start)
        return _read_array_one_by_one(stream, container_ref, in_content_stream=in_content_stream)
    stream.seek(start + found.end())
    return _numbers(found.group(1), container_ref)


# A dictionary (an object's body, a font, a signature's /V): pyHanko reads it a byte and a
# few Python calls at a time, and the difference analysis reads every object of the issued
# revision. A dictionary of the plain tokens below is read here in one pass over a block of
# the file, one regular-expression match per token; at the first thing it does not handle
# (a comment, an escaped name, a key twice, a bad number, nesting past _DEPTH, the block's
# end), the whole dictionary is read again by pyHanko's own reader.
_read_dictionary_one_by_one = generic.DictionaryObject.read_from_stream
_SPACE = re.compile(_WS + rb"*")  # pyHanko's PDF_WHITESPACE
_TOKEN = re.compile(
    _WS + rb"*(?:"
    rb"/([^ \n\r\t\f\x00()<>\[\]{}/%]*)"  # 1: a name (read_until_delimiter's delimiters)
    # 2, 3: a reference, with only the separators pyHanko's look-ahead (INDIRECT_PATTERN,
    # on 20 bytes) and its reference reader agree on; the look-ahead is asked too
    rb"|(\d+)[ \n\r\t\f]+(\d+)[ \n\r\t\f]+R"
    rb"|([+,\-.0-9]+)"  # 4: what NumberObject.read_from_stream takes for a number
    rb"|(<<)|(>>)|(\[)|(\])"  # 5, 6, 7, 8
    rb"|<([^<>]*)>"  # 9: a hex string
    rb"|\(([^()\\]*)\)"  # 10: a literal string without escapes or parentheses
    rb"|(true|false|null)"  # 11: read as pyHanko does, no delimiter needed after
    rb"|(\()"  # 12: any other literal string
    rb")"
)
# In a literal string: plain bytes, "(", ")", or an escape (octal digits, a line break
# with a second \r or \n it swallows, or one byte).
_STRING_PART = re.compile(rb"([^()\\]+)|(\()|\)|\\([0-9]{1,3}|[\r\n][\r\n]?|.)", re.S)
_ESCAPED = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPED.update({bytes((byte,)): bytes((byte,)) for byte in b"() /%<>[]#_&$\\"})
_DEPTH = 32
_WINDOWS = (4096, 1 << 16, 1 << 20)
_made: Any = generic  # pyHanko's object classes, untyped for mypy


class _UnsureError(Exception):
    """The block holds something the fast reader leaves to pyHanko; ``at`` is where."""

    def __init__(self, at: int) -> None:
        self.at = at


def _parse_dictionary(  # noqa: PLR0912, PLR0915 - a branch per token kind, in one loop
    data: bytes, container_ref: Any, handler: Any
) -> tuple[Any, int]:
    """The entries of the dictionary whose ``<<`` starts ``data``, and where it ends.

    Each value gets ``container_ref`` as pyHanko's ``read_object`` sets it; keys do not.
    Raises :class:`_UnsureError` where pyHanko's own reader must decide."""
    match = _TOKEN.match
    entries: dict[Any, Any] = {}
    container: Any = entries
    key: Any = None
    stack: list[tuple[Any, Any]] = []
    at = 2
    while True:
        token = match(data, at)
        if token is None:
            at = _SPACE.match(data, at).end()  # type: ignore[union-attr]
            # A "<" matches nothing when its string's ">" is past the block: a bigger block.
            raise _UnsureError(len(data) if data[at : at + 1] == b"<" else at)
        kind = token.lastindex
        at = token.end()
        value: Any
        if kind == 1:
            raw = token.group(1)
            if raw.translate(None, _NAME_BYTES):
                raise _UnsureError(at)  # an escape or a byte pyHanko refuses
            value = generic.NameObject("/" + raw.decode("ascii"))
            if key is None and container.__class__ is dict:
                if value in container:
                    raise _UnsureError(at)  # pyHanko warns or refuses, by its strictness
                key = value
                continue
        elif kind == 3:  # (the reference's last group)
            start = token.start(2)
            number = int(token.group(2))
            if number <= 0 or not generic.INDIRECT_PATTERN.match(data, start, start + 20):
                raise _UnsureError(at)
            value = _made.IndirectObject(number, int(token.group(3)), handler)
        elif kind == 4:
            value = _number(token)
        elif kind in {5, 7}:  # << or [
            if len(stack) >= _DEPTH:
                raise _UnsureError(at)
            if kind == 7:
                numbers = _NUMBER_ARRAY.match(data, token.start(7))
                if numbers is not None:  # a /Widths, a /MediaBox: as _read_array reads them
                    at = numbers.end()
                    value = _numbers(numbers.group(1), container_ref)
                    container, key = _put(container, key, value, container_ref, at)
                    continue
            stack.append((container, key))
            container, key = ({} if kind == 5 else generic.ArrayObject()), None
            continue
        elif kind == 6:  # >>
            if container.__class__ is not dict or key is not None:
                raise _UnsureError(at)
            if not stack:
                return entries, at
            value = _made.DictionaryObject(container)
            container, key = stack.pop()
        elif kind == 8:  # ]
            if container.__class__ is dict:
                raise _UnsureError(at)
            value = container
            container, key = stack.pop()
        elif kind == 9:
            digits = token.group(9).translate(None, _PDF_WHITESPACE)
            if digits.translate(None, _HEX_DIGITS):
                raise _UnsureError(at)
            value = generic.pdf_string(binascii.unhexlify(digits + b"0" * (len(digits) % 2)))
        elif kind == 10:
            value = generic.pdf_string(token.group(10))
        elif kind == 11:
            word = token.group(11)
            null = word == b"null"
            value = generic.NullObject() if null else _made.BooleanObject(word == b"true")
        elif kind == 12:
            value, at = _escaped_string(data, token.end())
        else:
            raise AssertionError(f"token {kind}")  # every alternative has a group
        container, key = _put(container, key, value, container_ref, at)


def _put(container: Any, key: Any, value: Any, container_ref: Any, at: int) -> tuple[Any, None]:
    """``value`` into the open dictionary (under ``key``) or array."""
    value.container_ref = container_ref
    if container.__class__ is dict:
        if key is None:
            raise _UnsureError(at)  # a value where pyHanko reads a key
        container[key] = value
    else:
        container.append(value)
    return container, None


def _number(token: Any) -> Any:
    # (Where pyHanko's look-ahead sees a reference that the reference token did not, a
    # vertical tab separates its parts, and the tokens stop at it.)
    text = token.group(4)
    start = token.start(4)
    if _ONE_NUMBER.fullmatch(text) is None:
        raise _UnsureError(start)  # int() or Decimal() refuses it in pyHanko's reader
    return _pdf_number(text)


def _escaped_string(data: bytes, at: int) -> tuple[Any, int]:
    """The literal string after the ``(`` that ends at ``at``, its escapes and nested
    parentheses as pyHanko's ``_read_string_literal_bytes`` reads them (pyHanko's writer
    escapes ``:``, ``/``, ``.`` … as octal, so a consent's strings are full of them)."""
    parts = []
    parens = 1
    while True:
        part = _STRING_PART.match(data, at)
        if part is None:
            raise _UnsureError(len(data))  # the block ends inside the string
        at = part.end()
        text, opened, escaped = part.group(1, 2, 3)
        if text is not None:
            parts.append(text)
        elif opened is not None:
            parens += 1
            parts.append(opened)
        elif escaped is None:  # ")"
            parens -= 1
            if parens == 0:
                return generic.pdf_string(b"".join(parts)), at
            parts.append(b")")
        else:
            parts.append(_escape(escaped, at))


def _escape(escaped: bytes, at: int) -> bytes:
    """The bytes an escape in a literal string stands for (``at``: just after it). What
    pyHanko reads past an escape is in the block: the string's ")" comes after it."""
    if escaped[0] in b"0123456789":
        if b"8" in escaped or b"9" in escaped or int(escaped, 8) > 255:
            raise _UnsureError(at)  # pyHanko's int(…, 8) or bytes(…) refuses it
        return bytes((int(escaped, 8),))
    if escaped[0] in b"\r\n":
        return b""  # a line continued
    plain = _ESCAPED.get(escaped)
    if plain is None:
        raise _UnsureError(at)  # pyHanko refuses an unknown escape
    return plain


def _read_dictionary(
    stream: Any,
    container_ref: Any,
    as_metadata_stream: bool = False,
    in_content_stream: Any = generic.ContentOpReading.NO,
) -> Any:
    """pyHanko's ``DictionaryObject.read_from_stream``; a dictionary of plain tokens is read
    in one pass (`_read_fast`), anything else by pyHanko's own reader."""
    start = stream.tell()
    if not (in_content_stream or as_metadata_stream):
        result = _read_fast(stream, container_ref)
        if result is not None:
            return result
        stream.seek(start)
    return _read_dictionary_one_by_one(
        stream,
        container_ref,
        as_metadata_stream=as_metadata_stream,
        in_content_stream=in_content_stream,
    )


def _read_fast(stream: Any, container_ref: Any) -> Any:
    """The dictionary (or stream: its data read by pyHanko) at the stream's position, or
    None where pyHanko's reader must decide (the stream's position is then anywhere)."""
    handler = None
    with suppress(Exception):  # pyHanko's own reader says what is wrong with it
        handler = container_ref.get_pdf_handler()
    if handler is None:
        return None
    start = stream.tell()
    for window in _WINDOWS:
        stream.seek(start)
        data = stream.read(window)
        eof = len(data) < window
        try:
            if not data.startswith(b"<<"):
                raise _UnsureError(0)
            known = _PARSED.find(data, eof) if window == _WINDOWS[0] else None
            if known is not None:
                end = len(known[0])
                entries = _copy_entries(known[1], container_ref, handler)
            else:
                entries, end = _parse_dictionary(data, container_ref, handler)
                if end + 20 > len(data) and not eof:
                    # pyHanko looks 20 bytes ahead of a number for " 0 R": all are inside.
                    raise _UnsureError(len(data))
                if window == _WINDOWS[0]:
                    _PARSED.add(data[:end], entries)
        except _UnsureError as unsure:
            if eof or unsure.at + 64 < len(data):
                return None  # not for lack of bytes
            continue
        stream.seek(start + end)
        reader: Any = generic._maybe_read_stream_payload  # (untyped)
        payload = reader(stream, entries, handler)
        if payload is not None:
            return generic.StreamObject(entries, encoded_data=payload)
        return _made.DictionaryObject(entries)
    return None


# A consent's dictionaries are mostly its template's, byte for byte (the fonts with their
# widths, the page tree, the form as issued): 2 of every 3 that a verification parsed were
# byte-identical to one an earlier consent had. A dictionary's entries are a function of
# its bytes alone (each token ends before the ">>" that ends it; the reference look-ahead
# needs the byte after an "R", which comes before that ">>") and of the reader they are
# read for: each value names its container (``container_ref``), each reference its reader.
# So a dictionary parsed a second time is kept by its bytes, detached (no reader), and a
# later read of the same bytes gets a copy made for its own reader: the same objects the
# parser would make, at a fraction of the cost, and never an object another file's reader
# holds. Only the second parse keeps it: a file's own dictionaries (its trailers, its
# signature, its field values) come once, and would crowd out the template's.
_PREFIX = 48  # the bytes the kept dictionaries are indexed by
_PER_PREFIX = 8  # dictionaries kept with one prefix (a widget's start is common)
_KEPT_PREFIXES = 256  # then all are dropped and the store fills again
_KEPT_SIZE = 4096 - 20  # the first block: a bigger dictionary is parsed each time
_SEEN = 4096  # hashes of dictionaries parsed once, then all are forgotten


class _ParsedDictionaries:
    """Dictionaries parsed before: their bytes and their entries, detached from any reader.

    Bounded (at most ``_KEPT_PREFIXES * _PER_PREFIX`` dictionaries of at most
    ``_KEPT_SIZE`` bytes each) and safe to share between threads: an entry is never
    changed once stored, only replaced whole."""

    def __init__(self) -> None:
        self._by_prefix: dict[bytes, tuple[tuple[bytes, dict[Any, Any]], ...]] = {}
        self._seen: set[int] = set()

    def find(self, data: bytes, eof: bool) -> tuple[bytes, dict[Any, Any]] | None:
        """The kept dictionary that ``data`` (the block read, ``eof`` if it is the file's
        end) starts with: its bytes and its detached entries. Only one the parser would
        accept in this block: the 20 bytes after it are in the block too, or the file
        ends."""
        for raw, entries in self._by_prefix.get(data[:_PREFIX], ()):
            if data.startswith(raw) and (eof or len(data) >= len(raw) + 20):
                return raw, entries
        return None

    def add(self, raw: bytes, entries: dict[Any, Any]) -> None:
        """Keep the dictionary whose bytes are ``raw``, parsed as ``entries``, if these
        bytes were parsed before (by their hash: a collision keeps one more, no more)."""
        if not _PREFIX <= len(raw) <= _KEPT_SIZE:
            return  # a short one costs little to parse; a long one is rare
        seen = hash(raw)
        if seen not in self._seen:
            if len(self._seen) >= _SEEN:
                self._seen = set()
            self._seen.add(seen)
            return
        prefix = raw[:_PREFIX]
        kept = self._by_prefix.get(prefix, ())
        if len(kept) >= _PER_PREFIX:
            return
        if not kept and len(self._by_prefix) >= _KEPT_PREFIXES:
            self._by_prefix = {}
        self._by_prefix[prefix] = (*kept, (raw, _copy_entries(entries, None, None)))

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._by_prefix.values())

    def clear(self) -> None:
        """Forget every dictionary (for tests)."""
        self._by_prefix = {}
        self._seen = set()


_PARSED = _ParsedDictionaries()
_new_int: Any = int.__new__
_new_str: Any = str.__new__
_new_bytes: Any = bytes.__new__
_new_decimal: Any = Decimal.__new__


def _copy_entries(entries: dict[Any, Any], container_ref: Any, handler: Any) -> dict[Any, Any]:
    """A dictionary's entries as the parser makes them for ``container_ref`` (the values'
    container) and ``handler`` (the references' reader), copied from ``entries``; keys,
    which name no container, are shared."""
    return {key: _copy(value, container_ref, handler) for key, value in dict.items(entries)}


def _copy(value: Any, container_ref: Any, handler: Any) -> Any:
    """A copy of one parsed value, as `_parse_dictionary` makes it for this container."""
    kind = value.__class__
    new: Any
    if kind is _FLOAT:
        new = _new_decimal(_FLOAT, value)
    elif kind is _NAME:
        new = _new_str(_NAME, value)
    elif kind is _INTEGER:
        new = _new_int(_INTEGER, value)
    elif kind is _REFERENCE:
        reference = value.reference
        new = _made.IndirectObject(reference.idnum, reference.generation, handler)
    elif kind is _DICTIONARY:
        new = _made.DictionaryObject(_copy_entries(value, container_ref, handler))
    elif kind is _ARRAY:
        new = _ARRAY([_copy(item, container_ref, handler) for item in list.__iter__(value)])
    elif kind is _TEXT:
        new = _new_str(_TEXT, value)
        new.__dict__.update(value.__dict__)  # the encoding pdf_string detected
    elif kind is _BYTES:
        new = _new_bytes(_BYTES, value)
    elif kind is _BOOLEAN:
        new = _made.BooleanObject(value.value)
    elif kind is _NULL:
        new = generic.NullObject()
    else:
        raise TypeError(f"no parsed value is a {kind.__name__}")
    new.container_ref = container_ref
    return new


_FLOAT: Any = generic.FloatObject
_NAME: Any = generic.NameObject
_INTEGER: Any = generic.NumberObject
_REFERENCE: Any = generic.IndirectObject
_DICTIONARY: Any = generic.DictionaryObject
_ARRAY: Any = generic.ArrayObject
_TEXT: Any = generic.TextStringObject
_BYTES: Any = generic.ByteStringObject
_BOOLEAN: Any = generic.BooleanObject
_NULL: Any = generic.NullObject


# A cross-reference table: pyHanko reads each 20-byte line with a read, a split and a
# frozen dataclass, and the whitespace around each subsection a byte at a time. Tables
# whose every line is the standard form (``nnnnnnnnnn ggggg n`` and a two-byte end of line,
# ISO 32000-1 §7.5.4) are read with one match per subsection; anything else (a comment, a
# short line, a sign, an unknown marker) is read by pyHanko's own function from the
# table's start. A verification's tables, their trailers included, took a tenth of it;
# this takes 0 to 1.6 % off it (four in-process runs; the trailers are dictionaries, read
# as above). It also stops pyHanko's reader where it would loop (`_NoEndlessLines`).
_parse_xref_table_one_by_one: Any = xref.parse_xref_table
_XREF_SUBSECTION = re.compile(rb"(\d+)" + _WS + rb"+(\d+)" + _WS + rb"+")
_XREF_LINES = re.compile(rb"(?:\d{10} \d{5} [nf](?: \r| \n|\r\n))*+")
_XREF_TRAILER = re.compile(rb"trailer" + _WS + rb"*+(?=[^%])")  # and what follows
_STANDARD: Any = xref.XRefType.STANDARD
_FREE: Any = xref.XRefType.FREE
_XRefEntry: Any = xref.XRefEntry


def _parse_xref_table(stream: Any, strict: bool) -> Iterator[Any]:
    """pyHanko's ``parse_xref_table``: the entries of the table at the stream's position,
    and the stream left after the ``trailer`` keyword and the whitespace that follows."""
    start = stream.tell()
    entries = _xref_entries(stream.getbuffer(), start) if type(stream) is BytesIO else None
    if entries is None:
        stream.seek(start)
        yield from _parse_xref_table_one_by_one(_NoEndlessLines(stream), strict)
        return
    found, end = entries
    stream.seek(end)
    yield from found


class _NoEndlessLines:
    """The stream for pyHanko's table reader, which loops for ever where the file's
    nineteenth byte from the end is an end of line and a line read reaches it (it steps
    back 19 bytes from the end and reads the same short line again: found by comparing the
    two readers on random tables; pyHanko 0.38). The second such read raises instead."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._short_line_at = -1

    def read(self, size: int = -1) -> bytes:
        at = self._stream.tell()
        data: bytes = self._stream.read(size)
        if size == 20 and len(data) < size and data[:1] in (b"\r", b"\n"):
            if at == self._short_line_at:  # the same state again: it would never end
                raise misc.PdfReadError("The cross-reference table runs into the file's end.")
            self._short_line_at = at
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _xref_entries(view: memoryview, at: int) -> tuple[list[Any], int] | None:
    """The entries of a table of standard lines at ``at``, and where its trailer's
    dictionary starts; None where pyHanko's reader must decide."""
    with view:
        found: list[Any] = []
        at = _SPACE.match(view, at).end()  # type: ignore[union-attr]
        while True:
            header = _XREF_SUBSECTION.match(view, at)
            if header is None:
                return None
            # (As pyHanko's: the first number a NumberObject, the next ones plain ints.)
            number: Any = _made.NumberObject(int(header.group(1)))
            size = int(header.group(2))
            start, end = header.end(), header.end() + 20 * size
            table = _XREF_LINES.match(view, start, end)  # (it sees no further than end)
            if table is None or table.end() != end:
                return None
            block = table.group()
            for line in range(0, 20 * size, 20):
                generation = int(block[line + 11 : line + 16])
                if block[line + 17] == 0x6E:  # n
                    location = int(block[line : line + 10])
                    found.append(_XRefEntry(_STANDARD, location, number, generation))
                else:
                    found.append(_XRefEntry(_FREE, None, number, generation))
                number += 1
            # (A comment, which pyHanko's reader skips, matches neither: it decides.)
            at = _SPACE.match(view, table.end()).end()  # type: ignore[union-attr]
            trailer = _XREF_TRAILER.match(view, at)
            if trailer is not None:
                return found, trailer.end()


# PDFDocEncoding: pyHanko decodes every string of a PDF through a generator, a Python call a
# byte. A string of defined codes is decoded at once through the same table; one holding an
# undefined code goes to pyHanko's function, for its UnicodeDecodeError.
_decode_pdfdoc_one_by_one: Any = generic.decode_pdfdocencoding  # (untyped)
_PDFDOC_TABLE = "".join(vars(generic)["_pdfDocEncoding"])
_PDFDOC_DEFINED = bytes(code for code, char in enumerate(_PDFDOC_TABLE) if char != "\u0000")


def _decode_pdfdoc(byte_array: bytes | bytearray) -> str:
    """pyHanko's ``decode_pdfdocencoding``, a string at a time."""
    if byte_array.translate(None, _PDFDOC_DEFINED):
        return str(_decode_pdfdoc_one_by_one(byte_array))
    return codecs.charmap_decode(byte_array, "strict", _PDFDOC_TABLE)[0]


# asn1crypto compares names (the issuer of every certificate a signature names, for each
# certificate it carries) after RFC 4518's string preparation, a pass over each character
# with Unicode table look-ups, redone for every certificate object parsed: 16 times per
# consent, a twentieth of its verification. The preparation depends on the string alone
# (it never reads the object), so a bounded cache keyed on the string gives the same result.
_ldap_string_prep_uncached = asn1_x509.NameTypeAndValue._ldap_string_prep


@functools.lru_cache(maxsize=1024)
def _ldap_string_prep(string: str) -> str:
    return str(_ldap_string_prep_uncached(None, string))


def _ldap_string_prep_method(_self: Any, string: str) -> str:
    return _ldap_string_prep(string)


# asn1crypto compares two names (RFC 5280 7.1) by parsing and preparing every attribute of
# both, 49 us a comparison, six times per consent (the signer's issuer against each
# candidate certificate's subject). The answer depends on the two encodings alone, so it
# is kept by them; an encoding that cannot be read is compared by asn1crypto each time.
_names_equal_uncached = asn1_x509.RDNSequence.__eq__
_NAMES_EQUAL: dict[tuple[bytes, bytes], bool] = {}


def _remembered(
    table: dict[Any, Any], key: Any, compute: Callable[[], Any], *, limit: int = 4096
) -> Any:
    """``table[key]``, computed and kept if absent; bounded: a long-running worker meets
    few issuers, so the table is emptied when it is full rather than kept in order."""
    found = table.get(key)
    if found is None:
        found = compute()
        if len(table) >= limit:
            table.clear()
        table[key] = found
    return found


def _names_equal(self: Any, other: Any) -> Any:
    if not isinstance(other, asn1_x509.RDNSequence):
        return _names_equal_uncached(self, other)
    try:
        key = (self.dump(), other.dump())
    except Exception:
        return _names_equal_uncached(self, other)
    return _remembered(_NAMES_EQUAL, key, lambda: bool(_names_equal_uncached(self, other)))


# The same for a name's `hashable` form, by which pyhanko-certvalidator files each trust root
# and certificate in the fresh registry of each verification (7 per consent, 0.1 ms).
_hashable_uncached = vars(asn1_x509.RDNSequence)["hashable"]
_HASHABLE: dict[bytes, str] = {}


def _hashable(self: Any) -> Any:
    try:
        key = self.dump()
    except Exception:
        return _hashable_uncached.fget(self)
    return _remembered(_HASHABLE, key, lambda: _hashable_uncached.fget(self))


# pyHanko finds a signature's certificates, and the signer's among them, by reading every
# certificate of the CMS and matching each against the signer's issuer and serial number:
# three times per consent (the seal, the Commission's signature, its validation), each on
# objects read afresh, so that every later step parsed the same certificates again. The
# office seal and the Commission's certificates are the same in every consent: the answer
# depends only on the encodings of the certificates and of the signer's identifier, so it
# is kept by them, and the certificates read once serve every consent that carries them
# (9 % of a verification on an Intel Xeon, bench/HISTORY.md 2026-12-01). 64 sets at most:
# a worker meets few.
_certificate_info_one_by_one = general.extract_certificate_info
_CERTIFICATE_INFO: dict[tuple[bytes, bytes], general.SignedDataCerts] = {}


def _certificate_info(signed_data: Any) -> general.SignedDataCerts:
    try:
        key = (
            signed_data["certificates"].dump(),
            general.extract_signer_info(signed_data)["sid"].dump(),
        )
    except Exception:
        return _certificate_info_one_by_one(signed_data)  # raises as pyHanko does
    found: general.SignedDataCerts = _remembered(
        _CERTIFICATE_INFO, key, lambda: _certificate_info_one_by_one(signed_data), limit=64
    )
    # The certificates are shared (asn1crypto objects, read-only here); the lists are not.
    return general.SignedDataCerts(
        signer_cert=found.signer_cert,
        other_certs=list(found.other_certs),
        attribute_certs=list(found.attribute_certs),
    )


# pyHanko checks that a signature's signing-certificate attribute (ESS, RFC 5035) names
# the signer's certificate four times per consent: once for the office seal as it lists
# the embedded certificates, three times for the Commission's signature (reading its
# certificates, checking its integrity, its basic validation). Each parses the attribute
# afresh, 6.5 % of a verification (py-spy, an AMD EPYC, 2026-12-01). The answer depends
# only on the encodings of the certificate and of the attribute, which are the same in
# every consent the same key signed: a match is kept by them. A mismatch or an unreadable
# attribute is not kept: pyHanko checks it, and raises, each time.
_signing_certificate_one_by_one = generic_cms._check_signing_certificate
_SIGNING_CERTIFICATE_MATCHES: dict[tuple[bytes, bytes], bool] = {}


def _check_signing_certificate(cert: Any, signed_attrs: Any) -> None:
    try:
        attr = generic_cms.get_signing_cert_attr(signed_attrs)
        key = None if attr is None else (cert.dump(), attr.dump())
    except Exception:
        key = None
    if key is not None and key in _SIGNING_CERTIFICATE_MATCHES:
        return
    _signing_certificate_one_by_one(cert, signed_attrs)  # raises unless it matches
    if key is not None:
        _remembered(_SIGNING_CERTIFICATE_MATCHES, key, lambda: True, limit=64)


def signer_certificate(signature: EmbeddedPdfSignature) -> Any:
    """The certificate of ``signature``'s signer, named by its signer identifier as pyHanko
    names it, without pyHanko's check of the signing-certificate attribute: that check
    belongs to validating the signature. For the office seal as issued, which is not
    validated again (SPEC 7.5) but whose certificate the Commission's must not be:
    ``signature.signer_cert`` ran the check, 2.5 % of a consent's verification (py-spy of
    an in-process engine, an AMD EPYC, 2026-12-01)."""
    return _certificate_info(signature.signed_data).signer_cert


# A historical view of a revision (the difference analysis reads the issued one) copies
# every object it reads so that references resolve in that revision. For each number of a
# font's /Widths, a name, a string, pyHanko first builds a reference to its container
# that it then drops: the object itself comes back. Those are returned at once here.
_subsume_one_by_one: Any = HistoricalResolver._subsume_object  # (untyped)
_KEPT_AS_THEY_ARE: frozenset[type] = frozenset(
    {
        generic.NumberObject,
        generic.FloatObject,
        generic.NameObject,
        generic.TextStringObject,
        generic.ByteStringObject,
        generic.BooleanObject,
        generic.NullObject,
    }
)


def _subsume(self: Any, obj: Any) -> Any:
    """pyHanko's ``HistoricalResolver._subsume_object``; a plain value read from a file
    (whose container is a reference, as pyHanko requires) is returned as it is."""
    if type(obj) in _KEPT_AS_THEY_ARE and type(obj.container_ref) is generic.Reference:
        return obj
    return _subsume_one_by_one(self, obj)


# (owner, name, ours, as released): pyHanko's reader and asn1crypto look each one up by its
# name at each call.
_REPLACED: tuple[tuple[Any, str, Any, Any], ...] = (
    (generic, "read_hex_string_from_stream", _read_hex_string, _read_hex_string_one_by_one),
    (generic, "read_until_delimiter", _read_until_delimiter, _read_until_delimiter_one_by_one),
    (generic, "_decode_name", _decode_name, _decode_name_one_by_one),
    (
        generic.ArrayObject,
        "read_from_stream",
        staticmethod(_read_array),
        staticmethod(_read_array_one_by_one),
    ),
    (
        generic.DictionaryObject,
        "read_from_stream",
        staticmethod(_read_dictionary),
        staticmethod(_read_dictionary_one_by_one),
    ),
    (generic, "decode_pdfdocencoding", _decode_pdfdoc, _decode_pdfdoc_one_by_one),
    (asn1_x509.RDNSequence, "__eq__", _names_equal, _names_equal_uncached),
    (asn1_x509.RDNSequence, "hashable", property(_hashable), _hashable_uncached),
    (HistoricalResolver, "_subsume_object", _subsume, _subsume_one_by_one),
    (xref, "parse_xref_table", _parse_xref_table, _parse_xref_table_one_by_one),
    # by the name each module imported it under
    *(
        (module, "extract_certificate_info", _certificate_info, _certificate_info_one_by_one)
        for module in (general, generic_cms, ades, dss)
    ),
    (
        generic_cms,
        "_check_signing_certificate",
        _check_signing_certificate,
        _signing_certificate_one_by_one,
    ),
    (HistoricalResolver, "_get_usages_of_ref", _get_usages_of_ref, _usages_one_by_one),
    (
        HistoricalResolver,
        "_load_reverse_xref_cache",
        _load_reverse_xref_cache,
        _reverse_index_one_by_one,
    ),
    (
        asn1_x509.NameTypeAndValue,
        "_ldap_string_prep",
        _ldap_string_prep_method,
        _ldap_string_prep_uncached,
    ),
)


def _install(*, ours: bool) -> None:
    for owner, name, fast, shipped in _REPLACED:
        setattr(owner, name, fast if ours else shipped)


_install(ours=True)


@contextmanager
def pyhanko_as_shipped() -> Iterator[None]:
    """pyHanko's and asn1crypto's own functions while the block runs, for measuring the
    libraries as released (the benchmark's floor); what was there before comes back after,
    so blocks nest. Not beside other threads reading PDFs."""
    before = [(owner, name, vars(owner)[name]) for owner, name, _, _ in _REPLACED]
    _install(ours=False)
    try:
        yield
    finally:
        for owner, name, value in before:
            setattr(owner, name, value)


def open_reader(data: bytes, *, strict: bool, limits: Limits) -> PdfFileReader:
    """pyHanko's reader on ``data``, its stream decoding capped by ``limits``."""
    cap = limits.max_decoded
    decode = DecodeLimits(
        per_stream=StreamDecodeLimits(max_output_size=cap),
        document_budget=DocumentDecodeBudget(base_allowance=cap, max_ratio=0),
    )
    return PdfFileReader(BytesIO(data), strict=strict, decode_limits=decode)


def xref_section_ends(reader: PdfFileReader) -> list[int]:
    """Where each revision's cross-reference data ends, oldest first.

    pyHanko's xref cache is internal API (hence here, and pinned by its test)."""
    xrefs = reader.xrefs
    return [
        xrefs.get_xref_container_info(revision).end_location
        for revision in range(xrefs.total_revisions)
    ]


#: A file as read: pyHanko's reader, its filled signature fields, a note on how it was read.
Parsed = tuple[PdfFileReader, list[tuple[str, Any, Any]], str]


def read_pdf(data: bytes, limits: Limits) -> Parsed:
    """Open the PDF strictly, or tolerantly if only the strict reader refuses it.

    poppler's pdfsig (a real signing tool) writes a generation-1 object without freeing
    generation 0, which pyHanko's strict reader refuses. The tolerant reader is safe
    here because binding, revision and difference checks still apply to every byte.
    A decoding limit reached is not retried.
    """
    try:
        reader = open_reader(data, strict=True, limits=limits)
        fields = list(enumerate_sig_fields(reader, filled_status=True))
        return reader, fields, "The PDF is well-formed."
    except PdfDecodeLimitError:
        raise
    except Exception as exc:
        strict_error = describe(exc)
    reader = open_reader(data, strict=False, limits=limits)
    fields = list(enumerate_sig_fields(reader, filled_status=True))
    return reader, fields, f"The PDF was read in tolerant mode ({strict_error})."


def release(reader: PdfFileReader) -> None:
    """Empty the caches of a reader that is done with: each object read points back to the
    reader, so without this the whole file waits for the garbage collector's cycle search
    (collections took 0.66 ms per consent verified, 0.27 ms with this; gc.callbacks)."""
    for view in reader._historical_resolver_cache.values():
        view.cache.clear()
        view._indirect_object_access_cache = None
        vars(view).pop("_issued_reach", None)
    reader._historical_resolver_cache.clear()
    reader.resolved_objects.clear()
    reader._embedded_signatures = None


def load_certificates(path: Path) -> list[Any]:
    """Every certificate in a PEM (one or more) or DER file, as asn1crypto objects."""
    try:
        raw = path.read_bytes()
        if b"-----BEGIN" in raw:
            certs = pyca_x509.load_pem_x509_certificates(raw)
        else:
            certs = [pyca_x509.load_der_x509_certificate(raw)]
    except OSError as exc:
        raise TrustRootError(path, exc.strerror or str(exc)) from exc
    except ValueError as exc:
        raise TrustRootError(path, f"not a PEM or DER certificate ({exc})") from exc
    return [
        asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)) for cert in certs
    ]


def embed(
    reader: PdfFileReader, fields: list[tuple[str, Any, Any]]
) -> tuple[dict[str, EmbeddedPdfSignature], dict[str, str], list[str]]:
    """Read every filled signature field ourselves: pyHanko's own list silently drops
    fields with an unknown /SubFilter, and one bad signature would hide the others."""
    embedded: dict[str, EmbeddedPdfSignature] = {}
    broken: dict[str, str] = {}
    owners: dict[Any, list[str]] = {}
    for name, _value, field_ref in fields:
        field_dict = field_ref.get_object()
        value = field_dict.raw_get("/V")
        if isinstance(value, generic.IndirectObject):
            owners.setdefault(value.reference, []).append(name)
        try:
            emb = EmbeddedPdfSignature(reader, field_ref, name)
            subfilter = emb.sig_object.get("/SubFilter")
            if subfilter not in _SUBFILTERS:
                raise SignatureValidationError(f"unsupported /SubFilter {subfilter}")
            embedded[name] = emb
        except Exception as exc:
            broken[name] = describe(exc)
    shared = [name for names in owners.values() if len(names) > 1 for name in names]
    return embedded, broken, shared


_SUBFILTERS = frozenset(
    {"/adbe.pkcs7.detached", "/ETSI.CAdES.detached", "/ETSI.RFC3161", "/PBAD.PAdES"}
)


def certification_of(embedded: dict[str, EmbeddedPdfSignature]) -> EmbeddedPdfSignature | None:
    for emb in embedded.values():
        if emb.sig_object_type == "/Sig" and emb.docmdp_level is not None:
            return emb
    return None


def _adobe_revinfo(embedded: Any) -> tuple[list[Any], list[Any]]:
    crls: list[Any] = []
    ocsps: list[Any] = []
    for emb in embedded:
        try:
            archival = find_unique_cms_attribute(
                emb.signer_info["signed_attrs"], "adobe_revocation_info_archival"
            )
        except NonexistentAttributeError:
            continue
        crls.extend(asn1_crl.CertificateList.load(c.dump()) for c in archival["crl"] or ())
        ocsps.extend(asn1_ocsp.OCSPResponse.load(o.dump()) for o in archival["ocsp"] or ())
    return crls, ocsps


def validation_context(
    policy: SignaturePolicy,
    roots: tuple[Any, ...],
    reader: PdfFileReader,
    embedded: Any,
    *,
    revocation: bool = True,
) -> ValidationContext:
    """A fresh pyHanko validation context: the configured roots, the file's DSS and the
    Adobe-style revocation data of ``embedded``; fetching only if ``policy.fetch``."""
    kwargs: dict[str, Any] = {
        "trust_roots": list(roots),
        "allow_fetching": policy.fetch and revocation,
    }
    if policy.revocation == "off" or not revocation:
        kwargs["revinfo_policy"] = CertRevTrustPolicy(NO_REVOCATION)
    else:
        kwargs["revocation_mode"] = policy.revocation
    # Adobe-style revocation data inside the CMS (Acrobat's default) is not read by
    # pyHanko's classic API, so it is added to the context by hand.
    crls, ocsps = _adobe_revinfo(embedded)
    kwargs["crls"], kwargs["ocsps"] = crls, ocsps
    try:
        return DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs)
    except NoDSSFoundError:
        return ValidationContext(**kwargs)


async def validate(
    emb: EmbeddedPdfSignature, context: ValidationContext, reviews: DiffPolicy
) -> Any:
    """pyHanko's status of one signature or document timestamp."""
    if emb.sig_object_type == "/DocTimeStamp":
        return await async_validate_pdf_timestamp(
            emb, validation_context=context, diff_policy=reviews
        )
    return await async_validate_pdf_signature(emb, context, diff_policy=reviews)


async def trusted_without_revocation(
    policy: SignaturePolicy, roots: tuple[Any, ...], emb: EmbeddedPdfSignature
) -> bool:
    """Whether ``emb`` chains to a root when revocation is not asked for."""
    context = validation_context(policy, roots, emb.reader, [emb], revocation=False)
    status = await async_validate_pdf_signature(emb, context, skip_diff=True)
    return bool(status.trusted)
