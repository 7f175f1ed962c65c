"""Accounts inside a unit subtree (D-20, D-21, D-23).

An admin manages only accounts of units in its own subtree and never grants a role above its
own. Anything that changes who a person is or what they may do ends all their tokens at once.
"""

from __future__ import annotations

import base64
import json
import uuid

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit, mfa_reset
from auth.managed import managed_user
from auth.models import MfaResetRequest, TotpCredential, Unit, User
from auth.passwords import check_policy, hash_password, verify_password
from auth.principal import Principal
from auth.roles import Role, can_grant
from auth.schemas import UserCreate, UserOut, UserUpdate
from auth.sessions import revoke_all_sessions
from auth.step_up import require_fresh_step_up
from auth.throttle import unlock
from auth.units import get_unit
from core.crypto import decrypt_text, encrypt_text
from core.db import flush_unique, utcnow
from core.errors import BadRequest, Conflict, Forbidden, Unauthorized

# Granting these roles is a sensitive action: a fresh step-up, whatever the door.
ADMIN_ROLES = frozenset({Role.SYSTEM_ADMIN, Role.UNIT_ADMIN})


def _check_grant(principal: Principal, role: Role) -> None:
    assert principal.role is not None
    if not can_grant(principal.role, role):
        raise Forbidden(f"You cannot grant the role {role.value}", code="role_above_own")


async def create_user(session: AsyncSession, *, principal: Principal, body: UserCreate) -> User:
    unit = await get_unit(session, principal=principal, unit_id=body.unit_id)
    _check_grant(principal, body.role)
    if body.role in ADMIN_ROLES:
        require_fresh_step_up(principal)
    check_policy(body.password, user_inputs=[body.username, body.full_name, body.email or ""])
    user = User(
        id=uuid.uuid4(),
        username=body.username.lower(),
        full_name=body.full_name,
        position=body.position,
        unit_id=unit.id,
        role=body.role.value,
        email=str(body.email) if body.email else None,
        phone_enc=encrypt_text(body.phone) if body.phone else None,
        citizen_id_enc=encrypt_text(body.citizen_id) if body.citizen_id else None,
        password_hash=hash_password(body.password),
        # The admin chose this password; the holder must replace it at first sign-in (D-23).
        must_change_password=True,
        created_by_id=principal.user.id if principal.user else None,
    )
    session.add(user)
    await flush_unique(session, conflict=Conflict("This username is taken", code="username_taken"))
    audit.record(
        session,
        action="user.created",
        object_type="user",
        object_id=user.id,
        unit_id=unit.id,
        details={"username": user.username, "role": user.role, "unit_id": str(unit.id)},
    )
    return user


