"""Intake from the tracking system (D-10, D-11): idempotent bulk upserts of tasks and KPIs.

One request carries up to ``tracking_max_batch`` records and costs a handful of set-based
statements whatever its size: resolve unit codes and usernames (one query each), lock the stored
versions (one query), and one ``INSERT … SELECT FROM jsonb_to_recordset … ON CONFLICT DO UPDATE
… WHERE stored.version < incoming.version``. A record whose version is not newer than the
stored one changes nothing and is reported back as ignored.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.models import Unit, User
from auth.principal import Principal
from core.config import get_settings
from core.db import utcnow
from core.errors import Unprocessable
from core.workcalendar import TIMEZONE, WorkCalendar
from tracking import events, requests
from tracking.fields import resolve_fields
from tracking.models import Kpi, Task
from tracking.rules import get_rules
from tracking.schemas import KpiUpsert, TaskUpsert, UpsertResult

_TASK_COLUMNS = """
    id uuid, code text, name text, group_code text, group_name text, lead_unit_id uuid,
    cooperating_unit_ids uuid[], responsible_user_ids uuid[], assigning_document text,
    expected_output text, assigned_at timestamptz, deadline timestamptz, deadline_date date,
    priority smallint, result_status text, completed_at timestamptz, classified boolean,
    description text, difficulties text, proposals text, attachments jsonb, report_status text,
    report_note text, received_at timestamptz, confirmed_at timestamptz, version bigint,
    source_client_id uuid, field_id uuid
"""
_TASK_NAMES = [part.split()[0] for part in _TASK_COLUMNS.replace("\n", " ").split(",")]
# A unit's refusal (D-14, tracking/refusal.py) is its answer, not the tracking system's data: an
# update keeps it, and a new lead unit (who starts a new window) starts without one.
_KEEP_REFUSAL_UNLESS_REASSIGNED = [
    f"{n} = CASE WHEN tracking_tasks.lead_unit_id = excluded.lead_unit_id THEN tracking_tasks.{n} END"
    for n in ("refused_at", "refused_by", "refusal_reason_code", "refusal_reason")
]
# Built once from the constant column lists above; values travel only as bound parameters.
_TASK_UPSERT = text(
    f"""
    INSERT INTO tracking_tasks ({", ".join(_TASK_NAMES)}, created_at, updated_at)
    SELECT {", ".join(_TASK_NAMES)}, :now, :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_TASK_COLUMNS})
    ON CONFLICT (code) DO UPDATE SET
        {", ".join(f"{n} = excluded.{n}" for n in _TASK_NAMES if n not in ("id", "code"))},
        {", ".join(_KEEP_REFUSAL_UNLESS_REASSIGNED)},
        updated_at = excluded.updated_at
    WHERE tracking_tasks.version < excluded.version
    RETURNING id, code, (xmax = 0) AS inserted
    """  # noqa: S608
)

_KPI_COLUMNS = """
    id uuid, code text, period text, period_kind text, name text, unit_id uuid,
    responsible_user_ids uuid[], target numeric, value numeric, cumulative_value numeric,
    report_due date, reported_at timestamptz, version bigint, source_client_id uuid
"""
_KPI_NAMES = [part.split()[0] for part in _KPI_COLUMNS.replace("\n", " ").split(",")]
_KPI_UPSERT = text(
    f"""
    INSERT INTO tracking_kpis ({", ".join(_KPI_NAMES)}, created_at, updated_at)
    SELECT {", ".join(_KPI_NAMES)}, :now, :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({_KPI_COLUMNS})
    ON CONFLICT (code, period) DO UPDATE SET
        {", ".join(f"{n} = excluded.{n}" for n in _KPI_NAMES if n not in ("id", "code", "period"))},
        updated_at = excluded.updated_at
    WHERE tracking_kpis.version < excluded.version
    RETURNING id, code, period, (xmax = 0) AS inserted
    """  # noqa: S608
)


@dataclass(frozen=True)
class StoredTask:
    id: uuid.UUID
    code: str
    version: int
    lead_unit_id: uuid.UUID
    responsible_user_ids: list[uuid.UUID]
    deadline: dt.datetime
    report_status: str | None
    report_note: str | None
    received_at: dt.datetime
    confirmed_at: dt.datetime | None
    field_id: uuid.UUID | None


def deadline_instant(value: dt.date | dt.datetime, calendar: WorkCalendar) -> dt.datetime:
    """A bare date means the end of that day's working hours, local time."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC)
    return calendar.at(value, calendar.day_end)


def _check_size(count: int) -> None:
    limit = get_settings().tracking_max_batch
    if count > limit:
        raise Unprocessable(f"At most {limit} records per request", code="batch_too_large")


