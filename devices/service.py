"""Registering, refreshing, listing and retiring devices (delivery-core issue, §1)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from auth import audit
from auth.principal import AuthenticatedDevice
from core.after_commit import call_after_commit
from core.config import get_settings
from core.crypto import constant_time_equals, keyed_hash
from core.db import utcnow
from core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from core.netaddr import Network
from devices import apps
from devices.credentials import CREDENTIAL_PREFIX as CREDENTIAL_PREFIX  # re-exported
from devices.credentials import device_id_of, invalid_credential
from devices.metrics import TOKENS_INVALIDATED, reason_label
from devices.models import AccountTopic, Device
from devices.schemas import DeviceRegister, version_code

# The device row's columns an app start compares and answers with, read with the device's
# credential in its one statement (devices/credentials.py; ``api.deps.with_device_row``).
REFRESH_COLUMNS = (
    "d.platform",
    "d.apns_environment",
    "d.time_zone",
    "d.app_version",
    "d.app_version_code",
    "d.province",
    "d.last_seen_at",
)


@dataclass(frozen=True)
class Snapshot:
    """A device as its credential's statement read it (``REFRESH_COLUMNS`` and the credential
    check's own): what an app start compares and answers with, without an ORM object."""

    id: uuid.UUID
    app: str
    platform: str
    provider: str
    apns_environment: str | None
    token: str
    locale: str
    time_zone: str
    app_version: str | None
    app_version_code: int | None
    province: str | None
    topics: list[str]
    last_seen_at: dt.datetime
    created_at: dt.datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Snapshot:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Registration:
    device: Device | Snapshot
    credential: str | None
    created: bool


def _new_credential(device_id: uuid.UUID) -> str:
    return f"{CREDENTIAL_PREFIX}{device_id.hex}_{secrets.token_urlsafe(32)}"


async def register(
    session: AsyncSession,
    *,
    body: DeviceRegister,
    user_id: uuid.UUID | None,
    presented_credential: AuthenticatedDevice | None = None,
    network: Network | None = None,
    presented_row: Mapping[str, Any] | None = None,
) -> Registration:
    """Upsert by (provider, token), where the token decides nothing about *who* registers.

    A registration continues the device that holds the token only when the caller proves it is
    that device: it presents the device's current credential (anonymous), or it is the account
    the device is linked to. Anyone else — a push token is no secret: logs, backups, a copied
    request — gets a new device for the token, and the previous device is retired with its
    credential, its own inbox items and its account link (``_supersede``): nothing of it
    reaches the new holder. A reinstalled app (no credential) thus recovers as a new device;
    a phone handed over is linked to its new account as a new device, the previous owner's
    inbox staying with the previous owner's account. An anonymous caller cannot displace a
    signed-in device at all (409 ``device_signed_in``). ``network`` is recorded on new devices.
    ``presented_row``: the presented credential's device row with ``REFRESH_COLUMNS``, when its
    check read them (then an app start needs no other read of the device).
    """
    app = await apps.require(session, body.app)
    if body.platform not in app.platforms:
        raise Unprocessable(
            f"The app {app.code!r} has no {body.platform} version",
            code="platform_not_supported",
            details=[{"app": app.code, "platform": body.platform}],
        )
    if user_id is None and not app.anonymous_devices:
        raise Unauthorized(f"Sign in to register a device of the {app.code!r} app", code="sign_in_required")
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
    current: Device | Snapshot | None = None
    if user_id is None and presented_credential is not None:
        if presented_row is not None:
            current = Snapshot.of(presented_row)
        elif isinstance(presented_credential, Device):
            current = presented_credential
    if current is not None:
        refreshed = await _refresh_own(session, current, body=body, fields=fields, now=now)
        if refreshed is not None:
            return Registration(device=refreshed, credential=None, created=False)
    if user_id is None and presented_credential is None:
        # An app's first start (no credential, nobody signed in): its token is new as a rule, so
        # the insert comes first (no ``SELECT … FOR UPDATE`` before it). If a device holds the
        # token the insert does nothing, and the rounds below decide as for any registration.
        inserted = await _insert(session, body=body, user_id=None, network=network, fields=fields)
        if inserted is not None:
            created, credential = inserted
            return Registration(device=created, credential=credential, created=True)
    # Each round either continues the token's device, or retires it and inserts a new one; an
    # insert loses only to a concurrent registration of the same token, then the next round
    # decides again against the device that registration made.
    for _ in range(_ROUNDS):
        device = await _lock_by_token(session, body.provider, body.token)
        if device is not None and _proves_holder(device, user_id=user_id, presented=presented_credential):
            for name, value in fields.items():
                setattr(device, name, value)
            device.invalidated_at = None
            device.invalid_reason = None
            await _enforce_limit(session, user_id=user_id, keep=device.id)
            await session.flush()
            # A proven anonymous device keeps the credential it holds: nothing new to hand out.
            return Registration(device=device, credential=None, created=False)
        if device is not None and device.user_id is not None and user_id is None:
            # A stranger must not even end the link: that alone would stop the account's pushes
            # to the phone until the app next starts. The phone's own app proves itself by
            # signing in (a reinstall included); a phone handed over is re-registered by its new
            # account, which supersedes the old link below (audited).
            raise Conflict(
                "This push token belongs to a signed-in device; sign in on it to register it again",
                code="device_signed_in",
            )
        if device is not None:
            _supersede(session, device, by_user=user_id, now=now)
            await session.flush()
        inserted = await _insert(session, body=body, user_id=user_id, network=network, fields=fields)
        if inserted is None:
            continue
        created, credential = inserted
        if user_id is not None:
            audit.record(
                session,
                action="device.registered",
                object_type="device",
                object_id=created.id,
                details={"app": body.app, "platform": body.platform},
            )
        # Anonymous registrations are not audited one by one (a flood would flood the audit log
        # too): the device row, with created_at and registered_network, is their record.
        await _enforce_limit(session, user_id=user_id, keep=created.id)
        await session.flush()
        return Registration(device=created, credential=credential, created=True)
    raise Conflict("This token is being registered concurrently; retry", code="registration_conflict")


