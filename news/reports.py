"""Periodic reports per component portal and app (issue 19 item 5): pushes sent, devices
targeted and sent, readers reached and opened, per day / week / month, split by reader language
and by news section.

Grouped statements over the notifications created in the range (the index on
``notifications.created_at``), each notification's figures read from what survives retention:

* **Totals** come from the notification's counters (``targeted``/``sent``/``invalid``/``failed``)
  and its receipts: those still kept (a primary-key range per notification) plus the sums the
  receipt purge left on the row (``receipts_received``/``receipts_opened``), the same arithmetic
  as ``notifications.stats.receipt_counts``. They stay exact for as long as notifications are kept.
* **By language**, from the per-language summary (notifications/language_summary.py): a push
  whose sending has ended has its devices there (folded within a minute, before its deliveries
  may be purged) and the readers whose receipts the purge removed; the receipts still kept are
  counted by the language each carries, in the same primary-key range as the totals. Only a
  push still sending (or ended under a minute ago) has its deliveries counted live. Pushes
  purged before the summary existed have their purged part under ``unknown``; every language
  split adds up to the totals.
* **By section**: a news push counts under each section it was addressed to (so a push to two
  sections appears twice and section rows do not add up to the totals); a push to all readers
  under ``all_readers``; anything not released from a news item (direct API pushes, tracking
  reminders, recall pushes) under ``other``.

Periods are calendar days, ISO weeks (from Monday) or months in Vietnam's time (D-50); the range
is whole days from ``start`` to ``end`` inclusive, at most ``MAX_DAYS``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth.models import Unit
from auth.principal import Principal
from auth.units import get_unit
from core.errors import Unprocessable
from devices import apps
from devices.app_schemas import AppCode
from news.models import Section
from notifications.language_summary import RECEIPT_LANGUAGE_SQL

Grain = Literal["day", "week", "month"]
App = AppCode  # an app of the apps table (devices/apps.py); a disabled one still reports
GRAINS: tuple[Grain, ...] = ("day", "week", "month")
MAX_DAYS = 366
UNKNOWN = "unknown"
VN_TIME = dt.timezone(dt.timedelta(hours=7), "ICT")  # no daylight saving (D-50)


@dataclass(frozen=True)
class ReportQuery:
    grain: Grain
    start: dt.date
    end: dt.date  # inclusive
    app: App | None = None
    unit_id: uuid.UUID | None = None
    # The language split: read from the per-language summary and the kept receipts (see
    # docs/reports.md); ``False`` leaves it out.
    languages: bool = True

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[start 00:00, end + 1 day 00:00) in Vietnam's time."""
        since = dt.datetime.combine(self.start, dt.time(), VN_TIME)
        until = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), VN_TIME)
        return since, until

    def check(self) -> None:
        if self.grain not in GRAINS:
            raise Unprocessable("period must be day, week or month", code="validation_error")
        if self.end < self.start:
            raise Unprocessable("end is before start", code="validation_error")
        if (self.end - self.start).days + 1 > MAX_DAYS:
            raise Unprocessable(f"A report covers at most {MAX_DAYS} days", code="report_range_too_long")


@dataclass
class Figures:
    notifications: int = 0
    targeted: int = 0
    sent: int = 0
    invalid: int = 0
    failed: int = 0
    received: int = 0
    opened: int = 0

    @property
    def open_rate(self) -> float | None:
        """Readers who opened it among the readers it reached (both counted per reader)."""
        return round(self.opened / self.received, 4) if self.received else None


@dataclass
class ReportRow:
    period: dt.date
    app: str
    unit_id: uuid.UUID | None
    unit_name: str | None
    breakdown: Literal["total", "language", "section"]
    key: str  # "" for totals; a language; a section code, "all_readers" or "other"
    figures: Figures


@dataclass
class Report:
    query: ReportQuery
    unit: Unit | None
    rows: list[ReportRow] = field(default_factory=list)

    def of(self, breakdown: str) -> list[ReportRow]:
        return [row for row in self.rows if row.breakdown == breakdown]


# --- the statements --------------------------------------------------------------------------------

