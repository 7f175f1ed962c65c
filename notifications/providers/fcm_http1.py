"""FCM HTTP v1 over aiohttp HTTP/1.1 keep-alive; firebase-admin does everything but the transport.

Why: `messaging.send_each_async` sends through httpx's pure-Python HTTP/2 stack at ≈1.5 ms of
client CPU per message; aiohttp's C-accelerated HTTP/1.1 costs ≈0.2 ms (docs/benchmarks.md). Everything
that decides *what* goes on the wire and *what an answer means* stays firebase-admin's, so the
two transports are interchangeable (`fcm_transport` setting) and tested against one table.

firebase-admin 7.7 internals used (pinned by tests/providers/test_fcm_http1.py):
- `messaging._get_messaging_service(app)`: `_credential` (google-auth credentials),
  `_fcm_url` (the messages:send URL on the configured `fcm_endpoint`, fcm_app.py; another
  app's project gets the same URL with its project id), `_project_id` and
  `_fcm_headers` (API format version and client id), plus `_http_client.METRICS_HEADERS`;
- `messaging._MessagingService.encode_message`: the message JSON;
- `_MessagingService._handle_fcm_httpx_error`: FCM's error JSON → `UnregisteredError`,
  `QuotaExceededError`, ...; we hand it an `httpx.HTTPStatusError` built from our response, so
  `error.http_response.headers` carries Retry-After exactly as on the stock path.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import firebase_admin
import google.auth.transport.requests
import httpx
import orjson
import yarl
from firebase_admin import _http_client, messaging
from google.auth.credentials import TokenState

from core.logging import get_logger
from notifications.cancellation import stopped
from notifications.payloads import fcm_message
from notifications.providers.base import STOPPED, Outcome, PushRequest, SendResult
from notifications.providers.fcm import classify
from notifications.providers.fcm_app import close_firebase_app, messages_send_url
from notifications.providers.latency import PROVIDER_LATENCY

log = get_logger(__name__)

# Encoded once per (spec, rendered push) with this token, which is then cut out of the JSON.
_PLACEHOLDER = "chuong-token-placeholder"


class AccessToken:
    """The Authorization header from firebase-admin's google-auth credentials.

    google-auth refreshes with blocking `requests` calls; firebase-admin's httpx flow runs them
    on the event loop, stalling every other send. Here a refresh runs in a thread: awaited when
    the token is unusable, started in the background while the old one is still valid (STALE).
    """

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._headers: dict[str, str] | None = None

    async def headers(self) -> dict[str, str]:
        state = self._credential.token_state
        if state is TokenState.INVALID:
            await self._refresh(self._headers)
        elif self._headers is None:
            self._headers = self._apply()
        if state is TokenState.STALE and self._background is None:
            self._background = asyncio.create_task(self._refresh(self._headers))
            self._background.add_done_callback(self._background_done)
        assert self._headers is not None
        return self._headers

    async def refreshed(self, rejected: dict[str, str]) -> dict[str, str]:
        """After a 401: a new token, unless a concurrent request already got one."""
        await self._refresh(rejected, force=True)
        assert self._headers is not None
        return self._headers

    async def _refresh(self, seen: dict[str, str] | None, *, force: bool = False) -> None:
        async with self._lock:
            if self._headers is not seen:
                return  # refreshed while we waited for the lock
            credential = self._credential
            if force or credential.token_state is not TokenState.FRESH:
                await asyncio.to_thread(credential.refresh, google.auth.transport.requests.Request())
            self._headers = self._apply()

    def _apply(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        self._credential.apply(headers)  # "authorization", plus a quota-project header if any
        return headers

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background = None
        if not task.cancelled():
            task.exception()  # a failed early refresh is retried by the next batch

    def close(self) -> None:
        if self._background is not None:
            self._background.cancel()


class FcmHttp1Provider:
    name = "fcm"

    def __init__(
        self,
        app: firebase_admin.App,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_in_flight: int = 100,
        timeout: float = 10.0,
    ) -> None:
        self.app = app
        self._service = messaging._get_messaging_service(app)
        self.url: str = self._service._fcm_url
        self._url = yarl.URL(self.url)  # parsed once, not per request
        # Another app's project (PushSpec.fcm_project_id): the same endpoint and credentials,
        # its own messages:send path; each URL parsed once per process.
        self._endpoint = self.url.split("/v1/projects/", 1)[0]
        self._project: str = self._service._project_id
        self._urls: dict[str, yarl.URL] = {self._project: self._url}
        self._token = AccessToken(self._service._credential)
        # HTTP/1.1 without pipelining carries one request per connection, so the in-flight cap
        # is also the size of the keep-alive pool; it is shared by every batch of this process.
        self.max_in_flight = max_in_flight
        self._slots = asyncio.Semaphore(max_in_flight)
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._latency = PROVIDER_LATENCY.labels(self.name)  # bound once: no label lookup per request

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use: an aiohttp session belongs to the loop it was made in.
        if self._session is None:
            headers = {
                **_http_client.METRICS_HEADERS,
                **self._service._fcm_headers,
                "content-type": "application/json; charset=utf-8",
            }
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_in_flight, ssl=self._ssl),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                # Per-request work aiohttp would do for nothing: FCM sets no cookies and
                # answers small uncompressed JSON.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                auto_decompress=False,
            )
        return self._session

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        if not requests:
            return []
        session = self._client()
        try:
            auth = await self._token.headers()
        except Exception as exc:  # no token: nothing can be sent; retry the batch later
            failure = SendResult(Outcome.RETRY, error_code=f"auth:{type(exc).__name__}"[:64])
            return [failure for _ in requests]
        bodies = encode_bodies(requests)
        results: list[SendResult | None] = [body if isinstance(body, SendResult) else None for body in bodies]
        pending = iter([i for i, body in enumerate(bodies) if isinstance(body, bytes)])

        async def lane() -> None:
            # A few long-lived coroutines instead of one task per message: less scheduling work.
            nonlocal auth
            for index in pending:
                body = bodies[index]
                assert isinstance(body, bytes)
                async with self._slots:
                    # Checked with the slot in hand: a request still waiting for one has not
                    # started, and a cancel heard meanwhile stops it.
                    if stopped(requests[index].spec.id):
                        results[index] = STOPPED
                        continue
                    url = self._url_for(requests[index].spec.fcm_project_id)  # a dict look-up
                    result, status = await self._post(session, url, body, auth)
                    if status == 401 and result.error_code != "THIRD_PARTY_AUTH_ERROR":
                        # Our token was refused (revoked, clock skew): one refresh, one retry.
                        try:
                            auth = await self._token.refreshed(auth)
                        except Exception as exc:  # the 401's own result stands
                            log.warning("fcm_token_refresh_failed", error=type(exc).__name__)
                        else:
                            if not stopped(requests[index].spec.id):  # the retry is a new request
                                result, _ = await self._post(session, url, body, auth)
                results[index] = result

        await asyncio.gather(*(lane() for _ in range(min(len(requests), self.max_in_flight))))
        assert all(result is not None for result in results)
        return results  # type: ignore[return-value]  # every slot is filled above

    def _url_for(self, project: str | None) -> yarl.URL:
        url = self._urls.get(project or self._project)
        if url is None:
            assert project is not None
            url = self._urls[project] = yarl.URL(messages_send_url(self._endpoint, project))
        return url

    async def _post(
        self, session: aiohttp.ClientSession, url: yarl.URL, body: bytes, auth: dict[str, str]
    ) -> tuple[SendResult, int]:
        started = time.perf_counter()
        answered = False
        try:
            async with session.post(url, data=body, headers=auth) as response:
                content = await response.read()
                answered = True
                self._latency.observe(time.perf_counter() - started)
                if response.status == 200:
                    return SendResult.accepted(orjson.loads(content)["name"]), 200
                headers = list(response.headers.items())
                return classify(self._status_error(response.status, headers, content)), response.status
        except TimeoutError as exc:
            error: httpx.HTTPError = httpx.TimeoutException(str(exc) or "timed out")
        except aiohttp.ClientConnectorError as exc:
            error = httpx.ConnectError(str(exc))
        except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            # A dropped keep-alive connection, a truncated or non-JSON answer.
            error = httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}")
        if not answered:  # the transport's error: a timeout lands in the top buckets
            self._latency.observe(time.perf_counter() - started)
        return classify(self._service._handle_fcm_httpx_error(error)), 0

    def _status_error(self, status: int, headers: list[tuple[str, str]], content: bytes) -> Exception:
        """firebase-admin's own reading of an FCM error answer (rare path: no need to be cheap)."""
        request = httpx.Request("POST", self.url)
        response = httpx.Response(status, headers=headers, content=content, request=request)
        error = httpx.HTTPStatusError(f"FCM answered HTTP {status}", request=request, response=response)
        exception: Exception = self._service._handle_fcm_httpx_error(error)
        return exception

    async def close(self) -> None:
        self._token.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await close_firebase_app(self.app)


