"""The real firebase-admin (messaging.send_each_async over httpx HTTP/2, messaging.send over
requests HTTP/1.1) against the emulator: successes, every fault prefix, payload limits."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from firebase_admin import exceptions, messaging

from emulator import Emulator
from emulator.clients import close_firebase_app, firebase_app_for_emulator

VIETNAMESE = "Thông báo khẩn: Hội nghị Trung ương lần thứ mười bốn khai mạc tại Hà Nội. "


async def test_send_each_async_delivers_and_records_the_payload(emulator: Emulator, firebase_app) -> None:
    message = messaging.Message(
        fid="device-a",
        data={"notification_id": "42", "kind": "breaking"},
        notification=messaging.Notification(title="Tin đặc biệt", body=VIETNAMESE),
        android=messaging.AndroidConfig(priority="high", ttl=3600, collapse_key="news"),
        apns=messaging.APNSConfig(payload=messaging.APNSPayload(aps=messaging.Aps(badge=1))),
    )

    batch = await messaging.send_each_async([message], app=firebase_app)

    assert batch.success_count == 1
    message_id = batch.responses[0].message_id
    assert message_id.startswith("projects/chuong-emulator/messages/0:")
    [record] = emulator.log.find(token="device-a")
    assert record.provider == "fcm"
    assert record.outcome == "ok"
    assert record.protocol == "h2"
    assert message_id.endswith(record.message_id)
    payload = record.as_json()["payload"]["message"]
    assert payload["data"] == {"notification_id": "42", "kind": "breaking"}
    assert payload["notification"]["body"] == VIETNAMESE
    assert payload["android"]["ttl"] == "3600s"


@pytest.mark.filterwarnings("ignore:Message.token is deprecated:DeprecationWarning")
async def test_deprecated_token_target_is_accepted_like_fid(emulator: Emulator, firebase_app) -> None:
    batch = await messaging.send_each_async(
        [messaging.Message(token="registration-token-1", data={"a": "b"})], app=firebase_app
    )

    assert batch.success_count == 1
    assert emulator.log.find(token="registration-token-1")[0].outcome == "ok"


async def test_sync_send_goes_over_http1_and_succeeds(emulator: Emulator, firebase_app) -> None:
    message_id = await asyncio.to_thread(
        messaging.send, messaging.Message(fid="sync-device", data={"x": "1"}), app=firebase_app
    )

    assert message_id.startswith("projects/chuong-emulator/messages/")
    [record] = emulator.log.find(token="sync-device")
    assert record.protocol == "http/1.1"


async def test_sync_send_raises_the_fcm_specific_error(firebase_app) -> None:
    with pytest.raises(messaging.UnregisteredError):
        await asyncio.to_thread(messaging.send, messaging.Message(fid="unregistered-sync"), app=firebase_app)


@pytest.mark.parametrize(
    ("token", "error_type", "status"),
    [
        ("unregistered-1", messaging.UnregisteredError, 404),
        ("bad-1", exceptions.InvalidArgumentError, 400),
        ("quota-1", messaging.QuotaExceededError, 429),
        ("unavailable-1", exceptions.UnavailableError, 503),
        ("internal-1", exceptions.InternalError, 500),
        ("mismatch-1", messaging.SenderIdMismatchError, 403),
        ("third-party-auth-1", messaging.ThirdPartyAuthError, 401),
    ],
)
async def test_token_prefix_produces_the_matching_library_exception(
    emulator: Emulator, firebase_app, token: str, error_type: type[exceptions.FirebaseError], status: int
) -> None:
    batch = await messaging.send_each_async([messaging.Message(fid=token)], app=firebase_app)

    [response] = batch.responses
    assert not response.success
    assert type(response.exception) is error_type
    assert response.exception.http_response.status_code == status


async def test_quota_error_carries_retry_after(emulator: Emulator, firebase_app) -> None:
    emulator.faults.update({"retry_after_s": 17})

    batch = await messaging.send_each_async([messaging.Message(fid="quota-2")], app=firebase_app)

    assert batch.responses[0].exception.http_response.headers["retry-after"] == "17"


async def test_slow_prefix_delays_but_succeeds(emulator: Emulator, firebase_app) -> None:
    emulator.faults.update({"slow_latency_ms": 300})
    loop = asyncio.get_running_loop()
    started = loop.time()

    batch = await messaging.send_each_async([messaging.Message(fid="slow-1")], app=firebase_app)

    assert batch.success_count == 1
    assert loop.time() - started >= 0.29


async def test_payload_over_4096_utf8_bytes_is_rejected(emulator: Emulator, firebase_app) -> None:
    # ~1,500 characters but ~1.3 bytes each in UTF-8: 2,000 bytes when ASCII-counted, over
    # 4,096 once diacritics are counted as FCM counts them.
    body = VIETNAMESE * 50
    assert len(body) < 4096 < len(body.encode())
    too_big = messaging.Message(fid="big-1", notification=messaging.Notification(title="x", body=body))

    batch = await messaging.send_each_async([too_big], app=firebase_app)

    assert type(batch.responses[0].exception) is exceptions.InvalidArgumentError
    assert "too big" in str(batch.responses[0].exception)
    assert emulator.log.find(token="big-1")[0].outcome == "INVALID_ARGUMENT"


async def test_payload_at_the_limit_is_accepted_and_one_byte_more_is_not(firebase_app) -> None:
    # The size FCM counts is the message JSON without the target; "ệ" is 3 bytes in UTF-8.
    overhead = len(orjson.dumps({"data": {"k": ""}}))
    letters, remainder = divmod(4096 - overhead, 3)
    at_limit = "ệ" * letters + "a" * remainder
    messages = [
        messaging.Message(fid="edge-1", data={"k": at_limit}),
        messaging.Message(fid="edge-2", data={"k": at_limit + "a"}),
    ]

    batch = await messaging.send_each_async(messages, app=firebase_app)

    assert batch.responses[0].success
    assert type(batch.responses[1].exception) is exceptions.InvalidArgumentError


async def test_dry_run_validates_without_delivering(emulator: Emulator, firebase_app) -> None:
    batch = await messaging.send_each_async([messaging.Message(fid="dry-1")], dry_run=True, app=firebase_app)

    assert batch.responses[0].message_id == "projects/chuong-emulator/messages/fake_message_id"
    assert emulator.log.find(token="dry-1")[0].outcome == "validate_only"


async def test_500_messages_in_one_batch_respect_100_concurrent_streams(
    emulator: Emulator, firebase_app
) -> None:
    # Latency keeps streams open long enough (the client needs ~0.1 s to open 100) for the
    # client to stack up against the advertised limit of 100.
    emulator.faults.update({"latency_ms": 300})
    messages = [messaging.Message(fid=f"bulk-{index}", data={"i": str(index)}) for index in range(500)]

    batch = await messaging.send_each_async(messages, app=firebase_app)

    assert batch.success_count == 500
    stats = emulator.control.stats()
    assert stats["fcm"]["outcomes"] == {"ok": 500}
    assert stats["h2_streams"]["peak_per_connection"] == 100


async def test_two_batches_in_parallel_hold_200_concurrent_streams(emulator: Emulator) -> None:
    emulator.faults.update({"latency_ms": 300})
    apps = [firebase_app_for_emulator(fcm_url=emulator.fcm_url, ca_path=emulator.ca_path) for _ in range(2)]
    try:
        batches = await asyncio.gather(
            *(
                messaging.send_each_async(
                    [messaging.Message(fid=f"par-{n}-{index}") for index in range(500)], app=app
                )
                for n, app in enumerate(apps)
            )
        )
    finally:
        for app in apps:
            await close_firebase_app(app)

    assert [batch.success_count for batch in batches] == [500, 500]
    streams = emulator.control.stats()["h2_streams"]
    # The cap holds; a loaded machine may open the last stream only after the first one closed.
    assert 90 <= streams["peak_per_connection"] <= 100
    assert streams["peak_in_flight"] > 100
