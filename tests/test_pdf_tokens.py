"""The functions that replace pyHanko's and asn1crypto's (workflow/verification/pdf.py:
hex strings, delimited tokens, names, arrays, dictionaries and their literal strings,
PDFDocEncoding, historical views, name comparison, RFC 4518 string preparation) give what
the libraries' own give: same object, same error, same position in the stream."""

from __future__ import annotations

import inspect
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic, misc, xref
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import general
from pyhanko.sign.validation import generic_cms
from pyhanko.sign.validation.errors import SignatureValidationError

from forms.consent import render_consent_body
from tests.test_consent import sample_eoi
from workflow.verification import pdf

CASES = [
    b"<>",
    b"<4142>",
    b"<414>",
    b"<41 42\n43\r\t\x0c\x0044>",
    b"<feff00e9>",  # a text string (UTF-16 with its byte-order mark)
    b"<FEFF00E9>",
    b"<41%a comment>\n42>",
    b"<4G>",
    b"<4142",
    b"<",
    b"<41>>",
    b"<4142> /Next 1 0 R",
    b"<" + b"0a1B" * 5000 + b">tail",
    b"<" + b"41" * 40000 + b">",  # longer than one block of the fast reader
]


def _read(reader: Any, data: bytes) -> tuple[Any, ...]:
    stream = BytesIO(data)
    try:
        value = reader(stream)
    except Exception as exc:  # the error is part of what must match
        return ("error", type(exc), stream.tell())
    return (type(value), bytes(value.original_bytes), str(value), stream.tell())


@pytest.mark.parametrize("data", CASES)
def test_same_result_as_pyhanko(data: bytes) -> None:
    assert _read(pdf._read_hex_string, data) == _read(pdf._read_hex_string_one_by_one, data)


def test_same_result_as_pyhanko_on_random_strings() -> None:
    rng = random.Random(20261129)
    alphabet = b"0123456789abcdefABCDEF \n\r\t\x00%>Gz<"
    for _ in range(2000):
        data = b"<" + bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        fast, slow = _read(pdf._read_hex_string, data), _read(pdf._read_hex_string_one_by_one, data)
        assert fast == slow, data


def test_pyhanko_reads_through_them() -> None:
    """pyHanko's reader calls the functions by their module names, which pdf.py sets."""
    assert generic.read_hex_string_from_stream is pdf._read_hex_string
    assert generic.read_until_delimiter is pdf._read_until_delimiter  # type: ignore[attr-defined]
    assert generic._decode_name is pdf._decode_name
    assert "read_hex_string_from_stream(stream)" in inspect.getsource(generic.read_object)
    reads_name = inspect.getsource(generic.NameObject.read_from_stream)
    assert "read_until_delimiter(stream)" in reads_name
    assert "_decode_name(name_bytes)" in reads_name
    for original in (
        pdf._read_hex_string_one_by_one,
        pdf._read_until_delimiter_one_by_one,
        pdf._decode_name_one_by_one,
    ):
        assert original.__module__.startswith("pyhanko.pdf_utils."), original
    value = generic.read_object(BytesIO(b"<4142>"), container_ref=None)  # type: ignore[arg-type]
    assert isinstance(value, generic.TextStringObject)
    assert bytes(value.original_bytes) == b"AB"


TOKENS = [
    b"",
    b"Type",
    b"Type/Font",
    b"Font ",
    b"F1\n",
    b"A#20B>",
    b"abc(def)",
    b"x" * 300 + b" tail",  # longer than one block of the fast reader
    b"x" * 600,
    b"\xe9t\xe9[",
    b"%comment",
]


def _token(reader: Any, data: bytes) -> tuple[Any, ...]:
    stream = BytesIO(data)
    return reader(stream), stream.tell()


@pytest.mark.parametrize("data", TOKENS)
def test_same_tokens_as_pyhanko(data: bytes) -> None:
    fast = _token(pdf._read_until_delimiter, data)
    assert fast == _token(pdf._read_until_delimiter_one_by_one, data)


NAMES = [b"", b"Type", b"A#20B", b"A#2", b"A#zz", b"\xc3\xa9", b"\xe9", b"A\x7fB", b"A B", b"a(b"]


def _name(decode: Any, data: bytes) -> tuple[Any, ...]:
    try:
        name = decode(data)
    except Exception as exc:
        return ("error", type(exc))
    return (type(name), str(name))


@pytest.mark.parametrize("data", NAMES)
def test_same_names_as_pyhanko(data: bytes) -> None:
    assert _name(pdf._decode_name, data) == _name(pdf._decode_name_one_by_one, data)


