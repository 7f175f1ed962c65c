"""The channels of real-time inbox events. They are published through Redis pub/sub only once
the transaction that caused them has committed (``core.pubsub.publish_after_commit``).

Channels: ``chuong:inbox:reader:<reader id>`` (a reader's own items and read-state changes) and
``chuong:inbox:app:<app>`` (new broadcasts, which every connected reader of the app filters by
topic). Pub/sub is only a wake-up: PostgreSQL stays the record, and a stream that reconnects
with ``Last-Event-ID`` replays what it missed from there (inbox/stream.py).
"""

from __future__ import annotations

import uuid


def reader_channel(reader_id: uuid.UUID) -> str:
    return f"chuong:inbox:reader:{reader_id}"


def app_channel(app: str) -> str:
    return f"chuong:inbox:app:{app}"
