"""Fixtures of the audit tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from core.config import Settings, get_settings


@pytest.fixture
def audit_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Reconfigure the audit keys the way an operator does (environment, then a restart, here a
    fresh ``get_settings()``); everything is restored afterwards."""

    def configure(
        *, keys: dict[str, str] | None = None, active: str | None = None, legacy: bool = True
    ) -> None:
        if keys is None:
            monkeypatch.delenv("CHUONG_AUDIT_HMAC_KEYS", raising=False)
        else:
            monkeypatch.setenv("CHUONG_AUDIT_HMAC_KEYS", json.dumps(keys))
        if active is None:
            monkeypatch.delenv("CHUONG_AUDIT_ACTIVE_KID", raising=False)
        else:
            monkeypatch.setenv("CHUONG_AUDIT_ACTIVE_KID", active)
        if not legacy:
            monkeypatch.delenv("CHUONG_AUDIT_HMAC_KEY", raising=False)
        # A developer's .env would fill in what was just removed.
        monkeypatch.setitem(Settings.model_config, "env_file", None)
        get_settings.cache_clear()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()