def test_same_tokens_and_names_on_random_bytes() -> None:
    rng = random.Random(29112026)
    alphabet = b"abcXYZ019#_-.  \n\t\x00()<>[]{}/%\x7f\xe9\xc3\xa9"
    for _ in range(2000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        fast = _token(pdf._read_until_delimiter, data)
        assert fast == _token(pdf._read_until_delimiter_one_by_one, data), data
        assert _name(pdf._decode_name, data) == _name(pdf._decode_name_one_by_one, data), data


def test_pyhanko_as_shipped_for_the_benchmark_floor() -> None:
    """The floor measures pyHanko as released: its own readers inside the block, ours after."""
    with pdf.pyhanko_as_shipped():
        with pdf.pyhanko_as_shipped():  # nested (the floor's validation inside its loop)
            assert generic._decode_name is pdf._decode_name_one_by_one
        assert generic.ArrayObject.read_from_stream is pdf._read_array_one_by_one
        assert asn1_x509.NameTypeAndValue._ldap_string_prep is pdf._ldap_string_prep_uncached
        assert generic.read_hex_string_from_stream is pdf._read_hex_string_one_by_one
        assert generic._decode_name is pdf._decode_name_one_by_one
        assert vars(generic)["read_until_delimiter"] is pdf._read_until_delimiter_one_by_one
        assert vars(generic_cms)["extract_certificate_info"] is pdf._certificate_info_one_by_one
    assert vars(generic_cms)["extract_certificate_info"] is pdf._certificate_info
    assert generic.read_hex_string_from_stream is pdf._read_hex_string
    assert generic._decode_name is pdf._decode_name
    assert vars(generic)["read_until_delimiter"] is pdf._read_until_delimiter
    assert asn1_x509.NameTypeAndValue._ldap_string_prep is pdf._ldap_string_prep_method
    assert generic.ArrayObject.read_from_stream is pdf._read_array


PREPARED = [
    "European Commission",
    "  Two  Spaces ",
    "ÉCOLE",
    "Ǆemal",
    "a\u00adb",
    "\u0340",
    "x\ufffdy",
    "",
]


def _prepared(prepare: Any, string: str) -> tuple[Any, ...]:
    try:
        return ("ok", prepare(string))
    except Exception as exc:
        return ("error", type(exc), str(exc))


@pytest.mark.parametrize("string", PREPARED)
def test_same_string_preparation_as_asn1crypto(string: str) -> None:
    """A name value's RFC 4518 preparation, through asn1crypto's own objects, is the same with
    the cache (twice: the second from it) as with asn1crypto's own function."""

    def prepared() -> tuple[Any, ...]:
        value = asn1_x509.Name.build({"common_name": string}).chosen[0][0]
        return _prepared(lambda _: value.prepped_value, string)

    with pdf.pyhanko_as_shipped():
        shipped = prepared()
    for _ in range(2):
        assert prepared() == shipped


def test_names_compare_as_before() -> None:
    """asn1crypto's name comparison goes through the cached preparation and still applies it:
    case and inner spaces do not count, other characters do."""
    assert asn1_x509.NameTypeAndValue._ldap_string_prep is pdf._ldap_string_prep_method
    name = asn1_x509.Name.build
    assert name({"common_name": "European  Commission"}) == name(
        {"common_name": "european commission"}
    )
    assert name({"common_name": "European Commission"}) != name(
        {"common_name": "European Commissi0n"}
    )


ARRAYS = [
    b"[]",
    b"[ ]",
    b"[1]",
    b"[ 0 0 595.2756 841.8898 ]",
    b"[ 600.0977 317.8711\n  562.0117 ] /Next",
    b"[-1 +2 .5 5. -.25 007]",
    b"[1 0 R]",
    b"[1 0 R 2 0 R]",
    b"[1 2.5-3]",
    b"[1.2.3]",
    b"[1,2]",
    b"[ /Name 1 ]",
    b"[ (a) 1 ]",
    b"[1 2 %comment\n 3]",
    b"[\x001\x0c2\x00]",
    b"[1 2",
    b"[" + b" 600.0977" * 1000 + b" ]",  # longer than the fast reader's look
]


def _array(reader: Any, data: bytes, content: Any) -> tuple[Any, ...]:
    stream = BytesIO(data)
    try:
        array = reader(stream, None, in_content_stream=content)
    except Exception as exc:
        return ("error", type(exc), stream.tell())
    # Each item by type, value and spelling (600.0977 is not 600.09770); an operator has no
    # repr of its own, so its literal stands for it.
    items = tuple(
        (type(item), item, getattr(item, "literal", None) or repr(item), item.container_ref)
        for item in array
    )
    return (type(array), items, stream.tell())


@pytest.mark.parametrize(
    "content", [generic.ContentOpReading.NO, generic.ContentOpReading.GRAPHIC_OPS]
)
@pytest.mark.parametrize("data", ARRAYS)
def test_same_arrays_as_pyhanko(data: bytes, content: Any) -> None:
    fast = _array(pdf._read_array, data, content)
    assert fast == _array(pdf._read_array_one_by_one, data, content)


def test_same_arrays_on_random_numbers() -> None:
    rng = random.Random(2911)
    pieces = [b"1", b"0", b"-", b"+", b".", b"5", b"R", b" ", b"\n", b"/N", b"]", b"12"]
    for _ in range(2000):
        data = b"[" + b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 20))) + b"]"
        for content in (generic.ContentOpReading.NO, generic.ContentOpReading.GRAPHIC_OPS):
            fast = _array(pdf._read_array, data, content)
            assert fast == _array(pdf._read_array_one_by_one, data, content), data


