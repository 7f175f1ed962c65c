"""``GET /v1/notifications/{id}/progress``: snapshots while the notification is being sent, woken
through Redis pub/sub when batches are recorded, and a final event with the full stats."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from auth.roles import Role
from core import pubsub
from core.config import get_settings
from core.streams import StreamEvent
from notifications import stats
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, run_workers
from tests.support.factories import make_account, make_unit, sign_in

SSE = {"Accept": "text/event-stream"}


def parse(body: str) -> list[dict]:
    frames = []
    for block in body.split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in block.splitlines())
        if "event" in fields:
            frames.append({"event": fields["event"], "data": json.loads(fields["data"])})
    return frames


async def next_frame(stream: AsyncIterator[StreamEvent]) -> dict:
    """The next event the domain yields (api/sse.py puts it on the wire); fails fast instead of
    hanging."""
    event = await asyncio.wait_for(anext(stream), timeout=10)
    return {"event": event.name, "data": event.data}


async def queued_notification(client, devices: int = 6) -> tuple[str, dict[str, str]]:
    await register_devices(
        [("fcm", f"ok-{uuid.uuid4().hex}", "vi" if i % 2 else "en") for i in range(devices)]
        + [("apns", uuid.uuid4().hex * 2, "vi")]
    )
    headers = await central_sender(client)
    created = await broadcast(client, headers)
    return created, headers


async def test_batches_recorded_wake_the_stream_and_it_ends_with_the_full_stats(
    client, worker_ctx, monkeypatch
):
    # Periodic snapshots so rare that only a pub/sub wake-up can deliver the next one in time.
    monkeypatch.setattr(stats, "SNAPSHOT_SECONDS", 60.0)
    monkeypatch.setattr(stats, "MIN_GAP_SECONDS", 0.0)
    notification_id, _ = await queued_notification(client)
    stream = stats.progress_stream(uuid.UUID(notification_id))
    try:
        first = await next_frame(stream)
        assert first["event"] == "progress"
        assert first["data"]["status"] == "queued" and first["data"]["finished"] is False

        await run_workers(worker_ctx)
        await pubsub.drain()

        frames = [await next_frame(stream)]
        while frames[-1]["event"] != "final":
            frames.append(await next_frame(stream))
        final = frames[-1]["data"]
        assert final["status"] == "completed"
        assert final["totals"]["targeted"] == final["totals"]["sent"] == 7
        assert final["by_platform"]["android"]["sent"] == 6 and final["by_platform"]["ios"]["sent"] == 1
        assert final["by_language"]["en"]["targeted"] == 3 and final["by_language"]["vi"]["targeted"] == 4
        assert final["seconds_to_first_request"] is not None
        with pytest.raises(StopAsyncIteration):
            await anext(stream)  # the stream ends after the final event
    finally:
        await stream.aclose()


async def test_periodic_snapshots_without_redis(client, worker_ctx, monkeypatch):
    """Redis unreachable for the stream: it falls back to polling and still finishes."""
    monkeypatch.setattr(stats, "SNAPSHOT_SECONDS", 0.05)
    notification_id, _ = await queued_notification(client, devices=2)
    stream = stats.progress_stream(uuid.UUID(notification_id))
    try:
        with monkeypatch.context() as patch:  # only the stream's own connection (made first)
            patch.setattr(get_settings(), "redis_url", "redis://127.0.0.1:1/0")
            snapshots = [await next_frame(stream) for _ in range(3)]
        assert [frame["event"] for frame in snapshots] == ["progress"] * 3
        await run_workers(worker_ctx)
        frame = await next_frame(stream)
        while frame["event"] == "progress":
            frame = await next_frame(stream)
        assert frame["event"] == "final" and frame["data"]["totals"]["sent"] == 3
    finally:
        await stream.aclose()


async def test_the_endpoint_streams_progress_then_final(client, worker_ctx, monkeypatch):
    monkeypatch.setattr(stats, "SNAPSHOT_SECONDS", 0.05)
    notification_id, headers = await queued_notification(client, devices=3)

    response, _ = await asyncio.gather(
        client.get(f"/v1/notifications/{notification_id}/progress", headers=headers | SSE),
        run_workers(worker_ctx),
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse(response.text)
    assert frames[0]["event"] == "progress"
    assert [frame["event"] for frame in frames].count("final") == 1 and frames[-1]["event"] == "final"
    assert frames[-1]["data"]["totals"]["sent"] == 4
    sent_over_time = [frame["data"]["sent"] for frame in frames if frame["event"] == "progress"]
    assert sent_over_time == sorted(sent_over_time)  # progress never goes backwards

    # A finished notification answers with its final event at once.
    again = await client.get(f"/v1/notifications/{notification_id}/progress", headers=headers | SSE)
    assert [frame["event"] for frame in parse(again.text)] == ["final"]


async def test_progress_has_the_same_authorisation_as_the_notification(client):
    notification_id, headers = await queued_notification(client, devices=1)
    outsider = await sign_in(client, await make_account(role=Role.PUBLISHER, unit=await make_unit()))
    for path in (
        f"/v1/notifications/{notification_id}/progress",
        f"/v1/notifications/{uuid.uuid4()}/progress",
    ):
        answer = await client.get(path, headers=outsider | SSE)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert (await client.get(f"/v1/notifications/{notification_id}/progress", headers=SSE)).status_code == 401
    refused = await client.get(f"/v1/notifications/{notification_id}/progress", headers=headers)
    assert refused.status_code == 406 and refused.json()["error"]["code"] == "not_acceptable"
