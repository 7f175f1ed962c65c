"""Reading a provider's Retry-After (seconds or an HTTP date) off an error."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

from core.clock import reference_now
from core.codes import ASCII_DIGITS

MAX_RETRY_AFTER_SECONDS = 3600.0


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    # ASCII digits only (core/codes.py): "²".isdigit() is True and float("²") raises.
    if ASCII_DIGITS.fullmatch(value):
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or reference_now()  # the provider's date against the shared clock, not this host's
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_SECONDS)


def retry_after_of(error: Exception) -> float | None:
    response = getattr(error, "http_response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    return parse_retry_after(headers.get("retry-after"))
