"""The audit log's monthly partitions (migration 0011): created ahead of time, listed for archiving.

Months are UTC months of ``chained_at``. The partition of a month must exist before the month
begins, or its rows wait in the default partition until the next ``ensure`` moves them (which
briefly locks the table): the worker runs ``ensure_partitions`` daily and at start-up, for the
current month and ``MONTHS_AHEAD`` more, so a worker that stopped for less than that loses
nothing. The DDL runs inside ``audit_log_ensure_partitions``, a function owned by the schema
owner, so the application's role creates partitions without the right to change the table.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

MONTHS_AHEAD = 3
DEFAULT_PARTITION = "audit_log_default"
_MONTHLY = re.compile(r"audit_log_p(?P<year>\d{4})_(?P<month>\d{2})")


def month_of(moment: dt.datetime | dt.date) -> dt.date:
    """The first day of the (UTC) month of ``moment``."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date()
    return moment.replace(day=1)


def add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def parse_month(value: str) -> dt.date:
    """``YYYY-MM`` → the first day of that month."""
    try:
        return dt.datetime.strptime(value, "%Y-%m").date()
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a month written YYYY-MM") from exc


def _as_utc(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Partition:
    name: str
    month: dt.date

    @property
    def start(self) -> dt.datetime:
        return _as_utc(self.month)

    @property
    def end(self) -> dt.datetime:
        return _as_utc(add_months(self.month, 1))


async def ensure_partitions(
    session: AsyncSession | AsyncConnection,
    *,
    now: dt.datetime,
    months_ahead: int = MONTHS_AHEAD,
    since: dt.date | None = None,
) -> list[str]:
    """Create the partitions of every month from ``since`` (default: this month) to ``months_ahead``
    months after this one, and move rows that waited in the default partition to theirs. Returns
    the names of the partitions created. Months already archived are left alone."""
    first = month_of(since or now)
    last = add_months(month_of(now), months_ahead)
    result = await session.execute(
        text("SELECT audit_log_ensure_partitions(:first, :last)"), {"first": first, "last": last}
    )
    return list(result.scalar_one())


async def list_partitions(session: AsyncSession | AsyncConnection) -> list[Partition]:
    """The monthly partitions attached to ``audit_log``, oldest first (not the default one)."""
    names = (
        await session.execute(
            text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'audit_log'::regclass"
            )
        )
    ).scalars()
    partitions = []
    for name in names:
        match = _MONTHLY.fullmatch(name)
        if match:
            partitions.append(Partition(name, dt.date(int(match["year"]), int(match["month"]), 1)))
    return sorted(partitions, key=lambda partition: partition.month)
