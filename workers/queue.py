"""Sending deferred jobs to arq (the only enqueue path): ``enqueue`` is the enqueuer that the
worker's start-up (workers/settings.py) and the served app's factory (cli/asgi.py) register with
``core.jobs.set_enqueuer``; ``core.after_commit.committing`` calls it after each commit."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import to_unix_ms
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from core.clock import reference_now
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


# arq's enqueue_job, one job at a time: WATCH, EXISTS, then MULTI/PSETEX/ZADD/EXEC, three round
# trips and a pipeline per job. A commit of the tracking sender defers two jobs per notification
# (a thousand or more per chunk), so ``enqueue`` sends them all in one pipeline of this script,
# which does the same per job, atomically, in Redis: skip a job whose id is queued or has a kept
# result (arq's uniqueness), else store it and put it on its queue.
_ENQUEUE_SCRIPT = """
if redis.call('exists', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('psetex', KEYS[1], ARGV[1], ARGV[2])
redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
return 1
"""


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
            script = pool.register_script(_ENQUEUE_SCRIPT)
            async with pool.pipeline(transaction=False) as pipe:
                for job in jobs:
                    await _add(pool, pipe, script, job)
                await pipe.execute()
    except Exception as exc:  # Redis down, hung or flushed: the reconciler recovers
        log.warning("enqueue_failed", error=type(exc).__name__, jobs=len(jobs))


async def _add(pool: ArqRedis, pipe: Pipeline, script: AsyncScript, job: DeferredJob) -> None:
    """One job as arq stores it (arq.connections.ArqRedis.enqueue_job): the serialised job under
    ``arq:job:<id>`` for ``expires_extra_ms`` past its start, its id on the queue scored by when
    it is due, by the service clock (core/clock.py), which the workers' arq reads too
    (workers/arq_clock.py): a host's wall clock stepped ahead would hide what it queues from the
    other workers."""
    job_id = job.job_id or uuid.uuid4().hex
    now_ms = int(reference_now().timestamp() * 1000)
    score = to_unix_ms(job.defer_until) if job.defer_until is not None else now_ms
    payload = serialize_job(job.name.value, job.args, {}, None, now_ms, serializer=pool.job_serializer)
    await script(
        keys=[job_key_prefix + job_id, result_key_prefix + job_id, job.queue],
        args=[score - now_ms + pool.expires_extra_ms, payload, score, job_id],
        client=pipe,
    )
