"""Point the real firebase-admin and aioapns clients at the emulator: configuration only.

The sending code path stays the library's own (`messaging.send_each_async(..., app=app)`,
`APNs.send_notification(...)`), and the overrides are the shipped ones: the endpoint and
trust switches of `notifications/providers/fcm_app.py` and `apns_client.py`, which list the
library internals they touch. These helpers add what only tests and benchmarks want: a fixed
bearer token instead of a service account, a CA trusted *instead of* the system store (so a
test cannot pass by reaching the real host), and the unpatched aioapns for comparison.
`tests/emulator/test_client_overrides.py` pins the internals.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import firebase_admin
import google.auth.credentials
from aioapns import APNs
from aioapns.common import NotificationRequest, NotificationResult
from aioapns.connection import APNsTLSClientProtocol
from firebase_admin._retry import HttpxRetry

from emulator.credentials import (
    APNS_KEY_ID,
    APNS_TEAM_ID,
    DEFAULT_APNS_TOPIC,
    DEFAULT_PROJECT_ID,
    generate_apns_signing_key,
    service_account_info,
)
from emulator.tls import client_ssl_context
from notifications.providers.apns_client import (
    ClientInternalsError,
    apns_client,
    set_endpoint,
    with_endpoint,
    with_flow_control_fix,
)
from notifications.providers.fcm_app import close_firebase_app, messages_send_url, set_messaging_endpoint

CaPath = str | os.PathLike[str]
# Kept under the old names for tests and benchmarks.
EmulatorOverrideError = ClientInternalsError
with_apns_flow_control_fix = with_flow_control_fix
service_account_info_for_emulator = service_account_info

__all__ = [
    "DEFAULT_APNS_TOPIC",
    "DEFAULT_PROJECT_ID",
    "EmulatorOverrideError",
    "StaticTokenCredentials",
    "apns_client_for_emulator",
    "apns_protocol_class",
    "close_firebase_app",
    "fcm_send_url",
    "firebase_app_for_emulator",
    "generate_apns_signing_key",
    "point_apns_at_emulator",
    "point_messaging_at_emulator",
    "service_account_info_for_emulator",
    "with_apns_flow_control_fix",
]


# --- firebase-admin ---------------------------------------------------------------------


class StaticTokenCredentials(google.auth.credentials.Credentials):
    """google-auth credentials presenting one fixed bearer token that never expires.

    `refresh` must succeed: firebase-admin's httpx auth flow refreshes on every 401
    (e.g. FCM's THIRD_PARTY_AUTH_ERROR), and an exception there would fail a whole batch.
    """

    def __init__(self, token: str = "emulator-static-token") -> None:  # noqa: S107 - not a secret
        super().__init__()  # type: ignore[no-untyped-call]
        self.token = token
        self.expiry = None

    def refresh(self, request: Any) -> None:
        pass


def firebase_app_for_emulator(
    *,
    fcm_url: str,
    ca_path: CaPath,
    project_id: str = DEFAULT_PROJECT_ID,
    name: str | None = None,
    credential: Any = None,
    retry_config: HttpxRetry | None = None,
    http_timeout: float = 30.0,
) -> firebase_admin.App:
    """A firebase-admin App whose messaging talks to the emulator at `fcm_url`.

    `credential` defaults to `StaticTokenCredentials()`; pass
    `firebase_admin.credentials.Certificate(service_account_info_for_emulator(...))` to go
    through the OAuth2 token endpoint instead. `name` defaults to a unique one.
    `retry_config` replaces firebase-admin's default (4 retries on 500/503 with backoff);
    tests pass `HttpxRetry(max_retries=0)` to see faults at once.
    """
    app = firebase_admin.initialize_app(
        credential if credential is not None else StaticTokenCredentials(),
        options={"projectId": project_id, "httpTimeout": http_timeout},
        name=name or f"chuong-emulator-{uuid.uuid4().hex[:12]}",
    )
    point_messaging_at_emulator(app, fcm_url=fcm_url, ca_path=ca_path, retry_config=retry_config)
    return app


def point_messaging_at_emulator(
    app: firebase_admin.App, *, fcm_url: str, ca_path: CaPath, retry_config: HttpxRetry | None = None
) -> None:
    """Redirect an existing App's messaging service; call before its first send. Trusts only
    the emulator CA."""
    set_messaging_endpoint(
        app,
        endpoint=fcm_url,
        ca_file=ca_path,
        ssl_context=client_ssl_context(ca_path),
        retry_config=retry_config,
    )


def fcm_send_url(fcm_url: str, project_id: str = DEFAULT_PROJECT_ID) -> str:
    """The messages:send URL, for raw HTTP/1.1 or HTTP/2 clients (aiohttp, httpx)."""
    return messages_send_url(fcm_url, project_id)


# --- aioapns ----------------------------------------------------------------------------


def apns_protocol_class(
    *, host: str, port: int, base: type[APNsTLSClientProtocol]
) -> type[APNsTLSClientProtocol]:
    """`base` (production or development protocol) re-aimed at host:port."""
    return with_endpoint(base, host=host, port=port)


def point_apns_at_emulator(client: APNs, *, host: str, port: int) -> None:
    """Make an existing client's pool dial the emulator; call before its first send."""
    set_endpoint(client, host=host, port=port)


def apns_client_for_emulator(
    *,
    host: str,
    port: int,
    ca_path: CaPath,
    topic: str = DEFAULT_APNS_TOPIC,
    key: str | None = None,
    key_id: str = APNS_KEY_ID,
    team_id: str = APNS_TEAM_ID,
    max_connections: int = 10,
    max_connection_attempts: int = 5,
    use_sandbox: bool = False,
    err_func: Callable[[NotificationRequest, NotificationResult], Awaitable[None]] | None = None,
    fix_flow_control: bool = False,
) -> APNs:
    """A token-auth (p8) aioapns client connected to the emulator. Build it inside a running loop.

    `fix_flow_control` applies the provider's `with_flow_control_fix`; off by default so the
    emulator shows what the unpatched library does against Apple.
    """
    client = apns_client(
        key=key or generate_apns_signing_key(),
        key_id=key_id,
        team_id=team_id,
        topic=topic,
        max_connections=max_connections,
        max_connection_attempts=max_connection_attempts,
        use_sandbox=use_sandbox,
        ssl_context=client_ssl_context(ca_path),
        endpoint_host=host,
        endpoint_port=port,
        fix_flow_control=fix_flow_control,
    )
    if err_func is not None:
        client.err_func = err_func
    return client
