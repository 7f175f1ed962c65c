"""`python -m emulator` as its own process: start-up line, real clients, OAuth, shutdown.

Also the home of the service-account test: firebase-admin's async path refreshes OAuth
tokens with blocking `requests` calls inside the event loop, so an emulator sharing that
loop could never answer; in production the worker's loop stalls for that round trip.
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys

import aiohttp
from aioapns import NotificationRequest
from firebase_admin import credentials, messaging

from emulator.clients import (
    apns_client_for_emulator,
    close_firebase_app,
    firebase_app_for_emulator,
    service_account_info_for_emulator,
)
from emulator.server import READY_PREFIX

from .conftest import EmulatorProcess


async def test_service_account_credentials_get_their_token_from_the_emulator(
    emulator_process: EmulatorProcess,
) -> None:
    info = service_account_info_for_emulator(token_uri=emulator_process.token_uri)
    app = firebase_app_for_emulator(
        fcm_url=emulator_process.fcm_url,
        ca_path=emulator_process.ca_path,
        credential=credentials.Certificate(info),
    )
    try:
        batch = await messaging.send_each_async([messaging.Message(fid="sa-device")], app=app)
        sync_id = await asyncio.to_thread(messaging.send, messaging.Message(fid="sa-sync"), app=app)
    finally:
        await close_firebase_app(app)

    assert batch.success_count == 1
    assert sync_id.startswith("projects/chuong-emulator/messages/")
    async with aiohttp.ClientSession(base_url=emulator_process.control_url) as control:
        async with control.get("/stats") as response:
            stats = await response.json()
        async with control.get("/messages", params={"token": "sa-device"}) as response:
            [record] = (await response.json())["messages"]
    assert stats["oauth_tokens_issued"] >= 1
    assert record["outcome"] == "ok"


async def test_aioapns_reaches_the_emulator_process(emulator_process: EmulatorProcess) -> None:
    client = apns_client_for_emulator(
        host=emulator_process.apns_host, port=emulator_process.apns_port, ca_path=emulator_process.ca_path
    )
    try:
        result = await client.send_notification(
            NotificationRequest(device_token="process-device", message={"aps": {"alert": "xin chào"}})
        )
    finally:
        client.pool.close()

    assert result.is_successful


async def test_ca_file_is_written_and_served(emulator_process: EmulatorProcess) -> None:
    async with (
        aiohttp.ClientSession(base_url=emulator_process.control_url) as control,
        control.get("/ca.pem") as response,
    ):
        served = await response.read()

    assert served == emulator_process.ca_path.read_bytes()
    assert served.startswith(b"-----BEGIN CERTIFICATE-----")


async def test_sigterm_stops_the_process_cleanly(tmp_path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--fcm-port=0",
        "--apns-port=0",
        "--control-port=0",
        f"--ca-path={tmp_path / 'ca.pem'}",
        "--no-record",
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.decode().startswith(READY_PREFIX)

    process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(process.wait(), timeout=30) == 0


async def test_a_wildcard_bind_advertises_the_name_other_containers_dial(tmp_path) -> None:
    # docker-compose's emulator profile: bound to every address, dialled as "emulator" by the app
    # containers; here "localhost" stands in for the service name.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulator", "--host=0.0.0.0", "--advertise-host=localhost",
        "--fcm-port=0", "--apns-port=0", "--control-port=0", f"--ca-path={tmp_path / 'ca.pem'}",
        f"--credentials-dir={tmp_path / 'credentials'}", "--no-record",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=60)).decode()
        addresses = json.loads(line[len(READY_PREFIX) :])
        assert addresses["fcm_url"].startswith("https://localhost:")
        assert addresses["apns_host"] == "localhost"
        account = json.loads((tmp_path / "credentials" / "fcm-service-account.json").read_text())
        assert account["token_uri"].startswith("http://localhost:")
        # The certificate names the advertised host: TLS with hostname checking succeeds.
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        _, writer = await asyncio.open_connection("localhost", addresses["apns_port"], ssl=context)
        writer.close()
        await writer.wait_closed()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=30)
