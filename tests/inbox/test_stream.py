"""``GET /v1/inbox/stream``: live items and read-state changes through Redis pub/sub,
heartbeats, and replay from PostgreSQL on reconnect with Last-Event-ID."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from core import clock, pubsub
from inbox import events
from inbox import stream as inbox_stream
from inbox.queries import encode_cursor
from tests.inbox.helpers import anonymous_device, insert_notification, send, signed_in
from tests.notifications.helpers import central_sender
from tests.support.factories import make_unit

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(autouse=True)
def _short_streams(monkeypatch):
    monkeypatch.setattr(inbox_stream, "MAX_STREAM_SECONDS", 5.0)  # room for the sends under a parallel run
    monkeypatch.setattr(inbox_stream, "HEARTBEAT_SECONDS", 0.3)


def parse(body: str) -> list[dict]:
    frames = []
    for block in body.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields:
            frames.append(
                {"event": fields["event"], "id": fields.get("id"), "data": json.loads(fields["data"])}
            )
        elif fields:
            frames.append({"event": "comment" if "" in fields else "retry", "data": fields})
    return frames


async def test_live_items_and_read_changes_reach_the_stream(client):
    sender = await central_sender(client)
    user = await signed_in(client, unit=await make_unit(), topics=["van-kien"])

    async def act() -> tuple[str, str, str]:
        await asyncio.sleep(0.4)
        broadcast = await send(client, sender, audience={"topics": ["van-kien"]})
        await send(client, sender, audience={"topics": ["tu-lieu"]}, collapse_key="other")  # not followed
        targeted = await send(client, sender, app="tracking", audience={"users": [str(user.reader_id)]})
        await client.post(f"/v1/inbox/{broadcast}/read", headers=user.headers)
        await pubsub.drain()
        return broadcast, targeted, ""

    response, (broadcast, targeted, _) = await asyncio.gather(
        client.get("/v1/inbox/stream", headers=user.headers | SSE), act()
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse(response.text)
    named = [(f["event"], f["data"].get("id")) for f in frames if f["event"] not in ("comment", "retry")]
    assert named[0] == ("unread", None)
    assert [n for n in named if n[0] != "unread"] == [
        ("item", broadcast),
        ("item", targeted),
        ("read", broadcast),
    ]
    item_frames = [f for f in frames if f["event"] == "item"]
    assert all(f["id"] for f in item_frames)
    assert any(f["event"] == "comment" for f in frames), "no heartbeat"


async def test_reconnecting_with_last_event_id_replays_what_was_missed(client):
    device = await anonymous_device(client)
    base = clock.utcnow() + dt.timedelta(seconds=30)
    ids = [
        await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(seconds=i))
        for i in range(4)
    ]
    # The client saw the oldest item live; an item event's id is the item's cursor.
    last_event_id = encode_cursor((base, ids[0]))
    listed = (await client.get("/v1/inbox", params={"cursor": last_event_id}, headers=device.headers)).json()
    assert listed["items"] == []  # nothing older: the cursor is the oldest item's

    response = await client.get(
        "/v1/inbox/stream", headers=device.headers | SSE | {"Last-Event-ID": last_event_id}
    )
    frames = [f for f in parse(response.text) if f["event"] in ("item", "unread")]
    assert [f["data"].get("id") for f in frames if f["event"] == "item"] == [str(i) for i in ids[1:]]
    assert frames[-1] == {"event": "unread", "id": None, "data": {"unread": 4}}


async def test_a_stream_needs_accept_event_stream_and_a_valid_last_event_id(client):
    device = await anonymous_device(client)
    response = await client.get("/v1/inbox/stream", headers=device.headers)
    assert response.status_code == 406 and response.json()["error"]["code"] == "not_acceptable"
    bad = await client.get("/v1/inbox/stream", headers=device.headers | SSE | {"Last-Event-ID": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"


async def test_a_revoked_session_ends_its_open_stream_before_any_further_item(client):
    """Revocation is immediate (D-23) for a stream too: it outlives the request that opened it,
    so the credentials are checked again before each frame that carries data."""
    sender = await central_sender(client)
    user = await signed_in(client, unit=await make_unit(), portal_locale=None)

    async def act() -> str:
        await asyncio.sleep(0.3)
        assert (await client.post("/v1/auth/logout", headers=user.headers)).status_code == 204
        private = await send(client, sender, app="tracking", audience={"users": [str(user.reader_id)]})
        await pubsub.drain()
        return private

    response, private = await asyncio.gather(
        client.get("/v1/inbox/stream", headers=user.headers | SSE), act()
    )
    frames = parse(response.text)
    assert not [f for f in frames if f["event"] == "item"], "an item reached a revoked session"
    assert [f["data"] for f in frames if f["event"] == "ended"] == [{"reason": "credentials_ended"}]
    assert private not in response.text


async def test_a_retired_device_credential_ends_its_open_stream(client, redis):
    device = await anonymous_device(client)

    async def act() -> None:
        await asyncio.sleep(0.3)
        deleted = await client.delete(f"/v1/devices/{device.reader_id}", headers=device.headers)
        assert deleted.status_code == 204
        private = await insert_notification(
            audience={"devices": [str(device.reader_id)]}, readers=[device.reader_id]
        )
        # The event a targeted push publishes for its reader.
        await redis.publish(
            events.reader_channel(device.reader_id), json.dumps({"type": "item", "id": str(private)})
        )

    response, _ = await asyncio.gather(client.get("/v1/inbox/stream", headers=device.headers | SSE), act())
    frames = parse(response.text)
    assert not [f for f in frames if f["event"] == "item"]
    assert [f["data"] for f in frames if f["event"] == "ended"] == [{"reason": "credentials_ended"}]


async def test_a_reader_holds_a_bounded_number_of_open_streams(client, monkeypatch):
    """Each stream holds a socket and a Redis connection: a reader (or a script with one device
    credential) cannot open them without bound (found in the issue 12 §5 class hunt)."""
    from core.config import get_settings

    monkeypatch.setattr(get_settings(), "inbox_streams_per_reader", 2)
    device = await anonymous_device(client)
    other = await anonymous_device(client)

    async def open_stream(caller):
        return await client.get("/v1/inbox/stream", headers=caller.headers | SSE)

    async def third_and_other():
        await asyncio.sleep(0.3)  # while the first two are open
        return await open_stream(device), await open_stream(other)

    first, second, (third, elsewhere) = await asyncio.gather(
        open_stream(device), open_stream(device), third_and_other()
    )
    assert first.status_code == second.status_code == 200
    assert third.status_code == 429, third.text
    assert third.json()["error"]["code"] == "too_many_streams" and third.headers["retry-after"]
    assert elsewhere.status_code == 200  # another reader's budget is its own
    # Closed streams give their slots back.
    assert (await open_stream(device)).status_code == 200


async def test_a_client_that_drops_its_stream_gives_its_slot_back_at_once(app, client, monkeypatch):
    """Found in the issue-13 SSE review: a dropped connection cancelled the stream's clean-up
    half-way, so the slot stayed taken until it expired (5 minutes): a reader who reloaded the
    page a few times was refused with 429. Through a real server, as a browser drops it."""
    import httpx

    from core.config import get_settings
    from tests.support.live_server import serve

    monkeypatch.setattr(inbox_stream, "MAX_STREAM_SECONDS", 60.0)
    monkeypatch.setattr(get_settings(), "inbox_streams_per_reader", 1)
    device = await anonymous_device(client)

    async def open_and_drop(browser: httpx.AsyncClient) -> int:
        async with browser.stream("GET", "/v1/inbox/stream", headers=device.headers | SSE) as response:
            if response.status_code != 200:
                return response.status_code
            async for line in response.aiter_lines():
                if line.startswith("event: unread"):
                    break  # the stream is live: now drop the connection
            return 200

    async with serve(app) as live, httpx.AsyncClient(base_url=live, timeout=10) as browser:
        for reload in range(3):  # one slot serves every reload, once the server saw the drop
            for _ in range(30):
                status = await open_and_drop(browser)
                if status != 429:
                    break
                await asyncio.sleep(0.1)
            assert status == 200, f"reload {reload}: the dropped stream still holds its slot"
