"""Field encryption and keyed hashing.

Keys come from settings, never from the database. ``MultiFernet`` lets operators rotate keys:
the first key encrypts, every listed key decrypts.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.config import get_settings


@lru_cache
def _fernet() -> MultiFernet:
    raw = get_settings().field_encryption_keys.get_secret_value()
    keys = [Fernet(part.strip().encode()) for part in raw.split(",") if part.strip()]
    if not keys:
        raise ValueError("CHUONG_FIELD_ENCRYPTION_KEYS is empty")
    return MultiFernet(keys)


def encrypt_text(plain: str) -> bytes:
    return _fernet().encrypt(plain.encode("utf-8"))


def decrypt_text(token: bytes) -> str:
    try:
        return _fernet().decrypt(token).decode("utf-8")
    except InvalidToken as exc:  # a key was removed before the data was re-encrypted
        raise ValueError("field cannot be decrypted with the configured keys") from exc


def keyed_hash(value: str) -> str:
    """HMAC-SHA256 with the token pepper: for high-entropy secrets (API keys, refresh tokens)
    where a slow password hash buys nothing and a plain hash would let a DB thief check guesses."""
    pepper = get_settings().token_pepper.get_secret_value().encode()
    return hmac.new(pepper, _exact_bytes(value), hashlib.sha256).hexdigest()


def _exact_bytes(value: str) -> bytes:
    # "surrogatepass": a lone surrogate that slipped past the edge still gives distinct bytes
    # instead of a UnicodeEncodeError; for every valid string this is plain UTF-8.
    return value.encode("utf-8", "surrogatepass")


def constant_time_equals(a: str, b: str) -> bool:
    """Compare secrets of any text: ``hmac.compare_digest`` on ``str`` raises TypeError for
    non-ASCII input ("٠١٢"), so both sides are compared as bytes. Never folded: a secret matches
    only itself (docs/security.md, "Input normalisation")."""
    return hmac.compare_digest(_exact_bytes(a), _exact_bytes(b))