# ``last_seen_at`` is read in days (sends skip devices unseen for 270 days, a user's least recently
# seen devices go first past the limit): an app start within this of the last one writes nothing.
LAST_SEEN_EVERY = dt.timedelta(hours=1)


async def _refresh_own(
    session: AsyncSession,
    device: Device | Snapshot,
    *,
    body: DeviceRegister,
    fields: Mapping[str, object],
    now: dt.datetime,
) -> Device | Snapshot | None:
    """An anonymous device refreshing its own token with its credential (every app start; the
    credential's check read ``device``: its row, or the ORM object). Nothing is written when
    only ``last_seen_at`` would change and it is recent; otherwise one ``UPDATE``, which holds
    only while the device still has the token and a live credential. None: not this case (another
    token, or the device changed meanwhile): the caller decides as for any registration."""
    if (device.provider, device.token) != (body.provider, body.token):
        return None
    unchanged = all(getattr(device, key) == value for key, value in fields.items() if key != "last_seen_at")
    if unchanged and now - device.last_seen_at < LAST_SEEN_EVERY:
        return device
    values = {f"set_{name}": value for name, value in fields.items()}
    parameters = {"where_id": device.id, "where_provider": body.provider, "where_token": body.token, **values}
    row = (await session.execute(_refresh_statement(tuple(fields)), parameters)).first()
    return Snapshot.of(row._mapping) if row is not None else None


# A registration sets the same fields every time (``register``'s ``fields``), so its two
# statements are built once per set of fields (one, in practice) with their values bound by name
# (``set_<field>``): building the ORM statement anew cost ~15 % of a refresh's API CPU. They are
# Core statements on the table returning a ``Snapshot``'s columns: an ORM statement returning the
# entity cost the ORM's bulk machinery and an object (a new device and an app start that writes
# are answered from the row, as one within the hour is).
_TABLE = cast(Table, Device.__table__)
_SNAPSHOT = tuple(_TABLE.c[name] for name in Snapshot.__dataclass_fields__)


@lru_cache(maxsize=8)
def _refresh_statement(names: tuple[str, ...]) -> ReturningUpdate[Any]:
    """``_refresh_own``'s UPDATE: only while the device still has the token and a live credential."""
    return cast(
        ReturningUpdate[Any],
        update(_TABLE)
        .where(
            # Not the columns' names: those are reserved for the SET clause's own parameters.
            Device.id == bindparam("where_id"),
            Device.provider == bindparam("where_provider"),
            Device.token == bindparam("where_token"),
            Device.credential_hash.is_not(None),
            Device.invalidated_at.is_(None),
        )
        .values({name: bindparam(f"set_{name}") for name in names})
        .returning(*_SNAPSHOT),
    )


@lru_cache(maxsize=8)
def _insert_statement(names: tuple[str, ...]) -> ReturningInsert[Any]:
    """``_insert``'s INSERT … ON CONFLICT DO NOTHING RETURNING, the ``names`` fields and the
    device's own (id, token, account, network, credential hash) bound by name."""
    own = ("id", "token", "user_id", "registered_network", "credential_hash")
    return cast(
        ReturningInsert[Any],
        insert(_TABLE)
        .values({name: bindparam(f"set_{name}") for name in (*own, *names)})
        .on_conflict_do_nothing(constraint="uq_devices_provider_token")
        .returning(*_SNAPSHOT),
    )


def makes_anonymous_device(
    *, body: DeviceRegister, user_id: uuid.UUID | None, presented: AuthenticatedDevice | None
) -> bool:
    """Whether a registration would make a new anonymous device: every one but a signed-in
    user's and a device's refresh of its own token (with its credential). What the anonymous
    registration limits count (auth.ratelimit.enforce_anonymous_registration), before any work."""
    if user_id is not None:
        return False
    return presented is None or (presented.provider, presented.token) != (body.provider, body.token)


