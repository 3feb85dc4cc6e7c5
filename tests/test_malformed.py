"""Malformed and hostile files: each gets a stable answer from read_eoi, none crashes its process.

Every case runs ``read_eoi`` in its own Python process under resource limits set with
``resource.setrlimit`` in ``preexec_fn`` (before the interpreter even starts):

- ``RLIMIT_CPU`` 2 s (hard 3 s): a parser loop is killed by SIGXCPU, which the test
  sees as a signal exit instead of a JSON answer. No wall-clock assertion anywhere.
- ``RLIMIT_AS`` = the address space of a probe process that has imported
  ``forms.reading`` (measured once per run, VmSize in /proc; about 55 MiB here) plus
  300 MiB. ``RLIMIT_AS`` counts address space, not resident memory, so a fixed number
  would either starve the interpreter or allow far more than 300 MiB of real work;
  measuring the baseline makes "300 MiB more than an idle reader" the cap. A bomb that
  pypdf inflated to 1 GiB would die with MemoryError (and no JSON answer).

The cases run in parallel (one process each, started from the main thread, at most one
per CPU) by one module fixture; each parametrised test then checks its own outcome.
``preexec_fn`` is safe here because no other thread exists while the processes start.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import resource
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pypdf import PasswordType, PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, EncodedStreamObject, NameObject

from forms.eoi import Lang
from forms.errors import UnusableCode
from forms.reading import DEFAULT_MAX_BYTES
from tests.conftest import REPO
from tests.filling import blank_form, fill_pypdf
from tests.samples import CHECKED, TEXT_VALUES

CPU_SECONDS = 2
HEADROOM = 300 * 1024 * 1024
GIB = 1024 * 1024 * 1024

#: The process each case runs: read the file, print the outcome as one JSON object.
CHILD = """
import json, sys
from forms.errors import UnusableDocument
from forms.reading import read_eoi
if sys.argv[1] == "--probe":
    status = open("/proc/self/status").read()
    print(json.dumps({"vm_kib": int(status.split("VmSize:")[1].split()[0])}))
    sys.exit()
data = open(sys.argv[1], "rb").read()
try:
    raw = read_eoi(data)
except UnusableDocument as exc:
    print(json.dumps({"code": exc.code.value, "detail": exc.detail}))
else:
    print(json.dumps({"code": "ok", "org_name": raw.values["org_name"]}))
"""

OK = "ok"
ANY = frozenset({OK, *UnusableCode})


@dataclass(frozen=True)
class Case:
    """One malformed file: how to make it from the filled form, and the answers allowed."""

    make: Callable[[bytes], bytes]
    allowed: frozenset[str]


def _truncate(fraction: float) -> Callable[[bytes], bytes]:
    return lambda good: good[: int(len(good) * fraction)]


def _before_eof(good: bytes) -> bytes:
    return good[: good.rindex(b"%%EOF")]


def _structure_positions(good: bytes) -> list[int]:
    """Offsets of the file's structure (dictionaries, xref, trailer), outside stream data."""
    inside = bytearray(len(good))
    for match in re.finditer(rb"stream\r?\n.*?endstream", good, re.DOTALL):
        start, end = match.start() + len(b"stream"), match.end() - len(b"endstream")
        inside[start:end] = b"\x01" * (end - start)
    return [i for i, flag in enumerate(inside) if not flag]


def _flip(seed: int) -> Callable[[bytes], bytes]:
    """Flip 24 bits of the file's structure, chosen by a seeded generator.

    Flips inside the 500 KiB of embedded font would almost never matter to a reader
    that does not render; the structure is where parsers break.
    """

    def make(good: bytes) -> bytes:
        rng = random.Random(seed)
        data = bytearray(good)
        for position in rng.sample(_structure_positions(good), 24):
            data[position] ^= 1 << rng.randrange(8)
        return bytes(data)

    return make


