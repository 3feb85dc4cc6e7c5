"""One line of text that cannot pretend to be more: control characters made visible.

File names, form values, certificate subjects and reasons come from outside. Printed
as they are, a name holding a newline and a made-up log line prints a convincing fake
line in ``consentflow log``, ``status``, ``show``, the engine's log and the dashboard,
and an escape sequence can rewrite the operator's terminal. Every human-readable
output passes such text through :func:`printable` (the JSON outputs keep the exact
text: JSON escapes it itself).
"""

from __future__ import annotations

import logging
import re

#: C0 and C1 controls and DEL, the line and paragraph separators, and the marks that
#: reorder text (bidirectional overrides and isolates, a stray BOM).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` on one line, each control character written as Python writes it
    (``\\n``, ``\\x1b``, ``\\u202e``); everything else, in every script, unchanged."""
    value = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, value)


class PrintableFormatter(logging.Formatter):
    """A log formatter whose message part is :func:`printable`: one record, one line.

    Tracebacks (``exc_info``) keep their lines; they come from our code, not from files.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """Escape the message, then format as usual."""
        record.message = printable(record.message)
        return super().formatMessage(record)
