"""The reminder sweep: which reminders are due now, written to the ledger in one statement.

Every rule's firing instant is a monotone function of one column (the deadline's local date,
the KPI report's due date, the time the lead unit received the task), so "fires between
``since`` and ``now``" is a range on that column, computed here in Python with the working
calendar and handed to one set-based ``INSERT … SELECT … ON CONFLICT DO NOTHING``. The ledger's
UNIQUE (subject, rule, occurrence, recipient) makes overlapping sweeps and several workers agree:
a second insert of the same row waits for the first transaction and then does nothing.

- ``since`` reaches back ``catch_up_working_days`` working days, so a missed tick, a stopped
  worker, a night, a weekend or Tết are caught up by the next sweep in working time.
- Outside working hours only emergencies are written; the rest wait for the next working slot.
- A recipient in their quiet hours is skipped by this sweep and written by the first sweep after.
- Update requests (rule ``request``, tracking/requests.py) fire on their due date like tasks on
  theirs, with one more condition: a moment before the request was asked never fires, so their
  dates come with their firing instants (``fire_days``) instead of a bare range.
- A refused task (D-14) waits for reassignment: its unit gets no deadline reminders and no overdue
  warnings; the standing agency's overdue step still fires for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import DateTime, Integer, String, Time

from auth.models import Unit
from core.workcalendar import WorkCalendar
from tracking.quiet import in_quiet_hours_sql
from tracking.rules import Rules
from tracking.scope import leaders_in_charge_sql

# How far around "today" a due date is looked for: back for overdue steps (≤ 60 working days),
# ahead for reminders (≤ 90 days before), both with room for Tết and weekends.
_SCAN_BEFORE_DAYS = 100
_SCAN_AFTER_DAYS = 160


@dataclass(frozen=True)
class SweepWindow:
    now: dt.datetime
    since: dt.datetime
    working: bool
    local_time: dt.time


def sweep_window(now: dt.datetime, calendar: WorkCalendar, rules: Rules) -> SweepWindow:
    local = calendar.local(now)
    today = local.date()
    if calendar.is_working_day(today) and now >= calendar.day_opens(today):
        latest = today
    else:
        latest = calendar.shift_working_days(today, -1)
    since = calendar.day_opens(calendar.shift_working_days(latest, -rules.catch_up_working_days))
    return SweepWindow(
        now=now, since=since, working=calendar.is_working_instant(now), local_time=local.time()
    )


def before_fire(calendar: WorkCalendar, rules: Rules, n: int) -> Callable[[dt.date], dt.datetime]:
    """When the "n days before" reminder of something due on local date ``d`` fires."""
    if rules.offset_unit == "working_days":
        return lambda d: calendar.day_opens(
            calendar.shift_working_days(calendar.working_day_on_or_before(d), -n)
        )
    return lambda d: calendar.day_opens(d - dt.timedelta(days=n))


def after_fire(calendar: WorkCalendar, n: int) -> Callable[[dt.date], dt.datetime]:
    """When the warning on the n-th working day after a deadline dated ``d`` fires."""
    return lambda d: calendar.day_opens(calendar.shift_working_days(d, n))


def date_range(
    fire: Callable[[dt.date], dt.datetime], window: SweepWindow, calendar: WorkCalendar
) -> tuple[dt.date, dt.date] | None:
    """The dates ``d`` with ``since <= fire(d) <= now`` (contiguous: ``fire`` is monotone)."""
    today = calendar.local(window.now).date()
    hits = [
        day
        for offset in range(-_SCAN_BEFORE_DAYS, _SCAN_AFTER_DAYS)
        if window.since <= fire(day := today + dt.timedelta(days=offset)) <= window.now
    ]
    return (hits[0], hits[-1]) if hits else None


# Who a target means. Work without named responsible people goes to the leaders accountable for
# it (not to every officer of the unit: hundreds of pushes for one item): the unit's leaders and
# the leaders in charge of the task's field (D-16, tracking/scope.py), as "unit_leaders" does.
_LEADERS = leaders_in_charge_sql("c.unit_id", "c.field_id")
_RECIPIENTS = f"""
    SELECT unnest(c.responsible_user_ids) WHERE c.target = 'responsible'
    UNION ALL
    SELECT l.id FROM ({_LEADERS}) AS l(id)
     WHERE c.target = 'unit_leaders'
        OR (c.target = 'responsible' AND cardinality(c.responsible_user_ids) = 0)
    UNION ALL
    SELECT u.id FROM users u JOIN units lu ON lu.id = c.unit_id
     WHERE c.target = 'standing_agency' AND u.role IN ('task_approver', 'leader')
       AND u.unit_id = COALESCE(:agency, CAST(split_part(lu.path, '/', 1) AS uuid))
