"""A minimal HTTP/1.1 server connection: keep-alive, pipelining, Content-Length and chunked.

Used for ALPN "http/1.1" on the FCM port (a plain aiohttp transport is faster than httpx's
HTTP/2 for some senders) and for the plain-text control port. Replies to pipelined requests
leave in request order even when injected latency finishes them out of order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from emulator.http_types import REASON_PHRASES, Handler, Reply, Request

logger = logging.getLogger(__name__)

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1 << 20


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Slot:
    """A reply position in the pipeline; `data` is None until the reply is ready."""

    __slots__ = ("data", "keep_alive")

    def __init__(self, keep_alive: bool) -> None:
        self.data: bytes | None = None
        self.keep_alive = keep_alive


class Http1ServerConnection:
    def __init__(self, transport: asyncio.Transport, handler: Handler) -> None:
        self._transport = transport
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._pipeline: deque[_Slot] = deque()
        self._timers: dict[_Slot, asyncio.TimerHandle] = {}
        self._continue_sent = False
        self._stop_reading = False  # after a request that asked to close the connection
        self._closed = False

    def start(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        if self._stop_reading or self._closed:
            return
        self._buffer += data
        while not self._stop_reading:
            try:
                parsed = self._parse_one()
            except _BadRequest as error:
                self._stop_reading = True
                slot = _Slot(keep_alive=False)
                self._pipeline.append(slot)
                body = f'{{"error": "{error}"}}'.encode()
                slot.data = _serialize(Reply(status=error.status, body=body), keep_alive=False)
                break
            if parsed is None:
                break
            request, keep_alive = parsed
            self._dispatch(request, keep_alive)
        self._write_ready()

    def _parse_one(self) -> tuple[Request, bool] | None:
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise _BadRequest(431, "request head too large")
            return None
        lines = bytes(buffer[:head_end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError as error:
            raise _BadRequest(400, "malformed request line") from error
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise _BadRequest(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        body_start = head_end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            decoded = _decode_chunked(buffer, body_start)
            if decoded is None:
                self._maybe_send_continue(headers)
                return None
            body, consumed = decoded
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError as error:
                raise _BadRequest(400, "bad content-length") from error
            if length < 0 or length > MAX_BODY_BYTES:
                raise _BadRequest(413, "body too large")
            if len(buffer) - body_start < length:
                self._maybe_send_continue(headers)
                return None
            body = bytes(buffer[body_start : body_start + length])
            consumed = body_start + length
        del buffer[:consumed]
        self._continue_sent = False
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        return Request(method, target, headers, body, "http/1.1"), keep_alive

    def _maybe_send_continue(self, headers: dict[str, str]) -> None:
        if not self._continue_sent and headers.get("expect", "").lower() == "100-continue":
            self._continue_sent = True
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _dispatch(self, request: Request, keep_alive: bool) -> None:
        if not keep_alive:
            self._stop_reading = True
        slot = _Slot(keep_alive)
        self._pipeline.append(slot)
        try:
            reply = self._handler(request)
        except Exception:
            logger.exception("emulator handler failed for %s %s", request.method, request.path)
            reply = Reply(status=500, body=b'{"error": "emulator handler failed"}')
        if reply.delay > 0:
            self._timers[slot] = self._loop.call_later(reply.delay, self._finish_later, slot, reply)
        else:
            slot.data = _serialize(reply, keep_alive)

    def _finish_later(self, slot: _Slot, reply: Reply) -> None:
        self._timers.pop(slot, None)
        slot.data = _serialize(reply, slot.keep_alive)
        self._write_ready()

    def _write_ready(self) -> None:
        if self._closed:
            return
        pipeline = self._pipeline
        out: list[bytes] = []
        close = False
        while pipeline and pipeline[0].data is not None:
            slot = pipeline.popleft()
            assert slot.data is not None
            out.append(slot.data)
            if not slot.keep_alive:
                close = True
                break
        if out and not self._transport.is_closing():
            self._transport.write(b"".join(out))
        if close:
            self._close()

    def shutdown(self) -> None:
        """Stop reading; close once the replies already owed have been written."""
        self._stop_reading = True
        if not self._pipeline:
            self._close()
        else:
            self._pipeline[-1].keep_alive = False

    def _close(self) -> None:
        if not self._closed:
            self.connection_lost()
            self._transport.close()

    def connection_lost(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pipeline.clear()


def _serialize(reply: Reply, keep_alive: bool) -> bytes:
    reason = REASON_PHRASES.get(reply.status, "Unknown")
    lines = [f"HTTP/1.1 {reply.status} {reason}", f"content-length: {len(reply.body)}"]
    lines.extend(f"{name}: {value}" for name, value in reply.headers)
    lines.append("connection: keep-alive" if keep_alive else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body


def _decode_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """Returns (body, bytes consumed from the buffer start) or None if incomplete."""
    parts: list[bytes] = []
    position = start
    total = 0
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as error:
            raise _BadRequest(400, "bad chunk size") from error
        position = line_end + 2
        if size == 0:
            # Skip optional trailers; the message ends at an empty line.
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                empty = line_end == position
                position = line_end + 2
                if empty:
                    return b"".join(parts), position
        total += size
        if total > MAX_BODY_BYTES:
            raise _BadRequest(413, "body too large")
        if len(buffer) < position + size + 2:
            return None
        parts.append(bytes(buffer[position : position + size]))
        position += size + 2
