"""Writing audit rows in the same transaction as the change they describe.

``record()`` only buffers the row on the session. Just before that session commits, the buffer
is written as one batch under a transaction-scoped advisory lock, so the chain has one order and
the lock is held only for the insert and the commit, not for the whole request. Each buffered row
belongs to the (nested) transaction it was recorded in: rolling back a savepoint drops that
savepoint's rows only, rolling back the whole transaction drops them all.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import Row, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from auth.audit.chain import chain_hash, normalise_details, signing_key
from auth.audit.models import GENESIS_HASH, AuditLog
from core.context import current_context
from core.db import utcnow

# An arbitrary constant that names "the audit chain" among advisory locks.
AUDIT_CHAIN_LOCK = 0x636875_6F6E67

_BUFFER = "chuong_audit_buffer"


def record(
    session: AsyncSession,
    *,
    action: str,
    object_type: str | None = None,
    object_id: object | None = None,
    outcome: str = "success",
    details: dict[str, Any] | None = None,
    actor_id: uuid.UUID | None = None,
    actor_kind: str | None = None,
    on_behalf_of_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
) -> None:
    """Queue one audit row; it is written when ``session`` commits. Never put secrets in
    ``details``. Actor fields default to the current request's context."""
    ctx = current_context()
    row = {
        "occurred_at": utcnow(),
        "actor_kind": actor_kind or ctx.actor_kind,
        "actor_id": actor_id if actor_id is not None else ctx.actor_id,
        "on_behalf_of_id": on_behalf_of_id if on_behalf_of_id is not None else ctx.on_behalf_of_id,
        "unit_id": unit_id if unit_id is not None else ctx.unit_id,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id)[:128],
        "outcome": outcome,
        "request_id": ctx.request_id,
        "ip": ctx.ip,
        "user_agent": ctx.user_agent[:512] if ctx.user_agent else None,
        "details": normalise_details(details or {}),
    }
    sync_session = session.sync_session
    # Begin the (autobegin) transaction now, so that a rollback before any SQL ran is seen too.
    owner = sync_session.get_nested_transaction() or sync_session.get_transaction() or sync_session.begin()
    buffer: list[tuple[SessionTransaction, dict[str, Any]]] | None = sync_session.info.get(_BUFFER)
    if buffer is None:
        buffer = sync_session.info[_BUFFER] = []
        if not event.contains(sync_session, "before_commit", _flush):
            event.listen(sync_session, "before_commit", _flush)
            # "soft": fires for savepoints and for rollbacks that had no SQL to undo.
            event.listen(sync_session, "after_soft_rollback", _drop)
    buffer.append((owner, row))


def pending(session: AsyncSession) -> list[dict[str, Any]]:
    """Rows queued on this session and not yet written (for tests and debugging)."""
    return [row for _, row in session.sync_session.info.get(_BUFFER) or []]


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


def _drop(sync_session: Session, previous_transaction: SessionTransaction) -> None:
    buffer: list[tuple[SessionTransaction, dict[str, Any]]] | None = sync_session.info.get(_BUFFER)
    if not buffer:
        return
    if not previous_transaction.nested:
        sync_session.info.pop(_BUFFER, None)
        return
    buffer[:] = [(owner, row) for owner, row in buffer if not _within(owner, previous_transaction)]


def _head(sync_session: Session) -> Row[int, str, dt.datetime] | None:
    """The newest row. It has the latest ``chained_at`` too (models.py), so the partitions of the
    last month or two hold it: looking only there spares planning a scan of every partition on
    each commit, under the chain's lock. A chain quiet for longer is read whole."""
    newest_first = (
        select(AuditLog.seq, AuditLog.hash, AuditLog.chained_at).order_by(AuditLog.seq.desc()).limit(1)
    )
    recent = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
    head = sync_session.execute(newest_first.where(AuditLog.chained_at >= recent.replace(day=1))).first()
    return head if head is not None else sync_session.execute(newest_first).first()


def _flush(sync_session: Session) -> None:
    entries: list[tuple[SessionTransaction, dict[str, Any]]] | None = sync_session.info.pop(_BUFFER, None)
    if not entries:
        return
    buffer = [row for _, row in entries]
    kid, key = signing_key()
    # Under READ COMMITTED (the only isolation level the service uses for writes) the head read
    # after the lock sees every chain row committed before it; an older REPEATABLE READ snapshot
    # would not, and since the primary key includes the partition key (models.py) nothing else
    # would stop a second row with the same seq. Checked in the same round trip as the lock.
    isolation = sync_session.execute(
        text("SELECT pg_advisory_xact_lock(:key)::text, current_setting('transaction_isolation')"),
        {"key": AUDIT_CHAIN_LOCK},
    ).one()[1]
    if isolation != "read committed":
        raise RuntimeError(f"audit rows are written in READ COMMITTED transactions only, not {isolation}")
    head = _head(sync_session)
    seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    # Never before the previous row, whatever this host's clock says: a month's partition then
    # holds one unbroken stretch of the chain (models.py).
    chained_at = max(utcnow(), head.chained_at) if head else utcnow()
    for row in buffer:
        seq += 1
        row["seq"] = seq
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = chain_hash(prev_hash, row, key=key)
        row["key_id"] = kid
        row["chained_at"] = chained_at
    sync_session.execute(insert(AuditLog), buffer)


async def record_detached(**fields: Any) -> None:
    """Write one audit row in a transaction of its own: for events about a request that fails
    and rolls back (failed sign-in, permission denied, replayed code) but must still be kept."""
    from core.db import detached_transaction

    async with detached_transaction() as session:
        record(session, **fields)