"""  # noqa: S608

# The recipient's preferences (p) at the sweep's local time: the rule of tracking/quiet.py, which
# the digest sender runs too.
_QUIET = in_quiet_hours_sql("p.quiet_start", "p.quiet_end", ":local_time")

_EMERGENCY = "(t.priority = ANY(:emergency))"
# Constant SQL fragments composed at import; every value is a bound parameter.
_TASK_CANDIDATES = f"""
    SELECT t.id AS subject_id, 'deadline' AS rule, 'd' || r.n || ':' || t.deadline_date AS occurrence,
           'responsible' AS target, t.lead_unit_id AS unit_id, t.field_id, t.responsible_user_ids,
           {_EMERGENCY} AS emergency, 'normal' AS base_priority, true AS digestible
      FROM tracking_tasks t
      JOIN jsonb_to_recordset(CAST(:before AS jsonb)) AS r(n int, lo date, hi date)
        ON t.deadline_date BETWEEN r.lo AND r.hi
     WHERE t.result_status <> 'done' AND t.deadline > :now AND t.refused_at IS NULL
    UNION ALL
    SELECT t.id, 'overdue', 'w' || r.n || ':' || r.target || ':' || t.deadline_date,
           r.target, t.lead_unit_id, t.field_id, t.responsible_user_ids,
           {_EMERGENCY}, 'high', r.target = 'responsible'
      FROM tracking_tasks t
      JOIN jsonb_to_recordset(CAST(:after AS jsonb)) AS r(n int, lo date, hi date, target text)
        ON t.deadline_date BETWEEN r.lo AND r.hi
     WHERE t.result_status <> 'done' AND t.deadline < :now
       AND (t.refused_at IS NULL OR r.target = 'standing_agency')
    UNION ALL
    SELECT t.id, 'confirm', s.step || ':' || CAST(extract(epoch FROM t.received_at) AS bigint),
           s.target, t.lead_unit_id, t.field_id, t.responsible_user_ids, {_EMERGENCY}, 'high', false
      FROM tracking_tasks t
      JOIN (VALUES ('half', 'responsible', CAST(:half_lo AS timestamptz), CAST(:half_hi AS timestamptz)),
                   ('expiry', 'unit_leaders', CAST(:full_lo AS timestamptz), CAST(:full_hi AS timestamptz)))
           AS s(step, target, lo, hi)
        ON t.received_at > s.lo AND t.received_at <= s.hi
     WHERE t.confirmed_at IS NULL AND t.refused_at IS NULL AND t.result_status <> 'done'
    UNION ALL
    SELECT k.id, 'report', 'r' || r.n || ':' || k.report_due, 'responsible', k.unit_id,
           CAST(NULL AS uuid), k.responsible_user_ids, false, 'normal', true
      FROM tracking_kpis k
      JOIN jsonb_to_recordset(CAST(:report AS jsonb)) AS r(n int, lo date, hi date)
        ON k.report_due BETWEEN r.lo AND r.hi
     WHERE k.reported_at IS NULL
    UNION ALL
    SELECT q.id, 'request', 'b' || x.n || ':' || q.due_date, 'responsible', t.lead_unit_id, t.field_id,
           t.responsible_user_ids, {_EMERGENCY}, 'normal', true
      FROM tracking_update_requests q
      JOIN jsonb_to_recordset(CAST(:request_before AS jsonb)) AS x(n int, day date, fires timestamptz)
        ON q.due_date = x.day AND q.requested_at < x.fires
      JOIN tracking_tasks t ON t.id = q.task_id
     WHERE q.status = 'open'
    UNION ALL
    SELECT q.id, 'request', 'w' || x.n || ':' || x.target || ':' || q.due_date, x.target, t.lead_unit_id,
           t.field_id, t.responsible_user_ids, {_EMERGENCY}, 'high', x.target = 'responsible'
      FROM tracking_update_requests q
      JOIN jsonb_to_recordset(CAST(:request_after AS jsonb))
           AS x(n int, day date, fires timestamptz, target text)
        ON q.due_date = x.day
      JOIN tracking_tasks t ON t.id = q.task_id
     WHERE q.status = 'open'
