"""``python -m workflow``: the same as the ``consentflow`` command."""

from workflow.cli import main

main()
