"""The SMS provider interface (D-31: SMS is only an emergency fallback), and the provider of a
process without a gateway: nothing is sent (each SMS waits as a ``not_configured`` retry).
Adapters (sms_http.py) implement it; sms_registry.py builds the configured one."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class SmsOutcome(StrEnum):
    ACCEPTED = "accepted"  # the gateway took the message
    RETRY = "retry"  # transient (timeout, 429, 5xx, connection refused): try again later
    FAILED = "failed"  # permanent (bad number, auth, 4xx): never retried


@dataclass(frozen=True)
class SmsRequest:
    to: str  # E.164-ish digits, decrypted just before sending and never logged
    text: str
    sender: str
    # Our ledger id: sent as an idempotency key, so a gateway that deduplicates turns a resend
    # after a lost reply (or a killed worker) into a no-op.
    reference: str


@dataclass(frozen=True)
class SmsResult:
    outcome: SmsOutcome
    message_id: str | None = None
    error_code: str | None = None


class SmsProvider(Protocol):
    name: str

    async def send(self, request: SmsRequest) -> SmsResult:
        """Never raises for a per-message failure: it is classified in the result."""
        ...

    async def close(self) -> None: ...


class UnconfiguredSms:
    name = "not_configured"

    async def send(self, request: SmsRequest) -> SmsResult:
        return SmsResult(SmsOutcome.RETRY, error_code="not_configured")

    async def close(self) -> None:
        return None
