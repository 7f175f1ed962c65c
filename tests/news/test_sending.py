"""From approval to phones, through the real fan-out, outbox and provider emulator: language
policies, audience filters, cancel mid-send, recall, and counters that add up."""

import asyncio
import uuid

import pytest

from core.db import transaction
from devices.models import Device
from notifications import fanout
from tests.news.helpers import apns, approve, fcm, make_desk, news_item, readers, submitted
from tests.notifications.helpers import load, run_workers
from workers.delivery_jobs import fan_out, send_batch
from workers.news_jobs import news_tick


def title_of(record) -> str | None:
    payload = record.as_json()["payload"]
    if record.provider == "fcm":
        notification = payload["message"].get("notification")
        return notification["title"] if notification else None
    alert = payload["aps"].get("alert")
    return alert["title"] if alert else None


async def send_now(client, desk, **overrides) -> dict:
    item_id = await submitted(client, desk, **overrides)
    response = await approve(client, desk, item_id)
    assert response.status_code == 200, response.text
    return response.json()


def assert_adds_up(stats: dict) -> None:
    parts = stats["sent"] + stats["invalid"] + stats["failed"] + stats["cancelled"] + stats["pending"]
    assert stats["targeted"] == parts, stats


async def test_followers_get_their_language_with_vi_fallback_and_others_get_nothing(
    client, emulator, worker_ctx
):
    vi, en, ru = fcm(2, "vi"), fcm(1, "en"), apns(1, "ru")
    await readers(vi + en + ru, topics=["van-kien"])
    elsewhere = fcm(2, "vi")
    await readers(elsewhere, topics=["tu-lieu-hoc-tap"])
    desk = await make_desk(client)
    item = await send_now(client, desk, audience={"sections": ["van-kien"]})
    await run_workers(worker_ctx)

    for _, token, locale in vi + en + ru:
        [record] = emulator.log.find(token=token)
        assert title_of(record) == ("Breaking news" if locale == "en" else "Tin đặc biệt quan trọng")
    for _, token, _ in elsewhere:
        assert emulator.log.find(token=token) == []
    await news_tick({})
    done = (await client.get(f"/v1/news/{item['id']}", headers=desk.headers["editor"])).json()
    assert done["status"] == "sent"
    assert done["stats"]["targeted"] == done["stats"]["sent"] == 4
    assert_adds_up(done["stats"])


async def test_skip_missing_leaves_out_readers_without_their_language(client, emulator, worker_ctx):
    vi, en, fr = fcm(1, "vi"), apns(1, "en"), fcm(2, "fr")
    await readers(vi + en + fr)
    desk = await make_desk(client)
    item = await send_now(client, desk, language_policy="skip_missing")
    await run_workers(worker_ctx)
    assert all(len(emulator.log.find(token=t)) == 1 for _, t, _ in vi + en)
    assert all(emulator.log.find(token=t) == [] for _, t, _ in fr)
    notification, _ = await load(item["notification_id"])
    assert (notification.targeted, notification.sent) == (2, 2)


async def test_language_province_and_app_version_narrow_the_audience(client, emulator, worker_ctx):
    match = fcm(1, "en")
    await readers(match, province="ha-noi", app_version="2.10.0")
    old_app = fcm(1, "en")
    await readers(old_app, province="ha-noi", app_version="2.9.5")
    other_province = fcm(1, "en")
    await readers(other_province, province="hue", app_version="3.0")
    other_language = fcm(1, "vi")
    await readers(other_language, province="ha-noi", app_version="3.0")
    unknown_version = fcm(1, "en")
    await readers(unknown_version, province="ha-noi")
    desk = await make_desk(client)
    audience = {"all_readers": True, "languages": ["en"], "provinces": ["ha-noi"], "min_app_version": "2.10"}
    await send_now(client, desk, audience=audience)
    await run_workers(worker_ctx)
    assert len(emulator.log.find(token=match[0][1])) == 1
    for group in (old_app, other_province, other_language, unknown_version):
        assert emulator.log.find(token=group[0][1]) == []


async def test_cancel_mid_send_stops_new_provider_requests(client, emulator, worker_ctx, monkeypatch):
    # Batches of 5 instead of 500, so that 20 devices make four batches.
    monkeypatch.setattr(fanout, "PAGE_SIZE", 5)
    devices = fcm(20)
    await readers(devices)
    desk = await make_desk(client)
    item = await send_now(client, desk)
    nid = item["notification_id"]
    await fan_out(worker_ctx, nid)
    # One batch is at the (slow) provider when the editor cancels: its first two chunks (2 + 2
    # of 5, two at a time) are on the wire and finish; its last chunk and the other batches
    # never start.
    emulator.faults.update({"latency_ms": 400})
    in_flight = asyncio.create_task(send_batch(worker_ctx, nid))
    await asyncio.sleep(0.2)
    assert not in_flight.done()
    cancelled = await client.post(
        f"/v1/news/{item['id']}/cancel", headers=desk.headers["editor"], json={"reason": "Sai số liệu"}
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await in_flight)["claimed"] == 4
    requests_at_cancel = len(emulator.log)
    assert requests_at_cancel == 4
    emulator.faults.update({"latency_ms": 0})
    await run_workers(worker_ctx)
    for _ in range(3):
        await send_batch(worker_ctx, nid)
    assert len(emulator.log) == requests_at_cancel

    await news_tick({})
    stats = (await client.get(f"/v1/news/{item['id']}", headers=desk.headers["editor"])).json()["stats"]
    assert stats["notification_status"] == "cancelled"
    assert (stats["targeted"], stats["sent"], stats["cancelled"], stats["pending"]) == (20, 4, 16, 0)
    assert_adds_up(stats)
    assert (await news_item(item["id"])).finished_at is not None
    # A cancelled item cannot be cancelled again, and nothing is left to approve.
    again = await client.post(
        f"/v1/news/{item['id']}/cancel", headers=desk.headers["editor"], json={"reason": "x"}
    )
    assert again.status_code == 409