# The notifications of the report, with their period. ``:prefix`` is the unit subtree (a path
# prefix) or NULL for everything; rows without a unit (API clients of no unit) only then.
_IN_RANGE = """
    n AS (
        SELECT n.id, n.app, n.unit_id, n.targeted, n.sent, n.invalid, n.failed,
               n.deliveries_purged_at IS NOT NULL AS deliveries_gone,
               n.languages_summarized_at IS NOT NULL AS summarized,
               coalesce(n.receipts_received, 0) AS purged_received,
               coalesce(n.receipts_opened, 0) AS purged_opened,
               date_trunc(:grain, n.created_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date AS period
          FROM notifications n
          LEFT JOIN units u ON u.id = n.unit_id
         WHERE n.created_at >= :since AND n.created_at < :until
           AND (CAST(:app AS text) IS NULL OR n.app = :app)
           AND (CAST(:prefix AS text) IS NULL OR starts_with(u.path, :prefix))
    )"""

# Per notification: its counters and all its receipts, kept or summed by the purge.
_WITH_RECEIPTS = """
    t AS (
        SELECT n.*, n.purged_received + r.received AS received, n.purged_opened + r.opened AS opened
          FROM n CROSS JOIN LATERAL (
               SELECT count(received_at) AS received, count(opened_at) AS opened
                 FROM receipts WHERE receipts.notification_id = n.id) r
    )"""

# Each notification of ``t`` (one row per notification, with its readers) once per section key.
_SECTIONS = """
    s AS (
        SELECT t.*, CASE
                 WHEN ni.id IS NULL THEN 'other'
                 WHEN coalesce((ni.audience ->> 'all_readers')::boolean, false) THEN 'all_readers'
                 ELSE sec.code END AS key
          FROM t
          LEFT JOIN news_items ni ON ni.notification_id = t.id
          LEFT JOIN LATERAL jsonb_array_elements_text(
               CASE WHEN jsonb_typeof(ni.audience -> 'sections') = 'array'
                    THEN ni.audience -> 'sections' ELSE '[]'::jsonb END) AS sec(code) ON true
    )"""
# The total and section rows, from ``t`` and ``s``.
_TOTALS_AND_SECTIONS_ROWS = """
    SELECT 'total' AS breakdown, period, app, unit_id, '' AS key, count(*) AS notifications,
           sum(targeted) AS targeted, sum(sent) AS sent, sum(invalid) AS invalid, sum(failed) AS failed,
           sum(received) AS received, sum(opened) AS opened
      FROM t GROUP BY period, app, unit_id
    UNION ALL
    SELECT 'section', period, app, unit_id, coalesce(key, 'other'), count(*),
           sum(targeted), sum(sent), sum(invalid), sum(failed), sum(received), sum(opened)
      FROM s GROUP BY period, app, unit_id, coalesce(key, 'other')"""

# Totals and sections in one statement, so each notification's receipts are counted once.
_TOTALS_AND_SECTIONS = text(f"WITH {_IN_RANGE}, {_WITH_RECEIPTS}, {_SECTIONS} {_TOTALS_AND_SECTIONS_ROWS}")

# The same with the language split, the kept receipts read once: per notification and language
# (``rl``), summed per notification for the totals. By language: the summary of a push whose
# sending has ended, the live deliveries of one still sending (each one's own index range), what
# retention reduced to totals before the summary existed under 'unknown', and the kept receipts.
_ALL_BREAKDOWNS = text(
    f"""WITH {_IN_RANGE},
    rl AS MATERIALIZED (
        SELECT n.id, n.period, n.app, n.unit_id, x.key, x.received, x.opened
          FROM n CROSS JOIN LATERAL (
               SELECT {RECEIPT_LANGUAGE_SQL} AS key,
                      count(r.received_at) AS received, count(r.opened_at) AS opened
                 FROM receipts r WHERE r.notification_id = n.id GROUP BY 1) x
    ),
    t AS (
        SELECT n.*, n.purged_received + coalesce(r.received, 0) AS received,
               n.purged_opened + coalesce(r.opened, 0) AS opened
          FROM n LEFT JOIN (SELECT id, sum(received) AS received, sum(opened) AS opened
                              FROM rl GROUP BY id) r ON r.id = n.id
    ),
    {_SECTIONS},
    parts AS (
        SELECT n.period, n.app, n.unit_id, l.language AS key, l.targeted, l.sent, l.invalid, l.failed,
               l.received, l.opened
          FROM n JOIN notification_languages l ON l.notification_id = n.id
         WHERE n.summarized
        UNION ALL
        SELECT n.period, n.app, n.unit_id, d.language, d.targeted, d.sent, d.invalid, d.failed, 0, 0
          FROM n CROSS JOIN LATERAL (
               SELECT language, count(*) AS targeted, count(*) FILTER (WHERE status = 'sent') AS sent,
                      count(*) FILTER (WHERE status = 'invalid') AS invalid,
                      count(*) FILTER (WHERE status = 'failed') AS failed
                 FROM deliveries WHERE deliveries.notification_id = n.id GROUP BY language) d
         WHERE NOT n.summarized
        UNION ALL
        SELECT n.period, n.app, n.unit_id, '{UNKNOWN}',
               CASE WHEN n.deliveries_gone THEN n.targeted ELSE 0 END,
               CASE WHEN n.deliveries_gone THEN n.sent ELSE 0 END,
               CASE WHEN n.deliveries_gone THEN n.invalid ELSE 0 END,
               CASE WHEN n.deliveries_gone THEN n.failed ELSE 0 END,
               n.purged_received, n.purged_opened
          FROM n
         WHERE NOT n.summarized AND (n.deliveries_gone OR n.purged_received > 0 OR n.purged_opened > 0)
        UNION ALL
        SELECT period, app, unit_id, key, 0, 0, 0, 0, received, opened FROM rl
    )
    {_TOTALS_AND_SECTIONS_ROWS}
    UNION ALL
    SELECT 'language', period, app, unit_id, key, 0, sum(targeted), sum(sent), sum(invalid), sum(failed),
           sum(received), sum(opened)
      FROM parts GROUP BY period, app, unit_id, key"""  # noqa: S608 - fixed fragments, every value a bind parameter
)


