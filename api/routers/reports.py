"""Reports per component portal and app (issue 19 item 5): JSON and a CSV export."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import SessionDep, require
from auth import audit
from auth.principal import Principal
from auth.roles import Permission
from core.db import utcnow
from core.types import BoundedDate
from news import reports
from news.report_csv import report_csv

router = APIRouter(tags=["reports"])


def report_query(
    period: Annotated[reports.Grain, Query(description="day, week (from Monday) or month")] = "week",
    start: Annotated[
        BoundedDate | None, Query(description="first day, Vietnam time; default 12 weeks ago")
    ] = None,
    end: Annotated[BoundedDate | None, Query(description="last day (inclusive); default today")] = None,
    app: reports.App | None = None,
    unit_id: uuid.UUID | None = None,
    languages: Annotated[
        bool, Query(description="split by reader language too (default); false leaves it out")
    ] = True,
) -> reports.ReportQuery:
    today = utcnow().astimezone(reports.VN_TIME).date()
    last = end or today
    return reports.ReportQuery(
        grain=period,
        start=start or last - dt.timedelta(weeks=12),
        end=last,
        app=app,
        unit_id=unit_id,
        languages=languages,
    )


ReportQueryDep = Annotated[reports.ReportQuery, Depends(report_query)]


class FiguresOut(BaseModel):
    notifications: int | None  # None on language rows: a push has several languages
    devices_targeted: int
    devices_sent: int
    devices_invalid: int
    devices_failed: int
    readers_reached: int
    readers_opened: int
    open_rate: float | None


class ReportRowOut(BaseModel):
    period_start: dt.date
    app: str
    unit_id: uuid.UUID | None
    unit_name: str | None
    breakdown: str
    key: str
    figures: FiguresOut


class ReportOut(BaseModel):
    period: str
    start: dt.date
    end: dt.date
    app: str | None
    unit_id: uuid.UUID | None
    rows: list[ReportRowOut]


def _out(report: reports.Report) -> ReportOut:
    q = report.query
    return ReportOut(
        period=q.grain,
        start=q.start,
        end=q.end,
        app=q.app,
        unit_id=q.unit_id,
        rows=[
            ReportRowOut(
                period_start=row.period,
                app=row.app,
                unit_id=row.unit_id,
                unit_name=row.unit_name,
                breakdown=row.breakdown,
                key=row.key,
                figures=FiguresOut(
                    notifications=row.figures.notifications if row.breakdown != "language" else None,
                    devices_targeted=row.figures.targeted,
                    devices_sent=row.figures.sent,
                    devices_invalid=row.figures.invalid,
                    devices_failed=row.figures.failed,
                    readers_reached=row.figures.received,
                    readers_opened=row.figures.opened,
                    open_rate=row.figures.open_rate,
                ),
            )
            for row in report.rows
        ],
    )


@router.get("/pushes", response_model=ReportOut)
async def push_report(
    session: SessionDep, query: ReportQueryDep, principal: Principal = require(Permission.NOTIFICATIONS_READ)
) -> ReportOut:
    """Pushes per period, app and unit (component portal) of the caller's subtree: totals, and
    the same split by reader language and by news section (docs/reports.md)."""
    return _out(await reports.build(session, principal=principal, query=query))


@router.get(
    "/pushes.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with BOM"}},
)
async def push_report_csv(
    session: SessionDep, query: ReportQueryDep, principal: Principal = require(Permission.NOTIFICATIONS_READ)
) -> Response:
    """The same report as a file; the export is written to the audit log."""
    report = await reports.build(session, principal=principal, query=query)
    audit.record(
        session,
        action="report.exported",
        object_type="push_report",
        unit_id=query.unit_id,
        details={
            "format": "csv",
            "period": query.grain,
            "start": query.start.isoformat(),
            "end": query.end.isoformat(),
            "app": query.app,
            "unit_id": str(query.unit_id) if query.unit_id else None,
            "languages": query.languages,
            "rows": len(report.rows),
        },
    )
    filename = f"chuong-pushes-{query.grain}-{query.start}-{query.end}-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return Response(
        report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