def _no_duplicates(keys: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    duplicates = sorted({key for key in keys if key in seen or seen.add(key)})  # type: ignore[func-returns-value]
    if duplicates:
        raise Unprocessable(
            f"Each {what} may appear once per request",
            code="duplicate_records",
            details=[{"code": key} for key in duplicates[:50]],
        )


async def _resolve_units(
    session: AsyncSession, principal: Principal, codes: Iterable[str]
) -> dict[str, uuid.UUID]:
    wanted = set(codes)
    rows = (await session.execute(select(Unit.code, Unit.id, Unit.path).where(Unit.code.in_(wanted)))).all()
    found = {row.code: row.id for row in rows if principal.can_manage_unit(row.path)}
    missing = sorted(wanted - found.keys())
    if missing:
        # Units outside the caller's subtree are reported exactly like unknown ones.
        raise Unprocessable(
            "Unknown units", code="unknown_units", details=[{"unit": code} for code in missing[:50]]
        )
    return found


async def _resolve_users(
    session: AsyncSession, principal: Principal, usernames: Iterable[str]
) -> dict[str, uuid.UUID]:
    wanted = set(usernames)
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(User.username, User.id, Unit.path)
            .join(Unit, Unit.id == User.unit_id)
            .where(User.username.in_(wanted))
        )
    ).all()
    found = {row.username: row.id for row in rows if principal.can_manage_unit(row.path)}
    missing = sorted(wanted - found.keys())
    if missing:
        raise Unprocessable(
            "Unknown users", code="unknown_users", details=[{"user": name} for name in missing[:50]]
        )
    return found


async def _stored_tasks(
    session: AsyncSession, principal: Principal, codes: list[str]
) -> dict[str, StoredTask]:
    rows = (
        await session.execute(
            select(
                Task.id,
                Task.code,
                Task.version,
                Task.lead_unit_id,
                Task.responsible_user_ids,
                Task.deadline,
                Task.report_status,
                Task.report_note,
                Task.received_at,
                Task.confirmed_at,
                Task.field_id,
                Unit.path,
            )
            .join(Unit, Unit.id == Task.lead_unit_id)
            .where(Task.code.in_(codes))
            # In one order for every request: two batches naming the same tasks in different
            # orders would otherwise each hold a row the other waits for (a deadlock, a 500).
            .order_by(Task.code)
            .with_for_update(of=Task)
        )
    ).all()
    foreign = sorted(row.code for row in rows if not principal.can_manage_unit(row.path))
    if foreign:
        raise Unprocessable(
            "These tasks belong to units outside your reach",
            code="foreign_tasks",
            details=[{"code": code} for code in foreign[:50]],
        )
    return {row.code: StoredTask(**{k: v for k, v in row._mapping.items() if k != "path"}) for row in rows}


def _json(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows, default=str).decode()  # asyncpg returns its own UUID type


async def upsert_tasks(
    session: AsyncSession, *, principal: Principal, tasks: list[TaskUpsert], calendar: WorkCalendar
) -> UpsertResult:
    _check_size(len(tasks))
    _no_duplicates([t.code for t in tasks], "task code")
    units = await _resolve_units(
        session, principal, {t.lead_unit for t in tasks} | {c for t in tasks for c in t.cooperating_units}
    )
    users = await _resolve_users(session, principal, {u for t in tasks for u in t.responsible_users})
    fields = await resolve_fields(session, {t.field for t in tasks if t.field is not None})
    stored = await _stored_tasks(session, principal, [t.code for t in tasks])
    now = utcnow()
    client_id = principal.api_client.id if principal.api_client is not None else None
    rows: list[dict[str, Any]] = []
    ignored: list[str] = []
    for task in tasks:
        before = stored.get(task.code)
        if before is not None and before.version >= task.version:
            ignored.append(task.code)
            continue
        lead = units[task.lead_unit]
        reassigned = before is None or before.lead_unit_id != lead
        deadline = deadline_instant(task.deadline, calendar)
        rows.append(
            {
                "id": before.id if before else uuid.uuid4(),
                "code": task.code,
                "name": task.name,
                "group_code": task.group_code,
                "group_name": task.group_name,
                "lead_unit_id": lead,
                "cooperating_unit_ids": sorted({units[c] for c in task.cooperating_units} - {lead}),
                "responsible_user_ids": list(dict.fromkeys(users[u] for u in task.responsible_users)),
                "assigning_document": task.assigning_document,
                "expected_output": task.expected_output,
                "assigned_at": task.assigned_at,
                "deadline": deadline,
                "deadline_date": deadline.astimezone(TIMEZONE).date(),
                "priority": task.priority,
                "result_status": task.result_status,
                "completed_at": task.completed_at,
                "classified": task.classified,
                "description": task.description,
                "difficulties": task.difficulties,
                "proposals": task.proposals,
                "attachments": [a.model_dump(mode="json") for a in task.attachments],
                "report_status": task.report.status if task.report else None,
                "report_note": task.report.reason if task.report else None,
                # A new lead unit starts a new 8-working-hour window (D-14).
                "received_at": now if reassigned or before is None else before.received_at,
                "confirmed_at": task.confirmed_at
                or (None if reassigned or before is None else before.confirmed_at),
                "version": task.version,
                "source_client_id": client_id,
                "field_id": (
                    (fields[task.field] if task.field is not None else None)
                    if "field" in task.model_fields_set or before is None
                    else before.field_id
                ),
            }
        )
    created = updated = 0
    applied: list[tuple[dict[str, Any], StoredTask | None]] = []
    if rows:
        # The upsert takes its rows' locks (and a new code's unique-index entry) in the order of
        # the array: sorted, two batches with the same codes in other orders wait in turn.
        rows.sort(key=lambda row: row["code"])
        result = await session.execute(_TASK_UPSERT, {"rows": _json(rows), "now": now})
        by_code = {row["code"]: row for row in rows}
        for returned in result:
            row = by_code[returned.code]
            row["id"] = returned.id  # a concurrent insert of the same code keeps its own id
            applied.append((row, stored.get(returned.code)))
            created += int(returned.inserted)
            updated += int(not returned.inserted)
        # A concurrent request with a newer version won the row: report it as ignored too.
        applied_codes = {row["code"] for row, _ in applied}
        ignored += [code for code in by_code if code not in applied_codes]
    for row, before in applied:
        audit.record(
            session,
            action="tracking.task.created" if before is None else "tracking.task.updated",
            object_type="tracking_task",
            object_id=row["id"],
            details={
                "code": row["code"],
                "version": row["version"],
                "result_status": row["result_status"],
                "field_id": str(row["field_id"]) if row["field_id"] else None,
            },
        )
    # D-15: a rejected report is a correction request to the unit (tracking/requests.py), which
    # the rejection's notification announces.
    corrections = await requests.follow_reports(
        session, changes=applied, now=now, calendar=calendar, rules=get_rules()
    )
    sent = await events.announce_task_changes(
        session, principal=principal, changes=applied, corrections=corrections
    )
    return UpsertResult(created=created, updated=updated, ignored=ignored, notifications=sent)