async def get_user(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> User:
    """A user in the principal's subtree, or 404 (never 403: do not confirm that the id exists)."""
    return await managed_user(session, principal=principal, user_id=user_id)


async def list_users(
    session: AsyncSession,
    *,
    principal: Principal,
    limit: int,
    cursor: str | None,
    unit_id: uuid.UUID | None,
    role: Role | None,
    active: bool | None,
    query_text: str | None,
) -> tuple[list[User], str | None]:
    query = select(User).join(Unit, Unit.id == User.unit_id).order_by(User.username).limit(limit + 1)
    if not principal.sees_all_units:
        query = query.where(Unit.path.startswith(principal.unit_path, autoescape=True))
    if unit_id is not None:
        query = query.where(User.unit_id == unit_id)
    if role is not None:
        query = query.where(User.role == role.value)
    if active is not None:
        query = query.where(User.is_active.is_(active))
    if query_text:
        # Escaped: "%" or "_" in the text is that character, not a wildcard matching everyone.
        needle = query_text.lower()
        query = query.where(
            func.lower(User.full_name).contains(needle, autoescape=True)
            | User.username.contains(needle, autoescape=True)
        )
    if cursor:
        query = query.where(User.username > decode_cursor(cursor))
    users = list((await session.execute(query)).scalars())
    next_cursor = encode_cursor(users[limit - 1].username) if len(users) > limit else None
    return users[:limit], next_cursor


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc
    if not isinstance(value, str) or "\x00" in value or not value.isprintable():
        raise BadRequest("Invalid cursor", code="invalid_cursor")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadRequest("Invalid cursor", code="invalid_cursor") from exc
    return value


async def update_user(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, body: UserUpdate
) -> User:
    user = await get_user(session, principal=principal, user_id=user_id)
    # No change to an account ranked above one's own (as for disabling it or resetting its
    # credentials): not its unit (which ends its sessions), nor its name, e-mail or phone.
    _check_grant(principal, Role(user.role))
    changes = body.model_dump(exclude_unset=True)
    revoke = False
    if "role" in changes and changes["role"] is not None and changes["role"] != user.role:
        _check_grant(principal, changes["role"])
        if changes["role"] in ADMIN_ROLES:
            require_fresh_step_up(principal)
        user.role = changes["role"].value
        revoke = True
    if "unit_id" in changes and changes["unit_id"] is not None and changes["unit_id"] != user.unit_id:
        unit = await get_unit(session, principal=principal, unit_id=changes["unit_id"])
        user.unit_id = unit.id
        revoke = True
    for field in ("full_name", "position", "email"):
        if field in changes:
            setattr(user, field, str(changes[field]) if changes[field] is not None else None)
    if "phone" in changes:
        user.phone_enc = encrypt_text(changes["phone"]) if changes["phone"] else None
    if "citizen_id" in changes:
        user.citizen_id_enc = encrypt_text(changes["citizen_id"]) if changes["citizen_id"] else None
    if revoke:
        await revoke_all_sessions(session, user=user, reason="role_or_unit_changed")
    await session.flush()
    audit.record(
        session,
        action="user.updated",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        # Which fields changed, and new values of the non-personal ones; never phone/citizen ID.
        details={
            "fields": sorted(changes),
            **{k: str(v) for k, v in changes.items() if k in ("role", "unit_id", "position")},
            "sessions_revoked": revoke,
        },
    )
    return user


async def set_active(
    session: AsyncSession, *, principal: Principal, user_id: uuid.UUID, active: bool
) -> User:
    user = await get_user(session, principal=principal, user_id=user_id)
    if principal.user is not None and user.id == principal.user.id:
        raise Forbidden("You cannot disable your own account", code="self_disable")
    _check_grant(principal, Role(user.role))
    # Locked, then compared: a second disable (a retry, a double click, two admins at once)
    # changes nothing, so ``disabled_at`` keeps the time access really ended (D-23) and the
    # audit log has one row per change.
    await session.refresh(user, with_for_update=True)
    if user.is_active is active:
        return user
    user.is_active = active
    user.disabled_at = None if active else utcnow()
    if not active:
        await revoke_all_sessions(session, user=user, reason="disabled")
    audit.record(
        session,
        action="user.enabled" if active else "user.disabled",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
    )
    await session.flush()
    return user


async def reset_credentials(
    session: AsyncSession,
    *,
    principal: Principal,
    user_id: uuid.UUID,
    new_password: str,
    reset_mfa: bool,
    reason: str | None = None,
) -> tuple[User, MfaResetRequest | None]:
    """When an account changes hands (D-23): a new password (to be changed at first sign-in) and
    every existing token ends, at once, by one admin with a fresh step-up: the account's second
    factor still stands between that admin and the account. ``reset_mfa`` does not remove the
    second factor here: it files the two-admin request of ``auth.mfa_reset`` (returned), which
    another admin confirms; only then must the holder enrol again."""
    user = await get_user(session, principal=principal, user_id=user_id)
    require_fresh_step_up(principal)
    _check_grant(principal, Role(user.role))
    request = None
    if reset_mfa:  # before any change: a refused request (own account, already pending) changes nothing
        request = await mfa_reset.request_reset(session, principal=principal, user_id=user.id, reason=reason)
    check_policy(new_password, user_inputs=[user.username, user.full_name, user.email or ""])
    user.password_hash = hash_password(new_password)
    user.password_changed_at = utcnow()
    user.must_change_password = True
    await unlock(session, user=user)
    await revoke_all_sessions(session, user=user, reason="credentials_reset")
    audit.record(
        session,
        action="user.credentials_reset",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        details={"mfa_reset_requested": str(request.id) if request else None},
    )
    return user, request


async def unlock_user(session: AsyncSession, *, principal: Principal, user_id: uuid.UUID) -> User:
    user = await get_user(session, principal=principal, user_id=user_id)
    await unlock(session, user=user)
    audit.record(session, action="user.unlocked", object_type="user", object_id=user.id, unit_id=user.unit_id)
    return user


async def change_own_password(session: AsyncSession, *, user: User, current: str, new: str) -> None:
    if not verify_password(user.password_hash, current):
        raise Unauthorized("Current password is wrong", code="invalid_credentials", headers={})
    if verify_password(user.password_hash, new):
        raise BadRequest("The new password must differ from the current one", code="password_reused")
    check_policy(new, user_inputs=[user.username, user.full_name, user.email or ""])
    user.password_hash = hash_password(new)
    user.password_changed_at = utcnow()
    user.must_change_password = False
    audit.record(session, action="user.password_changed", object_type="user", object_id=user.id)
    await session.flush()


async def to_out(session: AsyncSession, user: User, *, reveal_personal: bool) -> UserOut:
    enrolled = (
        await session.execute(
            select(
                exists().where(TotpCredential.user_id == user.id, TotpCredential.confirmed_at.is_not(None))
            )
        )
    ).scalar_one()
    now = utcnow()
    return UserOut(
        id=user.id,
        username=user.username,
        full_name=user.full_name,
        position=user.position,
        unit_id=user.unit_id,
        role=Role(user.role),
        email=user.email,
        phone=decrypt_text(user.phone_enc) if reveal_personal and user.phone_enc else None,
        citizen_id=decrypt_text(user.citizen_id_enc) if reveal_personal and user.citizen_id_enc else None,
        is_active=user.is_active,
        mfa_enrolled=bool(enrolled),
        locked=bool(user.locked_until and user.locked_until > now),
        created_at=user.created_at,
    )


async def bootstrap_system_admin(
    session: AsyncSession, *, unit: Unit, username: str, full_name: str, password: str, email: str | None
) -> User:
    """The first account (CLI ``chuong admin create``); refuses when a system admin exists."""
    existing = (
        await session.execute(select(User.id).where(User.role == Role.SYSTEM_ADMIN.value).limit(1))
    ).first()
    if existing is not None:
        raise Conflict("A system admin already exists; create further accounts through the API")
    check_policy(password, user_inputs=[username, full_name, email or ""])
    user = User(
        id=uuid.uuid4(),
        username=username.lower(),
        full_name=full_name,
        unit_id=unit.id,
        role=Role.SYSTEM_ADMIN.value,
        email=email,
        password_hash=hash_password(password),
    )
    session.add(user)
    await session.flush()
    audit.record(
        session,
        action="user.created",
        object_type="user",
        object_id=user.id,
        unit_id=unit.id,
        actor_kind="system",
        details={"username": user.username, "role": user.role, "bootstrap": True},
    )
    return user
