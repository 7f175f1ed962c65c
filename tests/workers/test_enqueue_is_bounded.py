"""Issue 12 §1 (any unbounded wait): the after-commit enqueue runs inside the request, so a
Redis that accepts connections but never answers must not hold the answer for ever."""

import asyncio
import time

from core.config import get_settings
from core.jobs import DeferredJob, JobName
from workers import queue


async def test_enqueue_to_a_redis_that_never_answers_gives_up_in_bounded_time(monkeypatch):
    accepted: list[asyncio.StreamWriter] = []

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing, keep the connection open

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(get_settings(), "redis_url", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setattr(queue, "_pool", None)
    try:
        started = time.monotonic()
        await asyncio.wait_for(queue.enqueue([DeferredJob(name=JobName.FAN_OUT, args=("x",))]), 10)
        elapsed = time.monotonic() - started
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()
        monkeypatch.setattr(queue, "_pool", None)
    assert accepted, "the client never reached the fake Redis"
    assert elapsed < queue.ENQUEUE_TIMEOUT_SECONDS + 1.0
