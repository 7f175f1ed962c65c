"""Vietnamese by default, English on request: gettext catalogues under ``console/locales``.

Templates and code mark strings with ``_()``; ``pybabel extract -F console/babel.cfg`` collects
them into ``console/locales/messages.pot`` and ``pybabel update`` merges them into each
language's ``messages.po``. The ``.po`` files are the source of truth and are compiled in memory
when the console starts (no compiled ``.mo`` to forget to rebuild after a fresh clone), as the
server-side texts' catalogues are (core/i18n.py).
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from pathlib import Path

from babel.support import NullTranslations

from core.errors import ChuongError
from core.i18n import compile_po

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANGUAGE_COOKIE = "chuong_lang"

_current: ContextVar[str] = ContextVar("console_language", default=DEFAULT_LANGUAGE)


@cache
def translations(language: str) -> NullTranslations:
    po_file = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if not po_file.exists():
        return NullTranslations()
    return compile_po(po_file, language)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The user's explicit choice (cookie) wins; else Vietnamese, whatever the browser says —
    the console's users are Vietnamese officials, English is the exception they opt into."""
    if cookie in LANGUAGES:
        return cookie
    return DEFAULT_LANGUAGE


def set_language(language: str) -> None:
    _current.set(language)


def current_language() -> str:
    return _current.get()


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


_ = gettext


def network_refusal_message(error: ChuongError) -> str:
    """The page text of a request refused by an allowed-networks rule (auth/networks.py), in the
    reader's language, with the address the service saw: what an official tells the help desk."""
    address = next((str(d["address"]) for d in error.details if d.get("address")), "?")
    return gettext(
        "This is only allowed from the agencies' networks (VPN). Connect to the VPN and try again."
        " Your address: %(address)s"
    ) % {"address": address}