def encode_bodies(requests: Sequence[PushRequest]) -> list[bytes | SendResult]:
    """`{"message": ...}` request bodies, one per request, in order.

    A batch holds a handful of distinct (spec, rendered push) pairs (one per language), so
    firebase-admin encodes each pair once and only the token is spliced in per message: the
    JSON means exactly what `encode_message` would produce for that message.
    """
    templates: dict[tuple[int, int], tuple[bytes, bytes] | SendResult] = {}
    bodies: list[bytes | SendResult] = []
    for request in requests:
        key = (id(request.spec), id(request.push))
        template = templates.get(key)
        if template is None:
            template = templates[key] = _template(request)
        if isinstance(template, SendResult):
            bodies.append(template)
        elif not request.token:
            # firebase-admin refuses an empty token ("Message.token must be a non-empty string").
            bodies.append(SendResult(Outcome.INVALID_TOKEN, error_code="INVALID_ARGUMENT"))
        else:
            prefix, suffix = template
            bodies.append(prefix + orjson.dumps(request.token) + suffix)
    return bodies


def _template(request: PushRequest) -> tuple[bytes, bytes] | SendResult:
    message = fcm_message(request.spec, request.push, token=_PLACEHOLDER)
    try:
        encoded: dict[str, Any] = messaging._MessagingService.encode_message(message)
    except ValueError as exc:  # a message firebase-admin would refuse to send at all
        return SendResult(Outcome.FAILED, error_code=f"encode:{exc}"[:64])
    if encoded.pop("token", None) != _PLACEHOLDER:
        raise RuntimeError("firebase-admin no longer encodes Message.token as 'token'")
    head = orjson.dumps({"message": encoded})[:-2]  # without the closing "}}"
    return head + (b',"token":' if encoded else b'"token":'), b"}}"
