"""The service clock a worker judges leases, due times, pacing and queued jobs by is the
database's, carried by the monotonic clock: stepping the worker's wall clock does not move it
(issue 18, scenario 7; docs/delivery.md "Clocks"). Each test runs a process whose wall clock
really steps (libfaketime, tests/support/stepped_clock.py) against the real PostgreSQL and Redis.
"""

from __future__ import annotations

from tests.support.stepped_clock import SteppedClock, run_stepped

STEP = 600
# A reading of the service clock against one of the database's, taken a moment apart.
CLOSE = 0.5


def test_the_anchored_clock_does_not_follow_a_stepped_wall_clock(database_url, tmp_path):
    readings = run_stepped(
        SteppedClock(tmp_path),
        """
        from core import clock, clock_sync

        async def main():
            assert await clock_sync.sync_once()
            readings = {}
            for offset in (600, -600, 0):
                step(offset)
                reference = await database_time()
                readings[offset] = {
                    "wall": time.time() - reference,
                    "service": clock.utcnow().timestamp() - reference,
                    "skew": clock.wall_clock_skew(),
                }
            print(json.dumps(readings))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    for offset, reading in readings.items():
        assert abs(reading["wall"] - int(offset)) < 2, readings  # the wall clock did step…
        assert abs(reading["skew"] - int(offset)) < 2, readings  # …which the worker can tell…
        assert abs(reading["service"]) < CLOSE, readings  # …and the service clock did not


def test_the_service_clock_carries_on_when_the_database_is_away(database_url, tmp_path):
    readings = run_stepped(
        SteppedClock(tmp_path),
        """
        from core import clock, clock_sync
        from core.db import configure_engine, make_engine

        async def main():
            assert await clock_sync.sync_once()
            reference = await database_time()
            # No database any more: the reading fails and the anchor stays.
            configure_engine(make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none"))
            step(-600)
            synced = await clock_sync._try_sync()
            print(json.dumps({"synced": synced, "service": clock.utcnow().timestamp() - reference}))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    assert readings["synced"] is False
    assert 0 <= readings["service"] < 2, readings


def test_arq_scores_and_crons_read_the_service_clock(database_url, redis, tmp_path):
    readings = run_stepped(
        SteppedClock(tmp_path),
        """
        import datetime as dt
        import uuid

        import arq.connections, arq.jobs, arq.worker
        from redis.asyncio import Redis

        from core import clock_sync
        from core.jobs import DeferredJob, JobName
        from workers.arq_clock import use_service_clock
        from workers.queue import close_pool, enqueue

        async def main():
            assert await clock_sync.sync_once()
            use_service_clock()
            queue = f"test-clock-{uuid.uuid4().hex}"
            redis = Redis.from_url(os.environ["CHUONG_REDIS_URL"])
            readings = {}
            for offset in (600, -600):
                step(offset)
                job_id = uuid.uuid4().hex
                await enqueue([DeferredJob(name=JobName.RECONCILE, args=(), job_id=job_id, queue=queue)])
                reference = await database_time()
                readings[offset] = {
                    "score": await redis.zscore(queue, job_id) / 1000 - reference,
                    "worker": arq.worker.timestamp_ms() / 1000 - reference,
                    "enqueuer": arq.connections.timestamp_ms() / 1000 - reference,
                    "job": arq.jobs.timestamp_ms() / 1000 - reference,
                    "cron": arq.worker.datetime.now(tz=dt.timezone.utc).timestamp() - reference,
                    "cron_naive": arq.worker.datetime.now().timestamp() - reference,
                }
            await redis.delete(queue)
            await redis.aclose()
            await close_pool()
            print(json.dumps(readings))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    for reading in readings.values():
        for name, seconds in reading.items():
            assert abs(seconds) < CLOSE, (name, readings)


def test_the_api_dates_by_the_database_clock_too(database_url, redis, tmp_path):
    """The served app anchors at start (api/app.py lifespan): what it dates (a push's expiry, a
    scheduled release, an inbox stream slot in Redis) other processes judge."""
    readings = run_stepped(
        SteppedClock(tmp_path),
        """
        from core import clock
        from cli.asgi import create_app

        async def main():
            app = create_app()
            async with app.router.lifespan_context(app):
                step(600)
                reference = await database_time()
                print(json.dumps({"service": clock.utcnow().timestamp() - reference}))

        asyncio.run(main())
        """,
        database_url=database_url,
    )
    assert abs(readings["service"]) < CLOSE, readings