def _encrypted(password: str) -> Callable[[bytes], bytes]:
    def make(good: bytes) -> bytes:
        writer = PdfWriter(clone_from=io.BytesIO(good))
        writer.encrypt(user_password=password, owner_password="office-owner", algorithm="AES-256")
        return _write(writer)

    return make


def zlib_bomb(size: int = GIB) -> bytes:
    """A valid zlib stream of ``size`` zero bytes, about 1 MB, built in well under a second.

    After a full flush deflate restarts from an empty window, so the compressed form of
    each further 1 MiB of zeros is the same bytes: compress three chunks, repeat the
    middle one, and end with the Adler-32 checksum of the whole.
    """
    chunk = bytes(1024 * 1024)
    count = size // len(chunk)
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    last_block = compressor.flush()[:-4]
    checksum = 1
    for _ in range(count):
        checksum = zlib.adler32(chunk, checksum)
    return first + middle * (count - 1) + last_block + checksum.to_bytes(4, "big")


def _bomb_stream() -> EncodedStreamObject:
    stream = EncodedStreamObject()
    # Set the encoded bytes directly: set_data() would make pypdf inflate them.
    stream._data = zlib_bomb()
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    return stream


def _bomb_in_value(good: bytes) -> bytes:
    """org_name's /V becomes a text stream that inflates to 1 GiB (incremental update)."""
    writer = PdfWriter(io.BytesIO(good), incremental=True)
    acro_form = writer.root_object["/AcroForm"].get_object()
    assert isinstance(acro_form, DictionaryObject)
    fields = acro_form["/Fields"]
    assert isinstance(fields, ArrayObject)
    for ref in fields:
        field = ref.get_object()
        if field["/T"] == "org_name":
            field[NameObject("/V")] = writer._add_object(_bomb_stream())
    return _write(writer)


def _bomb_in_content(good: bytes) -> bytes:
    """Page 1 gets a second content stream that inflates to 1 GiB (incremental update)."""
    writer = PdfWriter(io.BytesIO(good), incremental=True)
    page = writer.pages[0]
    contents = page["/Contents"]
    existing = list(contents) if isinstance(contents, ArrayObject) else [page.raw_get("/Contents")]
    page[NameObject("/Contents")] = ArrayObject([*existing, writer._add_object(_bomb_stream())])
    return _write(writer)


def _too_large(good: bytes) -> bytes:
    # A valid PDF with trailing padding after %%EOF, one byte over the default limit.
    return good + b" " * (DEFAULT_MAX_BYTES + 1 - len(good))


def _write(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


DAMAGED = frozenset({UnusableCode.DAMAGED.value})

CASES: dict[str, Case] = {
    "empty": Case(lambda good: b"", frozenset({UnusableCode.NOT_PDF.value})),
    "text": Case(
        lambda good: "Hyvää päivää, lomake on liitteenä.\n".encode() * 40,
        frozenset({UnusableCode.NOT_PDF.value}),
    ),
    "header_only": Case(lambda good: good[:9], DAMAGED),
    **{
        f"truncated_{f:.2f}": Case(_truncate(f), DAMAGED)
        for f in (0.01, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95, 0.995)
    },
    "truncated_before_eof": Case(_before_eof, DAMAGED),
    **{f"flipped_{seed}": Case(_flip(seed), ANY) for seed in range(8)},
    "encrypted": Case(_encrypted("secret"), frozenset({UnusableCode.ENCRYPTED.value})),
    # Opens without a password in every viewer: read (forms/reading.py says why).
    "encrypted_empty_password": Case(_encrypted(""), frozenset({OK})),
    "bomb_in_field_value": Case(_bomb_in_value, DAMAGED),
    # read_eoi never decodes page content, so the bomb there is never inflated.
    "bomb_in_page_content": Case(_bomb_in_content, frozenset({OK})),
    "too_large": Case(_too_large, frozenset({UnusableCode.TOO_LARGE.value})),
}


@dataclass(frozen=True)
class Outcome:
    """How one child process ended."""

    returncode: int
    answer: dict[str, str]
    stderr: str


def _limits(address_space: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS + 1))
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _command(argument: str) -> list[str]:
    return [sys.executable, "-c", CHILD, argument]


