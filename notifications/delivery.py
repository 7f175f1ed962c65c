"""Sending one batch of a notification: claim it, send it in pipelined chunks, record each
chunk's results and settle the batch (done, or open until its earliest retry).

The use case owns its transactions (a claim, one record per chunk, a settle: no transaction
stays open across network calls) and is idempotent: arq may run a send job twice, and the
reconciler may queue extra copies; the outbox's leases and ``SKIP LOCKED`` make the extra
copies find nothing to do. The send job (workers/delivery_jobs.py) only hands it the worker's
providers and the source of the pushes' badges (the inbox's unread counts).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.after_commit import committing
from core.config import get_settings
from core.db import autocommitted, utcnow
from core.db_retry import rewrite_while_transient
from core.jobs import JobName, defer
from core.logging import get_logger
from core.raw_sql import pooled_driver
from devices import apps
from notifications import breaker, cancellation, dispatch, metrics, outbox, urgent_role
from notifications import service as notifications_service
from notifications.content import PushSpec
from notifications.models import Notification
from notifications.providers.base import STOPPED, PushProvider, SendResult
from notifications.service import queue_for
from notifications.states import FINAL_STATUSES

log = get_logger(__name__)

# A batch (≤ 500 rows) is sent in SEND_CHUNKS chunks, CHUNKS_IN_FLIGHT of them at the provider at
# once (see _send_held): chunk k + 2 starts when chunk k has been answered and the status read
# again, while chunk k + 1 keeps the provider's in-flight slots busy. Without the cancel signal at
# most CHUNKS_IN_FLIGHT chunks (250 rows) of a batch start after a cancel, as with two sequential
# chunks. Once its first window is out, a batch lets the next one start (send_batch), so one
# worker has two batches' windows at the provider.
SEND_CHUNKS = 4
CHUNKS_IN_FLIGHT = 2
# A job timeout or a shutdown cancels a batch while chunks are at the provider: it waits this long
# for their answers and writes them (see _drain), within the lease's margin over the job timeout
# (90 s against 60 s), instead of leaving them to be sent again when the lease ends.
DRAIN_SECONDS = 15.0
# The breaker only advises (alerts, SMS degraded mode): a Redis that stopped answering must not
# hold the batch's next chunk, nor leave a chunk's answers unwritten while it waits.
BREAKER_SECONDS = 2.0
# How long a chunk's write is tried again after a transient failure (a lock wait past
# db_lock_timeout_ms behind a fan-out page or an admin's cancel, a failover): well within the
# lease's margin over the job timeout.
RECORD_RETRY_SECONDS = 10.0

_SLOTS: dict[int, tuple[asyncio.Semaphore, asyncio.Semaphore]] = {}
# While the first-page lane claims and starts a page (notifications/first_page_lane.py), the send
# slots start no new chunk and claim no batch in this process, for YIELD_SECONDS at most: on a
# busy worker every round trip of the lane waits behind the broadcast's callbacks in the event
# loop, and the chunks already on the wire keep the provider busy meanwhile.
YIELD_SECONDS = 1.0
_GATES: dict[int, asyncio.Event] = {}


def _gate() -> asyncio.Event:
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _GATES:
        _GATES[loop_id] = asyncio.Event()
        _GATES[loop_id].set()
    return _GATES[loop_id]


@contextlib.contextmanager
def bulk_yields() -> Iterator[Callable[[], None]]:
    """The send slots hold back until the returned callable is called or the block ends."""
    gate = _gate()
    gate.clear()
    try:
        yield gate.set
    finally:
        gate.set()


async def _bulk_may_start() -> None:
    gate = _gate()
    if not gate.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gate.wait(), YIELD_SECONDS)


def _send_slots() -> tuple[asyncio.Semaphore, asyncio.Semaphore]:
    """(batches held, batches still starting chunks), per process: arq hands every job a fresh
    copy of its context, so the semaphores cannot live there."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _SLOTS:
        batches = get_settings().send_batches_in_flight
        _SLOTS[loop_id] = (asyncio.Semaphore(2 * batches), asyncio.Semaphore(batches))
    return _SLOTS[loop_id]


