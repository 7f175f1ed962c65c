"""Delivery jobs: thin wrappers that open transactions and call notifications/.

Every job is idempotent: arq may run a job twice, and the reconciler may queue extra copies;
the outbox's leases and ``SKIP LOCKED`` make the extra copies find nothing to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, select

from core.config import get_settings
from core.db import utcnow
from core.jobs import defer
from core.logging import get_logger
from devices import service as devices
from notifications import breaker, dispatch, fanout, outbox
from notifications.models import Delivery, Notification
from notifications.payloads import PushSpec
from notifications.providers.base import SendResult
from notifications.service import queue_for, spec_of
from workers.queue import committing

log = get_logger(__name__)

FANOUT_SLICE_SECONDS = 40.0  # stay well inside the 60 s job timeout; the job re-queues itself
SEND_BATCH = fanout.PAGE_SIZE
SEND_CHUNKS = 2  # a batch is claimed and sent in pipelined chunks (see _send_batch)
MAX_JOBS_PER_RECONCILE = 50


async def fan_out(ctx: dict[str, Any], notification_id: str) -> int:
    nid = uuid.UUID(notification_id)
    started = time.monotonic()
    pages = 0
    while True:
        async with committing() as session:
            more = await fanout.fan_out_page(session, notification_id=nid, now=utcnow())
            pages += 1
            if more and time.monotonic() - started > FANOUT_SLICE_SECONDS:
                notification = await session.get(Notification, nid)
                assert notification is not None
                defer(
                    session,
                    "fan_out",
                    notification_id,
                    job_id=f"fanout:{nid}:{notification.fanout_cursor}",
                    queue=queue_for(notification.priority),
                )
                return pages
        if not more:
            return pages


_SLOTS: dict[int, asyncio.Semaphore] = {}


def _send_slots() -> asyncio.Semaphore:
    # Per process (arq hands every job a fresh copy of ctx, so the semaphore cannot live there).
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _SLOTS:
        _SLOTS[loop_id] = asyncio.Semaphore(get_settings().send_batches_in_flight)
    return _SLOTS[loop_id]


async def send_batch(
    ctx: dict[str, Any], notification_id: str, low_id: int | None = None, high_id: int | None = None
) -> dict[str, int]:
    """Send due deliveries of a notification: those of one fan-out page (``low_id``..``high_id``)
    or, for retries and the reconciler, whatever is due first."""
    # Claimed-but-unrecorded rows are what a killed worker sends twice; holding at most
    # ``send_batches_in_flight`` batches per worker (default 1) bounds those duplicates.
    id_range = (low_id, high_id) if low_id is not None and high_id is not None else None
    async with _send_slots():
        return await _send_batch(ctx, uuid.UUID(notification_id), id_range)


@dataclass(frozen=True)
class _Chunk:
    spec: PushSpec
    claimed: list[outbox.ClaimedDelivery]
    badges: dict[uuid.UUID, int]


async def _claim_chunk(nid: uuid.UUID, limit: int, id_range: tuple[int, int] | None) -> _Chunk | None:
    """Lease the next rows of a notification, unless it was cancelled, finished or expired
    meanwhile (a cancel therefore stops new provider calls at the next chunk), and work out
    their badges (in a transaction of its own: a badge failure must not undo the lease)."""
    now = utcnow()
    async with committing() as session:
        notification = await session.get(Notification, nid)
        if notification is None or notification.status in fanout.FINAL_STATUSES:
            return None
        if notification.expires_at <= now:
            await outbox.expire_overdue(session, notification_id=nid, now=now)
            await outbox.finish_if_done(session, notification_id=nid, now=now)
            return None
        claimed = await outbox.claim(session, notification_id=nid, limit=limit, now=now, id_range=id_range)
        spec = spec_of(notification)
    badges = await dispatch.batch_badges(spec, claimed) if claimed else {}
    return _Chunk(spec, claimed, badges)


async def _record_chunk(
    nid: uuid.UUID, results: list[tuple[outbox.ClaimedDelivery, SendResult]]
) -> Counter[str]:
    async with committing() as session:
        notification = await session.get(Notification, nid)
        assert notification is not None
        summary = await outbox.record(session, notification=notification, results=results, now=utcnow())
        if summary.next_retry_at is not None:
            defer(
                session,
                "send_batch",
                str(nid),
                job_id=f"retry:{nid}:{int(summary.next_retry_at.timestamp())}",
                queue=queue_for(notification.priority),
                defer_until=summary.next_retry_at,
            )
    return Counter(
        sent=summary.sent, invalid=summary.invalid, failed=summary.failed, retrying=summary.retrying
    )


async def _send_batch(
    ctx: dict[str, Any], nid: uuid.UUID, id_range: tuple[int, int] | None
) -> dict[str, int]:
    """Up to SEND_BATCH rows in SEND_CHUNKS chunks, pipelined: the next chunk is claimed while the
    current one is on the wire, and a chunk's results are written while the next one is sent.
    The rows claimed but not yet recorded never exceed SEND_BATCH, so a killed worker still
    re-sends at most one batch."""
    chunk = max(1, -(-SEND_BATCH // SEND_CHUNKS))
    current = await _claim_chunk(nid, chunk, id_range)
    if current is None or not current.claimed:
        return {"claimed": 0}
    providers = ctx["providers"]
    alert = get_settings().sensitive_visible_alert
    totals: Counter[str] = Counter()
    left = SEND_BATCH
    recording: asyncio.Task[Counter[str]] | None = None
    claiming: asyncio.Task[_Chunk | None] | None = None
    try:
        while current is not None and current.claimed:
            claimed = current.claimed
            totals["claimed"] += len(claimed)
            left -= len(claimed)
            sending = asyncio.ensure_future(
                dispatch.send_claimed(
                    current.spec, claimed, providers, visible_generic_alert=alert, badges=current.badges
                )
            )
            # A short chunk means nothing more was due: do not ask again.
            claiming = (
                asyncio.ensure_future(_claim_chunk(nid, min(chunk, left), id_range))
                if left > 0 and len(claimed) == chunk
                else None
            )
            results = await sending
            await breaker.record_outcomes(results)  # error rates per provider → alert, SMS degraded mode
            if recording is not None:
                totals.update(await recording)
            recording = asyncio.ensure_future(_record_chunk(nid, results))
            current = await claiming if claiming is not None else None
            claiming = None
        if recording is not None:
            totals.update(await recording)
            recording = None
    except BaseException:
        # Rows already leased stay leased and are retried once the lease ends; results already
        # in hand are still written, so what was sent is not sent again.
        if claiming is not None:
            claiming.cancel()
        if recording is not None and not recording.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(recording)
        raise
    return dict(totals)


async def reconcile(ctx: dict[str, Any]) -> dict[str, int]:
    """Re-queue what a lost job, a killed worker or a flushed Redis left behind; expire what is
    past its TTL; finish notifications with nothing left to do."""
    now = utcnow()
    tick = int(now.timestamp() // 15)  # job-id bucket: one re-queue per notification per tick
    grace = dt.timedelta(seconds=get_settings().reconcile_grace_seconds)
    stats = {"fanouts": 0, "batches": 0, "expired": 0}
    async with committing() as session:
        active = (
            (
                await session.execute(
                    select(Notification).where(Notification.status.in_(("queued", "fanning_out", "sending")))
                )
            )
            .scalars()
            .all()
        )
        for notification in active:
            queue = queue_for(notification.priority)
            if notification.expires_at <= now:
                stats["expired"] += await outbox.expire_overdue(
                    session, notification_id=notification.id, now=now
                )
                if notification.fanout_done_at is None:
                    notification.fanout_done_at = now  # nothing more will be fanned out
                notification.status = "sending"
                await session.flush()
                await outbox.finish_if_done(session, notification_id=notification.id, now=now)
                continue
            if notification.fanout_done_at is None and notification.created_at <= now - grace:
                defer(
                    session,
                    "fan_out",
                    str(notification.id),
                    job_id=f"fanout:{notification.id}:r{tick}",
                    queue=queue,
                )
                stats["fanouts"] += 1
            due = (
                await session.execute(
                    select(func.count()).select_from(
                        select(Delivery.id)
                        .where(
                            Delivery.notification_id == notification.id,
                            outbox.due_clause(now - grace),
                        )
                        .limit(SEND_BATCH * MAX_JOBS_PER_RECONCILE)
                        .subquery()
                    )
                )
            ).scalar_one()
            for index in range(min(MAX_JOBS_PER_RECONCILE, -(-due // SEND_BATCH))):
                defer(
                    session,
                    "send_batch",
                    str(notification.id),
                    job_id=f"reconcile:{notification.id}:{tick}:{index}",
                    queue=queue,
                )
                stats["batches"] += 1
            if notification.fanout_done_at is not None and notification.status == "sending":
                await outbox.finish_if_done(session, notification_id=notification.id, now=now)
    if any(stats.values()):
        log.info("reconciled", **stats)
    return stats


async def purge(ctx: dict[str, Any]) -> dict[str, int]:
    """Stale devices, and delivery rows of notifications finished more than 30 days ago."""
    now = utcnow()
    async with committing() as session:
        purged_devices = await devices.purge_stale(session, now=now)
        old = select(Notification.id).where(
            and_(
                Notification.completed_at.is_not(None),
                Notification.completed_at < now - dt.timedelta(days=30),
            )
        )
        result = await session.execute(
            delete(Delivery).where(Delivery.notification_id.in_(old)).returning(Delivery.id)
        )
        purged_deliveries = len(result.all())
    return {"devices": purged_devices, "deliveries": purged_deliveries}
