"""workers/arq_worker.py: a worker does not re-check, at every poll, the queued jobs it is
already running (three Redis round trips apiece in arq's own Worker)."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import Worker, func

from workers.arq_worker import PollingWorker

RUNNING = 3


async def _pipelines_while_running(worker_class: type[Worker]) -> int:
    """Redis transactions the worker opens during 0.3 s of polling while it runs RUNNING jobs
    that are still in the queue."""
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    queue = f"test-polling-{uuid.uuid4().hex}"
    release = asyncio.Event()
    started = 0

    async def hold(ctx: dict[str, Any]) -> None:
        nonlocal started
        started += 1
        await release.wait()

    pool = await create_pool(settings)
    worker = worker_class(
        functions=[func(hold, name="hold")],
        redis_settings=settings,
        queue_name=queue,
        poll_delay=0.01,
        max_jobs=10,
        handle_signals=False,
    )
    running = asyncio.create_task(worker.main())
    try:
        for _ in range(RUNNING):
            await pool.enqueue_job("hold", _queue_name=queue)
        for _ in range(500):
            if started == RUNNING:
                break
            await asyncio.sleep(0.01)
        assert started == RUNNING
        opened = 0
        real_pipeline = worker.pool.pipeline

        def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
            nonlocal opened
            opened += 1
            return real_pipeline(*args, **kwargs)

        worker.pool.pipeline = counting_pipeline  # type: ignore[method-assign]
        await asyncio.sleep(0.3)
        worker.pool.pipeline = real_pipeline  # type: ignore[method-assign]
        return opened
    finally:
        release.set()
        await asyncio.sleep(0.05)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.delete(queue)
        await pool.aclose()


async def test_a_polling_worker_leaves_the_jobs_it_runs_alone() -> None:
    assert await _pipelines_while_running(PollingWorker) == 0


async def test_arqs_own_worker_checks_them_again_at_every_poll() -> None:
    # What the override is for; if arq stops doing this, the override can go.
    assert await _pipelines_while_running(Worker) >= RUNNING * 5


def test_a_stop_signal_ends_the_pause_before_a_restart():
    """While Redis is away the process waits between restarts with no event loop running: SIGTERM
    (a deploy, docker stop) must still end it at once, not after the pause."""
    import signal
    import threading
    import time

    from workers.arq_worker import _stopped_during

    threading.Timer(0.2, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    assert _stopped_during(30.0) is True
    assert time.monotonic() - started < 5
    assert _stopped_during(0.1) is False  # nothing pending: the pause just ends
