"""``consentflow mail …`` (SPEC §8, §11): check the mail settings and send a test message.

Registered on the main Typer app by one line at the end of :mod:`workflow.cli`; the mail
modules are imported only when a command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from workflow import cli

if TYPE_CHECKING:
    from workflow.config import Settings

mail_app = typer.Typer(no_args_is_help=True, help="Mail: the intake mailbox and notifications.")


@mail_app.command("test")
def mail_test(
    to: Annotated[
        str,
        typer.Option("--to", help="Where the test message goes (default: [mail] office_to)."),
    ] = "",
) -> None:
    """Check the IMAP and SMTP settings and send one test message."""
    import smtplib  # noqa: PLC0415 - light imports only at the top: `--help` stays fast

    from workflow.mail_sender import MailError, sender_address, test_message  # noqa: PLC0415

    with cli._errors():
        settings = cli._settings()
    mail = settings.mail
    if not mail.smtp_url and not mail.imap_url:
        cli._fail("neither [mail] smtp_url nor [mail] imap_url is set: nothing to test", 78)
    failed = False
    if mail.imap_url:
        failed |= not _check_imap(settings)
    if mail.smtp_url:
        recipient = to or mail.office_to or sender_address(mail)
        try:
            message_id, reply = test_message(settings, recipient)
        except MailError as exc:
            typer.echo(f"SMTP: {exc}", err=True)
            failed = True
        except (OSError, smtplib.SMTPException) as exc:
            typer.echo(f"SMTP: cannot send through [mail] smtp_url: {exc}", err=True)
            failed = True
        else:
            typer.echo(f"SMTP: test message to {recipient} accepted ({reply}), {message_id}")
    if failed:
        raise typer.Exit(1)


def _check_imap(settings: Settings) -> bool:
    try:
        from workflow.mail_intake import check_mailbox  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the intake module ships with this one
        return True
    try:
        line = check_mailbox(settings)
    except Exception as exc:  # any failure is the answer to the check
        typer.echo(f"IMAP: {exc}", err=True)
        return False
    typer.echo(f"IMAP: {line}")
    return True
