"""What the revision holding the Commission's signature may change (SPEC 7 rule 2)."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import (
    DiffPolicy,
    DiffResult,
    ModificationLevel,
)
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

from workflow.signature_report import (
    CheckCode,
    IssuedConsent,
)
from workflow.verification.findings import Findings, clip
from workflow.verification.limits import LimitExceededError, Limits

_STRUCTURE_KEYS = frozenset({"/P", "/Parent", "/AP", "/M", "/V", "/Kids", "/AcroForm", "/DSS"})


def check_revisions(
    emb: EmbeddedPdfSignature,
    data: bytes,
    issued: IssuedConsent,
    found: Findings,
    reviews: DiffPolicy,
    *,
    issued_revisions: int,
    limits: Limits,
) -> None:
    """Rule 2: the signature is in the revision right after the issued consent, and that
    revision adds the signature and changes nothing else."""
    if emb.signed_revision != issued_revisions:
        found.add(
            CheckCode.REVISION_COUNT,
            False,
            f"The Commission signed revision {emb.signed_revision + 1} of the file, but "
            f"must sign revision {issued_revisions + 1}, the first after the issued "
            "consent: the consent was changed before it was signed.",
        )
        return
    found.add(
        CheckCode.REVISION_COUNT,
        True,
        "The Commission's signature is in the first revision after the issued consent.",
    )
    # pyHanko diffs only the revisions *after* a signature; what the signing revision
    # itself changed relative to the issued consent is checked here.
    start, length = int(emb.byte_range[2]), int(emb.byte_range[3])
    if start + length == len(data):
        # Nothing follows the signature (the usual case): the signed revision is the
        # file as already read, and its review is the one validating the seal asked.
        signed = emb.reader
    else:
        signed = PdfFileReader(BytesIO(data[: start + length]), strict=emb.reader.strict)
    review = reviews.review_file(signed, issued_revisions - 1, doc_mdp=MDPPerm.FILL_FORMS)
    extra = (
        set(review.changed_form_fields) - {emb.field_name}
        if isinstance(review, DiffResult)
        else None
    )
    suspicious = (
        not isinstance(review, DiffResult)
        or bool(extra)
        or review.modification_level > ModificationLevel.FORM_FILLING
    )
    if suspicious and not extra:
        # pyHanko's diff rejects harmless rewrites real tools make while signing
        # (poppler's pdfsig rewrites the widget with /M and its old appearance
        # stream); what the reader sees is compared instead.
        issued_reader = PdfFileReader(BytesIO(issued.data), strict=emb.reader.strict)
        budget = _Budget(limits.max_decoded)
        suspicious = visible_state(issued_reader, budget) != visible_state(signed, budget)
    if suspicious:
        detail = f"fields {', '.join(sorted(extra))}" if extra else str(review)
        found.add(
            CheckCode.CHANGES_BEFORE_SIGNATURE,
            False,
            "The revision holding the Commission's signature also changes the consent "
            f"({clip(detail)}); only the signature itself may be added.",
        )
    else:
        found.add(
            CheckCode.CHANGES_BEFORE_SIGNATURE,
            True,
            "The signing revision adds the signature and changes nothing else.",
        )


class _Budget:
    """Decoded bytes the comparison may still hold: page content joined from streams
    that pyHanko decodes once and caches, but that a page may reference many times."""

    def __init__(self, left: int, nodes: int = 100_000) -> None:
        self.left = left
        self.nodes = nodes

    def visit(self) -> None:
        self.nodes -= 1
        if self.nodes < 0:
            raise LimitExceededError(
                "comparing its revisions visits more objects than the limit allows"
            )

    def take(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise LimitExceededError(
                "comparing its revisions needs more decoded page content than the limit allows"
            )


def visible_state(reader: PdfFileReader, budget: _Budget) -> object:
    """What a reader shows and runs, apart from signature fields: each page's geometry,
    content, resources and non-signature annotations, the catalogue's actions, and the
    value of every other form field."""
    pages = []
    for page_ref in _page_refs(reader.root["/Pages"]):
        page = page_ref.get_object()
        contents = page.get("/Contents")
        streams = contents if isinstance(contents, generic.ArrayObject) else [contents]
        parts = []
        for stream in streams:
            if stream is not None:
                part = stream.get_object().data
                budget.take(len(part))
                parts.append(part)
        data = b"".join(parts)
        annots = [
            _plain(a, budget)
            for a in page.get("/Annots", ())
            if a.get_object().get("/FT") != "/Sig"
        ]
        keys = ("/MediaBox", "/CropBox", "/Rotate", "/Resources")
        pages.append((data, annots, [_plain(page.get(k), budget) for k in keys]))
    catalog = {
        k: _plain(v, budget)
        for k, v in reader.root.items()
        if k not in ("/Pages", "/AcroForm", "/DSS", "/Metadata")
    }
    values = {
        name: _plain(field.get_object().get("/V"), budget) for name, field in _other_fields(reader)
    }
    return pages, catalog, values


def _page_refs(node: Any) -> Iterator[Any]:
    node = node.get_object()
    if node.get("/Type") == "/Pages":
        for kid in node["/Kids"]:
            yield from _page_refs(kid)
    else:
        yield node


def _other_fields(reader: PdfFileReader) -> Iterator[tuple[str, Any]]:
    form = reader.root.get("/AcroForm")
    stack = list(form.get_object().get("/Fields", ())) if form is not None else []
    while stack:
        field = stack.pop().get_object()
        stack.extend(field.get("/Kids", ()))
        if field.get("/FT") != "/Sig" and "/T" in field:
            yield str(field["/T"]), field


def _plain(value: Any, budget: _Budget, depth: int = 0) -> object:
    """A comparable copy of a PDF object, indirect references resolved (bounded depth and
    work, structural back-links skipped)."""
    budget.visit()
    if depth > 12:
        return "…"
    if isinstance(value, generic.IndirectObject):
        value = value.get_object()  # type: ignore[no-untyped-call]
    if isinstance(value, generic.StreamObject):
        header = {k: v for k, v in value.items() if k not in ("/Length", "/Filter")}
        data = value.data
        budget.take(len(data))
        return ("stream", data, _plain(header, budget, depth + 1))
    if isinstance(value, dict):
        return tuple(
            sorted(
                (str(k), _plain(v, budget, depth + 1))
                for k, v in value.items()
                if k not in _STRUCTURE_KEYS
            )
        )
    if isinstance(value, generic.ArrayObject):
        return tuple(_plain(v, budget, depth + 1) for v in value)
    return value
