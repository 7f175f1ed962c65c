"""A frame-level HTTP/2 client for asserting what the emulator puts on the wire.

httpx would hide the difference between "no DATA frame" and "an empty DATA frame", which
is exactly the difference aioapns cares about.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset


@dataclass
class ProbeResponse:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    data_frames: list[bytes] = field(default_factory=list)
    ended_with_headers: bool = False  # END_STREAM was on the HEADERS frame


async def h2_exchange(
    host: str, port: int, ssl_context: ssl.SSLContext, headers: list[tuple[str, str]], body: bytes = b""
) -> ProbeResponse:
    reader, writer = await asyncio.open_connection(host, port, ssl=ssl_context)
    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, headers, end_stream=not body)
    if body:
        conn.send_data(stream_id, body, end_stream=True)
    writer.write(conn.data_to_send())
    response = ProbeResponse()
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), timeout=10)
            if not data:
                raise ConnectionError("emulator closed the connection")
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived) and event.stream_id == stream_id:
                    response.headers = dict(event.headers)  # type: ignore[arg-type]
                    response.status = int(response.headers[":status"])
                    response.ended_with_headers = event.stream_ended is not None
                elif isinstance(event, DataReceived) and event.stream_id == stream_id:
                    response.data_frames.append(event.data)
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, StreamEnded) and event.stream_id == stream_id:
                    return response
                elif isinstance(event, StreamReset):
                    raise ConnectionError(f"stream reset: {event.error_code}")
            writer.write(conn.data_to_send())
    finally:
        writer.close()
