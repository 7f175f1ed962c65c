"""The record of every message the emulator answered, bounded so a 1M-message benchmark fits.

Two bounds keep memory predictable:
- `max_records` caps the ring of compact records (token, provider, time, outcome, ids);
- `max_payloads` caps how many of the newest records keep their raw payload bytes; older
  records drop the payload but keep everything else.
Counts in `Stats` are never dropped. Look-ups by token scan the ring: that costs tens of
milliseconds on a full 1M ring, which a control API can afford, and it saves the per-token
index that would cost more memory than the records themselves.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

import orjson


class MessageRecord:
    __slots__ = (
        "headers",
        "message_id",
        "outcome",
        "payload",
        "protocol",
        "provider",
        "received_at",
        "status",
        "token",
    )

    def __init__(
        self,
        *,
        provider: str,
        token: str,
        status: int,
        outcome: str,
        message_id: str | None,
        headers: tuple[tuple[str, str], ...] | None,
        payload: bytes | None,
        protocol: str,
    ) -> None:
        self.provider = provider
        self.token = token
        self.received_at = time.time()
        self.status = status
        self.outcome = outcome
        self.message_id = message_id
        self.headers = headers
        self.payload = payload
        self.protocol = protocol

    def as_json(self) -> dict[str, Any]:
        payload: Any = None
        if self.payload is not None:
            try:
                payload = orjson.loads(self.payload)
            except orjson.JSONDecodeError:
                payload = self.payload.decode("utf-8", "replace")
        return {
            "provider": self.provider,
            "token": self.token,
            "received_at": self.received_at,
            "status": self.status,
            "outcome": self.outcome,
            "message_id": self.message_id,
            "headers": dict(self.headers) if self.headers else {},
            "payload": payload,
            "payload_dropped": self.payload is None,
            "protocol": self.protocol,
        }


class Stats:
    """Counters that survive ring eviction: per provider, per outcome."""

    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.oauth_tokens_issued = 0
        self.connections_opened = 0
        self.connections_open = 0
        self.protocols: Counter[str] = Counter()
        # HTTP/2 streams received and not yet answered (held by latency or flow control).
        self.streams_in_flight = 0
        self.peak_streams_in_flight = 0
        self.peak_streams_per_connection = 0

    def clear_counts(self) -> None:
        # Connection gauges describe live sockets, so they are not part of a reset.
        self.outcomes.clear()
        self.oauth_tokens_issued = 0
        self.peak_streams_in_flight = self.streams_in_flight
        self.peak_streams_per_connection = 0

    def as_json(self) -> dict[str, Any]:
        providers: dict[str, dict[str, Any]] = {}
        for (provider, outcome), count in self.outcomes.items():
            entry = providers.setdefault(provider, {"received": 0, "outcomes": {}})
            entry["received"] += count
            entry["outcomes"][outcome] = count
        for provider in ("fcm", "apns"):
            providers.setdefault(provider, {"received": 0, "outcomes": {}})
        return {
            **providers,
            "oauth_tokens_issued": self.oauth_tokens_issued,
            "connections": {
                "opened": self.connections_opened,
                "open": self.connections_open,
                "by_protocol": dict(self.protocols),
            },
            "h2_streams": {
                "in_flight": self.streams_in_flight,
                "peak_in_flight": self.peak_streams_in_flight,
                "peak_per_connection": self.peak_streams_per_connection,
            },
        }


class MessageLog:
    def __init__(self, *, max_records: int, max_payloads: int, record: bool = True) -> None:
        self.enabled = record and max_records > 0
        self.max_records = max(max_records, 0)
        self.max_payloads = max(min(max_payloads, self.max_records), 0)
        self._records: deque[MessageRecord] = deque(maxlen=self.max_records or 1)
        # The newest records still holding their payload; when one falls out, its payload goes.
        self._with_payload: deque[MessageRecord] = deque()
        self.stats = Stats()

    def add(
        self,
        *,
        provider: str,
        token: str,
        status: int,
        outcome: str,
        message_id: str | None,
        payload: bytes | None,
        protocol: str,
        headers: tuple[tuple[str, str], ...] | None = None,
    ) -> None:
        self.stats.outcomes[(provider, outcome)] += 1
        if not self.enabled:
            return
        keep_payload = payload if self.max_payloads else None
        record = MessageRecord(
            provider=provider,
            token=token,
            status=status,
            outcome=outcome,
            message_id=message_id,
            headers=headers,
            payload=keep_payload,
            protocol=protocol,
        )
        self._records.append(record)
        if keep_payload is not None:
            self._with_payload.append(record)
            if len(self._with_payload) > self.max_payloads:
                self._with_payload.popleft().payload = None

    def find(
        self, *, token: str | None = None, provider: str | None = None, limit: int = 1000
    ) -> list[MessageRecord]:
        """Newest last, like the ring; `limit` keeps the newest matches."""
        matches: deque[MessageRecord] = deque(maxlen=max(limit, 1))
        for record in self._records:
            if (token is None or record.token == token) and (provider is None or record.provider == provider):
                matches.append(record)
        return list(matches)

    def __len__(self) -> int:
        return len(self._records)

    def clear(self) -> None:
        self._records.clear()
        self._with_payload.clear()
        self.stats.clear_counts()