# Rounds of register(): a round is lost only to another registration of the same token that
# succeeded meanwhile, so this many registrations of one token at once still all succeed (one
# phone sends one; a storm beyond it gets 409 and retries).
_ROUNDS = 8
SUPERSEDED_TOKEN_PREFIX = "superseded:"  # noqa: S105 (a marker, not a secret)


def _proves_holder(
    device: Device, *, user_id: uuid.UUID | None, presented: AuthenticatedDevice | None
) -> bool:
    """The caller is the device: its linked account, or the holder of its current credential
    (``presented`` was authenticated, so it is live and its credential matched)."""
    if user_id is not None:
        return device.user_id == user_id
    return presented is not None and presented.id == device.id


def _supersede(session: AsyncSession, device: Device, *, by_user: uuid.UUID | None, now: dt.datetime) -> None:
    """Retire the device that held a token someone else registers: its token is freed for the
    new device, its credential dies, its account link ends. Its own inbox items stay keyed by
    its id, which nobody can present any more. An account losing a device this way is audited
    (a takeover attempt or a phone changing hands); an anonymous device replaced by another is
    an anonymous registration like any other (rate limited, recorded by the rows)."""
    previous_user = device.user_id
    device.token = f"{SUPERSEDED_TOKEN_PREFIX}{device.id.hex}"
    device.credential_hash = None
    device.user_id = None
    if device.invalidated_at is None:
        device.invalidated_at = now
        device.invalid_reason = "superseded"
    if previous_user is not None or by_user is not None:
        audit.record(
            session,
            action="device.superseded",
            object_type="device",
            object_id=device.id,
            details={
                "from_user": str(previous_user) if previous_user else None,
                "to_user": str(by_user) if by_user else None,
            },
        )


async def _insert(
    session: AsyncSession,
    *,
    body: DeviceRegister,
    user_id: uuid.UUID | None,
    network: Network | None,
    fields: Mapping[str, object],
) -> tuple[Snapshot, str | None] | None:
    """A new device for the token with, if anonymous, its credential (only its keyed hash is
    stored); None when a concurrent registration inserted the token first. One statement: the
    id and credential are made here, and the row comes back from the insert itself (locked by
    it), so neither a second read nor an update follows."""
    device_id = uuid.uuid4()
    credential = _new_credential(device_id) if user_id is None else None
    values = {
        "id": device_id,
        "token": body.token,
        "user_id": user_id,
        "registered_network": network,
        "credential_hash": keyed_hash(credential) if credential is not None else None,
        **fields,
    }
    parameters = {f"set_{name}": value for name, value in values.items()}
    created = (await session.execute(_insert_statement(tuple(fields)), parameters)).first()
    return None if created is None else (Snapshot.of(created._mapping), credential)


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
    """Resolve an anonymous device credential (``chd_<device id>_<secret>``) to its ORM row, for
    routes that change the device (the read path uses ``devices.credentials.authenticate_on``)."""
    device = await session.get(Device, device_id_of(credential))
    if (
        device is None
        or device.credential_hash is None
        or device.invalidated_at is not None
        or not constant_time_equals(device.credential_hash, keyed_hash(credential))
    ):
        raise invalid_credential()
    if device.credential_used_at is None:
        # Once per device: the device came back with its credential (devices/floods.py).
        device.credential_used_at = utcnow()
    return device


async def list_for_user(session: AsyncSession, *, user_id: uuid.UUID) -> list[Device]:
    query = (
        select(Device)
        .where(Device.user_id == user_id, Device.invalidated_at.is_(None))
        .order_by(Device.last_seen_at.desc())
    )
    return list((await session.execute(query)).scalars())


async def unregister(
    session: AsyncSession,
    *,
    device_id: uuid.UUID,
    user_id: uuid.UUID | None,
    device: AuthenticatedDevice | None,
) -> None:
    """The owner (account or the device itself) retires a device; others get 404."""
    # Read again under the lock (populate_existing): a device's own credential check loaded this
    # row into the session before the lock, and a concurrent unregister of the same device
    # (a phone's retry) must be seen, not the copy from before it: one 204, one audit row.
    target = await session.get(Device, device_id, with_for_update=True, populate_existing=True)
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
        .returning(Device.provider)
    )
    providers = Counter(row.provider for row in result)

    async def count_in_metrics() -> None:
        for provider, retired in providers.items():
            TOKENS_INVALIDATED.labels(provider, reason_label(reason)).inc(retired)

    # Once committed: the send pipeline writes a chunk again after a transient failure
    # (core/db_retry.py), and the first try's retirements rolled back with it.
    call_after_commit(session, count_in_metrics)
    count = providers.total()
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
        delete(Device).where((Device.last_seen_at < unseen_before) | (Device.invalidated_at < retired_before))
    )
    # Counted by the server: returning every id only to count them cost a round of rows.
    purged = cast(CursorResult[Any], result).rowcount
    if purged:
        audit.record(session, action="device.purged", actor_kind="system", details={"count": purged})
    return purged


def live_since(now: dt.datetime) -> dt.datetime:
    """Devices not seen since this moment are excluded from sends."""
    return now - dt.timedelta(days=get_settings().device_stale_days)
