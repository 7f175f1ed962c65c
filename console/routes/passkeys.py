"""One's own passkeys in the console: the list (name, added, last used), adding one, revoking one,
and the passkey sign-in and step-up. The ceremonies are the API's use cases (auth/passkeys.py);
the page's script (static/passkeys.js) exchanges JSON with the four ceremony routes here, which
answer failures as JSON too (a refused passkey must not end the console session as a 401 page
would)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from api.deps import Authenticated, SessionDep, Verifying, ensure_step_up
from auth import passkey_admin, passkeys
from auth.passkey_policy import passkey_required
from auth.passkey_schemas import PasskeyAssertionIn, PasskeyRegistrationIn
from auth.principal import Principal
from auth.roles import Role
from console.forms import safe_next, see_other, step_up
from console.i18n import _
from console.security import verify_csrf
from console.templating import BASE, render
from core.errors import ChuongError
from core.schemas import RequestModel

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

OwnAccount = Depends(Authenticated(allow_delegated=False, own_account=True))
Code = Annotated[str, Form(max_length=32)]


class StartRegistration(RequestModel):
    code: Annotated[str, Field(max_length=32)] = ""


class FinishAssertion(PasskeyAssertionIn):
    next: Annotated[str, Field(max_length=512)] = "/"


def _refused(exc: ChuongError) -> JSONResponse:
    messages = {
        "passkey_challenge_invalid": _("The request expired; try again."),
        "invalid_passkey": _("The passkey could not be verified."),
        "passkey_invalid": _("The passkey could not be verified."),
        "passkey_already_registered": _("This passkey is already registered."),
        "step_up_required": _("Enter your current two-factor code to add a passkey."),
        "step_up_failed": _("Wrong two-factor code"),
    }
    return JSONResponse(
        {"code": exc.code, "message": messages.get(exc.code, exc.message)},
        status_code=exc.status_code,
        headers=exc.headers if exc.status_code == 429 else None,
    )


@router.get("/passkeys")
async def passkeys_page(
    request: Request, session: SessionDep, done: str = "", principal: Principal = OwnAccount
) -> Response:
    assert principal.actor is not None
    keys = await passkeys.credentials_of(session, principal.actor.id)
    return render(
        request,
        "passkeys.html",
        {
            "passkeys": keys,
            "required": passkey_required(Role(principal.actor.role)),
            "done": done,
        },
        principal=principal,
    )


@router.post("/passkeys/registration/options")
async def begin_registration(
    request: Request, body: StartRegistration, session: SessionDep, principal: Principal = OwnAccount
) -> Response:
    """A new credential needs a fresh step-up: the code in the form, or a recent verification."""
    assert principal.actor is not None and principal.session is not None
    try:
        await step_up(request, session, principal, body.code)
        options = await passkeys.begin_registration(
            session, user=principal.actor, auth_session=principal.session
        )
    except ChuongError as exc:
        if exc.status_code == 401:
            raise
        return _refused(exc)
    return JSONResponse({"ceremony_id": options.ceremony_id, "options": options.options})


@router.post("/passkeys/registration")
async def finish_registration(
    request: Request, body: PasskeyRegistrationIn, session: SessionDep, principal: Principal = OwnAccount
) -> Response:
    assert principal.actor is not None and principal.session is not None
    try:
        await ensure_step_up(request, principal)
        await passkeys.finish_registration(
            session,
            user=principal.actor,
            auth_session=principal.session,
            ceremony_id=body.ceremony_id,
            name=body.name,
            credential=body.credential,
        )
    except ChuongError as exc:
        return _refused(exc)
    return JSONResponse({"redirect": f"{BASE}/passkeys?done=passkey_added"})


@router.post("/passkeys/{passkey_id}/revoke")
async def revoke(
    request: Request,
    passkey_id: uuid.UUID,
    session: SessionDep,
    totp_code: Code = "",
    principal: Principal = OwnAccount,
) -> Response:
    await step_up(request, session, principal, totp_code)
    await passkey_admin.revoke_own(session, principal=principal, passkey_id=passkey_id)
    return see_other("/passkeys?done=passkey_revoked")


@router.post("/passkeys/assertion/options")
async def begin_assertion(session: SessionDep, principal: Principal = Verifying) -> Response:
    assert principal.actor is not None and principal.session is not None
    try:
        options = await passkeys.begin_assertion(
            session, user=principal.actor, auth_session=principal.session
        )
    except ChuongError as exc:
        return _refused(exc)
    return JSONResponse({"ceremony_id": options.ceremony_id, "options": options.options})


@router.post("/passkeys/assertion")
async def finish_assertion(
    body: FinishAssertion, session: SessionDep, principal: Principal = Verifying
) -> Response:
    """Completes the sign-in (or refreshes the step-up) and says where to go next."""
    assert principal.actor is not None and principal.session is not None
    try:
        await passkeys.finish_assertion(
            session,
            user=principal.actor,
            auth_session=principal.session,
            ceremony_id=body.ceremony_id,
            credential=body.credential,
        )
    except ChuongError as exc:
        return _refused(exc)
    return JSONResponse({"redirect": BASE + safe_next(body.next)})
