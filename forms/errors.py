"""The one exception tree of the ``forms`` package.

::

    FormsError                      root: anything ``forms`` raises on purpose
    └── UnusableDocument            the bytes are not a usable EOI (``code`` says why)

Problems *inside* a usable EOI (a missing field, a bad e-mail address) are not
exceptions: :func:`forms.validation.validate` returns them as values.
"""

from __future__ import annotations

from enum import StrEnum


class UnusableCode(StrEnum):
    """Stable codes for files that cannot be read as an EOI (SPEC §4)."""

    NOT_PDF = "not_pdf"
    ENCRYPTED = "encrypted"
    DAMAGED = "damaged"
    NO_FIELDS = "no_fields"
    XFA = "xfa"
    WRONG_FORM = "wrong_form"
    TOO_LARGE = "too_large"


#: Applicant-facing sentences, one per code: what happened and what to do.
UNUSABLE_MESSAGES: dict[UnusableCode, str] = {
    UnusableCode.NOT_PDF: (
        "The file is not a PDF document. Please send the expression-of-interest form "
        "as the PDF file you downloaded and filled in."
    ),
    UnusableCode.ENCRYPTED: (
        "The PDF is password-protected or encrypted, so it cannot be read. Please save "
        "the filled form without a password and send it again."
    ),
    UnusableCode.DAMAGED: (
        "The PDF is damaged and cannot be read (it may have been cut off during upload "
        "or e-mail). Please save the filled form again and resend it."
    ),
    UnusableCode.NO_FIELDS: (
        "The PDF has no form fields: it was probably flattened or 'printed to PDF'. "
        "Please send the fillable form itself, saved after filling it in, not a printed copy."
    ),
    UnusableCode.XFA: (
        "The PDF is an XFA (LiveCycle) form, which is not the consentflow expression-of-"
        "interest form. Please download the current form and fill that in."
    ),
    UnusableCode.WRONG_FORM: (
        "The PDF is not the consentflow expression-of-interest form (or is an older "
        "version of it). Please download the current form and fill that in."
    ),
    UnusableCode.TOO_LARGE: (
        "The file is larger than the size limit for an expression-of-interest form. "
        "Please send the filled form only, without attachments or scanned images."
    ),
}


class FormsError(Exception):
    """Root of every deliberate error raised by :mod:`forms`."""


class UnusableDocument(FormsError):  # noqa: N818 - names the outcome, like httpx.TimeoutException
    """The bytes cannot be used as an EOI; ``code`` is stable, ``message`` is for the applicant.

    ``detail`` carries the technical cause (a pypdf error text, a size) for the
    processing log; it is never shown to the applicant as the reason.
    """

    def __init__(self, code: UnusableCode, detail: str = "") -> None:
        self.code = code
        self.message = UNUSABLE_MESSAGES[code]
        self.detail = detail
        super().__init__(f"{code}: {self.message}" + (f" ({detail})" if detail else ""))
