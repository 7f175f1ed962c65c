"""Building aioapns clients: the configured endpoint and the flow-control fix.

aioapns 4.0 has no public switch for either, so both are subclasses of its HTTP/2 protocol class
(`APNsBaseConnectionPool.protocol_class`), checked when they are made so that an upgrade that
moves these internals fails loudly (pinned by tests/emulator/test_client_overrides.py):

- `APNS_SERVER`/`APNS_PORT` class attributes: the pool dials exactly these, and uses the host for
  SNI and the `host` header. Left alone unless `apns_endpoint_host` is set (Apple's hosts by
  default); local runs and tests set it to the provider emulator.
- `on_data_received`: see `with_flow_control_fix`.
"""

from __future__ import annotations

import ssl

from aioapns import APNs
from aioapns.connection import APNsBaseConnectionPool, APNsTLSClientProtocol


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
    if fix_flow_control:
        client.pool.protocol_class = with_flow_control_fix(client.pool.protocol_class)
    if endpoint_host:
        set_endpoint(client, host=endpoint_host, port=endpoint_port)
    return client
