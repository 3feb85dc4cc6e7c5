"""Reading posted forms with bounds, and checking their CSRF token.

Starlette would read an urlencoded body whole and spool uploads to the system's
temporary folder; here a body is read up to a limit (a larger one is refused before
it is read, from its ``Content-Length``, or as soon as it passes the limit), and an
upload stays in memory: nothing a visitor sends is written anywhere but where the
intake puts it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from workflow.web.app import BadRequestError, CsrfError
from workflow.web.auth import CSRF_FIELD, Visitor, csrf_ok

#: Largest urlencoded form (a rejection reason is the longest thing posted).
FORM_LIMIT = 64 * 1024
#: Multipart overhead allowed beyond the file itself (boundaries, part headers, token).
MULTIPART_SLACK = 64 * 1024


class TooLargeError(BadRequestError):
    """The body is larger than allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The file is larger than the {limit / 1048576:g} MB limit.", 413, "too_large"
        )
        self.limit = limit


async def _bounded(
    request: Request, cap: int, *, limit: int | None = None
) -> AsyncGenerator[bytes, None]:
    """The body, refused past ``cap`` bytes (the message names ``limit``, default ``cap``)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise TooLargeError(limit or cap)
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > cap:
            raise TooLargeError(limit or cap)
        yield chunk


async def read_fields(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded, its CSRF token not yet checked (the caller does)."""
    body = b"".join([chunk async for chunk in _bounded(request, FORM_LIMIT)])
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise BadRequestError("the form is not UTF-8") from None


async def read_form(request: Request, who: Visitor) -> dict[str, str]:
    """An urlencoded form whose CSRF token is the visitor's own."""
    fields = await read_fields(request)
    if not csrf_ok(who.csrf, fields.get(CSRF_FIELD)):
        raise CsrfError
    return fields


class _InMemoryParser(MultiPartParser):
    # The body is bounded before parsing, so its one file may stay in memory.
    spool_max_size = 2**62


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the browser gave (never used as a path) and its bytes."""

    name: str
    data: bytes


async def read_upload(request: Request, who: Visitor, *, field: str, limit: int) -> Upload:
    """A multipart form with one file of at most ``limit`` bytes and this visitor's token."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise BadRequestError("send the file as multipart/form-data")
    parser = _InMemoryParser(
        request.headers,
        _bounded(request, limit + MULTIPART_SLACK, limit=limit),
        max_files=1,
        max_fields=4,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise BadRequestError(f"the upload could not be read: {exc.message}") from None
    if not csrf_ok(who.csrf, str(form.get(CSRF_FIELD) or "")):
        raise CsrfError
    upload = form.get(field)
    if not isinstance(upload, UploadFile):
        raise BadRequestError("choose a file to upload")
    data = await upload.read()
    if len(data) > limit:
        raise TooLargeError(limit)
    if not data:
        raise BadRequestError("the file is empty")
    return Upload(upload.filename or "upload.pdf", data)