# A dictionary read the fast way must be the object pyHanko builds: same types, values,
# containers, stream data, error and position in the stream.
DICTIONARIES = [
    b"<<>>",
    b"<< >>",
    b"<</Type/Catalog/Pages 2 0 R>>",
    b"<<\n/Type /Page\n/MediaBox [ 0 0 595.2756 841.8898 ]\n/Parent 13 0 R\n>>\nendobj",
    b"<< /A << /B [ 1 0 R /N (s) <41> true false null -.5 +3 7. ] >> /C 12 >>",
    b"<< /Kids [ 1 0 R 2 0 R 3 0 R ] /Count 3 >>",
    b"<< /S (plain) /E (esc\\(aped\\) \\205 \\n) /N (nested (parens)) >>",
    b"<< /U (https\\072\\057\\057www\\056iso\\056org) /V (\\0722022) >>",  # pyHanko's writer
    b"<< /O (\\0\\12\\123\\1234\\400) >>",
    b"<< /O (\\8) >>",
    b"<< /O (\\19) >>",
    b"<< /E (\\n\\r\\t\\b\\f\\(\\)\\\\\\ \\/\\%\\<\\>\\[\\]\\#\\_\\&\\$) >>",
    b"<< /E (\\q) >>",
    b"<< /L (a\\\nb\\\r\nc\\\n\nd\\\re) >>",  # continued lines
    b"<< /P (a(b(c)d)e) /Q ((()))) >>",
    b"<< /T (\xfe\xff\\000A) >>",
    b"<< /T (abc\\",
    b"<< /T (abc\\1",
    b"<< /H <feff00e9> /G <4 1> /Bad <4G> >>",
    b"<< /B true/C false/D null>>",
    b"<< /Length 5 >>\nstream\nhello\nendstream",
    b"<< /Length 5 >> stream\r\nhello\nendstream",
    b"<< /Length 3 >>\nstream\nhello\nendstream",  # too short: pyHanko's error
    b"<< /A << /Length 2 >> stream\nab\nendstream >>",  # a stream where a value is
    b"<< /A << /X 1 >> % a comment\n/B 2 >>",
    b"<< % a comment\n/A 1 >>",
    b"<< /A 1 /A 2 >>",  # a key twice
    b"<< /A#20B 1 >>",
    b"<< /A /b#20c >>",
    b"<< /\xe9 1 >>",
    b"<< /A 1.2.3 >>",
    b"<< /A 1,2 >>",
    b"<< /A +-1 >>",
    b"<< /A 0 0 R >>",  # object number 0
    b"<< /A 1 0\x0bR >>",
    b"<< /A 1\x0b0 R /B [2\x0b0 R] >>",  # a vertical tab: a reference to pyHanko's look-ahead
    b"<< /A 1\x000 R >>",
    b"<< /A 1 0 Rx >>",
    b"<< /A 1 0 R>>",
    b"<< /A 123456789 0 R >>",
    b"<< /A 12345678901234567 0 R >>",  # the look-ahead of 20 bytes ends before R
    b"<< /A truex >>",
    b"<< /A [true1 null/N] >>",  # pyHanko reads a keyword's letters alone
    b"<< /A nul >>",
    b"<< /A {1} >>",
    b"<< /A 1 >x",
    b"<< 1 2 >>",
    b"<< /A [1 2 3 >>",
    b"<< /A (unclosed >>",
    b"<< /A 1",
    b"< /A 1 >>",
    b"<<" + b"/A [" * 40 + b"1" + b"]" * 40 + b">>",  # deeper than the fast reader goes
    b"<< /A " + b"<< /B " * 20 + b"1" + b" >>" * 20 + b" >>",
    b"<< /W [" + b" 600.0977" * 1000 + b" ] /R 1 0 R >>",  # past the first block
    b"<< /C <" + b"0a1b" * 5000 + b"> /R 7 0 R >>",  # a signature's /Contents
    b"<< /Pad (" + b"x" * 4070 + b") /R 12 0 R >>",  # a reference across the first block
]


@pytest.fixture(scope="module")
def handler() -> Any:
    """A real reader to hold the references that dictionaries name."""
    out = BytesIO()
    writer: Any = PdfFileWriter
    writer().write(out)
    return PdfFileReader(BytesIO(out.getvalue()))


def _tree(value: Any) -> Any:
    """An object as a comparable value: its type, its parts, and the container it names."""
    container = value.__dict__.get("container_ref") if hasattr(value, "__dict__") else None
    where = None
    if container is not None:
        where = (type(container), container.idnum, container.generation, id(container.pdf))
    parts: Any
    if isinstance(value, generic.StreamObject):
        parts = (_entries(value), value._encoded_data)
    elif isinstance(value, generic.DictionaryObject):
        parts = _entries(value)
    elif isinstance(value, generic.ArrayObject):
        parts = tuple(_tree(item) for item in value)
    elif isinstance(value, generic.IndirectObject):
        parts = (value.reference.idnum, value.reference.generation, id(value.reference.pdf))
    elif isinstance(value, generic.NullObject):
        parts = None
    elif isinstance(value, generic.BooleanObject):
        parts = value.value
    elif isinstance(value, generic.TextStringObject):
        parts = (str(value), value.autodetected_encoding)
    else:
        parts = (repr(value), str(value))
    return (type(value), parts, where)


def _entries(value: Any) -> tuple[Any, ...]:
    return tuple((_tree(key), _tree(item)) for key, item in dict.items(value))


def _object(data: bytes, start: int, container: Any, *, shipped: bool) -> tuple[Any, ...]:
    stream = BytesIO(data)
    stream.seek(start)
    try:
        if shipped:
            with pdf.pyhanko_as_shipped():
                value = generic.read_object(stream, container)
        else:
            value = generic.read_object(stream, container)
    except Exception as exc:
        return ("error", type(exc), str(exc), stream.tell())
    return (_tree(value), stream.tell())


def _same(data: bytes, start: int, container: Any) -> None:
    fast = _object(data, start, container, shipped=False)
    assert fast == _object(data, start, container, shipped=True), data[start : start + 200]


@pytest.mark.parametrize("data", DICTIONARIES)
def test_same_dictionaries_as_pyhanko(data: bytes, handler: Any) -> None:
    _same(data, 0, generic.Reference(7, 0, handler))


def test_pyhanko_reads_dictionaries_through_ours() -> None:
    assert generic.DictionaryObject.read_from_stream is pdf._read_dictionary
    assert "DictionaryObject.read_from_stream(" in inspect.getsource(generic.read_object)
    assert pdf._read_dictionary_one_by_one.__module__ == "pyhanko.pdf_utils.generic"
    with pdf.pyhanko_as_shipped():
        assert generic.DictionaryObject.read_from_stream is pdf._read_dictionary_one_by_one