"""  # noqa: S608

# KPIs have no priority: their reminders are never emergencies (a constant false above).
_SWEEP = text(
    f"""
    WITH candidates AS ({_TASK_CANDIDATES}),
    allowed AS (
        SELECT * FROM candidates c WHERE :working OR c.emergency
    ),
    recipients AS MATERIALIZED (
        SELECT c.*, x.user_id FROM allowed c CROSS JOIN LATERAL ({_RECIPIENTS}) AS x(user_id)
    )
    INSERT INTO tracking_reminders
        (subject_id, rule, occurrence, user_id, priority, channel, status, due_at, created_at)
    SELECT DISTINCT ON (rc.subject_id, rc.rule, rc.occurrence, rc.user_id)
           rc.subject_id, rc.rule, rc.occurrence, rc.user_id,
           CASE WHEN rc.emergency THEN 'emergency' ELSE rc.base_priority END,
           CASE WHEN rc.digestible AND NOT rc.emergency AND coalesce(p.daily_digest, false)
                THEN 'digest' ELSE 'push' END,
           'pending', :now, :now
      FROM recipients rc
      JOIN users u ON u.id = rc.user_id AND u.is_active
      LEFT JOIN tracking_preferences p ON p.user_id = rc.user_id
     WHERE rc.emergency OR NOT coalesce(({_QUIET}), false)
    ON CONFLICT ON CONSTRAINT uq_tracking_reminders_once DO NOTHING
    RETURNING channel
    """  # noqa: S608
).bindparams(
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("half_lo", type_=DateTime(timezone=True)),
    bindparam("half_hi", type_=DateTime(timezone=True)),
    bindparam("full_lo", type_=DateTime(timezone=True)),
    bindparam("full_hi", type_=DateTime(timezone=True)),
    bindparam("local_time", type_=Time()),
    bindparam("emergency", type_=ARRAY(Integer)),
    bindparam("agency", type_=UUID(as_uuid=True)),
    bindparam("before", type_=String),
    bindparam("after", type_=String),
    bindparam("report", type_=String),
    bindparam("request_before", type_=String),
    bindparam("request_after", type_=String),
)


@dataclass(frozen=True)
class SweepResult:
    pushes: int
    digests: int


def _ranges(
    window: SweepWindow, calendar: WorkCalendar, rules: Rules
) -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    before: list[dict[str, object]] = []
    for n in sorted(set(rules.deadline_offsets)):
        found = date_range(before_fire(calendar, rules, n), window, calendar)
        if found:
            before.append({"n": n, "lo": found[0].isoformat(), "hi": found[1].isoformat()})
    after: list[dict[str, object]] = []
    for step in rules.overdue_steps:
        found = date_range(after_fire(calendar, step.after_working_days), window, calendar)
        if found:
            after.append(
                {
                    "n": step.after_working_days,
                    "lo": found[0].isoformat(),
                    "hi": found[1].isoformat(),
                    "target": step.to,
                }
            )
    report: list[dict[str, object]] = []
    for n in sorted(set(rules.report_offsets)):
        found = date_range(before_fire(calendar, rules, n), window, calendar)
        if found:
            report.append({"n": n, "lo": found[0].isoformat(), "hi": found[1].isoformat()})
    return before, after, report


def fire_days(
    fire: Callable[[dt.date], dt.datetime], window: SweepWindow, calendar: WorkCalendar
) -> list[dict[str, object]]:
    """Each date ``d`` with ``since <= fire(d) <= now`` and its firing instant: requests are asked
    at any time, and a reminder whose moment came before its request was asked never fires."""
    today = calendar.local(window.now).date()
    found: list[dict[str, object]] = []
    for offset in range(-_SCAN_BEFORE_DAYS, _SCAN_AFTER_DAYS):
        day = today + dt.timedelta(days=offset)
        fires = fire(day)
        if window.since <= fires <= window.now:
            found.append({"day": day.isoformat(), "fires": fires.isoformat()})
    return found


def _request_days(
    window: SweepWindow, calendar: WorkCalendar, rules: Rules
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Requests are due on working days and reminded in working days, whatever ``offset_unit``."""

    def before_due(n: int) -> Callable[[dt.date], dt.datetime]:
        return lambda d: calendar.day_opens(calendar.shift_working_days(d, -n))

    before = [
        {"n": n, **hit}
        for n in sorted(set(rules.request_offsets))
        for hit in fire_days(before_due(n), window, calendar)
    ]
    after = [
        {"n": step.after_working_days, "target": step.to, **hit}
        for step in rules.request_overdue_steps
        for hit in fire_days(after_fire(calendar, step.after_working_days), window, calendar)
    ]
    return before, after


