"""CSV export of the audit log, safe to open in a spreadsheet.

Many fields are chosen by whoever caused the event (the username of a failed sign-in, a
User-Agent header), so a cell could be a formula (``=cmd|' /C calc'!A0``). Following the OWASP
CSV-injection guidance, every cell that starts with ``= + - @``, tab or carriage return is
prefixed with a single quote and every cell is quoted. The file is UTF-8 with a BOM so that Excel
shows Vietnamese text correctly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, cast

from auth.audit.query import COLUMNS, AuditFilter, AuditScope, encode_cursor, iter_rows
from core.db import get_sessionmaker

BOM = "\ufeff"
MAX_EXPORT_ROWS = 100_000
# Vietnam has no daylight saving time (D-50): a fixed offset is exact.
VN_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")

# Line feed is not in the OWASP list but is just as invisible at the start of a cell.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")

# A timestamp column is shown twice: in UTC and in Vietnam's time.
_SHOWN_AS = {"occurred_at": ("occurred_at_utc", "occurred_at_vn")}
# The table's columns in their order (the ones the export reads, auth/audit/query.py), so a column
# added to the model reaches the file without a second list to keep in step.
HEADER = tuple(name for column in COLUMNS for name in _SHOWN_AS.get(column.name, (column.name,)))


def neutralise(cell: str) -> str:
    """A cell a spreadsheet will show as text, never evaluate."""
    return "'" + cell if cell.startswith(_FORMULA_PREFIXES) else cell


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def to_cells(row: Mapping[str, Any]) -> list[str]:
    occurred_at: dt.datetime = row["occurred_at"]
    values = {
        **row,
        "occurred_at_utc": occurred_at.astimezone(dt.UTC),
        "occurred_at_vn": occurred_at.astimezone(VN_TIME),
    }
    return [neutralise(_text(values[name])) for name in HEADER]


def render(rows: Iterable[list[str]], *, header: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    if header:
        writer.writerow(HEADER)
    writer.writerows(rows)
    return buffer.getvalue()


async def stream_csv(
    *,
    scope: AuditScope,
    filters: AuditFilter,
    before_seq: int | None = None,
    max_rows: int = MAX_EXPORT_ROWS,
    batch: int = 1000,
) -> AsyncIterator[bytes]:
    """The CSV file in chunks, newest row first, read in a session of its own (the request's
    session has committed by the time a streamed body is sent). Stops after ``max_rows``; if more
    rows match, a last line says so and gives the cursor that continues the export."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    yield (BOM + render([], header=True)).encode("utf-8")
    chunk: list[list[str]] = []
    written, last_seq = 0, 0
    async with get_sessionmaker()() as session:
        # One row past the cap tells a complete export from a truncated one.
        async for row in iter_rows(
            session, scope=scope, filters=filters, batch=batch, max_rows=max_rows + 1, before_seq=before_seq
        ):
            if written == max_rows:
                more = f"# truncated after {max_rows} rows; continue with cursor={encode_cursor(last_seq)}"
                chunk.append([more])
                break
            chunk.append(to_cells(cast("Mapping[str, Any]", row._mapping)))
            written, last_seq = written + 1, row.seq
            if len(chunk) >= batch:
                yield render(chunk).encode("utf-8")
                chunk = []
    if chunk:
        yield render(chunk).encode("utf-8")
