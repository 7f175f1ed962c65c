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


@dataclass(frozen=True, slots=True)
class StreamEvent:
    name: str
    data: Any  # JSON-serialisable (orjson)
    id: str | None = None
