"""The dashboard's words, per language: ``locales/<lang>.toml`` catalogues (SPEC §13).

Adding a language is adding a catalogue. A key missing from a catalogue falls back
to English, so a new catalogue can grow key by key; the test suite checks that the
shipped catalogues (English, Finnish) have the same keys.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

DEFAULT = "en"


@cache
def languages() -> tuple[str, ...]:
    """The languages with a catalogue, default first."""
    found = sorted(
        entry.name.removesuffix(".toml")
        for entry in (resources.files("workflow.web") / "locales").iterdir()
        if entry.name.endswith(".toml")
    )
    return (DEFAULT, *(lang for lang in found if lang != DEFAULT))


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The strings of one language (English for an unknown one)."""
    if lang not in languages():
        lang = DEFAULT
    path = resources.files("workflow.web") / "locales" / f"{lang}.toml"
    strings: dict[str, str] = tomllib.loads(path.read_text(encoding="utf-8"))
    return strings


class Texts:
    """``t(key, **values)`` in templates: the string in the visitor's language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in languages() else DEFAULT
        self._own = catalogue(self.lang)
        self._default = catalogue(DEFAULT)

    def __call__(self, key: str, **values: Any) -> str:
        """The text for ``key`` with ``{name}`` placeholders filled (never markup)."""
        text = self._own.get(key) or self._default.get(key) or key
        return text.format(**values) if values else text


def pick_language(query: str | None, cookie: str | None, accept: str | None) -> str:
    """The language asked for by ``?lang=``, then the cookie, then ``Accept-Language``."""
    for candidate in (query, cookie):
        if candidate in languages():
            return candidate
    for part in (accept or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in languages():
            return code
    return DEFAULT
