"""aioapns 4.0 never returns HTTP/2 flow-control credit for DATA it receives. Only error
replies carry DATA, so after ~2,400 error replies (27 bytes each against a 64 KiB window)
on one connection the server may not send any more of them: the connection stalls until
aioapns' inactivity timer closes it and the pool re-sends what was stuck. The emulator
honours flow control as Apple does, so it shows this; these tests pin both the library
behaviour (if aioapns fixes it, the first test fails and the workaround can go) and the fix
in the APNs provider (`notifications.providers.apns_client.with_flow_control_fix`)."""

from __future__ import annotations

import asyncio

import pytest
from aioapns import NotificationRequest

from emulator import Emulator
from emulator.clients import apns_client_for_emulator

pytestmark = pytest.mark.slow

ERROR_REPLIES = 3000  # x 27 bytes of {"reason":"BadDeviceToken"} > 65,535


async def _send_bad_tokens(client) -> list[str | None]:
    requests = [
        NotificationRequest(device_token=f"bad-{index}", message={"aps": {"alert": "x"}})
        for index in range(ERROR_REPLIES)
    ]
    results = await asyncio.wait_for(
        asyncio.gather(*(client.send_notification(request) for request in requests)), timeout=120
    )
    return [result.description for result in results]


async def test_unpatched_aioapns_stalls_and_resends_after_64_kib_of_error_replies(emulator: Emulator) -> None:
    client = apns_client_for_emulator(
        host=emulator.client_host, port=emulator.apns_port, ca_path=emulator.ca_path, max_connections=1
    )
    # Shorten the 10 s stall: the class is the emulator subclass, not aioapns' own.
    client.pool.protocol_class.INACTIVITY_TIME = 1
    connections_before = emulator.log.stats.protocols["apns:h2"]
    try:
        descriptions = await _send_bad_tokens(client)
    finally:
        client.pool.close()

    assert set(descriptions) == {"BadDeviceToken"}
    assert emulator.log.stats.protocols["apns:h2"] - connections_before >= 2
    # Requests whose replies were stuck behind the exhausted window were sent again.
    assert emulator.control.stats()["apns"]["received"] > ERROR_REPLIES


async def test_flow_control_fix_keeps_one_connection_and_sends_each_request_once(emulator: Emulator) -> None:
    client = apns_client_for_emulator(
        host=emulator.client_host,
        port=emulator.apns_port,
        ca_path=emulator.ca_path,
        max_connections=1,
        fix_flow_control=True,
    )
    connections_before = emulator.log.stats.protocols["apns:h2"]
    try:
        descriptions = await _send_bad_tokens(client)
    finally:
        client.pool.close()

    assert set(descriptions) == {"BadDeviceToken"}
    assert emulator.log.stats.protocols["apns:h2"] - connections_before == 1
    assert emulator.control.stats()["apns"]["received"] == ERROR_REPLIES