async def _rows(session: AsyncSession, statement: Any, params: dict[str, Any]) -> list[Any]:
    return list((await session.execute(statement, params)).all())


async def build(session: AsyncSession, *, principal: Principal, query: ReportQuery) -> Report:
    """The report the principal may see: its own unit subtree (a component portal sees its own
    and its sub-units' pushes; central boards' admins and system admins more), narrowed to
    ``query.unit_id`` (which must be inside it, else 404)."""
    query.check()
    if query.app is not None:
        await apps.require(session, query.app, enabled=False)
    unit = await get_unit(session, principal=principal, unit_id=query.unit_id) if query.unit_id else None
    if unit is not None:
        prefix: str | None = unit.path
    elif principal.sees_all_units:
        prefix = None
    else:
        # An account without a unit sees nothing: unit paths are hex ids and slashes.
        prefix = principal.unit_path or "no-unit/"
    since, until = query.bounds()
    params = {"grain": query.grain, "since": since, "until": until, "app": query.app, "prefix": prefix}
    # Compiling these statements (JIT) costs seconds and saves nothing on a few million rows of
    # hash joins (as in notifications/backlog.py); for this transaction only.
    await session.execute(text("SET LOCAL jit = off"))
    found = await _rows(session, _ALL_BREAKDOWNS if query.languages else _TOTALS_AND_SECTIONS, params)
    unit_ids = {row.unit_id for row in found if row.unit_id is not None}
    names: dict[uuid.UUID, str] = {}
    if unit_ids:
        result = await session.execute(
            text("SELECT id, name FROM units WHERE id = ANY(:ids)"), {"ids": list(unit_ids)}
        )
        names = {row.id: row.name for row in result}
    order = {"total": 0, "language": 1, "section": 2}
    rows = [
        ReportRow(
            period=row.period,
            app=row.app,
            unit_id=row.unit_id,
            unit_name=names.get(row.unit_id) if row.unit_id else None,
            breakdown=row.breakdown,
            key=row.key,
            figures=Figures(
                notifications=int(row.notifications),
                targeted=int(row.targeted),
                sent=int(row.sent),
                invalid=int(row.invalid),
                failed=int(row.failed),
                received=int(row.received),
                opened=int(row.opened),
            ),
        )
        for row in found
    ]
    rows.sort(key=lambda r: (r.period, r.app, r.unit_name or "", str(r.unit_id), order[r.breakdown], r.key))
    return Report(query=query, unit=unit, rows=rows)


async def section_names(session: AsyncSession, *, language: str) -> dict[str, str]:
    """Every section's name (archived ones too: old reports name them) in ``language``, else
    Vietnamese, by code: for showing a report to people rather than to programs."""
    rows = await session.execute(select(Section.code, Section.names))
    return {code: names.get(language) or names.get("vi") or code for code, names in rows}


def _explained() -> list[tuple[str, Any]]:
    """The statements by name, for EXPLAIN in a benchmark (bench/reports.py)."""
    return [("totals+sections", _TOTALS_AND_SECTIONS), ("all+languages", _ALL_BREAKDOWNS)]
