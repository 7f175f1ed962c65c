"""The whole pipeline: API → fan-out → send batches → provider emulator → results."""

import json
import uuid

from sqlalchemy import text

from core import clock
from notifications.outbox import MAX_ATTEMPTS
from tests.notifications.conftest import register_devices
from tests.notifications.helpers import broadcast, central_sender, load, notification_body, run_workers
from workers.delivery_jobs import reconcile, send_batch

# A targeted push (one named device), which one sender may send alone (notifications/policy.py).
ONE_DEVICE = {"devices": ["7b0d6a4e-3f7c-4c55-9a57-0c1f3e1b9d21"]}


async def test_breaking_news_reaches_every_device_in_its_language(client, emulator, worker_ctx):
    specs = [("fcm", f"fcm-{i}-{uuid.uuid4().hex}", "en" if i % 2 else "vi") for i in range(14)]
    specs += [("apns", uuid.uuid4().hex * 2, "ru" if i % 2 else "en") for i in range(6)]
    await register_devices(specs)
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)

    await run_workers(worker_ctx)

    notification, deliveries = await load(notification_id)
    assert notification.status == "completed"
    assert (notification.targeted, notification.sent, notification.invalid, notification.failed) == (
        20,
        20,
        0,
        0,
    )
    assert {d.status for d in deliveries} == {"sent"}
    for provider, token, locale in specs:
        records = emulator.log.find(token=token)
        assert len(records) == 1, token
        payload = records[0].as_json()["payload"]
        if provider == "fcm":
            title = payload["message"]["notification"]["title"]
            assert payload["message"]["data"]["notification_id"] == notification_id
        else:
            title = payload["aps"]["alert"]["title"]
            assert payload["notification_id"] == notification_id
        # Russian is not among the texts: the reader gets Vietnamese.
        assert title == ("Breaking news" if locale == "en" else "Tin đặc biệt quan trọng")
    status = await client.get(f"/v1/notifications/{notification_id}", headers=headers)
    assert status.json()["sent"] == 20 and status.json()["pending"] == 0


async def test_dead_tokens_invalidate_the_device_and_are_never_retried(
    client, emulator, worker_ctx, owner_engine
):
    dead = [
        ("fcm", f"unregistered-{uuid.uuid4().hex}", "vi"),
        ("apns", f"unregistered-{uuid.uuid4().hex}", "vi"),
        ("fcm", f"bad-{uuid.uuid4().hex}", "vi"),
        ("fcm", f"mismatch-{uuid.uuid4().hex}", "vi"),
    ]
    alive = [("fcm", f"ok-{uuid.uuid4().hex}", "vi")]
    await register_devices(dead + alive)
    headers = await central_sender(client)
    first = await broadcast(client, headers)
    await run_workers(worker_ctx)
    notification, deliveries = await load(first)
    assert (notification.sent, notification.invalid) == (1, 4)
    assert all(d.attempts == 1 for d in deliveries)
    async with owner_engine.connect() as conn:
        invalidated = (
            await conn.execute(text("SELECT count(*) FROM devices WHERE invalidated_at IS NOT NULL"))
        ).scalar_one()
    assert invalidated == 4
    # A later notification does not even target them.
    second = await broadcast(client, headers, collapse_key="a-2")
    await run_workers(worker_ctx)
    notification, _ = await load(second)
    assert (notification.targeted, notification.sent) == (1, 1)
    assert len(emulator.log.find(token=dead[0][1])) == 1


async def test_quota_retry_after_is_honoured(client, emulator, worker_ctx):
    emulator.faults.update({"retry_after_s": 30})
    token = f"quota-{uuid.uuid4().hex}"
    await register_devices([("fcm", token, "vi")])
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers)
    await run_workers(worker_ctx)
    _, [delivery] = await load(notification_id)
    assert delivery.status == "retrying" and delivery.error_code == "QUOTA_EXCEEDED"
    assert (delivery.next_attempt_at - delivery.updated_at).total_seconds() >= 30
    # Nothing is attempted before the 30 s are up… (the clock is real time plus an offset, so
    # stop a few seconds short: a loaded machine may take a second or two between the steps)
    clock.advance((delivery.next_attempt_at - clock.utcnow()).total_seconds() - 5)
    assert (await send_batch(worker_ctx, notification_id))["claimed"] == 0
    assert len(emulator.log.find(token=token)) == 1
    # …and after them it is.
    clock.advance(6)
    assert (await send_batch(worker_ctx, notification_id))["claimed"] == 1
    assert len(emulator.log.find(token=token)) == 2


