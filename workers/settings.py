"""arq worker settings: the only place that knows about arq (see ARCHITECTURE.md).

Two queues: ``high`` (emergency/high-priority pushes and housekeeping) and ``bulk``; run one
worker per queue (``chuong worker --queue high|bulk``) so bulk traffic never delays urgent pushes.
An urgent worker (``chuong worker --queue high --urgent-only``, workers/roles.py) runs with
``UrgentWorkerSettings``: the same jobs, only the urgent crons, its own health record.
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from arq import cron

from core import clock_sync
from core.config import JOB_TIMEOUT_SECONDS, get_settings
from core.context import RequestContext, set_context
from core.db import dispose_engine
from core.jobs import BULK_QUEUE, HIGH_QUEUE, JobName, set_enqueuer
from core.logging import configure_logging
from core.production import ensure_production_ready, log_production_warnings
from inbox import fanout as inbox_fanout
from inbox.badges import unread_badges
from notifications import cancellation, figures, first_page_lane, first_pages, urgent_role
from notifications.on_created import set_on_created
from notifications.providers.lazy import LazyProviders
from notifications.providers.registry import build_providers
from workers.context import QUEUE_KEY, URGENT_KEY, WorkerResources, arq_ctx, resources_of
from workers.delivery_jobs import fan_out, purge, reconcile, send_batch
from workers.figures_jobs import measure_figures
from workers.gc_tuning import tune_for_a_long_lived_process
from workers.inbox_jobs import inbox_fan_out, inbox_reconcile
from workers.jobs import audit_partitions, purge_ended_sessions
from workers.metrics_server import start_metrics_server
from workers.news_jobs import news_release, news_tick
from workers.queue import close_pool, enqueue, redis_settings
from workers.report_jobs import summarize_languages
from workers.roles import URGENT_CRONS, URGENT_HEALTH_CHECK_SECONDS
from workers.sms_jobs import sms_fallback
from workers.tracking_jobs import tracking_send, tracking_sweep


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    # `chuong worker` checks before connecting; this covers `arq workers.settings.WorkerSettings`.
    ensure_production_ready(settings)
    configure_logging(level=settings.log_level, json=settings.log_json)
    log_production_warnings(settings)  # unverified database or Redis connections across hosts
    set_context(RequestContext(actor_kind="system"))
    # Leases, due times, pacing and arq's scores are judged on the database's clock, not this
    # host's wall clock, which may be stepped (docs/delivery.md "Clocks").
    await clock_sync.start()
    set_enqueuer(enqueue)  # what the jobs' transactions defer goes to arq after their commit
    # Notifications created by jobs (news releases, tracking reminders) write their inbox work in
    # the same transaction (notifications/on_created.py).
    set_on_created(inbox_fanout.schedule)
    providers = LazyProviders(lambda: build_providers(settings))
    urgent_only = bool(ctx.get(URGENT_KEY, False))
    resources = WorkerResources(providers=providers, urgent_only=urgent_only)
    ctx.update(arq_ctx(resources))  # what the jobs read as their JobContext (workers/context.py)
    # A new notification's first page is announced on Redis as it commits: this worker tries its
    # first-page lane at once instead of at the page's job (notifications/first_pages.py).
    queue = {"high": HIGH_QUEUE, "bulk": BULK_QUEUE}[ctx.get(QUEUE_KEY, "high")]
    # An urgent worker's pages queue for its lane (it has no send slots to fall back on) until the
    # other workers take them over (notifications/urgent_role.py).
    wait_for_lane = urgent_role.HANDOVER_SECONDS if urgent_only else 0.0

    async def first_page_written(message: str) -> None:
        page = first_pages.parse(message)
        if page is None:
            return
        # Logged like the page's job would be (workers/context.py), named for the wake-up.
        with structlog.contextvars.bound_contextvars(
            job_id=f"announced:{page.notification_id}:{page.low_id}",
            job_name=JobName.SEND_BATCH.value,
            job_try=1,
        ):
            await first_page_lane.send_announced(
                page,
                queue=queue,
                providers=providers,
                badge_source=unread_badges,
                wait_for_lane=wait_for_lane,
            )

    cancellation.also_listen(first_pages.CHANNEL, first_page_written)
    await cancellation.listening()
    # Delivery, pacing and SMS counters live in the workers (docs/observability.md).
    resources.metrics_server = await start_metrics_server(
        settings, queue=ctx.get(QUEUE_KEY, "high"), role="urgent" if urgent_only else "ordinary"
    )
    # Start-up's objects out of the cyclic collector's way, fewer young collections (workers/gc_tuning.py).
    tune_for_a_long_lived_process()


async def shutdown(ctx: dict[str, Any]) -> None:
    clock_sync.stop()
    cancellation.stop_hearing(first_pages.CHANNEL)  # no announcement starts a send from here on
    await first_page_lane.stop_announced()  # before the providers close, as arq's jobs are stopped
    resources = resources_of(ctx)
    if resources.metrics_server is not None:
        await resources.metrics_server.close()
    providers = resources.providers
    if isinstance(providers, LazyProviders):
        await providers.close()
    await cancellation.close()
    await close_pool()
    await dispose_engine()


class WorkerSettings:
    redis_settings = redis_settings()
    queue_name = HIGH_QUEUE
    functions: ClassVar[list[Any]] = [
        fan_out,
        send_batch,
        reconcile,
        purge,
        purge_ended_sessions,
        inbox_fan_out,
        inbox_reconcile,
        sms_fallback,
        news_release,
        news_tick,
        tracking_sweep,
        tracking_send,
        audit_partitions,
        measure_figures,
        summarize_languages,
    ]
    cron_jobs: ClassVar[list[Any]] = [
        cron(
            reconcile,
            second=set(range(0, 60, max(1, get_settings().reconcile_every_seconds))),
            unique=True,
            timeout=55,
            run_at_startup=True,
        ),
        cron(
            inbox_reconcile,
            second=set(range(0, 60, max(1, get_settings().reconcile_every_seconds))),
            unique=True,
            timeout=55,
        ),
        # The service-wide figures the API exports (backlog, oldest due, fan-out lag, maintenance):
        # one query for the whole service, by whichever worker takes the tick.
        cron(
            measure_figures,
            second=set(range(0, 60, figures.EVERY_SECONDS)),
            unique=True,
            timeout=figures.EVERY_SECONDS,
            run_at_startup=True,
        ),
        cron(sms_fallback, second=20, unique=True, timeout=55),
        # Finished pushes into the reports' per-language summary (notifications/language_summary.py).
        cron(summarize_languages, second=40, unique=True, timeout=55),
        # Scheduled breaking news goes out within 5 s of its time even if its deferred job is lost.
        cron(news_tick, second=set(range(0, 60, 5)), unique=True, timeout=55),
        # Tracking reminders (docs/tracking.md): each sweep also catches up any missed minute.
        cron(tracking_sweep, second=5, unique=True, timeout=55),
        cron(purge, hour=3, minute=7, unique=True, timeout=600),
        cron(purge_ended_sessions, hour=3, minute=17, unique=True, timeout=300),
        # Months of audit partitions are created ahead (auth/audit/partitions.py); daily and at
        # start-up, so that a worker down for weeks still finds next month's partition there.
        cron(audit_partitions, hour=2, minute=47, unique=True, timeout=300, run_at_startup=True),
    ]
    on_startup = startup
    on_shutdown = shutdown
    # Short timeouts so that a killed worker's batch is re-run in about a minute.
    job_timeout = JOB_TIMEOUT_SECONDS
    max_tries = 5
    max_jobs = 20
    # Due job ids read per poll, oldest first: a new job queued behind more backlog than this is
    # not seen until the backlog shrinks (workers/arq_worker.py). arq's default is 100; a
    # broadcast keeps about 40 send jobs queued, the reconciler adds up to 50 per notification.
    queue_read_limit = 500
    poll_delay = 0.05
    keep_result = 60
    health_check_interval = 30


class UrgentWorkerSettings(WorkerSettings):
    """``chuong worker --urgent-only`` (workers/roles.py, workers/arq_worker.py ``UrgentWorker``):
    of the crons only the urgent ones (the others are enqueued and run by the other workers); its
    health record every second, which the other workers read as its sign of life."""

    cron_jobs: ClassVar[list[Any]] = [
        job for job in WorkerSettings.cron_jobs if job.name in {f"cron:{name.value}" for name in URGENT_CRONS}
    ]
    health_check_interval = URGENT_HEALTH_CHECK_SECONDS
