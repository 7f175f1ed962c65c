"""Sign-in (password + TOTP), first-time TOTP enrolment, password change, own sessions.

Each handler calls the use case the API calls and is guarded by the policy object the API's sign-in
routes use (``api.deps`` ``SignedIn``, ``Verifying`` …), so a restricted session can do here exactly
what it can do there.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import segno
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import (
    PUBLIC,
    ChangingPassword,
    EndingOwnSessions,
    Enrolling,
    FullSession,
    SessionDep,
    SigningOut,
    Verifying,
)
from auth import account_sessions, mfa, passkeys, ratelimit
from auth import login as login_service
from auth.models import User
from auth.networks import NETWORK_NOT_ALLOWED
from auth.passkey_policy import passkey_required
from auth.principal import Principal
from auth.roles import Role
from auth.users import change_own_password
from console import i18n
from console.forms import safe_next
from console.i18n import _
from console.security import (
    clear_session_cookie,
    csrf_cookie,
    rotate_csrf,
    seal_session,
    session_cookie,
    verify_csrf,
)
from console.templating import BASE, render
from core.codes import fold
from core.context import current_context
from core.errors import ChuongError

router = APIRouter(dependencies=[Depends(verify_csrf)], include_in_schema=False)

Username = Annotated[str, Form(min_length=1, max_length=150)]
Password = Annotated[str, Form(min_length=1, max_length=1024)]
Code = Annotated[str, Form(max_length=32)]
NextPath = Annotated[str, Form(max_length=512)]


async def _passkey_state(session: AsyncSession, user: User) -> tuple[bool, bool, bool]:
    """(holds a passkey, role must use passkeys, must use one now)."""
    held = await passkeys.has_passkey(session, user.id)
    required = passkey_required(Role(user.role))
    return held, required, held and required


async def _after_second_factor(session: AsyncSession, user: User, next_path: str) -> str:
    """Where a completed sign-in goes: a role that must use passkeys and has none is guided to
    add one (D-22); everyone else to the page they asked for."""
    held, required, _only = await _passkey_state(session, user)
    return "/passkeys" if required and not held else safe_next(next_path)


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(BASE + path, status_code=303)


@router.get("/login", dependencies=[PUBLIC])
async def login_page(request: Request, next: str = "/", reason: str = "") -> Response:
    return render(request, "login.html", {"next": safe_next(next), "error": None, "reason": reason})


@router.post("/login", dependencies=[PUBLIC])
async def login(
    request: Request,
    session: SessionDep,
    username: Username,
    password: Password,
    totp_code: Code = "",
    next: NextPath = "/",
) -> Response:
    ctx = current_context()
    await ratelimit.enforce_login(ctx.ip or "")
    try:
        result = await login_service.login(
            session,
            username=fold(username),  # the API's rule (auth/schemas.py LoginRequest): NFKC-folded
            password=password,
            totp_code=totp_code.strip() or None,
            ip=ctx.ip,
            user_agent=ctx.user_agent,
        )
    except ChuongError as exc:
        # The failure was audited in its own transaction. Drop the half-opened session (a wrong
        # code fails after the session row was added); one message for every cause of a 401
        # (no account enumeration), the throttle's own message otherwise.
        await session.rollback()
        if exc.code == NETWORK_NOT_ALLOWED:
            message = i18n.network_refusal_message(exc)
        elif exc.status_code != 401:
            message = exc.message
        elif "mfa" in exc.code:
            message = _("Wrong two-factor code")
        else:
            message = _("Invalid username or password")
        return render(
            request,
            "login.html",
            {"next": safe_next(next), "error": message, "reason": ""},
            status_code=exc.status_code,
        )
    restriction = result.restriction.value if result.restriction else None
    target = {
        "mfa_enrolment_required": "/mfa/enrol",
        "mfa_required": "/mfa/verify",
        "passkey_required": "/mfa/verify",
        "password_change_required": "/password",
    }.get(restriction or "") or await _after_second_factor(session, result.user, next)
    response = _see_other(target)
    response.headers.append(
        "set-cookie",
        session_cookie(
            seal_session(
                user_id=result.user.id,
                session_id=result.tokens.session_id,
                token_version=result.user.token_version,
            )
        ),
    )
    response.headers.append("set-cookie", csrf_cookie(rotate_csrf(request)))
    return response


@router.post("/logout")
async def logout(session: SessionDep, principal: Principal = SigningOut) -> Response:
    assert principal.session is not None
    await login_service.logout(session, auth_session=principal.session)
    response = _see_other("/login")
    response.headers.append("set-cookie", clear_session_cookie())
    return response


@router.post("/lang", dependencies=[PUBLIC])
async def switch_language(language: Annotated[str, Form(max_length=5)], next: NextPath = "/") -> Response:
    response = _see_other(safe_next(next))
    if language in i18n.LANGUAGES:
        response.set_cookie(
            i18n.LANGUAGE_COOKIE,
            language,
            max_age=365 * 24 * 3600,
            path=BASE,
            secure=True,
            httponly=True,
            samesite="strict",
        )
    return response


async def _verify_context(
    session: AsyncSession, user: User, next_path: str, error: str | None
) -> dict[str, object]:
    held, _required, only = await _passkey_state(session, user)
    return {"error": error, "has_passkey": held, "passkey_only": only, "next": safe_next(next_path)}


@router.get("/mfa/verify")
async def verify_page(
    request: Request, session: SessionDep, next: str = "/", principal: Principal = Verifying
) -> Response:
    """Sign-in's second step, and the step-up before a sensitive action (``next`` returns there):
    the passkey first when the account holds one, the code unless the role must use passkeys."""
    assert principal.actor is not None
    context = await _verify_context(session, principal.actor, next, None)
    return render(request, "mfa_verify.html", context, principal=principal)


@router.post("/mfa/verify")
async def verify(
    request: Request,
    session: SessionDep,
    code: Code = "",
    recovery_code: Code = "",
    next: NextPath = "/",
    principal: Principal = Verifying,
) -> Response:
    assert principal.actor is not None and principal.session is not None
    try:
        if recovery_code.strip():
            await mfa.use_recovery_code(
                session, user=principal.actor, auth_session=principal.session, code=recovery_code.strip()
            )
        else:
            await mfa.verify(session, user=principal.actor, auth_session=principal.session, code=code)
    except ChuongError as exc:
        if exc.status_code != 401:
            raise
        context = await _verify_context(session, principal.actor, next, _("Wrong code"))
        return render(request, "mfa_verify.html", context, principal=principal, status_code=401)
    return _see_other(await _after_second_factor(session, principal.actor, next))


@router.get("/mfa/enrol")
async def enrol_page(request: Request, principal: Principal = Enrolling) -> Response:
    return render(request, "mfa_enrol.html", {"enrolment": None, "error": None}, principal=principal)


@router.post("/mfa/enrol")
async def begin_enrolment(
    request: Request, session: SessionDep, principal: Principal = Enrolling
) -> Response:
    """The secret and its QR code appear in this response only (never in a GET page)."""
    assert principal.actor is not None
    enrolment = await mfa.begin_enrolment(session, user=principal.actor)
    qr_svg = segno.make(enrolment.otpauth_uri, error="m").svg_inline(scale=5, title=None)
    return render(
        request,
        "mfa_enrol.html",
        {"enrolment": enrolment, "qr_svg": qr_svg, "error": None},
        principal=principal,
    )


@router.post("/mfa/enrol/confirm")
async def confirm_enrolment(
    request: Request, session: SessionDep, code: Code, principal: Principal = Enrolling
) -> Response:
    assert principal.actor is not None and principal.session is not None
    try:
        codes = await mfa.confirm_enrolment(
            session, user=principal.actor, auth_session=principal.session, code=code
        )
    except ChuongError as exc:
        if exc.status_code != 401:
            raise
        return render(
            request,
            "mfa_enrol.html",
            {"enrolment": None, "error": _("Wrong code: start again with a new QR code")},
            principal=principal,
            status_code=401,
        )
    return render(request, "recovery_codes.html", {"codes": codes}, principal=principal)


@router.get("/password")
async def password_page(request: Request, principal: Principal = ChangingPassword) -> Response:
    return render(request, "password.html", {"error": None}, principal=principal)


@router.post("/password")
async def change_password(
    request: Request,
    session: SessionDep,
    current_password: Password,
    new_password: Password,
    principal: Principal = ChangingPassword,
) -> Response:
    assert principal.actor is not None
    try:
        await change_own_password(session, user=principal.actor, current=current_password, new=new_password)
    except ChuongError as exc:
        if exc.status_code not in (400, 401, 422):
            raise
        return render(
            request, "password.html", {"error": exc.message}, principal=principal, status_code=exc.status_code
        )
    return _see_other("/")


@router.get("/sessions")
async def sessions_page(
    request: Request, session: SessionDep, principal: Principal = FullSession
) -> Response:
    sessions = await account_sessions.own_sessions(session, principal=principal)
    return render(request, "sessions.html", {"sessions": sessions}, principal=principal)


@router.post("/sessions/{session_id}/end")
async def end_session(
    session_id: uuid.UUID, session: SessionDep, principal: Principal = EndingOwnSessions
) -> Response:
    await account_sessions.end_own_session(session, principal=principal, session_id=session_id)
    assert principal.session is not None
    if session_id == principal.session.id:
        response = _see_other("/login")
        response.headers.append("set-cookie", clear_session_cookie())
        return response
    return _see_other("/sessions")


@router.post("/sessions/revoke-all")
async def sign_out_everywhere(session: SessionDep, principal: Principal = EndingOwnSessions) -> Response:
    await account_sessions.end_all_own_sessions(session, principal=principal)
    response = _see_other("/login")
    response.headers.append("set-cookie", clear_session_cookie())
    return response
