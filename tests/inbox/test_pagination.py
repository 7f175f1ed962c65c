"""The merged inbox (own items + broadcasts) paginates by an opaque keyset cursor on
(created_at, notification id): pages never skip or repeat, even while items keep arriving."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from core import clock
from tests.inbox.helpers import insert_notification, signed_in
from tests.support.factories import make_unit


async def test_pages_never_skip_or_repeat_while_items_arrive_concurrently(client):
    user = await signed_in(client, unit=await make_unit())
    other = uuid.uuid4()
    base = clock.utcnow() + dt.timedelta(seconds=30)
    existing: list[uuid.UUID] = []
    for index in range(45):
        # Groups of three share one timestamp, so the id breaks ties across both sources.
        created_at = base + dt.timedelta(seconds=index // 3)
        kind = index % 3
        if kind == 0:
            existing.append(await insert_notification(audience={"all": True}, created_at=created_at))
        elif kind == 1:
            existing.append(
                await insert_notification(
                    audience={"users": ["x"]}, readers=[user.reader_id], created_at=created_at
                )
            )
        else:
            existing.append(
                await insert_notification(audience={"topics": ["van-kien"]}, created_at=created_at)
            )  # a topic the user does not follow: never shown
    # Someone else's items are never shown either.
    await insert_notification(audience={"users": ["y"]}, readers=[other], created_at=base)
    expected = {str(n) for i, n in enumerate(existing) if i % 3 != 2}

    async def arrive(step: int) -> None:
        # New items land at the top (newer) and in the middle of what is being paged.
        for offset in (dt.timedelta(minutes=5 + step), dt.timedelta(seconds=7.5)):
            await insert_notification(audience={"all": True}, created_at=base + offset)
            await insert_notification(
                audience={"users": ["x"]}, readers=[user.reader_id], created_at=base + offset
            )

    seen: list[dict] = []
    cursor = None
    step = 0
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        response, _ = await asyncio.gather(
            client.get("/v1/inbox", params=params, headers=user.headers), arrive(step)
        )
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        cursor = response.json()["next_cursor"]
        step += 1
        if cursor is None:
            break
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)), "an item was repeated"
    assert expected <= set(ids), f"skipped: {expected - set(ids)}"
    positions = [(dt.datetime.fromisoformat(item["created_at"]), uuid.UUID(item["id"])) for item in seen]
    assert positions == sorted(positions, reverse=True)
    # 30 visible items at 4 a page need 8 pages; how many arrivals land in pages not yet read
    # depends on scheduling, so only the lower bound is certain.
    assert step >= 8


async def test_the_cursor_is_opaque_and_stable(client):
    user = await signed_in(client, unit=await make_unit())
    base = clock.utcnow() + dt.timedelta(seconds=30)
    for index in range(5):
        await insert_notification(audience={"all": True}, created_at=base + dt.timedelta(seconds=index))
    first = (await client.get("/v1/inbox", params={"limit": 2}, headers=user.headers)).json()
    cursor = first["next_cursor"]
    assert cursor and "inbox" not in cursor
    again = (
        await client.get("/v1/inbox", params={"limit": 2, "cursor": cursor}, headers=user.headers)
    ).json()
    twice = (
        await client.get("/v1/inbox", params={"limit": 2, "cursor": cursor}, headers=user.headers)
    ).json()
    assert again == twice
    assert {i["id"] for i in again["items"]}.isdisjoint({i["id"] for i in first["items"]})
