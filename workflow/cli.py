"""The ``consentflow`` command line (SPEC §8). Commands are added issue by issue."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="consentflow: Covenant Supporter applications.")


@app.callback()
def _root() -> None:
    """Covenant Supporter applications: EOI intake, consent forms, Commission signatures."""


def main() -> None:
    """Entry point of the ``consentflow`` console script."""
    app()