async def send_batch(
    *,
    notification_id: uuid.UUID,
    low_id: int | None,
    providers: Mapping[str, PushProvider],
    badge_source: dispatch.BadgeSource,
) -> dict[str, int]:
    """Send the due rows of one batch: the fan-out page of the notification starting at
    ``low_id`` or, without one, its most overdue open batch, unless a more urgent batch of its
    queue is due: then that one (``claim_batch``). Each push carries the badge ``badge_source``
    gives its device. (A first page may go on the first-page lane instead:
    notifications/first_page_lane.py.)"""
    # Leased-but-unrecorded rows are what a killed worker sends twice, so a worker starts the
    # chunks of at most ``send_batches_in_flight`` batches at a time (default 1). A batch hands
    # that slot on once its first window of chunks (CHUNKS_IN_FLIGHT) is at the provider, not
    # once its last chunk has started: the next batch is claimed, its badges read and its own
    # first window sent during this one's first round trip, so two batches' windows keep the
    # provider's slots busy while each waits for its answers and writes (issue 16 item 2: the
    # last-chunk hand-on left one window, 250 requests, for a 40 ms round trip plus two writes).
    # A second bound keeps it to one other batch per starting one. Each batch has at most
    # CHUNKS_IN_FLIGHT chunks sent and not yet written (chunk k + CHUNKS_IN_FLIGHT starts once
    # chunk k is written), so a killed worker re-sends at most two windows (≤ 500 rows by
    # default, within the 875 documented before).
    held, starting = _send_slots()
    async with held:
        await starting.acquire()
        starting_held = True

        def hand_on() -> None:
            nonlocal starting_held
            if starting_held:
                starting_held = False
                starting.release()

        try:
            await _bulk_may_start()
            # Subscribed before claiming, so a cancel committed after the claim is heard here.
            await cancellation.listening()
            return await _send_batch(notification_id, low_id, providers, badge_source, hand_on)
        finally:
            hand_on()


_SPECS: dict[uuid.UUID, PushSpec] = {}
_SPECS_KEPT = 64


async def spec_of(notification_id: uuid.UUID) -> PushSpec | None:
    """What a notification's pushes say, read once per process: it never changes after creation,
    and a broadcast to a million devices has 2,000 batches."""
    spec = _SPECS.get(notification_id)
    if spec is None:
        async with autocommitted() as session:  # reads: one round trip each
            notification = await session.get(Notification, notification_id)
            if notification is None:
                return None
            # The app's FCM project and APNs topic, once per notification and process like the
            # rest of the spec (a change to the app applies to the notifications sent after it).
            app = await apps.find(session, notification.app)
            spec = notification.push_spec()
            if app is not None:
                spec = replace(spec, fcm_project_id=app.fcm_project_id, apns_topic=app.apns_topic)
        if len(_SPECS) >= _SPECS_KEPT:
            _SPECS.pop(next(iter(_SPECS)))
        _SPECS[notification_id] = spec
    return spec


async def claim_batch(nid: uuid.UUID, low_id: int | None, *, first_only: bool = False) -> outbox.Claim | None:
    """The job's own batch, unless something more urgent of its queue is due
    (outbox.claim_most_urgent): the first job to reach a send slot after a new notification's
    first page was written sends that page, however many of a broadcast's jobs were queued before
    it (docs/delivery.md "Urgent before bulk")."""
    spec = await spec_of(nid)
    if spec is None:
        return None
    return await lease_batch(
        nid, low_id, notifications_service.sharing_queue(spec.content.priority), first_only=first_only
    )


async def lease_batch(
    nid: uuid.UUID, low_id: int | None, priorities: Sequence[str], *, first_only: bool
) -> outbox.Claim | None:
    now = utcnow()
    # The lease is one statement that commits by itself: on a pooled connection without a
    # session (core/raw_sql.py ``pooled_driver``; a session around it cost several times the
    # statement's own CPU, once per batch).
    async with pooled_driver() as driver:
        claim = await outbox.claim_most_urgent(
            driver,
            notification_id=nid,
            low_id=low_id,
            priorities=priorities,
            now=now,
            first_only=first_only,
            leave_first_after=urgent_role.leave_first_after(now),
        )
    if claim is None:
        # Nothing to lease; if that is because the notification outlived its TTL, say so now
        # rather than at the reconciler's next tick.
        async with committing() as session:
            notification = await session.get(Notification, nid)
            if (
                notification is not None
                and notification.status not in FINAL_STATUSES
                and notification.expires_at <= now
            ):
                await outbox.expire_overdue(session, notification_id=nid, now=now)
                await outbox.finish_if_done(session, notification_id=nid, now=now)
    return claim


