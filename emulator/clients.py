"""Point the real firebase-admin and aioapns clients at the emulator: configuration only.

The sending code path stays the library's own (`messaging.send_each_async(..., app=app)`,
`APNs.send_notification(...)`); only where the library connects and which CA it trusts
changes. Neither library has a public switch for that, so a few internals are touched. They
are listed here and checked at call time, so an upgrade that moves them fails loudly
(and `tests/emulator/test_client_overrides.py` fails) instead of silently reaching Google
or Apple:

firebase-admin 7.7 (`firebase_admin.messaging._MessagingService`, one per App):
- `_fcm_url`, `_fcm_topic_url`: URLs built from the constant https://fcm.googleapis.com;
- `_client.session` (sync `send`, a requests `AuthorizedSession`): `verify` set to the CA
  file, `trust_env` off so REQUESTS_CA_BUNDLE/proxies cannot override it, and a 100-connection
  adapter mounted for the emulator URL as firebase-admin does for fcm.googleapis.com;
- `_async_client` (`_http_client.HttpxAsyncClient`, used by `send_each_async`): its inner
  `_async_client` is replaced by an httpx HTTP/2 client built exactly like the original
  (same headers, `GoogleAuthCredentialFlow`, `HttpxRetryTransport` mounts) except that the
  transports get `verify=<SSLContext trusting the emulator CA>`.

aioapns 4.0: `APNsBaseConnectionPool.protocol_class` is swapped for a subclass whose
`APNS_SERVER`/`APNS_PORT` class attributes name the emulator; the pool dials exactly those,
and uses them for SNI and the `host` header. The CA arrives through the public `ssl_context`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import firebase_admin
import google.auth.credentials
import httpx
import requests.adapters
from aioapns import APNs
from aioapns.common import NotificationRequest, NotificationResult
from aioapns.connection import APNsBaseConnectionPool, APNsTLSClientProtocol
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from firebase_admin import _http_client, messaging
from firebase_admin._retry import HttpxRetry, HttpxRetryTransport

from emulator.tls import client_ssl_context

DEFAULT_PROJECT_ID = "chuong-emulator"
DEFAULT_APNS_TOPIC = "vn.chuong.app"
CaPath = str | os.PathLike[str]


class EmulatorOverrideError(RuntimeError):
    """A client library no longer has the internals the emulator override relies on."""


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
    """Redirect an existing App's messaging service; call before its first send."""
    service = messaging._get_messaging_service(app)
    _require(
        service, ("_fcm_url", "_fcm_topic_url", "_project_id", "_credential", "_client", "_async_client")
    )
    base = fcm_url.rstrip("/")
    project = service._project_id
    service._fcm_url = f"{base}/v1/projects/{project}/messages:send"
    service._fcm_topic_url = f"{base}/v1/projects/{project}/registrations"

    session = service._client.session
    session.verify = os.fspath(ca_path)
    session.trust_env = False
    session.mount(
        base,
        requests.adapters.HTTPAdapter(
            pool_connections=100, pool_maxsize=100, max_retries=_http_client.DEFAULT_RETRY_CONFIG
        ),
    )

    wrapper = service._async_client
    if not isinstance(wrapper, _http_client.HttpxAsyncClient):
        raise EmulatorOverrideError(f"firebase-admin async client is {type(wrapper)!r}, not HttpxAsyncClient")
    _require(wrapper, ("_async_client", "_headers", "_mounts", "_retry_config"))
    retry = retry_config or _http_client.DEFAULT_HTTPX_RETRY_CONFIG
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        # HttpxRetryTransport forwards extra kwargs to httpx.AsyncHTTPTransport (http2 forced on).
        "https://": HttpxRetryTransport(retry=retry, verify=client_ssl_context(ca_path)),
        "http://": HttpxRetryTransport(retry=retry),
    }
    wrapper._retry_config = retry
    wrapper._mounts = mounts
    wrapper._async_client = httpx.AsyncClient(
        http2=True,
        timeout=wrapper.timeout,
        headers=wrapper._headers,
        auth=_http_client.GoogleAuthCredentialFlow(service._credential),
        mounts=mounts,
    )


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


