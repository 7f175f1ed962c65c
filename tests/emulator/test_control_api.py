"""The control API over plain HTTP/1.1: faults, the message record, counts, reset."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import pytest
from aioapns import APNs, NotificationRequest
from firebase_admin import exceptions, messaging

from emulator import Emulator


async def _put_faults(control: aiohttp.ClientSession, **changes: Any) -> dict[str, Any]:
    async with control.put("/faults", json=changes) as response:
        assert response.status == 200, await response.text()
        settings: dict[str, Any] = await response.json()
        return settings


async def _apns_send(client: APNs, token: str):
    request = NotificationRequest(device_token=token, message={"aps": {"alert": "x"}})
    return await asyncio.wait_for(client.send_notification(request), timeout=20)


async def test_health(control: aiohttp.ClientSession) -> None:
    async with control.get("/health") as response:
        assert await response.json() == {"ok": True}


async def test_outage_makes_both_providers_answer_503(
    control: aiohttp.ClientSession, firebase_app, apns_client: APNs
) -> None:
    await _put_faults(control, outage=True)

    batch = await messaging.send_each_async([messaging.Message(fid="device-1")], app=firebase_app)
    apns_result = await _apns_send(apns_client, "device-1")

    assert type(batch.responses[0].exception) is exceptions.UnavailableError
    assert (apns_result.status, apns_result.description) == ("503", "ServiceUnavailable")

    await _put_faults(control, outage=False)
    batch = await messaging.send_each_async([messaging.Message(fid="device-1")], app=firebase_app)
    assert batch.success_count == 1


async def test_error_rate_one_fails_everything_with_the_chosen_error(
    control: aiohttp.ClientSession, firebase_app, apns_client: APNs
) -> None:
    await _put_faults(control, error_rate=1.0, error_kind="internal")

    batch = await messaging.send_each_async(
        [messaging.Message(fid=f"d-{index}") for index in range(20)], app=firebase_app
    )
    apns_result = await _apns_send(apns_client, "d-apns")

    assert {type(response.exception) for response in batch.responses} == {exceptions.InternalError}
    assert apns_result.description == "InternalServerError"


async def test_partial_error_rate_fails_some_and_passes_others(
    control: aiohttp.ClientSession, firebase_app
) -> None:
    await _put_faults(control, error_rate=0.5, error_kind="unregistered")

    batch = await messaging.send_each_async(
        [messaging.Message(fid=f"d-{index}") for index in range(200)], app=firebase_app
    )

    assert 0 < batch.failure_count < 200
    failures = {type(response.exception) for response in batch.responses if not response.success}
    assert failures == {messaging.UnregisteredError}


async def test_added_latency_delays_answers(control: aiohttp.ClientSession, firebase_app) -> None:
    await _put_faults(control, latency_ms=400)
    loop = asyncio.get_running_loop()
    started = loop.time()

    batch = await messaging.send_each_async([messaging.Message(fid="late-1")], app=firebase_app)

    assert batch.success_count == 1
    assert loop.time() - started >= 0.39


async def test_retry_after_value_is_configurable(control: aiohttp.ClientSession, firebase_app) -> None:
    await _put_faults(control, retry_after_s=42)

    batch = await messaging.send_each_async([messaging.Message(fid="quota-9")], app=firebase_app)

    assert batch.responses[0].exception.http_response.headers["retry-after"] == "42"


async def test_invalid_fault_settings_are_refused_whole(control: aiohttp.ClientSession) -> None:
    for bad in ({"error_rate": 2}, {"error_kind": "gremlins"}, {"outage": "yes"}, {"colour": "red"}):
        async with control.put("/faults", json=bad) as response:
            assert response.status == 400
    async with control.get("/faults") as response:
        settings = await response.json()
    assert settings["error_rate"] == 0.0
    assert settings["outage"] is False


async def test_messages_are_queryable_by_token(
    control: aiohttp.ClientSession, firebase_app, apns_client
) -> None:
    await messaging.send_each_async(
        [messaging.Message(fid="wanted", data={"n": "1"}), messaging.Message(fid="other")], app=firebase_app
    )
    await _apns_send(apns_client, "wanted")

    async with control.get("/messages", params={"token": "wanted"}) as response:
        document = await response.json()

    assert document["count"] == 2
    fcm, apns = document["messages"]
    assert (fcm["provider"], fcm["outcome"], fcm["status"]) == ("fcm", "ok", 200)
    assert fcm["payload"]["message"]["data"] == {"n": "1"}
    assert (apns["provider"], apns["outcome"]) == ("apns", "ok")
    assert apns["headers"]["apns-topic"] == "vn.chuong.app"
    assert apns["payload"] == {"aps": {"alert": "x"}}

    async with control.get("/messages", params={"token": "wanted", "provider": "apns"}) as response:
        assert (await response.json())["count"] == 1


async def test_stats_count_outcomes_per_provider(
    control: aiohttp.ClientSession, firebase_app, apns_client
) -> None:
    await messaging.send_each_async(
        [messaging.Message(fid="a"), messaging.Message(fid="unregistered-b")], app=firebase_app
    )
    await _apns_send(apns_client, "bad-c")

    async with control.get("/stats") as response:
        stats = await response.json()

    assert stats["fcm"] == {"received": 2, "outcomes": {"ok": 1, "UNREGISTERED": 1}}
    assert stats["apns"] == {"received": 1, "outcomes": {"BadDeviceToken": 1}}
    assert stats["record"]["size"] == 3


async def test_delete_messages_clears_record_and_counts(
    emulator: Emulator, control: aiohttp.ClientSession, firebase_app
) -> None:
    await messaging.send_each_async([messaging.Message(fid="a")], app=firebase_app)

    async with control.delete("/messages") as response:
        assert response.status == 200

    assert len(emulator.log) == 0
    assert emulator.control.stats()["fcm"]["received"] == 0


async def test_reset_restores_fault_defaults_and_clears(
    emulator: Emulator, control: aiohttp.ClientSession, firebase_app
) -> None:
    await _put_faults(control, outage=True, latency_ms=10)
    await messaging.send_each_async([messaging.Message(fid="a")], app=firebase_app)

    async with control.post("/reset") as response:
        assert (await response.json())["faults"]["outage"] is False

    assert emulator.faults.settings.latency_ms == 0
    assert len(emulator.log) == 0


async def test_drop_connections_sends_goaway_and_clients_reconnect(
    emulator: Emulator, control: aiohttp.ClientSession, firebase_app
) -> None:
    await messaging.send_each_async([messaging.Message(fid="before")], app=firebase_app)
    opened = emulator.log.stats.protocols["fcm:h2"]

    async with control.post("/drop-connections") as response:
        assert response.status == 200
    batch = await messaging.send_each_async([messaging.Message(fid="after")], app=firebase_app)

    assert batch.success_count == 1
    assert emulator.log.stats.protocols["fcm:h2"] == opened + 1


async def test_oauth_token_endpoint_on_the_control_port(control: aiohttp.ClientSession) -> None:
    async with control.post("/token", data={"grant_type": "client_credentials"}) as response:
        document = await response.json()

    assert document["token_type"] == "Bearer"
    assert document["expires_in"] == 3600


async def test_unknown_route_is_404(control: aiohttp.ClientSession) -> None:
    async with control.get("/nope") as response:
        assert response.status == 404


async def test_reset_connections_cuts_requests_in_flight_with_a_tcp_reset(
    emulator: Emulator, control: aiohttp.ClientSession, apns_client: APNs
) -> None:
    """Unlike GOAWAY, a reset answers nothing: the request was received (and recorded as sent),
    the client only sees its connection reset; the next request reconnects."""
    context = ssl.create_default_context(cafile=str(emulator.ca_path))
    context.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.open_connection(
        emulator.client_host, emulator.fcm_port, ssl=context, server_hostname=emulator.client_host
    )
    body = b'{"message": {"token": "reset-probe", "notification": {"title": "x"}}}'
    await _put_faults(control, latency_ms=5000)
    writer.write(
        b"POST /v1/projects/p/messages:send HTTP/1.1\r\nhost: fcm\r\nauthorization: Bearer t\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    for _ in range(500):
        if emulator.log.find(token="reset-probe"):
            break
        await asyncio.sleep(0.02)
    assert [r.outcome for r in emulator.log.find(token="reset-probe")] == ["ok"]

    async with control.post("/reset-connections") as response:
        assert response.status == 200
        assert await response.json() == {"reset": True}
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), timeout=2)
    writer.close()

    await _put_faults(control, latency_ms=0)
    assert (await _apns_send(apns_client, "a" * 64)).is_successful
    opened = emulator.log.stats.connections_opened
    emulator.reset_connections()
    assert (await _apns_send(apns_client, "b" * 64)).is_successful  # aioapns reconnected
    assert emulator.log.stats.connections_opened > opened
