"""Both FCM transports (firebase-admin's own send_each_async, and fcm_http1) built exactly as
the workers build them, against one in-process emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.config import Settings, get_settings
from emulator import Emulator, EmulatorConfig
from notifications.providers.base import PushProvider
from notifications.providers.registry import build_providers, close_providers

TRANSPORTS = ("firebase_admin", "http1")


@pytest.fixture(scope="session")
async def emulator(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(ca_path=tmp_path_factory.mktemp("providers-emulator") / "ca.pem", seed=11)
    async with Emulator(config) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator: Emulator) -> None:
    emulator.reset()


def emulated(emulator: Emulator, **changes: object) -> Settings:
    return get_settings().model_copy(
        update={
            **emulator.app_settings(),
            # The transports alone: the shared pacing (tests/notifications/test_ratecontrol.py)
            # would carry one test's quota back-off into the next.
            "pacing_enabled": False,
            **changes,
        }
    )


async def open_fcm(emulator: Emulator, transport: str, **changes: object) -> tuple[PushProvider, dict]:
    built = build_providers(emulated(emulator, fcm_transport=transport, **changes))
    return built["fcm"], built


@pytest.fixture(params=TRANSPORTS)
async def fcm(request: pytest.FixtureRequest, emulator: Emulator) -> AsyncIterator[PushProvider]:
    provider, built = await open_fcm(emulator, request.param)
    yield provider
    await close_providers(built)
