"""The first-page lane (issue 16 item 7): a new notification's first page goes out beside the
batches a worker is sending, instead of waiting for the next claim of its send slots.

A worker's send slots (notifications/delivery.py) claim one batch at a time and the next only
once the one in progress has started its last chunk: under a broadcast a new breaking-news item
waited for that (0.4–0.8 s on a loaded 2-core machine), and then for arq to start its job in a
worker whose event loop was busy with the broadcast. So each worker process also has this lane:

* one batch at a time, from claim to record, and only a notification's first page
  (``outbox.claim_most_urgent(first_only=True)``: an emergency's first, then the job's own, then
  the most overdue; never another page). What a killed worker can have sent unrecorded grows by
  one first page at most (≤ 500 rows; docs/delivery.md "Guarantees");
* tried at once when the page is announced (notifications/first_pages.py), and by the page's
  send job (``first:…``) when it runs: the job is the wake-up of record. A job that finds the
  lane busy, or its page taken, sends like any send job through the send slots, so the batch
  another claim was queued for still has a job to claim it.

The lane's batch is sent, recorded, settled and cancelled exactly as the send slots' batches are
(``delivery.send_claimed``). An urgent worker (workers/roles.py) sends first pages on its lane
only, queueing announced pages for it; while one is alive the other workers leave announced pages
to it (notifications/urgent_role.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from core.db import autocommitted, utcnow
from core.logging import get_logger
from notifications import cancellation, delivery, dispatch, outbox, urgent_role
from notifications import service as notifications_service
from notifications.first_pages import FirstPage
from notifications.providers.base import PushProvider

log = get_logger(__name__)

_LANES: dict[int, asyncio.Semaphore] = {}
_ANNOUNCED: set[asyncio.Task[Any]] = set()


def _lane() -> asyncio.Semaphore:
    """One first page at a time per process (per event loop, as the send slots)."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _LANES:
        _LANES[loop_id] = asyncio.Semaphore(1)
    return _LANES[loop_id]


async def send_first_page(
    nid: uuid.UUID,
    low_id: int,
    providers: Mapping[str, PushProvider],
    badge_source: dispatch.BadgeSource,
    *,
    queue: str | None = None,
    wait: float = 0.0,
) -> dict[str, int] | None:
    """Send a first page (the page of ``nid`` starting at ``low_id``, or a more urgent first
    page) on this process's lane. None when the lane stays busy for ``wait`` seconds or no first
    page is due. With the page's ``queue`` known (an announcement), the claim does not wait for
    the push's content to be read: both go at once."""
    lane = _lane()
    if lane.locked() and wait <= 0:
        return None  # a burst of first pages: the rest go through the send slots as before
    try:
        # An urgent worker has no send slots to fall back on: its announced pages queue for the
        # lane, up to the hand-over after which the other workers take them (urgent_role.py).
        await asyncio.wait_for(lane.acquire(), wait if lane.locked() else None)
    except TimeoutError:
        return None
    try:
        with delivery.bulk_yields() as all_started:
            await cancellation.listening()
            if queue is None:
                claim = await delivery.claim_batch(nid, low_id, first_only=True)
            else:
                # Read while the claim runs (two connections, one round trip's wait instead of two);
                # the batch's sending reads it from the process's cache.
                reading = asyncio.ensure_future(delivery.spec_of(nid))
                try:
                    claim = await _lease(nid, low_id, notifications_service.priorities_of(queue))
                finally:
                    await reading
            if claim is None:
                return None
            return await delivery.send_claimed(claim, providers, badge_source, all_started, yields=False)
    finally:
        lane.release()


async def _lease(nid: uuid.UUID, low_id: int, priorities: Sequence[str]) -> outbox.Claim | None:
    """An announced page's claim: one statement, atomic by itself, so without the BEGIN and
    COMMIT round trips. Finding nothing it leaves the TTL check to the page's job."""
    async with autocommitted() as session:
        now = utcnow()
        return await outbox.claim_most_urgent(
            session,
            notification_id=nid,
            low_id=low_id,
            priorities=priorities,
            now=now,
            first_only=True,
            leave_first_after=urgent_role.leave_first_after(now),
        )


async def send_announced(
    page: FirstPage,
    *,
    queue: str,
    providers: Mapping[str, PushProvider],
    badge_source: dispatch.BadgeSource,
    wait_for_lane: float = 0.0,
) -> None:
    """A first page announced on notifications/first_pages.py's channel: sent on the lane if the
    page is of this worker's ``queue``, the lane is free (or frees within ``wait_for_lane``
    seconds: an urgent worker's) and the page still due; otherwise left to its send job. Never
    through the send slots: this is a wake-up, not a job of the page."""
    if page.queue != queue:
        return  # the other queue's workers send it
    if urgent_role.defers():
        return  # an urgent worker of this queue is alive: the page is its (urgent_role.py)
    task = asyncio.current_task()
    assert task is not None
    _ANNOUNCED.add(task)
    try:
        await send_first_page(
            page.notification_id, page.low_id, providers, badge_source, queue=queue, wait=wait_for_lane
        )
    except Exception as exc:  # the page's job sends it (after the lease, if this one held it)
        log.warning("first_page_send_failed", notification_id=str(page.notification_id), error=repr(exc))
    finally:
        _ANNOUNCED.discard(task)


async def stop_announced() -> None:
    """At shutdown: announced sends are cancelled as arq cancels its jobs, so their chunks on the
    wire are written (``delivery._drain``) and the rest is due again at once."""
    tasks = list(_ANNOUNCED)
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
