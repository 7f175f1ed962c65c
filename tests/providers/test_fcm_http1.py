"""fcm_http1 specifics: the firebase-admin internals it borrows, its request bodies, and how it
gets and refreshes OAuth tokens without blocking the event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from typing import Any

import httpx
import orjson
import pytest
from firebase_admin import _http_client, credentials, exceptions, messaging

from emulator import Emulator
from emulator.clients import (
    StaticTokenCredentials,
    close_firebase_app,
    firebase_app_for_emulator,
    service_account_info_for_emulator,
)
from emulator.tls import client_ssl_context
from notifications.payloads import fcm_message, render
from notifications.providers.base import Outcome, PushRequest
from notifications.providers.fcm_http1 import FcmHttp1Provider, encode_bodies
from tests.providers.test_fcm_transports import SPECS, requests_for, unique

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def provider_for(emulator: Emulator, credential: Any) -> FcmHttp1Provider:
    app = firebase_app_for_emulator(fcm_url=emulator.fcm_url, ca_path=emulator.ca_path, credential=credential)
    return FcmHttp1Provider(app, ssl_context=client_ssl_context(emulator.ca_path), max_in_flight=10)


async def test_firebase_admin_internals_are_where_fcm_http1_expects(emulator: Emulator) -> None:
    app = firebase_app_for_emulator(fcm_url=emulator.fcm_url, ca_path=emulator.ca_path)
    try:
        service = messaging._get_messaging_service(app)
        assert service._fcm_url == f"{emulator.fcm_url}/v1/projects/chuong-emulator/messages:send"
        assert isinstance(service._credential, StaticTokenCredentials)
        assert set(service._fcm_headers) == {"X-GOOG-API-FORMAT-VERSION", "X-FIREBASE-CLIENT"}
        assert set(_http_client.METRICS_HEADERS) == {"x-goog-api-client"}
        request = httpx.Request("POST", service._fcm_url)
        answer = httpx.Response(
            429,
            headers={"retry-after": "9"},
            json={
                "error": {
                    "status": "RESOURCE_EXHAUSTED",
                    "message": "slow down",
                    "details": [{"@type": FCM_ERROR, "errorCode": "QUOTA_EXCEEDED"}],
                }
            },
            request=request,
        )
        error = service._handle_fcm_httpx_error(httpx.HTTPStatusError("x", request=request, response=answer))
        assert type(error) is messaging.QuotaExceededError
        assert str(error) == "slow down"
        assert error.http_response.headers["retry-after"] == "9"
        assert type(service._handle_fcm_httpx_error(httpx.ConnectError("x"))) is exceptions.UnavailableError
        assert (
            type(service._handle_fcm_httpx_error(httpx.ReadTimeout("x"))) is exceptions.DeadlineExceededError
        )
        assert (
            type(service._handle_fcm_httpx_error(httpx.RemoteProtocolError("x"))) is exceptions.UnknownError
        )
    finally:
        await close_firebase_app(app)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("silent", [False, True])
def test_request_bodies_mean_what_firebase_admin_encodes(spec_name: str, silent: bool) -> None:
    spec = SPECS[spec_name]
    tokens = ["plain", 'with "quotes" and \\ backslash', "unicode-ệ-\u2028", "x" * 300]
    requests = [
        PushRequest(token=t, spec=spec, push=render(spec, language, visible_generic_alert=not silent))
        for t in tokens
        for language in ("vi", "en")
    ]

    bodies = encode_bodies(requests)

    for request, body in zip(requests, bodies, strict=True):
        assert isinstance(body, bytes)
        expected = messaging._MessagingService.encode_message(
            fcm_message(request.spec, request.push, token=request.token)
        )
        assert orjson.loads(body) == {"message": expected}


def test_an_empty_token_is_answered_without_a_request() -> None:
    [body] = encode_bodies(requests_for([""]))

    assert not isinstance(body, bytes)
    assert (body.outcome, body.error_code) == (Outcome.INVALID_TOKEN, "INVALID_ARGUMENT")


class CountingCredentials(StaticTokenCredentials):
    """Hands out "token-N", valid for an hour; records which thread refreshed it."""

    def __init__(
        self,
        *,
        token: str | None,
        expiry: dt.datetime | None,
        refresh_seconds: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self.token, self.expiry = token, expiry
        self.refresh_seconds = refresh_seconds
        self.gate = gate  # when given, a refresh waits for it
        self.refresh_threads: list[int] = []

    def refresh(self, request: Any) -> None:
        threading.Event().wait(self.refresh_seconds)  # a slow token endpoint
        if self.gate is not None:
            assert self.gate.wait(10)
        self.refresh_threads.append(threading.get_ident())
        self.token = f"token-{len(self.refresh_threads)}"
        self.expiry = utcnow() + dt.timedelta(hours=1)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)  # google-auth keeps naive UTC


async def ticks_while(awaitable: Any) -> tuple[Any, int]:
    """Run `awaitable` while counting 10 ms ticks of the loop: a blocked loop counts none."""
    count = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal count
        while not done.is_set():
            await asyncio.sleep(0.01)
            count += 1

    task = asyncio.create_task(ticker())
    try:
        return await awaitable, count
    finally:
        done.set()
        await task


async def test_a_missing_token_is_fetched_in_a_thread_without_blocking_the_loop(emulator: Emulator) -> None:
    credential = CountingCredentials(token=None, expiry=None, refresh_seconds=0.3)
    provider = provider_for(emulator, credential)
    try:
        [result], ticks = await ticks_while(provider.send(requests_for([unique()])))
        [again] = await provider.send(requests_for([unique()]))
    finally:
        await provider.close()

    assert result.outcome is again.outcome is Outcome.ACCEPTED
    assert len(credential.refresh_threads) == 1
    assert credential.refresh_threads[0] != threading.get_ident()
    assert ticks >= 10


async def test_an_expired_token_is_refreshed_once_for_concurrent_batches(emulator: Emulator) -> None:
    credential = CountingCredentials(
        token="old", expiry=utcnow() - dt.timedelta(seconds=1), refresh_seconds=0.1
    )
    provider = provider_for(emulator, credential)
    try:
        batches = await asyncio.gather(*(provider.send(requests_for([unique()])) for _ in range(5)))
    finally:
        await provider.close()

    assert {r.outcome for [r] in batches} == {Outcome.ACCEPTED}
    assert len(credential.refresh_threads) == 1


async def test_a_token_near_expiry_is_refreshed_in_the_background(emulator: Emulator) -> None:
    gate = threading.Event()
    credential = CountingCredentials(token="stale", expiry=utcnow() + dt.timedelta(minutes=1), gate=gate)
    provider = provider_for(emulator, credential)
    try:
        # The refresh is held at the gate, so this returns only if it did not wait for it.
        [result] = await asyncio.wait_for(provider.send(requests_for([unique()])), 5)
        assert credential.refresh_threads == []
        gate.set()
        for _ in range(250):
            if credential.refresh_threads:
                break
            await asyncio.sleep(0.02)
        [later] = await provider.send(requests_for([unique()]))
    finally:
        gate.set()
        await provider.close()

    assert result.outcome is later.outcome is Outcome.ACCEPTED
    assert len(credential.refresh_threads) == 1
    assert credential.token == "token-1"


async def test_a_refused_token_is_refreshed_and_the_message_sent_again(emulator: Emulator) -> None:
    credential = CountingCredentials(token="", expiry=None)  # never expires, yet FCM says 401
    provider = provider_for(emulator, credential)
    token = unique()
    try:
        [result] = await provider.send(requests_for([token]))
    finally:
        await provider.close()

    assert result.outcome is Outcome.ACCEPTED
    assert len(credential.refresh_threads) == 1
    assert [r.outcome for r in emulator.log.find(token=token)] == ["UNAUTHENTICATED", "ok"]


async def test_third_party_auth_errors_do_not_refresh_our_token(emulator: Emulator) -> None:
    credential = CountingCredentials(token="good", expiry=None)
    provider = provider_for(emulator, credential)
    token = unique("third-party-auth")
    try:
        [result] = await provider.send(requests_for([token]))
    finally:
        await provider.close()

    # The sender's APNs key, not the device: retried until an operator fixes it, never failed.
    assert (result.outcome, result.error_code) == (Outcome.RETRY, "THIRD_PARTY_AUTH_ERROR")
    assert credential.refresh_threads == []
    assert len(emulator.log.find(token=token)) == 1


async def test_service_account_tokens_come_from_the_oauth_endpoint_once(emulator: Emulator) -> None:
    info = service_account_info_for_emulator(token_uri=emulator.token_uri)
    provider = provider_for(emulator, credentials.Certificate(info))
    try:
        first = await provider.send(requests_for([unique() for _ in range(20)]))
        second = await provider.send(requests_for([unique() for _ in range(20)]))
    finally:
        await provider.close()

    assert {r.outcome for r in first + second} == {Outcome.ACCEPTED}
    assert emulator.log.stats.oauth_tokens_issued == 1


class BrokenCredentials(CountingCredentials):
    def refresh(self, request: Any) -> None:
        self.refresh_threads.append(threading.get_ident())
        raise OSError("token endpoint unreachable")


async def test_no_token_at_all_retries_the_whole_batch_later(emulator: Emulator) -> None:
    credential = BrokenCredentials(token=None, expiry=None)
    provider = provider_for(emulator, credential)
    try:
        results = await provider.send(requests_for([unique() for _ in range(3)]))
    finally:
        await provider.close()

    assert {(r.outcome, r.error_code) for r in results} == {(Outcome.RETRY, "auth:OSError")}
    assert emulator.log.stats.outcomes == {}


async def test_a_refused_token_that_cannot_be_refreshed_is_retried_later(emulator: Emulator) -> None:
    credential = BrokenCredentials(token="", expiry=None)
    provider = provider_for(emulator, credential)
    token = unique()
    try:
        [result] = await provider.send(requests_for([token]))
    finally:
        await provider.close()

    # Our credential, not the device: the push waits for a working token instead of failing.
    assert (result.outcome, result.error_code) == (Outcome.RETRY, "UNAUTHENTICATED")
    assert len(credential.refresh_threads) == 1
    assert len(emulator.log.find(token=token)) == 1
