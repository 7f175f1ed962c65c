"""Languages of the portal app (D-02): a device's locale is normalised to one of them."""

from __future__ import annotations

SUPPORTED_LANGUAGES = ("vi", "en", "zh", "fr", "es", "ru")
DEFAULT_LANGUAGE = "vi"


def normalise_locale(locale: str | None) -> str:
    """``vi-VN`` → ``vi``, ``zh_Hans_CN`` → ``zh``, anything unsupported → ``vi``."""
    if not locale:
        return DEFAULT_LANGUAGE
    language = locale.strip().replace("_", "-").split("-", 1)[0].lower()
    return language if language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE
