"""One event of a live stream, as a domain produces it (``inbox/stream.py``,
``notifications/stats.py``).

The domain says what happened: the event's name, its JSON data and, for a resumable stream, the id
the client sends back as ``Last-Event-ID``. How it travels is the transport's business
(``api/sse.py``: Server-Sent Events through sse-starlette, with the reconnection delay and the
heartbeats), so no domain writes wire text or imports starlette.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio


@dataclass(frozen=True, slots=True)
class StreamEvent:
    name: str
    data: Any  # JSON-serialisable (orjson)
    id: str | None = None


CLEANUP_SECONDS = 5.0


def cleanup_scope(seconds: float = CLEANUP_SECONDS) -> anyio.CancelScope:
    """For a stream's ``finally``. A client that went away cancels the stream, and under anyio (the
    server's task group) every await in a cancelled scope is cancelled again: unshielded, the
    clean-up stops at its first await and leaves the rest (a Redis connection, a reader's stream
    slot) to expire. Shielded, but bounded, so a Redis that stopped answering cannot hold it."""
    return anyio.move_on_after(seconds, shield=True)
