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

# The ``info`` mark of a column that holds ``encrypt_text`` output:
# ``mapped_column(LargeBinary, info={FIELD_ENCRYPTED: True})``. Re-encryption after a key rotation
# (core/field_rotation.py, `chuong keys rotate-fields`) finds the columns by it.
FIELD_ENCRYPTED = "field_encrypted"


@lru_cache
def _keys() -> tuple[Fernet, ...]:
    raw = get_settings().field_encryption_keys.get_secret_value()
    keys = tuple(Fernet(part.strip().encode()) for part in raw.split(",") if part.strip())
    if not keys:
        raise ValueError("CHUONG_FIELD_ENCRYPTION_KEYS is empty")
    return keys


@lru_cache
def _fernet() -> MultiFernet:
    return MultiFernet(list(_keys()))


def forget_keys() -> None:
    """Read CHUONG_FIELD_ENCRYPTION_KEYS again on next use (tests that rotate keys in-process)."""
    _keys.cache_clear()
    _fernet.cache_clear()


def encrypt_text(plain: str) -> bytes:
    return _fernet().encrypt(plain.encode("utf-8"))


def decrypt_text(token: bytes) -> str:
    try:
        return _fernet().decrypt(token).decode("utf-8")
    except InvalidToken as exc:  # a key was removed before the data was re-encrypted
        raise ValueError("field cannot be decrypted with the configured keys") from exc


def under_first_key(token: bytes) -> bool:
    """Was ``token`` encrypted with the first (current) key? Then a rotation leaves it alone."""
    try:
        _keys()[0].decrypt(token)
    except InvalidToken:
        return False
    return True


def reencrypt(token: bytes) -> bytes:
    """``token`` decrypted with whichever listed key opens it and encrypted with the first one
    (its original timestamp kept). ValueError when no listed key opens it."""
    try:
        return _fernet().rotate(token)
    except InvalidToken as exc:
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
