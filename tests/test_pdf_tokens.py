"""The functions that replace pyHanko's and asn1crypto's (workflow/verification/pdf.py:
hex strings, delimited tokens, names, RFC 4518 string preparation) give what the libraries'
own give: same object, same error, same position in the stream."""

from __future__ import annotations

import inspect
import random
from io import BytesIO
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic

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
