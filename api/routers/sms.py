"""SMS emergency fallback for operators (D-31): degraded-mode switch, push circuit breakers and
the SMS log. Phone numbers never appear here; the log names users by id."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from redis.exceptions import RedisError
from sqlalchemy import select

from api.deps import SessionDep, SmsOperator, require
from auth import audit
from auth.models import Unit
from auth.principal import Principal
from auth.roles import Permission
from core.codes import parse_ascii_int
from core.config import get_settings
from core.db import utcnow
from core.errors import ServiceUnavailable, Unprocessable
from core.schemas import Page, ResponseModel
from notifications import breaker
from notifications.sms import caps
from notifications.sms.degraded import DegradedState, get_state, set_state
from notifications.sms.models import SmsMessage
from notifications.sms.schemas import BreakerReset, DegradedModeSwitch

router = APIRouter(tags=["sms"])

Operator = Depends(SmsOperator())

SmsStatus = Literal["queued", "sending", "retrying", "sent", "failed", "capped", "no_phone"]


class DegradedModeOut(ResponseModel):
    enabled: bool
    reason: str | None
    changed_by_id: uuid.UUID | None
    changed_at: dt.datetime | None
    enabled_at: dt.datetime | None


class BreakerOut(ResponseModel):
    provider: str
    requests: int
    errors: int
    error_rate: float
    open: bool
    opened_at: str | None


class SmsStatusOut(ResponseModel):
    degraded_mode: DegradedModeOut
    breakers: list[BreakerOut]
    # True while a breaker is open and degraded mode is off: the operator should decide.
    degraded_mode_suggested: bool
    sms_today: int
    daily_cap_total: int


class SmsOut(ResponseModel):
    id: int
    notification_id: uuid.UUID
    user_id: uuid.UUID
    unit_id: uuid.UUID | None
    reason: str
    status: str
    attempts: int
    error_code: str | None
    provider: str | None
    provider_message_id: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    updated_at: dt.datetime


def _degraded_out(state: DegradedState) -> DegradedModeOut:
    return DegradedModeOut(
        enabled=state.enabled,
        reason=state.reason,
        changed_by_id=state.changed_by_id,
        changed_at=state.changed_at,
        enabled_at=state.enabled_at,
    )


@router.get("/status", response_model=SmsStatusOut)
async def sms_status(session: SessionDep, principal: Principal = Operator) -> SmsStatusOut:
    """Degraded mode, the push providers' circuit breakers and today's SMS count (system admins)."""
    state = await get_state(session)
    breakers = await _breakers()
    return SmsStatusOut(
        degraded_mode=_degraded_out(state),
        breakers=breakers,
        degraded_mode_suggested=any(item.open for item in breakers) and not state.enabled,
        sms_today=await caps.used_today(session, now=utcnow()),
        daily_cap_total=get_settings().sms_daily_cap_total,
    )


@router.get("/breakers", response_model=list[BreakerOut])
async def list_breakers(principal: Principal = Operator) -> list[BreakerOut]:
    """Error rate per push provider over the sliding window, and whether its breaker is open."""
    return await _breakers()


async def _breakers() -> list[BreakerOut]:
    try:
        states = await breaker.all_states()
    except RedisError as exc:  # the counters live in Redis; say so instead of a bare 500
        raise ServiceUnavailable(
            "Breaker state is unavailable (Redis)", code="breaker_state_unavailable"
        ) from exc
    return [BreakerOut(**vars(item)) for item in states]


@router.post("/breakers/{provider}/reset", response_model=BreakerOut)
async def reset_breaker(
    session: SessionDep,
    provider: Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9:._-]*$")],
    body: BreakerReset,
    principal: Principal = Depends(SmsOperator(step_up=True, allow_delegated=False)),
) -> BreakerOut:
    """Close an open breaker by hand and start a fresh sample (system admin, fresh step-up,
    audited ``push.breaker.reset``): for a provider whose outage is over but that gets too little
    traffic for the breaker to close by itself. 404 for an unknown provider, 409 if not open."""
    try:
        closed = await breaker.reset(session, provider=provider, reason=body.reason)
    except RedisError as exc:
        raise ServiceUnavailable(
            "Breaker state is unavailable (Redis)", code="breaker_state_unavailable"
        ) from exc
    return BreakerOut(**vars(closed))


@router.get("/degraded-mode", response_model=DegradedModeOut)
async def get_degraded_mode(session: SessionDep, principal: Principal = Operator) -> DegradedModeOut:
    return _degraded_out(await get_state(session))


@router.put("/degraded-mode", response_model=DegradedModeOut)
async def switch_degraded_mode(
    session: SessionDep,
    body: DegradedModeSwitch,
    principal: Principal = Depends(SmsOperator(step_up=True, allow_delegated=False)),
) -> DegradedModeOut:
    """Switch SMS degraded mode on or off (system admin, fresh two-factor step-up, audited).
    While on, emergency and high-priority targeted notifications fall back to SMS for users
    whose devices have not acknowledged them within ``sms_degraded_ack_window_minutes``."""
    state = await set_state(
        session, enabled=body.enabled, reason=body.reason, actor_id=principal.user_id, now=utcnow()
    )
    return _degraded_out(state)


@router.get("/messages", response_model=Page[SmsOut])
async def list_sms(
    session: SessionDep,
    status: SmsStatus | None = None,
    notification_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=20, description="next_cursor of the previous page")
    ] = None,
    principal: Principal = require(Permission.AUDIT_READ),
) -> Page[SmsOut]:
    """The SMS ledger, newest first. Unit admins see their subtree's users; system admins all."""
    query = select(SmsMessage).order_by(SmsMessage.id.desc()).limit(limit + 1)
    if cursor is not None:
        # ASCII digits only: "²".isdigit() is True but int("²") raises (core/codes.py).
        before_id = parse_ascii_int(cursor, maximum=2**63 - 1)
        if before_id is None:
            raise Unprocessable("cursor is not valid", details=[{"loc": ["query", "cursor"]}])
        query = query.where(SmsMessage.id < before_id)
    if status is not None:
        query = query.where(SmsMessage.status == status)
    if notification_id is not None:
        query = query.where(SmsMessage.notification_id == notification_id)
    if user_id is not None:
        query = query.where(SmsMessage.user_id == user_id)
    if not principal.sees_all_units:
        query = query.where(
            SmsMessage.unit_id.in_(
                select(Unit.id).where(Unit.path.startswith(principal.unit_path, autoescape=True))
            )
        )
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    audit.record(
        session,
        action="sms.log.read",
        object_type="sms_messages",
        details={"status": status, "notification_id": notification_id, "user_id": user_id, "rows": len(rows)},
    )
    return Page[SmsOut](
        items=[SmsOut.model_validate(row) for row in rows], next_cursor=str(rows[-1].id) if more else None
    )
