"""Reading the audit log: filters, the caller's unit scope, and keyset pages newest first."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth.audit.models import AuditLog
from auth.models import Unit
from auth.principal import Principal
from core.errors import BadRequest
from core.schemas import ResponseModel

# Plain columns rather than ORM entities: exports stream many rows through one session, and
# entities would accumulate in its identity map. Where a row is stored (chained_at, the partition
# key) and which key chained it are the chain's bookkeeping, not what the event was.
_BOOKKEEPING = frozenset({"chained_at", "key_id"})
COLUMNS = tuple(column for column in AuditLog.__table__.c if column.name not in _BOOKKEEPING)


class AuditEntryOut(ResponseModel):
    seq: int
    occurred_at: dt.datetime
    actor_kind: str
    actor_id: uuid.UUID | None
    on_behalf_of_id: uuid.UUID | None
    unit_id: uuid.UUID | None
    action: str
    object_type: str | None
    object_id: str | None
    outcome: str
    request_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class AuditFilter:
    actor_id: uuid.UUID | None = None
    on_behalf_of_id: uuid.UUID | None = None
    unit_id: uuid.UUID | None = None
    # Exact action, or a prefix when it ends with "." or "*" ("user." / "user.*" → every user.… action).
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    def as_details(self) -> dict[str, Any]:
        """The filters that were set, for the audit row that records the read itself."""
        return {name: value for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class AuditScope:
    """Which rows a reader may see: all, or those of units under ``unit_path``. A plain value (not
    the ``Principal``) so that a stream can carry it into a session of its own."""

    unit_path: str | None

    @classmethod
    def of(cls, principal: Principal) -> AuditScope:
        return cls(unit_path=None if principal.sees_all_units else principal.unit_path)


def build_query(*, scope: AuditScope, filters: AuditFilter) -> Select[Any]:
    """Rows the scope may see that match the filters, newest first (no limit, no cursor)."""
    query = select(*COLUMNS).order_by(AuditLog.seq.desc())
    if scope.unit_path is not None:
        # Rows without a unit (anonymous sign-in failures, system jobs) belong to no subtree and
        # are left to system admins.
        subtree = select(Unit.id).where(Unit.path.startswith(scope.unit_path, autoescape=True))
        query = query.where(AuditLog.unit_id.in_(subtree))
    exact = {
        AuditLog.actor_id: filters.actor_id,
        AuditLog.on_behalf_of_id: filters.on_behalf_of_id,
        AuditLog.unit_id: filters.unit_id,
        AuditLog.object_type: filters.object_type,
        AuditLog.object_id: filters.object_id,
        AuditLog.outcome: filters.outcome,
    }
    for column, value in exact.items():
        if value is not None:
            query = query.where(column == value)
    if filters.action:
        if filters.action.endswith(("*", ".")):
            query = query.where(AuditLog.action.startswith(filters.action.rstrip("*"), autoescape=True))
        else:
            query = query.where(AuditLog.action == filters.action)
    if filters.since is not None:
        query = query.where(AuditLog.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditLog.occurred_at < filters.until)
    return query


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"audit:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        prefix, _, seq = text.partition(":")
        if prefix != "audit" or not seq.isdigit() or int(seq) > 2**63 - 1:  # seq is a BIGINT
            raise ValueError(text)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc


async def list_entries(
    session: AsyncSession, *, scope: AuditScope, filters: AuditFilter, limit: int, cursor: str | None
) -> tuple[list[AuditEntryOut], str | None]:
    """One page, newest first. The cursor is the last seq shown; rows appended meanwhile have higher
    seqs, so walking the pages never skips nor repeats a row."""
    query = build_query(scope=scope, filters=filters).limit(limit + 1)
    if cursor:
        query = query.where(AuditLog.seq < decode_cursor(cursor))
    rows = (await session.execute(query)).all()
    entries = [AuditEntryOut.model_validate(row) for row in rows[:limit]]
    next_cursor = encode_cursor(entries[-1].seq) if len(rows) > limit else None
    return entries, next_cursor


async def iter_rows(
    session: AsyncSession,
    *,
    scope: AuditScope,
    filters: AuditFilter,
    batch: int = 1000,
    max_rows: int | None = None,
    before_seq: int | None = None,
) -> AsyncIterator[Row[Any]]:
    """Every matching row newest first, fetched ``batch`` at a time by keyset (never all at once)."""
    produced = 0
    while max_rows is None or produced < max_rows:
        size = batch if max_rows is None else min(batch, max_rows - produced)
        query = build_query(scope=scope, filters=filters).limit(size)
        if before_seq is not None:
            query = query.where(AuditLog.seq < before_seq)
        rows: Sequence[Row[Any]] = (await session.execute(query)).all()
        for row in rows:
            yield row
        produced += len(rows)
        if len(rows) < size:
            return
        before_seq = rows[-1].seq