def _still_sending(nid: uuid.UUID, status: str | None, expires_at: dt.datetime) -> bool:
    """Decided once the previous chunk's requests have all been answered and written, right
    before the next chunk would start: a cancel (or the TTL) that came while a chunk was on the
    wire stops the batch there even when the cancel signal did not reach this process (Redis
    down). ``status`` is the notification's as the chunk's write left it (``outbox.record``
    locks its row), so this costs no query of its own."""
    if cancellation.stopped(str(nid)):
        return False
    return status is not None and status not in FINAL_STATUSES and expires_at > utcnow()


async def _record(
    claim: outbox.Claim,
    results: list[tuple[outbox.ClaimedDelivery, SendResult]],
    *,
    last: bool,
    priority: str,
) -> tuple[Counter[str], str | None]:
    """Write a chunk's results (and with the last chunk, let the batch go). Returns the counts
    and the notification's status as the write left it (None when nothing was written). A
    transient failure is written again (core/db_retry.py): these pushes have gone out, and a
    write left undone sends them again once the lease ends."""

    async def write() -> outbox.RecordSummary:
        now = utcnow()
        prepared = outbox.prepare_record(
            notification_id=claim.notification_id,
            expires_at=claim.expires_at,
            results=results,
            now=now,
            claim=claim,
        )
        if prepared is not None and not prepared.retires_devices:
            # The common chunk: its write, and with the last chunk the settle, are statements
            # that commit by themselves, on one pooled connection without a session (as through
            # the session, where neither began a transaction); what letting go needs beyond the
            # settle (a cancel, the TTL, a retry's job) still goes through a session.
            next_at: dt.datetime | None = None
            async with pooled_driver() as driver:
                summary = await outbox.record_prepared(driver, prepared)
                if not last:
                    return summary
                if summary.status != "cancelled":
                    next_at = await outbox.settle(driver, claim)
                    if next_at is None:
                        return summary
            async with committing() as session:
                if summary.status == "cancelled":
                    await _let_go(session, claim, priority=priority, status=summary.status, now=now)
                else:
                    await _after_settle(session, claim, next_at, priority=priority, now=now)
            return summary
        async with committing() as session:
            summary = await outbox.record(
                session,
                notification_id=claim.notification_id,
                expires_at=claim.expires_at,
                results=results,
                now=now,
                claim=claim,
            )
            if last:
                await _let_go(session, claim, priority=priority, status=summary.status, now=now)
        return summary

    summary = await rewrite_while_transient(write, within=RECORD_RETRY_SECONDS, what="send_batch_record")
    counts = Counter(
        sent=summary.sent, invalid=summary.invalid, failed=summary.failed, retrying=summary.retrying
    )
    return counts, summary.status


async def _let_go_now(
    claim: outbox.Claim, *, priority: str, status: str | None
) -> tuple[Counter[str], str | None]:
    """Let the batch go after a chunk whose write was not the last (the batch stopped there)."""
    async with committing() as session:
        await _let_go(session, claim, priority=priority, status=status, now=utcnow())
    return Counter(), status


async def _let_go(
    session: AsyncSession, claim: outbox.Claim, *, priority: str, status: str | None, now: dt.datetime
) -> None:
    """Settle the batch: if the notification was cancelled meanwhile, what was not sent is
    cancelled; if rows remain open (retries, pacing hand-backs), a job is queued for when the
    earliest is due."""
    nid = claim.notification_id
    # outbox.settle runs on the session's asyncpg connection: alone it commits by itself, after
    # a statement through the session it is part of that statement's transaction (the cancel
    # below: the batch is settled and its rows cancelled together).
    if status is None:
        status = await session.scalar(select(Notification.status).where(Notification.id == nid))
    if status == "cancelled":
        notification = await session.get(Notification, nid)
        assert notification is not None
        await outbox.settle(session, claim)
        await notifications_service.cancel_remaining(session, notification=notification, now=now)
        return
    next_at = await outbox.settle(session, claim)
    await _after_settle(session, claim, next_at, priority=priority, now=now)


async def _after_settle(
    session: AsyncSession,
    claim: outbox.Claim,
    next_at: dt.datetime | None,
    *,
    priority: str,
    now: dt.datetime,
) -> None:
    """A settled batch with rows still open (``next_at``: the earliest is due then): past the
    TTL they fail as expired now, else a job is queued for when they are due."""
    if next_at is None:
        return
    nid = claim.notification_id
    if claim.expires_at <= now:
        # The TTL passed while the batch was sent: what it did not send fails as expired now.
        await outbox.expire_overdue(session, notification_id=nid, now=now)
        await outbox.finish_if_done(session, notification_id=nid, now=now)
        return
    defer(
        session,
        JobName.SEND_BATCH,
        str(nid),
        claim.low_id,
        claim.high_id,
        job_id=f"retry:{nid}:{claim.low_id}:{int(next_at.timestamp())}",
        queue=queue_for(priority),
        defer_until=next_at,
    )


