"""The real aioapns client (token auth, ES256 p8 key) against the emulator."""

from __future__ import annotations

import asyncio
import time

import pytest
from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult

from emulator import Emulator

VIETNAMESE = "Nhắc việc: báo cáo tiến độ nhiệm vụ 012_TBKL_NQ57 sắp đến hạn. "


def _request(token: str, **kwargs) -> NotificationRequest:
    return NotificationRequest(device_token=token, message={"aps": {"alert": "Xin chào"}}, **kwargs)


async def _send(client: APNs, request: NotificationRequest) -> NotificationResult:
    # A hang is the failure mode aioapns shows for a malformed reply; fail instead.
    return await asyncio.wait_for(client.send_notification(request), timeout=20)


async def test_success_echoes_apns_id_and_records_headers(emulator: Emulator, apns_client: APNs) -> None:
    request = _request(
        "a1b2c3",
        priority=10,
        push_type=PushType.ALERT,
        collapse_key="task-012",
        time_to_live=3600,
    )

    result = await _send(apns_client, request)

    assert result.is_successful
    assert result.notification_id == request.notification_id
    [record] = emulator.log.find(token="a1b2c3")
    headers = dict(record.headers or ())
    assert headers["apns-id"] == request.notification_id
    assert headers["apns-topic"] == "vn.chuong.app"
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-collapse-id"] == "task-012"
    assert int(headers["apns-expiration"]) > time.time()
    assert record.as_json()["payload"] == {"aps": {"alert": "Xin chào"}}


@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("unregistered-1", "410", "Unregistered"),
        ("bad-1", "400", "BadDeviceToken"),
        ("quota-1", "429", "TooManyRequests"),
        ("unavailable-1", "503", "ServiceUnavailable"),
        ("internal-1", "500", "InternalServerError"),
        ("mismatch-1", "400", "DeviceTokenNotForTopic"),
        ("third-party-auth-1", "403", "InvalidProviderToken"),
        ("invalid-message-1", "400", "BadExpirationDate"),
    ],
)
async def test_token_prefix_produces_apples_status_and_reason(
    apns_client: APNs, token: str, status: str, reason: str
) -> None:
    result = await _send(apns_client, _request(token))

    assert not result.is_successful
    assert result.status == status
    assert result.description == reason


async def test_unregistered_carries_a_millisecond_timestamp(apns_client: APNs) -> None:
    before_ms = int(time.time() * 1000)

    result = await _send(apns_client, _request("unregistered-2"))

    assert result.timestamp is not None
    assert result.timestamp >= before_ms


async def test_payload_over_4096_bytes_is_413_payload_too_large(
    emulator: Emulator, apns_client: APNs
) -> None:
    alert = VIETNAMESE * 50
    assert len(alert) < 4096 < len(alert.encode())
    request = NotificationRequest(device_token="big-1", message={"aps": {"alert": alert}})

    result = await _send(apns_client, request)

    assert (result.status, result.description) == ("413", "PayloadTooLarge")


async def test_collapse_id_over_64_bytes_is_rejected(apns_client: APNs) -> None:
    result = await _send(apns_client, _request("collapse-1", collapse_key="nhiệm-vụ-" * 8))

    assert (result.status, result.description) == ("400", "BadCollapseId")


async def test_many_concurrent_notifications_all_succeed(emulator: Emulator, apns_client: APNs) -> None:
    requests = [_request(f"bulk-{index}") for index in range(1000)]

    results = await asyncio.wait_for(
        asyncio.gather(*(apns_client.send_notification(request) for request in requests)), timeout=120
    )

    assert all(result.is_successful for result in results)
    assert {result.notification_id for result in results} == {request.notification_id for request in requests}
    assert emulator.control.stats()["apns"]["outcomes"] == {"ok": 1000}
