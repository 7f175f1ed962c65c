"""The nightly purge (a cron job, workers/settings.py): what is kept, and for how long.

First the notifications whose sending has ended are folded into their per-language summary
(notifications/language_summary.py; a minutely cron does it too): the deliveries and receipts
purges skip a notification until then. Each kind has its retention (``CHUONG_RETENTION_*_DAYS``,
core/config.py; "forever" keeps it): stale devices, the deliveries of finished notifications,
readers' receipts (summed onto their notification and its language summary first), finished SMS
rows, and finished notifications with everything hanging off them. The audit log is never purged
here: it is archived (``chuong audit archive``).

Every step deletes one bounded batch per transaction and commits, so no purge holds a long
transaction or a million row locks, and a night that runs out of time resumes the next night
where it stopped (the ``*_purged_at`` markers and the oldest-first order). Each step lives next
to what it purges: devices/service.py, notifications/outbox.py, notifications/receipt_purge.py,
notifications/sms/retention.py; the tracking reminder ledger's is tracking/retention.py, which
the worker job runs after this one."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select

from core.after_commit import committing
from core.config import get_settings
from core.db import allow_long_statements
from devices import service as devices
from notifications import language_summary, outbox, receipt_purge
from notifications.models import Notification
from notifications.sms import retention as sms_retention
from notifications.states import FINAL_STATUSES

# A notification's delete cascades to its inbox rows, read states and receipts: a broadcast's can
# be a million rows, so few notifications go per transaction.
NOTIFICATIONS_PER_BATCH = 20
# Inside the job's 600 s timeout (workers/settings.py), with room for the one batch each kind
# still runs once the budget is spent.
PURGE_BUDGET_SECONDS = 420.0

Step = Callable[[dt.datetime, int], Awaitable[int]]


@dataclass
class Budget:
    """The time one purge run may spend; each step stops between batches once it is spent."""

    deadline: float

    @classmethod
    def of(cls, seconds: float) -> Budget:
        return cls(deadline=time.monotonic() + seconds)

    def spent(self) -> bool:
        return time.monotonic() >= self.deadline


async def drain(step: Step, *, cutoff: dt.datetime, batch: int, budget: Budget) -> tuple[int, bool]:
    """Run ``step`` (one batch, one transaction) until a batch comes back short or the budget is
    spent. Returns the rows removed and whether everything due was removed."""
    total = 0
    while True:
        removed = await step(cutoff, batch)
        total += removed
        if removed < batch:
            return total, True
        if budget.spent():
            return total, False


async def purge_notifications(cutoff: dt.datetime, batch: int) -> int:
    """One batch of finished notifications created before ``cutoff``, oldest first; their
    children go by ON DELETE CASCADE, and news articles stay (their link to the push is cleared).
    ``batch`` counts notifications here (NOTIFICATIONS_PER_BATCH), not rows."""
    async with committing() as session:
        await allow_long_statements(session, seconds=300)
        ids = (
            await session.scalars(
                select(Notification.id)
                .where(Notification.created_at < cutoff, Notification.status.in_(FINAL_STATUSES))
                .order_by(Notification.created_at)
                .limit(batch)
            )
        ).all()
        if ids:
            await session.execute(delete(Notification).where(Notification.id.in_(ids)))
    return len(ids)


async def summarize_languages(*, now: dt.datetime, budget_seconds: float) -> dict[str, int | bool]:
    """Fold the notifications whose sending has ended into the language summary (the minutely
    cron, so that reports read the summary soon after a push finished). Deliveries read, and
    whether every waiting notification was folded."""
    budget = Budget.of(budget_seconds)
    batch = get_settings().retention_batch_size
    read, done = await drain(language_summary.fold_batch, cutoff=now, batch=batch, budget=budget)
    return {"deliveries": read, "complete": done}


@dataclass(frozen=True)
class Kind:
    """One kind of record the purge applies a retention to: ``keep_days`` None keeps it for ever;
    ``step`` removes one batch of at most ``batch`` (rows, or notifications for their own step)."""

    name: str
    keep_days: int | None
    step: Step
    batch: int


async def purge(
    *, now: dt.datetime, also: Sequence[Kind] = (), budget_seconds: float = PURGE_BUDGET_SECONDS
) -> dict[str, int | bool]:
    """Apply every retention, oldest records first, within the time budget. ``also`` adds the
    kinds of packages above this one (the tracking ledger: the worker job passes it). The report
    counts what went per kind and says whether everything due went (``complete``)."""
    settings = get_settings()
    budget = Budget.of(budget_seconds)
    batch = settings.retention_batch_size
    report: dict[str, int | bool] = {}

    # What the summary cron has not folded yet, before the purges that wait for it (and before
    # stale devices go, taking their deliveries with them).
    report["languages"], complete = await drain(
        language_summary.fold_batch, cutoff=now, batch=batch, budget=budget
    )
    async with committing() as session:
        report["devices"] = await devices.purge_stale(session, now=now)

    kinds = [
        Kind("deliveries", settings.retention_deliveries_days, outbox.purge_finished_batch, batch),
        Kind("receipts", settings.retention_receipts_days, receipt_purge.purge_batch, batch),
        Kind("sms", settings.retention_sms_days, sms_retention.purge_batch, batch),
        # Last of its own: what it would cascade to is mostly gone by then.
        Kind(
            "notifications",
            settings.retention_notifications_days,
            purge_notifications,
            NOTIFICATIONS_PER_BATCH,
        ),
        *also,
    ]
    for kind in kinds:
        report[kind.name] = 0
        if kind.keep_days is None:
            continue
        # Every kind gets at least one batch a night, so a backlog of one kind (a first purge of
        # years of deliveries) cannot starve the others; the budget stops it between batches.
        cutoff = now - dt.timedelta(days=kind.keep_days)
        report[kind.name], done = await drain(kind.step, cutoff=cutoff, batch=kind.batch, budget=budget)
        complete = complete and done
    report["complete"] = complete
    return report
