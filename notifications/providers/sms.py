"""The SMS provider interface (D-31: SMS is only an emergency fallback) and building the
provider from settings: the configured HTTP gateway, or the emulator's sink when none is set
(as FCM/APNs fall back to the emulator)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from core.config import Settings


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


def gateway_url(settings: Settings) -> str:
    if settings.sms_gateway_url:
        return settings.sms_gateway_url
    return f"http://{settings.emulator_host}:{settings.emulator_control_port}/sms/send"


def build_sms_provider(settings: Settings) -> SmsProvider:
    """Call inside the running event loop (the adapter owns an aiohttp session)."""
    from notifications.providers.sms_http import HttpSmsGateway

    return HttpSmsGateway(
        url=gateway_url(settings),
        username=settings.sms_gateway_username,
        password=settings.sms_gateway_password.get_secret_value() if settings.sms_gateway_password else None,
        api_key=settings.sms_gateway_api_key.get_secret_value() if settings.sms_gateway_api_key else None,
        timeout=settings.sms_timeout_seconds,
        name="http" if settings.sms_gateway_url else "emulator",
    )
