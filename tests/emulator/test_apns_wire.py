"""APNs on the wire, frame by frame: what aioapns depends on and what Apple validates."""

from __future__ import annotations

import time
import uuid

import jwt
import orjson
import pytest

from emulator import Emulator
from emulator.clients import generate_apns_signing_key
from emulator.tls import client_ssl_context

from .h2_probe import ProbeResponse, h2_exchange

SIGNING_KEY = generate_apns_signing_key()
PAYLOAD = orjson.dumps({"aps": {"alert": "Xin chào"}})


def _provider_token(issued_at: float | None = None) -> str:
    claims = {"iss": "TEAMID1234", "iat": int(issued_at or time.time())}
    return jwt.encode(claims, SIGNING_KEY, algorithm="ES256", headers={"kid": "KEYID12345"})


def _headers(
    token: str = "device-1", overrides: dict[str, str | None] | None = None
) -> list[tuple[str, str]]:
    headers: dict[str, str | None] = {
        ":method": "POST",
        ":scheme": "https",
        ":path": f"/3/device/{token}",
        ":authority": "api.push.apple.com",
        "apns-id": str(uuid.uuid4()),
        "apns-topic": "vn.chuong.app",
        "apns-push-type": "alert",
        "authorization": f"bearer {_provider_token()}",
    }
    headers.update(overrides or {})
    return [(name, value) for name, value in headers.items() if value is not None]


async def _exchange(
    emulator: Emulator, headers: list[tuple[str, str]], body: bytes = PAYLOAD
) -> ProbeResponse:
    context = client_ssl_context(emulator.ca_path, alpn=["h2"])
    return await h2_exchange(emulator.client_host, emulator.apns_port, context, headers, body)


async def test_success_is_headers_with_end_stream_and_no_data_frame(emulator: Emulator) -> None:
    headers = _headers()

    response = await _exchange(emulator, headers)

    assert response.status == 200
    assert response.ended_with_headers
    assert response.data_frames == []
    assert response.headers["apns-id"] == dict(headers)["apns-id"]


async def test_error_is_headers_plus_exactly_one_json_data_frame(emulator: Emulator) -> None:
    response = await _exchange(emulator, _headers("bad-token"))

    assert response.status == 400
    assert not response.ended_with_headers
    assert len(response.data_frames) == 1
    assert orjson.loads(response.data_frames[0]) == {"reason": "BadDeviceToken"}


async def test_missing_apns_id_gets_a_generated_one(emulator: Emulator) -> None:
    response = await _exchange(emulator, _headers(overrides={"apns-id": None}))

    assert response.status == 200
    assert uuid.UUID(response.headers["apns-id"])


async def test_quota_reply_has_retry_after(emulator: Emulator) -> None:
    emulator.faults.update({"retry_after_s": 9})

    response = await _exchange(emulator, _headers("quota-1"))

    assert (response.status, response.headers["retry-after"]) == (429, "9")


@pytest.mark.parametrize(
    ("overrides", "status", "reason"),
    [
        ({"apns-topic": None}, 400, "MissingTopic"),
        ({"authorization": None}, 403, "MissingProviderToken"),
        ({"authorization": "bearer not-a-jwt"}, 403, "InvalidProviderToken"),
        ({"authorization": f"bearer {_provider_token(time.time() - 7200)}"}, 403, "ExpiredProviderToken"),
        ({"authorization": f"bearer {_provider_token(time.time() + 7200)}"}, 403, "InvalidProviderToken"),
        ({"apns-priority": "7"}, 400, "BadPriority"),
        ({"apns-push-type": "shout"}, 400, "InvalidPushType"),
        ({"apns-expiration": "tomorrow"}, 400, "BadExpirationDate"),
        ({"apns-collapse-id": "x" * 65}, 400, "BadCollapseId"),
        ({"apns-id": "not-a-uuid"}, 400, "BadMessageId"),
        ({":method": "GET"}, 405, "MethodNotAllowed"),
        ({":path": "/3/devices/x"}, 404, "BadPath"),
    ],
)
async def test_header_validation_answers_apples_reason(
    emulator: Emulator, overrides: dict[str, str | None], status: int, reason: str
) -> None:
    response = await _exchange(emulator, _headers(overrides=overrides))

    assert response.status == status
    assert orjson.loads(response.data_frames[0])["reason"] == reason


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"", 400, "PayloadEmpty"),
        (b"[1, 2]", 400, "BadPayload"),
        (b'{"alert": "no aps"}', 400, "BadPayload"),
        (b"{not json", 400, "BadPayload"),
        (orjson.dumps({"aps": {}, "pad": "x" * 4096}), 413, "PayloadTooLarge"),
    ],
)
async def test_payload_validation(emulator: Emulator, body: bytes, status: int, reason: str) -> None:
    response = await _exchange(emulator, _headers(), body)

    assert response.status == status
    assert orjson.loads(response.data_frames[0])["reason"] == reason


async def test_voip_pushes_may_use_5120_bytes(emulator: Emulator) -> None:
    body = orjson.dumps({"aps": {}, "pad": "x" * 4500})

    response = await _exchange(emulator, _headers(overrides={"apns-push-type": "voip"}), body)

    assert response.status == 200


async def test_outage_answers_503_service_unavailable(emulator: Emulator) -> None:
    emulator.faults.update({"outage": True})

    response = await _exchange(emulator, _headers())

    assert response.status == 503
    assert orjson.loads(response.data_frames[0]) == {"reason": "ServiceUnavailable"}