def _baseline_address_space() -> int:
    """Address space of an idle reader process: imports done, nothing read."""
    probe = subprocess.run(
        _command("--probe"), cwd=REPO, capture_output=True, text=True, check=True
    )
    return int(json.loads(probe.stdout)["vm_kib"]) * 1024


def _run_all(paths: dict[str, Path]) -> dict[str, Outcome]:
    limit = _baseline_address_space() + HEADROOM
    waiting = list(paths.items())
    running: list[tuple[str, subprocess.Popen[str]]] = []
    outcomes: dict[str, Outcome] = {}
    parallel = max(1, os.cpu_count() or 1)
    while waiting or running:
        while waiting and len(running) < parallel:
            name, path = waiting.pop(0)
            process = subprocess.Popen(
                _command(str(path)),
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                # Safe: this test starts no thread, so the fork has no lock to inherit.
                preexec_fn=_limits(limit),  # noqa: PLW1509
            )
            running.append((name, process))
        name, process = running.pop(0)
        stdout, stderr = process.communicate()
        lines = stdout.strip().splitlines()
        answer = json.loads(lines[-1]) if lines else {}
        outcomes[name] = Outcome(process.returncode, answer, stderr[-2000:])
    return outcomes


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case's outcome, the cases run in parallel child processes under limits."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the limits and the baseline probe use Linux rlimits and /proc")
    folder = tmp_path_factory.mktemp("malformed")
    good = fill_pypdf(blank_form(Lang.EN), {**TEXT_VALUES, **CHECKED}, folder)
    paths = {"good": folder / "good.pdf"}
    paths["good"].write_bytes(good)
    for name, case in CASES.items():
        paths[name] = folder / f"{name}.pdf"
        paths[name].write_bytes(case.make(good))
    return _run_all(paths)


def test_the_good_file_reads_under_the_same_limits(outcomes: dict[str, Outcome]) -> None:
    """The unbroken filled form reads fine inside the sandbox, so the limits are not too tight."""
    outcome = outcomes["good"]
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.answer == {"code": OK, "org_name": TEXT_VALUES["org_name"]}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_file_gets_a_stable_answer(name: str, outcomes: dict[str, Outcome]) -> None:
    """The process exits cleanly with one JSON answer, and the code is the expected one."""
    outcome = outcomes[name]
    assert outcome.returncode == 0, f"exit {outcome.returncode}: {outcome.stderr}"
    assert outcome.answer.get("code") in CASES[name].allowed, outcome.answer


def test_bomb_stops_at_the_decompression_limit(outcomes: dict[str, Outcome]) -> None:
    """The value bomb is refused by pypdf's limit, not by running out of memory."""
    detail = outcomes["bomb_in_field_value"].answer["detail"]
    assert "LimitReachedError" in detail
    assert "MemoryError" not in detail


def test_bomb_builder_makes_a_gigabyte() -> None:
    """The bomb really inflates to 1 GiB (checked on a small one: the same construction)."""
    small = zlib_bomb(8 * 1024 * 1024)
    assert zlib.decompress(small) == bytes(8 * 1024 * 1024)
    assert len(zlib_bomb()) < 2 * 1024 * 1024


def test_encrypted_case_really_needs_a_password() -> None:
    """The encrypted case is a file pypdf cannot open with the empty password."""
    data = _encrypted("secret")(fill_pypdf(blank_form(Lang.EN), {}, Path()))
    reader = PdfReader(io.BytesIO(data))
    assert reader.is_encrypted
    assert reader.decrypt("") == PasswordType.NOT_DECRYPTED
