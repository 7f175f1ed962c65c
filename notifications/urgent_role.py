"""Whether an urgent worker serves this process's queue, and what the other workers leave to it.

A bulkhead (issue 16 item 7): under a broadcast a worker's event loop is saturated by its sends,
and every round trip of a new breaking-news item's first page (announcement, claim, content,
badges, pacing permit) waited 30–800 ms behind the broadcast's callbacks on a loaded 2-core
machine. An urgent worker (``chuong worker --urgent-only``, workers/roles.py) takes only
latency-critical work and never a bulk batch, so its event loop is free when an item comes. While
one is alive on a queue, the other workers of that queue leave it the young urgent work it is
there for, for ``HANDOVER_SECONDS``:

* they ignore first-page announcements (notifications/first_page_lane.py ``send_announced``);
* their claims skip another notification's first page written less than ``HANDOVER_SECONDS``
  ago (notifications/outbox.py ``claim_most_urgent``: ``leave_first_after``);
* they start the page's job, a new notification's fan-out, the tracking sweep and sender and news
  releases only once those have waited ``HANDOVER_SECONDS`` in the queue (workers/arq_worker.py).

Past the hand-over everything is theirs again: a dead or overwhelmed urgent worker (a burst of
reminders, each a first page) costs an urgent page ``HANDOVER_SECONDS`` at most, never the page,
and with no urgent worker nothing changes. The worker transport notes what it read in Redis (the
urgent worker's health record, rewritten every second, gone two seconds after it stops); a note
older than ``PRESENCE_KEPT_SECONDS`` is ignored, so a worker whose polls stalled falls back to
sending everything itself.
"""

from __future__ import annotations

import datetime as dt
import time

HANDOVER_SECONDS = 1.0
PRESENCE_KEPT_SECONDS = 5.0

_noted_at: float | None = None  # monotonic time of the last note that an urgent worker is alive


def note_presence(*, present: bool) -> None:
    """What the worker's poll read: whether an urgent worker of its queue is alive."""
    global _noted_at
    _noted_at = time.monotonic() if present else None


def defers() -> bool:
    """Whether this process leaves young urgent work to an urgent worker (never true in the
    urgent worker itself, which does not note presence)."""
    return _noted_at is not None and time.monotonic() - _noted_at < PRESENCE_KEPT_SECONDS


def leave_first_after(now: dt.datetime) -> dt.datetime | None:
    """For a claim: another notification's first page written after this is left to the urgent
    worker; None when there is none (the claim takes any first page, as before)."""
    return now - dt.timedelta(seconds=HANDOVER_SECONDS) if defers() else None
