"""SMS fallback tests: real PostgreSQL and Redis, the emulator's SMS sink over a real socket
(through the real aiohttp gateway adapter), and the service clock moved instead of sleeping."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aioapns.logging import logger as aioapns_logger

from core.config import Settings, get_settings
from emulator import Emulator, EmulatorConfig
from notifications.providers.base import PushProvider
from notifications.providers.registry import build_providers, close_providers
from notifications.providers.sms import SmsProvider
from notifications.providers.sms_registry import build_sms_provider

aioapns_logger.setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
async def emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(ca_path=tmp_path_factory.mktemp("sms-emulator") / "ca.pem", seed=11)
    async with Emulator(config) as running:
        yield running


@pytest.fixture
def sms_settings(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, database_url, redis) -> Settings:
    settings = get_settings()
    for name, value in {
        # The emulator's push endpoints and credentials, and its SMS sink as the gateway.
        **emulator.app_settings(),
        "sms_ack_window_minutes": 10,
        "sms_degraded_ack_window_minutes": 2,
        "sms_daily_cap_per_user": 3,
        "sms_daily_cap_per_unit": 100,
        "sms_daily_cap_total": 1000,
        "sms_max_attempts": 3,
        "sms_retry_base_seconds": 30.0,
        "push_breaker_min_requests": 5,
        "push_breaker_error_rate": 0.5,
        "push_breaker_window_seconds": 300,
    }.items():
        monkeypatch.setattr(settings, name, value)
    emulator.reset()
    return settings


@pytest.fixture
async def sms_provider(sms_settings: Settings) -> AsyncIterator[SmsProvider]:
    provider = build_sms_provider(sms_settings)
    yield provider
    await provider.close()


@pytest.fixture
async def push_providers(sms_settings: Settings) -> AsyncIterator[dict[str, PushProvider]]:
    built = build_providers(sms_settings)
    yield built
    await close_providers(built)
