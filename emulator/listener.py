"""A listening socket that speaks HTTP/2 or HTTP/1.1 per connection, chosen by ALPN.

TLS clients that negotiate ALPN get what they asked for. Clients that send no ALPN are
common here: aioapns never sets it (Apple accepts prior-knowledge HTTP/2 over TLS) and the
plain control port has no TLS at all, so without ALPN the first bytes decide: the HTTP/2
client preface starts with "PRI ", anything else is HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
from typing import Protocol, cast

from emulator.h1_connection import Http1ServerConnection
from emulator.h2_connection import H2ServerConnection
from emulator.http_types import Handler
from emulator.records import Stats

logger = logging.getLogger(__name__)

_H2_PREFACE_START = b"PRI "
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}


class _Engine(Protocol):
    def start(self) -> None: ...
    def data_received(self, data: bytes) -> None: ...
    def shutdown(self) -> None: ...
    def connection_lost(self) -> None: ...


class _ConnectionProtocol(asyncio.Protocol):
    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._transport: asyncio.Transport | None = None
        self._engine: _Engine | None = None
        self._sniffed = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self._transport = cast(asyncio.Transport, transport)
        self._listener.connection_opened(self)
        ssl_object = self._transport.get_extra_info("ssl_object")
        alpn = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if alpn == "h2":
            self._start_engine("h2")
        elif alpn == "http/1.1":
            self._start_engine("http/1.1")

    def data_received(self, data: bytes) -> None:
        engine = self._engine
        if engine is not None:
            engine.data_received(data)
            return
        self._sniffed += data
        if len(self._sniffed) < len(_H2_PREFACE_START) and _H2_PREFACE_START.startswith(self._sniffed):
            return
        protocol = "h2" if self._sniffed.startswith(_H2_PREFACE_START) else "http/1.1"
        buffered, self._sniffed = self._sniffed, b""
        self._start_engine(protocol).data_received(buffered)

    def _start_engine(self, protocol: str) -> _Engine:
        assert self._transport is not None
        engine: _Engine
        if protocol == "h2":
            engine = H2ServerConnection(self._transport, self._listener.handler, self._listener.stats)
        else:
            engine = Http1ServerConnection(self._transport, self._listener.handler)
        self._engine = engine
        self._listener.stats.protocols[f"{self._listener.name}:{protocol}"] += 1
        engine.start()
        return engine

    def eof_received(self) -> bool | None:
        return False  # close our side too; no half-open connections

    def connection_lost(self, exc: Exception | None) -> None:
        if self._engine is not None:
            self._engine.connection_lost()
        self._listener.connection_closed(self)

    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
        elif self._transport is not None:
            self._transport.close()

    def close_now(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def reset(self) -> None:
        """Cut the connection with a TCP RST, as a crashed peer or a middlebox does: no GOAWAY,
        no TLS close_notify, streams in flight are lost mid-answer."""
        transport = self._transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER on with a zero timeout: close() sends RST instead of FIN.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        transport.abort()


class Listener:
    """One port: a name for stats, a handler, and optionally TLS."""

    def __init__(
        self, *, name: str, handler: Handler, stats: Stats, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.name = name
        self.handler = handler
        self.stats = stats
        self.ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._connections: set[_ConnectionProtocol] = set()
        self._all_closed: asyncio.Event | None = None  # only while stopping

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ConnectionProtocol(self),
            host=host,
            port=port,
            ssl=self.ssl_context,
            reuse_address=True,
            backlog=1024,
        )
        return int(self._server.sockets[0].getsockname()[1])

    def connection_opened(self, connection: _ConnectionProtocol) -> None:
        self._connections.add(connection)
        self.stats.connections_opened += 1
        self.stats.connections_open += 1

    def connection_closed(self, connection: _ConnectionProtocol) -> None:
        if connection in self._connections:
            self._connections.discard(connection)
            self.stats.connections_open -= 1
            if not self._connections and self._all_closed is not None:
                self._all_closed.set()

    def drop_connections(self) -> None:
        """GOAWAY / close every live connection (clients must reconnect), keep listening."""
        for connection in list(self._connections):
            connection.shutdown()

    def reset_connections(self) -> None:
        """TCP RST every live connection (replies owed are never written), keep listening."""
        for connection in list(self._connections):
            connection.reset()

    async def stop(self, *, drain_timeout: float = 3.0) -> None:
        """Stop accepting, GOAWAY everyone, give clients `drain_timeout` s, then cut the rest."""
        if self._server is None:
            return
        self._server.close()
        self._all_closed = asyncio.Event()
        if not self._connections:
            self._all_closed.set()
        self.drop_connections()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_closed.wait(), drain_timeout)
        for connection in list(self._connections):
            connection.close_now()
        await self._server.wait_closed()
        self._server = None
