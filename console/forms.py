"""Helpers shared by the console's form handlers."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ensure_step_up
from auth import mfa
from auth.principal import Principal
from console.i18n import _
from console.templating import BASE
from core.errors import Forbidden, Unauthorized, Unprocessable


def see_other(path: str) -> RedirectResponse:
    """Post/redirect/get: a reload never repeats the action."""
    return RedirectResponse(BASE + path, status_code=303)


async def step_up(request: Request, session: AsyncSession, principal: Principal, code: str) -> None:
    """The console's step-up: the form carries a fresh TOTP code, verified in this request
    (same single-use rule as ``POST /v1/auth/mfa/verify``), then the API's own freshness check."""
    if code.strip():
        assert principal.actor is not None and principal.session is not None
        try:
            await mfa.verify(session, user=principal.actor, auth_session=principal.session, code=code)
        except Unauthorized as exc:
            # A 401 would end the console session; a wrong step-up code only refuses the action.
            raise Forbidden(_("Wrong two-factor code"), code="step_up_failed") from exc
    await ensure_step_up(request, principal)


def invalid(exc: ValidationError) -> Unprocessable:
    """A form that does not pass the API's request model: name the fields, never echo values."""
    fields = sorted({str(err["loc"][-1]) for err in exc.errors() if err.get("loc")})
    return Unprocessable(_("Please check these fields: ") + ", ".join(fields), code="validation_error")