async def _send_batch(
    nid: uuid.UUID,
    low_id: int | None,
    providers: Mapping[str, PushProvider],
    badge_source: dispatch.BadgeSource,
    hand_on: Callable[[], None],
) -> dict[str, int]:
    """One batch in SEND_CHUNKS chunks, CHUNKS_IN_FLIGHT at a time: a chunk's badges are worked
    out while the ones before it are on the wire, and a chunk's results are written while the
    next ones are sent. ``hand_on`` is called once the first window is at the provider (the
    send slot goes to the next batch, ``send_batch``). A cancel stops
    the batch between two requests (the providers consult notifications/cancellation.py) or,
    failing that signal, before the next chunk: the status is read again each time a chunk has
    been answered."""
    claim = await claim_batch(nid, low_id)
    if claim is None:
        return {"claimed": 0}
    return await send_claimed(claim, providers, badge_source, hand_on)


async def send_claimed(
    claim: outbox.Claim,
    providers: Mapping[str, PushProvider],
    badge_source: dispatch.BadgeSource,
    hand_on: Callable[[], None],
    *,
    yields: bool = True,
) -> dict[str, int]:
    """Send a leased batch; ``yields``: a send slot's batch, whose further chunks wait while the
    first-page lane works (``bulk_yields``) and which calls ``hand_on`` once its first window of
    chunks is at the provider; the lane's own batch (False) waits for nothing and calls it once
    its last chunk has started (that is when the lane lets the send slots go on)."""
    # From here a cancel must be acknowledged for this batch (notifications/cancellation.py).
    held = str(claim.notification_id)
    cancellation.hold(held, claim.batch_id)
    try:
        return await _send_held(claim, providers, badge_source, hand_on, yields=yields)
    finally:
        cancellation.release(held, claim.batch_id)