def test_same_dictionaries_on_random_tokens(handler: Any) -> None:
    rng = random.Random(291126)
    pieces = [
        b"/A", b"/B", b" ", b"\n", b"\x00", b"1", b"0", b"R", b"2 0 R", b"-", b".", b"<<",
        b">>", b"[", b"]", b"(", b")", b"\\", b"<41>", b"true", b"null", b"%", b"#20", b"s",
    ]  # fmt: skip
    container = generic.Reference(7, 0, handler)
    for _ in range(3000):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 16)))
        _same(b"<< " + body + b" >>", 0, container)


_SCALARS = [
    *[b"/N", b"/Type", b"/A+B", b"/", b"/a#20b", b"/F1+0"],
    *[b"0", b"12", b"-3", b"+4", b".5", b"6.", b"-0.25", b"007", b"1.2.3"],
    *[b"true", b"false", b"null"],
    *[b"(a b)", b"()", b"(x\\)y)", b"(a(b)c)", b"(\\101\\n)", b"(\xe9)", b"(\\072\\0571)"],
    *[b"(\\9)", b"(a\\\r\nb)", b"(\\q)", b"(\\\\)", b"(\\()", b"(\\1234)", b"(\\777)"],
    *[b"<>", b"<41>", b"<feff00e9>", b"<4 1 4>", b"<4G>"],
]
_SPACES = [b" ", b"", b"\n", b"  ", b"\r\n", b"\x00", b"\x0c"]


def _random_value(rng: random.Random, depth: int) -> bytes:
    """A well-formed PDF object, mostly: what the fast reader reads itself."""
    kind = rng.randrange(10 if depth < 4 else 8)
    if kind < 5:
        return rng.choice(_SCALARS)
    if kind < 8:
        space = rng.choice(_SPACES)
        return b"%d%s%d%sR" % (rng.randrange(0, 30), space, rng.randrange(0, 3), space)
    if kind == 8:
        items = [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
        return b"[" + rng.choice(_SPACES) + b" ".join(items) + rng.choice(_SPACES) + b"]"
    keys = rng.sample([b"/A", b"/B", b"/C", b"/Length", b"/Type"], rng.randrange(0, 4))
    entries = b"".join(
        key + rng.choice(_SPACES) + _random_value(rng, depth + 1) + b" " for key in keys
    )
    return b"<<" + rng.choice(_SPACES) + entries + b">>"


def test_same_dictionaries_on_random_objects(handler: Any) -> None:
    rng = random.Random(1129)
    container = generic.Reference(7, 0, handler)
    fast = 0
    for _ in range(3000):
        keys = rng.sample([b"/A", b"/B", b"/C", b"/D", b"/E"], rng.randrange(0, 5))
        body = b" ".join(key + b" " + _random_value(rng, 0) for key in keys)
        data = b"<<" + body + b">>" + rng.choice([b"", b"\nendobj", b" 1 0 R"])
        _same(data, 0, container)
        fast += pdf._read_fast(BytesIO(data), container) is not None
    assert fast > 1500  # most of them: the comparison is of the fast reader, not pyHanko's


def _objects_of(data: bytes) -> Iterator[tuple[int, Any]]:
    """Where each object of each revision starts, after its header, with its reference."""
    read_object_header: Any = xref.read_object_header  # (untyped)

    reader = PdfFileReader(BytesIO(data), strict=False)
    starts = set()
    for revision in range(reader.xrefs.total_revisions):
        for ref in reader.xrefs.explicit_refs_in_revision(revision):
            start = reader.xrefs.get_historical_ref(ref, revision)
            if isinstance(start, int) and start not in starts:
                starts.add(start)
                stream = BytesIO(data)
                stream.seek(start)
                read_object_header(stream, strict=False)
                yield stream.tell(), generic.Reference(ref.idnum, ref.generation, reader)


def test_same_objects_in_real_files(corpus_forms: Path, corpus_signatures: Path) -> None:
    """Every object of the real forms and signed files (Acrobat, LibreOffice, the EU's DSS
    suite …) and of a consent as issued reads the same both ways."""
    files = [path.read_bytes() for folder in (corpus_forms, corpus_signatures)
             for path in sorted(folder.glob("*.pdf"))]  # fmt: skip
    when = datetime.now(UTC)
    files.append(render_consent_body(sample_eoi(), reference="SUP-2026-00001", issued_at=when))
    read = 0
    for data in files:
        try:
            objects = list(_objects_of(data))
        except Exception:
            continue  # a file too broken to list its objects (the corpus has some)
        for start, container in objects:
            _same(data, start, container)
            read += 1
    assert read > 1500


def _signatures_of(folder: Path) -> Iterator[tuple[str, Any]]:
    """Each signature pyHanko lists in the PDFs of ``folder``, with its file's name; a file
    too broken to list its signatures (the DSS corpus has some) is passed over."""
    for path in sorted(folder.glob("*.pdf")):
        try:
            reader = PdfFileReader(BytesIO(path.read_bytes()), strict=False)
            signatures = list(reader.embedded_signatures)
        except Exception:
            continue
        for signature in signatures:
            yield path.name, signature


def _certificates(find: Any, signed_data: Any) -> tuple[Any, ...]:
    try:
        info = find(signed_data)
    except Exception as exc:
        return ("error", type(exc), str(exc))
    return (
        info.signer_cert.dump(),
        [cert.dump() for cert in info.other_certs],
        [cert.dump() for cert in info.attribute_certs],
    )


def test_certificates_are_found_as_pyhanko_finds_them(corpus_signatures: Path) -> None:
    """For every signature of the DSS suite's files (real signers, chains, timestamps,
    attacks), the signer's certificate and the others are pyHanko's, read afresh or kept;
    and the same certificates with another signer identifier name that other signer."""
    compared = 0
    chains = []
    for name, signature in _signatures_of(corpus_signatures):
        raw = bytes(signature.sig_object["/Contents"])
        pdf._CERTIFICATE_INFO.clear()
        expected = _certificates(pdf._certificate_info_one_by_one, signature.signed_data)
        for _ in range(2):  # read afresh, then kept; each time from new objects
            signed_data = cms.ContentInfo.load(raw)["content"]
            assert _certificates(pdf._certificate_info, signed_data) == expected, name
        compared += 1
        if expected[0] != "error" and expected[1]:
            chains.append(raw)
    assert compared > 10 and chains
    for raw in chains:
        signed_data = cms.ContentInfo.load(raw)["content"]
        signer = pdf._certificate_info(signed_data).signer_cert
        other = next(c.chosen for c in signed_data["certificates"]
                     if c.name == "certificate" and c.chosen.dump() != signer.dump())  # fmt: skip
        info = signed_data["signer_infos"][0]
        info["sid"] = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": other.issuer, "serial_number": other.serial_number},
        )
        signed_data["signer_infos"] = cms.SignerInfos([info])  # encoded anew up to the top
        whole = cms.ContentInfo({"content_type": "signed_data", "content": signed_data})
        changed = cms.ContentInfo.load(whole.dump())["content"]
        found = _certificates(pdf._certificate_info, changed)
        assert found == _certificates(pdf._certificate_info_one_by_one, changed)
        assert found[0] == other.dump()


