"""Passkeys and security keys (WebAuthn): the two ceremonies of one's own account under
``/v1/auth/passkeys`` (registration; assertion, which completes a sign-in or refreshes the
step-up), one's own list and revocation, and an admin's list and revocation under
``/v1/users/{id}/passkeys``. Each ceremony is two calls: ``…/options`` returns the options for
``navigator.credentials.create()``/``get()`` and a ``ceremony_id``; the browser's answer comes
back with that id (docs/security.md "Passkeys and security keys")."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, status

from api.deps import Authenticated, SessionDep, Verifying, require
from auth import passkey_admin, passkeys
from auth.passkey_schemas import CeremonyOptionsOut, PasskeyAssertionIn, PasskeyOut, PasskeyRegistrationIn
from auth.passkeys import Options
from auth.principal import Principal
from auth.roles import Permission

router = APIRouter(tags=["auth"])
admin_router = APIRouter(tags=["users"])

# Adding or removing one's own credential needs a fresh step-up, as one's own person.
OwnCredentialChange = Depends(Authenticated(allow_delegated=False, step_up=True, own_account=True))
OwnList = Depends(Authenticated(allow_delegated=False))


def _options_out(options: Options) -> CeremonyOptionsOut:
    return CeremonyOptionsOut(
        ceremony_id=options.ceremony_id, expires_at=options.challenge.expires_at, options=options.options
    )


@router.get("", response_model=list[PasskeyOut])
async def list_own_passkeys(session: SessionDep, principal: Principal = OwnList) -> list[PasskeyOut]:
    assert principal.actor is not None
    rows = await passkeys.credentials_of(session, principal.actor.id)
    return [PasskeyOut.model_validate(row) for row in rows]


@router.post("/registration/options", response_model=CeremonyOptionsOut)
async def begin_registration(
    session: SessionDep, principal: Principal = OwnCredentialChange
) -> CeremonyOptionsOut:
    """Options for ``navigator.credentials.create()``: user verification required, the account's
    existing passkeys excluded. The challenge can be used once, within
    ``CHUONG_WEBAUTHN_CHALLENGE_SECONDS``, by this session only."""
    assert principal.actor is not None and principal.session is not None
    options = await passkeys.begin_registration(session, user=principal.actor, auth_session=principal.session)
    return _options_out(options)


@router.post("/registration", response_model=PasskeyOut, status_code=status.HTTP_201_CREATED)
async def finish_registration(
    body: PasskeyRegistrationIn, session: SessionDep, principal: Principal = OwnCredentialChange
) -> PasskeyOut:
    """The browser's ``PublicKeyCredential`` (its ``toJSON()``) and a name for the key."""
    assert principal.actor is not None and principal.session is not None
    row = await passkeys.finish_registration(
        session,
        user=principal.actor,
        auth_session=principal.session,
        ceremony_id=body.ceremony_id,
        name=body.name,
        credential=body.credential,
    )
    return PasskeyOut.model_validate(row)


@router.post("/assertion/options", response_model=CeremonyOptionsOut)
async def begin_assertion(session: SessionDep, principal: Principal = Verifying) -> CeremonyOptionsOut:
    """Options for ``navigator.credentials.get()`` listing the account's usable passkeys: to
    complete a password sign-in, or as the step-up before a sensitive action."""
    assert principal.actor is not None and principal.session is not None
    options = await passkeys.begin_assertion(session, user=principal.actor, auth_session=principal.session)
    return _options_out(options)


@router.post("/assertion", status_code=status.HTTP_204_NO_CONTENT)
async def finish_assertion(
    body: PasskeyAssertionIn, session: SessionDep, principal: Principal = Verifying
) -> None:
    """The browser's assertion: the session is verified by a passkey from now on (sign-in
    complete, step-up fresh)."""
    assert principal.actor is not None and principal.session is not None
    await passkeys.finish_assertion(
        session,
        user=principal.actor,
        auth_session=principal.session,
        ceremony_id=body.ceremony_id,
        credential=body.credential,
    )


@router.delete("/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_own_passkey(
    passkey_id: uuid.UUID, session: SessionDep, principal: Principal = OwnCredentialChange
) -> None:
    await passkey_admin.revoke_own(session, principal=principal, passkey_id=passkey_id)


@admin_router.get("/{user_id}/passkeys", response_model=list[PasskeyOut])
async def list_user_passkeys(
    user_id: uuid.UUID, session: SessionDep, principal: Principal = require(Permission.USERS_READ)
) -> list[PasskeyOut]:
    rows = await passkey_admin.list_for(session, principal=principal, user_id=user_id)
    return [PasskeyOut.model_validate(row) for row in rows]


@admin_router.delete("/{user_id}/passkeys/{passkey_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_user_passkey(
    user_id: uuid.UUID,
    passkey_id: uuid.UUID,
    session: SessionDep,
    principal: Principal = require(Permission.USERS_WRITE, step_up=True, allow_delegated=False),
) -> None:
    """A lost or stolen key (fresh step-up; accounts of your subtree, not above your role)."""
    await passkey_admin.revoke_for(session, principal=principal, user_id=user_id, passkey_id=passkey_id)
