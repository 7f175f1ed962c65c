"""Fixtures of the tracking tests: an organisation with a connected tracking system, the rules,
and the push-provider emulator of the delivery tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.config import get_settings
from tests.notifications.conftest import emulated_settings, emulator, providers, worker_ctx  # noqa: F401
from tests.tracking.helpers import Org, make_org
from tracking.rules import Rules, get_rules


@pytest.fixture
def use_rules(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Rules]]:
    """Override tracking rules for one test, as CHUONG_TRACKING_RULES would."""

    def apply(**overrides: Any) -> Rules:
        monkeypatch.setattr(get_settings(), "tracking_rules", overrides)
        get_rules.cache_clear()
        return get_rules()

    get_rules.cache_clear()
    yield apply
    get_rules.cache_clear()


@pytest.fixture
async def org(client) -> Org:  # type: ignore[no-untyped-def]
    return await make_org(client)
