"""Push reports per component portal and app (``news.reports``): a form for the period, app and
unit, the table, and the same CSV as ``GET /v1/reports/pushes.csv`` (audited)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.deps import Require, SessionDep
from auth import audit
from auth.principal import Principal
from auth.roles import Permission
from auth.units import list_units
from console.i18n import _, current_language
from console.security import verify_csrf
from console.templating import VN_TIME, render
from core.db import utcnow
from core.errors import Unprocessable
from core.types import bounded_day
from devices import apps
from news import reports
from news.report_csv import report_csv

APP_CODE = re.compile(r"[a-z][a-z0-9-]{1,15}")

router = APIRouter(prefix="/reports", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Reader = Depends(Require(Permission.NOTIFICATIONS_READ))
FIELDS = ("period", "start", "end", "app", "unit_id", "languages")
# Units offered in the form: a subtree of more is typed by id (the API takes any unit of it).
UNITS_IN_FORM = 500


def _day(name: str, value: str) -> dt.date | None:
    if not value.strip():
        return None
    try:
        return bounded_day(dt.date.fromisoformat(value.strip()))
    except ValueError:
        raise Unprocessable(_("Please check these fields: ") + name, code="validation_error") from None


def parse_query(request: Request) -> tuple[reports.ReportQuery, dict[str, str]]:
    raw = {name: request.query_params.get(name, "")[:64].strip() for name in FIELDS}
    today = utcnow().astimezone(VN_TIME).date()
    end = _day("end", raw["end"]) or today
    start = _day("start", raw["start"]) or end - dt.timedelta(weeks=12)
    grain = raw["period"] or "week"
    if grain not in reports.GRAINS:
        raise Unprocessable(_("Please check these fields: ") + "period", code="validation_error")
    app = raw["app"] or None
    if app is not None and not APP_CODE.fullmatch(app):
        raise Unprocessable(_("Please check these fields: ") + "app", code="validation_error")
    try:
        unit_id = uuid.UUID(raw["unit_id"]) if raw["unit_id"] else None
    except ValueError:
        raise Unprocessable(_("Please check these fields: ") + "unit_id", code="validation_error") from None
    # On by default (the split reads the language summary: docs/reports.md); a submitted form
    # (it always sends ``period``) without the box ticked leaves it out.
    submitted = "period" in request.query_params
    languages = raw["languages"] in ("1", "true", "on") if submitted or raw["languages"] else True
    raw.update(period=grain, start=start.isoformat(), end=end.isoformat(), languages="1" if languages else "")
    query = reports.ReportQuery(
        grain=grain,
        start=start,
        end=end,
        app=app,
        unit_id=unit_id,
        languages=languages,
    )
    return query, raw


@router.get("")
async def reports_page(request: Request, session: SessionDep, principal: Principal = Reader) -> Response:
    query, raw = parse_query(request)
    report = await reports.build(session, principal=principal, query=query)
    units = await list_units(session, principal=principal, limit=UNITS_IN_FORM, after_path=None)
    context: dict[str, Any] = {
        "report": report,
        "raw": raw,
        "units": units,
        "grains": reports.GRAINS,
        "apps": sorted(await apps.known(session)),
        "query": urlencode({k: v for k, v in raw.items() if v}),
        "section_names": await reports.section_names(session, language=current_language()),
    }
    return render(request, "reports/pushes.html", context, principal=principal)


@router.get("/export.csv")
async def export_csv(request: Request, session: SessionDep, principal: Principal = Reader) -> Response:
    query, raw = parse_query(request)
    report = await reports.build(session, principal=principal, query=query)
    audit.record(
        session,
        action="report.exported",
        object_type="push_report",
        unit_id=query.unit_id,
        details={
            "format": "csv",
            **{k: v or None for k, v in raw.items()},
            "rows": len(report.rows),
            "via": "console",
        },
    )
    filename = f"chuong-pushes-{query.grain}-{query.start}-{query.end}-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return Response(
        report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
