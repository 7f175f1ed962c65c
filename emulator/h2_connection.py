"""One server-side HTTP/2 connection on top of the sans-IO `h2` library.

Everything runs inside the transport's `data_received` callback: h2 turns bytes into events,
complete requests go straight to the (synchronous) handler, and all frames produced while
handling one read are written with a single `transport.write`. No task per stream.
"""

from __future__ import annotations

import asyncio
import logging

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import ProtocolError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from emulator.http_types import Handler, Reply, Request
from emulator.records import Stats

logger = logging.getLogger(__name__)

# What clients are told, as FCM and APNs front ends do.
ADVERTISED_MAX_CONCURRENT_STREAMS = 100
# What is enforced until the client has acknowledged the advertised value. Before a client
# has read our SETTINGS frame it may legally open more streams (aioapns starts at 1000), and
# h2 answers an excess stream by killing the whole connection, which would fail every
# request on it. So the first SETTINGS says 1000 and a second one lowers it to 100.
ENFORCED_MAX_CONCURRENT_STREAMS_BEFORE_ACK = 1000
# Generous receive windows (Google's front ends use similar ones): a burst of 100 streams
# never waits for a WINDOW_UPDATE round trip.
STREAM_RECEIVE_WINDOW = 1 << 20
CONNECTION_RECEIVE_WINDOW = 16 << 20
MAX_REQUEST_BODY = 1 << 20
# Bodies up to this size go out as a single DATA frame, waiting for window if need be.
# aioapns json-parses each DATA frame on its own, so an APNs error body must never be split.
SINGLE_FRAME_BODY = 1024
DRAIN_GRACE_S = 1.0


class _Stream:
    __slots__ = ("chunks", "headers", "size")

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.headers = headers
        self.chunks: list[bytes] = []
        self.size = 0


