"""The configuration that aims firebase-admin and aioapns at the emulator relies on library
internals (listed in emulator/clients.py). These tests pin them: an upgrade that moves
them must fail here, not silently send to Google or Apple."""

from __future__ import annotations

import asyncio
import ssl
import uuid

import firebase_admin
import httpx
import pytest
import requests
from aioapns import APNs, NotificationRequest
from aioapns.connection import APNsProductionClientProtocol, APNsTLSClientProtocol
from aioapns.exceptions import MaxAttemptsExceeded
from firebase_admin import _http_client, exceptions, messaging
from firebase_admin._retry import HttpxRetry, HttpxRetryTransport

from emulator import Emulator
from emulator.clients import (
    EmulatorOverrideError,
    StaticTokenCredentials,
    close_firebase_app,
    firebase_app_for_emulator,
    generate_apns_signing_key,
    point_apns_at_emulator,
    point_messaging_at_emulator,
)
from emulator.tls import client_ssl_context
from notifications.providers.apns_client import with_flow_control_fix


@pytest.fixture
async def plain_firebase_app():
    app = firebase_admin.initialize_app(
        StaticTokenCredentials(), options={"projectId": "plain"}, name=f"plain-{uuid.uuid4().hex}"
    )
    yield app
    await close_firebase_app(app)


def test_firebase_messaging_internals_are_where_the_override_expects(plain_firebase_app) -> None:
    service = messaging._get_messaging_service(plain_firebase_app)

    assert service._fcm_url == "https://fcm.googleapis.com/v1/projects/plain/messages:send"
    assert service._fcm_topic_url.startswith("https://fcm.googleapis.com/")
    assert isinstance(service._client.session, requests.Session)
    assert isinstance(service._async_client, _http_client.HttpxAsyncClient)
    assert isinstance(service._async_client._async_client, httpx.AsyncClient)
    assert isinstance(service._async_client._mounts["https://"], HttpxRetryTransport)
    assert {"x-goog-api-client"} <= set(service._async_client._headers)


def test_httpx_retry_transport_passes_our_ssl_context_to_httpx(emulator: Emulator) -> None:
    context = client_ssl_context(emulator.ca_path)

    transport = HttpxRetryTransport(retry=HttpxRetry(max_retries=0), verify=context)

    assert transport._wrapped_transport._pool._ssl_context is context


async def test_override_rewrites_urls_and_trust_of_both_clients(emulator: Emulator, firebase_app) -> None:
    service = messaging._get_messaging_service(firebase_app)

    assert service._fcm_url == f"{emulator.fcm_url}/v1/projects/chuong-emulator/messages:send"
    assert service._fcm_topic_url.startswith(emulator.fcm_url)
    assert service._client.session.verify == str(emulator.ca_path)
    assert service._client.session.trust_env is False
    transport = service._async_client._async_client._transport_for_url(httpx.URL(service._fcm_url))
    assert isinstance(transport, HttpxRetryTransport)
    context = transport._wrapped_transport._pool._ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED


async def test_without_the_emulator_ca_the_async_client_refuses_the_emulator(
    emulator: Emulator, plain_firebase_app
) -> None:
    # Only the URL redirected, trust left alone: TLS verification must fail. This is what
    # guards against an override that "works" by disabling verification.
    service = messaging._get_messaging_service(plain_firebase_app)
    service._fcm_url = f"{emulator.fcm_url}/v1/projects/plain/messages:send"

    batch = await messaging.send_each_async([messaging.Message(fid="x")], app=plain_firebase_app)

    error = batch.responses[0].exception
    assert type(error) is exceptions.UnavailableError
    assert isinstance(error.cause, httpx.ConnectError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error.cause)
    assert emulator.log.find(token="x") == []


def test_override_fails_loudly_when_firebase_internals_move(
    emulator: Emulator, plain_firebase_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = messaging._get_messaging_service(plain_firebase_app)
    monkeypatch.delattr(service, "_fcm_url")

    with pytest.raises(EmulatorOverrideError, match="_fcm_url"):
        point_messaging_at_emulator(plain_firebase_app, fcm_url=emulator.fcm_url, ca_path=emulator.ca_path)


def test_override_fails_loudly_when_the_async_client_type_changes(
    emulator: Emulator, plain_firebase_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = messaging._get_messaging_service(plain_firebase_app)
    monkeypatch.setattr(service, "_async_client", object())

    with pytest.raises(EmulatorOverrideError, match="HttpxAsyncClient"):
        point_messaging_at_emulator(plain_firebase_app, fcm_url=emulator.fcm_url, ca_path=emulator.ca_path)


async def test_firebase_app_helper_with_default_retries_still_reaches_the_emulator(
    emulator: Emulator,
) -> None:
    app = firebase_app_for_emulator(fcm_url=emulator.fcm_url, ca_path=emulator.ca_path)
    try:
        batch = await messaging.send_each_async([messaging.Message(fid="default-retry")], app=app)
    finally:
        await close_firebase_app(app)

    assert batch.success_count == 1


async def test_aioapns_pool_dials_the_protocol_class_address(emulator: Emulator, apns_client: APNs) -> None:
    protocol_class = apns_client.pool.protocol_class

    assert issubclass(protocol_class, APNsProductionClientProtocol)
    dialled = (protocol_class.APNS_SERVER, protocol_class.APNS_PORT)
    assert dialled == (emulator.client_host, emulator.apns_port)
    result = await apns_client.send_notification(
        NotificationRequest(device_token="override-1", message={"aps": {"alert": "x"}})
    )
    assert result.is_successful
    assert emulator.log.find(token="override-1")[0].provider == "apns"


async def test_aioapns_without_the_emulator_ca_cannot_connect(emulator: Emulator) -> None:
    client = APNs(
        key=generate_apns_signing_key(),
        key_id="K",
        team_id="T",
        topic="vn.chuong.app",
        max_connection_attempts=1,
        ssl_context=ssl.create_default_context(),
    )
    point_apns_at_emulator(client, host=emulator.client_host, port=emulator.apns_port)

    with pytest.raises(MaxAttemptsExceeded):
        await asyncio.wait_for(
            client.send_notification(NotificationRequest(device_token="x", message={"aps": {}})), timeout=30
        )
    assert emulator.log.find(token="x") == []


def test_apns_override_fails_loudly_when_the_pool_moves() -> None:
    class NotAClient:
        pool = object()

    with pytest.raises(EmulatorOverrideError):
        point_apns_at_emulator(NotAClient(), host="127.0.0.1", port=1)  # type: ignore[arg-type]


def test_flow_control_fix_is_a_subclass_overriding_on_data_received() -> None:
    fixed = with_flow_control_fix(APNsProductionClientProtocol)

    assert issubclass(fixed, APNsProductionClientProtocol)
    assert issubclass(fixed, APNsTLSClientProtocol)
    assert fixed.on_data_received is not APNsProductionClientProtocol.on_data_received


def test_hpack_huffman_cache_is_installed_where_hpacks_decoder_looks(emulator: Emulator) -> None:
    # The running emulator installed it; decoding through hpack must give the same bytes.
    import hpack.hpack
    from hpack import Decoder, Encoder
    from hpack.huffman_table import decode_huffman as uncached

    assert vars(hpack.hpack)["decode_huffman"] is not uncached
    header = (b"authorization", b"Bearer ya29.a0Af" + b"x" * 180)
    encoded = Encoder().encode([header], huffman=True)
    assert [tuple(decoded) for decoded in Decoder().decode(encoded, raw=True)] == [header]