def test_the_seals_certificate_is_the_one_pyhanko_names(corpus_signatures: Path) -> None:
    """``signer_certificate`` (the office seal's, which is not validated again) is the
    certificate pyHanko's ``signer_cert`` names for every signature of the DSS suite whose
    signing-certificate attribute pyHanko accepts, and raises where pyHanko finds no
    signer's certificate at all."""
    named = 0
    for name, signature in _signatures_of(corpus_signatures):
        found = _certificates(pdf._certificate_info_one_by_one, signature.signed_data)
        if found[0] == "error":
            with pytest.raises(found[1]):
                pdf.signer_certificate(signature)
            continue
        ours = pdf.signer_certificate(signature).dump()
        assert ours == found[0], name
        try:
            theirs = signature.signer_cert.dump()  # with the attribute's check
        except SignatureValidationError:
            continue
        assert ours == theirs, name
        named += 1
    assert named > 10


def _signing_certificate_check(check: Any, cert: Any, signed_attrs: Any) -> tuple[Any, ...]:
    try:
        check(cert, signed_attrs)
    except Exception as exc:
        return ("error", type(exc), str(exc))
    return ("match",)


def test_signing_certificates_are_checked_as_pyhanko_checks_them(
    corpus_signatures: Path,
) -> None:
    """``pdf._check_signing_certificate``, which keeps the matches it found, answers as
    pyHanko's own check for every signature of the DSS suite, twice over (the second time
    from what it kept), and for each signature's attribute against another signature's
    signer certificate: a mismatch raises as pyHanko does, every time."""
    pairs = []
    for name, signature in _signatures_of(corpus_signatures):
        try:
            cert = pdf._certificate_info_one_by_one(signature.signed_data).signer_cert
            attrs = general.extract_signer_info(signature.signed_data)["signed_attrs"]
        except Exception:
            continue
        pairs.append((name, cert, attrs))
    others = [cert for _, cert, _ in pairs[1:] + pairs[:1]]  # the next signature's signer
    answers = {"match": 0, "error": 0}
    pdf._SIGNING_CERTIFICATE_MATCHES.clear()
    for _ in range(2):
        for (name, cert, attrs), other in zip(pairs, others, strict=True):
            for signer in (cert, other):
                theirs = _signing_certificate_check(pdf._signing_certificate_one_by_one,
                                                    signer, attrs)  # fmt: skip
                ours = _signing_certificate_check(pdf._check_signing_certificate, signer, attrs)
                assert ours == theirs, name
                answers[theirs[0]] += 1
    assert pdf._SIGNING_CERTIFICATE_MATCHES  # kept: the second pass answered from them
    assert answers["match"] > 10
    assert answers["error"] > 10, answers


def test_a_consents_dictionaries_are_read_the_fast_way(handler: Any) -> None:
    """The fast reader does not hand the objects of a consent as issued, nor a signature's
    dictionary with its long /Contents, back to pyHanko: it is there to read them."""
    data = render_consent_body(
        sample_eoi(), reference="SUP-2026-00001", issued_at=datetime.now(UTC)
    )
    read = 0
    for start, container in _objects_of(data):
        if data.startswith(b"<<", start + 1) or data.startswith(b"<<", start):
            stream = BytesIO(data)
            stream.seek(start + (data[start : start + 1] != b"<"))
            assert pdf._read_fast(stream, container) is not None, data[start : start + 200]
            read += 1
    assert read > 10
    signature = b"<< /Type /Sig /Contents <" + b"3082" * 4096 + b"> /ByteRange [ 0 10 20 30 ] >>"
    assert pdf._read_fast(BytesIO(signature), generic.Reference(7, 0, handler)) is not None


def _parts(value: Any) -> Iterator[Any]:
    """Every object a read value is made of (not the keys, which name no container)."""
    yield value
    if isinstance(value, dict):
        for item in dict.values(value):
            yield from _parts(item)
    elif isinstance(value, list):
        for item in list.__iter__(value):
            yield from _parts(item)
    elif isinstance(value, generic.IndirectObject):
        yield value.reference


