"""A device's locale → one of the portal's languages (devices/locales.py). Kept hand-written
rather than babel's parser, which refuses tags with extensions (docs/architecture.md,
"Hand-written on purpose")."""

from __future__ import annotations

import pytest

from devices.locales import normalise_locale


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("vi-VN", "vi"),
        ("zh_Hans_CN", "zh"),
        ("EN-us", "en"),
        (" fr ", "fr"),
        ("en-US-u-mu-celsius", "en"),  # Android 14 regional preferences
        ("ru-RU-x-private", "ru"),
        ("pt-BR", "vi"),
        ("", "vi"),
        (None, "vi"),
    ],
)
def test_a_locale_maps_to_its_language_or_vietnamese(locale, language):
    assert normalise_locale(locale) == language
