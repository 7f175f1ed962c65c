"""APNs requests with what a batch's pushes share worked out once.

aioapns builds every request from scratch: the payload dict, its JSON, the header list, a clock
read and a uuid4, then HPACK-encodes the headers, where h2 forces `authorization` (a ~250-byte
JWT, the same on every request of a connection) into a never-indexed literal and Huffman-codes
it again each time, and the unique `:path` and `apns-id` go into the dynamic table and push the
shared headers out of it. Half of the client's CPU went there (docs/benchmarks.md, issue 16).

Here a `PreparedPush` (body bytes and the shared headers, built once per notification and
rendered push) is sent on an aioapns connection by `send_prepared`, a method of a subclass of
the pool's protocol class (`with_prepared_sends`, like apns_client.py's overrides): only the
device token, the apns-id and the connection's JWT vary per request. On its connections:

- `authorization` is an ordinary indexed header: sent once, then one byte per request. h2 keeps
  it out of the table to stop a guess at a *low-entropy* secret from being confirmed by an
  attacker who can add headers to the same connection; nobody else writes headers on our
  connections, and the JWT is 256 bits of signature.
- `:path` and `apns-id` are literals that are never indexed (each is used once), without
  Huffman coding: 20 more bytes a request instead of a pure-Python bit-by-bit encoding.
- writes are flushed once per event-loop turn, not once per request.

aioapns internals used (pinned by tests/providers/test_apns_prepared.py): the protocol's `conn`
(h2, and its `state_machine.state`), `free_channels`, `requests`, `request_streams`,
`auth_provider`, `loop`, `flush`, `transport`, `APNS_SERVER`; the pool's `acquire`,
`max_connection_attempts`, `protocol_class`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aioapns import connection as aioapns_connection
from aioapns.common import NotificationResult, PushType
from aioapns.connection import APNsBaseClientProtocol, APNsBaseConnectionPool
from aioapns.exceptions import ConnectionClosed, MaxAttemptsExceeded
from aioapns.exceptions import ConnectionError as APNsConnectionError
from hpack import Encoder, NeverIndexedHeaderTuple

from notifications.content import PushSpec
from notifications.payloads import RenderedPush, apns_payload, apns_priority


class ClientInternalsError(RuntimeError):
    """aioapns no longer has the internals the prepared sends rely on."""


# h2's, as aioapns raises them (h2 itself is not imported by shipped code: pyproject.toml's
# import contracts; it arrives with aioapns).
FlowControlError: type[Exception] = vars(aioapns_connection)["FlowControlError"]
NoAvailableStreamIDError: type[Exception] = vars(aioapns_connection)["NoAvailableStreamIDError"]
# Any request h2's state machine refuses (FlowControlError is one): sending on a connection the
# server has ended (GOAWAY) before the transport is gone.
H2ProtocolError: type[Exception] = FlowControlError.__mro__[1]
# How long a request waits before its next try when its connection was closing: the pool hands it
# out until the transport is gone, and a GOAWAY closes every connection's transport at once.
CLOSING_PAUSE_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class PreparedPush:
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]  # after :path, host and apns-id; before authorization


def prepare(spec: PushSpec, push: RenderedPush, *, topic: str, now: int) -> PreparedPush:
    """What aioapns would send for this push, but for the device token and the apns-id. ``now``:
    the Unix time the expiration counts from (one clock read per batch)."""
    # The same JSON as aioapns' `json.dumps(message, ensure_ascii=False)`.
    body = json.dumps(apns_payload(spec, push), ensure_ascii=False).encode()
    kind = PushType.ALERT if push.title is not None else PushType.BACKGROUND
    headers = [
        (b"apns-topic", topic.encode()),
        (b"apns-expiration", str(now + spec.ttl_left()).encode()),
        (b"apns-priority", str(apns_priority(spec, push)).encode()),
    ]
    if spec.content.collapse_key is not None:
        headers.append((b"apns-collapse-id", spec.content.collapse_key.encode()))
    headers.append((b"apns-push-type", kind.value.encode()))
    return PreparedPush(body, tuple(headers))


# A canonical UUID per request without a uuid4 each: a random prefix per process (74 random
# bits) and a 48-bit counter. Apple only needs it unique; aioapns matches answers by it.
_ID_PREFIX = str(uuid.uuid4())[:24]
_ids = itertools.count()


def next_apns_id() -> str:
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFFFFFF:012x}"


_PROTOCOL_ATTRIBUTES = ("conn", "free_channels", "requests", "request_streams", "auth_provider", "loop")
_METHOD_AND_SCHEME = ((b":method", b"POST"), (b":scheme", b"https"))


class _PlainEncoder(Encoder):
    """HPACK without Huffman coding (hpack's is pure Python, bit by bit)."""

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        return super().encode(headers, huffman=False)


def with_prepared_sends(base: type[APNsBaseClientProtocol]) -> type[APNsBaseClientProtocol]:
    """`base` plus `send_prepared`; its connections encode headers as the module says."""
    if getattr(base, "sends_prepared", False):
        return base
    for attribute in ("APNS_SERVER", "flush", "send_notification", "on_response_received"):
        if not hasattr(base, attribute):
            raise ClientInternalsError(f"aioapns protocol class {base!r} has no {attribute}")

    class PreparedSends(base):  # type: ignore[valid-type,misc]
        sends_prepared = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            for attribute in (
                "conn",
                "free_channels",
                "requests",
                "request_streams",
                "auth_provider",
                "loop",
            ):
                if not hasattr(self, attribute):
                    raise ClientInternalsError(f"aioapns protocol has no {attribute}")
            self.conn.config.normalize_outbound_headers = False  # authorization indexed (see above)
            self.conn.encoder = _PlainEncoder()
            self._flush_pending = False
            self._host = self.APNS_SERVER.encode()

        async def send_prepared(self, token: str, apns_id: str, prepared: PreparedPush) -> NotificationResult:
            stream_id = await self.free_channels.acquire()
            if self.closing():
                self.free_channels.release()  # the stream never starts: its slot is free again
                raise ConnectionClosed("the connection is closing")
            headers: list[tuple[bytes, bytes]] = [
                *_METHOD_AND_SCHEME,
                NeverIndexedHeaderTuple(b":path", b"/3/device/" + token.encode()),
                (b"host", self._host),
                NeverIndexedHeaderTuple(b"apns-id", apns_id.encode()),
                *prepared.headers,
            ]
            if self.auth_provider is not None:
                headers.append((b"authorization", self.auth_provider.get_header().encode()))
            try:
                self.conn.send_headers(stream_id=stream_id, headers=headers)
                self.conn.send_data(stream_id=stream_id, data=prepared.body, end_stream=True)
            except FlowControlError:
                raise
            except H2ProtocolError as exc:
                # h2 refused the stream (the server ended the connection since the check above):
                # nothing of this request was written; it goes on another connection.
                self.free_channels.release()
                raise ConnectionClosed(str(exc)) from exc
            answer: asyncio.Future[NotificationResult] = self.loop.create_future()
            self.requests[apns_id] = answer
            self.request_streams[stream_id] = apns_id
            if not self._flush_pending:
                # Every request started in this turn of the loop goes out in one write.
                self._flush_pending = True
                self.loop.call_soon(self._flush_now)
            return await answer

        def closing(self) -> bool:
            """A GOAWAY (aioapns closes the transport on it) or a lost connection: h2 refuses
            new streams on it, though the pool hands it out until ``connection_lost`` runs."""
            transport = self.transport
            return (
                transport is None or transport.is_closing() or self.conn.state_machine.state.name == "CLOSED"
            )

        def _flush_now(self) -> None:
            self._flush_pending = False
            if self.transport is not None and not self.transport.is_closing():
                self.flush()

    PreparedSends.__name__ = PreparedSends.__qualname__ = f"PreparedSends{base.__name__}"
    return PreparedSends


def enable(pool: APNsBaseConnectionPool) -> None:
    """Make the pool's future connections able to `send_prepared`; call before its first send."""
    for attribute in ("protocol_class", "acquire", "max_connection_attempts"):
        if not hasattr(pool, attribute):
            raise ClientInternalsError(f"aioapns pool has no {attribute}")
    pool.protocol_class = with_prepared_sends(pool.protocol_class)  # type: ignore[assignment]


async def send_prepared(
    pool: APNsBaseConnectionPool, token: str, prepared: PreparedPush
) -> NotificationResult:
    """aioapns' `pool.send_notification` for a prepared push: a free connection (one is opened
    while the pool has room), retried on another after a closed connection, as aioapns does."""
    apns_id = next_apns_id()
    for _ in range(pool.max_connection_attempts):
        try:
            connection = await pool.acquire()
        except APNsConnectionError:
            await asyncio.sleep(1)
            continue
        try:
            result: NotificationResult = await connection.send_prepared(token, apns_id, prepared)  # type: ignore[attr-defined]
            return result
        except NoAvailableStreamIDError:
            connection.close()
        except ConnectionClosed:
            if connection.closing():  # type: ignore[attr-defined]
                await asyncio.sleep(CLOSING_PAUSE_SECONDS)  # for the pool to let it go
        except FlowControlError:
            await asyncio.sleep(1)
    raise MaxAttemptsExceeded
