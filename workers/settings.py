"""arq worker settings: the only place that knows about arq (see ARCHITECTURE.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings

from core.config import get_settings
from core.context import RequestContext, set_context
from core.db import dispose_engine
from core.logging import configure_logging
from workers.jobs import purge_ended_sessions


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(level=settings.log_level, json=settings.log_json)
    set_context(RequestContext(actor_kind="system"))


async def shutdown(ctx: dict[str, Any]) -> None:
    await dispose_engine()


class WorkerSettings:
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url)
    functions: ClassVar[list[Any]] = [purge_ended_sessions]
    cron_jobs: ClassVar[list[Any]] = [
        cron(purge_ended_sessions, hour=3, minute=17, run_at_startup=False, unique=True, timeout=300),
    ]
    on_startup = startup
    on_shutdown = shutdown
    # Short timeouts so that a killed worker's job is retried within about a minute.
    job_timeout = 60
    max_tries = 5
    poll_delay = 0.1
    health_check_interval = 30