async def _send_held(
    claim: outbox.Claim,
    providers: Mapping[str, PushProvider],
    badge_source: dispatch.BadgeSource,
    hand_on: Callable[[], None],
    *,
    yields: bool,
) -> dict[str, int]:
    nid = claim.notification_id
    spec = await spec_of(nid)
    totals: Counter[str] = Counter()
    claimed = claim.deliveries
    if spec is None or not claimed:
        async with committing() as session:
            priority = spec.content.priority if spec else "normal"
            await _let_go(session, claim, priority=priority, status=None, now=utcnow())
        return {"claimed": 0}
    size = max(1, -(-len(claimed) // SEND_CHUNKS))
    chunks = [claimed[i : i + size] for i in range(0, len(claimed), size)]
    alert = get_settings().sensitive_visible_alert
    priority = spec.content.priority
    sending: deque[asyncio.Task[list[tuple[outbox.ClaimedDelivery, SendResult]]]] = deque()
    recording: asyncio.Task[tuple[Counter[str], str | None]] | None = None
    recording_lets_go = False  # the write under way is the last one, letting the batch go
    later: asyncio.Task[dict[uuid.UUID, int]] | None = None  # badges of the chunks after the first window
    started = 0  # chunks handed to the providers

    def start(badges: Mapping[uuid.UUID, int]) -> None:
        nonlocal started
        chunk = chunks[started]
        started += 1
        totals["claimed"] += len(chunk)
        sending.append(
            asyncio.ensure_future(
                dispatch.send_claimed(spec, chunk, providers, visible_generic_alert=alert, badges=badges)
            )
        )
        if started == len(chunks) or (yields and started == CHUNKS_IN_FLIGHT):
            hand_on()  # a send slot's batch: once its first window is out (send_batch)

    in_hand: list[tuple[outbox.ClaimedDelivery, SendResult]] | None = None  # answered, not yet written
    try:
        # The first window's badges in one read, then those chunks go out together; the badges
        # of all the later chunks in a second read, made while the first window is sent.
        first = chunks[:CHUNKS_IN_FLIGHT]
        badges = await dispatch.batch_badges(spec, [d for chunk in first for d in chunk], badge_source)
        for _ in first:
            start(badges)
        if started < len(chunks):
            rest = [d for chunk in chunks[started:] for d in chunk]
            later = asyncio.ensure_future(dispatch.batch_badges(spec, rest, badge_source))
        stop = False
        while sending:
            # Shielded: cancelling this job (arq's timeout, a shutdown) must not cancel the
            # requests on the wire, whose answers _drain still writes.
            results = await asyncio.shield(sending[0])
            sending.popleft()
            in_hand = results
            metrics.count_results(results)  # once per chunk, with counts (notifications/metrics.py)
            sent = [pair for pair in results if pair[1] is not STOPPED]
            if len(sent) < len(results):
                # The requests that had not started stay unrecorded (due), and letting the batch
                # go below cancels them.
                totals["stopped"] += len(results) - len(sent)
                results = sent
                stop = True
            in_hand = results
            if recording is not None:
                totals.update((await asyncio.shield(recording))[0])
                recording = None
            more = not stop and started < len(chunks)
            recording_lets_go = not more and not sending
            recording = asyncio.ensure_future(
                _record(claim, results, last=recording_lets_go, priority=priority)
            )
            in_hand = None
            if more:
                # The next chunk starts once this one is written, if the status the write read
                # allows it (_still_sending): one round trip, where a status read of its own
                # took a transaction.
                counts, status = await asyncio.shield(recording)
                recording = None
                totals.update(counts)
                if _still_sending(nid, status, claim.expires_at):
                    next_badges = await later if later is not None else {}
                    if yields:
                        await _bulk_may_start()
                    start(next_badges)
                else:
                    stop = True
                    if not sending:  # nothing left at the provider: let the batch go now
                        recording_lets_go = True
                        recording = asyncio.ensure_future(
                            _let_go_now(claim, priority=priority, status=status)
                        )
            await _advise_breaker(results)  # error rates per provider → alert, SMS degraded mode
        if later is not None:
            later.cancel()
            later = None
        if recording is not None:
            totals.update((await asyncio.shield(recording))[0])
            recording = None
    except asyncio.CancelledError:
        # arq's job timeout or a shutdown, not a kill: the chunks on the wire are answered and
        # written, else they would be sent again once the lease ends, as after a kill (the soak
        # found a Redis restart's job timeouts re-sending 519 pushes of one broadcast).
        if later is not None:
            later.cancel()
        await _drain(claim, sending, in_hand, recording, recording_lets_go, priority=priority)
        raise
    except BaseException:
        # Any other failure: the batch stays leased and is sent again once the lease ends; the
        # write under way still completes, so what it holds is not sent again.
        for task in (later, *sending):
            if task is not None:
                task.cancel()
        if recording is not None and not recording.done():
            with contextlib.suppress(BaseException):
                await asyncio.shield(recording)
        raise
    return dict(totals)


async def _advise_breaker(results: list[tuple[outbox.ClaimedDelivery, SendResult]]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(breaker.record_outcomes(results), BREAKER_SECONDS)


async def _drain(
    claim: outbox.Claim,
    sending: deque[asyncio.Task[list[tuple[outbox.ClaimedDelivery, SendResult]]]],
    in_hand: list[tuple[outbox.ClaimedDelivery, SendResult]] | None,
    recording: asyncio.Task[tuple[Counter[str], str | None]] | None,
    recording_lets_go: bool,
    *,
    priority: str,
) -> None:
    """Write what a cancelled batch has sent: the chunk answered but not yet written and the
    chunks still at the provider, once answered, then let the batch go so that what it never
    started is due again at once rather than when the lease ends. Bounded by DRAIN_SECONDS; past
    that the batch is left to its lease, as before (the record's attempt check keeps a late write
    from overwriting a newer one)."""

    async def finish() -> None:
        if recording is not None:
            with contextlib.suppress(Exception):
                await recording
        if recording_lets_go and not sending and in_hand is None:
            return  # the last write was already under way, letting the batch go
        answered = [in_hand] if in_hand else []
        for task in sending:
            with contextlib.suppress(Exception):
                answered.append(await task)
        pairs = [pair for chunk in answered for pair in chunk if pair[1] is not STOPPED]
        await _record(claim, pairs, last=True, priority=priority)

    task = asyncio.ensure_future(finish())
    try:
        await asyncio.wait_for(asyncio.shield(task), DRAIN_SECONDS)
    except Exception as exc:
        log.warning(
            "send_batch_drain_incomplete", notification_id=str(claim.notification_id), error=repr(exc)
        )
