"""Field-encryption keys switched in-process, as an operator switches CHUONG_FIELD_ENCRYPTION_KEYS
and restarts: the settings change and core/crypto.py reads them again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from core import crypto
from core.config import get_settings

UseKeys = Callable[..., None]


@pytest.fixture
def use_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[UseKeys]:
    """``use_keys(b, a)``: CHUONG_FIELD_ENCRYPTION_KEYS=b,a (the first encrypts, all decrypt)."""

    def use(*keys: bytes) -> None:
        joined = ",".join(key.decode() for key in keys)
        monkeypatch.setattr(get_settings(), "field_encryption_keys", SecretStr(joined))
        crypto.forget_keys()

    yield use
    monkeypatch.undo()
    crypto.forget_keys()


@pytest.fixture
def key_a() -> bytes:
    return Fernet.generate_key()


@pytest.fixture
def key_b() -> bytes:
    return Fernet.generate_key()
