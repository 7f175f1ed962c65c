"""The firebase-admin App the FCM providers share: credentials, project and endpoint.

The credentials are a service-account key file, as Google issues them; its `token_uri` says
where OAuth2 tokens come from (Google's, or the provider emulator's in local runs and tests).

The endpoint (`fcm_endpoint`, https://fcm.googleapis.com by default) and an extra CA
(`provider_ca_file`) need firebase-admin internals, because the library has no public switch
for them. They are listed here and checked when applied, so that an upgrade that moves them
fails loudly (pinned by tests/emulator/test_client_overrides.py) instead of silently reaching
another host. firebase-admin 7.7, `firebase_admin.messaging._MessagingService` (one per App):

- `_fcm_url`, `_fcm_topic_url`: built from the constant https://fcm.googleapis.com;
- `_client.session` (sync calls, a requests `AuthorizedSession`): `verify` set to the CA file,
  `trust_env` off so that REQUESTS_CA_BUNDLE/proxies cannot override it, and a 100-connection
  adapter mounted for the endpoint as firebase-admin does for fcm.googleapis.com;
- `_async_client` (`_http_client.HttpxAsyncClient`, used by `send_each_async`): its inner
  `_async_client` is replaced by an httpx HTTP/2 client built like the original (same headers,
  `HttpxRetryTransport` mounts) except for the retry policy, the transports' `verify`, and
  `GoogleAuthCredentialFlow` (its `_credential`, `_max_refresh_attempts`,
  `_refresh_status_codes`, `apply_auth_headers`) subclassed to refresh tokens off the loop.

The `http1` transport (fcm_http1.py) reads only `_fcm_url` from it and brings its own TLS.

google-auth reads the host's wall clock (`google.auth._helpers.utcnow`) to date the signed
assertion it trades for an access token (`iat`, `exp`: Google refuses one from the future or
past its hour, `invalid_grant`) and to judge when that token expires. `use_service_clock` points
it at the service clock (core/clock.py, the database's), so a stepped host clock neither gets
the token refused nor keeps an expired one (docs/delivery.md "Clocks").
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import firebase_admin
import google.auth._helpers
import google.auth.transport.requests
import httpx
import requests.adapters
from firebase_admin import _http_client, credentials, messaging
from firebase_admin._retry import HttpxRetry, HttpxRetryTransport
from google.auth.credentials import TokenState

from core.clock import reference_now
from core.config import DEFAULT_FCM_ENDPOINT
from notifications.providers.apns_client import ClientInternalsError
from notifications.providers.tls import provider_ssl_context

# Retries belong to the outbox's ladder (with Retry-After and the TTL), not to the client.
NO_RETRIES = HttpxRetry(max_retries=0)


def messages_send_url(endpoint: str, project_id: str) -> str:
    return f"{endpoint.rstrip('/')}/v1/projects/{project_id}/messages:send"


def service_clock_utcnow() -> dt.datetime:
    """google-auth's `utcnow`: naive UTC, from the service clock."""
    return reference_now().replace(tzinfo=None)


def use_service_clock() -> None:
    """Make google-auth, in this process, read the service clock. Idempotent."""
    if not callable(getattr(google.auth._helpers, "utcnow", None)):
        raise ClientInternalsError("google.auth._helpers.utcnow is gone")
    google.auth._helpers.utcnow = service_clock_utcnow


def fcm_app(
    *,
    credentials_file: str,
    project_id: str | None = None,
    endpoint: str = DEFAULT_FCM_ENDPOINT,
    ca_file: str | None = None,
    retry_config: HttpxRetry = NO_RETRIES,
    http_timeout: float = 10.0,
) -> firebase_admin.App:
    """An App signed in with the service account of `credentials_file`, sending to `endpoint`
    without the library's own retries (set on every App, Google's endpoint included)."""
    use_service_clock()
    # firebase-admin's own default timeout is 120 s; a batch must not wait that long on one call.
    options: dict[str, Any] = {"httpTimeout": http_timeout}
    if project_id:
        options["projectId"] = project_id
    app = firebase_admin.initialize_app(
        credentials.Certificate(credentials_file), options=options, name=f"chuong-fcm-{uuid.uuid4().hex[:12]}"
    )
    set_messaging_endpoint(app, endpoint=endpoint, ca_file=ca_file, retry_config=retry_config)
    return app


