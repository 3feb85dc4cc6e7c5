"""Text catalogues: every sentence an applicant or the Commission reads, per language.

A catalogue is ``forms/texts/<lang>/<name>.toml`` with flat ``key = "text"`` pairs
(``{placeholders}`` filled with :meth:`str.format`). Adding a language is adding a
folder with the same files; a missing key falls back to English.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources

from forms.eoi import Lang

_FALLBACK = Lang.EN


@cache
def _load(lang: str, name: str) -> dict[str, str]:
    path = resources.files("forms") / "texts" / lang / f"{name}.toml"
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {str(key): str(value) for key, value in data.items()}


def catalog(lang: Lang | str, name: str) -> dict[str, str]:
    """Return catalogue ``name`` in ``lang``, completed from English where a key is missing."""
    merged = dict(_load(_FALLBACK.value, name))
    merged.update(_load(str(lang), name))
    if not merged:
        raise LookupError(f"no text catalogue {name!r} in forms/texts/")
    return merged


def text(lang: Lang | str, name: str, key: str, **values: object) -> str:
    """Return one sentence from a catalogue, with its ``{placeholders}`` filled in."""
    template = catalog(lang, name)[key]
    return template.format(**values) if values else template
