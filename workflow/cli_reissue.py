"""``consentflow reissue REF``: replace the consent of a ``consent_issued`` application.

Registered on the Typer app by one line in :mod:`workflow.cli`; the work is
:meth:`workflow.applications.Applications.reissue` (SPEC §7).
"""

from __future__ import annotations

from typing import Annotated

import typer


def reissue(
    reference: str,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the consent is replaced (recorded).")
    ],
    by: Annotated[
        str | None, typer.Option("--by", help="Office user (default: login name).")
    ] = None,
) -> None:
    """Issue a new consent that supersedes the current one (seal or data changed)."""
    from workflow.cli import _errors, _login, _reference, _settings, _writable_store  # noqa: PLC0415
    from workflow.engine import build_applications  # noqa: PLC0415

    reference = _reference(reference)
    with _errors():
        settings = _settings()
        services = build_applications(_writable_store(settings), settings)
        issued = services.reissue(reference, actor=by or _login(), reason=reason)
    typer.echo(
        f"{reference}: consent reissued -> {issued.path} (sha256 {issued.sha256}); "
        "a signed copy of the old consent will be rejected as superseded"
    )