async def upsert_kpis(session: AsyncSession, *, principal: Principal, kpis: list[KpiUpsert]) -> UpsertResult:
    _check_size(len(kpis))
    _no_duplicates([f"{k.code}@{k.period}" for k in kpis], "KPI code and period")
    units = await _resolve_units(session, principal, {k.unit for k in kpis})
    users = await _resolve_users(session, principal, {u for k in kpis for u in k.responsible_users})
    now = utcnow()
    client_id = principal.api_client.id if principal.api_client is not None else None
    rows = [
        {
            "id": uuid.uuid4(),
            "code": k.code,
            "period": k.period,
            "period_kind": k.period_kind,
            "name": k.name,
            "unit_id": units[k.unit],
            "responsible_user_ids": list(dict.fromkeys(users[u] for u in k.responsible_users)),
            "target": None if k.target is None else str(k.target),
            "value": None if k.value is None else str(k.value),
            "cumulative_value": None if k.cumulative_value is None else str(k.cumulative_value),
            "report_due": k.report_due,
            "reported_at": k.reported_at,
            "version": k.version,
            "source_client_id": client_id,
        }
        # Sorted: the upsert locks its rows in this order (see upsert_tasks).
        for k in sorted(kpis, key=lambda k: (k.code, k.period))
    ]
    # KPIs of units outside the caller's subtree cannot be overwritten: the unit check above
    # covers the incoming unit; a stored row of another unit is refused here.
    foreign = (
        await session.execute(
            select(Kpi.code, Kpi.period, Unit.path)
            .join(Unit, Unit.id == Kpi.unit_id)
            .where(Kpi.code.in_({k.code for k in kpis}))
        )
    ).all()
    wanted = {(k.code, k.period) for k in kpis}
    refused = [
        f"{r.code}@{r.period}"
        for r in foreign
        if (r.code, r.period) in wanted and not principal.can_manage_unit(r.path)
    ]
    if refused:
        raise Unprocessable(
            "These KPIs belong to units outside your reach",
            code="foreign_kpis",
            details=[{"kpi": key} for key in refused[:50]],
        )
    result = await session.execute(_KPI_UPSERT, {"rows": _json(rows), "now": now})
    returned = list(result)
    done = {(r.code, r.period) for r in returned}
    for r in returned:
        audit.record(
            session,
            action="tracking.kpi.created" if r.inserted else "tracking.kpi.updated",
            object_type="tracking_kpi",
            object_id=r.id,
            details={"code": r.code, "period": r.period},
        )
    return UpsertResult(
        created=sum(1 for r in returned if r.inserted),
        updated=sum(1 for r in returned if not r.inserted),
        ignored=[f"{k.code}@{k.period}" for k in kpis if (k.code, k.period) not in done],
        notifications=0,
    )
