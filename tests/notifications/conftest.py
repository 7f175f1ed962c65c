"""The delivery pipeline against the in-process provider emulator, through the real
firebase-admin and aioapns clients."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from aioapns.logging import logger as aioapns_logger

from core.config import get_settings
from core.db import transaction
from devices import service as devices
from devices.schemas import DeviceRegister
from emulator import Emulator, EmulatorConfig
from notifications.providers.base import PushProvider
from notifications.providers.registry import build_providers, close_providers
from workers.context import WorkerResources, arq_ctx

aioapns_logger.setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
async def emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(ca_path=tmp_path_factory.mktemp("pipeline-emulator") / "ca.pem", seed=7)
    async with Emulator(config) as running:
        yield running


@pytest.fixture
def emulated_settings(emulator: Emulator, monkeypatch: pytest.MonkeyPatch):
    settings = get_settings()
    # The emulator's endpoints, service account and .p8 key: production's code path.
    for name, value in emulator.app_settings().items():
        monkeypatch.setattr(settings, name, value)
    emulator.reset()
    return settings


@pytest.fixture
async def providers(emulated_settings) -> AsyncIterator[dict[str, PushProvider]]:
    built = build_providers(emulated_settings)
    yield built
    await close_providers(built)


@pytest.fixture
def worker_ctx(providers) -> dict:
    return arq_ctx(WorkerResources(providers=providers))


async def register_devices(
    specs: list[tuple[str, str, str]],
    *,
    topics: list[str] | None = None,
    province: str | None = None,
    app_version: str | None = None,
) -> list[uuid.UUID]:
    """(provider, token, locale) → device ids, anonymous portal devices."""
    ids = []
    async with transaction() as session:
        for provider, token, locale in specs:
            body = DeviceRegister(
                app="portal",
                platform="android" if provider == "fcm" else "ios",
                provider=provider,
                token=token,
                locale=locale,
                topics=topics or [],
                province=province,
                app_version=app_version,
            )
            registration = await devices.register(session, body=body, user_id=None)
            ids.append(registration.device.id)
    return ids
