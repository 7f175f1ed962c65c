"""The inbox's part of a device credential's one statement (devices/credentials.py): the columns
the unread count and the first page need, as SQL over the device row ``d``, read in the same
round trip as the credential check. A device reads one app's inbox, and everything a device
reader is (its id, app, topics and start) is in that row, so nothing else must be known first.

    unread count: device + own unread rows per app + markers + exceptions + the app window's
                  fingerprint → 1 statement (the window itself is in memory, inbox/window.py)
    first page:   device + markers → 1 statement, then the page → 2
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inbox import queries
from inbox.readers import BROADCAST_WINDOW, Reader
from inbox.window import fingerprint_of, window_bound

MARKERS = f"{queries.MARKERS_JSON.format(reader='d.id')} AS markers"


def unread_columns(first: int) -> list[str]:
    """Parameters ``$first`` (the window's bound) and ``$first+1`` (the 90-day window's start):
    ``unread_parameters``. Own rows per app (index-only, ix_inbox_items_unread), so that one
    statement serves the count of every app filter."""
    bound, window_start = f"${first}", f"${first + 1}"
    since = f"greatest(d.created_at, {window_start})"
    return [
        "(SELECT coalesce(json_object_agg(u.app, u.unread), '{}') FROM (SELECT app, count(*) AS unread "
        "FROM inbox_items WHERE reader_id = d.id AND read_at IS NULL AND archived_at IS NULL "
        "GROUP BY app) u) AS own_unread",
        MARKERS,
        f"{queries.SKIP_IDS.format(reader='d.id', since=since)} AS skip",
        f"{fingerprint_of(app='d.app', bound=bound)} AS window_fingerprint",
    ]


def unread_parameters(now: dt.datetime) -> Sequence[object]:
    return (window_bound(now), now - BROADCAST_WINDOW)


async def unread_count(
    session: AsyncSession, *, reader: Reader, app: str | None, row: Mapping[str, Any], now: dt.datetime
) -> int:
    """The count from ``unread_columns``' values: no further statement unless the app's window
    must be (re)read."""
    own: dict[str, int] = row["own_unread"]
    count = sum(own.values()) if app is None else own.get(app, 0)
    fingerprints = {
        reader_app: row["window_fingerprint"] for reader_app in reader.apps if app in (None, reader_app)
    }
    return count + await queries.unread_broadcasts(
        session,
        reader,
        markers=queries.markers_of(row["markers"]),
        skip=set(row["skip"]),
        fingerprints=fingerprints,
        now=now,
    )


def markers(row: Mapping[str, Any]) -> dict[str, queries.Marker]:
    """The markers from ``MARKERS``' value."""
    return queries.markers_of(row["markers"])
