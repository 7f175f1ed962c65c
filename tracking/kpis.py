"""Reading KPIs (D-11): the periods of the KPIs a person may see (tracking/scope.py: units in
reach, an inspector's overseen units, and the KPIs one reports), newest due date first."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from auth.principal import Principal
from core.errors import BadRequest
from tracking.models import Kpi
from tracking.scope import kpi_scope


@dataclass(frozen=True)
class KpiFilters:
    code: str | None = None
    period: str | None = None
    unit_id: uuid.UUID | None = None
    limit: int = 50
    cursor: str | None = None


def _encode(kpi: Kpi) -> str:
    return base64.urlsafe_b64encode(f"{kpi.report_due.isoformat()}|{kpi.id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.date, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, kpi_id = raw.split("|")
        return dt.date.fromisoformat(day), uuid.UUID(kpi_id)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc


async def list_kpis(
    session: AsyncSession, *, principal: Principal, filters: KpiFilters
) -> tuple[list[Kpi], str | None]:
    query = select(Kpi).where(kpi_scope(principal))
    if filters.code is not None:
        query = query.where(Kpi.code == filters.code)
    if filters.period is not None:
        query = query.where(Kpi.period == filters.period)
    if filters.unit_id is not None:
        query = query.where(Kpi.unit_id == filters.unit_id)
    if filters.cursor is not None:
        query = query.where(tuple_(Kpi.report_due, Kpi.id) < tuple_(*_decode(filters.cursor)))
    found = list(
        (
            await session.execute(
                query.order_by(Kpi.report_due.desc(), Kpi.id.desc()).limit(filters.limit + 1)
            )
        ).scalars()
    )
    more = len(found) > filters.limit
    found = found[: filters.limit]
    return found, _encode(found[-1]) if more and found else None
