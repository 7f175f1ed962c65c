"""The Redis pub/sub channels notifications publish on (through ``core.pubsub``, after commit)."""

from __future__ import annotations

import uuid


def progress_channel(notification_id: uuid.UUID) -> str:
    """Woken when a chunk of the notification's results is recorded (``outbox.record``); its
    progress stream listens (``stats.progress_stream``)."""
    return f"chuong:notifications:progress:{notification_id}"
