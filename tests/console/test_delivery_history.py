"""The delivery chart's stored history: sent / failed / invalid and received / opened bucketed
over time from the timestamps the pipeline keeps, adding up to the totals, drawn on page load."""

from __future__ import annotations

import re
import uuid

import httpx
import orjson
from sqlalchemy import select

from auth.roles import Role
from core import clock
from core.db import transaction
from news.models import NewsItem
from notifications import stats as notification_stats
from notifications.models import Notification
from notifications.schemas import NotificationStatsOut
from tests.console.support import console_sign_in
from tests.notifications.helpers import broadcast, central_sender, run_workers
from tests.support.factories import make_account, make_unit

SERIES = ("sent", "failed", "invalid", "received", "opened")


async def reader_device(client: httpx.AsyncClient, *, platform: str, token: str) -> dict[str, str]:
    """An anonymous portal reader's device; returns its credential headers."""
    response = await client.post(
        "/v1/devices", json={"app": "portal", "platform": platform, "token": token, "locale": "vi"}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['device_credential']}"}


async def readers(client: httpx.AsyncClient) -> list[dict[str, str]]:
    # What each device answers is set by its token's prefix (emulator/faults.py).
    plan = [("android", f"ok-{uuid.uuid4().hex}") for _ in range(4)]
    plan += [
        ("android", f"unregistered-{uuid.uuid4().hex}"),
        ("android", f"invalid-message-{uuid.uuid4().hex}"),
    ]
    plan += [("ios", uuid.uuid4().hex * 2) for _ in range(2)]
    return [await reader_device(client, platform=p, token=t) for p, t in plan]


async def report(
    client: httpx.AsyncClient, notification_id: object, device: dict[str, str], event: str
) -> None:
    answer = await client.post(f"/v1/inbox/{notification_id}/receipts", json={"event": event}, headers=device)
    assert answer.status_code == 200, answer.text


async def history(
    notification_id: object, **kwargs: int
) -> tuple[notification_stats.DeliveryHistory, NotificationStatsOut]:
    async with transaction() as session:
        notification = await session.get(Notification, uuid.UUID(str(notification_id)))
        assert notification is not None
        found = await notification_stats.history_of(session, notification=notification, **kwargs)
        stats = await notification_stats.stats_of(session, notification=notification)
        return found, stats


async def test_buckets_add_up_to_the_totals_in_time_order(client, emulator, worker_ctx):
    devices = await readers(client)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers, priority="normal")
    before, _ = await history(notification_id)
    assert before.buckets == [] and before.totals() == dict.fromkeys(SERIES, 0)  # nothing settled yet

    await run_workers(worker_ctx)
    clock.advance(120)
    await report(client, notification_id, devices[0], "received")
    await report(client, notification_id, devices[1], "opened")  # opened implies received
    clock.advance(1000)
    await report(client, notification_id, devices[2], "received")
    await report(client, notification_id, devices[6], "opened")
    await report(client, notification_id, devices[6], "opened")  # idempotent

    found, stats = await history(notification_id)
    totals = stats.totals
    expected = {name: getattr(totals, name) for name in SERIES}
    assert expected == {"sent": 6, "failed": 1, "invalid": 1, "received": 4, "opened": 2}
    assert found.totals() == expected
    assert len(found.buckets) == notification_stats.HISTORY_BUCKETS
    assert found.buckets[0].start == found.start == stats.created_at
    span = (found.end - found.start).total_seconds()
    assert 1120 <= span < 1200 and abs(found.bucket_seconds * len(found.buckets) - span) < 1e-3

    def indexes(name: str) -> list[int]:
        return [i for i, b in enumerate(found.buckets) if getattr(b, name)]

    # Sends land in the first buckets; the receipts 2 and 19 minutes later, in order.
    assert max(indexes("sent") + indexes("failed") + indexes("invalid")) < min(indexes("received"))
    assert indexes("received")[-1] == indexes("opened")[-1] == len(found.buckets) - 1
    received_early = indexes("received")[0]
    assert found.buckets[received_early].received == 2 and 5 <= received_early <= 8

    coarse, _ = await history(notification_id, max_buckets=7)
    assert len(coarse.buckets) == 7 and coarse.totals() == expected


def publish_form(token: str, action: str) -> dict[str, str]:
    return {
        "csrf_token": token,
        "article_id": "a-9",
        "deep_link": "chuong-portal://article/9",
        "title_vi": "Tin khẩn",
        "body_vi": "Nội dung",
        "title_en": "Urgent",
        "body_en": "Body",
        "ttl_hours": "6",
        "action": action,
    }


async def test_the_delivery_view_draws_the_stored_history_on_load(console, client, app, emulator, worker_ctx):
    devices = await readers(client)
    unit = await make_unit()
    editor = await make_account(role=Role.EDITOR, unit=unit)
    publisher = await make_account(role=Role.PUBLISHER, unit=unit)
    token = await console_sign_in(console, editor)
    created = await console.post("/console/news/new", data=publish_form(token, "submit"))
    assert created.status_code == 303
    item_path = created.headers["location"]
    transport = httpx.ASGITransport(app=app, client=("203.0.113.25", 52005))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as desk:
        desk_token = await console_sign_in(desk, publisher)
        approved = await desk.post(
            f"{item_path}/approve", data={"csrf_token": desk_token, "totp_code": publisher.code()}
        )
        assert approved.status_code == 303
        delivery_path = approved.headers["location"]
        await run_workers(worker_ctx)
        async with transaction() as session:
            item_id = uuid.UUID(item_path.rsplit("/", 1)[-1])
            nid = (
                await session.execute(select(NewsItem.notification_id).where(NewsItem.id == item_id))
            ).scalar_one()
        clock.advance(60)
        await report(client, nid, devices[0], "opened")
        await report(client, nid, devices[3], "received")

        page = await desk.get(delivery_path)
        assert page.status_code == 200
        assert "<script>" not in page.text  # only <script src=…>: the CSP allows nothing inline
        found, stats = await history(nid)
        attribute = re.search(r'data-history="([^"]*)"', page.text)
        assert attribute
        data = orjson.loads(attribute.group(1).replace("&#34;", '"').replace("&quot;", '"'))
        last = data["samples"][-1]
        assert {name: last[name] for name in SERIES} == {name: getattr(stats.totals, name) for name in SERIES}
        assert last["sent"] == 6 and last["received"] == 2 and last["opened"] == 1
        assert len(data["samples"]) == len(found.buckets) <= notification_stats.HISTORY_BUCKETS
        polylines = dict(re.findall(r'<polyline class="(\w+)" points="([^"]+)"', page.text))
        assert set(polylines) == set(SERIES)
        # The cumulative sent line ends at 6 of 8 targeted: 160 - 6/8 × 160 = 40.
        assert polylines["sent"].split()[-1] == "600.0,40.0"
        table = re.search(r'data-testid="delivery-history">(.*?)</table>', page.text, re.S)
        assert table
        for name in SERIES:
            cells = re.findall(rf'<td data-series="{name}">(\d+)</td>', table.group(1))
            assert sum(map(int, cells)) == getattr(stats.totals, name), name
