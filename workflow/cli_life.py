"""``consentflow profile``, ``publish``, ``suspend``, ``reinstate``, ``feedback`` (SPEC §8, §12).

Registered on :data:`workflow.cli.app` when that module imports this one (its last
lines); the services load only when a command runs.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from workflow.cli import JsonOpt, _errors, _fail, _print_json, _settings, _store, app
from workflow.states import Actor

if TYPE_CHECKING:
    from workflow.lifecycle.service import Lifecycle

ByOpt = Annotated[str | None, typer.Option("--by", help="Who acts (default: login name).")]


@contextmanager
def _lifecycle() -> Iterator[Lifecycle]:
    from workflow.lifecycle.service import Lifecycle, ProfileError  # noqa: PLC0415

    with _errors():
        settings = _settings()
        try:
            yield Lifecycle(_store(settings), settings)
        except ProfileError as exc:
            _fail(str(exc), 1)


def _sent(mailed: bool) -> str:
    return "queued for the supporter" if mailed else "NOT mailed (no address): send it yourself"


@app.command()
def profile(reference: str, by: ByOpt = None, as_json: JsonOpt = False) -> None:
    """Create the online profile of a signed supporter and give it the link to complete it."""
    with _lifecycle() as life:
        link = life.create_profile(reference, actor=by or getpass.getuser())
    if as_json:
        _print_json(
            {
                "reference": link.reference,
                "state": "profile_created",
                "link": link.url,
                "expires_at": link.expires_at.isoformat(),
                "mailed": link.mailed,
            }
        )
        return
    typer.echo(f"{link.reference}: profile created")
    typer.echo(f"link ({_sent(link.mailed)}, valid until {link.expires_at.date()}): {link.url}")


@app.command()
def publish(
    reference: str,
    send_back: Annotated[
        str | None,
        typer.Option("--send-back", help="Return the draft to the supporter with this comment."),
    ] = None,
    by: ByOpt = None,
) -> None:
    """Publish a completed profile (the supporter becomes active), or send it back."""
    with _lifecycle() as life:
        if send_back is not None:
            link = life.send_back(reference, actor=by or getpass.getuser(), comment=send_back)
            typer.echo(f"{link.reference}: profile sent back ({send_back.strip()})")
            typer.echo(
                f"link ({_sent(link.mailed)}, valid until {link.expires_at.date()}): {link.url}"
            )
            return
        life.publish(reference, actor=by or getpass.getuser())
    typer.echo(f"{reference.upper()}: active, listed in /supporters")


@app.command()
def suspend(
    reference: str,
    reason: Annotated[str, typer.Option("--reason", help="Why; the supporter is told it.")],
    by: Annotated[str | None, typer.Option("--by", help="Who acts (default: commission).")] = None,
) -> None:
    """Suspend an active supporter (the Commission's decision): off the public list at once."""
    with _lifecycle() as life:
        life.suspend(reference, actor=by or Actor.COMMISSION.value, reason=reason)
    typer.echo(f"{reference.upper()}: suspended ({reason.strip()})")


@app.command()
def reinstate(
    reference: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (optional).")] = "",
    by: Annotated[str | None, typer.Option("--by", help="Who acts (default: commission).")] = None,
) -> None:
    """Reinstate a suspended supporter: listed again."""
    with _lifecycle() as life:
        life.reinstate(reference, actor=by or Actor.COMMISSION.value, reason=reason)
    typer.echo(f"{reference.upper()}: active again")


@app.command()
def feedback(
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only supporters late with their report.")
    ] = False,
    send: Annotated[
        bool,
        typer.Option("--send", help="First send due links and reminders (the daily sweep)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Supporters that owe a feedback report; with --overdue, those late with it."""
    with _lifecycle() as life:
        if send:
            swept = life.sweep()
            if not as_json:
                typer.echo(f"links sent: {len(swept.due)}, reminders: {len(swept.reminded)}")
        rows = life.owed(late_only=overdue)
    if as_json:
        _print_json([row.to_json() for row in rows])
    else:
        for row in rows:
            typer.echo(
                f"{row.reference}  due {row.due_at.date()}  "
                f"{'LATE' if row.late else 'owed'} (late after {row.late_after.date()})  "
                f"reminders {row.reminders}  {row.org_name}"
            )
        if not rows:
            typer.echo("no supporter is late" if overdue else "no report is owed")
