"""One async interface for every push service: send a batch, get one classified result per
message, so the outbox decides what to do next without knowing the provider."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from notifications.content import PushSpec
from notifications.payloads import RenderedPush


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # the provider took it; ``message_id`` is its id
    INVALID_TOKEN = "invalid_token"  # noqa: S105 (dead token: invalidate the device, never retry)
    RETRY = "retry"  # transient (quota, unavailable, timeout): retry later, after ``retry_after``
    FAILED = "failed"  # permanent for this message (bad payload, auth): record ``error_code``


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    message_id: str | None = None
    error_code: str | None = None
    retry_after: float | None = None
    # False when nothing reached the provider (held back by the shared pacing): the retry does
    # not use up one of the delivery's attempts.
    attempted: bool = True

    @classmethod
    def accepted(cls, message_id: str | None) -> SendResult:
        return cls(Outcome.ACCEPTED, message_id=message_id)


# The notification was cancelled before this request started (notifications/cancellation.py):
# nothing reached the provider, and the send job cancels the row instead of recording it.
STOPPED = SendResult(Outcome.RETRY, error_code="cancelled", attempted=False)


@dataclass(frozen=True)
class PushRequest:
    token: str
    spec: PushSpec
    push: RenderedPush
    apns_environment: str | None = None


class PushProvider(Protocol):
    name: str

    async def send(self, requests: Sequence[PushRequest]) -> list[SendResult]:
        """Exactly one result per request, in order. Never raises for per-message errors."""
        ...

    async def close(self) -> None: ...
