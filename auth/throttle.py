"""Per-account throttling of failed sign-ins and TOTP codes (D-22, D-41).

Counted per account, not per IP, so an attacker rotating addresses gains nothing. After
``login_backoff_after_failures`` failures each further attempt waits exponentially longer; after
``login_lockout_after_failures`` the account is locked until a unit admin unlocks it or the
lockout time passes. A success resets the counter.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from auth.metrics import SIGNIN_FAILURES, SIGNIN_THROTTLED
from auth.models import User
from core.config import get_settings
from core.db import abandon, detached_transaction, utcnow
from core.errors import TooManyRequests


def check_not_throttled(user: User, *, now: dt.datetime) -> None:
    if user.locked_until is not None and user.locked_until > now:
        SIGNIN_THROTTLED.labels("account_locked").inc()
        raise TooManyRequests(
            "Account locked after repeated failures; ask a unit admin to unlock it",
            code="account_locked",
            retry_after=math.ceil((user.locked_until - now).total_seconds()),
        )
    if user.throttled_until is not None and user.throttled_until > now:
        SIGNIN_THROTTLED.labels("account_throttled").inc()
        raise TooManyRequests(
            "Too many failed attempts; wait before trying again",
            code="throttled",
            retry_after=math.ceil((user.throttled_until - now).total_seconds()),
        )


def _backoff(failures: int) -> tuple[dt.timedelta | None, dt.timedelta | None]:
    settings = get_settings()
    throttle = lock = None
    if failures >= settings.login_backoff_after_failures:
        exponent = failures - settings.login_backoff_after_failures
        throttle = dt.timedelta(seconds=min(2 ** min(exponent, 20), settings.login_backoff_max_seconds))
    if failures >= settings.login_lockout_after_failures:
        lock = dt.timedelta(seconds=settings.login_lockout_seconds)
    return throttle, lock


async def record_failure(
    request_session: AsyncSession, *, user_id: uuid.UUID, unit_id: uuid.UUID, action: str, reason: str
) -> None:
    """Count a failure and audit it in a transaction of its own: the request that failed rolls
    back, but the failure must stick.

    The request's own transaction is rolled back *first*. It may hold the very ``users`` row
    counted here (a sign-in flushes the password rehash, a step-up the session's row, ...), and
    a second transaction updating that row would wait for the first, which waits for the second:
    a wait PostgreSQL cannot see as a deadlock, so the request used to hang for ever. The request
    fails anyway, so nothing of it may stay."""
    SIGNIN_FAILURES.labels(action, reason).inc()
    await abandon(request_session)
    now = utcnow()
    async with detached_transaction() as session:
        failures = (
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(failed_attempts=User.failed_attempts + 1)
                .returning(User.failed_attempts)
            )
        ).scalar_one()
        throttle, lock = _backoff(failures)
        values: dict[str, object] = {}
        if throttle is not None:
            values["throttled_until"] = now + throttle
        if lock is not None:
            values["locked_until"] = now + lock
        if values:
            await session.execute(update(User).where(User.id == user_id).values(**values))
        audit.record(
            session,
            action=action,
            outcome="failure",
            object_type="user",
            object_id=user_id,
            actor_kind="user",
            actor_id=user_id,
            unit_id=unit_id,
            details={"reason": reason, "failed_attempts": failures, "locked": lock is not None},
        )


def reset_failures(user: User) -> None:
    user.failed_attempts = 0
    user.throttled_until = None
    user.locked_until = None


async def unlock(session: AsyncSession, *, user: User) -> None:
    reset_failures(user)
    await session.flush()
