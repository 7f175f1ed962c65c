"""Bounded types for every value that crosses the edge on its way to PostgreSQL.

A value the schema accepts must be one the database can store: otherwise the insert fails and
the client gets a 500 (and a dropped connection) for input that looked valid, e.g. a send time
``9999-12-31T23:59:59-14:00``, which is year 10000 once converted to UTC. Request models, query
and path parameters and console forms use these types, so the bounds are decided here once:

- ``BoundedDatetime``: an aware datetime inside ``[EARLIEST, LATEST)``, normalised to UTC.
  The window is checked *after* the UTC conversion, which itself can overflow Python's range.
- ``BoundedDate``: a calendar day inside the same years.
- ``Int32`` / ``NonNegativeInt32`` / ``PositiveInt32`` / ``Int64``: PostgreSQL ``integer`` and
  ``bigint``. Every integer field of a request names one of these or a tighter ``Field``.
- ``Text``: a string without NUL (PostgreSQL ``text`` refuses it) or lone surrogates (not
  encodable as UTF-8), in NFC. ``RequestModel`` applies the same cleaning to every string of a
  body; ``Text`` is for strings that arrive elsewhere (query parameters, forms, headers). The
  length bound goes next to it: ``Annotated[Text, StringConstraints(max_length=255)]``, equal to
  the column's.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Final

from pydantic import AfterValidator, AwareDatetime, Field

# Nothing the service stores lives outside these years: news and tasks are about now, audit
# filters about the service's own lifetime. Far enough from both ends of Python's and
# PostgreSQL's ranges that no time zone arithmetic (±14 h, a working day added) can overflow.
EARLIEST_YEAR: Final = 2000
LATEST_YEAR: Final = 2200  # inclusive
EARLIEST: Final = dt.datetime(EARLIEST_YEAR, 1, 1, tzinfo=dt.UTC)
LATEST: Final = dt.datetime(LATEST_YEAR + 1, 1, 1, tzinfo=dt.UTC)  # exclusive

INT32_MAX: Final = 2**31 - 1
INT64_MAX: Final = 2**63 - 1


def clean_text(value: str) -> str:
    """Refuse what PostgreSQL cannot store (NUL) or UTF-8 cannot encode (lone surrogates from
    ``"\\ud800"`` escapes in JSON); normalise to NFC so that equal text compares equal."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return unicodedata.normalize("NFC", value)


def bounded_instant(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC if it has an offset and lies inside the window; ValueError otherwise
    (pydantic turns that into a 422; an OverflowError would be a 500)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give the time with a UTC offset, e.g. 2026-11-22T08:00:00+07:00")
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:  # year 9999 at -14:00, year 1 at +14:00
        raise ValueError(f"the time must be between {EARLIEST_YEAR} and {LATEST_YEAR}") from None
    if not EARLIEST <= utc < LATEST:
        raise ValueError(f"the time must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return utc


def bounded_day(value: dt.date) -> dt.date:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"the date must be between {EARLIEST_YEAR} and {LATEST_YEAR}")
    return value


BoundedDatetime = Annotated[AwareDatetime, AfterValidator(bounded_instant)]
BoundedDate = Annotated[dt.date, AfterValidator(bounded_day)]

Int32 = Annotated[int, Field(ge=-(2**31), le=INT32_MAX)]
NonNegativeInt32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]
Int64 = Annotated[int, Field(ge=-(2**63), le=INT64_MAX)]
NonNegativeInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]

Text = Annotated[str, AfterValidator(clean_text)]