async def test_unavailable_storm_gives_up_after_bounded_retries(client, emulator, worker_ctx):
    emulator.faults.update({"outage": True})
    token = f"ok-{uuid.uuid4().hex}"
    await register_devices([("fcm", token, "vi")])
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers, ttl_seconds=7 * 86400)
    await run_workers(worker_ctx)
    for _ in range(MAX_ATTEMPTS + 3):
        clock.advance(3600)
        await send_batch(worker_ctx, notification_id)
    notification, [delivery] = await load(notification_id)
    assert delivery.status == "failed" and delivery.attempts == MAX_ATTEMPTS
    assert delivery.error_code == "UNAVAILABLE:gave_up"
    assert notification.status == "completed" and notification.failed == 1
    assert len(emulator.log.find(token=token)) == MAX_ATTEMPTS


async def test_retries_stop_at_the_notification_ttl(client, emulator, worker_ctx):
    emulator.faults.update({"outage": True})
    await register_devices([("fcm", f"ok-{uuid.uuid4().hex}", "vi")])
    headers = await central_sender(client)
    notification_id = await broadcast(client, headers, ttl_seconds=60)
    await run_workers(worker_ctx)
    clock.advance(120)
    await reconcile(worker_ctx)
    notification, [delivery] = await load(notification_id)
    assert delivery.status == "failed"
    assert notification.status == "completed"


async def test_classified_content_never_leaves_the_service(client, emulator, worker_ctx):
    tokens = [("fcm", f"ok-{uuid.uuid4().hex}", "vi"), ("apns", uuid.uuid4().hex * 2, "en")]
    await register_devices(tokens)
    headers = await central_sender(client)
    secret_title, secret_body = "Nhiệm vụ mật 012_TBKL_NQ57", "Khó khăn: chưa có kinh phí"
    notification_id = await broadcast(
        client,
        headers,
        kind="task.deadline",
        sensitivity="classified",
        title={"vi": secret_title},
        body={"vi": secret_body},
        data={"task_code": "012_TBKL_NQ57"},
        deep_link="chuong-tracking://tasks/012_TBKL_NQ57",
    )
    await run_workers(worker_ctx)
    for _, token, _ in tokens:
        [record] = emulator.log.find(token=token)
        wire = json.dumps(record.as_json(), ensure_ascii=False)
        for secret in (secret_title, secret_body, "012_TBKL_NQ57", "task.deadline"):
            assert secret not in wire
        assert notification_id in wire
        assert "Bạn có thông báo mới" in wire or "You have a new notification" in wire


async def test_oversized_vietnamese_payload_is_rejected_before_queueing(client):
    headers = await central_sender(client)
    # 3,910 characters fit the 4,000-character field, but the diacritics make it ~5,500 bytes.
    body = notification_body(
        title={"vi": "Tin mới"}, body={"vi": "Đảng Cộng sản Việt Nam " * 170}, audience=ONE_DEVICE
    )
    response = await client.post("/v1/notifications", json=body, headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "payload_too_large"
    assert "4096" in error["message"]
    assert {d["language"] for d in error["details"]} == {"vi"}


async def test_idempotency_key(client):
    headers = await central_sender(client)
    keyed = {**headers, "Idempotency-Key": "push-2026-11-22-001"}
    first = await client.post("/v1/notifications", json=notification_body(audience=ONE_DEVICE), headers=keyed)
    again = await client.post("/v1/notifications", json=notification_body(audience=ONE_DEVICE), headers=keyed)
    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    other = await client.post(
        "/v1/notifications", json=notification_body(collapse_key="other", audience=ONE_DEVICE), headers=keyed
    )
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"


async def test_concurrent_requests_with_one_idempotency_key(client):
    import asyncio

    headers = {**await central_sender(client), "Idempotency-Key": "concurrent-1"}
    responses = await asyncio.gather(
        *(
            client.post("/v1/notifications", json=notification_body(audience=ONE_DEVICE), headers=headers)
            for _ in range(4)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(202) == 1
    assert set(codes) <= {202, 200, 409}
    ids = {r.json()["id"] for r in responses if r.status_code in (200, 202)}
    assert len(ids) == 1
