"""A new notification's first page, announced to the workers the moment it is committed.

The page's send job (``first:…``, core/jobs.py) is the record of the wake-up: a worker starts it
at its next poll. Under a broadcast that hop was most of the wait (issue 16 item 7: a sending
worker's event loop took 0.5–1.5 s from seeing the job in the queue to running it, through
arq's round trips for the job's lease, data and retry count, each behind the broadcast's
callbacks). So the commit also publishes the page on ``CHANNEL``; each worker of the page's
queue hears it on the subscription it keeps for cancels (notifications/cancellation.py) and
tries its first-page lane at once (notifications/first_page_lane.py ``send_announced``). The lane
claims the page in PostgreSQL (``SKIP LOCKED``), so one worker sends it; the others, and the
job when it runs, find it taken. Pub/sub is only the wake-up: with Redis down or a message lost,
the job (and, failing that, the reconciler) sends the page as before.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from core.pubsub import publish_after_commit

CHANNEL = "chuong:notifications:first-page"


@dataclass(frozen=True)
class FirstPage:
    notification_id: uuid.UUID
    low_id: int
    queue: str  # the arq queue whose workers send it (notifications/service.py ``queue_for``)


def announce_after_commit(session: AsyncSession, page: FirstPage) -> None:
    publish_after_commit(
        session,
        CHANNEL,
        {"notification_id": str(page.notification_id), "low_id": page.low_id, "queue": page.queue},
    )


def parse(message: str) -> FirstPage | None:
    """The announced page, or None for a message this version cannot read."""
    try:
        data = orjson.loads(message)
        return FirstPage(uuid.UUID(data["notification_id"]), int(data["low_id"]), str(data["queue"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
