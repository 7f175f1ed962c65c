"""workers/roles.py and workers/arq_worker.py: what an urgent worker starts, and what the ordinary
workers leave to it while it is alive (issue 16 item 7)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import func

from notifications import urgent_role
from workers.arq_worker import PollingWorker, UrgentWorker
from workers.roles import urgent_health_key


@pytest.fixture
async def pool() -> AsyncIterator[ArqRedis]:
    redis = await create_pool(RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"]))
    yield redis
    await redis.aclose()


@pytest.fixture(autouse=True)
def _no_presence_left() -> Any:
    yield
    urgent_role.note_presence(present=False)  # a worker of this test noted it in this process


async def _started_by(
    worker_class: type[PollingWorker], pool: ArqRedis, job_ids: list[str], *, queue: str, watch: float
) -> tuple[list[str], asyncio.Event, PollingWorker, asyncio.Task[Any]]:
    release = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: dict[str, Any]) -> None:
        started.append(ctx["job_id"])
        await release.wait()

    worker = worker_class(
        functions=[func(hold, name="hold")],
        redis_settings=RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"]),
        queue_name=queue,
        poll_delay=0.01,
        max_jobs=20,
        handle_signals=False,
    )
    for job_id in job_ids:
        await pool.enqueue_job("hold", _job_id=job_id, _queue_name=queue)
        await asyncio.sleep(0.002)  # distinct scores: arq orders the queue by them
    running = asyncio.create_task(worker.main())
    await asyncio.sleep(watch)
    return started, release, worker, running


async def _stop(release: asyncio.Event, worker: PollingWorker, running: asyncio.Task[Any]) -> None:
    release.set()
    await asyncio.sleep(0.05)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    await worker.close()


async def test_an_urgent_worker_starts_only_urgent_jobs_and_one_tracking_sender(pool: ArqRedis) -> None:
    queue = f"test-urgent-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex  # job ids are global in arq, not per queue
    urgent = [
        f"fanout:{tag}",
        f"tracking-send:{tag}:0",
        f"news-release:{tag}:1",
        f"cron:tracking_sweep:{tag}",
        f"cron:news_tick:{tag}",
    ]
    second_sender = f"tracking-send:{tag}:1"
    bulk = [
        f"send:{tag}:1",
        f"retry:{tag}:1:2",
        f"resend:{tag}:1:3",
        f"first:{tag}:1",  # a first page's job: the ordinary workers' wake-up of record
        f"fanout-next:{tag}:1",
        f"cron:reconcile:{tag}",
        f"cron:purge:{tag}",
        f"inbox:{tag}",
    ]
    started, release, worker, running = await _started_by(
        UrgentWorker, pool, [*bulk, *urgent, second_sender], queue=queue, watch=1.0
    )
    try:
        assert sorted(started) == sorted(urgent)
    finally:
        await _stop(release, worker, running)
        await pool.delete(queue)


async def test_the_ordinary_workers_leave_urgent_jobs_to_a_live_urgent_worker_for_the_hand_over(
    pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(urgent_role, "HANDOVER_SECONDS", 1.5)
    queue = f"test-handover-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex
    left = [f"first:{tag}:1", f"fanout:{tag}", f"tracking-send:{tag}:0", f"cron:tracking_sweep:{tag}"]
    theirs = [f"send:{tag}:1", f"cron:reconcile:{tag}", f"inbox:{tag}"]
    await pool.set(urgent_health_key(queue), b"alive", px=30_000)
    started, release, worker, running = await _started_by(
        PollingWorker, pool, [*left, *theirs], queue=queue, watch=0.7
    )
    try:
        assert sorted(started) == sorted(theirs)
        assert urgent_role.defers()
        for _ in range(300):  # past the hand-over they are the ordinary worker's again
            if len(started) == len(left) + len(theirs):
                break
            await asyncio.sleep(0.01)
        assert sorted(started) == sorted([*left, *theirs])
    finally:
        await _stop(release, worker, running)
        await pool.delete(queue, urgent_health_key(queue))


async def test_without_an_urgent_worker_nothing_is_left(pool: ArqRedis) -> None:
    queue = f"test-handover-{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex
    jobs = [f"first:{tag}:1", f"fanout:{tag}", f"tracking-send:{tag}:0", f"send:{tag}:1"]
    started, release, worker, running = await _started_by(PollingWorker, pool, jobs, queue=queue, watch=0.5)
    try:
        assert sorted(started) == sorted(jobs)
        assert not urgent_role.defers()
    finally:
        await _stop(release, worker, running)
        await pool.delete(queue)
