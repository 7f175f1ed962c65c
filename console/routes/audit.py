"""Audit-log viewer with filters and the CSV export (``auth.audit``: same scope, same
formula-safe CSV as ``GET /v1/audit/export.csv``; every read is itself audited)."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from api.deps import Require, SessionDep
from auth import audit
from auth.audit.export import MAX_EXPORT_ROWS, stream_csv
from auth.audit.query import AuditFilter, AuditScope, list_entries
from auth.principal import Principal
from auth.roles import Permission
from console.i18n import _
from console.security import verify_csrf
from console.templating import VN_TIME, is_htmx, render
from core.db import utcnow
from core.errors import Unprocessable
from core.types import bounded_day

router = APIRouter(prefix="/admin/audit", dependencies=[Depends(verify_csrf)], include_in_schema=False)

AuditReader = Depends(Require(Permission.AUDIT_READ))
FILTER_NAMES = ("actor_id", "unit_id", "action", "object_type", "object_id", "outcome", "since", "until")


def _uuid(name: str, value: str) -> uuid.UUID | None:
    if not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise Unprocessable(_("Please check these fields: ") + name, code="validation_error") from None


def _day(name: str, value: str, *, end: bool) -> dt.datetime | None:
    """A calendar day in Vietnam time; ``until`` includes the whole day."""
    if not value.strip():
        return None
    try:
        # Within core/types.py's years, so that moving a day to UTC (or to its end) cannot overflow.
        day = bounded_day(dt.date.fromisoformat(value.strip()))
    except ValueError:
        raise Unprocessable(_("Please check these fields: ") + name, code="validation_error") from None
    start = dt.datetime.combine(day, dt.time(), VN_TIME)
    return start + dt.timedelta(days=1) if end else start


def _short(value: str, limit: int) -> str | None:
    return value.strip()[:limit] or None


def parse_filters(request: Request) -> tuple[AuditFilter, dict[str, str]]:
    raw = {name: request.query_params.get(name, "")[:128] for name in FILTER_NAMES}
    filters = AuditFilter(
        actor_id=_uuid("actor_id", raw["actor_id"]),
        unit_id=_uuid("unit_id", raw["unit_id"]),
        action=_short(raw["action"], 64),
        object_type=_short(raw["object_type"], 64),
        object_id=_short(raw["object_id"], 128),
        outcome=_short(raw["outcome"], 16),
        since=_day("since", raw["since"], end=False),
        until=_day("until", raw["until"], end=True),
    )
    return filters, raw


@router.get("")
async def audit_page(
    request: Request, session: SessionDep, cursor: str = "", principal: Principal = AuditReader
) -> Response:
    filters, raw = parse_filters(request)
    entries, next_cursor = await list_entries(
        session, scope=AuditScope.of(principal), filters=filters, limit=100, cursor=cursor[:512] or None
    )
    audit.record(
        session,
        action="audit.read",
        object_type="audit_log",
        details={
            "filters": filters.as_details(),
            "cursor": cursor or None,
            "rows": len(entries),
            "via": "console",
        },
    )
    query = urlencode({k: v for k, v in raw.items() if v})
    context = {"entries": entries, "next_cursor": next_cursor, "raw": raw, "query": query}
    template = "admin/_audit_table.html" if is_htmx(request) else "admin/audit.html"
    return render(request, template, context, principal=principal)


@router.get("/export.csv")
async def export_csv(request: Request, session: SessionDep, principal: Principal = AuditReader) -> Response:
    filters, _raw = parse_filters(request)
    audit.record(
        session,
        action="audit.exported",
        object_type="audit_log",
        details={"format": "csv", "filters": filters.as_details(), "cap": MAX_EXPORT_ROWS, "via": "console"},
    )
    filename = f"chuong-audit-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return StreamingResponse(
        stream_csv(scope=AuditScope.of(principal), filters=filters),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