def set_messaging_endpoint(
    app: firebase_admin.App,
    *,
    endpoint: str,
    ca_file: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    retry_config: HttpxRetry | None = None,
) -> None:
    """Send an App's messaging to `endpoint`, trusting `ca_file` besides the system store (or
    exactly `ssl_context`); call before its first send. `retry_config` None keeps the library's
    default (4 retries on 500/503 with backoff)."""
    service = messaging._get_messaging_service(app)
    _require(
        service, ("_fcm_url", "_fcm_topic_url", "_project_id", "_credential", "_client", "_async_client")
    )
    base = endpoint.rstrip("/")
    project = service._project_id
    service._fcm_url = messages_send_url(base, project)
    service._fcm_topic_url = f"{base}/v1/projects/{project}/registrations"

    session = service._client.session
    if ca_file:
        session.verify = os.fspath(ca_file)
        session.trust_env = False
    session.mount(
        base,
        requests.adapters.HTTPAdapter(
            pool_connections=100, pool_maxsize=100, max_retries=_http_client.DEFAULT_RETRY_CONFIG
        ),
    )

    wrapper = service._async_client
    if not isinstance(wrapper, _http_client.HttpxAsyncClient):
        raise ClientInternalsError(f"firebase-admin async client is {type(wrapper)!r}, not HttpxAsyncClient")
    _require(wrapper, ("_async_client", "_headers", "_mounts", "_retry_config"))
    if ssl_context is None:
        ssl_context = provider_ssl_context(os.fspath(ca_file) if ca_file else None)
    retry = retry_config or _http_client.DEFAULT_HTTPX_RETRY_CONFIG
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        # HttpxRetryTransport forwards extra kwargs to httpx.AsyncHTTPTransport (http2 forced on).
        "https://": HttpxRetryTransport(retry=retry, verify=ssl_context),
        "http://": HttpxRetryTransport(retry=retry),
    }
    wrapper._retry_config = retry
    wrapper._mounts = mounts
    wrapper._async_client = httpx.AsyncClient(
        http2=True,
        timeout=wrapper.timeout,
        headers=wrapper._headers,
        auth=OffLoopCredentialFlow(service._credential),
        mounts=mounts,
    )


class OffLoopCredentialFlow(_http_client.GoogleAuthCredentialFlow):  # type: ignore[misc]
    """firebase-admin's auth flow, refreshing the OAuth2 token in a thread.

    The library's flow refreshes with blocking `requests` calls on the event loop (when the
    token expires, and after every 401), which stalls every other send of the process, and
    deadlocks against a token endpoint served by the same loop (the tests' in-process emulator).
    Same steps otherwise: apply the token, and on 401 refresh and resend, at most twice.
    """

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        original_headers = request.headers.copy()
        auth_request = google.auth.transport.requests.Request()
        refreshes = 0
        while True:
            request.headers = original_headers.copy()
            if self._credential.token_state is TokenState.FRESH:
                self.apply_auth_headers(request, auth_request)  # no network: applies the header
            else:
                await asyncio.to_thread(self.apply_auth_headers, request, auth_request)
            response = yield request
            if (
                response.status_code not in self._refresh_status_codes
                or refreshes >= self._max_refresh_attempts
            ):
                return
            await asyncio.to_thread(self._credential.refresh, auth_request)
            refreshes += 1


async def close_firebase_app(app: firebase_admin.App) -> None:
    """Close an App from async code.

    `firebase_admin.delete_app` ends in `_MessagingService.close()`, which calls
    `asyncio.run(...)` and so raises inside a running loop. Close the httpx client here, on
    the loop that owns its connections, then delete the App from a worker thread, where that
    `asyncio.run` finds the client already closed.
    """
    services = getattr(app, "_services", None) or {}
    service = services.get(getattr(messaging, "_MESSAGING_ATTRIBUTE", "_messaging"))
    if service is not None:
        await service._async_client.aclose()
    await asyncio.to_thread(firebase_admin.delete_app, app)


def _require(target: object, attributes: tuple[str, ...]) -> None:
    missing = [name for name in attributes if not hasattr(target, name)]
    if missing:
        raise ClientInternalsError(
            f"{type(target).__module__}.{type(target).__name__} lacks {', '.join(missing)}; "
            "the endpoint override was written for firebase-admin 7.7"
        )
