"""The audit log for admins (D-25): query, CSV export and chain verification. Every read of the
log is itself written to the log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import SessionDep, deny, require
from auth import audit
from auth.audit.export import MAX_EXPORT_ROWS, stream_csv
from auth.audit.query import AuditEntryOut, AuditFilter, AuditScope, decode_cursor, list_entries
from auth.audit.verify import verify_chain
from auth.principal import Principal
from auth.roles import Permission
from core.db import utcnow
from core.schemas import Page
from core.types import BoundedDatetime

router = APIRouter(tags=["audit"])

Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]


def audit_filters(
    actor_id: uuid.UUID | None = None,
    on_behalf_of_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    action: Annotated[
        str | None, Query(max_length=64, description='Exact action, or a prefix ending in "." or "*"')
    ] = None,
    object_type: Annotated[str | None, Query(max_length=64)] = None,
    object_id: Annotated[str | None, Query(max_length=128)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[BoundedDatetime | None, Query(description="inclusive; with a time zone offset")] = None,
    until: Annotated[BoundedDatetime | None, Query(description="exclusive; with a time zone offset")] = None,
) -> AuditFilter:
    return AuditFilter(
        actor_id=actor_id,
        on_behalf_of_id=on_behalf_of_id,
        unit_id=unit_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        outcome=outcome,
        since=since,
        until=until,
    )


Filters = Annotated[AuditFilter, Depends(audit_filters)]


class VerifyOut(BaseModel):
    ok: bool
    rows_checked: int
    head_seq: int
    head_hash: str
    first_broken_seq: int | None
    reason: str | None
    checkpoint_seq: int | None
    message: str


@router.get("", response_model=Page[AuditEntryOut])
async def list_audit_entries(
    session: SessionDep,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Cursor = None,
    principal: Principal = require(Permission.AUDIT_READ),
) -> Page[AuditEntryOut]:
    """Newest first. Unit admins see the rows of units in their subtree; system admins see all."""
    entries, next_cursor = await list_entries(
        session, scope=AuditScope.of(principal), filters=filters, limit=limit, cursor=cursor
    )
    audit.record(
        session,
        action="audit.read",
        object_type="audit_log",
        details={"filters": filters.as_details(), "cursor": cursor, "rows": len(entries)},
    )
    return Page[AuditEntryOut](items=entries, next_cursor=next_cursor)


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 CSV with BOM, newest row first"}},
)
async def export_audit_csv(
    session: SessionDep,
    filters: Filters,
    cursor: Cursor = None,
    principal: Principal = require(Permission.AUDIT_READ),
) -> StreamingResponse:
    """Same filters as the list. At most 100,000 rows per file; when more match, the last
    line gives the cursor that continues the export."""
    before_seq = decode_cursor(cursor) if cursor else None
    # Recorded in the request's session, which commits before the body streams: the export is on
    # record even if the download is interrupted.
    audit.record(
        session,
        action="audit.exported",
        object_type="audit_log",
        details={"format": "csv", "filters": filters.as_details(), "cursor": cursor, "cap": MAX_EXPORT_ROWS},
    )
    filename = f"chuong-audit-{utcnow():%Y%m%dT%H%M%SZ}.csv"
    return StreamingResponse(
        stream_csv(scope=AuditScope.of(principal), filters=filters, before_seq=before_seq),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/verify", response_model=VerifyOut)
async def verify_audit_chain(
    request: Request, session: SessionDep, principal: Principal = require(Permission.AUDIT_READ)
) -> VerifyOut:
    """Recompute the whole hash chain (system admins only: it covers every unit). For tail
    truncation, verify against an offline checkpoint with ``chuong audit verify --checkpoint``."""
    if not principal.sees_all_units:
        raise await deny(
            request, code="system_admin_only", message="Only system administrators can verify the audit chain"
        )
    result = await verify_chain(session)
    outcome = "success" if result.ok else "failure"
    audit.record(
        session, action="audit.verified", object_type="audit_log", outcome=outcome, details=result.as_dict()
    )
    return VerifyOut.model_validate(result.as_dict())
