"""Registering, refreshing, listing and retiring devices (delivery-core issue, §1)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth import audit
from core.config import get_settings
from core.crypto import constant_time_equals, keyed_hash
from core.db import utcnow
from core.errors import NotFound, Unauthorized
from devices.models import AccountTopic, Device
from devices.schemas import DeviceRegister, version_code

CREDENTIAL_PREFIX = "chd_"


@dataclass(frozen=True)
class Registration:
    device: Device
    credential: str | None
    created: bool


def _new_credential(device_id: uuid.UUID) -> str:
    return f"{CREDENTIAL_PREFIX}{device_id.hex}_{secrets.token_urlsafe(32)}"


async def register(
    session: AsyncSession,
    *,
    body: DeviceRegister,
    user_id: uuid.UUID | None,
    presented_credential: Device | None = None,
) -> Registration:
    """Idempotent upsert by (provider, token). For anonymous devices the result carries a
    credential when one is issued or rotated.

    A token that moves to another account (a phone handed over) is re-linked and the old link
    retired; an anonymous registration of a linked token unlinks it (signed out on that phone).
    """
    if user_id is None and body.app != "portal":
        raise Unauthorized("Sign in to register a tracking-app device", code="sign_in_required")
    now = utcnow()
    assert body.provider is not None
    fields = {
        "app": body.app,
        "platform": body.platform,
        "provider": body.provider,
        "apns_environment": body.apns_environment,
        "locale": body.locale,
        "time_zone": body.time_zone,
        "app_version": body.app_version,
        "app_version_code": version_code(body.app_version),
        "province": body.province,
        "topics": await _with_account_topics(session, body=body, user_id=user_id),
        "last_seen_at": now,
    }
    device = await _lock_by_token(session, body.provider, body.token)
    if device is None:
        device_id = uuid.uuid4()
        inserted = (
            await session.execute(
                insert(Device)
                .values(id=device_id, token=body.token, user_id=user_id, **fields)
                .on_conflict_do_nothing(constraint="uq_devices_provider_token")
                .returning(Device.id)
            )
        ).scalar_one_or_none()
        device = await _lock_by_token(session, body.provider, body.token)
        assert device is not None
        if inserted is not None:
            audit.record(
                session,
                action="device.registered",
                object_type="device",
                object_id=device.id,
                details={"app": body.app, "platform": body.platform, "anonymous": user_id is None},
            )
            credential = await _issue_credential(device) if user_id is None else None
            await _enforce_limit(session, user_id=user_id, keep=device.id)
            await session.flush()
            return Registration(device=device, credential=credential, created=True)
    previous_user = device.user_id
    for name, value in fields.items():
        setattr(device, name, value)
    device.invalidated_at = None
    device.invalid_reason = None
    credential = None
    if previous_user != user_id:
        device.user_id = user_id
        audit.record(
            session,
            action="device.relinked",
            object_type="device",
            object_id=device.id,
            details={
                "from_user": str(previous_user) if previous_user else None,
                "to_user": str(user_id) if user_id else None,
            },
        )
    if user_id is None:
        # Keep the credential the device already proved it holds; otherwise issue a new one
        # (which also retires any credential a previous holder of the token had).
        if presented_credential is None or presented_credential.id != device.id:
            credential = await _issue_credential(device)
    else:
        device.credential_hash = None
    await _enforce_limit(session, user_id=user_id, keep=device.id)
    await session.flush()
    return Registration(device=device, credential=credential, created=False)


async def _with_account_topics(
    session: AsyncSession, *, body: DeviceRegister, user_id: uuid.UUID | None
) -> list[str]:
    """A signed-in reader's follows live on the account (``account_topics``), so a phone linked
    to the account gets them on top of whatever topics the app sends."""
    if user_id is None:
        return body.topics
    followed = (
        await session.execute(
            select(AccountTopic.topic).where(AccountTopic.user_id == user_id, AccountTopic.app == body.app)
        )
    ).scalars()
    return sorted(set(body.topics) | set(followed))


async def set_account_topics(
    session: AsyncSession, *, user_id: uuid.UUID, app: str, managed: set[str], followed: set[str]
) -> None:
    """Replace which of the ``managed`` topics (the news sections) the account follows, on the
    account and on every live device of that app linked to it; other topics are left alone."""
    await session.execute(
        delete(AccountTopic).where(
            AccountTopic.user_id == user_id, AccountTopic.app == app, AccountTopic.topic.in_(managed)
        )
    )
    if followed:
        await session.execute(
            insert(AccountTopic)
            .values([{"user_id": user_id, "app": app, "topic": topic} for topic in sorted(followed)])
            .on_conflict_do_nothing()
        )
    linked = (
        await session.execute(
            select(Device)
            .where(Device.user_id == user_id, Device.app == app, Device.invalidated_at.is_(None))
            .with_for_update()
        )
    ).scalars()
    for device in linked:
        device.topics = sorted((set(device.topics) - managed) | followed)


async def account_topics(session: AsyncSession, *, user_id: uuid.UUID, app: str) -> list[str]:
    query = select(AccountTopic.topic).where(AccountTopic.user_id == user_id, AccountTopic.app == app)
    return sorted((await session.execute(query)).scalars())


async def _lock_by_token(session: AsyncSession, provider: str, token: str) -> Device | None:
    return (
        await session.execute(
            select(Device).where(Device.provider == provider, Device.token == token).with_for_update()
        )
    ).scalar_one_or_none()


async def _issue_credential(device: Device) -> str:
    credential = _new_credential(device.id)
    device.credential_hash = keyed_hash(credential)
    return credential


async def _enforce_limit(session: AsyncSession, *, user_id: uuid.UUID | None, keep: uuid.UUID) -> None:
    """Past the per-user limit the least recently seen devices are retired, so a user who
    reinstalls many times is not locked out of registering the phone in their hand."""
    if user_id is None:
        return
    limit = get_settings().device_limit_per_user
    stale = (
        (
            await session.execute(
                select(Device.id)
                .where(Device.user_id == user_id, Device.invalidated_at.is_(None), Device.id != keep)
                .order_by(Device.last_seen_at.desc())
                .offset(limit - 1)
            )
        )
        .scalars()
        .all()
    )
    if stale:
        await session.execute(
            update(Device)
            .where(Device.id.in_(stale))
            .values(invalidated_at=utcnow(), invalid_reason="device_limit", user_id=None)
        )
        audit.record(
            session,
            action="device.evicted",
            object_type="user",
            object_id=user_id,
            details={"devices": [str(s) for s in stale]},
        )


async def authenticate_credential(session: AsyncSession, credential: str) -> Device:
    """Resolve an anonymous device credential (``chd_<device id>_<secret>``)."""
    try:
        device_hex, _ = credential.removeprefix(CREDENTIAL_PREFIX).split("_", 1)
        device_id = uuid.UUID(hex=device_hex)
    except ValueError as exc:
        raise Unauthorized("Invalid device credential", code="invalid_device_credential") from exc
    device = await session.get(Device, device_id)
    if (
        device is None
        or device.credential_hash is None
        or device.invalidated_at is not None
        or not constant_time_equals(device.credential_hash, keyed_hash(credential))
    ):
        raise Unauthorized("Invalid device credential", code="invalid_device_credential")
    return device


async def list_for_user(session: AsyncSession, *, user_id: uuid.UUID) -> list[Device]:
    query = (
        select(Device)
        .where(Device.user_id == user_id, Device.invalidated_at.is_(None))
        .order_by(Device.last_seen_at.desc())
    )
    return list((await session.execute(query)).scalars())


async def unregister(
    session: AsyncSession, *, device_id: uuid.UUID, user_id: uuid.UUID | None, device: Device | None
) -> None:
    """The owner (account or the device itself) retires a device; others get 404."""
    target = await session.get(Device, device_id, with_for_update=True)
    owns = target is not None and (
        (user_id is not None and target.user_id == user_id) or (device is not None and device.id == target.id)
    )
    if target is None or not owns or target.invalidated_at is not None:
        raise NotFound("Device not found")
    target.invalidated_at = utcnow()
    target.invalid_reason = "unregistered"
    target.user_id = None
    target.credential_hash = None
    audit.record(session, action="device.unregistered", object_type="device", object_id=target.id)


async def invalidate(session: AsyncSession, *, device_ids: list[uuid.UUID], reason: str) -> int:
    """The provider says these tokens are dead: never send to them again."""
    if not device_ids:
        return 0
    result = await session.execute(
        update(Device)
        .where(Device.id.in_(device_ids), Device.invalidated_at.is_(None))
        .values(invalidated_at=utcnow(), invalid_reason=reason[:64])
        .returning(Device.id)
    )
    count = len(result.all())
    if count:
        audit.record(
            session,
            action="device.invalidated",
            actor_kind="system",
            details={"count": count, "reason": reason},
        )
    return count


async def purge_stale(session: AsyncSession, *, now: dt.datetime) -> int:
    """Delete devices retired more than 30 days ago or unseen for the configured time (270 d)."""
    settings = get_settings()
    unseen_before = now - dt.timedelta(days=settings.device_stale_days)
    retired_before = now - dt.timedelta(days=30)
    result = await session.execute(
        delete(Device)
        .where((Device.last_seen_at < unseen_before) | (Device.invalidated_at < retired_before))
        .returning(Device.id)
    )
    purged = len(result.all())
    if purged:
        audit.record(session, action="device.purged", actor_kind="system", details={"count": purged})
    return purged


def live_since(now: dt.datetime) -> dt.datetime:
    """Devices not seen since this moment are excluded from sends."""
    return now - dt.timedelta(days=get_settings().device_stale_days)
