"""Server-side text in the languages the apps speak: gettext catalogues under ``core/locales``.

The push and inbox lines (notifications, inbox) and the tracking reminders (tracking) all come
from here; the console has its own catalogues of English source strings (console/i18n.py). A
message id is a key (``push.generic_line``) and each language's ``messages.po`` gives its text, a
``str.format`` template (``{head}. Hạn báo cáo: {due}.``). To add a text, add its key to the
``messages.po`` of every language that has it; Vietnamese must have every key.

As in the console, the ``.po`` files are the source of truth, shipped as package data and compiled
in memory on first use (no ``.mo`` to forget to rebuild). A language that lacks a text falls back
to Vietnamese, the apps' default language, never to the key and never to English.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
# Every key has a Vietnamese text; other languages fall back to it.
FALLBACK_LANGUAGE = "vi"


def compile_po(po_file: Path, language: str) -> Translations:
    """A ``.po`` file compiled in memory (fuzzy and empty entries left out, as ``pybabel compile``
    does)."""
    with po_file.open("rb") as source:
        catalog = read_po(source, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer)


@cache
def languages() -> frozenset[str]:
    """The languages that have a catalogue."""
    return frozenset(
        path.name for path in LOCALES_DIR.iterdir() if (path / "LC_MESSAGES" / "messages.po").is_file()
    )


@cache
def _compiled(language: str) -> Translations:
    return compile_po(LOCALES_DIR / language / "LC_MESSAGES" / "messages.po", language)


_NO_CATALOGUE = NullTranslations()


def _catalogue(language: str) -> NullTranslations:
    # A reader's locale is free text: only names of catalogues that exist are compiled and cached.
    return _compiled(language) if language in languages() else _NO_CATALOGUE


def has(key: str, language: str) -> bool:
    """Whether ``language``'s catalogue has a text for ``key`` (gettext returns the id itself
    when it has none; no text is its own key)."""
    return _catalogue(language).gettext(key) != key


def language_for(key: str, language: str) -> str:
    """The language ``key`` is shown in when ``language`` is asked for."""
    return language if has(key, language) else FALLBACK_LANGUAGE


def translate(key: str, language: str, /, **params: Any) -> str:
    """The text of ``key`` in ``language`` (else in Vietnamese), with ``params`` filled in."""
    template = _catalogue(language_for(key, language)).gettext(key)
    if template == key:
        raise KeyError(f"no {FALLBACK_LANGUAGE} text for {key!r} in {LOCALES_DIR}")
    return template.format(**params)
