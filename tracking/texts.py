"""The tracking app's texts, from the server's catalogue (core/locales, keys ``tracking.…``).

The tracking app speaks Vietnamese: its notifications carry a Vietnamese text only
(tracking/notify.py), so its texts are rendered in Vietnamese whatever the reader's locale.
"""

from __future__ import annotations

from core.i18n import translate

LANGUAGE = "vi"


def render(key: str, /, **params: object) -> str:
    return translate(key, LANGUAGE, **params)
