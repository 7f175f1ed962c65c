"""The transport-neutral request/reply pair shared by the HTTP/2 and HTTP/1.1 front ends.

Handlers are plain synchronous callables (`Request -> Reply`): the per-request work is a few
dictionary look-ups and one JSON parse, so running them inline in the protocol callback is far
cheaper than spawning a task per stream. Latency injection is expressed as `Reply.delay`, which
the connection turns into a `loop.call_later` instead of a sleeping coroutine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Request:
    method: str
    path: str
    # Lower-case header names; HTTP/2 pseudo-headers (":path", ...) are not included.
    headers: dict[str, str]
    body: bytes
    protocol: str  # "h2" or "http/1.1", kept for the record and for tests


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Seconds to hold the reply back (injected latency); 0 means answer at once.
    delay: float = 0.0


Handler = Callable[[Request], Reply]

JSON_CONTENT_TYPE = "application/json; charset=UTF-8"


def json_reply(
    status: int, document: Any, *, headers: list[tuple[str, str]] | None = None, delay: float = 0.0
) -> Reply:
    extra = [("content-type", JSON_CONTENT_TYPE)]
    if headers:
        extra.extend(headers)
    return Reply(status=status, body=orjson.dumps(document), headers=extra, delay=delay)


REASON_PHRASES: dict[int, str] = {
    100: "Continue",
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
