"""FCM HTTP v1 on the wire: error JSON shape, validation, auth, HTTP/1.1 and HTTP/2 on one port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from emulator import Emulator
from emulator.clients import fcm_send_url
from emulator.tls import client_ssl_context

AUTH = {"Authorization": "Bearer test-token"}


@pytest.fixture
async def h2_client(emulator: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(http2=True, verify=client_ssl_context(emulator.ca_path)) as client:
        yield client


async def _send(client: httpx.AsyncClient, emulator: Emulator, body: Any, headers=AUTH) -> httpx.Response:
    return await client.post(fcm_send_url(emulator.fcm_url), json=body, headers=headers)


async def test_unregistered_error_has_googles_exact_shape(emulator: Emulator, h2_client) -> None:
    response = await _send(h2_client, emulator, {"message": {"token": "unregistered-x"}})

    assert response.http_version == "HTTP/2"
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}
            ],
        }
    }


async def test_quota_answer_is_429_with_retry_after(emulator: Emulator, h2_client) -> None:
    response = await _send(h2_client, emulator, {"message": {"token": "quota-x"}})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"


async def test_missing_bearer_token_is_401_unauthenticated(emulator: Emulator, h2_client) -> None:
    response = await _send(h2_client, emulator, {"message": {"token": "t"}}, headers={})

    assert response.status_code == 401
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"
    assert emulator.log.find(token="t")[0].outcome == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"token": "a", "topic": "news"}, "message"),
        ({}, "message"),
        ({"token": "a", "colour": "red"}, "message"),
        ({"token": "a", "data": {"count": 3}}, "message.data[0].value"),
        ({"token": "a", "data": {"google.key": "x"}}, "message.data.google.key"),
        ({"token": "a", "notification": {"title": "t", "sound": "x"}}, "message.notification"),
        ({"token": "a", "android": {"priority": "urgent"}}, "message.android.priority"),
        ({"token": "a", "android": {"ttl": "1 hour"}}, "message.android.ttl"),
        ({"token": "a", "apns": {"payload": {"aps": "alert"}}}, "message.apns.payload.aps"),
        ({"token": "a", "webpush": {"headers": {"TTL": 60}}}, "message.webpush.headers[0].value"),
        ({"token": ""}, "message.token"),
    ],
)
async def test_invalid_message_is_400_invalid_argument_naming_the_field(
    emulator: Emulator, h2_client, message: dict[str, Any], field: str
) -> None:
    response = await _send(h2_client, emulator, {"message": message})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["details"][0]["errorCode"] == "INVALID_ARGUMENT"
    assert error["details"][1]["fieldViolations"][0]["field"] == field


async def test_topic_and_condition_targets_are_recorded_with_a_prefix(emulator: Emulator, h2_client) -> None:
    await _send(h2_client, emulator, {"message": {"topic": "news"}})
    await _send(h2_client, emulator, {"message": {"condition": "'a' in topics"}})

    assert emulator.log.find(token="topic:news")[0].outcome == "ok"
    assert emulator.log.find(token="condition:'a' in topics")[0].outcome == "ok"


async def test_unknown_path_is_404(emulator: Emulator, h2_client) -> None:
    response = await h2_client.post(f"{emulator.fcm_url}/v1/projects/p/unknown", json={}, headers=AUTH)

    assert response.status_code == 404


async def test_oauth_token_endpoint_on_the_fcm_port(emulator: Emulator, h2_client) -> None:
    response = await h2_client.post(
        f"{emulator.fcm_url}/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "x.y.z"},
    )

    document = response.json()
    assert response.status_code == 200
    assert document["expires_in"] == 3600
    assert document["token_type"] == "Bearer"
    assert document["access_token"]


async def test_aiohttp_http1_keep_alive_post_to_the_fcm_endpoint(emulator: Emulator) -> None:
    opened_before = emulator.log.stats.protocols["fcm:http/1.1"]
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(emulator.ca_path), limit=1)
    async with aiohttp.ClientSession(connector=connector) as session:
        for index in range(3):
            async with session.post(
                fcm_send_url(emulator.fcm_url), json={"message": {"token": f"h1-{index}"}}, headers=AUTH
            ) as response:
                assert response.status == 200
                assert response.version == aiohttp.HttpVersion11
                assert (await response.json())["name"].startswith("projects/chuong-emulator/messages/")

    assert emulator.log.stats.protocols["fcm:http/1.1"] == opened_before + 1
    assert [record.protocol for record in emulator.log.find(provider="fcm")] == ["http/1.1"] * 3


async def test_http1_chunked_request_body_is_accepted(emulator: Emulator) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"message": {"token": '
        yield b'"chunked-1"}}'

    connector = aiohttp.TCPConnector(ssl=client_ssl_context(emulator.ca_path))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(fcm_send_url(emulator.fcm_url), data=chunks(), headers=AUTH) as response,
    ):
        assert response.status == 200

    assert emulator.log.find(token="chunked-1")[0].outcome == "ok"


async def test_http1_pipelined_replies_keep_request_order_despite_latency(emulator: Emulator) -> None:
    emulator.faults.update({"slow_latency_ms": 200})
    context = client_ssl_context(emulator.ca_path, alpn=["http/1.1"])
    reader, writer = await asyncio.open_connection(emulator.client_host, emulator.fcm_port, ssl=context)
    requests = b""
    for token in ("slow-first", "second"):
        body = orjson.dumps({"message": {"token": token}})
        requests += (
            f"POST /v1/projects/p/messages:send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
    writer.write(requests)  # both at once: pipelined

    replies = []
    for _ in range(2):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        replies.append(orjson.loads(await reader.readexactly(length)))
    writer.close()

    names = [reply["name"] for reply in replies]
    [first] = emulator.log.find(token="slow-first")
    [second] = emulator.log.find(token="second")
    assert names == [f"projects/p/messages/{first.message_id}", f"projects/p/messages/{second.message_id}"]
