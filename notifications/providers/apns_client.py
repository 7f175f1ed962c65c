"""Building aioapns clients: the configured endpoint and the flow-control fix.

aioapns 4.0 has no public switch for either, so both are subclasses of its HTTP/2 protocol class
(`APNsBaseConnectionPool.protocol_class`), checked when they are made so that an upgrade that
moves these internals fails loudly (pinned by tests/emulator/test_client_overrides.py):

- `APNS_SERVER`/`APNS_PORT` class attributes: the pool dials exactly these, and uses the host for
  SNI and the `host` header. Left alone unless `apns_endpoint_host` is set (Apple's hosts by
  default); local runs and tests set it to the provider emulator.
- `on_data_received`: see `with_flow_control_fix`.
- the protocol's `auth_provider` (aioapns' `JWTAuthorizationHeaderProvider`, with `key`, `key_id`,
  `team_id`): see `with_service_clock_jwt`.
"""

from __future__ import annotations

import ssl
from typing import Any

import jwt
from aioapns import APNs
from aioapns.connection import (
    APNsBaseConnectionPool,
    APNsTLSClientProtocol,
    AuthorizationHeaderProvider,
    JWTAuthorizationHeaderProvider,
)

from core.clock import carrying, reference_now


class ClientInternalsError(RuntimeError):
    """A client library no longer has the internals a provider override relies on."""


def with_flow_control_fix(base: type[APNsTLSClientProtocol]) -> type[APNsTLSClientProtocol]:
    """`base` plus the flow-control credit aioapns 4.0 forgets to return.

    aioapns never calls `acknowledge_received_data`, so every error body Apple sends
    (`{"reason": ...}`, ~30-60 bytes) permanently shrinks the 64 KiB connection window.
    After ~1,500 error replies on one connection the server may not send any more DATA: the
    connection stalls until aioapns' 10 s inactivity timer closes it and the pool retries
    the stuck requests on a new one. The emulator honours flow control like Apple does, so
    it reproduces this; tests/emulator/test_apns_flow_control.py pins the behaviour.
    """
    if not hasattr(base, "on_data_received"):
        raise ClientInternalsError(f"aioapns protocol class {base!r} has no on_data_received")

    class FlowControlFixed(base):  # type: ignore[valid-type,misc]
        def on_data_received(self, raw_data: bytes, stream_id: int) -> None:
            # Apple sends no padding, so the frame's flow-controlled length is len(raw_data).
            self.conn.acknowledge_received_data(len(raw_data), stream_id)
            super().on_data_received(raw_data, stream_id)

    FlowControlFixed.__name__ = FlowControlFixed.__qualname__ = f"FlowControlFixed{base.__name__}"
    return FlowControlFixed


class ServiceClockJWT(AuthorizationHeaderProvider):
    """The provider token (ES256 JWT) of one connection, dated by the service clock.

    aioapns dates its JWT by the host's wall clock and renews it when that clock says it is 30
    minutes old. Apple judges `iat` by its own clock and refuses a token issued more than an hour
    ago (`ExpiredProviderToken`, a 403 the outbox takes as permanent): a host clock stepped back
    by more than half an hour kept a token past that hour, and one stepped ahead dated a new
    token in Apple's future. Here `iat` is the service clock (core/clock.py, the database's) and
    the age is the clock that carries the service clock, which no step moves and which counts
    while the host sleeps (docs/delivery.md "Clocks").
    """

    TOKEN_TTL = 30 * 60  # as aioapns: Apple wants a new token at most every 20, at least every 60 min

    def __init__(self, *, key: str, key_id: str, team_id: str) -> None:
        self.key = key
        self.key_id = key_id
        self.team_id = team_id
        self.issued_at: int | None = None
        self._minted_at = 0.0  # carrying(): counts while the host sleeps, never stepped
        self._header: str | None = None

    def get_header(self) -> str:
        if self._header is None or carrying() - self._minted_at >= self.TOKEN_TTL:
            self._minted_at = carrying()
            self.issued_at = int(reference_now().timestamp())
            token = jwt.encode(
                {"iss": self.team_id, "iat": self.issued_at},
                self.key,
                algorithm="ES256",
                headers={"kid": self.key_id},
            )
            self._header = f"bearer {token}"
        return self._header


def with_service_clock_jwt(base: type[APNsTLSClientProtocol]) -> type[APNsTLSClientProtocol]:
    """`base` whose connections carry a `ServiceClockJWT` instead of aioapns' own."""

    class ServiceClockJWTProtocol(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            current = getattr(self, "auth_provider", None)
            if not isinstance(current, JWTAuthorizationHeaderProvider):
                raise ClientInternalsError(f"aioapns protocol's auth_provider is {type(current)!r}")
            self.auth_provider = ServiceClockJWT(
                key=current.key, key_id=current.key_id, team_id=current.team_id
            )

    ServiceClockJWTProtocol.__name__ = ServiceClockJWTProtocol.__qualname__ = (
        f"ServiceClockJWT{base.__name__}"
    )
    return ServiceClockJWTProtocol


def with_endpoint(base: type[APNsTLSClientProtocol], *, host: str, port: int) -> type[APNsTLSClientProtocol]:
    """`base` (production or development protocol) dialling host:port instead of Apple's."""
    for attribute in ("APNS_SERVER", "APNS_PORT"):
        if not hasattr(base, attribute):
            raise ClientInternalsError(f"aioapns protocol class {base!r} has no {attribute}")
    return type(f"Endpoint{base.__name__}", (base,), {"APNS_SERVER": host, "APNS_PORT": port})


def set_endpoint(client: APNs, *, host: str, port: int) -> None:
    """Make an existing client's pool dial host:port; call before its first send."""
    pool = getattr(client, "pool", None)
    if not isinstance(pool, APNsBaseConnectionPool) or not hasattr(pool, "protocol_class"):
        raise ClientInternalsError("aioapns APNs.pool.protocol_class is gone")
    pool.protocol_class = with_endpoint(pool.protocol_class, host=host, port=port)


def apns_client(
    *,
    key: str,
    key_id: str,
    team_id: str,
    topic: str,
    use_sandbox: bool,
    max_connections: int,
    max_connection_attempts: int = 5,
    ssl_context: ssl.SSLContext | None = None,
    endpoint_host: str | None = None,
    endpoint_port: int = 443,
    fix_flow_control: bool = True,
) -> APNs:
    """A token-auth (.p8) aioapns client. Build it inside the running event loop.

    `ssl_context` None: aioapns' own (the system store). `fix_flow_control` is off only in the
    tests that show what the unpatched library does.
    """
    client = APNs(
        key=key,
        key_id=key_id,
        team_id=team_id,
        topic=topic,
        use_sandbox=use_sandbox,
        max_connections=max_connections,
        max_connection_attempts=max_connection_attempts,
        ssl_context=ssl_context,
    )
    client.pool.protocol_class = with_service_clock_jwt(client.pool.protocol_class)
    if fix_flow_control:
        client.pool.protocol_class = with_flow_control_fix(client.pool.protocol_class)
    if endpoint_host:
        set_endpoint(client, host=endpoint_host, port=endpoint_port)
    return client