async def standing_agency_id(session: AsyncSession, rules: Rules) -> uuid.UUID | None:
    if rules.standing_agency_unit_code is None:
        return None
    found: uuid.UUID | None = (
        await session.execute(select(Unit.id).where(Unit.code == rules.standing_agency_unit_code))
    ).scalar_one_or_none()
    return found


async def sweep(
    session: AsyncSession, *, now: dt.datetime, calendar: WorkCalendar, rules: Rules
) -> SweepResult:
    """Write every reminder due at ``now`` to the ledger (status pending); returns how many rows
    this sweep added per channel. The sender turns pending rows into notifications."""
    window = sweep_window(now, calendar, rules)
    before, after, report = _ranges(window, calendar, rules)
    request_before, request_after = _request_days(window, calendar, rules)
    half = dt.timedelta(hours=rules.confirm_window_hours * rules.confirm_remind_at)
    full = dt.timedelta(hours=rules.confirm_window_hours)
    # The statement is cheap to run but large to plan: JIT compilation alone took seconds.
    await session.execute(text("SET LOCAL jit = off"))
    result = await session.execute(
        _SWEEP,
        {
            "now": now,
            "working": window.working,
            "local_time": window.local_time,
            "emergency": list(rules.emergency_priorities),
            "agency": await standing_agency_id(session, rules),
            "before": orjson.dumps(before).decode(),
            "after": orjson.dumps(after).decode(),
            "report": orjson.dumps(report).decode(),
            "request_before": orjson.dumps(request_before).decode(),
            "request_after": orjson.dumps(request_after).decode(),
            "half_lo": calendar.subtract_working_time(window.since, half),
            "half_hi": calendar.subtract_working_time(now, half),
            "full_lo": calendar.subtract_working_time(window.since, full),
            "full_hi": calendar.subtract_working_time(now, full),
        },
    )
    channels = list(result.scalars())
    return SweepResult(pushes=channels.count("push"), digests=channels.count("digest"))