def service_account_info_for_emulator(
    *, token_uri: str, project_id: str = DEFAULT_PROJECT_ID, client_email: str | None = None
) -> dict[str, str]:
    """A service-account key file (as a dict) with a fresh RSA key and `token_uri` set.

    Use the emulator's plain-HTTP token endpoint (`Emulator.token_uri`): google-auth
    fetches tokens with its own requests session, which knows nothing of the emulator CA.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": uuid.uuid4().hex,
        "private_key": pem,
        "client_email": client_email or f"emulator@{project_id}.iam.gserviceaccount.com",
        "client_id": "100000000000000000000",
        "token_uri": token_uri,
    }


def fcm_send_url(fcm_url: str, project_id: str = DEFAULT_PROJECT_ID) -> str:
    """The messages:send URL, for raw HTTP/1.1 or HTTP/2 clients (aiohttp, httpx)."""
    return f"{fcm_url.rstrip('/')}/v1/projects/{project_id}/messages:send"


# --- aioapns ----------------------------------------------------------------------------


def generate_apns_signing_key() -> str:
    """A fresh EC P-256 private key in PKCS#8 PEM, the shape of Apple's .p8 auth keys."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def apns_protocol_class(
    *, host: str, port: int, base: type[APNsTLSClientProtocol]
) -> type[APNsTLSClientProtocol]:
    """`base` (production or development protocol) re-aimed at host:port."""
    for attribute in ("APNS_SERVER", "APNS_PORT"):
        if not hasattr(base, attribute):
            raise EmulatorOverrideError(f"aioapns protocol class {base!r} has no {attribute}")
    return type(f"Emulator{base.__name__}", (base,), {"APNS_SERVER": host, "APNS_PORT": port})


def with_apns_flow_control_fix(base: type[APNsTLSClientProtocol]) -> type[APNsTLSClientProtocol]:
    """`base` plus the flow-control credit aioapns 4.0 forgets to return.

    aioapns never calls `acknowledge_received_data`, so every error body Apple sends
    (`{"reason": ...}`, ~30-60 bytes) permanently shrinks the 64 KiB connection window.
    After ~1,500 error replies on one connection the server may not send any more DATA: the
    connection stalls until aioapns' 10 s inactivity timer closes it and the pool retries
    the stuck requests on a new one. The emulator honours flow control like Apple does, so
    it reproduces this; `test_apns_flow_control.py` pins the behaviour. The app can use this
    subclass for production too (`pool.protocol_class = with_apns_flow_control_fix(...)`).
    """
    if not hasattr(base, "on_data_received"):
        raise EmulatorOverrideError(f"aioapns protocol class {base!r} has no on_data_received")

    class FlowControlFixed(base):  # type: ignore[valid-type,misc]
        def on_data_received(self, raw_data: bytes, stream_id: int) -> None:
            # Apple sends no padding, so the frame's flow-controlled length is len(raw_data).
            self.conn.acknowledge_received_data(len(raw_data), stream_id)
            super().on_data_received(raw_data, stream_id)

    FlowControlFixed.__name__ = FlowControlFixed.__qualname__ = f"FlowControlFixed{base.__name__}"
    return FlowControlFixed


def point_apns_at_emulator(client: APNs, *, host: str, port: int) -> None:
    """Make an existing client's pool dial the emulator; call before its first send."""
    pool = getattr(client, "pool", None)
    if not isinstance(pool, APNsBaseConnectionPool) or not hasattr(pool, "protocol_class"):
        raise EmulatorOverrideError("aioapns APNs.pool.protocol_class is gone")
    pool.protocol_class = apns_protocol_class(host=host, port=port, base=pool.protocol_class)


def apns_client_for_emulator(
    *,
    host: str,
    port: int,
    ca_path: CaPath,
    topic: str = DEFAULT_APNS_TOPIC,
    key: str | None = None,
    key_id: str = "EMULATORK1",
    team_id: str = "EMULATORT1",
    max_connections: int = 10,
    max_connection_attempts: int = 5,
    use_sandbox: bool = False,
    err_func: Callable[[NotificationRequest, NotificationResult], Awaitable[None]] | None = None,
    fix_flow_control: bool = False,
) -> APNs:
    """A token-auth (p8) aioapns client connected to the emulator. Build it inside a running loop.

    `fix_flow_control` applies `with_apns_flow_control_fix`; off by default so the emulator
    shows what the unpatched library does against Apple.
    """
    client = APNs(
        key=key or generate_apns_signing_key(),
        key_id=key_id,
        team_id=team_id,
        topic=topic,
        max_connections=max_connections,
        max_connection_attempts=max_connection_attempts,
        use_sandbox=use_sandbox,
        ssl_context=client_ssl_context(ca_path),
        err_func=err_func,
    )
    if fix_flow_control:
        client.pool.protocol_class = with_apns_flow_control_fix(client.pool.protocol_class)
    point_apns_at_emulator(client, host=host, port=port)
    return client


def _require(target: object, attributes: tuple[str, ...]) -> None:
    missing = [name for name in attributes if not hasattr(target, name)]
    if missing:
        raise EmulatorOverrideError(
            f"{type(target).__module__}.{type(target).__name__} lacks {', '.join(missing)}; "
            "the emulator override was written for firebase-admin 7.7"
        )