async def test_cancel_before_release_sends_nothing(client, emulator, worker_ctx):
    await readers(fcm(2))
    desk = await make_desk(client)
    item_id = await submitted(client, desk)
    cancelled = await client.post(
        f"/v1/news/{item_id}/cancel", headers=desk.headers["editor"], json={"reason": "Không cần nữa"}
    )
    assert cancelled.json()["status"] == "cancelled"
    assert (await approve(client, desk, item_id)).status_code == 409
    await run_workers(worker_ctx)
    assert len(emulator.log) == 0


async def test_recall_sends_a_retract_with_the_same_collapse_key_and_withdraws_the_inbox_item(
    client, emulator, worker_ctx
):
    registered = await client.post(
        "/v1/devices",
        json={"app": "portal", "platform": "android", "token": f"ok-{uuid.uuid4().hex}", "locale": "vi"},
    )
    assert registered.status_code == 201
    phone = {"Authorization": f"Bearer {registered.json()['device_credential']}"}
    android_token = await _token(registered.json()["id"])
    iphone = apns(1, "en")
    await readers(iphone)
    late = fcm(1)  # registers after the push: must not get the retract
    desk = await make_desk(client)
    item = await send_now(client, desk, collapse_key="tin-123")
    await run_workers(worker_ctx)
    await readers(late)
    await news_tick({})

    recalled = await client.post(
        f"/v1/news/{item['id']}/recall", headers=desk.headers["publisher"], json={"reason": "Tin sai"}
    )
    assert recalled.status_code == 200, recalled.text
    assert recalled.json()["status"] == "recalled"
    await run_workers(worker_ctx)

    original_id = item["notification_id"]
    [first, retract] = emulator.log.find(token=android_token)
    message = retract.as_json()["payload"]["message"]
    assert message["android"]["collapse_key"] == "tin-123"
    assert first.as_json()["payload"]["message"]["android"]["collapse_key"] == "tin-123"
    assert message["data"]["action"] == "retract" and message["data"]["retracts"] == original_id
    [_, ios_retract] = emulator.log.find(token=iphone[0][1])
    assert ios_retract.as_json()["headers"]["apns-collapse-id"] == "tin-123"
    assert ios_retract.as_json()["payload"]["retracts"] == original_id
    # Data-only: nothing shows on the phone, the app removes the original itself.
    assert "notification" not in message and "notification" not in message["android"]
    aps = ios_retract.as_json()["payload"]["aps"]
    assert aps["content-available"] == 1 and "alert" not in aps and "sound" not in aps
    assert ios_retract.as_json()["headers"]["apns-priority"] == "5"
    assert emulator.log.find(token=late[0][1]) == []

    inbox = (await client.get("/v1/inbox", headers=phone)).json()["items"]
    [entry] = [i for i in inbox if i["id"] == original_id]
    assert entry["withdrawn"] is True and entry["deep_link"] is None
    assert entry["title"] == "Tin này đã được thu hồi"


async def _token(device_id: str) -> str:
    async with transaction() as session:
        device = await session.get(Device, uuid.UUID(device_id))
        assert device is not None
        return device.token


@pytest.mark.parametrize("step", ["recall_without_step_up"])
async def test_recall_needs_a_fresh_step_up(client, redis, step):
    from core import clock

    desk = await make_desk(client)
    item = await send_now(client, desk)
    clock.advance(301)
    stale = await client.post(
        f"/v1/news/{item['id']}/recall", headers=desk.headers["publisher"], json={"reason": "x"}
    )
    assert stale.status_code == 403 and stale.json()["error"]["code"] == "step_up_required"


async def test_cancel_during_fan_out_stops_the_fan_out_too(client, emulator, worker_ctx, monkeypatch):
    monkeypatch.setattr(fanout, "PAGE_SIZE", 5)
    await readers(fcm(20))
    desk = await make_desk(client)
    item = await send_now(client, desk)
    # The approval wrote the first page of deliveries itself; the rest is the fan-out job's.
    notification, deliveries = await load(item["notification_id"])
    assert (notification.targeted, len(deliveries), notification.fanout_done_at) == (5, 5, None)
    cancelled = await client.post(
        f"/v1/news/{item['id']}/cancel", headers=desk.headers["publisher"], json={"reason": "Dừng"}
    )
    assert cancelled.json()["stats"]["cancelled"] == 5
    await run_workers(worker_ctx)
    notification, deliveries = await load(item["notification_id"])
    assert notification.targeted == len(deliveries) == 5
    assert {d.status for d in deliveries} == {"cancelled"}
    assert len(emulator.log) == 0
