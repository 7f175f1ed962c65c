"""Password hashing (argon2id) and policy (D-26): length, common-password rejection, maximum age."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from core.config import get_settings
from core.errors import Unprocessable

# zxcvbn scores 0–4 against its dictionaries of common passwords, names and keyboard patterns;
# below 3 the password is guessable in an online or slow-hash offline attack.
MIN_ZXCVBN_SCORE = 3
MAX_PASSWORD_LENGTH = 256


@lru_cache
def _hasher() -> PasswordHasher:
    settings = get_settings()
    # argon2id; defaults follow RFC 9106's second recommended (low-memory) profile.
    return PasswordHasher(
        time_cost=settings.argon2_time_cost,
        memory_cost=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)


# A valid hash to verify against when the account does not exist, so that the response time
# does not reveal which usernames exist.
@lru_cache
def dummy_hash() -> str:
    return hash_password("chuong-timing-equaliser-not-a-password")


def check_policy(password: str, *, user_inputs: list[str]) -> None:
    min_length = get_settings().password_min_length
    if len(password) < min_length:
        raise Unprocessable(f"Password must be at least {min_length} characters long", code="weak_password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Unprocessable(
            f"Password must be at most {MAX_PASSWORD_LENGTH} characters", code="weak_password"
        )
    # zxcvbn refuses more than 72 characters (and is quadratic in the length); a passphrase's
    # first 72 characters decide its score in practice.
    result = zxcvbn(password[:72], user_inputs=[value[:72] for value in user_inputs if value])
    if result["score"] < MIN_ZXCVBN_SCORE:
        feedback = result.get("feedback") or {}
        hints = [feedback.get("warning") or "", *(feedback.get("suggestions") or [])]
        raise Unprocessable(
            "Password is too common or too easy to guess",
            code="weak_password",
            details=[{"hint": hint} for hint in hints if hint],
        )


def is_expired(password_changed_at: dt.datetime, now: dt.datetime) -> bool:
    max_age = get_settings().password_max_age_days
    return max_age > 0 and now - password_changed_at > dt.timedelta(days=max_age)
