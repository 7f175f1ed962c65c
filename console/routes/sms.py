"""The SMS fallback's operator pages (D-31, docs/operations.md "SMS degraded mode"): the degraded
-mode switch with who switched it and when, and the push providers' circuit breakers. System
admins only, through the API's own ``SmsOperator`` policy; switching and resetting also need a
fresh two-factor code and the operator acting as themself, as ``PUT /v1/sms/degraded-mode`` and
``POST /v1/sms/breakers/{provider}/reset`` do. Both call the same domain functions, which audit
``sms.degraded_mode.on`` / ``.off`` and ``push.breaker.reset``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import SessionDep, SmsOperator
from auth.models import User
from auth.principal import Principal
from console.form_errors import describe
from console.forms import see_other, step_up
from console.i18n import _
from console.security import verify_csrf
from console.templating import render
from core.config import get_settings
from core.db import utcnow
from core.errors import NotFound, ServiceUnavailable, Unprocessable
from notifications import breaker
from notifications.sms import caps
from notifications.sms.degraded import get_state, set_state
from notifications.sms.schemas import BreakerReset, DegradedModeSwitch

router = APIRouter(prefix="/admin", dependencies=[Depends(verify_csrf)], include_in_schema=False)

Operator = Depends(SmsOperator())
Switcher = Depends(SmsOperator(allow_delegated=False))
Field = Annotated[str, Form(max_length=2000)]
Code = Annotated[str, Form(max_length=32)]
_PROVIDER = re.compile(r"^[a-z0-9][a-z0-9:._-]{0,63}$")


def _confirmed(confirm: str) -> None:
    if confirm != "yes":
        raise Unprocessable(_("Tick the box to confirm."), code="confirmation_required")


async def _breakers() -> list[dict[str, Any]] | None:
    """Each provider's breaker, or None when Redis (where the counters live) does not answer."""
    try:
        states = await breaker.all_states()
    except RedisError:
        return None
    return [
        {**vars(s), "opened": dt.datetime.fromisoformat(s.opened_at) if s.opened_at else None} for s in states
    ]


async def _sms_page(
    request: Request,
    session: AsyncSession,
    principal: Principal,
    *,
    done: str = "",
    error: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    state = await get_state(session)
    changed_by = await session.get(User, state.changed_by_id) if state.changed_by_id else None
    breakers = await _breakers()
    settings = get_settings()
    return render(
        request,
        "admin/sms.html",
        {
            "state": state,
            "changed_by": changed_by,
            "breakers": breakers,
            "suggested": bool(breakers) and any(b["open"] for b in breakers or []) and not state.enabled,
            "sms_today": await caps.used_today(session, now=utcnow()),
            "daily_cap_total": settings.sms_daily_cap_total,
            "ack_minutes": settings.sms_degraded_ack_window_minutes,
            "done": done,
            "error": error,
            "values": values or {},
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/sms")
async def sms_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = Operator
) -> Response:
    return await _sms_page(request, session, principal, done=done)


@router.post("/sms/degraded-mode")
async def switch_degraded_mode(
    request: Request,
    session: SessionDep,
    enabled: Annotated[str, Form(max_length=8)],
    reason: Field = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
    totp_code: Code = "",
    principal: Principal = Switcher,
) -> Response:
    """On or off with a reason, a ticked box and a fresh code. The form says which way: a second
    operator's identical click after the first changed nothing but the reason and the time."""
    if enabled not in ("on", "off"):
        raise Unprocessable(_("Please check these fields: ") + "enabled", code="validation_error")
    _confirmed(confirm)
    try:
        body = DegradedModeSwitch(enabled=enabled == "on", reason=reason)
    except ValidationError as exc:
        return await _sms_page(
            request, session, principal, error=describe(exc), values={"reason": reason}, status_code=422
        )
    await step_up(request, session, principal, totp_code)
    await set_state(
        session, enabled=body.enabled, reason=body.reason, actor_id=principal.user_id, now=utcnow()
    )
    return see_other(f"/admin/sms?done=degraded_{enabled}")


async def _breakers_page(
    request: Request,
    principal: Principal,
    *,
    done: str = "",
    error: str = "",
    status_code: int = 200,
) -> Response:
    settings = get_settings()
    return render(
        request,
        "admin/breakers.html",
        {
            "breakers": await _breakers(),
            "window_minutes": settings.push_breaker_window_seconds // 60,
            "min_requests": settings.push_breaker_min_requests,
            "threshold": settings.push_breaker_error_rate,
            "done": done,
            "error": error,
        },
        principal=principal,
        status_code=status_code,
    )


@router.get("/breakers")
async def breakers_page(request: Request, done: str = "", principal: Principal = Operator) -> Response:
    return await _breakers_page(request, principal, done=done)


@router.post("/breakers/{provider}/reset")
async def reset_breaker(
    request: Request,
    provider: str,
    session: SessionDep,
    reason: Field = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
    totp_code: Code = "",
    principal: Principal = Switcher,
) -> Response:
    """Close an open breaker and start a fresh sample (``breaker.reset`` says when that is right)."""
    if not _PROVIDER.match(provider):
        raise NotFound("No breaker for this provider", code="breaker_not_found")
    _confirmed(confirm)
    try:
        body = BreakerReset(reason=reason)
    except ValidationError as exc:
        return await _breakers_page(request, principal, error=describe(exc), status_code=422)
    await step_up(request, session, principal, totp_code)
    try:
        await breaker.reset(session, provider=provider, reason=body.reason)
    except RedisError as exc:
        raise ServiceUnavailable(
            "Breaker state is unavailable (Redis)", code="breaker_state_unavailable"
        ) from exc
    return see_other("/admin/breakers?done=breaker_reset")