def test_a_dictionary_read_again_is_a_copy_made_for_its_reader(handler: Any) -> None:
    """A consent's dictionaries read a second time, for another reader, come from the kept
    ones: the same objects pyHanko makes for that reader, none of them shared with the
    first read's, whatever the first reader did to its own."""
    data = render_consent_body(
        sample_eoi(), reference="SUP-2026-00001", issued_at=datetime.now(UTC)
    )
    other = PdfFileReader(BytesIO(data))
    again = 0
    for start, first in _objects_of(data):
        pdf._PARSED.clear()
        stream = BytesIO(data)
        for _ in range(2):  # a dictionary is kept when it is parsed a second time
            stream.seek(start)
            before = generic.read_object(stream, first)
        second = generic.Reference(first.idnum, first.generation, other)
        if len(pdf._PARSED):  # kept: the next read is a copy
            again += 1
            for part in _parts(before):  # what a reader may do to the objects it holds
                if isinstance(part, dict):
                    dict.__setitem__(part, generic.NameObject("/Changed"), generic.NullObject())
                elif isinstance(part, list):
                    part.append(generic.NullObject())
        _same(data, start, second)  # read ours first, from the kept dictionary
        stream.seek(start)
        after = generic.read_object(stream, second)
        assert not {id(part) for part in _parts(before)} & {id(part) for part in _parts(after)}
    assert again > 5  # the fonts, the page, the form's fields …
    pdf._PARSED.clear()
    block = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 >>"
    container = generic.Reference(7, 0, handler)
    for tail in (b" 12 0 R", b"\nendobj", b"", b" 1", b" 12 0 R"):  # the same, then others
        assert pdf._read_fast(BytesIO(block + tail), container) is not None
        _same(block + tail, 0, container)
    assert len(pdf._PARSED) == 1


@pytest.mark.parametrize(
    "data",
    [bytes((code,)) for code in range(256)]
    + [b"", bytes(range(1, 256)), b"Consent form \x85 SUP-2026-00001", bytearray(b"a\x9fb")],
)
def test_same_pdfdoc_text_as_pyhanko(data: bytes) -> None:
    """PDFDocEncoding, each of its 256 codes and whole strings (undefined codes refused)."""

    def decoded(decode: Any) -> tuple[Any, ...]:
        try:
            return ("ok", decode(data))
        except Exception as exc:
            return ("error", type(exc), str(exc))

    assert decoded(pdf._decode_pdfdoc) == decoded(pdf._decode_pdfdoc_one_by_one)
    assert generic.decode_pdfdocencoding is pdf._decode_pdfdoc


def test_names_compare_as_asn1crypto_compares_them() -> None:
    """Name equality (RFC 5280 7.1), kept by the two encodings, answers as asn1crypto does,
    the first time and from the cache; so does a name against something else, and so does
    the hashable form of each name."""
    build = asn1_x509.Name.build
    names = [
        build({"common_name": "European Commission", "organization_name": "EC"}),
        build({"common_name": "european  commission", "organization_name": "ec"}),
        build({"organization_name": "EC", "common_name": "European Commission"}),
        build({"common_name": "European Commissi0n", "organization_name": "EC"}),
        build({"common_name": "European Commission"}),
        build({"common_name": "ÉCOLE", "country_name": "FR"}),
        build({"common_name": "école", "country_name": "FR"}),
        build({"common_name": "x", "organization_name": "EC"}, use_printable=True),
        asn1_x509.Name.load(build({"common_name": "EC"}).dump()),  # parsed, not built
    ]
    for one in names:
        for other in [*names, "EC", None]:
            with pdf.pyhanko_as_shipped():
                expected = (one == other, one != other)
            assert (one == other, one != other) == expected
            assert (one == other, one != other) == expected  # from the cache
        with pdf.pyhanko_as_shipped():
            expected_key = one.hashable
        assert one.hashable == one.hashable == expected_key


def _view(value: Any, roles: dict[int, str]) -> Any:
    """_tree of an object, with each handler named by its role rather than its identity."""
    if isinstance(value, (list, tuple)):
        return tuple(_view(item, roles) for item in value)
    if isinstance(value, int) and not isinstance(value, bool) and value in roles:
        return roles[value]
    return value


def _resolved(resolver: Any, ref: Any) -> Any:
    try:
        return _tree(resolver(ref))
    except Exception as exc:  # a broken file's error is part of what must match
        return ("error", type(exc), str(exc))


def test_historical_views_are_as_pyhankos(corpus_signatures: Path) -> None:
    """Every object of every earlier revision, as a historical view of it (what the
    difference analysis reads) gives it, is the object pyHanko's own copy gives."""
    files = [path.read_bytes() for path in sorted(corpus_signatures.glob("*.pdf"))]
    files.append(
        render_consent_body(sample_eoi(), reference="SUP-2026-00001", issued_at=datetime.now(UTC))
    )
    compared = 0
    for data in files:
        reader = PdfFileReader(BytesIO(data), strict=False)
        for revision in range(reader.xrefs.total_revisions):
            refs = list(reader.xrefs.explicit_refs_in_revision(revision))
            views = []
            for shipped in (True, False):
                resolver = HistoricalResolver(reader, revision)
                roles = {id(resolver): "resolver", id(reader): "reader"}
                if shipped:
                    with pdf.pyhanko_as_shipped():
                        objects = [_resolved(resolver, ref) for ref in refs]
                else:
                    objects = [_resolved(resolver, ref) for ref in refs]
                views.append(_view(objects, roles))
            assert views[0] == views[1]
            compared += len(refs)
    assert compared > 300


