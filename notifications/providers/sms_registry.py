"""Building the SMS provider from settings: the configured HTTP gateway. Without one nothing is
sent (each SMS waits as a ``not_configured`` retry); production refuses to start without one
(core/production.py). Local runs and tests point ``sms_gateway_url`` at the provider emulator's
sink."""

from __future__ import annotations

from core.config import Settings
from notifications.providers.sms import SmsProvider, UnconfiguredSms
from notifications.providers.sms_http import HttpSmsGateway


def build_sms_provider(settings: Settings) -> SmsProvider:
    """Call inside the running event loop (the adapter owns an aiohttp session)."""
    if not settings.sms_gateway_url:
        return UnconfiguredSms()
    return HttpSmsGateway(
        url=settings.sms_gateway_url,
        username=settings.sms_gateway_username,
        password=settings.sms_gateway_password.get_secret_value() if settings.sms_gateway_password else None,
        api_key=settings.sms_gateway_api_key.get_secret_value() if settings.sms_gateway_api_key else None,
        timeout=settings.sms_timeout_seconds,
    )
