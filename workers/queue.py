"""Sending deferred jobs to arq (the only enqueue path): ``enqueue`` is the enqueuer that the
worker's start-up (workers/settings.py) and the served app's factory (cli/asgi.py) register with
``core.jobs.set_enqueuer``; ``core.after_commit.committing`` calls it after each commit."""

from __future__ import annotations

import asyncio
import dataclasses

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from core.config import get_settings
from core.jobs import DeferredJob
from core.logging import get_logger
from core.tls import redis_tls_options

log = get_logger(__name__)

_pool: ArqRedis | None = None
ENQUEUE_TIMEOUT_SECONDS = 2.0


def redis_settings() -> RedisSettings:
    """arq's connection: CHUONG_REDIS_URL, and with a rediss:// URL the same TLS options as the
    service's other Redis clients (core/tls.py); arq would otherwise check no host name. With
    CHUONG_REDIS_SENTINELS, the master the Sentinels name (TLS is refused with them, core/config.py)."""
    settings = get_settings()
    connection = RedisSettings.from_dsn(settings.redis_url)
    if settings.redis_sentinels:  # the master the Sentinels name; the URL gives db and password
        return dataclasses.replace(
            connection,
            host=settings.sentinel_addresses(),
            sentinel=True,
            sentinel_master=settings.redis_sentinel_master,
        )
    tls = redis_tls_options(settings)
    if not tls:
        return connection
    return dataclasses.replace(
        connection,
        ssl_cert_reqs=tls["ssl_cert_reqs"],
        ssl_check_hostname=tls["ssl_check_hostname"],
        ssl_ca_certs=tls["ssl_ca_certs"],
        ssl_certfile=tls["ssl_certfile"],
        ssl_keyfile=tls["ssl_keyfile"],
    )


async def get_pool() -> ArqRedis:
    global _pool
    if _pool is None:
        _pool = await create_pool(redis_settings())
    return _pool


async def close_pool() -> None:
    global _pool
    if _pool is not None:
        await _pool.aclose()
    _pool = None


async def enqueue(jobs: list[DeferredJob]) -> None:
    """Best effort: PostgreSQL already holds the work, so a failure here is logged and the
    reconciler picks the work up within a minute."""
    if not jobs:
        return
    try:
        # Bounded: this runs after the commit, inside the request. A Redis that accepts the
        # connection but never answers (arq sets no command timeout; its connect retries take
        # ~10 s) would otherwise hold the answer for ever.
        async with asyncio.timeout(ENQUEUE_TIMEOUT_SECONDS):
            pool = await get_pool()
            for job in jobs:
                await pool.enqueue_job(
                    job.name.value,  # the plain string: the queued job stores arq's function name
                    *job.args,
                    _job_id=job.job_id,
                    _queue_name=job.queue,
                    _defer_until=job.defer_until,
                )
    except Exception as exc:  # Redis down, hung or flushed: the reconciler recovers
        log.warning("enqueue_failed", error=type(exc).__name__, jobs=len(jobs))
