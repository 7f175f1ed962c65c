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
from core.types import clean_text


def see_other(path: str) -> RedirectResponse:
    """Post/redirect/get: a reload never repeats the action."""
    return RedirectResponse(BASE + path, status_code=303)


def safe_next(value: object) -> str:
    """Only a path inside the console: never an absolute URL or a scheme-relative one."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


async def step_up(request: Request, session: AsyncSession, principal: Principal, code: str) -> None:
    """The console's step-up: the form carries a fresh TOTP code, verified in this request
    (same single-use rule as ``POST /v1/auth/mfa/verify``), then the API's own freshness check.
    Without a code, a recent verification (a passkey, docs/security.md) passes. A refusal carries
    the form's page (its ``back`` field: the console sends no Referer) so that the error page can
    offer to confirm with a passkey and come back."""
    back = safe_next((await request.form()).get("back"))
    try:
        if code.strip():
            assert principal.actor is not None and principal.session is not None
            try:
                await mfa.verify(session, user=principal.actor, auth_session=principal.session, code=code)
            except Unauthorized as exc:
                # A 401 would end the console session; a wrong step-up code only refuses the action.
                raise Forbidden(_("Wrong two-factor code"), code="step_up_failed") from exc
        await ensure_step_up(request, principal)
    except Forbidden as exc:
        exc.details = [*exc.details, {"back": back}]
        raise


def invalid(exc: ValidationError) -> Unprocessable:
    """A form that does not pass the API's request model: name the fields, never echo values."""
    fields = sorted({str(err["loc"][-1]) for err in exc.errors() if err.get("loc")})
    return Unprocessable(_("Please check these fields: ") + ", ".join(fields), code="validation_error")


async def reject_unstorable_input(request: Request) -> None:
    """App-wide dependency: every query and form value obeys the API's text hygiene (no NUL, no
    lone surrogate), so a console form cannot carry to PostgreSQL what a JSON body cannot
    (a NUL in the sign-in name was a 500). Codes are then read by the one rule of core/codes.py
    in the domain functions the forms call."""
    fields: list[tuple[str, object]] = list(request.query_params.multi_items())
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.headers.get(
        "content-type", ""
    ).startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        fields.extend((await request.form()).multi_items())
    unstorable = sorted({name for name, value in fields if isinstance(value, str) and not _storable(value)})
    if unstorable:
        raise Unprocessable(_("Please check these fields: ") + ", ".join(unstorable), code="validation_error")


def _storable(value: str) -> bool:
    try:
        clean_text(value)
    except ValueError:
        return False
    return True
