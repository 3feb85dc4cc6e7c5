"""The hex-string reader that replaces pyHanko's (workflow/verification/pdf.py) reads every
input as pyHanko's own does: same object, same error, same position in the stream."""

from __future__ import annotations

import inspect
import random
from io import BytesIO
from typing import Any

import pytest
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


def test_pyhanko_reads_hex_strings_through_it() -> None:
    """pyHanko's object reader calls the function by its module name, which pdf.py sets."""
    assert generic.read_hex_string_from_stream is pdf._read_hex_string
    assert "read_hex_string_from_stream(stream)" in inspect.getsource(generic.read_object)
    assert pdf._read_hex_string_one_by_one.__module__ == "pyhanko.pdf_utils.generic"
    value = generic.read_object(BytesIO(b"<4142>"), container_ref=None)  # type: ignore[arg-type]
    assert isinstance(value, generic.TextStringObject)
    assert bytes(value.original_bytes) == b"AB"