def _revision_prefixes(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Each revision of ``data`` with the file as it was when that revision was written
    (up to the ``%%EOF`` after its cross-reference section)."""
    reader = PdfFileReader(BytesIO(data), strict=True)
    for revision, end in enumerate(pdf.xref_section_ends(reader)):
        eof = data.find(b"%%EOF", end)
        if eof >= 0:
            yield revision, data[: eof + 5] + b"\n"


def _reach_cases(files: list[bytes]) -> Iterator[tuple[Any, int, Any]]:
    """(a fresh strict reader, a revision, that revision's reach) wherever there is one."""
    for data in files:
        try:
            prefixes = list(_revision_prefixes(data))
        except Exception:
            continue  # not readable strictly: issued_reach is never asked for it
        for revision, prefix in prefixes:
            reader = PdfFileReader(BytesIO(data), strict=True)
            reach = pdf.issued_reach(reader, revision, prefix)
            if reach is not None:
                yield reader, revision, reach


def test_paths_to_each_object_are_pyhankos(corpus_forms: Path, corpus_signatures: Path) -> None:
    """For every object of every revision of the real files (page trees of Acrobat and
    LibreOffice forms, the DSS suite's added pages and annotations) and of a consent as
    issued, the paths found by entering only the objects whose bytes lead to it are the
    paths in pyHanko's own reverse index of the revision."""
    files = [path.read_bytes() for folder in (corpus_forms, corpus_signatures)
             for path in sorted(folder.glob("*.pdf"))]  # fmt: skip
    files.append(
        render_consent_body(sample_eoi(), reference="SUP-2026-00001", issued_at=datetime.now(UTC))
    )
    files.append(_handmade_pdf(HANDMADE))
    compared = revisions = 0
    for reader, revision, reach in _reach_cases(files):
        shipped: Any = HistoricalResolver(reader, revision)
        try:
            with pdf.pyhanko_as_shipped():
                shipped._load_reverse_xref_cache()
        except Exception:
            continue  # a broken object anywhere (only our own bytes are asked about)
        index = shipped._indirect_object_access_cache
        assert index is not None
        ours = HistoricalResolver(reader, revision)
        absent = generic.Reference(10**6, 0, reader)
        for ref in [*index, absent]:
            expected = index.get(ref, set())
            assert pdf._paths_to(ours, reach, (ref.idnum, ref.generation)) == expected, ref
            compared += bool(expected)
        revisions += 1
    assert revisions > 20
    assert compared > 500


# References as a writer may space them (any whitespace, leading zeros, right after a
# string), a page reached from outside its tree, a cycle through a widget's /P.
HANDMADE = {
    1: b"<< /Type /Catalog /Pages 2 0 R /Names 7\n0\r\nR "
    b"/Extra [ 3\t0\x0cR (s)4 0 R <41>5 0 R ] >>",
    2: b"<< /Type /Pages /Kids [ 6 0 R ] /Count 1 >>",
    3: b"<< /A 0005 0 R /Text (8 0 R) >>",
    4: b"<< /B 6 0 R >>",
    5: b"<< /C [ 3 0 R 4 0 R ] >>",
    6: b"<< /Type /Page /Parent 2 0 R /MediaBox [ 0 0 10 10 ] /Annots [ 8 0 R ] >>",
    7: b"<< /D 8  \n  0  \t R >>",
    8: b"<< /Subtype /Widget /P 6 0 R /Kids [ 9 0 R ] >>",
    9: b"<< /E 1 0 R >>",
}


def _handmade_pdf(objects: dict[int, bytes]) -> bytes:
    """A one-revision PDF of ``objects`` (numbered 1…n) with its cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in sorted(objects.items()):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    start = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        start,
    )
    return bytes(out)


def test_only_a_revision_in_plain_objects_of_the_issued_bytes_has_a_reach() -> None:
    """A reach is read only from the bytes that end with the revision's own section."""
    data = render_consent_body(
        sample_eoi(), reference="SUP-2026-00001", issued_at=datetime.now(UTC)
    )
    strict = PdfFileReader(BytesIO(data), strict=True)
    assert pdf.issued_reach(strict, 0, data) is not None
    # another file's bytes, or a section that is not the one its startxref names
    assert pdf.issued_reach(strict, 0, data + b"\n1 0 obj\n<<>>\nendobj\n") is None
    elsewhere = data[: data.rfind(b"startxref")] + b"startxref\n9\n%%EOF\n"
    assert pdf.issued_reach(strict, 0, elsewhere) is None
    assert pdf.issued_reach(PdfFileReader(BytesIO(data), strict=False), 0, data) is None
    # object streams: their objects are compressed, so no bytes tell what they hold
    pdf_objects: Any = generic  # (untyped)
    new_writer: Any = PdfFileWriter
    writer = new_writer(stream_xrefs=True)
    extra = pdf_objects.DictionaryObject({"/Key": pdf_objects.NumberObject(1)})
    writer.root["/Extra"] = writer.add_object(extra, obj_stream=writer.prepare_object_stream())
    out = BytesIO()
    writer.write(out)
    packed = out.getvalue()
    reader = PdfFileReader(BytesIO(packed), strict=True)
    assert reader.xrefs.get_xref_data(0).xrefs_in_objstm
    assert pdf.issued_reach(reader, 0, packed) is None


def _xref_table(parse: Any, data: bytes, start: int, strict: bool) -> tuple[Any, ...]:
    """What a table parser yields (each entry with its number's type), raises, and where
    it leaves the stream."""
    stream = BytesIO(data)
    stream.seek(start)
    entries: list[Any] = []
    try:
        for entry in parse(stream, strict):
            entries.append((entry, type(entry.idnum)))
    except Exception as exc:
        return (entries, "error", type(exc), str(exc))
    return (entries, stream.tell())


class _EndlessError(BaseException):
    """pyHanko's table reader read far more than the data holds: it would never stop."""


class _Bounded:
    """A stream that stops a reader looping over it (ours raises a PdfReadError there)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 10_000:
            raise _EndlessError
        data: bytes = self.stream.read(size)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _pyhankos_table(stream: Any, strict: bool) -> Iterator[Any]:
    return pdf._parse_xref_table_one_by_one(_Bounded(stream), strict)  # type: ignore[no-any-return]


def _same_xref_table(data: bytes, start: int = 0) -> int:
    """Compare the two readers on the table at ``start``; return how many times pyHanko's
    looped (strict and not)."""
    endless = 0
    for strict in (True, False):
        ours = _xref_table(pdf._parse_xref_table, data, start, strict)
        try:
            theirs = _xref_table(_pyhankos_table, data, start, strict)
        except _EndlessError:  # where pyHanko's loops, ours says why it cannot read on
            assert ours[1:3] == ("error", misc.PdfReadError), (strict, data[start:][:300])
            endless += 1
            continue
        assert ours == theirs, (strict, data[start : start + 300])
    return endless


def test_a_table_that_runs_into_the_files_end_is_refused() -> None:
    """pyHanko 0.38's table reader steps back and reads the same line for ever when a line
    starting with an end of line comes within 19 bytes of the end (non-strict reading,
    as binding and the tolerant retry read): ours stops there."""
    data = b"0 2\n12345 00001 x\r\n12 1\r\n12345 1 x\r\ntrailer"
    stream = BytesIO(data)
    with pytest.raises(_EndlessError):
        list(_pyhankos_table(stream, False))
    stream.seek(0)
    with pytest.raises(misc.PdfReadError, match="runs into the file's end"):
        list(pdf._parse_xref_table(stream, False))


def test_pyhanko_reads_xref_tables_through_ours() -> None:
    assert xref.parse_xref_table is pdf._parse_xref_table
    assert "parse_xref_table(" in inspect.getsource(xref.XRefBuilder._read_xref_table)
    assert pdf._parse_xref_table_one_by_one.__module__ == "pyhanko.pdf_utils.xref"
    with pdf.pyhanko_as_shipped():
        assert xref.parse_xref_table is pdf._parse_xref_table_one_by_one


def test_same_xref_tables_in_real_files(corpus_forms: Path, corpus_signatures: Path) -> None:
    """Every cross-reference table of the real forms and signed files, and of a consent,
    reads the same both ways; a consent's are read the fast way."""
    files = [path.read_bytes() for folder in (corpus_forms, corpus_signatures)
             for path in sorted(folder.glob("*.pdf"))]  # fmt: skip
    consent = render_consent_body(
        sample_eoi(), reference="SUP-2026-00001", issued_at=datetime.now(UTC)
    )
    tables = 0
    for data in [*files, consent]:
        at = data.find(b"xref")
        while at >= 0:
            if data[at - 1 : at] != b"t":  # not a startxref
                _same_xref_table(data, at + 4)
                tables += 1
            at = data.find(b"xref", at + 4)
    assert tables > 30  # (most of the corpus has cross-reference streams)
    at = consent.find(b"\nxref") + 5
    assert pdf._xref_entries(memoryview(consent), at) is not None


def test_same_xref_tables_on_random_lines() -> None:
    """Random tables, half of them well-formed, the others with flaws: a comment, a short or
    long line, a sign, a bad marker, a missing or commented trailer, a line too many or
    too few."""
    rng = random.Random(1201)
    good_ends = [b" \n", b" \r", b"\r\n"]
    bad_ends = [b"\n", b"\r", b"  \n", b"\n\n", b" "]
    fast = 0
    for _ in range(3000):
        flawed = rng.random() < 0.5  # flaws here and there in half of them

        def pick(good: list[bytes], bad: list[bytes], flawed: bool = flawed) -> bytes:
            return rng.choice(bad if flawed and rng.random() < 0.25 else good)

        parts = [pick([b"", b"\n", b" ", b"\r\n"], [b"% note\n"])]
        for _ in range(rng.randrange(1, 4)):
            size = rng.choice([0, 1, 2, 3, 5])
            first = pick([b"0", b"1", b"7", b"00", b"12"], [b"+3", b"1.0"])
            parts.append(first + pick([b" ", b"  ", b"\n"], [b"% c\n"]) + str(size).encode())
            parts.append(pick([b"\n", b" ", b"\r\n"], [b"% c\n", b""]))
            extra = rng.choice([-1, 1]) if flawed and rng.random() < 0.25 else 0
            for _ in range(size + extra):
                offset = pick([b"%010d" % rng.randrange(10**6)], [b"12345", b"+000000001"])
                generation = pick([b"00000", b"65535", b"00001", b"99999"], [b"1"])
                marker = pick([b"n", b"n", b"f"], [b"x"])
                parts.append(offset + b" " + generation + b" " + marker + pick(good_ends, bad_ends))
        parts.append(pick([b"", b"\n"], [b"% tail\n"]))
        parts.append(pick([b"trailer"], [b"trail", b""]))
        parts.append(pick([b"\n<< /Size 3 >>", b" << >>"], [b"\n% c\n<<", b"", b"\n"]))
        data = b"".join(parts)
        _same_xref_table(data)
        fast += pdf._xref_entries(memoryview(data), 0) is not None
    assert 1000 < fast < 2000  # both readers' ways, each for many of them
