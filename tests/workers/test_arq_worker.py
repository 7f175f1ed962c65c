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


async def test_new_work_starts_ahead_of_a_broadcasts_backlog() -> None:
    """Issue 16: a worker holds only a few send jobs and starts everything that is not backlog at
    once, even when it was queued behind many send jobs; a fan-out's next slice keeps its place
    behind the send jobs queued before it."""
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    queue = f"test-backlog-{uuid.uuid4().hex}"
    release = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: dict[str, Any]) -> None:
        started.append(ctx["job_id"])
        await release.wait()

    pool = await create_pool(settings)
    worker = PollingWorker(
        functions=[func(hold, name="hold")],
        redis_settings=settings,
        queue_name=queue,
        poll_delay=0.01,
        max_jobs=20,
        handle_signals=False,
    )
    held = worker.send_jobs_held
    tag = uuid.uuid4().hex  # job ids are global in arq, not per queue
    sends = [f"send:{tag}:{i}" for i in range(held + 3)]
    others = [f"fanout-next:{tag}:1", f"tracking-send:{tag}", f"fanout:{tag}"]
    order = [*sends[:held], others[0], *sends[held:], *others[1:]]
    try:
        for job_id in order:
            await pool.enqueue_job("hold", _job_id=job_id, _queue_name=queue)
            await asyncio.sleep(0.002)  # distinct scores: arq orders the queue by them
        running = asyncio.create_task(worker.main())
        for _ in range(1000):  # up to 10 s: a parallel run is slow
            if len(started) >= held + 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for anything else to (wrongly) start
        assert sorted(started) == sorted([*sends[:held], *others])
        # The rest waits in the queue, in order, for a send job to finish.
        assert not set(sends[held:]) & set(started)
    finally:
        release.set()
        await asyncio.sleep(0.1)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.delete(queue)
        await pool.aclose()


async def test_a_fan_outs_next_slice_waits_for_the_send_jobs_queued_before_it() -> None:
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    queue = f"test-backlog-{uuid.uuid4().hex}"
    release = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: dict[str, Any]) -> None:
        started.append(ctx["job_id"])
        await release.wait()

    pool = await create_pool(settings)
    worker = PollingWorker(
        functions=[func(hold, name="hold")],
        redis_settings=settings,
        queue_name=queue,
        poll_delay=0.01,
        max_jobs=20,
        handle_signals=False,
    )
    tag = uuid.uuid4().hex
    sends = [f"send:{tag}:{i}" for i in range(worker.send_jobs_held + 1)]
    more = f"fanout-next:{tag}:1"
    try:
        for job_id in [*sends, more]:
            await pool.enqueue_job("hold", _job_id=job_id, _queue_name=queue)
            await asyncio.sleep(0.002)
        running = asyncio.create_task(worker.main())
        for _ in range(1000):  # up to 10 s: a parallel run is slow
            if len(started) >= len(sends) - 1:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for anything else to (wrongly) start
        assert started == sends[:-1]  # the fan-out's next slice is behind the one send job left
        release.set()  # the held send jobs finish: the last one, then the slice, start
        for _ in range(1000):  # up to 10 s: a parallel run is slow
            if more in started:
                break
            await asyncio.sleep(0.01)
        assert started[-2:] == [sends[-1], more]
    finally:
        release.set()
        await asyncio.sleep(0.1)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.delete(queue)
        await pool.aclose()


async def test_first_pages_start_ahead_of_a_full_backlog_a_few_at_a_time() -> None:
    """Issue 16 item 7: a first page's send job starts at the next poll even when the worker holds
    all the send jobs it may, and at most ``first_page_jobs_held`` of them at a time (a burst of
    reminders is hundreds of first pages: the rest wait in the queue, in order)."""
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    queue = f"test-first-{uuid.uuid4().hex}"
    release = asyncio.Event()
    started: list[str] = []

    async def hold(ctx: dict[str, Any]) -> None:
        started.append(ctx["job_id"])
        await release.wait()

    pool = await create_pool(settings)
    worker = PollingWorker(
        functions=[func(hold, name="hold")],
        redis_settings=settings,
        queue_name=queue,
        poll_delay=0.01,
        max_jobs=20,
        handle_signals=False,
    )
    tag = uuid.uuid4().hex
    sends = [f"send:{tag}:{i}" for i in range(worker.send_jobs_held + 2)]
    firsts = [f"first:{tag}:{i}" for i in range(worker.first_page_jobs_held + 2)]
    try:
        for job_id in [*sends, *firsts]:
            await pool.enqueue_job("hold", _job_id=job_id, _queue_name=queue)
            await asyncio.sleep(0.002)
        running = asyncio.create_task(worker.main())
        for _ in range(1000):  # up to 10 s: a parallel run is slow
            if len(started) >= worker.send_jobs_held + worker.first_page_jobs_held:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # time for anything else to (wrongly) start
        assert sorted(started) == sorted(
            [*sends[: worker.send_jobs_held], *firsts[: worker.first_page_jobs_held]]
        )
    finally:
        release.set()
        await asyncio.sleep(0.1)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.delete(queue)
        await pool.aclose()


async def test_close_runs_the_shutdown_hook_when_a_job_ended_cancelled() -> None:
    # A job that arq cancels while arq itself is starting or finishing it ends cancelled; arq's
    # close raised that CancelledError and skipped the shutdown hook.
    settings = RedisSettings.from_dsn(os.environ["CHUONG_REDIS_URL"])
    shut_down: list[bool] = []

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        shut_down.append(True)

    async def hold(ctx: dict[str, Any]) -> None:
        await asyncio.Event().wait()

    def build(worker_class: type[Worker]) -> Worker:
        return worker_class(
            functions=[func(hold, name="hold")],
            redis_settings=settings,
            queue_name=f"test-close-{uuid.uuid4().hex}",
            on_shutdown=on_shutdown,
            handle_signals=False,
        )

    async def cancelled_in_arqs_hands() -> None:
        await asyncio.Event().wait()  # cancelled with nothing of its own to catch it

    for worker_class, raises in ((Worker, True), (PollingWorker, False)):
        shut_down.clear()
        worker = build(worker_class)
        worker._pool = await create_pool(settings)  # what main() sets up before polling
        task = asyncio.ensure_future(cancelled_in_arqs_hands())
        worker.tasks["job"] = task
        await asyncio.sleep(0)
        if raises:
            try:
                await worker.close()
            except asyncio.CancelledError:
                pass
            else:  # pragma: no cover - arq fixed it: PollingWorker.close can go
                raise AssertionError("arq's close no longer raises; drop PollingWorker.close")
            assert shut_down == []  # what arq's own close skips
            await worker.pool.close(close_connection_pool=True)
        else:
            await worker.close()
            assert shut_down == [True]