class H2ServerConnection:
    def __init__(self, transport: asyncio.Transport, handler: Handler, stats: Stats) -> None:
        self._transport = transport
        self._handler = handler
        self._stats = stats
        self._loop = asyncio.get_running_loop()
        # Header validation and normalisation cost more than all of the emulator's own work
        # (a dozen generator passes per header block); the clients under test are mature
        # HTTP/2 stacks, and our own reply headers are lower-case literals.
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self._conn = H2Connection(config=config)
        self._conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: ENFORCED_MAX_CONCURRENT_STREAMS_BEFORE_ACK,
                SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
                SettingCodes.INITIAL_WINDOW_SIZE: STREAM_RECEIVE_WINDOW,
            },
        )
        self._streams: dict[int, _Stream] = {}
        self._unsent: dict[int, bytes] = {}  # response bodies waiting for flow-control window
        self._timers: dict[int, asyncio.TimerHandle] = {}  # replies held back by injected latency
        self._open: set[int] = set()  # streams received and not yet fully answered
        self._closed = False
        # Graceful shutdown state (see `shutdown`).
        self._draining = False
        self._grace_over = False
        self._goaway_last_stream_id = 0
        self._drain_timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        conn = self._conn
        conn.initiate_connection()
        conn.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: ADVERTISED_MAX_CONCURRENT_STREAMS})
        conn.increment_flow_control_window(CONNECTION_RECEIVE_WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        conn = self._conn
        try:
            events = conn.receive_data(data)
        except ProtocolError as error:
            # h2 has already queued a GOAWAY with the right error code.
            logger.info("HTTP/2 protocol error from client, closing: %s", error)
            self._flush()
            self._close_transport()
            return
        for event in events:
            # Exact type checks, most frequent first: this loop is the hot path.
            kind = type(event)
            if kind is DataReceived:
                assert isinstance(event, DataReceived)
                self._on_data(event)
            elif kind is RequestReceived:
                assert isinstance(event, RequestReceived)
                stream_id = event.stream_id
                assert stream_id is not None
                if self._draining and stream_id > self._goaway_last_stream_id:
                    self._conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
                    continue
                self._streams[stream_id] = _Stream(event.headers or [])
                self._opened(stream_id)
            elif kind is StreamEnded:
                assert isinstance(event, StreamEnded)
                assert event.stream_id is not None
                self._dispatch(event.stream_id)
            elif kind is WindowUpdated:
                assert isinstance(event, WindowUpdated)
                self._resume_unsent(event.stream_id or None)
            elif kind is StreamReset:
                assert isinstance(event, StreamReset)
                assert event.stream_id is not None
                self._forget(event.stream_id)
            elif kind is RemoteSettingsChanged:
                assert isinstance(event, RemoteSettingsChanged)
                if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._resume_unsent(None)
            elif kind is ConnectionTerminated:
                # The client sent GOAWAY: it will not read answers to streams it gave up on.
                self._flush()
                self._close_transport()
                return
        self._flush()

    def _on_data(self, event: DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        # Hand the window back at once: the body is buffered here, not in the peer's window.
        # h2 batches these into WINDOW_UPDATE frames once half a window is consumed.
        if event.flow_controlled_length:
            self._conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
        stream = self._streams.get(stream_id)
        if stream is None or event.data is None:
            return
        stream.chunks.append(event.data)
        stream.size += len(event.data)
        if stream.size > MAX_REQUEST_BODY:
            self._forget(stream_id)
            self._conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)

    def _dispatch(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        method = path = ""
        headers: dict[str, str] = {}
        for name, value in stream.headers:
            if name[:1] == b":":
                if name == b":method":
                    method = value.decode("ascii", "replace")
                elif name == b":path":
                    path = value.decode("utf-8", "replace")
            else:
                headers[name.decode("ascii", "replace")] = value.decode("utf-8", "replace")
        body = stream.chunks[0] if len(stream.chunks) == 1 else b"".join(stream.chunks)
        try:
            reply = self._handler(Request(method, path, headers, body, "h2"))
        except Exception:
            logger.exception("emulator handler failed for %s %s", method, path)
            reply = Reply(status=500, body=b'{"error": "emulator handler failed"}')
        if reply.delay > 0:
            self._timers[stream_id] = self._loop.call_later(reply.delay, self._send_later, stream_id, reply)
        else:
            self._send(stream_id, reply)

    def _send_later(self, stream_id: int, reply: Reply) -> None:
        self._timers.pop(stream_id, None)
        if self._closed:
            return
        self._send(stream_id, reply)
        self._flush()

    def _send(self, stream_id: int, reply: Reply) -> None:
        body = reply.body
        headers = [(":status", str(reply.status)), *reply.headers]
        if body:
            headers.append(("content-length", str(len(body))))
        try:
            self._conn.send_headers(stream_id, headers, end_stream=not body)
        except ProtocolError:
            # The client reset the stream or is closing the connection meanwhile.
            self._finished(stream_id)
            return
        if not body:
            self._finished(stream_id)
        else:
            self._unsent[stream_id] = body
            self._push(stream_id)

    def _push(self, stream_id: int) -> None:
        """Send as much of a body as the peer's windows allow; the rest waits for WindowUpdated."""
        conn = self._conn
        data = self._unsent.pop(stream_id)
        try:
            while data:
                window = conn.local_flow_control_window(stream_id)
                chunk = min(len(data), conn.max_outbound_frame_size)
                if window < chunk:
                    if len(data) <= SINGLE_FRAME_BODY or window <= 0:
                        break
                    chunk = window
                conn.send_data(stream_id, data[:chunk], end_stream=chunk == len(data))
                data = data[chunk:]
        except ProtocolError:
            data = b""
        if data:
            self._unsent[stream_id] = data
        else:
            self._finished(stream_id)

    def _resume_unsent(self, stream_id: int | None) -> None:
        if stream_id is None:
            for waiting in list(self._unsent):
                self._push(waiting)
        elif stream_id in self._unsent:
            self._push(stream_id)

    def _forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)
        self._unsent.pop(stream_id, None)
        timer = self._timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()
        self._finished(stream_id)

    def _opened(self, stream_id: int) -> None:
        self._open.add(stream_id)
        stats = self._stats
        stats.streams_in_flight += 1
        if stats.streams_in_flight > stats.peak_streams_in_flight:
            stats.peak_streams_in_flight = stats.streams_in_flight
        if len(self._open) > stats.peak_streams_per_connection:
            stats.peak_streams_per_connection = len(self._open)

    def _finished(self, stream_id: int) -> None:
        if stream_id in self._open:
            self._open.discard(stream_id)
            self._stats.streams_in_flight -= 1
            if self._grace_over and not self._open:
                self._flush()
                self._close_transport()

    def _flush(self) -> None:
        data = self._conn.data_to_send()
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def _close_transport(self) -> None:
        self._closed = True
        self._cancel_timers()
        self._transport.close()

    def _cancel_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    def shutdown(self, grace: float = DRAIN_GRACE_S) -> None:
        """Graceful GOAWAY: answer the streams already received, refuse new ones, then close.

        h2's own `close_connection()` is terminal (any later frame is a ProtocolError), so the
        GOAWAY frame is written by hand and h2 keeps running the streams in progress. The
        socket stays open for `grace` seconds even when idle: a client may have a request on
        the wire already, and closing under it makes the kernel answer with a TCP reset that
        discards the GOAWAY before the client reads it. A client that reads the GOAWAY
        retries on a new connection (httpcore does so transparently).
        """
        if self._closed or self._draining:
            return
        self._draining = True
        self._flush()
        goaway = GoAwayFrame(0)
        goaway.last_stream_id = self._conn.highest_inbound_stream_id
        goaway.error_code = ErrorCodes.NO_ERROR
        self._goaway_last_stream_id = goaway.last_stream_id
        self._transport.write(goaway.serialize())
        self._drain_timer = self._loop.call_later(grace, self._drain_deadline, grace)

    def _drain_deadline(self, grace: float) -> None:
        if self._closed:
            return
        if not self._open or self._grace_over:
            self._close_transport()
            return
        # Streams still running (latency, or a peer that withholds window): one more grace.
        self._grace_over = True
        self._drain_timer = self._loop.call_later(grace, self._drain_deadline, grace)

    def connection_lost(self) -> None:
        self._closed = True
        self._stats.streams_in_flight -= len(self._open)
        self._open.clear()
        self._cancel_timers()
        self._streams.clear()
        self._unsent.clear()
